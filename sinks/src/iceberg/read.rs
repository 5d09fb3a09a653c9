//! Reading back what an upsert table holds: the live data files and
//! position-delete files of its current snapshot, a data file's columns by
//! Iceberg field id (all rows, or only some row positions), and a
//! position-delete file's `(file_path, pos)` entries.
//!
//! Columns are found by the field id iceberg's writer puts on every Parquet
//! column (`PARQUET:field_id`), never by name, so files written under an
//! older schema read correctly: a field the file lacks reads as nulls.
//! Reads are ranged (iceberg's `ArrowFileReader` over the table's file I/O),
//! so fetching one row of a large file reads that row's pages, not the file.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use futures::TryStreamExt;
use iceberg::arrow::ArrowFileReader;
use iceberg::spec::{DataContentType, DataFile};
use iceberg::table::Table;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask, PARQUET_FIELD_ID_META_KEY};

use super::ice_error;
use crate::SinkError;

/// Field id of a position-delete file's `file_path` column (Iceberg spec).
pub const DELETE_FILE_PATH_ID: i32 = 2147483546;
/// Field id of a position-delete file's `pos` column (Iceberg spec).
pub const DELETE_POS_ID: i32 = 2147483545;

/// The files of a table's current snapshot.
#[derive(Default)]
pub struct LiveFiles {
    pub data: Vec<DataFile>,
    pub position_deletes: Vec<DataFile>,
}

/// Lists the live files of the table's current snapshot. Equality deletes
/// (never written by outflow) are refused: the rows they hide are unknown.
pub async fn live_files(table: &Table) -> Result<LiveFiles, SinkError> {
    let what = format!("cannot list the files of iceberg table {}", table.identifier());
    let mut out = LiveFiles::default();
    let Some(snapshot) = table.metadata().current_snapshot() else { return Ok(out) };
    let list = table.manifest_list_reader(snapshot).load().await.map_err(|e| ice_error(&what, &e))?;
    for manifest in list.entries() {
        let manifest = manifest.load_manifest(table.file_io()).await.map_err(|e| ice_error(&what, &e))?;
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            match entry.content_type() {
                DataContentType::Data => out.data.push(entry.data_file().clone()),
                DataContentType::PositionDeletes => out.position_deletes.push(entry.data_file().clone()),
                DataContentType::EqualityDeletes => {
                    return Err(SinkError::fatal(
                        format!(
                            "iceberg table {} holds an equality-delete file ({}), which outflow cannot index",
                            table.identifier(),
                            entry.file_path()
                        ),
                        "rewrite the table without equality deletes (e.g. Spark rewrite_data_files), or give the sink another namespace",
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// The columns `field_ids` of the Parquet file at `path`, in that order
/// (null arrays of `types` for fields the file does not have), for every
/// row or only the rows at `positions` (ascending, distinct).
pub async fn read_columns(
    table: &Table,
    path: &str,
    field_ids: &[i32],
    types: &[DataType],
    positions: Option<&[u64]>,
) -> Result<Vec<ArrayRef>, SinkError> {
    let what = format!("cannot read {path} of iceberg table {}", table.identifier());
    let parquet_error = |e: parquet::errors::ParquetError| {
        SinkError::fatal(format!("{what}: {e}"), "check that the warehouse holds the table's files unchanged")
    };
    let input = table.file_io().new_input(path).map_err(|e| ice_error(&what, &e))?;
    let meta = input.metadata().await.map_err(|e| ice_error(&what, &e))?;
    let reader = input.reader().await.map_err(|e| ice_error(&what, &e))?;
    let builder =
        ParquetRecordBatchStreamBuilder::new(ArrowFileReader::new(meta, reader)).await.map_err(parquet_error)?;
    let file_ids: Vec<Option<i32>> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.metadata().get(PARQUET_FIELD_ID_META_KEY).and_then(|id| id.parse().ok()))
        .collect();
    // Root index of each wanted field in the file, if the file has it.
    let roots: Vec<Option<usize>> = field_ids.iter().map(|id| file_ids.iter().position(|f| *f == Some(*id))).collect();
    let mut present: Vec<usize> = roots.iter().flatten().copied().collect();
    present.sort_unstable();
    let total = builder.metadata().file_metadata().num_rows() as usize;
    let rows = positions.map_or(total, <[u64]>::len);
    let mask = ProjectionMask::roots(builder.parquet_schema(), present.iter().copied());
    let mut builder = builder.with_projection(mask);
    if let Some(positions) = positions {
        let ranges = positions.iter().map(|&p| p as usize..p as usize + 1);
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(ranges, total));
    }
    let batches: Vec<RecordBatch> =
        builder.build().map_err(parquet_error)?.try_collect().await.map_err(parquet_error)?;
    let mut out = Vec::with_capacity(field_ids.len());
    for (root, ty) in roots.iter().zip(types) {
        let array = match root {
            None => arrow_array::new_null_array(ty, rows),
            Some(root) => {
                // The projected batch holds the present roots in file order.
                let at = present.iter().position(|p| p == root).expect("projected above");
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(at).as_ref()).collect();
                let joined = if parts.is_empty() {
                    arrow_array::new_empty_array(ty)
                } else {
                    arrow_select::concat::concat(&parts)
                        .map_err(|e| SinkError::Data(format!("{what}: cannot join its record batches: {e}")))?
                };
                if joined.data_type() == ty {
                    joined
                } else {
                    super::schema::conform(joined, ty).map_err(|e| SinkError::Data(format!("{what}: {e}")))?
                }
            }
        };
        out.push(array);
    }
    Ok(out)
}

/// The `(file_path, pos)` entries of a position-delete file, grouped by
/// data file path.
pub async fn read_position_deletes(table: &Table, file: &DataFile) -> Result<HashMap<String, Vec<u64>>, SinkError> {
    let columns = read_columns(
        table,
        file.file_path(),
        &[DELETE_FILE_PATH_ID, DELETE_POS_ID],
        &[DataType::Utf8, DataType::Int64],
        None,
    )
    .await?;
    let bad = || {
        SinkError::fatal(
            format!(
                "position-delete file {} of iceberg table {} has no file_path or pos",
                file.file_path(),
                table.identifier()
            ),
            "check that the warehouse holds the table's files unchanged",
        )
    };
    let (paths, pos) = (columns[0].as_string::<i32>(), columns[1].as_primitive::<arrow_array::types::Int64Type>());
    if paths.null_count() > 0 || pos.null_count() > 0 {
        return Err(bad());
    }
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for (path, pos) in paths.iter().zip(pos.iter()) {
        let (Some(path), Some(pos)) = (path, pos) else { return Err(bad()) };
        out.entry(path.to_string()).or_default().push(pos as u64);
    }
    Ok(out)
}
