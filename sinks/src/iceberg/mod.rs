//! `kind = "iceberg"`: source tables as Apache Iceberg tables (one per
//! source table) in a SQL catalog on SQLite with a warehouse on local disk
//! or object storage, exactly-once, readable by pyiceberg, Spark, Trino,
//! DuckDB.
//!
//! Each source table `schema.table` becomes the Iceberg table
//! `<namespace>.<table>` (namespace: the sink's `namespace`, else the source
//! schema, for MySQL its database), created on its first change with the
//! source's columns ([`schema`] maps the types) and, by `mode`:
//!
//! - `append` (a change log): the change-log columns `_op`, `_position`,
//!   `_tx`, `_source_ts`, `_snapshot` and `_unchanged` (the Parquet sink's,
//!   see [`crate::columnar::rows`]): one row per change, the after-image (the
//!   before-image for deletes, all null for truncates).
//! - `upsert` (the current row per key): `_position` and `_source_ts` of
//!   each row's last change; key columns are the schema's identifier fields.
//!   Replaced and deleted rows are removed with position deletes
//!   ([`upsert`]), committed by a hand-built snapshot ([`commit`]: iceberg
//!   0.10.1 can only `fast_append` data files). Keyless tables are
//!   append-only. The sink keeps every keyed table's key → row position
//!   index in memory (~100 MB per million rows), rebuilt from the table on
//!   start.
//!
//! A table records the mode it was created for (property `outflow.mode`);
//! a sink of the other mode refuses it. Added and dropped source columns
//! become Iceberg schema updates before rows of the new shape are written
//! ([`table`]). A table's state is its mode ([`state::TableMode`]) over
//! its data files ([`table::DataFiles`]).
//!
//! Exactly-once. Rows go to Parquet data files as they arrive; every
//! `commit_interval` (and when the stream ends) each table with new changes
//! is committed as one snapshot (`fast_append`, or the upsert commit with
//! its deletes) whose summary holds `outflow.position`: the stream position
//! through which the table is complete, and `outflow.snapshot`: the table's
//! snapshot progress. Data, deletes and offset are one atomic catalog
//! commit. Iceberg has no multi-table commit,
//! so a crash can fall between two tables' commits; on start the sink reads
//! every table's latest outflow snapshot summary and skips, per table, the
//! changes at or before that table's position, which makes the replay from
//! the state directory's (older) offset exact. Until a commit the sink
//! reports ([`Sink::durable`]) only the position before its oldest
//! uncommitted row, so the source keeps everything not yet committed.
//!
//! Arrow versions: iceberg 0.10.1 is built on arrow/parquet 58, and the
//! workspace used 60.1. Rather than carry two Arrow versions (two copies of
//! arrow and parquet in the binary, and converting every batch between them),
//! the workspace moved to 58: the Parquet sink compiles unchanged on it and
//! object_store is not tied to the parquet version (the Parquet sink uses it
//! directly, not through parquet's `object_store` feature). The Iceberg
//! writer therefore takes the same `RecordBatch` type the Parquet sink
//! builds, and one value → Arrow mapping ([`crate::parquet::types`]) serves both.
//!
//! The warehouse is a local directory or an object store ([`storage`]:
//! iceberg 0.10.1 ships only local and in-memory storage, so object stores
//! go through `object_store`, like the Parquet sink's).
//!
//! Limits: no partitioning; upsert tables follow one key (a change of the
//! key columns or their types stops the sink).
//!
//! The catalog and writers are async: they run on the pipeline's runtime,
//! which the sink blocks on from its own thread (setup runs on a blocking
//! thread). `outflow check` opens an existing catalog (or probes that its
//! directory is writable) and writes and deletes a probe file or object in
//! the warehouse.

mod commit;
mod factory;
mod read;
mod schema;
mod state;
mod storage;
mod keys;
mod table;
mod upsert;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::file::properties::WriterProperties;
use iceberg::io::{LocalFsStorageFactory, StorageFactory};
use iceberg::table::Table;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalog, SqlCatalogBuilder};
use outflow_model::{ChangeEvent, Position, StreamItem};
use serde::Deserialize;
use serde_json::Value as Json;
use tokio::runtime::Handle;

use self::commit::Cas;
use self::schema::{new_schema, wanted_columns};
use self::state::TableState;
use self::table::WriteSettings;
use crate::exactly_once::{durable_before, Delivered};
use crate::settings::{ByteSize, Interval};
use crate::snapshot_marks::SnapshotRecord;
use crate::{Checkpoint, Durable, Sink, SinkError};

/// Snapshot summary keys.
const SUMMARY_SINK: &str = "outflow.sink";
const SUMMARY_TABLE: &str = "outflow.table";
const SUMMARY_POSITION: &str = "outflow.position";
const SUMMARY_SNAPSHOT: &str = "outflow.snapshot";
/// Table property naming the mode a table was created for.
const PROPERTY_MODE: &str = "outflow.mode";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcebergConfig {
    pub name: String,
    /// The SQLite file holding the catalog (created if missing); pyiceberg's
    /// `SqlCatalog(name, uri="sqlite:///<path>")` reads the same file.
    pub catalog: PathBuf,
    /// The catalog's name inside that file (`catalog_name` column).
    #[serde(default = "default_catalog_name")]
    pub catalog_name: String,
    /// Where table data and metadata go: a local directory (`file://`
    /// allowed) or an object store URL, `s3://bucket/prefix` (also `gs://`,
    /// `az://`).
    pub warehouse: String,
    /// object_store settings for an object store warehouse, e.g. `endpoint`,
    /// `region`, `access_key_id`, `secret_access_key`, `allow_http` (S3);
    /// the usual environment variables (AWS_*, GOOGLE_*, AZURE_*) apply too.
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// The namespace of every table (default: the source table's schema, for
    /// MySQL its database).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `append`: every change is a row (a change log); `upsert`: the table
    /// holds the current row per key.
    #[serde(default)]
    pub mode: Mode,
    /// How often tables with new rows are committed (one snapshot per table
    /// per commit); bounds how far the acknowledged position trails.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: Interval,
    /// Data files roll at about this size.
    #[serde(default = "default_target_file_size")]
    pub target_file_size: ByteSize,
    /// zstd level (1..=22) of the data files, default 1.
    #[serde(default)]
    pub compression_level: Option<i32>,
}

fn default_catalog_name() -> String {
    "outflow".into()
}
fn default_commit_interval() -> Interval {
    Interval(std::time::Duration::from_secs(60))
}
fn default_target_file_size() -> ByteSize {
    ByteSize(128 << 20)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Append,
    Upsert,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Upsert => "upsert",
        }
    }
}

pub struct IcebergSink {
    name: String,
    namespace: Option<String>,
    catalog: SqlCatalog,
    /// Upsert mode: the catalog row swap of hand-built commits.
    cas: Option<Cas>,
    /// The pipeline's runtime, blocked on from the sink's thread.
    rt: Handle,
    settings: WriteSettings,
    commit_interval: std::time::Duration,
    /// Open tables by source `schema.table`.
    tables: BTreeMap<String, TableState>,
    /// Which source table each Iceberg table belongs to (collision check).
    idents: HashMap<TableIdent, String>,
    /// Per source table, the position its committed snapshots reach; the
    /// snapshot progress they hold; the last position written.
    delivered: Delivered,
    durable: Durable,
}

/// An iceberg error as one line.
fn one_line(e: &iceberg::Error) -> String {
    e.to_string().replace('\n', " ")
}

fn ice_error(what: &str, e: &iceberg::Error) -> SinkError {
    SinkError::fatal(
        format!("{what}: {}", one_line(e)),
        "check the catalog file and the warehouse directory (permissions, free space); outflow resumes from each table's last commit",
    )
}

impl IcebergConfig {
    /// What `build` would refuse in the settings alone (checked before the
    /// source is touched): the compression level and the warehouse's scheme.
    pub fn validate(&self) -> Result<(), SinkError> {
        if let Some(level) = self.compression_level {
            ZstdLevel::try_new(level).map_err(|e| {
                SinkError::Data(format!("sink {:?}: compression_level = {level}: {e}; use 1..=22", self.name))
            })?;
        }
        match self.warehouse.split_once("://") {
            None | Some(("file" | "s3" | "s3a" | "gs" | "az" | "abfss" | "https", _)) => Ok(()),
            Some((scheme, _)) => Err(SinkError::Data(format!(
                "sink {:?}: warehouse {:?}: {scheme}:// is not a supported storage; use a local directory or an \
                 s3://, gs:// or az:// URL",
                self.name, self.warehouse
            ))),
        }
    }

    /// Opens the catalog and reads back how far every table of this sink
    /// got. Blocks on `rt`: call it from a thread outside the runtime.
    pub fn open(&self, rt: Handle) -> Result<IcebergSink, SinkError> {
        let (warehouse, storage) = self.storage()?;
        let catalog_path = absolute(&self.catalog);
        if let Some(dir) = catalog_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError::io(format!("cannot create the catalog's directory {}", dir.display()), e))?;
        }
        let level = ZstdLevel::try_new(self.compression_level.unwrap_or(1)).map_err(|e| {
            SinkError::fatal(format!("sink {:?}: compression_level: {e}", self.name), "use a level from 1 to 22")
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(128 * 1024))
            .set_created_by(format!("outflow {}", env!("CARGO_PKG_VERSION")))
            .build();
        let catalog = rt.block_on(self.open_catalog(&catalog_path, warehouse, storage))?;
        let recovered = rt.block_on(recover(&catalog, &self.name))?;
        let cas = match self.mode {
            Mode::Upsert => Some(rt.block_on(Cas::open(&catalog_path, &self.catalog_name))?),
            Mode::Append => None,
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut sink = IcebergSink {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            catalog,
            cas,
            rt,
            settings: WriteSettings {
                props,
                target_file_size: self.target_file_size.0.max(1 << 20) as usize,
                file_prefix: format!("outflow-{nanos:x}-{}", std::process::id()),
                mode: self.mode,
            },
            commit_interval: self.commit_interval.0,
            tables: BTreeMap::new(),
            idents: HashMap::new(),
            delivered: Delivered::default(),
            durable: Durable::Nothing,
        };
        let any = !recovered.is_empty();
        let mut record = SnapshotRecord::new();
        let mut tables = BTreeMap::new();
        for r in recovered {
            tracing::info!(sink = %self.name, table = %r.source, iceberg = %r.ident, position = %r.position, "iceberg: resuming after the table's last commit");
            if let Some(progress) = r.snapshot {
                record.insert(r.source.clone(), progress);
            }
            sink.idents.insert(r.ident, r.source.clone());
            tables.insert(r.source, r.position);
        }
        sink.delivered = Delivered::recovered(None, tables, any.then_some(record));
        Ok(sink)
    }

    /// Opens (creating if missing) the SQLite catalog, on the current runtime.
    async fn open_catalog(
        &self,
        catalog_path: &Path,
        warehouse: String,
        storage: Arc<dyn StorageFactory>,
    ) -> Result<SqlCatalog, SinkError> {
        let uri = format!("sqlite:{}?mode=rwc", catalog_path.display());
        let props_map = HashMap::from([
            ("uri".to_string(), uri),
            ("warehouse".to_string(), warehouse),
            ("sql_bind_style".to_string(), SqlBindStyle::QMark.to_string()),
        ]);
        SqlCatalogBuilder::default()
            .with_storage_factory(storage)
            .with_runtime(iceberg::Runtime::current())
            .load(&self.catalog_name, props_map)
            .await
            .map_err(|e| {
                SinkError::fatal(
                    format!(
                        "sink {:?}: cannot open the iceberg catalog {}: {}",
                        self.name,
                        catalog_path.display(),
                        one_line(&e)
                    ),
                    "catalog must be a writable path for an SQLite file (created if missing)",
                )
            })
    }
}

impl IcebergConfig {
    /// The warehouse location and the storage behind it: local directories
    /// as `file://` URLs of absolute paths, object stores through
    /// [`storage::ObjectStorageFactory`].
    fn storage(&self) -> Result<(String, Arc<dyn StorageFactory>), SinkError> {
        let path = match self.warehouse.split_once("://") {
            None => absolute(Path::new(&self.warehouse)),
            Some(("file", rest)) => PathBuf::from(rest),
            Some(("s3" | "s3a" | "gs" | "az" | "abfss" | "https", _)) => {
                let options = self.storage_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let factory = storage::ObjectStorageFactory { options };
                return Ok((self.warehouse.trim_end_matches('/').to_string(), Arc::new(factory)));
            }
            Some((scheme, _)) => {
                return Err(SinkError::fatal(
                    format!(
                        "sink {:?}: warehouse {:?}: {scheme}:// is not a supported storage",
                        self.name, self.warehouse
                    ),
                    "use a local directory or an s3://, gs:// or az:// URL",
                ))
            }
        };
        if !self.storage_options.is_empty() {
            return Err(SinkError::fatal(
                format!("sink {:?}: storage_options are set but the warehouse is a local directory", self.name),
                "remove storage_options, or set warehouse to an s3://bucket/prefix URL",
            ));
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| SinkError::io(format!("cannot create the warehouse directory {}", path.display()), e))?;
        Ok((format!("file://{}", path.display()), Arc::new(LocalFsStorageFactory)))
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// How far one table got, read from its latest snapshot written by this sink.
struct Recovered {
    source: String,
    ident: TableIdent,
    position: Position,
    snapshot: Option<Json>,
}

/// Reads every table of the catalog and keeps those this sink committed to.
async fn recover(catalog: &SqlCatalog, sink: &str) -> Result<Vec<Recovered>, SinkError> {
    let list_error = |e: iceberg::Error| ice_error("cannot list the iceberg catalog's tables", &e);
    let mut out = Vec::new();
    for ns in catalog.list_namespaces(None).await.map_err(list_error)? {
        for ident in catalog.list_tables(&ns).await.map_err(list_error)? {
            let table = catalog
                .load_table(&ident)
                .await
                .map_err(|e| ice_error(&format!("cannot load iceberg table {ident}"), &e))?;
            if let Some(r) = last_commit(&table, sink)? {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Refuses a table created for the other mode (its rows mean something else).
fn check_mode(table: &Table, mode: Mode) -> Result<(), SinkError> {
    let created = table.metadata().properties().get(PROPERTY_MODE).map_or("append", String::as_str);
    if created != mode.as_str() {
        return Err(SinkError::fatal(
            format!(
                "iceberg table {} was created by mode = \"{created}\", but the sink's mode is \"{}\"",
                table.identifier(),
                mode.as_str()
            ),
            "keep the mode the table was created with, or give the sink another namespace (or catalog) for the other mode",
        ));
    }
    if mode == Mode::Upsert && table.metadata().format_version() != iceberg::spec::FormatVersion::V2 {
        return Err(SinkError::fatal(
            format!("iceberg table {} is not format version 2, which upsert mode writes", table.identifier()),
            "let outflow create the table (it creates format version 2 tables)",
        ));
    }
    Ok(())
}

/// The latest snapshot in the table's history that this sink committed.
fn last_commit(table: &Table, sink: &str) -> Result<Option<Recovered>, SinkError> {
    let meta = table.metadata();
    let mut snapshot = meta.current_snapshot();
    while let Some(s) = snapshot {
        let props = &s.summary().additional_properties;
        if props.get(SUMMARY_SINK).map(String::as_str) == Some(sink) {
            let bad = |what: &str| {
                SinkError::Checkpoint(format!(
                    "snapshot {} of iceberg table {} has a bad {what}; fix or remove that snapshot, or give the sink another name",
                    s.snapshot_id(),
                    table.identifier()
                ))
            };
            let source = props.get(SUMMARY_TABLE).ok_or_else(|| bad(SUMMARY_TABLE))?.clone();
            let position =
                props.get(SUMMARY_POSITION).and_then(|p| p.parse().ok()).ok_or_else(|| bad(SUMMARY_POSITION))?;
            let snapshot = match props.get(SUMMARY_SNAPSHOT) {
                Some(text) => Some(serde_json::from_str(text).map_err(|_| bad(SUMMARY_SNAPSHOT))?),
                None => None,
            };
            return Ok(Some(Recovered { source, ident: table.identifier().clone(), position, snapshot }));
        }
        snapshot = s.parent_snapshot_id().and_then(|id| meta.snapshot_by_id(id));
    }
    Ok(None)
}

impl IcebergSink {
    /// The Iceberg table of a source table.
    fn ident(&self, ev: &ChangeEvent) -> TableIdent {
        let ns = self.namespace.clone().unwrap_or_else(|| ev.table.id.schema.clone());
        TableIdent::new(NamespaceIdent::new(ns), ev.table.id.name.clone())
    }

    /// Loads or creates the table for `ev` and makes its schema hold `ev`'s shape.
    fn table_for(&mut self, key: &str, ev: &ChangeEvent) -> Result<(), SinkError> {
        if let Some(t) = self.tables.get_mut(key) {
            if t.shape_differs(&ev.table) {
                self.rt.block_on(t.evolve(ev.table.clone(), &self.catalog, &self.settings))?;
            }
            return Ok(());
        }
        let ident = self.ident(ev);
        match self.idents.get(&ident) {
            Some(other) if other != key => {
                return Err(SinkError::fatal(
                    format!("sink {:?}: source tables {other} and {key} both map to iceberg table {ident}", self.name),
                    "remove the sink's namespace setting so each source schema gets its own namespace, or capture only one of them",
                ))
            }
            _ => {}
        }
        let catalog = &self.catalog;
        let settings = &self.settings;
        let table = self.rt.block_on(async {
            let ns = ident.namespace();
            let what = format!("cannot create iceberg table {ident}");
            if !catalog.namespace_exists(ns).await.map_err(|e| ice_error(&what, &e))? {
                catalog.create_namespace(ns, HashMap::new()).await.map_err(|e| ice_error(&what, &e))?;
            }
            if catalog.table_exists(&ident).await.map_err(|e| ice_error(&what, &e))? {
                let table = catalog.load_table(&ident).await.map_err(|e| ice_error(&what, &e))?;
                check_mode(&table, settings.mode)?;
                return Ok(table);
            }
            let schema = new_schema(&wanted_columns(&ev.table.columns, settings.mode))?;
            let creation = TableCreation::builder()
                .name(ident.name().to_string())
                .schema(schema)
                .properties([
                    ("outflow.source_table".to_string(), key.to_string()),
                    (PROPERTY_MODE.to_string(), settings.mode.as_str().to_string()),
                ])
                .build();
            tracing::info!(table = %key, iceberg = %ident, "iceberg: creating table");
            catalog.create_table(ns, creation).await.map_err(|e| ice_error(&what, &e))
        })?;
        let mut state = TableState::new(key.to_string(), table, ev.table.clone(), self.cas.as_ref())?;
        // A table created by an earlier run may hold another shape.
        self.rt.block_on(state.evolve(ev.table.clone(), &self.catalog, &self.settings))?;
        self.rt.block_on(state.rebuild_index())?;
        self.idents.insert(ident, key.to_string());
        self.tables.insert(key.to_string(), state);
        Ok(())
    }

    fn commit_due(&self) -> bool {
        self.tables.values().any(|t| t.since.is_some_and(|s| s.elapsed() >= self.commit_interval))
    }

    /// Commits every table with new rows, each with its offset in the summary.
    fn commit_all(&mut self) -> Result<(), SinkError> {
        let Some(position) = self.delivered.written().cloned() else { return Ok(()) };
        let record = self.delivered.commit_record(&Durable::All).clone();
        for (key, t) in self.tables.iter_mut().filter(|(_, t)| t.rows > 0) {
            let mut summary = HashMap::from([
                (SUMMARY_SINK.to_string(), self.name.clone()),
                (SUMMARY_TABLE.to_string(), key.clone()),
                (SUMMARY_POSITION.to_string(), position.to_string()),
            ]);
            if let Some(progress) = record.get(key) {
                summary.insert(SUMMARY_SNAPSHOT.to_string(), progress.to_string());
            }
            self.rt.block_on(t.commit(&self.catalog, summary, &self.settings))?;
            self.delivered.table_committed(key.clone(), position.clone());
        }
        Ok(())
    }

    fn update_durable(&mut self) {
        let open = self.tables.values().filter(|t| t.rows > 0);
        self.durable = durable_before(open.map(|t| t.before_first.as_ref()));
    }
}

impl Sink for IcebergSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        for item in items {
            if let StreamItem::Change(ev) = item {
                let key = ev.table.id.to_string();
                if !self.delivered.table_holds(&key, &ev.position) {
                    self.table_for(&key, ev)?;
                    let t = self.tables.get_mut(&key).expect("opened above");
                    self.rt.block_on(t.append(ev, self.delivered.written(), &self.settings))?;
                }
            }
            self.delivered.note(item);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        if self.commit_due() {
            self.commit_all()?;
        }
        self.update_durable();
        Ok(Checkpoint::Null)
    }

    fn finish(&mut self) -> Result<Checkpoint, SinkError> {
        self.commit_all()?;
        self.update_durable();
        Ok(Checkpoint::Null)
    }

    fn durable(&self) -> Durable {
        self.durable.clone()
    }

    fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        self.delivered.recovered_snapshot()
    }

    fn bytes_written(&self) -> u64 {
        self.tables.values().map(|t| t.bytes).sum()
    }

    fn exactly_once(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
