//! `kind = "postgres"`: keeps tables in a PostgreSQL database equal to the
//! source's tables (a materialization), exactly-once.
//!
//! Each source table gets a target table of the same name in `schema` (by
//! default the source's schema, or for MySQL its database), created from the
//! source schema with its key as primary key ([`types`] maps the types).
//! Changes are buffered per table and applied in batches ([`apply`]): COPY
//! into a temporary staging table, then one merge per batch. Column
//! additions, drops and type changes seen in a change's schema become
//! `ALTER TABLE` before the change is applied.
//!
//! Exactly-once: everything between two flushes — data, DDL and the row of
//! `outflow.offsets` saying how far the sink got — is one transaction. On
//! start the sink reads its row and skips every item at or before that
//! position; the snapshot progress the row holds is reported back
//! ([`Sink::recovered_snapshot`]), as Kafka and Parquet do. A crash before
//! COMMIT loses the whole transaction, which the pipeline replays.
//!
//! Schema announcements (`StreamItem::SchemaChange`) are applied only once
//! the sink is past its recovered position: on restart a source may announce
//! a shape older than what the target already committed; the change events
//! that follow carry the shape that is current for them.
//!
//! The sink uses tokio-postgres on the pipeline's runtime: the connection's
//! driver is a task there, and the sink thread blocks on its handle.
//! Construction runs on a blocking thread ([`crate::SinkFactory::build`]).
//!
//! `outflow check` connects and checks that the user may create the
//! offsets schema and table and the configured target schema's tables
//! ([`factory`]).

mod apply;
mod factory;
mod text;
mod types;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use outflow_model::{ChangeEvent, Dialect, Op, Position, SchemaChange, StreamItem, TableId, TableSchema};
use serde::Deserialize;
use serde_json::json;
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use outflow_pgconn::PgParams;
use tokio_postgres::{Client, SimpleQueryMessage};

use apply::{ident, TableState};

use crate::exactly_once::Delivered;
use crate::snapshot_marks::SnapshotRecord;
use crate::{Checkpoint, Durable, Sink, SinkContext, SinkError};

/// The schema and table holding every sink's offset in the target.
const OFFSETS_SCHEMA: &str = "outflow";
const OFFSETS_TABLE: &str = "\"outflow\".\"offsets\"";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    pub name: String,
    /// `postgres://user:password@host:port/database` of the target.
    pub url: String,
    /// Target schema for every table (default: the source table's schema,
    /// or for MySQL sources its database name).
    #[serde(default)]
    pub schema: Option<String>,
    /// Buffered changes (over all tables) that trigger a merge into the
    /// open transaction before the next commit; bounds memory.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
}

fn default_batch_rows() -> usize {
    50_000
}

impl PostgresConfig {
    /// The settings checks `build()` makes, without connecting.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.batch_rows == 0 {
            return Err(SinkError::fatal(
                format!("sink {:?}: batch_rows must be at least 1", self.name),
                "e.g. batch_rows = 50000",
            ));
        }
        Ok(())
    }

    /// Connects, makes sure the offsets table exists and reads this sink's
    /// row. Blocks on `runtime`: call it from a thread outside the runtime.
    pub fn open(&self, ctx: SinkContext, runtime: Handle) -> Result<PostgresSink, SinkError> {
        self.validate()?;
        let config = self.target_config()?;
        let shown = describe_target(&config);
        let client = runtime.block_on(self.connect(&config, &shown))?;
        let mut sink = PostgresSink {
            name: self.name.clone(),
            shown,
            schema: self.schema.clone(),
            batch_rows: self.batch_rows,
            dialect: ctx.dialect,
            client,
            rt: runtime,
            tables: HashMap::new(),
            known_schemas: HashSet::new(),
            in_tx: false,
            stages: 0,
            delivered: Delivered::default(),
            bytes: 0,
        };
        sink.recover()?;
        Ok(sink)
    }

    /// The target's connection settings: a libpq-style URL with `sslmode`
    /// and `sslrootcert`, as the PostgreSQL source takes them.
    fn target_config(&self) -> Result<PgParams, SinkError> {
        PgParams::from_url(&self.url, &format!("sink {:?} url", self.name))
            .map_err(|e| SinkError::fatal(e.message, e.hint))
    }

    /// Connects (at most 30 s) and runs the connection's driver as a task
    /// on the current runtime.
    async fn connect(&self, params: &PgParams, shown: &str) -> Result<Client, SinkError> {
        let connected = tokio::time::timeout(Duration::from_secs(30), outflow_pgconn::connect(params)).await;
        match connected {
            Ok(Ok(Ok(client))) => Ok(client),
            Ok(Err(e)) => Err(SinkError::fatal(e.message, e.hint)),
            Ok(Ok(Err(e))) => {
                return Err(pg_error(
                    &format!("sink {:?}: cannot connect to the postgres target {shown}", self.name),
                    &e,
                ))
            }
            Err(_) => {
                return Err(SinkError::fatal(
                    format!(
                        "sink {:?}: cannot connect to the postgres target {shown}: timed out after 30 s",
                        self.name
                    ),
                    "check the host and port in the sink's url",
                ))
            }
        }
    }
}

/// `host:port/database` for messages (never the password).
fn describe_target(params: &PgParams) -> String {
    params.display()
}

/// What failed, and the fix.
fn pg_error(what: &str, e: &tokio_postgres::Error) -> SinkError {
    let Some(db) = e.as_db_error() else {
        if e.to_string().to_lowercase().contains("tls") {
            return SinkError::fatal(
                format!("{what}: {e}"),
                "check sslmode and sslrootcert in the sink's url (verify-full needs the CA that signed the target's certificate and a certificate naming its host)",
            );
        }
        return SinkError::fatal(
            format!("{what}: {e}"),
            "check that the target server is running and reachable at the host and port of the sink's url",
        );
    };
    let code = db.code();
    let hint = if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        "grant the sink's user CREATE on the target database (GRANT CREATE ON DATABASE db TO user), or USAGE and CREATE on the target schemas and \"outflow\", and ownership of existing target tables"
    } else if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        "check the user and password in the sink's url (the password can come from the environment: ${VAR})"
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        "create the target database first (CREATE DATABASE ...), or fix the database name in the sink's url"
    } else {
        "fix the target database; outflow resumes from its last committed offset"
    };
    let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
    SinkError::fatal(format!("{what}: {}{detail}", db.message()), hint)
}

pub struct PostgresSink {
    name: String,
    shown: String,
    schema: Option<String>,
    batch_rows: usize,
    dialect: Dialect,
    client: Client,
    /// The pipeline's runtime, blocked on from the sink's thread.
    rt: Handle,
    tables: HashMap<TableId, TableState>,
    /// Target schemas known to exist.
    known_schemas: HashSet<String>,
    in_tx: bool,
    /// Staging tables named so far (each table shape gets its own).
    stages: u64,
    /// What the offsets row held on start, and what was written since.
    delivered: Delivered,
    bytes: u64,
}

impl PostgresSink {
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    fn batch(&self, what: &str, sql: &str) -> Result<(), SinkError> {
        self.block_on(self.client.batch_execute(sql)).map_err(|e| pg_error(what, &e))
    }

    fn ensure_schema(&mut self, schema: &str) -> Result<(), SinkError> {
        if self.known_schemas.contains(schema) {
            return Ok(());
        }
        let exists = self
            .block_on(self.client.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema]))
            .map_err(|e| pg_error("cannot read the target's schemas", &e))?
            .is_some();
        if !exists {
            self.batch(
                &format!("cannot create schema {schema:?} in the postgres target {}", self.shown),
                &format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema)),
            )?;
        }
        self.known_schemas.insert(schema.to_string());
        Ok(())
    }

    /// Creates the offsets table when missing and reads this sink's row.
    fn recover(&mut self) -> Result<(), SinkError> {
        self.ensure_schema(OFFSETS_SCHEMA)?;
        let exists = self
            .block_on(self.client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&OFFSETS_TABLE]))
            .map_err(|e| pg_error("cannot read the target's tables", &e))?
            .get::<_, bool>(0);
        if !exists {
            self.batch(
                &format!("cannot create {OFFSETS_TABLE} in the postgres target {}", self.shown),
                &format!(
                    "CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (sink text PRIMARY KEY, position text NOT NULL, \
                     snapshot jsonb, updated_at timestamptz NOT NULL DEFAULT now())"
                ),
            )?;
        }
        let row = self
            .block_on(self.client.query_opt(
                &format!("SELECT position, snapshot::text FROM {OFFSETS_TABLE} WHERE sink = $1"),
                &[&self.name],
            ))
            .map_err(|e| pg_error(&format!("cannot read this sink's offset from {OFFSETS_TABLE}"), &e))?;
        if let Some(row) = row {
            let text: String = row.get(0);
            let position: Position = text.parse().map_err(|e| {
                SinkError::Checkpoint(format!(
                    "{OFFSETS_TABLE} row of sink {:?} holds position {text:?}: {e}",
                    self.name
                ))
            })?;
            let snapshot: Option<String> = row.get(1);
            let snapshot: Option<SnapshotRecord> = snapshot
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|e| SinkError::Checkpoint(format!("{OFFSETS_TABLE} snapshot of sink {:?}: {e}", self.name)))?;
            tracing::info!(sink = %self.name, position = %position, "resuming after what the postgres target already has");
            self.delivered = Delivered::recovered(Some(position), Default::default(), snapshot);
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), SinkError> {
        if !self.in_tx {
            self.batch("cannot begin a transaction in the postgres target", "BEGIN")?;
            self.in_tx = true;
        }
        Ok(())
    }

    fn target_schema(&self, id: &TableId) -> String {
        self.schema.clone().unwrap_or_else(|| id.schema.clone())
    }

    /// Makes the target table match `schema` (creating it, or altering it
    /// after applying what was buffered under its previous shape).
    fn sync_table(&mut self, schema: &Arc<TableSchema>) -> Result<(), SinkError> {
        if let Some(st) = self.tables.get_mut(&schema.id) {
            if Arc::ptr_eq(&st.schema, schema) {
                return Ok(());
            }
            if st.schema.columns == schema.columns {
                st.schema = schema.clone();
                return Ok(());
            }
        }
        self.begin()?;
        let old = match self.tables.remove(&schema.id) {
            Some(mut st) => {
                self.apply_table(&mut st)?;
                if st.stage_ready {
                    self.batch("cannot drop a staging table", &format!("DROP TABLE IF EXISTS {}", st.stage))?;
                }
                Some(st.columns.clone())
            }
            None => None,
        };
        let target_schema = self.target_schema(&schema.id);
        let target = format!("{}.{}", ident(&target_schema), ident(&schema.id.name));
        self.stages += 1;
        let stage = format!("_outflow_stage_{}", self.stages);
        let st = TableState::new(self.dialect, schema.clone(), target.clone(), stage);
        let existing = match old {
            Some(cols) => Some(cols),
            None => self.target_columns(&target_schema, &schema.id.name)?,
        };
        let what = format!("cannot create or alter {target} in the postgres target {}", self.shown);
        match existing {
            None => {
                self.ensure_schema(&target_schema)?;
                let mut cols: Vec<String> = st.columns.iter().map(|(n, t)| format!("{} {t}", ident(n))).collect();
                let keys: Vec<String> = schema.key_indexes().map(|i| ident(&st.columns[i].0)).collect();
                if !keys.is_empty() {
                    cols.push(format!("PRIMARY KEY ({})", keys.join(", ")));
                } else {
                    tracing::info!(sink = %self.name, table = %schema.id, "table has no key: the target is append-only (updates and deletes are not applied)");
                }
                tracing::info!(sink = %self.name, table = %schema.id, target = %target, "creating target table");
                self.batch(&what, &format!("CREATE TABLE IF NOT EXISTS {target} ({})", cols.join(", ")))?;
            }
            Some(existing) => {
                let mut ddl = Vec::new();
                for (name, ty) in &st.columns {
                    match existing.iter().find(|(n, _)| n == name) {
                        None => ddl.push(format!("ADD COLUMN IF NOT EXISTS {} {ty}", ident(name))),
                        Some((_, old_ty)) if !old_ty.is_empty() && old_ty != ty => {
                            let c = ident(name);
                            ddl.push(format!("ALTER COLUMN {c} TYPE {ty} USING {c}::text::{ty}"))
                        }
                        Some(_) => {}
                    }
                }
                for (name, _) in &existing {
                    if !st.columns.iter().any(|(n, _)| n == name) {
                        ddl.push(format!("DROP COLUMN IF EXISTS {}", ident(name)));
                    }
                }
                if !ddl.is_empty() {
                    tracing::info!(sink = %self.name, table = %schema.id, changes = ddl.len(), "altering target table to the source's new shape");
                    self.batch(&what, &format!("ALTER TABLE {target} {}", ddl.join(", ")))?;
                }
            }
        }
        self.tables.insert(schema.id.clone(), st);
        Ok(())
    }

    /// The columns of an existing target table (types empty: not compared),
    /// None when it does not exist.
    fn target_columns(&self, schema: &str, table: &str) -> Result<Option<Vec<(String, String)>>, SinkError> {
        let rows = self
            .block_on(self.client.query(
                "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&schema, &table],
            ))
            .map_err(|e| pg_error("cannot read the target's columns", &e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows.iter().map(|r| (r.get::<_, String>(0), String::new())).collect()))
    }

    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        self.sync_table(&ev.table)?;
        if ev.op == Op::Truncate {
            self.begin()?;
            let st = self.tables.get_mut(&ev.table.id).expect("synced above");
            st.clear();
            let sql = format!("TRUNCATE {}", st.target);
            return self.batch("cannot truncate a target table", &sql);
        }
        let st = self.tables.get_mut(&ev.table.id).expect("synced above");
        if !st.add(ev) && st.not_applicable.is_power_of_two() {
            tracing::warn!(sink = %self.name, table = %ev.table.id, skipped = st.not_applicable,
                "table has no key: updates and deletes are not applied to its append-only target");
        }
        Ok(())
    }

    fn pending(&self) -> usize {
        self.tables.values().map(TableState::pending).sum()
    }

    fn apply_all(&mut self) -> Result<(), SinkError> {
        let ids: Vec<TableId> = self.tables.iter().filter(|(_, t)| t.pending() > 0).map(|(id, _)| id.clone()).collect();
        for id in ids {
            let mut st = self.tables.remove(&id).expect("listed above");
            let r = self.apply_table(&mut st);
            self.tables.insert(id, st);
            r?;
        }
        Ok(())
    }

    /// Sends one table's buffered changes into the open transaction.
    fn apply_table(&mut self, st: &mut TableState) -> Result<(), SinkError> {
        if st.pending() == 0 {
            return Ok(());
        }
        self.begin()?;
        let batch = st.take_batch();
        let what = format!("cannot apply changes to {} in the postgres target {}", st.target, self.shown);
        if !st.keyed() {
            return self.copy(&what, &st.copy_target_sql(), batch.copy);
        }
        if !st.stage_ready {
            self.batch(&what, &st.create_stage_sql())?;
            st.stage_ready = true;
        }
        let merge = st.merge_sql(&batch);
        self.copy(&what, &st.copy_stage_sql(), batch.copy)?;
        if !batch.moves {
            return self.batch(&what, &merge);
        }
        let replies = self.block_on(self.client.simple_query(&merge)).map_err(|e| pg_error(&what, &e))?;
        let missing = replies
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).and_then(|n| n.parse::<u64>().ok()),
                _ => None,
            })
            .unwrap_or(0);
        if missing > 0 {
            tracing::warn!(sink = %self.name, table = %st.schema.id, rows = missing,
                "updates moved rows to another key and left TOASTed values unchanged, but the old key's row is not in the target: written as null");
        }
        Ok(())
    }

    fn copy(&mut self, what: &str, sql: &str, data: Vec<u8>) -> Result<(), SinkError> {
        self.bytes += data.len() as u64;
        let client = &self.client;
        self.block_on(async {
            let sink = client.copy_in::<_, Bytes>(sql).await?;
            futures::pin_mut!(sink);
            sink.send(Bytes::from(data)).await?;
            sink.finish().await
        })
        .map(|_| ())
        .map_err(|e| pg_error(what, &e))
    }
}

impl Sink for PostgresSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        for item in items {
            let Some(position) = item.position() else {
                if let StreamItem::SchemaChange(SchemaChange { schema, .. }) = item {
                    if self.delivered.written().is_some() && self.tables.contains_key(&schema.id) {
                        self.sync_table(schema)?;
                    }
                }
                continue;
            };
            if self.delivered.holds(position) {
                continue;
            }
            if let StreamItem::Change(ev) = item {
                self.write_change(ev)?;
            }
            self.delivered.note(item);
        }
        if self.pending() >= self.batch_rows {
            self.apply_all()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        let Some(position) = self.delivered.uncommitted() else {
            return Ok(Checkpoint::Null);
        };
        self.apply_all()?;
        self.begin()?;
        let record = self.delivered.commit_record(&Durable::All);
        let snapshot = serde_json::to_string(record).expect("snapshot marks serialize");
        let text = position.to_string();
        let upsert = format!(
            "INSERT INTO {OFFSETS_TABLE} (sink, position, snapshot, updated_at) VALUES ($1, $2, $3::text::jsonb, now()) \
             ON CONFLICT (sink) DO UPDATE SET position = EXCLUDED.position, snapshot = EXCLUDED.snapshot, updated_at = now()"
        );
        self.block_on(self.client.execute(&upsert, &[&self.name, &text, &snapshot]))
            .map_err(|e| pg_error(&format!("cannot write this sink's offset to {OFFSETS_TABLE}"), &e))?;
        self.batch(&format!("cannot commit to the postgres target {}", self.shown), "COMMIT")?;
        self.in_tx = false;
        for st in self.tables.values_mut() {
            st.stage_ready = false;
        }
        self.delivered.committed(position);
        Ok(json!({ "position": text }))
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        self.delivered.recovered_snapshot()
    }
}
