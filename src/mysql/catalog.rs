//! SQL against a MySQL/MariaDB server: connecting, the preflight checks a
//! binlog reader needs (each failure one error with the exact fix), and the
//! server's current binlog position for `--until-caught-up` and `status`.
//!
//! Server surprises handled here:
//! - MariaDB 10.5+ renamed REPLICATION CLIENT to BINLOG MONITOR in
//!   `SHOW GRANTS`; either spelling (or SUPER / ALL PRIVILEGES) counts.
//! - `binlog_row_metadata` exists only on MariaDB 10.5+ and MySQL 8.0.1+;
//!   older servers cannot give column names in the binlog and are refused.
//! - A replica connecting with a server_id another replica already uses
//!   silently disconnects that one: the preflight looks at `SHOW SLAVE HOSTS`.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use outflow_decoders::binlog::TableFilter;
use outflow_model::position::{GtidSet, MysqlAnchor};
use outflow_model::TableId;

use crate::error::{Error, Result};

/// A plain SQL connection, with what the preflight learned about the server.
pub struct Catalog {
    pub conn: Conn,
    pub opts: Opts,
    pub mariadb: bool,
    pub version: String,
    pub server_id: u32,
}

/// Turns a mysql_async error into ours: server errors are fatal with the
/// server's text; I/O errors are transient.
pub fn sql_error(what: &str, e: mysql_async::Error) -> Error {
    if super::tls::is_tls_failure(&e) {
        return Error::fatal(
            format!("{what}: the TLS handshake with mysql failed: {}", e.to_string().replace("Input/output error: ", "")),
            "check ssl-mode and ssl-ca in [source] url (VERIFY_CA needs the CA that signed the server certificate; VERIFY_IDENTITY also a certificate naming the url's host)",
        );
    }
    match e {
        mysql_async::Error::Server(se) => Error::fatal(
            format!("{what} failed: {} (mysql error {})", se.message.to_lowercase(), se.code),
            "check the [source] url's user and its privileges",
        ),
        mysql_async::Error::Io(io) => Error::transient(format!("{what}: connection to mysql failed: {io}")),
        other => Error::fatal(format!("{what} failed: {other}"), "check the [source] url"),
    }
}

/// The connection settings of `[source] url`, TLS included (see `tls`).
pub fn parse_url(url: &str) -> Result<Opts> {
    let (url, ssl) = super::tls::split_url(url)?;
    let opts = Opts::from_url(&url).map_err(|e| {
        Error::config(
            format!("[source] url is not a mysql url: {e}"),
            "write it as mysql://USER:${PASSWORD}@HOST:3306/DATABASE",
        )
    })?;
    Ok(super::tls::with_tls(opts, ssl))
}

pub fn display(opts: &Opts) -> String {
    format!("{}:{}/{}", opts.ip_or_hostname(), opts.tcp_port(), opts.db_name().unwrap_or(""))
}

impl Catalog {
    pub async fn connect(url: &str) -> Result<Catalog> {
        let opts = parse_url(url)?;
        let mut conn = Conn::new(opts.clone()).await.map_err(|e| match e {
            mysql_async::Error::Server(se) if se.code == 1045 => Error::fatal(
                format!("mysql refused the login of {:?}: {}", opts.user().unwrap_or(""), se.message),
                "check the user and password in [source] url",
            ),
            e if super::tls::is_tls_failure(&e) => sql_error("connecting to mysql", e),
            mysql_async::Error::Io(io) => Error::transient(format!(
                "cannot connect to mysql at {}:{}: {io}",
                opts.ip_or_hostname(),
                opts.tcp_port()
            ))
            .with_hint("check that the server is running and [source] url's host and port"),
            other => sql_error("connecting to mysql", other),
        })?;
        let (version, server_id): (String, u32) = conn
            .query_first("SELECT @@version, @@server_id")
            .await
            .map_err(|e| sql_error("reading the server version", e))?
            .unwrap_or_default();
        let mariadb = version.to_lowercase().contains("mariadb");
        Ok(Catalog { conn, opts, mariadb, version, server_id })
    }

    pub(crate) async fn var(&mut self, name: &str) -> Result<Option<String>> {
        let row: Option<Row> = self.conn.query_first(format!("SELECT @@{name}")).await.or_else(|e| match e {
            mysql_async::Error::Server(se) if se.code == 1193 => Ok(None),
            e => Err(sql_error(&format!("reading @@{name}"), e)),
        })?;
        Ok(row.and_then(|r| r.get_opt::<Option<String>, _>(0).and_then(|v| v.ok()).flatten()))
    }

    /// Server settings a row-based binlog reader needs, and privileges.
    pub async fn preflight(&mut self, our_server_id: u32) -> Result<()> {
        let log_bin = self.var("log_bin").await?.unwrap_or_default();
        if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
            return Err(Error::fatal(
                "the server's binary log is off (log_bin=OFF): there is no change stream to read",
                "start the server with log_bin=mysql-bin (in my.cnf [mysqld]), then restart it",
            ));
        }
        let expect = [("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("binlog_row_metadata", "FULL")];
        for (name, want) in expect {
            match self.var(name).await? {
                Some(v) if v.eq_ignore_ascii_case(want) => {}
                Some(v) => {
                    return Err(Error::fatal(
                        format!("{name} is {v}, but outflow needs {want}"),
                        format!("SET GLOBAL {name} = '{want}'; and put {name}={want} in my.cnf [mysqld] so it survives a restart"),
                    ))
                }
                None => {
                    return Err(Error::fatal(
                        format!("this server ({}) has no {name} setting; outflow needs {name}={want}", self.version),
                        "use MariaDB 10.5+ or MySQL 8.0+",
                    ))
                }
            }
        }
        if self.var("log_bin_compress").await?.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON")) {
            return Err(Error::fatal(
                "log_bin_compress is ON: outflow cannot read compressed binlog events",
                "SET GLOBAL log_bin_compress = OFF; (and in my.cnf)",
            ));
        }
        self.check_privileges().await?;
        if our_server_id == self.server_id {
            return Err(Error::config(
                format!("[source] server_id {our_server_id} is the server's own server_id"),
                "choose a server_id no server or replica in the topology uses",
            ));
        }
        // Needs REPLICATION MASTER ADMIN on MariaDB; without it the check is
        // skipped. A replica killed a moment ago (our own previous run) stays
        // listed until the server notices, so a clash must persist a few seconds.
        let mut clash = None;
        for attempt in 0..6 {
            clash = self.replica_with_id(our_server_id).await;
            if clash.is_none() {
                break;
            }
            if attempt < 5 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        if let Some(host) = clash {
            return Err(Error::fatal(
                format!("another replica ({host}) is connected with server_id {our_server_id}"),
                "give this pipeline its own [source] server_id (a second replica with the same id disconnects the first)",
            ));
        }
        Ok(())
    }

    async fn replica_with_id(&mut self, id: u32) -> Option<String> {
        let rows = self.conn.query::<Row, _>("SHOW SLAVE HOSTS").await.ok()?;
        rows.into_iter()
            .find(|r| r.get_opt::<u32, _>(0).and_then(|v| v.ok()) == Some(id))
            .map(|r| r.get_opt::<String, _>(1).and_then(|v| v.ok()).unwrap_or_else(|| "unknown host".into()))
    }

    pub(crate) async fn check_privileges(&mut self) -> Result<()> {
        let grants: Vec<String> = self.conn.query("SHOW GRANTS").await.map_err(|e| sql_error("SHOW GRANTS", e))?;
        let all = grants.join("\n").to_uppercase();
        let has = |p: &str| all.contains(p) || all.contains("ALL PRIVILEGES ON *.*");
        let user = self.opts.user().unwrap_or("").to_string();
        if !has("REPLICATION SLAVE") {
            return Err(Error::fatal(
                format!("user {user:?} lacks the REPLICATION SLAVE privilege, needed to read the binlog"),
                format!("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%';"),
            ));
        }
        if !(has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SUPER")) {
            return Err(Error::fatal(
                format!("user {user:?} lacks the REPLICATION CLIENT privilege, needed to read the binlog position"),
                format!("GRANT REPLICATION CLIENT ON *.* TO '{user}'@'%';"),
            ));
        }
        Ok(())
    }

    /// The base tables the `db.table` patterns of `[source] tables` match now
    /// (system schemas left out), for snapshots.
    pub async fn resolve_tables(&mut self, filter: &TableFilter) -> Result<Vec<TableId>> {
        let rows: Vec<(String, String)> = self
            .conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
                 AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .await
            .map_err(|e| sql_error("listing tables", e))?;
        Ok(rows.into_iter().filter(|(d, t)| filter.matches(d, t)).map(|(d, t)| TableId::new(d, t)).collect())
    }

    /// The server's current end: its GTID state (MariaDB), else binlog file and offset.
    pub async fn current_end(&mut self) -> Result<MysqlAnchor> {
        if self.mariadb {
            let pos = self.var("gtid_binlog_pos").await?.unwrap_or_default();
            let set: GtidSet = pos.parse().map_err(|e| {
                Error::fatal(
                    format!("cannot read @@gtid_binlog_pos {pos:?}: {e}"),
                    "please report this with the server version",
                )
            })?;
            return Ok(MysqlAnchor::Gtid(set));
        }
        let (file, pos) = self.master_status().await?;
        Ok(MysqlAnchor::File { name: file.into(), pos })
    }

    /// `SHOW MASTER STATUS`: the file and offset the server writes next.
    pub async fn master_status(&mut self) -> Result<(String, u64)> {
        let row: Option<Row> = self.conn.query_first("SHOW MASTER STATUS").await.map_err(|e| match e {
            mysql_async::Error::Server(se) if se.code == 1227 => Error::fatal(
                format!("user {:?} may not read the binlog position: {}", self.opts.user().unwrap_or(""), se.message),
                format!("GRANT REPLICATION CLIENT ON *.* TO '{}'@'%';", self.opts.user().unwrap_or("")),
            ),
            e => sql_error("SHOW MASTER STATUS", e),
        })?;
        let row = row.ok_or_else(|| {
            Error::fatal(
                "SHOW MASTER STATUS returned nothing: the binary log is off",
                "enable log_bin and restart the server",
            )
        })?;
        let file: String = row.get_opt(0).and_then(|v| v.ok()).unwrap_or_default();
        let pos: u64 = row.get_opt(1).and_then(|v| v.ok()).unwrap_or_default();
        Ok((file, pos))
    }

    /// `SHOW BINARY LOGS`: (file, size) oldest first.
    pub async fn binary_logs(&mut self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<Row> = self.conn.query("SHOW BINARY LOGS").await.map_err(|e| sql_error("SHOW BINARY LOGS", e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get_opt::<String, _>(0).and_then(|v| v.ok()).unwrap_or_default(),
                    r.get_opt::<u64, _>(1).and_then(|v| v.ok()).unwrap_or(0),
                )
            })
            .collect())
    }

    /// Fails when a saved file position is no longer on the server.
    pub async fn check_not_purged(&mut self, anchor: &MysqlAnchor) -> Result<()> {
        match anchor {
            MysqlAnchor::File { name, .. } => {
                let logs = self.binary_logs().await?;
                if !logs.iter().any(|(f, _)| f.as_str() == &**name) {
                    return Err(purged(&format!("binlog file {name}"), logs.first().map(|l| l.0.as_str())));
                }
            }
            MysqlAnchor::Gtid(set) => {
                // The oldest binlog's GTID_LIST event holds the state at its start:
                // a saved state behind it in any domain needs purged transactions.
                let logs = self.binary_logs().await?;
                let Some((oldest, _)) = logs.first() else { return Ok(()) };
                let rows: Vec<Row> = self
                    .conn
                    .query(format!("SHOW BINLOG EVENTS IN '{}' LIMIT 4", oldest.replace('\'', "")))
                    .await
                    .map_err(|e| sql_error("SHOW BINLOG EVENTS", e))?;
                for r in rows {
                    let kind: String = r.get_opt(2).and_then(|v| v.ok()).unwrap_or_default();
                    if kind != "Gtid_list" {
                        continue;
                    }
                    let info: String = r.get_opt(5).and_then(|v| v.ok()).unwrap_or_default();
                    let list: GtidSet = info.trim_matches(|c| c == '[' || c == ']').parse().unwrap_or_default();
                    let behind = list
                        .gtids()
                        .iter()
                        .any(|g| set.gtids().iter().find(|s| s.domain == g.domain).is_none_or(|s| s.seq < g.seq));
                    if behind {
                        return Err(purged(&format!("gtid:{set}"), Some(oldest)));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The saved position is older than anything the server still has.
pub fn purged(what: &str, oldest: Option<&str>) -> Error {
    Error::fatal(
        format!(
            "the saved position ({what}) has been purged from the server's binlogs{}; changes since then are lost to outflow",
            oldest.map(|o| format!(" (oldest binlog now {o})")).unwrap_or_default()
        ),
        "re-snapshot the tables into fresh sinks (`outflow offsets reset --sink NAME` for each sink, then run), and keep binlogs longer (binlog_expire_logs_seconds)",
    )
}
