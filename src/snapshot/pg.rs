//! PostgreSQL chunk reader for the snapshot algorithm (see the parent
//! module). Watermarks are non-transactional logical decoding messages
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
use std::sync::Arc;

use outflow_decoders::pg_type_registry::{PgType, TypeRegistry};
use outflow_decoders::pgtypes::parse_text;
use outflow_decoders::{ColumnSchema, Row, TableId, TableSchema, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::SimpleQueryMessage;

use super::{watermark, Chunk, ReaderEvent, WATERMARK_PREFIX};
use crate::error::{Error, Result};
use crate::pg::catalog::{ident, sql_error, Catalog};
use crate::pg::params::PgParams;
use crate::progress::RowProgress;
use crate::state::TableSnapshot;

static NEXT_CHUNK: AtomicU64 = AtomicU64::new(1);

struct Column {
    schema: ColumnSchema,
    ty: PgType,
    /// `format_type` of the column, for casting key literals.
    sql_type: String,
}

/// Reads one table chunk by chunk, sending each chunk to the stream side.
pub async fn snapshot_table(
    params: &PgParams,
    run: &str,
    table: TableId,
    mut progress: TableSnapshot,
    chunk_size: u64,
    out: &mpsc::Sender<ReaderEvent>,
) -> Result<()> {
    let catalog = Catalog::connect(params).await?;
    let client = catalog.client();
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 3; SET bytea_output = 'hex'; SET standard_conforming_strings = on; \
             SET synchronous_commit = on",
        )
        .await
        .map_err(|e| sql_error("setting up the snapshot session", &e))?;
    let (mut schema, mut columns) = describe(&catalog, &table).await?;
    let keyed = schema.key_indexes().next().is_some();
    let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
    let mut select_list = columns.iter().map(|c| ident(&c.schema.name)).collect::<Vec<_>>().join(", ");
    let pages_per_chunk = if keyed { 0 } else { pages_per_chunk(&catalog, &qualified, chunk_size).await? };
    tracing::info!(table = %table, rows_done = progress.rows, "snapshot started");
    let mut bar = RowProgress::new(table.to_string(), estimated_rows(&catalog, &qualified).await?, progress.rows);

    let mut in_flight: Option<oneshot::Receiver<()>> = None;
    while !progress.done {
        let id = NEXT_CHUNK.fetch_add(1, Ordering::Relaxed);
        let in_progress = emit_watermark(&catalog, &watermark(run, false, id, &table), false).await?;
        wait_until_visible(&catalog, &in_progress).await?;
        let (sql, last_page) = if keyed {
            (keyed_chunk_sql(&select_list, &qualified, &schema, &columns, progress.last_key.as_deref(), chunk_size), 0)
        } else {
            let from = progress.resume.unwrap_or(0);
            let to = from + pages_per_chunk;
            (
                format!(
                    "SELECT {select_list} FROM {qualified} WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid"
                ),
                to,
            )
        };
        // None: the table changed shape under the snapshot (ALTER TABLE
        // since it was described). This chunk's window then closes with no
        // rows and unchanged progress, and the chunk is read anew below.
        let read = read_rows(&catalog, &sql, &columns).await?;
        let reshaped = read.is_none();
        let rows = match read {
            Some((rows, last_key)) => {
                progress.rows += rows.len() as u64;
                bar.advance(rows.len() as u64);
                if keyed {
                    if last_key.is_some() {
                        progress.last_key = last_key;
                    }
                    progress.done = (rows.len() as u64) < chunk_size;
                } else {
                    progress.resume = Some(last_page);
                    progress.done = last_page >= relation_pages(&catalog, &qualified).await?;
                }
                rows
            }
            None => Vec::new(),
        };
        let (emitted, wait) = oneshot::channel();
        let chunk = Chunk {
            id,
            table: schema.clone(),
            rows,
            keyed,
            progress: progress.clone(),
            high: None,
            binlog: None,
            emitted,
        };
        if out.send(ReaderEvent::Chunk(chunk)).await.is_err() {
            return Ok(()); // the stream side stopped
        }
        emit_watermark(&catalog, &watermark(run, true, id, &table), true).await?;
        // One chunk in flight: the next one is read while the stream side
        // emits this one (watermarks stay in order; memory stays bounded).
        if let Some(previous) = in_flight.replace(wait) {
            if previous.await.is_err() {
                return Ok(()); // stopped before the chunk was emitted: resumes next run
            }
        }
        if reshaped {
            tracing::info!(table = %table, "table changed during its snapshot; reading it with its new columns");
            (schema, columns) = describe(&catalog, &table).await?;
            select_list = columns.iter().map(|c| ident(&c.schema.name)).collect::<Vec<_>>().join(", ");
        }
    }
    if let Some(last) = in_flight {
        if last.await.is_err() {
            return Ok(());
        }
    }
    bar.finish();
    tracing::info!(table = %table, rows = progress.rows, "snapshot done");
    Ok(())
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
                "GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO <the source user>; \
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

/// The table's columns (in order, dropped ones left out), types and key.
async fn describe(catalog: &Catalog, table: &TableId) -> Result<(Arc<TableSchema>, Vec<Column>)> {
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
    limit: u64,
) -> String {
    let keys: Vec<usize> = schema.key_indexes().collect();
    let key_list = keys.iter().map(|&i| ident(&columns[i].schema.name)).collect::<Vec<_>>().join(", ");
    let filter = match after {
        Some(values) => {
            let literals = keys
                .iter()
                .zip(values)
                .map(|(&i, v)| match v {
                    Some(v) => format!("{}::{}", literal(v), columns[i].sql_type),
                    None => "NULL".to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!(" WHERE ({key_list}) > ({literals})")
        }
        None => String::new(),
    };
    format!("SELECT {select_list} FROM {qualified}{filter} ORDER BY {key_list} LIMIT {limit}")
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
    let mut last_key = None;
    for m in messages {
        let SimpleQueryMessage::Row(r) = m else { continue };
        let mut row = Vec::with_capacity(columns.len());
        let mut key = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            let v = r.get(i);
            row.push(match v {
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
            if c.schema.key {
                key.push(v.map(str::to_string));
            }
        }
        rows.push(row);
        last_key = Some(key);
    }
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
