//! MySQL/MariaDB chunk reader for the snapshot algorithm (see `src/snapshot/`
//! for the shared part). Nothing is written to the server, so a read-only replica works.
//!
//! Watermarks: for each chunk the reader
//! 1. asks the stream side to open the chunk's window ([`ReaderEvent::Open`]);
//!    it opens between two transactions and answers with the binlog position
//!    `S` it opened at (every change after `S` is noted);
//! 2. reads the chunk in `START TRANSACTION WITH CONSISTENT SNAPSHOT` and
//!    takes the snapshot's exact binlog position `P` from MariaDB's
//!    `Binlog_snapshot_file`/`Binlog_snapshot_position` status: the rows are
//!    the table's state after exactly the transactions before `P`. If
//!    `P < S` (a transaction the stream already saw is not yet visible to new
//!    snapshots, a moment inside the server's commit) the read is retried;
//! 3. sends the chunk with `high = P`; the stream side emits it once it is
//!    past `P`, without the rows whose keys changed since `S`.
//!
//! Since `S <= P`, a row whose key did not change after `S` has the same
//! state at `P` as wherever the chunk is emitted: no race remains (DBLog's
//! low/high watermarks read around a plain SELECT leave one). MySQL has no
//! snapshot position: there `P` is `SHOW MASTER STATUS` read after the
//! SELECT, inside the same snapshot, and DBLog's known microsecond race applies.
//!
//! Values (see [`values`]): rows are read with the binary protocol (prepared statements), in
//! a session with `time_zone = '+00:00'`, and mapped to the same `Value`s
//! the binlog decoder gives (DECIMAL as exact text, BIGINT UNSIGNED exact,
//! microsecond temporals, TIME negative, zero dates NULL, YEAR 0 as 1900,
//! BIT as a bit string, ENUM/SET labels, binary strings as bytes, GEOMETRY
//! in the server's internal form). The table's schema is built from
//! `information_schema.COLUMNS` the way the decoder builds it from a
//! TableMap, so both sides announce one schema version.
//!
//! Tables with a primary key are read in key order, `WHERE k1 > ? OR (k1 =
//! ? AND k2 > ?) ... ORDER BY k1, k2 LIMIT n` (the expanded form uses the
//! index; row constructors may not). Tables without one are read by one
//! scan in the clustered index's order inside one consistent snapshot,
//! chunked as it streams; a resumed run skips the rows already delivered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, Row as MyRow, Value as MyValue};
use outflow_model::position::MysqlAnchor;
use outflow_model::{BinlogSource, KeyRange, KeyText, Position, Row, SourceInfo, TableId, TableSchema};
use tokio::sync::{mpsc, oneshot};

mod values;

use self::values::{convert_row, describe, key_params, key_text, Column, Kind};
use crate::error::{Error, Result};
use crate::mysql::catalog::sql_error;
use crate::progress::RowProgress;
use crate::snapshot::{
    interpolated_uppers, range_start, ranges_between, ranges_wanted, stored_ranges, worth_splitting, Chunk, InFlight,
    Parallel, RangeUpdate, ReaderEvent,
};
use crate::state::TableSnapshot;

static NEXT_CHUNK: AtomicU64 = AtomicU64::new(1);

/// What a reader needs besides its table.
#[derive(Clone)]
pub struct ReaderConfig {
    pub opts: Opts,
    pub mariadb: bool,
    pub server_id: u32,
    pub chunk_size: u64,
    /// The global transforms' excluded columns of the table: not read.
    pub exclude: Vec<String>,
    /// Only the rows matching this SQL condition (an ad-hoc snapshot's,
    /// checked first with [`check_condition`]).
    pub condition: Option<String>,
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The table's current shape, as a snapshot reads it.
pub async fn describe_schema(conn: &mut Conn, table: &TableId) -> Result<Arc<TableSchema>> {
    let (columns, _) = describe(conn, table, &[]).await?;
    Ok(Arc::new(schema_of(table, &columns)))
}

fn schema_of(table: &TableId, columns: &[Column]) -> TableSchema {
    TableSchema { id: table.clone(), version: 1, columns: columns.iter().map(|c| c.schema.clone()).collect() }
}

/// Reads one table chunk by chunk, sending each chunk to the stream side.
/// A big table with a key that nothing has been read of yet is split into
/// key ranges, read at once by as many connections as `parallel` has free
/// reader slots.
pub async fn snapshot_table(
    cfg: &ReaderConfig,
    table: TableId,
    progress: TableSnapshot,
    parallel: Parallel,
    out: &mpsc::Sender<ReaderEvent>,
) -> Result<()> {
    let mut conn = connect(cfg).await?;
    let (columns, key_order) = describe(&mut conn, &table, &cfg.exclude).await?;
    let schema = Arc::new(schema_of(&table, &columns));
    let qualified = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let select_list = columns.iter().map(|c| quote(&c.schema.name)).collect::<Vec<_>>().join(", ");
    tracing::info!(table = %table, rows_done = progress.rows, "snapshot started");
    let estimate = estimated_rows(&mut conn, &table).await?;
    let bar = Mutex::new(RowProgress::new(table.to_string(), estimate, progress.rows));
    let mut reader = Reader { cfg, conn, table: &table, schema, columns, out };

    if key_order.is_empty() {
        let mut bar = bar.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut progress = progress;
        if !reader.keyless(&select_list, &qualified, &mut progress, &mut bar).await? {
            return Ok(());
        }
        bar.finish();
        let _ = reader.conn.disconnect().await;
        tracing::info!(table = %table, rows = progress.rows, "snapshot done");
        return Ok(());
    }

    let mut ranges = stored_ranges(&progress);
    let mut extra = Vec::new();
    if worth_splitting(&progress, estimate, cfg.chunk_size, 2) {
        extra = parallel.take(ranges_wanted(estimate, cfg.chunk_size) - 1);
        if !extra.is_empty() {
            let uppers = reader.boundaries(&key_order, &qualified, estimate, extra.len() + 1).await?;
            ranges = ranges_between(uppers);
            tracing::info!(table = %table, ranges = ranges.len(), "snapshot reads the table as key ranges at once");
        }
    }
    let keyed = Keyed {
        select_list,
        qualified,
        key_order,
        base: TableSnapshot { ranges: ranges.clone(), last_key: None, ..progress },
        reader: NEXT_READER.fetch_add(1, Ordering::Relaxed),
        todo: Mutex::new((0..ranges.len()).rev().filter(|&i| !ranges[i].done).collect()),
        ranges,
        bar,
    };
    let mut readers = vec![reader];
    for _ in 0..extra.len().min(keyed.ranges.len().saturating_sub(1)) {
        let conn = connect(cfg).await?;
        let (schema, columns) = (readers[0].schema.clone(), readers[0].columns.clone());
        readers.push(Reader { cfg, conn, table: &table, schema, columns, out });
    }
    let finished = futures::future::try_join_all(readers.into_iter().map(|r| keyed.read(r))).await?;
    let finished = finished.into_iter().all(|done| done);
    drop(extra);
    if finished {
        keyed.bar.into_inner().unwrap_or_else(|e| e.into_inner()).finish();
        tracing::info!(table = %table, "snapshot done");
    }
    Ok(())
}

/// A snapshot session: UTC, utf8mb4, repeatable read.
async fn connect(cfg: &ReaderConfig) -> Result<Conn> {
    let mut conn = Conn::new(cfg.opts.clone()).await.map_err(|e| sql_error("opening a snapshot connection", e))?;
    for sql in ["SET time_zone = '+00:00', NAMES utf8mb4", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"] {
        conn.query_drop(sql).await.map_err(|e| sql_error("setting up the snapshot session", e))?;
    }
    Ok(conn)
}

static NEXT_READER: AtomicU64 = AtomicU64::new(1);

/// A keyed table's snapshot, shared by the readers of its key ranges.
struct Keyed {
    select_list: String,
    qualified: String,
    key_order: Vec<usize>,
    /// The table's progress when this run started reading it.
    base: TableSnapshot,
    reader: u64,
    ranges: Vec<KeyRange>,
    /// Ranges no reader has taken yet (next one last).
    todo: Mutex<Vec<usize>>,
    bar: Mutex<RowProgress>,
}

impl Keyed {
    /// Reads key ranges taken from `todo` until none is left; false when
    /// the stream side stopped.
    async fn read(&self, mut reader: Reader<'_>) -> Result<bool> {
        let chunk_size = reader.cfg.chunk_size;
        let mut in_flight = InFlight::default();
        loop {
            let Some(index) = self.todo.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
            let mut range = self.ranges[index].clone();
            let lower = range_start(&self.ranges, index);
            while !range.done {
                let after = range.last_key.clone().or_else(|| lower.clone());
                let sql = keyed_chunk_sql(
                    &self.select_list,
                    &self.qualified,
                    &reader.columns,
                    &self.key_order,
                    after.is_some(),
                    range.upper.is_some(),
                    reader.cfg.condition.as_deref(),
                    chunk_size,
                );
                let mut params = Vec::new();
                for bound in [&after, &range.upper].into_iter().flatten() {
                    params.extend(key_params(&reader.columns, &self.key_order, bound)?);
                }
                let id = NEXT_CHUNK.fetch_add(1, Ordering::Relaxed);
                let (opened, at) = oneshot::channel();
                if reader.out.send(ReaderEvent::Open { id, table: reader.table.to_string(), opened }).await.is_err() {
                    return Ok(false); // the stream side stopped
                }
                let Ok(low) = at.await else { return Ok(false) };
                let (high, rows) = reader.read_chunk(&low, &sql, params).await?;
                if let Some(last) = rows.last() {
                    range.last_key = Some(self.key_order.iter().map(|&i| key_text(&last[i])).collect());
                }
                range.done = (rows.len() as u64) < chunk_size;
                let n = rows.len() as u64;
                let update = RangeUpdate { reader: self.reader, index, range: range.clone() };
                let chunk = new_chunk(reader.cfg, &reader.schema, id, rows, &self.base, Some(update), high);
                if !(in_flight.send(reader.out, chunk).await && in_flight.settle().await) {
                    return Ok(false);
                }
                self.bar.lock().unwrap_or_else(|e| e.into_inner()).advance(n);
            }
        }
        if !in_flight.drain().await {
            return Ok(false);
        }
        let _ = reader.conn.disconnect().await;
        Ok(true)
    }
}

struct Reader<'a> {
    cfg: &'a ReaderConfig,
    conn: Conn,
    table: &'a TableId,
    schema: Arc<TableSchema>,
    columns: Vec<Column>,
    out: &'a mpsc::Sender<ReaderEvent>,
}

impl Reader<'_> {
    /// Starts a consistent snapshot and returns its binlog position, at or
    /// after `low` when given (MariaDB; None on MySQL, which cannot say).
    async fn begin(&mut self, low: Option<&Position>) -> Result<Option<MysqlAnchor>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.conn
                .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(|e| sql_error("starting a consistent snapshot", e))?;
            if !self.cfg.mariadb {
                return Ok(None);
            }
            let rows: Vec<(String, String)> = self
                .conn
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(|e| sql_error("reading the snapshot's binlog position", e))?;
            let get = |name: &str| rows.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
            let (Some(file), Some(pos)) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) else {
                return Err(Error::fatal(
                    "the server did not report Binlog_snapshot_file/Binlog_snapshot_position",
                    "snapshots need the binary log on (log_bin); or set [snapshot] mode = \"never\"",
                ));
            };
            let high = MysqlAnchor::File { name: file.into(), pos: pos.parse().unwrap_or(0) };
            let behind = low.is_some_and(|l| Position::mysql(high.clone()) < *l);
            if !behind {
                return Ok(Some(high));
            }
            // A transaction the stream has seen is still committing: not yet
            // in new snapshots. It will be in a moment.
            self.commit().await?;
            if tokio::time::Instant::now() > deadline {
                return Err(Error::fatal(
                    format!(
                        "the consistent snapshot stays behind the stream's position {}",
                        low.map(|l| l.to_string()).unwrap_or_default()
                    ),
                    "this is a bug or a stuck commit on the server; please report it",
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `n - 1` keys splitting the table into `n` ranges of about equal rows
    /// (fewer when the table is smaller than `rows` says), ascending.
    async fn boundaries(&mut self, keys: &[usize], qualified: &str, rows: u64, n: usize) -> Result<Vec<KeyText>> {
        let list = keys.iter().map(|&i| quote(&self.columns[i].schema.name)).collect::<Vec<_>>().join(", ");
        if let [key] = keys[..] {
            if matches!(self.columns[key].kind, Kind::Int { .. }) {
                let sql = format!("SELECT CAST(MIN({list}) AS CHAR), CAST(MAX({list}) AS CHAR) FROM {qualified}");
                let bounds: Option<(Option<String>, Option<String>)> = self
                    .conn
                    .query_first(sql)
                    .await
                    .map_err(|e| sql_error("splitting a table into key ranges for its snapshot", e))?;
                let parse = |t: Option<String>| t.and_then(|t| t.parse::<i128>().ok());
                return Ok(match bounds.map(|(min, max)| (parse(min), parse(max))) {
                    Some((Some(min), Some(max))) => interpolated_uppers(min, max, n),
                    _ => Vec::new(),
                });
            }
        }
        let key_columns: Vec<Column> = keys.iter().map(|&i| self.columns[i].clone()).collect();
        let mut uppers = Vec::new();
        for i in 1..n as u64 {
            let sql = format!("SELECT {list} FROM {qualified} ORDER BY {list} LIMIT 1 OFFSET {}", rows * i / n as u64);
            let row: Option<MyRow> = self
                .conn
                .exec_first(sql.as_str(), Params::Empty)
                .await
                .map_err(|e| sql_error("splitting a table into key ranges for its snapshot", e))?;
            let Some(row) = row else { break };
            let key: KeyText = convert_row(&key_columns, row)?.iter().map(key_text).collect();
            if uppers.last() != Some(&key) {
                uppers.push(key);
            }
        }
        Ok(uppers)
    }

    async fn commit(&mut self) -> Result<()> {
        self.conn.query_drop("COMMIT").await.map_err(|e| sql_error("ending a snapshot read", e))
    }

    /// `SHOW MASTER STATUS` as an anchor (MySQL's chunk position).
    async fn master_status(&mut self) -> Result<MysqlAnchor> {
        let row: Option<MyRow> = self.conn.query_first("SHOW MASTER STATUS").await.map_err(|e| match e {
            mysql_async::Error::Server(se) if se.code == 1227 => Error::fatal(
                format!("the snapshot reader may not read the binlog position: {}", se.message),
                "GRANT REPLICATION CLIENT ON *.* TO the [source] user (BINLOG MONITOR on MariaDB)",
            ),
            e => sql_error("SHOW MASTER STATUS", e),
        })?;
        let row = row.ok_or_else(|| Error::fatal("SHOW MASTER STATUS returned nothing", "enable log_bin"))?;
        let file: String = row.get_opt(0).and_then(|v| v.ok()).unwrap_or_default();
        let pos: u64 = row.get_opt(1).and_then(|v| v.ok()).unwrap_or_default();
        Ok(MysqlAnchor::File { name: file.into(), pos })
    }

    async fn read_chunk(&mut self, low: &Position, sql: &str, params: Vec<MyValue>) -> Result<(MysqlAnchor, Vec<Row>)> {
        let high = self.begin(Some(low)).await?;
        let params = if params.is_empty() { Params::Empty } else { Params::Positional(params) };
        let raw: Vec<MyRow> = self
            .conn
            .exec(sql, params)
            .await
            .map_err(|e| sql_error(&format!("reading a snapshot chunk of {}", self.table), e))?;
        let high = match high {
            Some(h) => h,
            None => self.master_status().await?,
        };
        self.commit().await?;
        let rows = raw.into_iter().map(|r| convert_row(&self.columns, r)).collect::<Result<Vec<_>>>()?;
        Ok((high, rows))
    }

    /// A table without a key: one scan in one consistent snapshot, sent in
    /// chunks as it streams; `progress.resume` counts the rows already
    /// delivered. False when the stream side stopped.
    async fn keyless(
        &mut self,
        select_list: &str,
        qualified: &str,
        progress: &mut TableSnapshot,
        bar: &mut RowProgress,
    ) -> Result<bool> {
        let high = match self.begin(None).await? {
            Some(h) => h,
            None => self.master_status().await?,
        };
        let skip = progress.resume.unwrap_or(0);
        let condition = cfg_condition(self.cfg);
        let sql = format!("SELECT {select_list} FROM {qualified}{condition}");
        let Reader { cfg, conn, table, schema, columns, out } = self;
        let mut rows: Vec<Row> = Vec::new();
        let mut seen = 0u64;
        let mut in_flight = InFlight::default();
        {
            let mut result = conn
                .exec_iter(sql.as_str(), Params::Empty)
                .await
                .map_err(|e| sql_error(&format!("reading {table} for its snapshot"), e))?;
            while let Some(row) = result.next().await.map_err(|e| sql_error("reading snapshot rows", e))? {
                seen += 1;
                if seen <= skip {
                    continue;
                }
                rows.push(convert_row(columns, row)?);
                if rows.len() as u64 >= cfg.chunk_size {
                    let rows_read = std::mem::take(&mut rows);
                    progress.rows += rows_read.len() as u64;
                    progress.resume = Some(seen);
                    bar.advance(rows_read.len() as u64);
                    let id = NEXT_CHUNK.fetch_add(1, Ordering::Relaxed);
                    let chunk = new_chunk(cfg, schema, id, rows_read, progress, None, high.clone());
                    if !(in_flight.send(out, chunk).await && in_flight.settle().await) {
                        return Ok(false);
                    }
                }
            }
        }
        self.commit().await?;
        progress.rows += rows.len() as u64;
        progress.resume = Some(seen);
        progress.done = true;
        bar.advance(rows.len() as u64);
        let id = NEXT_CHUNK.fetch_add(1, Ordering::Relaxed);
        let last = new_chunk(self.cfg, &self.schema, id, rows, progress, None, high);
        Ok(in_flight.send(self.out, last).await && in_flight.drain().await)
    }
}

/// A chunk whose rows are consistent with the binlog position `high`.
fn new_chunk(
    cfg: &ReaderConfig,
    schema: &Arc<TableSchema>,
    id: u64,
    rows: Vec<Row>,
    progress: &TableSnapshot,
    range: Option<RangeUpdate>,
    high: MysqlAnchor,
) -> Chunk {
    let binlog = match &high {
        MysqlAnchor::File { name, pos } => Some(BinlogSource {
            file: name.clone(),
            pos: *pos,
            row: 0,
            server_id: cfg.server_id,
            gtid: None,
            thread: None,
        }),
        MysqlAnchor::Gtid(_) => None,
    };
    let (emitted, _) = oneshot::channel();
    Chunk {
        id,
        table: schema.clone(),
        rows,
        keyed: range.is_some(),
        progress: progress.clone(),
        range,
        high: Some(Position::mysql(high)),
        source: SourceInfo { binlog, ..SourceInfo::default() },
        emitted,
    }
}

/// The chunk query: keys after the last one read (`after`) and up to the
/// range's upper bound (`upper`), in key order. Comparisons are expanded,
/// `k1 > ? OR (k1 = ? AND k2 > ?)`, which use the index where row
/// constructors may not; [`key_params`] gives each bound's parameters.
fn keyed_chunk_sql(
    select_list: &str,
    qualified: &str,
    columns: &[Column],
    keys: &[usize],
    after: bool,
    upper: bool,
    condition: Option<&str>,
    limit: u64,
) -> String {
    let name = |i: usize| quote(&columns[i].schema.name);
    let expanded = |inner: &str, last: &str| {
        let terms: Vec<String> = (0..keys.len())
            .map(|n| {
                let mut parts: Vec<String> =
                    keys[..n].iter().map(|&i| format!("{} = {}", name(i), placeholder(columns[i].kind))).collect();
                let op = if n + 1 == keys.len() { last } else { inner };
                parts.push(format!("{} {op} {}", name(keys[n]), placeholder(columns[keys[n]].kind)));
                format!("({})", parts.join(" AND "))
            })
            .collect();
        format!("({})", terms.join(" OR "))
    };
    let mut filters = Vec::new();
    if after {
        filters.push(expanded(">", ">"));
    }
    if upper {
        filters.push(expanded("<", "<="));
    }
    if let Some(c) = condition {
        filters.push(format!("(\n{c}\n)"));
    }
    let filter = if filters.is_empty() { String::new() } else { format!(" WHERE {}", filters.join(" AND ")) };
    let order = keys.iter().map(|&i| name(i)).collect::<Vec<_>>().join(", ");
    format!("SELECT {select_list} FROM {qualified}{filter} ORDER BY {order} LIMIT {limit}")
}

/// ` WHERE (condition)` of a keyless read, the condition on lines of its
/// own so that a `-- ` comment in it ends with it.
fn cfg_condition(cfg: &ReaderConfig) -> String {
    cfg.condition.as_deref().map(|c| format!(" WHERE (\n{c}\n)")).unwrap_or_default()
}

/// Checks an ad-hoc snapshot's condition on `table` before any chunk is
/// read: prepared (one statement only, never run) in the shape the chunks
/// use, so a condition that is not an SQL expression over the table's
/// columns — or that tries to end the statement — is refused with the
/// server's own message.
pub async fn check_condition(opts: &Opts, table: &TableId, condition: &str) -> Result<()> {
    let mut conn = Conn::new(opts.clone()).await.map_err(|e| sql_error("connecting to check a snapshot condition", e))?;
    let qualified = format!("{}.{}", quote(&table.schema), quote(&table.name));
    let sql = format!("SELECT 1 FROM {qualified} WHERE (\n{condition}\n) LIMIT 0");
    let checked = conn.prep(sql.as_str()).await.map(|_| ());
    let _ = conn.disconnect().await;
    checked.map_err(|e| {
        let message = match &e {
            mysql_async::Error::Server(se) => se.message.clone(),
            other => other.to_string(),
        };
        Error::config(
            format!("the snapshot condition for {table} is not valid SQL for it: {message}"),
            "write a boolean SQL condition over the table's columns, e.g. \"id > 1000\"",
        )
    })
}

/// A parameter typed like the key column, so comparisons are exact (a
/// string compared with a DECIMAL would go through a double).
fn placeholder(kind: Kind) -> String {
    match kind {
        Kind::Decimal { precision, scale } => format!("CAST(? AS DECIMAL({precision},{scale}))"),
        Kind::Date => "CAST(? AS DATE)".into(),
        Kind::DateTime | Kind::Timestamp => "CAST(? AS DATETIME(6))".into(),
        Kind::Time => "CAST(? AS TIME(6))".into(),
        _ => "?".into(),
    }
}

/// The server's row estimate (0 when unknown).
async fn estimated_rows(conn: &mut Conn, table: &TableId) -> Result<u64> {
    let n: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| sql_error("reading table statistics", e))?;
    Ok(n.flatten().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use outflow_model::{ColumnSchema, Value};

    use super::values::*;
    use super::*;

    #[test]
    fn key_texts_read_back_as_parameters() {
        assert_eq!(key_text(&Value::Timestamp(1_704_164_645_123_456)).as_deref(), Some("2024-01-02 03:04:05.123456"));
        assert_eq!(key_text(&Value::Time(-3_723_000_004)).as_deref(), Some("-01:02:03.000004"));
        assert_eq!(key_text(&Value::Date(19724)).as_deref(), Some("2024-01-02"));
        assert_eq!(key_text(&Value::Bytes(vec![0, 0xff])).as_deref(), Some("00ff"));
        let param = |kind, text| key_param(&key_column("k", kind), text);
        assert_eq!(param(Kind::Bytes, "00ff"), Some(MyValue::Bytes(vec![0, 0xff])));
        assert_eq!(param(Kind::Int { unsigned: true }, "18446744073709551615"), Some(MyValue::UInt(u64::MAX)));
        assert_eq!(param(Kind::Bit { width: 3 }, "101"), Some(MyValue::UInt(5)));
    }

    fn key_column(name: &str, kind: Kind) -> Column {
        Column {
            schema: ColumnSchema {
                name: name.into(),
                ty: outflow_model::ColumnType::Other,
                type_name: String::new(),
                type_id: 0,
                type_modifier: -1,
                nullable: false,
                key: true,
            },
            kind,
            labels: Vec::new(),
        }
    }

    #[test]
    fn enum_keys_page_by_position_not_by_label() {
        // As information_schema spells `ENUM('zebra','it''s','a\\b','x,y')`.
        let labels = enum_labels("enum('zebra','it''s','a\\\\b','x,y')");
        assert_eq!(labels, vec!["zebra", "it's", "a\\b", "x,y"]);
        let column = Column { labels, ..key_column("k", Kind::Enum) };
        assert_eq!(key_param(&column, "zebra"), Some(MyValue::UInt(1)));
        assert_eq!(key_param(&column, "x,y"), Some(MyValue::UInt(4)));
        assert_eq!(key_param(&column, ""), Some(MyValue::UInt(0)));
        assert_eq!(key_param(&column, "nope"), None);
    }

    #[test]
    fn composite_keys_page_with_an_expanded_filter() {
        let col = key_column;
        let columns = vec![col("a", Kind::Int { unsigned: false }), col("b", Kind::Decimal { precision: 5, scale: 2 })];
        let sql = keyed_chunk_sql("`a`, `b`", "`d`.`t`", &columns, &[0, 1], true, false, None, 10);
        assert_eq!(
            sql,
            "SELECT `a`, `b` FROM `d`.`t` WHERE ((`a` > ?) OR (`a` = ? AND `b` > CAST(? AS DECIMAL(5,2)))) ORDER BY `a`, `b` LIMIT 10"
        );
        // A key range's upper bound is inclusive.
        let sql = keyed_chunk_sql("`a`", "`d`.`t`", &columns, &[0, 1], true, true, None, 10);
        assert!(
            sql.ends_with("AND ((`a` < ?) OR (`a` = ? AND `b` <= CAST(? AS DECIMAL(5,2)))) ORDER BY `a`, `b` LIMIT 10")
        );
        let params = key_params(&columns, &[0, 1], &[Some("7".into()), Some("1.50".into())]).unwrap();
        assert_eq!(params, vec![MyValue::Int(7), MyValue::Int(7), MyValue::Bytes(b"1.50".to_vec())]);
    }

    #[test]
    fn binary_values_convert_like_the_binlog_decoder() {
        assert_eq!(convert(Kind::Year, MyValue::Int(0)), Some(Value::Int(1900)));
        assert_eq!(convert(Kind::Date, MyValue::Date(0, 0, 0, 0, 0, 0, 0)), Some(Value::Null));
        assert_eq!(convert(Kind::Time, MyValue::Time(true, 34, 22, 59, 59, 0)), Some(Value::Time(-3_020_399_000_000)));
        assert_eq!(
            convert(Kind::Bit { width: 12 }, MyValue::Bytes(vec![0x0a, 0xaa])),
            Some(Value::Bits("101010101010".into()))
        );
        assert_eq!(convert(Kind::Int { unsigned: true }, MyValue::UInt(u64::MAX)), Some(Value::UInt(u64::MAX)));
    }
}
