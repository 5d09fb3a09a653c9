//! The commit of an upsert table, built by hand: new data files, one
//! position-delete file and the sink's offset become one snapshot, swapped
//! into the SQLite catalog with a compare-and-swap of the table's metadata
//! location.
//!
//! Why by hand: iceberg-rust 0.10.1's only snapshot-producing action is
//! `fast_append`, which refuses delete files, its `TransactionAction` trait
//! is crate-private and `TableCommit` cannot be built outside the crate, so
//! no public path commits a delete file. Every piece of a commit is public,
//! though, and this module assembles them the way the crate's own snapshot
//! producer does: a data manifest and a delete manifest
//! (`ManifestWriterBuilder`), a manifest list holding the parent snapshot's
//! manifests plus the new ones (`ManifestListWriter`), a `Snapshot` whose
//! summary carries the `outflow.*` keys and the standard counters, new table
//! metadata (`TableMetadataBuilder::set_branch_snapshot` on `main`) written
//! as the next metadata file, and the same `UPDATE ... WHERE
//! metadata_location = <old>` the SQL catalog's own `update_table` runs. No
//! row updated means another writer committed first: the commit fails and
//! nothing of it is visible (its files stay as orphans), like a crash
//! before the swap.
//!
//! A truncate drops every earlier manifest from the new manifest list: the
//! snapshot then holds only what was written after the truncate.
//!
//! Position deletes (Iceberg spec, format v2): a Parquet file of
//! `file_path` (field id 2147483546) and `pos` (2147483545) sorted by path
//! then position; a delete applies to data files whose data sequence number
//! is at most its own, so it can also remove a row written earlier in the
//! same commit.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{
    DataContentType, DataFile, ManifestFile, ManifestListWriter, ManifestWriterBuilder, NestedField, Operation,
    PrimitiveType, Schema, Snapshot, SnapshotSummaryCollector, Summary, TableMetadata, Type, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::writer::file_writer::location_generator::{DefaultLocationGenerator, LocationGenerator};
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};
use iceberg::{Catalog, MetadataLocation, TableIdent};
use parquet::file::properties::WriterProperties;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::ice_error;
use super::read::{DELETE_FILE_PATH_ID, DELETE_POS_ID};
use crate::SinkError;

/// The catalog's table row, swapped only if it still points at the
/// metadata file the commit was built on.
#[derive(Clone)]
pub struct Cas {
    pool: SqlitePool,
    catalog_name: String,
}

impl Cas {
    pub async fn open(catalog: &Path, catalog_name: &str) -> Result<Cas, SinkError> {
        let options = SqliteConnectOptions::new().filename(catalog).busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(|e| {
            SinkError::fatal(
                format!("cannot open the iceberg catalog {} for commits: {e}", catalog.display()),
                "catalog must be a writable SQLite file",
            )
        })?;
        Ok(Cas { pool, catalog_name: catalog_name.to_string() })
    }

    /// Points the table at `new` if it still points at `old`; false if not.
    async fn swap(&self, ident: &TableIdent, old: &str, new: &str) -> Result<bool, SinkError> {
        let done = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ?
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?
               AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
        )
        .bind(new)
        .bind(old)
        .bind(&self.catalog_name)
        .bind(ident.namespace().join("."))
        .bind(ident.name())
        .bind(old)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            SinkError::fatal(
                format!("cannot commit to iceberg table {ident}: the catalog update failed: {e}"),
                "check the catalog file (permissions, free space); outflow resumes from the table's last commit",
            )
        })?;
        Ok(done.rows_affected() == 1)
    }
}

/// What one commit adds to a table.
pub struct Delta {
    pub data: Vec<DataFile>,
    pub deletes: Option<DataFile>,
    /// The table was truncated: earlier files leave the snapshot.
    pub truncated: bool,
}

/// Writes the position-delete file `name` (in the table's data directory)
/// for `entries`, which must be sorted by path, then position.
pub async fn write_position_deletes(
    table: &Table,
    entries: &[(Arc<str>, u64)],
    name: &str,
) -> Result<DataFile, SinkError> {
    let what = format!("cannot write a position-delete file for iceberg table {}", table.identifier());
    let err = |e: iceberg::Error| ice_error(&what, &e);
    let schema = Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(DELETE_FILE_PATH_ID, "file_path", Type::Primitive(PrimitiveType::String))),
            Arc::new(NestedField::required(DELETE_POS_ID, "pos", Type::Primitive(PrimitiveType::Long))),
        ])
        .build()
        .map_err(err)?;
    let arrow = Arc::new(schema_to_arrow_schema(&schema).map_err(err)?);
    let paths = StringArray::from_iter_values(entries.iter().map(|(p, _)| p.as_ref()));
    let positions = Int64Array::from_iter_values(entries.iter().map(|(_, pos)| *pos as i64));
    let batch = RecordBatch::try_new(arrow, vec![Arc::new(paths), Arc::new(positions)])
        .map_err(|e| SinkError::Data(format!("{what}: {e}")))?;
    // One row group, one dictionary of paths (pyiceberg 0.12 lists a delete
    // file's paths from the first chunk's dictionary) and exact path bounds
    // (readers index a delete file by the paths its bounds name).
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(None)
        .set_dictionary_page_size_limit(256 << 20)
        .set_statistics_truncate_length(None)
        .set_created_by(format!("outflow {}", env!("CARGO_PKG_VERSION")))
        .build();
    let location = DefaultLocationGenerator::new(table.metadata()).map_err(err)?.generate_location(None, name);
    let output = table.file_io().new_output(&location).map_err(err)?;
    let mut writer = ParquetWriterBuilder::new(props, Arc::new(schema)).build(output).await.map_err(err)?;
    writer.write(&batch).await.map_err(err)?;
    let mut built = writer.close().await.map_err(err)?;
    let mut builder = built.pop().ok_or_else(|| SinkError::Data(format!("{what}: the writer produced no file")))?;
    builder.content(DataContentType::PositionDeletes).partition_spec_id(table.metadata().default_partition_spec_id());
    builder.build().map_err(|e| SinkError::Data(format!("{what}: {e}")))
}

/// Commits `delta` as one new snapshot of `table` whose summary carries
/// `properties`; returns the table as committed.
pub async fn commit(
    table: &Table,
    catalog: &dyn Catalog,
    cas: &Cas,
    delta: Delta,
    properties: HashMap<String, String>,
    prefix: &str,
) -> Result<Table, SinkError> {
    let ident = table.identifier();
    let what = format!("cannot commit to iceberg table {ident}");
    let err = |e: iceberg::Error| ice_error(&what, &e);
    let meta = table.metadata();
    let file_io = table.file_io();
    let snapshot_id = new_snapshot_id(meta);
    let sequence = meta.next_sequence_number();
    let parent = meta.current_snapshot();
    let schema = meta.current_schema().clone();
    let spec = meta.default_partition_spec().clone();

    let mut manifests: Vec<ManifestFile> = Vec::new();
    if let (Some(parent), false) = (parent, delta.truncated) {
        let list = table.manifest_list_reader(parent).load().await.map_err(err)?;
        manifests.extend(list.entries().iter().cloned());
    }
    let mut collector = SnapshotSummaryCollector::default();
    let has_deletes = delta.deletes.is_some();
    for (n, (files, deletes)) in
        [(delta.data, false), (delta.deletes.into_iter().collect(), true)].into_iter().enumerate()
    {
        if files.is_empty() {
            continue;
        }
        let path = format!("{}/metadata/{prefix}-{snapshot_id}-m{n}.avro", meta.location());
        let builder = ManifestWriterBuilder::new(
            file_io.new_output(&path).map_err(err)?,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        );
        let mut writer = if deletes { builder.build_v2_deletes() } else { builder.build_v2_data() };
        for file in files {
            collector.add_file(&file, schema.clone(), spec.clone());
            writer.add_file(file, sequence).map_err(err)?;
        }
        manifests.push(writer.write_manifest_file().await.map_err(err)?);
    }

    let list_path = format!("{}/metadata/snap-{snapshot_id}-0-{prefix}.avro", meta.location());
    let parent_id = meta.current_snapshot_id();
    let mut list = ManifestListWriter::v2(
        file_io.new_output(&list_path).map_err(err)?.writer().await.map_err(err)?,
        snapshot_id,
        parent_id,
        sequence,
    );
    list.add_manifests(manifests.into_iter()).map_err(err)?;
    list.close().await.map_err(err)?;

    let added = collector.build();
    let mut summary = totals(parent.map(|p| p.summary()), &added, delta.truncated);
    summary.extend(added);
    summary.extend(properties);
    let operation = if has_deletes || delta.truncated { Operation::Overwrite } else { Operation::Append };
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent_id)
        .with_sequence_number(sequence)
        .with_timestamp_ms(now_ms())
        .with_manifest_list(list_path)
        .with_summary(Summary { operation, additional_properties: summary })
        .with_schema_id(meta.current_schema_id())
        .build();

    let current = table.metadata_location_result().map_err(err)?;
    let next = meta
        .clone()
        .into_builder(Some(current.to_string()))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)
        .map_err(err)?
        .build()
        .map_err(err)?
        .metadata;
    let location = MetadataLocation::from_str(current).map_err(err)?.with_next_version().with_new_metadata(&next);
    next.write_to(file_io, &location).await.map_err(err)?;
    crate::failpoints::hit("iceberg.before_swap");
    if !cas.swap(ident, current, &location.to_string()).await? {
        return Err(SinkError::fatal(
            format!("cannot commit to iceberg table {ident}: another writer committed to it since outflow loaded it"),
            "let only this sink write to its tables; on restart outflow reloads the table and resumes from its last commit",
        ));
    }
    catalog.load_table(ident).await.map_err(err)
}

/// The `total-*` counters of the new snapshot: the parent's plus what this
/// commit adds (after a truncate, only what it adds).
fn totals(parent: Option<&Summary>, added: &HashMap<String, String>, truncated: bool) -> HashMap<String, String> {
    let count =
        |map: &HashMap<String, String>, key: &str| map.get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    [
        ("total-records", "added-records"),
        ("total-files-size", "added-files-size"),
        ("total-data-files", "added-data-files"),
        ("total-delete-files", "added-delete-files"),
        ("total-position-deletes", "added-position-deletes"),
        ("total-equality-deletes", "added-equality-deletes"),
    ]
    .into_iter()
    .map(|(total, add)| {
        let before = match parent {
            Some(p) if !truncated => count(&p.additional_properties, total),
            _ => 0,
        };
        (total.to_string(), (before + count(added, add)).to_string())
    })
    .collect()
}

/// A positive snapshot id the table does not use yet.
fn new_snapshot_id(meta: &TableMetadata) -> i64 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        let id = (h.finish() >> 1) as i64;
        if id != 0 && meta.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_to_the_parent_and_restart_after_a_truncate() {
        let parent = Summary {
            operation: Operation::Append,
            additional_properties: HashMap::from([
                ("total-records".to_string(), "10".to_string()),
                ("total-position-deletes".to_string(), "3".to_string()),
            ]),
        };
        let added = HashMap::from([
            ("added-records".to_string(), "5".to_string()),
            ("added-position-deletes".to_string(), "2".to_string()),
        ]);
        let t = totals(Some(&parent), &added, false);
        assert_eq!(t["total-records"], "15");
        assert_eq!(t["total-position-deletes"], "5");
        assert_eq!(t["total-data-files"], "0");
        let t = totals(Some(&parent), &added, true);
        assert_eq!(t["total-records"], "5");
        assert_eq!(t["total-position-deletes"], "2");
    }
}
