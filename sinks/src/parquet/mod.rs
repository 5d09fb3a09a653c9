//! `kind = "parquet"`: change logs as Parquet files on local disk or object
//! storage, exactly-once.
//!
//! Layout: `<path>/<schema>.<table>/[date=YYYY-MM-DD/]part-<n>-v<schema version>.parquet`,
//! one row per change: the table's columns (from `after`, `before` for
//! deletes, all null for truncates) with Arrow types from [`types`], then
//! `_op`, `_position`, `_tx`, `_source_ts`, `_snapshot` and `_unchanged` (the
//! columns whose TOASTed value the source did not send; they are null).
//! A table's schema change closes its files: the next file has the new shape
//! (pyarrow `dataset` unifies them). Files roll by `roll_rows`, `roll_bytes`
//! or `roll_interval`, whichever comes first, and when the stream ends.
//!
//! Exactly-once ([`manifest`]): a rolled file is staged under `_outflow/tmp/`
//! and becomes visible only through a manifest commit. Until then its changes
//! are not durable, so the sink reports (via [`Sink::durable`]) the position
//! just before the oldest uncommitted change, and the pipeline stores and
//! acknowledges only that: the source keeps everything not yet committed.
//! After a crash the staged files are deleted and replay starts from the
//! stored offset; changes a manifest already holds are skipped per table, so
//! nothing appears twice even if the offset write was lost.
//!
//! Object stores are async: the sink blocks on the pipeline's runtime from
//! its own thread ([`store`]). `outflow check` writes and deletes a probe
//! file in the directory, or a probe object under the store prefix.
//!
//! Memory: every table's buffered rows and open row groups count against
//! `memory_limit`; when it is exceeded the largest tables' row groups are
//! written out to their files (which stay open and uncommitted).

mod factory;
mod manifest;
mod store;
mod table;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use ::parquet::basic::{Compression as PqCompression, ZstdLevel};
use ::parquet::file::properties::WriterProperties;
use outflow_model::{Position, SchemaChange, StreamItem};
use serde::Deserialize;
use serde_json::json;
use tokio::runtime::Handle;

use self::manifest::{manifest_path, CommittedFile, Manifest};
use self::store::Store;
use self::table::{FileSettings, TableWriter};
use crate::exactly_once::{durable_before, Delivered};
use crate::settings::{ByteSize, Interval};
use crate::snapshot_marks::SnapshotRecord;
use crate::{Checkpoint, Durable, Sink, SinkError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    pub name: String,
    /// A local directory, or `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (also `abfss://`, `https://` store URLs).
    pub path: String,
    /// object_store settings for the URL's store, e.g. `endpoint`, `region`,
    /// `access_key_id`, `secret_access_key`, `allow_http` (S3); the usual
    /// environment variables (AWS_*, GOOGLE_*, AZURE_*) apply too.
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// Close a table's file after this many rows.
    #[serde(default = "default_roll_rows")]
    pub roll_rows: u64,
    /// ... or once it reaches about this size (e.g. "128MB").
    #[serde(default = "default_roll_bytes")]
    pub roll_bytes: ByteSize,
    /// ... or when its first row is this old (e.g. "60s", "5m"). This bounds
    /// how far the acknowledged position may trail the data written.
    #[serde(default = "default_roll_interval")]
    pub roll_interval: Interval,
    #[serde(default)]
    pub compression: Compression,
    /// zstd level (1..=22), default 1.
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// `"date"`: Hive-style `date=YYYY-MM-DD` directories by commit date (UTC).
    #[serde(default)]
    pub partition_by: PartitionBy,
    /// Rows per Parquet row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Memory budget for buffered rows and open row groups over all tables.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ByteSize,
    /// Local directory for files on their way to an object store (default:
    /// the system temp dir).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
}

fn default_roll_rows() -> u64 {
    1_000_000
}
fn default_roll_bytes() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_roll_interval() -> Interval {
    Interval(Duration::from_secs(60))
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
fn default_memory_limit() -> ByteSize {
    ByteSize(256 << 20)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionBy {
    #[default]
    None,
    Date,
}

pub struct ParquetSink {
    store: Store,
    props: WriterProperties,
    partition_by_date: bool,
    roll_rows: u64,
    roll_bytes: usize,
    roll_interval: Duration,
    memory_limit: usize,
    /// Bytes of the files this instance committed.
    bytes: u64,
    tables: HashMap<String, TableWriter>,
    /// Per table, the last change held by committed files; the snapshot
    /// progress stored in the manifests; the last position written.
    delivered: Delivered,
    /// Rolled and staged, waiting for the next manifest.
    pending: Vec<CommittedFile>,
    pending_marks: BTreeMap<String, Position>,
    sequence: u64,
    next_file: u64,
    /// Inside a snapshot chunk's group: files do not roll until its Commit.
    /// A chunk's rows get new positions when it is read again, so a file
    /// committed with half a chunk would leave the other half to be read
    /// again next to rows already delivered.
    in_snapshot_chunk: bool,
    durable: Durable,
}

impl ParquetConfig {
    /// The settings checks `build()` makes, without opening the store.
    pub fn validate(&self) -> Result<(), SinkError> {
        if let (Compression::Zstd, Some(level)) = (self.compression, self.compression_level) {
            ZstdLevel::try_new(level).map_err(|e| {
                SinkError::Data(format!("sink {:?}: compression_level = {level}: {e}; use 1..=22", self.name))
            })?;
        }
        Ok(())
    }

    /// Opens the store and recovers: completes an interrupted commit, deletes
    /// uncommitted files, and loads the per-table positions to skip. Blocks
    /// on `runtime` for object stores: call it from a thread outside it.
    pub fn open(&self, checkpoint: Option<&Checkpoint>, runtime: Handle) -> Result<ParquetSink, SinkError> {
        let hint = match checkpoint {
            None | Some(Checkpoint::Null) => None,
            Some(c) => Some(
                c.get("manifest")
                    .and_then(|m| m.as_u64())
                    .ok_or_else(|| SinkError::Checkpoint(format!("expected {{\"manifest\": N}}, found {c}")))?,
            ),
        };
        let spool = self.spool_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("outflow-spool-{}-{}", self.name, std::process::id()))
        });
        let options: Vec<(String, String)> = self.storage_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let store = Store::open(&self.path, &options, spool, runtime)?;
        let latest = manifest::latest(&store, hint.filter(|n| *n > 0))?;
        if let Some(m) = &latest {
            manifest::roll_forward(&store, m)?;
        }
        let removed = store.clear_staging()?;
        if removed > 0 {
            tracing::info!(files = removed, "parquet: deleted uncommitted files");
        }
        let latest = latest.unwrap_or_default();
        if let Some(m) = latest.position.as_deref() {
            tracing::info!(manifest = latest.sequence, position = m, "parquet: resuming after the last commit");
        }
        let compression = match self.compression {
            Compression::Zstd => {
                let level = ZstdLevel::try_new(self.compression_level.unwrap_or(1))
                    .map_err(|e| SinkError::Data(format!("compression_level: {e}; use 1..=22")))?;
                PqCompression::ZSTD(level)
            }
            Compression::Snappy => PqCompression::SNAPPY,
            Compression::None => PqCompression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_created_by(format!("outflow {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(ParquetSink {
            delivered: Delivered::recovered(None, latest.table_positions()?, latest.snapshot.clone()),
            store,
            props,
            partition_by_date: self.partition_by == PartitionBy::Date,
            roll_rows: self.roll_rows.max(1),
            roll_bytes: self.roll_bytes.0 as usize,
            roll_interval: self.roll_interval.0,
            memory_limit: self.memory_limit.0 as usize,
            bytes: 0,
            tables: HashMap::new(),
            pending: Vec::new(),
            pending_marks: BTreeMap::new(),
            sequence: latest.sequence,
            next_file: latest.next_file,
            in_snapshot_chunk: false,
            durable: Durable::Nothing,
        })
    }
}

impl ParquetSink {
    fn settings(&self) -> FileSettings<'_> {
        FileSettings { store: &self.store, props: &self.props, partition_by_date: self.partition_by_date }
    }

    fn roll(&mut self, key: &str) -> Result<(), SinkError> {
        let Some(mut t) = self.tables.remove(key) else { return Ok(()) };
        let mut next = self.next_file;
        let result = t.roll(&self.settings(), &mut next);
        self.next_file = next;
        let (files, mark) = result?;
        if !files.is_empty() {
            tracing::debug!(table = %key, files = files.len(), "parquet: rolled");
        }
        self.pending.extend(files);
        if let Some(mark) = mark {
            self.pending_marks.insert(key.to_string(), mark);
        }
        self.tables.insert(key.to_string(), t);
        Ok(())
    }

    fn roll_due(&mut self) -> Result<(), SinkError> {
        if self.in_snapshot_chunk {
            return Ok(());
        }
        let due: Vec<String> = self
            .tables
            .values()
            .filter(|t| t.rows > 0)
            .filter(|t| {
                t.rows >= self.roll_rows
                    || t.file_bytes() >= self.roll_bytes
                    || t.since.is_some_and(|s| s.elapsed() >= self.roll_interval)
            })
            .map(|t| t.key.clone())
            .collect();
        for key in due {
            self.roll(&key)?;
        }
        Ok(())
    }

    /// Writes out the largest tables' row groups until under the budget.
    fn enforce_memory(&mut self) -> Result<(), SinkError> {
        let mut total: usize = self.tables.values().map(TableWriter::memory).sum();
        while total > self.memory_limit {
            let Some(key) =
                self.tables.values().filter(|t| t.memory() > 0).max_by_key(|t| t.memory()).map(|t| t.key.clone())
            else {
                break;
            };
            let mut t = self.tables.remove(&key).expect("present");
            let before = t.memory();
            let mut next = self.next_file;
            let result = t.spill(&self.settings(), &mut next);
            self.next_file = next;
            let after = t.memory();
            self.tables.insert(key.clone(), t);
            result?;
            tracing::debug!(table = %key, freed = before.saturating_sub(after), "parquet: memory limit reached, wrote row groups");
            if after >= before {
                break;
            }
            total = total - before + after;
        }
        Ok(())
    }

    /// Writes the manifest for the staged files, then moves them into place.
    fn commit(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut tables: BTreeMap<String, String> = BTreeMap::new();
        for (t, p) in self.delivered.tables().chain(&self.pending_marks) {
            tables.insert(t.clone(), p.to_string());
        }
        let position = self.pending_marks.values().max().map(|p| p.to_string());
        let manifest = Manifest {
            sequence: self.sequence + 1,
            position,
            tables,
            files: std::mem::take(&mut self.pending),
            next_file: self.next_file,
            committed_at: now_rfc3339(),
            snapshot: Some(self.delivered.committed_record().clone()),
        };
        let bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
        let rel = manifest_path(manifest.sequence);
        if !self.store.create(&rel, bytes)? {
            return Err(SinkError::Data(format!(
                "{} already exists: another writer commits to this path; give every parquet sink its own path",
                self.store.display(&rel)
            )));
        }
        manifest::roll_forward(&self.store, &manifest)?;
        self.sequence = manifest.sequence;
        self.bytes += manifest.files.iter().map(|f| f.bytes).sum::<u64>();
        for (t, p) in std::mem::take(&mut self.pending_marks) {
            self.delivered.table_committed(t, p);
        }
        tracing::debug!(manifest = self.sequence, files = manifest.files.len(), "parquet: committed");
        Ok(())
    }

    fn update_durable(&mut self) {
        let open = self.tables.values().filter(|t| t.rows > 0);
        self.durable = durable_before(open.map(|t| t.before_first.as_ref()));
    }

    fn checkpoint(&self) -> Checkpoint {
        json!({ "manifest": self.sequence })
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        for item in items {
            match item {
                StreamItem::Change(ev) => {
                    let key = ev.table.id.to_string().replace('%', "%25").replace('/', "%2F");
                    if self.delivered.table_holds(&key, &ev.position) {
                        // Already in a committed file (the offset write lagged the manifest).
                    } else {
                        if self.tables.get(&key).is_some_and(|t| {
                            t.schema.version != ev.table.version || t.schema.columns != ev.table.columns
                        }) {
                            self.roll(&key)?;
                            self.tables.remove(&key);
                        }
                        let mut next = self.next_file;
                        let t = self.tables.entry(key.clone()).or_insert_with(|| TableWriter::new(ev.table.clone()));
                        let settings = FileSettings {
                            store: &self.store,
                            props: &self.props,
                            partition_by_date: self.partition_by_date,
                        };
                        let result = t.append(ev, self.delivered.written(), &settings, &mut next);
                        self.next_file = next;
                        result?;
                        self.in_snapshot_chunk |= ev.source.snapshot;
                        if t.rows >= self.roll_rows && !self.in_snapshot_chunk {
                            self.roll(&key)?;
                        }
                    }
                }
                StreamItem::SchemaChange(SchemaChange { schema, .. }) => {
                    let key = schema.id.to_string().replace('%', "%25").replace('/', "%2F");
                    if self.tables.get(&key).is_some_and(|t| t.schema.version != schema.version) {
                        self.roll(&key)?;
                        self.tables.remove(&key);
                    }
                }
                StreamItem::Commit { .. } if self.in_snapshot_chunk => {
                    self.in_snapshot_chunk = false;
                    self.roll_due()?;
                }
                _ => {}
            }
            self.delivered.note(item);
        }
        self.roll_due()?;
        self.enforce_memory()
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        self.roll_due()?;
        // What this commit makes durable depends only on the tables still
        // open, so it is known before the manifest that records it.
        self.update_durable();
        self.delivered.commit_record(&self.durable);
        self.commit()?;
        Ok(self.checkpoint())
    }

    fn finish(&mut self) -> Result<Checkpoint, SinkError> {
        let keys: Vec<String> = self.tables.keys().cloned().collect();
        for key in keys {
            self.roll(&key)?;
        }
        self.flush()
    }

    fn durable(&self) -> Durable {
        self.durable.clone()
    }

    fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        self.delivered.recovered_snapshot()
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn exactly_once(&self) -> bool {
        true
    }
}

/// The current UTC time as RFC 3339 (seconds).
fn now_rfc3339() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = outflow_model::value::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests;
