//! PostgreSQL chunk reader for the snapshot algorithm (see `src/snapshot/`
//! for the shared part). Watermarks are non-transactional logical decoding messages
//! (`pg_logical_emit_message(false, ...)`): they appear in the slot's stream
//! at once, and no table has to be created in the source.
//!
//! Chunks are read with the simple query protocol, so values arrive in the
//! same text form pgoutput sends (the session gets the replication
//! connection's settings: UTC, ISO dates, postgres intervals, round-trip
//! floats, hex bytea) and parse to identical `Value`s. Tables with a primary
//! key are read in key order, `WHERE (k1, k2) > (last) ORDER BY k1, k2
//! LIMIT n`; tables without one by `ctid` page ranges (a TID range scan).
//! Only plain SELECTs run: no table lock beyond each query's own
//! ACCESS SHARE.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use outflow_decoders::pg_type_registry::{column_type, PgType, TypeRegistry};
use outflow_decoders::pgtypes::oid::{INT2, INT4, INT8};
use outflow_decoders::pgtypes::parse_text;
use outflow_model::{ColumnSchema, KeyRange, KeyText, Position, Row, SourceInfo, TableId, TableSchema, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::SimpleQueryMessage;

use crate::error::{Error, Result};
use crate::pg::catalog::{sql_error, Catalog};
use outflow_pgconn::PgParams;
use crate::pg::sql::ident;
use crate::pg::watermark::{watermark, WATERMARK_PREFIX};
use crate::progress::RowProgress;
use crate::snapshot::{
    interpolated_uppers, range_start, ranges_between, ranges_wanted, stored_ranges, worth_splitting, Chunk, InFlight,
    Parallel, RangeUpdate, ReaderEvent,
};
use crate::state::TableSnapshot;

static NEXT_CHUNK: AtomicU64 = AtomicU64::new(1);

struct Column {
    schema: ColumnSchema,
    ty: PgType,
    /// `format_type` of the column, for casting key literals.
    sql_type: String,
}

/// Reads one table chunk by chunk, sending each chunk to the stream side.
/// A big table with a key that nothing has been read of yet is split into
/// key ranges, read at once by as many connections as `parallel` has free
/// reader slots.
/// `exclude`: the global transforms' excluded columns of this table, left
/// out of the SELECT (never read from the server). `condition`: only the
/// rows matching this SQL condition (an ad-hoc snapshot's, checked first
/// with [`check_condition`]).
#[allow(clippy::too_many_arguments)]
pub async fn snapshot_table(
    params: &PgParams,
    run: &str,
    table: TableId,
    progress: TableSnapshot,
    chunk_size: u64,
    parallel: Parallel,
    out: &mpsc::Sender<ReaderEvent>,
    exclude: &[String],
    condition: Option<&str>,
) -> Result<()> {
    let first = Worker::open(params, &table, exclude).await?;
    let keyed = first.schema.key_indexes().next().is_some();
    let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
    let estimate = estimated_rows(&first.catalog, &qualified).await?;
    tracing::info!(table = %table, rows_done = progress.rows, "snapshot started");
    let bar = Mutex::new(RowProgress::new(table.to_string(), estimate, progress.rows));
    let reader = TableReader { run, table: &table, qualified, chunk_size, out, bar, exclude, condition };
    if !keyed {
        return reader.read_pages(first, progress).await;
    }

    let mut extra = Vec::new();
    let mut ranges = stored_ranges(&progress);
    // A table never analyzed has no estimate: it is counted, but only once
    // free reader slots say a split could be used.
    let unknown = estimate == 0;
    let mut estimate = if unknown { u64::MAX } else { estimate };
    if worth_splitting(&progress, estimate, chunk_size, 2) {
        extra = parallel.take(ranges_wanted(estimate, chunk_size) - 1);
        if unknown && !extra.is_empty() {
            estimate = count_rows(&first.catalog, &reader.qualified).await?;
            let wanted = match worth_splitting(&progress, estimate, chunk_size, 2) {
                true => ranges_wanted(estimate, chunk_size) - 1,
                false => 0,
            };
            extra.truncate(wanted);
        }
        if !extra.is_empty() {
            let uppers = range_boundaries(&first, &reader.qualified, estimate, extra.len() + 1).await?;
            ranges = ranges_between(uppers);
            tracing::info!(table = %table, ranges = ranges.len(), "snapshot reads the table as key ranges at once");
        }
    }
    let base = TableSnapshot { ranges: ranges.clone(), last_key: None, ..progress };
    let todo: Mutex<Vec<usize>> = Mutex::new((0..ranges.len()).rev().filter(|&i| !ranges[i].done).collect());
    let id = NEXT_READER.fetch_add(1, Ordering::Relaxed);
    let mut workers = vec![first];
    for _ in 0..extra.len().min(ranges.len().saturating_sub(1)) {
        workers.push(Worker::open(params, &table, exclude).await?);
    }
    let finished = futures::future::try_join_all(
        workers.into_iter().map(|worker| reader.read_ranges(worker, id, &base, &ranges, &todo)),
    )
    .await?;
    drop(extra);
    if finished.into_iter().all(|complete| complete) {
        reader.bar.into_inner().unwrap_or_else(|e| e.into_inner()).finish();
        tracing::info!(table = %table, "snapshot done");
    }
    Ok(())
}

static NEXT_READER: AtomicU64 = AtomicU64::new(1);

/// What the workers reading one table share.
struct TableReader<'a> {
    run: &'a str,
    table: &'a TableId,
    qualified: String,
    chunk_size: u64,
    out: &'a mpsc::Sender<ReaderEvent>,
    bar: Mutex<RowProgress>,
    /// Columns not read (see [`snapshot_table`]).
    exclude: &'a [String],
    /// Only the rows matching this SQL condition.
    condition: Option<&'a str>,
}

/// One connection reading chunks of a table: it reads the next chunk while
/// the stream side emits its previous one (at most one in flight).
struct Worker {
    catalog: Catalog,
    schema: Arc<TableSchema>,
    columns: Vec<Column>,
    select_list: String,
    in_flight: InFlight,
    /// The table changed shape since it was described (see [`Worker::read`]).
    reshaped: bool,
    /// On a standby: the replay position the last chunk read is consistent
    /// with (see [`Worker::read_on_standby`]).
    high: Option<u64>,
}

impl Worker {
    async fn open(params: &PgParams, table: &TableId, exclude: &[String]) -> Result<Worker> {
        let catalog = Catalog::connect(params).await?;
        catalog
            .client()
            .batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
                 SET extra_float_digits = 3; SET bytea_output = 'hex'; SET standard_conforming_strings = on; \
                 SET synchronous_commit = on",
            )
            .await
            .map_err(|e| sql_error("setting up the snapshot session", &e))?;
        let (schema, columns) = describe(&catalog, table, exclude).await?;
        let select_list = select_list(&columns);
        Ok(Worker { catalog, schema, columns, select_list, in_flight: InFlight::default(), reshaped: false, high: None })
    }

    /// Writes the chunk's low watermark and reads it with `sql`. No rows
    /// when the table changed shape under the snapshot (ALTER TABLE since it
    /// was described): the chunk's window then closes with no rows and
    /// unchanged progress, and [`Worker::send`] describes the table again.
    async fn read(
        &mut self,
        reader: &TableReader<'_>,
        id: u64,
        sql: &str,
    ) -> Result<Option<(Vec<Row>, Option<KeyText>)>> {
        if self.catalog.standby {
            return self.read_on_standby(reader, id, sql).await;
        }
        let in_progress = emit_watermark(&self.catalog, &watermark(reader.run, false, id, reader.table), false).await?;
        wait_until_visible(&self.catalog, &in_progress).await?;
        let read = read_rows(&self.catalog, sql, &self.columns).await?;
        self.reshaped = read.is_none();
        Ok(read)
    }

    /// A standby is read-only: no watermarks. The stream side opens the
    /// chunk's window first (between two transactions, at what it has
    /// decoded so far: every transaction committed before it is replayed,
    /// so visible to the chunk); then the chunk is read in one REPEATABLE
    /// READ transaction whose first statement takes the snapshot and then
    /// reads the replay position H. A standby makes transactions visible as
    /// it replays their commits, so every transaction the chunk sees ends at
    /// or before H: the chunk is emitted once the stream is past H, and
    /// changes between the window's opening and H win over its rows (the
    /// same dedup as between watermarks). `Ok(None)` also when the stream
    /// side stopped (the chunk is then never sent).
    async fn read_on_standby(
        &mut self,
        reader: &TableReader<'_>,
        id: u64,
        sql: &str,
    ) -> Result<Option<(Vec<Row>, Option<KeyText>)>> {
        let (opened, at) = oneshot::channel();
        let open = ReaderEvent::Open { id, table: reader.table.to_string(), opened };
        if reader.out.send(open).await.is_err() || at.await.is_err() {
            return Ok(None);
        }
        let client = self.catalog.client();
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| sql_error("starting a snapshot chunk's transaction", &e))?;
        let high = client
            .query_one("SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint", &[])
            .await
            .map_err(|e| sql_error("reading the standby's replay position", &e))?;
        self.high = Some(high.get::<_, i64>(0) as u64);
        let read = read_rows(&self.catalog, sql, &self.columns).await;
        let _ = client.batch_execute("COMMIT").await;
        let read = read?;
        self.reshaped = read.is_none();
        Ok(read)
    }

    /// Sends a chunk and writes its high watermark, then waits until the
    /// chunk before it is emitted. False when the stream side stopped (the
    /// snapshot resumes in the next run).
    async fn send(&mut self, reader: &TableReader<'_>, chunk: Chunk) -> Result<bool> {
        let id = chunk.id;
        let rows = chunk.rows.len() as u64;
        if !self.in_flight.send(reader.out, chunk).await {
            return Ok(false);
        }
        if !self.catalog.standby {
            emit_watermark(&self.catalog, &watermark(reader.run, true, id, reader.table), true).await?;
        }
        reader.bar.lock().unwrap_or_else(|e| e.into_inner()).advance(rows);
        if !self.in_flight.settle().await {
            return Ok(false);
        }
        if self.reshaped {
            tracing::info!(table = %reader.table, "table changed during its snapshot; reading it with its new columns");
            (self.schema, self.columns) = describe(&self.catalog, reader.table, reader.exclude).await?;
            self.select_list = select_list(&self.columns);
        }
        Ok(true)
    }

    fn chunk(
        &self,
        id: u64,
        rows: Vec<Row>,
        keyed: bool,
        progress: TableSnapshot,
        range: Option<RangeUpdate>,
    ) -> Chunk {
        let (emitted, _) = oneshot::channel();
        Chunk {
            id,
            table: self.schema.clone(),
            rows,
            keyed,
            progress,
            range,
            high: self.high.map(Position::pg),
            source: SourceInfo { lsn: self.high, ..SourceInfo::default() },
            emitted,
        }
    }
}

impl TableReader<'_> {
    /// Reads key ranges taken from `todo` until none is left. False when
    /// the stream side stopped.
    async fn read_ranges(
        &self,
        mut worker: Worker,
        reader: u64,
        base: &TableSnapshot,
        ranges: &[KeyRange],
        todo: &Mutex<Vec<usize>>,
    ) -> Result<bool> {
        loop {
            let Some(index) = todo.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
            let mut range = ranges[index].clone();
            let lower = range_start(ranges, index);
            while !range.done {
                let after = range.last_key.clone().or_else(|| lower.clone());
                let sql = keyed_chunk_sql(
                    &worker.select_list,
                    &self.qualified,
                    &worker.schema,
                    &worker.columns,
                    after.as_deref(),
                    range.upper.as_deref(),
                    self.condition,
                    self.chunk_size,
                );
                let id = NEXT_CHUNK.fetch_add(1, Ordering::Relaxed);
                let rows = match worker.read(self, id, &sql).await? {
                    Some((rows, last_key)) => {
                        range.last_key = last_key.or(range.last_key);
                        range.done = (rows.len() as u64) < self.chunk_size;
                        rows
                    }
                    None => Vec::new(),
                };
                let update = RangeUpdate { reader, index, range: range.clone() };
                let chunk = worker.chunk(id, rows, true, base.clone(), Some(update));
                if !worker.send(self, chunk).await? {
                    return Ok(false);
                }
            }
        }
        Ok(worker.in_flight.drain().await)
    }

    /// A table without a key, by `ctid` page ranges.
    async fn read_pages(self, mut worker: Worker, mut progress: TableSnapshot) -> Result<()> {
        let pages_per_chunk = pages_per_chunk(&worker.catalog, &self.qualified, self.chunk_size).await?;
        while !progress.done {
            let id = NEXT_CHUNK.fetch_add(1, Ordering::Relaxed);
            let from = progress.resume.unwrap_or(0);
            let to = from + pages_per_chunk;
            let sql = format!(
                "SELECT {} FROM {} WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid{}",
                worker.select_list,
                self.qualified,
                self.condition.map(and_condition).unwrap_or_default()
            );
            let rows = match worker.read(&self, id, &sql).await? {
                Some((rows, _)) => {
                    progress.rows += rows.len() as u64;
                    progress.resume = Some(to);
                    progress.done = to >= relation_pages(&worker.catalog, &self.qualified).await?;
                    rows
                }
                None => Vec::new(),
            };
            let chunk = worker.chunk(id, rows, false, progress.clone(), None);
            if !worker.send(&self, chunk).await? {
                return Ok(());
            }
        }
        if worker.in_flight.drain().await {
            self.bar.into_inner().unwrap_or_else(|e| e.into_inner()).finish();
            tracing::info!(table = %self.table, rows = progress.rows, "snapshot done");
        }
        Ok(())
    }
}

fn select_list(columns: &[Column]) -> String {
    columns.iter().map(|c| ident(&c.schema.name)).collect::<Vec<_>>().join(", ")
}

/// `n - 1` keys splitting the table into `n` ranges of about equal rows
/// (fewer when the table is smaller than `rows` says), ascending.
async fn range_boundaries(worker: &Worker, qualified: &str, rows: u64, n: usize) -> Result<Vec<KeyText>> {
    let keys: Vec<usize> = worker.schema.key_indexes().collect();
    let key_list = keys.iter().map(|&i| ident(&worker.columns[i].schema.name)).collect::<Vec<_>>().join(", ");
    if let [key] = keys[..] {
        if matches!(worker.columns[key].ty, PgType::Builtin(INT2 | INT4 | INT8)) {
            let sql = format!("SELECT min({key_list})::text, max({key_list})::text FROM {qualified}");
            let row = worker
                .catalog
                .client()
                .query_one(&sql, &[])
                .await
                .map_err(|e| sql_error("splitting a table into key ranges for its snapshot", &e))?;
            let bound = |i: usize| row.get::<_, Option<String>>(i).and_then(|t| t.parse::<i128>().ok());
            return Ok(match (bound(0), bound(1)) {
                (Some(min), Some(max)) => interpolated_uppers(min, max, n),
                _ => Vec::new(),
            });
        }
    }
    let mut uppers = Vec::new();
    for i in 1..n as u64 {
        let sql =
            format!("SELECT {key_list} FROM {qualified} ORDER BY {key_list} OFFSET {} LIMIT 1", rows * i / n as u64);
        let messages = worker
            .catalog
            .client()
            .simple_query(&sql)
            .await
            .map_err(|e| sql_error("splitting a table into key ranges for its snapshot", &e))?;
        let Some(row) = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        }) else {
            break;
        };
        let key: KeyText = (0..keys.len()).map(|k| row.get(k).map(str::to_string)).collect();
        if uppers.last() != Some(&key) {
            uppers.push(key);
        }
    }
    Ok(uppers)
}

async fn count_rows(catalog: &Catalog, qualified: &str) -> Result<u64> {
    let row = catalog
        .client()
        .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
        .await
        .map_err(|e| sql_error("counting a table's rows for its snapshot", &e))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Writes a watermark and returns the transactions in progress right after
/// it (the `pg_current_snapshot()` taken in the same statement).
///
/// A non-transactional message is not flushed by itself: the walsender
/// would only see it once the WAL writer flushes (`wal_writer_delay`, 200 ms
/// by default), which stalled every chunk. The high watermark is therefore
/// written in a statement that also takes a transaction id, so its commit
/// flushes the WAL up to and past the message (an empty transaction, which
/// pgoutput does not send).
async fn emit_watermark(catalog: &Catalog, content: &str, flush: bool) -> Result<String> {
    let sql = if flush {
        "SELECT pg_current_snapshot()::text, pg_logical_emit_message(false, $1, $2), txid_current()"
    } else {
        "SELECT pg_current_snapshot()::text, pg_logical_emit_message(false, $1, $2)"
    };
    catalog.client().query_one(sql, &[&WATERMARK_PREFIX, &content]).await.map(|row| row.get(0)).map_err(|e| {
        let err = sql_error("writing a snapshot watermark with pg_logical_emit_message", &e);
        if e.as_db_error().is_some_and(|d| d.code().code() == "42501") {
            err.with_hint(
                "GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO <the source user> \
                     (PostgreSQL 17+: pg_logical_emit_message(boolean, text, text, boolean)); \
                     or set [snapshot] mode = \"never\"",
            )
        } else {
            err
        }
    })
}

/// Waits until every transaction that was in progress at the low watermark
/// is visible (or aborted), for at most a second, before the chunk's SELECT
/// takes its snapshot.
///
/// DBLog's gap: a transaction whose commit record precedes the low
/// watermark is outside the window, yet stays invisible to new snapshots
/// until it leaves the process array — after its WAL flush, so for
/// milliseconds under load, not microseconds. Its row would then be read
/// stale and never corrected. Transactions still open after the wait are
/// long-running ones that have not written their commit record, so they
/// commit after the low watermark, inside the window or later.
async fn wait_until_visible(catalog: &Catalog, snapshot: &str) -> Result<()> {
    // `xmin:xmax:xip,xip,...`: nothing to wait for without in-progress ids.
    if snapshot.rsplit(':').next().is_none_or(str::is_empty) {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let row = catalog
            .client()
            .query_one(
                "SELECT coalesce(bool_and(pg_visible_in_snapshot(x, pg_current_snapshot()) \
                 OR pg_xact_status(x) = 'aborted'), true) FROM pg_snapshot_xip($1::text::pg_snapshot) x",
                &[&snapshot],
            )
            .await
            .map_err(|e| sql_error("waiting for transactions committing before a snapshot chunk", &e))?;
        if row.get::<_, bool>(0) || std::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// The table's current shape, as a snapshot reads it.
pub async fn describe_schema(catalog: &Catalog, table: &TableId) -> Result<Arc<TableSchema>> {
    describe(catalog, table, &[]).await.map(|(schema, _)| schema)
}

/// The table's columns (in order, dropped ones left out), types and key.
/// `exclude` names columns left out (unless they are key columns).
async fn describe(catalog: &Catalog, table: &TableId, exclude: &[String]) -> Result<(Arc<TableSchema>, Vec<Column>)> {
    let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
    let rows = catalog
        .client()
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, NOT a.attnotnull, format_type(a.atttypid, NULL), \
             a.attnum = ANY(COALESCE((SELECT i.indkey::int2[] FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary), '{}')) \
             FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&qualified],
        )
        .await
        .map_err(|e| sql_error(&format!("describing {table} for its snapshot"), &e))?;
    let registry = TypeRegistry::new();
    let mut columns = Vec::with_capacity(rows.len());
    for r in &rows {
        let oid: u32 = r.get(1);
        let (type_name, ty) = if registry.is_known(oid) {
            (registry.type_name(oid), registry.resolve(oid))
        } else {
            catalog.lookup_type(oid).await?
        };
        columns.push(Column {
            schema: ColumnSchema {
                name: r.get(0),
                ty: column_type(&ty, r.get(2)),
                type_name,
                type_id: oid,
                type_modifier: r.get(2),
                nullable: r.get(3),
                key: r.get(5),
            },
            ty,
            sql_type: r.get(4),
        });
    }
    columns.retain(|c| c.schema.key || !exclude.contains(&c.schema.name));
    if columns.is_empty() {
        return Err(Error::fatal(format!("table {table} has no columns to snapshot"), "check [source] tables"));
    }
    let schema =
        TableSchema { id: table.clone(), version: 1, columns: columns.iter().map(|c| c.schema.clone()).collect() };
    Ok((Arc::new(schema), columns))
}

fn keyed_chunk_sql(
    select_list: &str,
    qualified: &str,
    schema: &TableSchema,
    columns: &[Column],
    after: Option<&[Option<String>]>,
    upper: Option<&[Option<String>]>,
    condition: Option<&str>,
    limit: u64,
) -> String {
    let keys: Vec<usize> = schema.key_indexes().collect();
    let key_list = keys.iter().map(|&i| ident(&columns[i].schema.name)).collect::<Vec<_>>().join(", ");
    let row = |values: &[Option<String>]| {
        keys.iter()
            .zip(values)
            .map(|(&i, v)| match v {
                Some(v) => format!("{}::{}", literal(v), columns[i].sql_type),
                None => "NULL".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut filters = Vec::new();
    if let Some(after) = after {
        filters.push(format!("({key_list}) > ({})", row(after)));
    }
    if let Some(upper) = upper {
        filters.push(format!("({key_list}) <= ({})", row(upper)));
    }
    let filter = if filters.is_empty() { String::new() } else { format!(" WHERE {}", filters.join(" AND ")) };
    let condition = match (condition, filters.is_empty()) {
        (None, _) => String::new(),
        (Some(c), true) => format!(" WHERE TRUE{}", and_condition(c)),
        (Some(c), false) => and_condition(c),
    };
    format!("SELECT {select_list} FROM {qualified}{filter}{condition} ORDER BY {key_list} LIMIT {limit}")
}

/// ` AND (condition)`, the condition on lines of its own so that a `--`
/// comment in it ends with it.
fn and_condition(condition: &str) -> String {
    format!(" AND (\n{condition}\n)")
}

/// Checks an ad-hoc snapshot's condition on `table` before any chunk is
/// read: prepared (one statement only, never run) in the shape the chunks
/// use, so a condition that is not a boolean SQL expression over the
/// table's columns — or that tries to end the statement — is refused with
/// the server's own message.
pub async fn check_condition(params: &PgParams, table: &TableId, condition: &str) -> Result<()> {
    let catalog = Catalog::connect(params).await?;
    let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
    let sql = format!("SELECT 1 FROM {qualified} WHERE TRUE{} LIMIT 0", and_condition(condition));
    catalog.client().prepare(&sql).await.map(|_| ()).map_err(|e| {
        let message = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string());
        Error::config(
            format!("the snapshot condition for {table} is not valid SQL for it: {message}"),
            "write a boolean SQL condition over the table's columns, e.g. \"id > 1000\"",
        )
    })
}

/// A SQL string literal (standard_conforming_strings is on for the session).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The chunk's rows, and the text of the last row's key columns.
/// None when the table no longer has the columns read (dropped or renamed
/// since it was described).
async fn read_rows(
    catalog: &Catalog,
    sql: &str,
    columns: &[Column],
) -> Result<Option<(Vec<Row>, Option<Vec<Option<String>>>)>> {
    let messages = match catalog.client().simple_query(sql).await {
        Ok(m) => m,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_COLUMN) => return Ok(None),
        Err(e) => return Err(sql_error("reading a snapshot chunk", &e)),
    };
    let mut rows = Vec::new();
    let mut last = None;
    for m in messages {
        let SimpleQueryMessage::Row(r) = m else { continue };
        let mut row = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            row.push(match r.get(i) {
                None => Value::Null,
                Some(t) => parse_text(&c.ty, t).map_err(|e| {
                    Error::fatal(
                        format!(
                            "cannot parse a snapshot value of column {} ({}): {e}",
                            c.schema.name, c.schema.type_name
                        ),
                        "please report this with the column's type",
                    )
                })?,
            });
        }
        rows.push(row);
        last = Some(r);
    }
    let last_key = last.map(|r| {
        columns.iter().enumerate().filter(|(_, c)| c.schema.key).map(|(i, _)| r.get(i).map(str::to_string)).collect()
    });
    Ok(Some((rows, last_key)))
}

/// The planner's row estimate (0 when the table was never analyzed).
async fn estimated_rows(catalog: &Catalog, qualified: &str) -> Result<u64> {
    let row = catalog
        .client()
        .query_one("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::text::regclass", &[&qualified])
        .await
        .map_err(|e| sql_error("reading table statistics", &e))?;
    Ok(row.get::<_, i64>(0) as u64)
}

async fn relation_pages(catalog: &Catalog, qualified: &str) -> Result<u64> {
    let row = catalog
        .client()
        .query_one(
            "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint)::bigint",
            &[&qualified],
        )
        .await
        .map_err(|e| sql_error("reading the table's size", &e))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Pages per chunk for a keyless table, from the planner's rows-per-page.
async fn pages_per_chunk(catalog: &Catalog, qualified: &str, chunk_size: u64) -> Result<u64> {
    let row = catalog
        .client()
        .query_one(
            "SELECT reltuples::float8, relpages::float8 FROM pg_class WHERE oid = $1::text::regclass",
            &[&qualified],
        )
        .await
        .map_err(|e| sql_error("reading table statistics", &e))?;
    let (tuples, pages): (f64, f64) = (row.get(0), row.get(1));
    let per_page = if tuples > 0.0 && pages > 0.0 { tuples / pages } else { 100.0 };
    Ok(((chunk_size as f64 / per_page).ceil() as u64).max(1))
}
