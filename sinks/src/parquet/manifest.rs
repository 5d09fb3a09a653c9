//! The commit log: `_outflow/manifest-<n>.json`, one per commit, each
//! listing the files that commit made visible and, per table, the position
//! of the last change in that table's committed files.
//!
//! Protocol (the manifest is the single source of truth):
//! 1. a rolled file is written and made durable under `_outflow/tmp/`;
//! 2. commit `n` creates `manifest-<n>.json` *if absent* (hard link on disk,
//!    conditional put on object stores) — the atomic commit point; a second
//!    writer on the same path loses here instead of corrupting the table;
//! 3. the files it lists are moved to their final names.
//!
//! On start the newest manifest is found (from the checkpoint's number
//! forward, or by listing), its moves are completed (a crash between 2 and 3),
//! and everything else under `_outflow/tmp/` is deleted (a crash before 2).
//! Changes of a table at or before the manifest's position for that table
//! are skipped, so the manifest wins even when the pipeline's stored offset
//! is older (a crash between the manifest write and the offset write).
//!
//! Readers that ignore `_`-prefixed paths (pyarrow, Spark, DuckDB's hive
//! globbing) never see a staged file.

use std::collections::BTreeMap;

use outflow_model::Position;
use serde::{Deserialize, Serialize};

use super::store::Store;
use crate::snapshot_marks::SnapshotRecord;
use crate::SinkError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub sequence: u64,
    /// The last position any committed file reaches (informational).
    pub position: Option<String>,
    /// Per table (`schema.table`): the last change in its committed files.
    pub tables: BTreeMap<String, String>,
    /// The files this commit made visible.
    pub files: Vec<CommittedFile>,
    /// Sequence number for the next file name.
    pub next_file: u64,
    pub committed_at: String,
    /// Snapshot progress of the chunks committed so far (see
    /// `snapshot_marks`); absent in manifests of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommittedFile {
    /// Final path, relative to the sink's root.
    pub path: String,
    /// Where it was staged before the commit moved it.
    pub staged: String,
    pub table: String,
    pub schema_version: u32,
    pub rows: u64,
    pub bytes: u64,
    pub first_position: String,
    pub last_position: String,
}

pub fn manifest_path(n: u64) -> String {
    format!("_outflow/manifest-{n:010}.json")
}

impl Manifest {
    /// Per-table high-water marks as positions.
    pub fn table_positions(&self) -> Result<BTreeMap<String, Position>, SinkError> {
        self.tables
            .iter()
            .map(|(t, p)| {
                let pos = p.parse().map_err(|e| {
                    SinkError::Checkpoint(format!("manifest {} has a bad position {p:?} for {t}: {e}", self.sequence))
                })?;
                Ok((t.clone(), pos))
            })
            .collect()
    }
}

fn parse(store: &Store, n: u64, bytes: &[u8]) -> Result<Manifest, SinkError> {
    serde_json::from_slice(bytes).map_err(|e| {
        SinkError::Checkpoint(format!(
            "{} is not a valid manifest ({e}); restore it from a backup or move the sink to an empty path",
            store.display(&manifest_path(n))
        ))
    })
}

/// The newest manifest, if any. `hint` is the sequence number the pipeline
/// stored with its offset (a newer one may exist: the offset write can lag).
pub fn latest(store: &Store, hint: Option<u64>) -> Result<Option<Manifest>, SinkError> {
    let mut n = match hint {
        Some(n) => n,
        None => store
            .list("_outflow")?
            .iter()
            .filter_map(|name| name.strip_prefix("manifest-")?.strip_suffix(".json")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0),
    };
    if n == 0 {
        return Ok(None);
    }
    let Some(mut bytes) = store.read(&manifest_path(n))? else {
        return Err(SinkError::Checkpoint(format!(
            "{} is missing but the sink's offset says it was committed: the output was deleted or replaced; \
             restore it, or reset this sink's offset (outflow offsets reset) to write it anew",
            store.display(&manifest_path(n))
        )));
    };
    while let Some(next) = store.read(&manifest_path(n + 1))? {
        n += 1;
        bytes = next;
    }
    parse(store, n, &bytes).map(Some)
}

/// Completes the moves of a manifest whose commit may have been cut short.
pub fn roll_forward(store: &Store, manifest: &Manifest) -> Result<(), SinkError> {
    for f in &manifest.files {
        store.publish(&f.staged, &f.path)?;
    }
    Ok(())
}
