//! Ordinary SQL against the source (tokio-postgres): preflight checks, the
//! publication, slot facts, user-defined types, the server's WAL position.


use outflow_decoders::pg_type_registry::PgType;
use outflow_model::TableFilter;
use tokio_postgres::Client;

use outflow_pgconn::PgParams;
use super::sql::connection_lost;
use crate::error::{Error, Result};

/// Facts about a replication slot, as `pg_replication_slots` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotInfo {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub confirmed_flush_lsn: Option<String>,
    pub restart_lsn: Option<String>,
    pub retained_wal_bytes: Option<i64>,
    pub wal_status: Option<String>,
    pub safe_wal_size: Option<i64>,
    /// A failover slot (PostgreSQL 17+; None before).
    pub failover: Option<bool>,
}

/// The server's WAL position: replayed so far on a standby, written on a primary.
pub const SERVER_LSN: &str =
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)";

pub struct Catalog {
    client: Client,
    display: String,
    /// The server is a hot standby (read-only; logical decoding on a
    /// standby needs PostgreSQL 16+).
    pub standby: bool,
}

impl Catalog {
    pub async fn connect(params: &PgParams) -> Result<Catalog> {
        let display = params.display();
        let client = outflow_pgconn::connect(params).await?.map_err(|e| connect_error(params, &e))?;
        let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await.map_err(|e| sql_error("pg_is_in_recovery()", &e))?;
        Ok(Catalog { client, display, standby: row.get(0) })
    }

    /// On a standby: refuses `hot_standby_feedback = off` (the primary
    /// would remove catalog rows the slot still needs, and the server then
    /// invalidates the slot) and servers before PostgreSQL 16.
    pub async fn check_standby(&self) -> Result<()> {
        if !self.standby {
            return Ok(());
        }
        let row = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int, current_setting('hot_standby_feedback')", &[])
            .await
            .map_err(|e| sql_error("reading the standby's settings", &e))?;
        let (version, feedback): (i32, String) = (row.get(0), row.get(1));
        if version < 160000 {
            return Err(Error::fatal(
                format!("postgres at {} is a standby, and logical decoding on a standby needs PostgreSQL 16 or later", self.display),
                "point [source] url at the primary, or upgrade the standby",
            ));
        }
        if feedback != "on" {
            return Err(Error::fatal(
                format!("postgres at {} is a standby with hot_standby_feedback={feedback}; the primary could remove catalog rows the slot needs, and the slot would be invalidated", self.display),
                "on the standby: ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();",
            ));
        }
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Refuses servers whose `wal_level` is not `logical`.
    pub async fn check_wal_level(&self) -> Result<()> {
        let row = self.client.query_one("SHOW wal_level", &[]).await.map_err(|e| sql_error("SHOW wal_level", &e))?;
        let level: String = row.get(0);
        if level != "logical" {
            return Err(Error::fatal(
                format!(
                    "postgres at {} has wal_level={level}; logical replication needs wal_level=logical",
                    self.display
                ),
                "run ALTER SYSTEM SET wal_level = logical; then restart postgres",
            ));
        }
        Ok(())
    }

    /// `server_version_num`, e.g. 170004.
    pub async fn version_num(&self) -> Result<i32> {
        let row = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| sql_error("reading server_version_num", &e))?;
        Ok(row.get(0))
    }

    /// The server's system identifier (ties a state directory to one cluster).
    pub async fn system_identifier(&self) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT system_identifier::text FROM pg_control_system()", &[])
            .await
            .map_err(|e| sql_error("reading the system identifier", &e))?;
        Ok(row.get(0))
    }

    /// The tables (ordinary and partitioned, not partitions) `filter`
    /// selects, refusing include patterns that match no table at all.
    pub async fn resolve_tables(&self, filter: &TableFilter) -> Result<Vec<(String, String)>> {
        let all = self.user_tables().await?;
        if let Some(pattern) = filter.unmatched(&all).first() {
            return Err(Error::config(
                format!("table {pattern} does not exist in database at {}", self.display),
                "fix [source] tables, or create the table first",
            ));
        }
        let tables: Vec<_> = all.into_iter().filter(|(s, t)| filter.matches(s, t)).collect();
        if tables.is_empty() {
            return Err(Error::config(
                format!("every table [source] tables matches in database at {} is in exclude_tables", self.display),
                "fix [source] tables or exclude_tables",
            ));
        }
        Ok(tables)
    }

    /// The tables `filter` selects now (no error when none).
    pub async fn matching_tables(&self, filter: &TableFilter) -> Result<Vec<(String, String)>> {
        Ok(self.user_tables().await?.into_iter().filter(|(s, t)| filter.matches(s, t)).collect())
    }

    /// Every ordinary and partitioned table outside the system schemas.
    async fn user_tables(&self) -> Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p') AND NOT c.relispartition \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| sql_error("listing tables", &e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn slot(&self, name: &str) -> Result<Option<SlotInfo>> {
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT plugin, database, active, active_pid, confirmed_flush_lsn::text, restart_lsn::text, \
                 ({SERVER_LSN} - restart_lsn)::bigint, wal_status, safe_wal_size, \
                 (to_jsonb(s) ->> 'failover')::bool \
                 FROM pg_replication_slots s WHERE slot_name = $1"
                ),
                &[&name],
            )
            .await
            .map_err(|e| sql_error("reading pg_replication_slots", &e))?;
        Ok(row.map(|r| SlotInfo {
            plugin: r.get(0),
            database: r.get(1),
            active: r.get(2),
            active_pid: r.get(3),
            confirmed_flush_lsn: r.get(4),
            restart_lsn: r.get(5),
            retained_wal_bytes: r.get(6),
            wal_status: r.get(7),
            safe_wal_size: r.get(8),
            failover: r.get(9),
        }))
    }

    /// The server's current WAL write position.
    pub async fn current_wal_lsn(&self) -> Result<u64> {
        let row = self
            .client
            .query_one(&format!("SELECT ({SERVER_LSN} - '0/0')::bigint"), &[])
            .await
            .map_err(|e| sql_error("reading the server's WAL position", &e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// The end of the last WAL record inserted so far: everything committed
    /// before this call, also with `synchronous_commit = off` (whose commits
    /// may not be written yet, so `pg_current_wal_lsn()` can be behind them).
    ///
    /// The insert position points past a page header when the next record
    /// starts a new page, while a walsender that has read everything reports
    /// the end of the last record, i.e. the page boundary; that header is
    /// taken off so the two compare.
    /// On a standby: the end of the last record replayed.
    pub async fn wal_insert_end(&self) -> Result<u64> {
        if self.standby {
            return self.current_wal_lsn().await;
        }
        let row = self
            .client
            .query_one(
                "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint, current_setting('wal_block_size')::bigint, \
                 (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')",
                &[],
            )
            .await
            .map_err(|e| sql_error("reading pg_current_wal_insert_lsn()", &e))?;
        let (lsn, block, segment) =
            (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64, row.get::<_, i64>(2) as u64);
        Ok(record_end(lsn, block, segment))
    }

    /// The primary key's column names of a table (empty when it has none).
    pub async fn primary_key(&self, rel_id: u32) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND i.indisprimary",
                &[&rel_id],
            )
            .await
            .map_err(|e| sql_error("reading the primary key", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The names of a table's columns declared NOT NULL.
    pub async fn not_null_columns(&self, rel_id: u32) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT attname::text FROM pg_attribute \
                 WHERE attrelid = $1 AND attnum > 0 AND attnotnull AND NOT attisdropped",
                &[&rel_id],
            )
            .await
            .map_err(|e| sql_error("reading the table's NOT NULL columns", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Looks up a type the decoder does not know: enums (with their labels),
    /// domains (resolved to their base type), arrays of those.
    /// The first column of `tables` whose type outflow cannot decode in
    /// pgoutput's binary form (`schema.table.column (type)`), if any.
    pub async fn first_non_binary_column(&self, tables: &[(String, String)]) -> Result<Option<String>> {
        let schemas: Vec<&str> = tables.iter().map(|(s, _)| s.as_str()).collect();
        let names: Vec<&str> = tables.iter().map(|(_, t)| t.as_str()).collect();
        let rows = self
            .client
            .query(
                "SELECT n.nspname::text, c.relname::text, a.attname::text, a.atttypid, format_type(a.atttypid, NULL) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attnum > 0 AND NOT a.attisdropped \
                 AND (n.nspname::text, c.relname::text) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&schemas, &names],
            )
            .await
            .map_err(|e| sql_error("reading the captured columns' types", &e))?;
        let registry = outflow_decoders::pg_type_registry::TypeRegistry::new();
        for r in rows {
            let oid: u32 = r.get(3);
            let ty = match registry.is_known(oid) {
                true => registry.resolve(oid),
                false => self.lookup_type(oid).await?.1,
            };
            if !outflow_decoders::pgtypes::binary::supported(&ty) {
                let (schema, table, column, name): (String, String, String, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(4));
                return Ok(Some(format!("{schema}.{table}.{column} ({name})")));
            }
        }
        Ok(None)
    }

    pub async fn lookup_type(&self, oid: u32) -> Result<(String, PgType)> {
        let mut current = oid;
        let mut array_depth = 0;
        for _ in 0..16 {
            let row = self
                .client
                .query_opt("SELECT typname, typtype::text, typbasetype, typelem, typcategory::text FROM pg_type WHERE oid = $1", &[&current])
                .await
                .map_err(|e| sql_error("reading pg_type", &e))?;
            let Some(row) = row else { break };
            let typname: String = row.get(0);
            let typtype: String = row.get(1);
            let base: u32 = row.get(2);
            let elem: u32 = row.get(3);
            let category: String = row.get(4);
            let scalar = match typtype.as_str() {
                "d" => {
                    current = base;
                    continue;
                }
                "e" => {
                    let labels = self
                        .client
                        .query(
                            "SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder",
                            &[&current],
                        )
                        .await
                        .map_err(|e| sql_error("reading pg_enum", &e))?;
                    PgType::Enum(labels.iter().map(|r| r.get(0)).collect())
                }
                "b" if category == "A" && elem != 0 => {
                    array_depth += 1;
                    current = elem;
                    continue;
                }
                "b" if current < 16384 => PgType::Builtin(current),
                _ => PgType::Other,
            };
            // A domain is reported under its base type's name, arrays as `_name`.
            let mut ty = scalar;
            for _ in 0..array_depth {
                ty = PgType::Array(Box::new(ty));
            }
            return Ok((format!("{}{typname}", "_".repeat(array_depth)), ty));
        }
        Ok((oid.to_string(), PgType::Other))
    }
}

/// Takes a page header off an insert position that sits right after one
/// (long header at a segment start, short header at any other page start).
fn record_end(insert: u64, block: u64, segment: u64) -> u64 {
    const SHORT_HEADER: u64 = 24;
    const LONG_HEADER: u64 = 40;
    if segment > 0 && insert % segment == LONG_HEADER {
        insert - LONG_HEADER
    } else if block > 0 && insert % block == SHORT_HEADER {
        insert - SHORT_HEADER
    } else {
        insert
    }
}

fn connect_error(params: &PgParams, e: &tokio_postgres::Error) -> Error {
    let display = params.display();
    if let Some(db) = e.as_db_error() {
        return match db.code().code() {
            "28P01" | "28000" => Error::fatal(
                format!("authentication failed for user {:?} at {display}: {}", params.user, db.message()),
                "check the user and password in [source] url (or PGPASSWORD) and pg_hba.conf",
            ),
            "3D000" => Error::fatal(
                format!("database {:?} does not exist on {display}", params.dbname),
                "fix the database name in [source] url",
            ),
            // Shutting down, starting up: a later attempt may succeed.
            code if connection_lost(code) => {
                Error::transient(format!("cannot connect to postgres at {display}: {} (sqlstate {code})", db.message()))
                    .with_hint("wait for the server to accept connections")
            }
            _ => {
                Error::fatal(format!("cannot connect to postgres at {display}: {}", db.message()), "see the server log")
            }
        };
    }
    Error::transient(format!("cannot connect to postgres at {display}: {e}"))
        .with_hint("check the host and port in [source] url and that the server is running")
}

/// A failed query as our error: transient when the connection went away
/// (also when the server said so, e.g. while restarting: see
/// [`connection_lost`]), so the stream reconnects; fatal with the server's
/// text otherwise.
pub fn sql_error(what: &str, e: &tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if connection_lost(db.code().code()) => {
            Error::transient(format!("{what} failed: {} (sqlstate {})", db.message(), db.code().code()))
        }
        Some(db) => Error::fatal(
            format!("{what} failed: {} (sqlstate {})", db.message(), db.code().code()),
            db.hint().unwrap_or("see the postgres server log").to_string(),
        ),
        None => Error::transient(format!("{what} failed: {e}")),
    }
}


#[cfg(test)]
mod tests {
    use super::record_end;

    #[test]
    fn insert_positions_after_page_headers_become_record_ends() {
        let (block, segment) = (8192, 16 << 20);
        assert_eq!(record_end(0x1_0000 + 24, block, segment), 0x1_0000);
        assert_eq!(record_end((16 << 20) + 40, block, segment), 16 << 20);
        assert_eq!(record_end(0x1_0000 + 100, block, segment), 0x1_0000 + 100);
    }
}
