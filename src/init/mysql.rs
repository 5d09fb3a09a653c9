//! `outflow init` on MySQL/MariaDB: the server version, the binlog settings
//! a row-based reader needs (`log_bin`, `binlog_format`, `binlog_row_image`,
//! `binlog_row_metadata`), the replication privileges (the checks
//! `outflow run` makes, from `Catalog`), and every base table of the URL's
//! database (or of every non-system database without one) with its primary
//! key, SELECT privilege (tried with `LIMIT 0`) and the server's row and
//! size estimates (`information_schema.TABLES`; InnoDB's are approximate).

use mysql_async::prelude::Queryable;

use super::inspect::{Finding, Inspection, Key, TableInfo};
use super::url::Kind;
use crate::error::Result;
use crate::mysql::catalog::{display, parse_url, sql_error, Catalog};

pub async fn inspect(url: &str) -> Result<Inspection> {
    let opts = parse_url(url)?;
    super::reachable(opts.ip_or_hostname(), opts.tcp_port(), "mysql").await?;
    let mut catalog = Catalog::connect(url).await?;
    let user = catalog.opts.user().unwrap_or("").to_string();
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"));
    let mut findings = vec![Finding::new(
        on(&catalog.var("log_bin").await?),
        "the binary log is on (log_bin)",
        "start the server with log_bin=mysql-bin in my.cnf [mysqld] (a restart)",
    )];
    for (name, want) in [("binlog_format", "ROW"), ("binlog_row_image", "FULL"), ("binlog_row_metadata", "FULL")] {
        let value = catalog.var(name).await?;
        let fix = match value {
            None => format!("this server has no {name}: use MariaDB 10.5+ or MySQL 8.0+"),
            Some(_) => format!("SET GLOBAL {name} = '{want}'; and {name}={want} in my.cnf [mysqld] (kept on restart)"),
        };
        let ok = value.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want));
        let what = match ok {
            true => format!("{name} = {want}"),
            false => format!("{name} = {} (outflow needs {want})", value.as_deref().unwrap_or("unset")),
        };
        findings.push(Finding::new(ok, what, fix));
    }
    findings.push(match catalog.check_privileges().await {
        Ok(()) => Finding::new(true, "the user may read the binlog (REPLICATION SLAVE, REPLICATION CLIENT)", ""),
        Err(e) => Finding::new(false, e.message, e.hint.unwrap_or_default()),
    });
    let database = catalog.opts.db_name().unwrap_or("").to_string();
    let tables = tables(&mut catalog, &database).await?;
    Ok(Inspection {
        kind: Kind::Mysql,
        server: match catalog.mariadb {
            true => format!("MariaDB {}", catalog.version),
            false => format!("MySQL {}", catalog.version),
        },
        location: display(&catalog.opts),
        user,
        database,
        findings,
        tables,
    })
}

async fn tables(catalog: &mut Catalog, database: &str) -> Result<Vec<TableInfo>> {
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> = catalog
        .conn
        .exec(
            "SELECT TABLE_SCHEMA, TABLE_NAME, CAST(TABLE_ROWS AS SIGNED), \
             CAST(DATA_LENGTH + INDEX_LENGTH AS SIGNED) FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
             AND (? = '' OR TABLE_SCHEMA = ?) ORDER BY TABLE_SCHEMA, TABLE_NAME",
            (database, database),
        )
        .await
        .map_err(|e| sql_error("listing tables", e))?;
    // STATISTICS, not TABLE_CONSTRAINTS: MariaDB hides the latter from a
    // user who may only SELECT the table.
    let keys: Vec<(String, String, String)> = catalog
        .conn
        .exec(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE INDEX_NAME = 'PRIMARY' AND (? = '' OR TABLE_SCHEMA = ?) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX",
            (database, database),
        )
        .await
        .map_err(|e| sql_error("reading primary keys", e))?;
    let mut tables = Vec::new();
    for (schema, name, rows, bytes) in rows {
        let columns: Vec<String> =
            keys.iter().filter(|(s, t, _)| *s == schema && *t == name).map(|(_, _, c)| c.clone()).collect();
        let key = if columns.is_empty() { Key::None } else { Key::Primary(columns) };
        let probe = format!("SELECT * FROM `{}`.`{}` LIMIT 0", schema.replace('`', "``"), name.replace('`', "``"));
        let selectable = catalog.conn.query_drop(probe).await.is_ok();
        tables.push(TableInfo { schema, name, key, rows, rows_exact: false, bytes, selectable });
    }
    Ok(tables)
}
