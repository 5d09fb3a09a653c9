//! One table's uncommitted output: row buffers and open Parquet files, one
//! per partition (`date=YYYY-MM-DD` when partitioning by event date).
//!
//! Rows are buffered as values (at most [`BATCH_ROWS`] per partition), turned
//! into Arrow record batches and handed to an `ArrowWriter`, which encodes
//! them into the open row group; [`TableWriter::spill`] forces row groups out
//! to the file when the sink's memory budget is reached. Rolling closes every
//! open file of the table at once (so a table's committed files always hold
//! a prefix of its changes, which is what makes the per-table high-water mark
//! in the manifest exact) and stages them in the store.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Instant;

use ::parquet::arrow::ArrowWriter;
use ::parquet::file::properties::WriterProperties;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use outflow_model::value::civil_from_days;
use outflow_model::{ChangeEvent, Position, TableSchema, Value};

use super::manifest::CommittedFile;
use super::store::Store;
use super::types::{build_array, column_field, kind_of, Kind};
use crate::columnar::rows::{RowBuffer, META_COLUMNS};
use crate::SinkError;

/// Rows buffered per partition before they become a record batch.
pub const BATCH_ROWS: usize = 8192;

pub struct TableWriter {
    /// `schema.table`, also the table's directory.
    pub key: String,
    pub schema: Arc<TableSchema>,
    arrow: SchemaRef,
    kinds: Vec<Kind>,
    parts: BTreeMap<String, Part>,
    /// Rows not yet committed, and when the first of them arrived.
    pub rows: u64,
    pub since: Option<Instant>,
    /// The stream position just before this table's first uncommitted row:
    /// everything up to it is committed as far as this table is concerned.
    pub before_first: Option<Position>,
    last_position: Option<Position>,
}

struct Part {
    /// `date=YYYY-MM-DD/`, or empty when not partitioning.
    dir: String,
    buf: RowBuffer,
    file: Option<OpenFile>,
}

struct OpenFile {
    name: String,
    dest: String,
    writer: ArrowWriter<BufWriter<File>>,
    rows: u64,
    first_position: String,
    last_position: String,
}

/// What a table needs from the sink to open and write files.
pub struct FileSettings<'a> {
    pub store: &'a Store,
    pub props: &'a WriterProperties,
    pub partition_by_date: bool,
}

impl TableWriter {
    pub fn new(schema: Arc<TableSchema>) -> TableWriter {
        let kinds: Vec<Kind> = schema.columns.iter().map(kind_of).collect();
        let mut fields: Vec<Field> = schema.columns.iter().zip(&kinds).map(|(c, k)| column_field(c, k)).collect();
        fields.extend(RowBuffer::meta_fields());
        let mut meta = std::collections::HashMap::new();
        meta.insert("outflow.table".to_string(), schema.id.to_string());
        meta.insert("outflow.schema_version".to_string(), schema.version.to_string());
        TableWriter {
            key: table_dir(&schema),
            arrow: Arc::new(Schema::new_with_metadata(fields, meta)),
            kinds,
            schema,
            parts: BTreeMap::new(),
            rows: 0,
            since: None,
            before_first: None,
            last_position: None,
        }
    }

    /// Buffers one change; `before` is the stream position preceding it.
    pub fn append(
        &mut self,
        ev: &ChangeEvent,
        before: Option<&Position>,
        files: &FileSettings<'_>,
        next_file: &mut u64,
    ) -> Result<(), SinkError> {
        if self.rows == 0 {
            self.since = Some(Instant::now());
            self.before_first = before.cloned();
        }
        let partition = if files.partition_by_date { date_partition(ev.source.commit_ts_us) } else { String::new() };
        let ncols = self.schema.columns.len();
        let part = self.parts.entry(partition).or_insert_with_key(|p| Part {
            dir: if p.is_empty() { String::new() } else { format!("{p}/") },
            buf: RowBuffer::default(),
            file: None,
        });
        if part.buf.cols.len() != ncols {
            part.buf = RowBuffer::new(ncols, BATCH_ROWS);
        }
        part.buf.push(ev, ncols);
        self.rows += 1;
        self.last_position = Some(ev.position.clone());
        if part.buf.len() >= BATCH_ROWS {
            let (key, version) = (self.key.clone(), self.schema.version);
            write_buffer(part, &self.arrow, &self.kinds, &self.schema, (&key, version), files, next_file)?;
        }
        Ok(())
    }

    /// Bytes held in memory: buffered values plus encoded, unflushed row groups.
    pub fn memory(&self) -> usize {
        self.parts.values().map(|p| p.buf.bytes + p.file.as_ref().map_or(0, |f| f.writer.memory_size())).sum()
    }

    /// Approximate size of the table's open files (written plus buffered).
    pub fn file_bytes(&self) -> usize {
        self.parts
            .values()
            .map(|p| {
                p.buf.bytes / 4 + p.file.as_ref().map_or(0, |f| f.writer.bytes_written() + f.writer.in_progress_size())
            })
            .sum()
    }

    /// Moves buffered rows into the files and ends their row groups, so the
    /// encoded data leaves memory.
    pub fn spill(&mut self, files: &FileSettings<'_>, next_file: &mut u64) -> Result<(), SinkError> {
        let (key, version) = (self.key.clone(), self.schema.version);
        for part in self.parts.values_mut() {
            write_buffer(part, &self.arrow, &self.kinds, &self.schema, (&key, version), files, next_file)?;
            if let Some(f) = &mut part.file {
                f.writer.flush().map_err(|e| parquet_err(&f.name, e))?;
            }
        }
        Ok(())
    }

    /// Closes every open file, stages it, and returns what to commit and the
    /// table's new high-water mark. The table is empty afterwards.
    pub fn roll(
        &mut self,
        files: &FileSettings<'_>,
        next_file: &mut u64,
    ) -> Result<(Vec<CommittedFile>, Option<Position>), SinkError> {
        let (key, version) = (self.key.clone(), self.schema.version);
        let mut out = Vec::new();
        for (_, mut part) in std::mem::take(&mut self.parts) {
            write_buffer(&mut part, &self.arrow, &self.kinds, &self.schema, (&key, version), files, next_file)?;
            let Some(f) = part.file.take() else { continue };
            let buffered = f.writer.into_inner().map_err(|e| parquet_err(&f.name, e))?;
            let file = buffered.into_inner().map_err(|e| {
                SinkError::io(format!("cannot write {}", files.store.local_tmp(&f.name).display()), e.into_error())
            })?;
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            drop(file);
            files.store.stage(&f.name)?;
            out.push(CommittedFile {
                path: f.dest,
                staged: format!("_outflow/tmp/{}", f.name),
                table: self.schema.id.to_string(),
                schema_version: version,
                rows: f.rows,
                bytes,
                first_position: f.first_position,
                last_position: f.last_position,
            });
        }
        self.rows = 0;
        self.since = None;
        self.before_first = None;
        Ok((out, self.last_position.take()))
    }
}

/// Turns a partition's buffered rows into a record batch and writes it,
/// opening the partition's file first if needed.
fn write_buffer(
    part: &mut Part,
    arrow: &SchemaRef,
    kinds: &[Kind],
    schema: &TableSchema,
    (key, version): (&str, u32),
    files: &FileSettings<'_>,
    next_file: &mut u64,
) -> Result<(), SinkError> {
    let buf = std::mem::take(&mut part.buf);
    let rows = buf.len();
    if rows == 0 {
        return Ok(());
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(kinds.len() + META_COLUMNS.len());
    for ((col, kind), values) in schema.columns.iter().zip(kinds).zip(&buf.cols) {
        let refs: Vec<&Value> = values.iter().collect();
        let array = build_array(kind, &refs).map_err(|m| {
            SinkError::Data(format!(
                "column {:?} of {} (type {}) holds {} which does not fit Arrow {:?}; this is a bug in outflow's type mapping, please report it",
                col.name, schema.id, col.type_name, m.value, m.kind
            ))
        })?;
        arrays.push(array);
    }
    arrays.extend(buf.meta_arrays(schema));
    let batch = RecordBatch::try_new(arrow.clone(), arrays)
        .map_err(|e| SinkError::Data(format!("cannot assemble a record batch for {}: {e}", schema.id)))?;

    if part.file.is_none() {
        let seq = *next_file;
        *next_file += 1;
        let name = format!("{seq:010}.parquet");
        let dest = format!("{key}/{}part-{seq:010}-v{version}.parquet", part.dir);
        let path = files.store.local_tmp(&name);
        let file = File::create(&path).map_err(|e| SinkError::io(format!("cannot create {}", path.display()), e))?;
        let writer =
            ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), arrow.clone(), Some(files.props.clone()))
                .map_err(|e| parquet_err(&name, e))?;
        part.file = Some(OpenFile {
            name,
            dest,
            writer,
            rows: 0,
            first_position: buf.position[0].clone(),
            last_position: String::new(),
        });
    }
    let f = part.file.as_mut().expect("opened above");
    f.writer.write(&batch).map_err(|e| parquet_err(&f.name, e))?;
    f.rows += rows as u64;
    f.last_position = buf.position[rows - 1].clone();
    part.buf = RowBuffer::new(kinds.len(), BATCH_ROWS);
    Ok(())
}

/// `date=YYYY-MM-DD` of a commit time in microseconds since the epoch (UTC).
pub fn date_partition(ts_us: i64) -> String {
    let (y, m, d) = civil_from_days(ts_us.div_euclid(86_400_000_000));
    format!("date={y:04}-{m:02}-{d:02}")
}

/// A table's directory name: `schema.table`, with `/` (and `%`) escaped.
fn table_dir(schema: &TableSchema) -> String {
    schema.id.to_string().replace('%', "%25").replace('/', "%2F")
}

fn parquet_err(name: &str, e: ::parquet::errors::ParquetError) -> SinkError {
    SinkError::Data(format!("cannot write parquet file {name}: {e}"))
}
