//! One Iceberg table as the sink sees it: its data files ([`super::table`]),
//! its mode — a change log, or the current row per key ([`super::upsert`])
//! — and the counters that say what is not yet committed. Each mode has its
//! own commit: `fast_append` for change logs, the hand-built snapshot with
//! position deletes for upsert tables ([`super::commit`]); either's snapshot
//! summary carries the table's offset.
//!
//! An update that changes the row's key is written to a change log as two
//! rows at the update's position: `d` with the before-image (the old key),
//! then `u`, so replaying the log per key (ordered by position, `d` first)
//! ends the old key's row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::Catalog;
use outflow_model::{ChangeEvent, Op, Position, TableSchema};

use super::commit::Cas;
use super::ice_error;
use super::table::{DataFiles, WriteSettings};
use super::keys::key_columns;
use super::upsert::Upsert;
use crate::SinkError;

/// What a table holds, and how it commits.
pub enum TableMode {
    /// A change log: every change is a row.
    Append,
    /// The current row per key: the key index with the changes not yet
    /// applied, and the catalog swap its commits go through.
    Upsert { index: Box<Upsert>, cas: Cas },
}

pub struct TableState {
    pub files: DataFiles,
    pub mode: TableMode,
    /// Changes not yet committed, and when the first of them arrived.
    pub rows: u64,
    pub since: Option<Instant>,
    /// The stream position just before the first uncommitted change.
    pub before_first: Option<Position>,
    /// Bytes of the files committed by this run.
    pub bytes: u64,
}

impl TableState {
    /// An upsert table when the sink has a catalog swap (`cas`), else a
    /// change log.
    pub fn new(
        key: String,
        table: Table,
        source: Arc<TableSchema>,
        cas: Option<&Cas>,
    ) -> Result<TableState, SinkError> {
        let files = DataFiles::new(key, table, source)?;
        let mode = match cas {
            Some(cas) => TableMode::Upsert {
                index: Box::new(Upsert::new(key_columns(&files.source, &files.arrow, &files.slots))),
                cas: cas.clone(),
            },
            None => TableMode::Append,
        };
        Ok(TableState { files, mode, rows: 0, since: None, before_first: None, bytes: 0 })
    }

    /// Whether rows of this source shape need a schema check first.
    pub fn shape_differs(&self, source: &TableSchema) -> bool {
        self.files.shape_differs(source)
    }

    /// Takes one change; `before` is the stream position preceding it.
    pub async fn append(
        &mut self,
        ev: &ChangeEvent,
        before: Option<&Position>,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
        if self.rows == 0 {
            self.since = Some(Instant::now());
            self.before_first = before.cloned();
        }
        match &mut self.mode {
            TableMode::Upsert { index, .. } => {
                self.rows += 1;
                index.add_change(&mut self.files, ev, settings).await
            }
            TableMode::Append => {
                if ev.key_changed() {
                    // The old key's row ends here: a `d` row with the
                    // before-image, then the update's row, both at the
                    // update's position.
                    let delete = ChangeEvent { op: Op::Delete, after: None, ..ev.clone() };
                    self.rows += 1;
                    self.files.push_row(&delete, settings).await?;
                }
                self.rows += 1;
                self.files.push_row(ev, settings).await
            }
        }
    }

    /// Makes the table's schema hold rows of `source`'s shape (applying an
    /// upsert table's pending changes under the old shape first).
    pub async fn evolve(
        &mut self,
        source: Arc<TableSchema>,
        catalog: &dyn Catalog,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
        if let TableMode::Upsert { index, .. } = &mut self.mode {
            index.apply(&mut self.files, settings).await?;
        }
        self.files.reshape(source, catalog, settings).await?;
        if let TableMode::Upsert { index, .. } = &mut self.mode {
            let files = &self.files;
            index.reshape(key_columns(&files.source, &files.arrow, &files.slots), &files.key)?;
        }
        Ok(())
    }

    /// Fills an upsert table's key index from the table (a no-op for
    /// change logs).
    pub async fn rebuild_index(&mut self) -> Result<(), SinkError> {
        match &mut self.mode {
            TableMode::Upsert { index, .. } => index.rebuild(&self.files).await,
            TableMode::Append => Ok(()),
        }
    }

    /// Commits everything written since the last commit as one snapshot
    /// whose summary carries `summary` (the sink's offset for this table).
    pub async fn commit(
        &mut self,
        catalog: &dyn Catalog,
        summary: HashMap<String, String>,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
        let bytes = match &mut self.mode {
            TableMode::Upsert { index, cas } => {
                index.commit(&mut self.files, catalog, cas, summary, settings, self.rows).await?
            }
            TableMode::Append => {
                self.files.close_files(settings).await?;
                if self.files.pending.is_empty() {
                    return Ok(());
                }
                let table = &self.files.table;
                let files = std::mem::take(&mut self.files.pending);
                let bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
                let nfiles = files.len();
                let what = format!("cannot commit to iceberg table {}", table.identifier());
                let tx = Transaction::new(table);
                let action =
                    tx.fast_append().with_check_duplicate(false).add_data_files(files).set_snapshot_properties(summary);
                let tx = action.apply(tx).map_err(|e| ice_error(&what, &e))?;
                self.files.table = tx.commit(catalog).await.map_err(|e| ice_error(&what, &e))?;
                tracing::debug!(table = %self.files.key, files = nfiles, rows = self.rows, "iceberg: committed");
                bytes
            }
        };
        self.bytes += bytes;
        self.rows = 0;
        self.since = None;
        self.before_first = None;
        Ok(())
    }
}
