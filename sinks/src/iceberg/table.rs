//! One Iceberg table's uncommitted output: buffered rows, the open data
//! file writer, data files closed but not yet committed, and the commit
//! (one `fast_append` whose snapshot summary carries the table's offset).
//! Upsert tables ([`super::upsert`]) share the writer, the schema changes
//! and the counters, and add their key index and their own commit.
//!
//! An update that changes the row's key is written as two rows at the
//! update's position: `d` with the before-image (the old key), then `u`, so
//! replaying the log per key (ordered by position, `d` first) ends the old
//! key's row.
//!
//! Rows are buffered as values (at most [`BATCH_ROWS`]), turned into a
//! record batch shaped like the table's current Iceberg schema and handed to
//! iceberg's Parquet data file writer. A new source shape closes the open
//! writer first (its files stay pending, readable through their field ids),
//! then changes the table's schema ([`TableState::evolve`]), then writes on
//! with a writer of the new schema.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::Catalog;
use outflow_model::{ChangeEvent, Op, Position, TableSchema};
use parquet::file::properties::WriterProperties;

use super::commit::Cas;
use super::schema::{plan, record_batch, schema_diff, wanted_columns, Slot};
use super::upsert::{key_columns, Upsert};
use super::{ice_error, one_line, Mode};
use crate::parquet::rows::RowBuffer;
use crate::SinkError;

/// Rows buffered before they become a record batch.
pub const BATCH_ROWS: usize = 8192;

type Writer = DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// What every table's writer shares.
pub struct WriteSettings {
    pub props: WriterProperties,
    pub target_file_size: usize,
    /// Prefix of every data file this sink instance writes (unique per run,
    /// so a new run never overwrites a file an earlier run committed).
    pub file_prefix: String,
    pub mode: Mode,
}

pub struct TableState {
    /// `schema.table` of the source table.
    pub key: String,
    pub table: Table,
    /// The source shape rows are buffered in.
    pub(super) source: Arc<TableSchema>,
    pub(super) arrow: ArrowSchemaRef,
    pub(super) slots: Vec<Slot>,
    pub(super) buf: RowBuffer,
    pub(super) writer: Option<Writer>,
    /// The path of the open writer's current file (upsert tables).
    pub(super) open_file: Option<String>,
    pub(super) pending: Vec<DataFile>,
    /// `mode = "upsert"`: the key index and the changes not yet applied.
    pub(super) upsert: Option<Upsert>,
    /// Rows not yet committed, and when the first of them arrived.
    pub rows: u64,
    pub since: Option<Instant>,
    /// The stream position just before the first uncommitted row.
    pub before_first: Option<Position>,
    /// Files written so far (for unique names across writers of one run).
    pub(super) files: u64,
    pub bytes: u64,
}

impl TableState {
    pub fn new(
        key: String,
        table: Table,
        source: Arc<TableSchema>,
        settings: &WriteSettings,
    ) -> Result<TableState, SinkError> {
        let (arrow, slots) = shape(&table, &source)?;
        let upsert = (settings.mode == Mode::Upsert).then(|| Upsert::new(key_columns(&source, &arrow, &slots)));
        Ok(TableState {
            key,
            table,
            source,
            arrow,
            slots,
            buf: RowBuffer::default(),
            writer: None,
            open_file: None,
            pending: Vec::new(),
            upsert,
            rows: 0,
            since: None,
            before_first: None,
            files: 0,
            bytes: 0,
        })
    }

    /// Whether rows of this source shape need a schema check first.
    pub fn shape_differs(&self, source: &TableSchema) -> bool {
        self.source.version != source.version || self.source.columns != source.columns
    }

    /// Buffers one change; `before` is the stream position preceding it.
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
        if self.upsert.is_some() {
            self.rows += 1;
            return self.add_upsert(ev, settings).await;
        }
        if key_changed(ev) {
            // The old key's row ends here: a `d` row with the before-image,
            // then the update's row, both at the update's position.
            let delete = ChangeEvent { op: Op::Delete, after: None, ..ev.clone() };
            self.push_row(&delete, settings).await?;
        }
        self.push_row(ev, settings).await
    }

    /// Buffers one change as a row, written once [`BATCH_ROWS`] are buffered.
    pub(super) async fn push_row(&mut self, ev: &ChangeEvent, settings: &WriteSettings) -> Result<(), SinkError> {
        let ncols = self.source.columns.len();
        if self.buf.cols.len() != ncols {
            self.buf = RowBuffer::new(ncols, BATCH_ROWS);
        }
        self.buf.push(ev, ncols);
        if self.upsert.is_none() {
            self.rows += 1;
        }
        if self.buf.len() >= BATCH_ROWS {
            self.write_buffer(settings).await?;
        }
        Ok(())
    }

    async fn write_buffer(&mut self, settings: &WriteSettings) -> Result<(), SinkError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let batch = record_batch(&self.buf, &self.arrow, &self.slots, &self.source)?;
        self.buf = RowBuffer::new(self.source.columns.len(), BATCH_ROWS);
        if self.writer.is_none() {
            self.writer = Some(self.open_writer(settings).await?);
        }
        let writer = self.writer.as_mut().expect("opened above");
        writer.write(batch).await.map_err(|e| ice_error(&format!("cannot write a data file of {}", self.key), &e))
    }

    pub(super) async fn open_writer(&mut self, settings: &WriteSettings) -> Result<Writer, SinkError> {
        let metadata = self.table.metadata();
        let locations = DefaultLocationGenerator::new(metadata)
            .map_err(|e| ice_error(&format!("cannot place data files of {}", self.key), &e))?;
        self.files += 1;
        let names = DefaultFileNameGenerator::new(
            format!("{}-{}", settings.file_prefix, self.files),
            None,
            DataFileFormat::Parquet,
        );
        let parquet = ParquetWriterBuilder::new(settings.props.clone(), metadata.current_schema().clone());
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            settings.target_file_size,
            self.table.file_io().clone(),
            locations,
            names,
        );
        DataFileWriterBuilder::new(rolling)
            .build(None)
            .await
            .map_err(|e| ice_error(&format!("cannot open a data file writer for {}", self.key), &e))
    }

    /// Writes the buffered rows and closes the open files; they wait in
    /// `pending` for the next commit.
    pub(super) async fn close_files(&mut self, settings: &WriteSettings) -> Result<(), SinkError> {
        self.write_buffer(settings).await?;
        self.open_file = None;
        if let Some(mut w) = self.writer.take() {
            let files =
                w.close().await.map_err(|e| ice_error(&format!("cannot close a data file of {}", self.key), &e))?;
            self.pending.extend(files);
        }
        Ok(())
    }

    /// Makes the table's schema hold rows of `source`'s shape: closes the
    /// open files, then drops columns the source no longer has (or whose
    /// type changed) and adds the new ones, one schema commit each.
    pub async fn evolve(
        &mut self,
        source: Arc<TableSchema>,
        catalog: &dyn Catalog,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
        if self.upsert.is_some() {
            self.apply_upserts(settings).await?;
        }
        self.close_files(settings).await?;
        let wanted = wanted_columns(&source.columns, settings.mode);
        let (drop, add) = schema_diff(self.table.metadata().current_schema(), &wanted);
        if !drop.is_empty() {
            tracing::info!(table = %self.key, columns = ?drop, "iceberg: dropping columns");
            let tx = Transaction::new(&self.table);
            let action = drop.iter().fold(tx.update_schema(), |a, name| a.delete_column(name));
            self.commit_schema(action.apply(tx), catalog).await?;
        }
        if !add.is_empty() {
            tracing::info!(table = %self.key, columns = ?add.iter().map(|w| &w.name).collect::<Vec<_>>(), "iceberg: adding columns");
            let tx = Transaction::new(&self.table);
            let action = add.into_iter().fold(tx.update_schema(), |a, w| {
                a.add_column(AddColumn::builder().name(w.name).field_type(w.ty).required(false).build())
            });
            self.commit_schema(action.apply(tx), catalog).await?;
        }
        let (arrow, slots) = shape(&self.table, &source)?;
        if let Some(up) = self.upsert.as_mut() {
            up.reshape(key_columns(&source, &arrow, &slots), &self.key)?;
        }
        self.arrow = arrow;
        self.slots = slots;
        self.source = source;
        self.buf = RowBuffer::default();
        Ok(())
    }

    async fn commit_schema(
        &mut self,
        tx: iceberg::Result<Transaction>,
        catalog: &dyn Catalog,
    ) -> Result<(), SinkError> {
        let what = format!("cannot change the schema of iceberg table {}", self.table.identifier());
        let tx = tx.map_err(|e| ice_error(&what, &e))?;
        self.table = tx.commit(catalog).await.map_err(|e| ice_error(&what, &e))?;
        Ok(())
    }

    /// Commits everything written since the last commit as one snapshot
    /// whose summary carries `summary` (the sink's offset for this table):
    /// upsert tables through [`TableState::commit_upsert`], change-log
    /// tables with `fast_append`.
    pub async fn commit(
        &mut self,
        catalog: &dyn Catalog,
        cas: Option<&Cas>,
        summary: HashMap<String, String>,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
        if self.upsert.is_some() {
            let cas = cas.expect("upsert sinks open the catalog for commits");
            return self.commit_upsert(catalog, cas, summary, settings).await;
        }
        self.close_files(settings).await?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let files = std::mem::take(&mut self.pending);
        let bytes: u64 = files.iter().map(|f| f.file_size_in_bytes()).sum();
        let nfiles = files.len();
        let what = format!("cannot commit to iceberg table {}", self.table.identifier());
        let tx = Transaction::new(&self.table);
        let action =
            tx.fast_append().with_check_duplicate(false).add_data_files(files).set_snapshot_properties(summary);
        let tx = action.apply(tx).map_err(|e| ice_error(&what, &e))?;
        self.table = tx.commit(catalog).await.map_err(|e| ice_error(&what, &e))?;
        tracing::debug!(table = %self.key, files = nfiles, rows = self.rows, "iceberg: committed");
        self.bytes += bytes;
        self.rows = 0;
        self.since = None;
        self.before_first = None;
        Ok(())
    }
}

/// Whether an update moved its row to another key (the source sent the old
/// key in `before` and it differs from the new one).
fn key_changed(ev: &ChangeEvent) -> bool {
    let (Op::Update, Some(before), Some(after)) = (ev.op, &ev.before, &ev.after) else { return false };
    let mut keys = ev.table.key_indexes().peekable();
    keys.peek().is_some() && keys.any(|i| before.get(i) != after.get(i))
}

/// The table's Arrow schema (with field ids) and where each field's values
/// come from for rows of `source`'s shape.
fn shape(table: &Table, source: &TableSchema) -> Result<(ArrowSchemaRef, Vec<Slot>), SinkError> {
    let arrow = schema_to_arrow_schema(table.metadata().current_schema()).map_err(|e| {
        SinkError::Data(format!(
            "iceberg table {} has a schema outflow cannot write: {}",
            table.identifier(),
            one_line(&e)
        ))
    })?;
    let arrow = Arc::new(arrow);
    let slots = plan(&arrow, source);
    Ok((arrow, slots))
}
