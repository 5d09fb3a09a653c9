//! `outflow check` for a MySQL/MariaDB source: the same conditions
//! `outflow run` refuses to start without (see `Catalog::preflight`), each
//! as one item with its fix, and a primary key on every captured table.

use super::catalog::{display, parse_url, sql_error, Catalog};
use super::config::MysqlConfig;
use crate::error::Result;
use crate::report::Checklist;
use crate::source::SourceFactory;

pub async fn preflight(cfg: &MysqlConfig, report: &mut Checklist) -> Result<()> {
    let where_ = display(&parse_url(&cfg.url)?);
    let mut catalog = match Catalog::connect(&cfg.url).await {
        Ok(c) => c,
        Err(e) => {
            let fix = e.hint.as_deref().unwrap_or("check [source] url");
            report.item(false, &format!("connect to {where_}: {}", e.message), fix);
            return Ok(());
        }
    };
    report.item(true, &format!("connect to {where_} ({})", catalog.version), "");
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"));
    let log_bin = catalog.var("log_bin").await?;
    report.item(
        on(&log_bin),
        "binary log is on (log_bin)",
        "start the server with log_bin=mysql-bin (my.cnf [mysqld])",
    );
    for (name, want) in [("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("binlog_row_metadata", "FULL")] {
        let v = catalog.var(name).await?;
        report.item(
            v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want)),
            &format!("{name} = {want} (is {})", v.as_deref().unwrap_or("unset")),
            &format!("SET GLOBAL {name} = '{want}'; and {name}={want} in my.cnf [mysqld]"),
        );
    }
    let compress = catalog.var("log_bin_compress").await?;
    report.item(
        !on(&compress),
        "binlog events are not compressed (log_bin_compress)",
        "SET GLOBAL log_bin_compress = OFF;",
    );
    match catalog.check_privileges().await {
        Ok(()) => report.item(true, "privileges for reading the binlog", ""),
        Err(e) => report.item(false, &e.message, e.hint.as_deref().unwrap_or("")),
    }
    let ours = cfg.server_id();
    report.item(
        ours != catalog.server_id,
        &format!("[source] server_id {ours} differs from the server's own ({})", catalog.server_id),
        "choose a server_id no server or replica in the topology uses",
    );
    let tables = catalog.resolve_tables(&cfg.table_filter()?).await?;
    report.item(
        !tables.is_empty(),
        &format!("[source] tables match {} table(s)", tables.len()),
        "check the database.table patterns in [source] tables",
    );
    for t in &tables {
        // STATISTICS, not TABLE_CONSTRAINTS: MariaDB hides the latter from
        // a user who may only SELECT the table.
        let keyed: Option<u64> = mysql_async::prelude::Queryable::exec_first(
            &mut catalog.conn,
            "SELECT COUNT(*) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'",
            (t.schema.as_str(), t.name.as_str()),
        )
        .await
        .map_err(|e| sql_error("reading primary keys", e))?;
        report.item(
            keyed.unwrap_or(0) > 0,
            &format!("{t}: has a primary key (rows can be matched by key)"),
            &format!("ALTER TABLE {t} ADD PRIMARY KEY (...); without one, changes cannot be deduplicated"),
        );
    }
    Ok(())
}
