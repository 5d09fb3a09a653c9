//! One Iceberg table's data files on their way to a commit: the rows
//! buffered in the source's shape, the open data file writer, and the files
//! closed but not yet committed — what both modes write through
//! ([`super::state`] for change logs, [`super::upsert`] for the current row
//! per key).
//!
//! Rows are buffered as values (at most [`BATCH_ROWS`]), turned into a
//! record batch shaped like the table's current Iceberg schema and handed to
//! iceberg's Parquet data file writer. A new source shape closes the open
//! writer first (its files stay pending, readable through their field ids),
//! then changes the table's schema ([`DataFiles::reshape`]), then writes on
//! with a writer of the new schema.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{CurrentFileStatus, IcebergWriter, IcebergWriterBuilder};
use iceberg::Catalog;
use outflow_model::{ChangeEvent, TableSchema};
use parquet::file::properties::WriterProperties;

use super::schema::{plan, record_batch, schema_diff, wanted_columns, Slot};
use super::{ice_error, one_line, Mode};
use crate::columnar::rows::RowBuffer;
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

pub struct DataFiles {
    /// `schema.table` of the source table.
    pub key: String,
    pub table: Table,
    /// The source shape rows are buffered in.
    pub source: Arc<TableSchema>,
    pub arrow: ArrowSchemaRef,
    pub slots: Vec<Slot>,
    buf: RowBuffer,
    writer: Option<Writer>,
    /// The path of the open writer's current file (upsert tables).
    pub open_file: Option<String>,
    /// Closed, waiting for the next commit.
    pub pending: Vec<DataFile>,
    /// Files written so far (for unique names across writers of one run).
    pub files: u64,
}

impl DataFiles {
    pub fn new(key: String, table: Table, source: Arc<TableSchema>) -> Result<DataFiles, SinkError> {
        let (arrow, slots) = shape(&table, &source)?;
        Ok(DataFiles {
            key,
            table,
            source,
            arrow,
            slots,
            buf: RowBuffer::default(),
            writer: None,
            open_file: None,
            pending: Vec::new(),
            files: 0,
        })
    }

    /// Whether rows of this source shape need a schema check first.
    pub fn shape_differs(&self, source: &TableSchema) -> bool {
        self.source.version != source.version || self.source.columns != source.columns
    }

    /// Buffers one change as a row, written once [`BATCH_ROWS`] are buffered.
    pub async fn push_row(&mut self, ev: &ChangeEvent, settings: &WriteSettings) -> Result<(), SinkError> {
        let ncols = self.source.columns.len();
        if self.buf.cols.len() != ncols {
            self.buf = RowBuffer::new(ncols, BATCH_ROWS);
        }
        self.buf.push(ev, ncols);
        if self.buf.len() >= BATCH_ROWS {
            self.write_buffer(settings).await?;
        }
        Ok(())
    }

    /// Drops the buffered rows (the table was truncated).
    pub fn clear_buffer(&mut self) {
        self.buf = RowBuffer::new(self.source.columns.len(), 0);
    }

    async fn write_buffer(&mut self, settings: &WriteSettings) -> Result<(), SinkError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let batch = record_batch(&self.buf, &self.arrow, &self.slots, &self.source)?;
        self.buf = RowBuffer::new(self.source.columns.len(), BATCH_ROWS);
        self.write_batch(batch, settings).await.map(|_| ())
    }

    /// Writes `batch` to the open data file (opening one if needed) and
    /// returns that file's path and the position of the batch's first row
    /// in it: a batch goes whole into one file (the rolling writer rolls
    /// only between batches).
    pub async fn write_batch(
        &mut self,
        batch: RecordBatch,
        settings: &WriteSettings,
    ) -> Result<(String, u64), SinkError> {
        let n = batch.num_rows() as u64;
        if self.writer.is_none() {
            self.writer = Some(self.open_writer(settings).await?);
        }
        let writer = self.writer.as_mut().expect("opened above");
        writer.write(batch).await.map_err(|e| ice_error(&format!("cannot write a data file of {}", self.key), &e))?;
        Ok((writer.current_file_path(), writer.current_row_num() as u64 - n))
    }

    async fn open_writer(&mut self, settings: &WriteSettings) -> Result<Writer, SinkError> {
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
    pub async fn close_files(&mut self, settings: &WriteSettings) -> Result<(), SinkError> {
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
    pub async fn reshape(
        &mut self,
        source: Arc<TableSchema>,
        catalog: &dyn Catalog,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
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
