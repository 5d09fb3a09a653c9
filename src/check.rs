//! `outflow check`: a preflight of the config, the source server and the
//! sinks. Every item prints ✓ or ✗; each ✗ carries the exact SQL or setting
//! that fixes it. Exit code 1 when anything failed.

use std::path::Path;

use crate::config::{Config, SourceKind};
use crate::error::{Error, ErrorClass, Result};
use crate::pg::catalog::{ident, Catalog};
use crate::pg::params::PgParams;

struct Report {
    failed: usize,
}

impl Report {
    fn item(&mut self, ok: bool, what: &str, fix: &str) {
        if ok {
            println!("✓ {what}");
        } else {
            self.failed += 1;
            println!("✗ {what}\n    fix: {fix}");
        }
    }
}

pub async fn check(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    println!("✓ config {} is valid", config_path.display());
    let mut report = Report { failed: 0 };
    match config.source.kind {
        SourceKind::Postgres => check_postgres(&config, &mut report).await?,
        SourceKind::Mysql => check_mysql(&config, &mut report).await?,
    }
    check_sinks(&config, &mut report).await;
    if report.failed > 0 {
        return Err(Error {
            class: ErrorClass::Fatal,
            message: format!("{} check(s) failed", report.failed),
            hint: Some("apply the fixes above and run `outflow check` again".into()),
        });
    }
    println!("all checks passed");
    Ok(())
}

async fn check_postgres(config: &Config, report: &mut Report) -> Result<()> {
    let params = PgParams::from_url(&config.source.url)?;
    let catalog = match Catalog::connect(&params).await {
        Ok(c) => c,
        Err(e) => {
            report.item(
                false,
                &format!("connect to {} as {:?}: {}", params.display(), params.user, e.message),
                e.hint.as_deref().unwrap_or("check [source] url"),
            );
            return Ok(());
        }
    };
    report.item(true, &format!("connect to {} as {:?}", params.display(), params.user), "");
    let client = catalog.client();
    let q = |e: tokio_postgres::Error| crate::pg::catalog::sql_error("preflight query", &e);

    let level: String = client.query_one("SHOW wal_level", &[]).await.map_err(q)?.get(0);
    report.item(
        level == "logical",
        &format!("wal_level = {level}"),
        "ALTER SYSTEM SET wal_level = logical; then restart postgres",
    );

    let row = client
        .query_one("SELECT rolreplication OR rolsuper, rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(q)?;
    let user = ident(&params.user);
    report.item(row.get(0), "the user may replicate (REPLICATION)", &format!("ALTER ROLE {user} WITH REPLICATION;"));

    let row = client
        .query_one(
            "SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int, \
             current_setting('max_wal_senders')::int",
            &[],
        )
        .await
        .map_err(q)?;
    let (free_slots, senders): (i32, i32) = (row.get(0), row.get(1));
    let slot = catalog.slot(&config.source.slot).await?;
    report.item(
        slot.is_some() || free_slots > 0,
        &format!("a replication slot is available ({free_slots} free)"),
        "raise max_replication_slots (restart needed), or drop unused slots with pg_drop_replication_slot('name')",
    );
    report.item(
        senders > 0,
        &format!("max_wal_senders = {senders}"),
        "ALTER SYSTEM SET max_wal_senders = 10; then restart",
    );
    match &slot {
        Some(s) => {
            let ok = s.plugin.as_deref() == Some("pgoutput") && s.database.as_deref() == Some(params.dbname.as_str());
            report.item(
                ok,
                &format!(
                    "slot {:?} exists (plugin {:?}, database {:?})",
                    config.source.slot,
                    s.plugin.as_deref().unwrap_or(""),
                    s.database.as_deref().unwrap_or("")
                ),
                "choose another [source] slot name: this slot belongs to another plugin or database",
            );
            report.item(
                !s.active,
                &format!("slot {:?} is not in use by another process", config.source.slot),
                &format!("stop the process with pid {} or give this pipeline its own slot", s.active_pid.unwrap_or(0)),
            );
            report.item(
                s.wal_status.as_deref() != Some("lost"),
                &format!(
                    "slot {:?} still has its WAL (wal_status {})",
                    config.source.slot,
                    s.wal_status.as_deref().unwrap_or("-")
                ),
                "the slot lost WAL it needed: drop it, then `outflow offsets reset` each sink to snapshot again",
            );
        }
        None => println!("- slot {:?} does not exist yet: `outflow run` creates it", config.source.slot),
    }

    let tables = match catalog.resolve_tables(&config.source.tables).await {
        Ok(t) => {
            report.item(true, &format!("{} table(s) match [source] tables", t.len()), "");
            t
        }
        Err(e) => {
            report.item(false, &e.message, e.hint.as_deref().unwrap_or("fix [source] tables"));
            Vec::new()
        }
    };
    for (schema, table) in &tables {
        let name = format!("{}.{}", ident(schema), ident(table));
        let row = client
            .query_one(
                "SELECT c.relreplident::text, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
                 has_table_privilege(c.oid, 'SELECT'), pg_get_userbyid(c.relowner) = current_user OR \
                 (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                 FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&name],
            )
            .await
            .map_err(q)?;
        let (identity, has_pk, can_select, owns): (String, bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        report.item(
            can_select,
            &format!("{schema}.{table}: SELECT granted"),
            &format!("GRANT SELECT ON {name} TO {user};"),
        );
        let identity_ok = has_pk || identity == "f" || identity == "i";
        report.item(
            identity_ok,
            &format!("{schema}.{table}: rows are identifiable (primary key or replica identity {identity})"),
            &format!("add a primary key, or ALTER TABLE {name} REPLICA IDENTITY FULL;"),
        );
        if !owns {
            println!("- {schema}.{table}: owned by another role; the publication must be created by its owner or a superuser");
        }
    }

    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&config.source.publication])
        .await
        .map_err(q)?
        .is_some();
    if exists {
        let rows = client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                &[&config.source.publication],
            )
            .await
            .map_err(q)?;
        let mut have: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        have.sort();
        let list = tables.iter().map(|(s, t)| format!("{}.{}", ident(s), ident(t))).collect::<Vec<_>>().join(", ");
        report.item(
            have == tables,
            &format!("publication {:?} covers exactly the configured tables", config.source.publication),
            &format!("ALTER PUBLICATION {} SET TABLE {list};", ident(&config.source.publication)),
        );
    } else {
        println!("- publication {:?} does not exist yet: `outflow run` creates it", config.source.publication);
    }

    let can_emit: bool = client
        .query_one("SELECT has_function_privilege('pg_logical_emit_message(boolean, text, text)', 'EXECUTE')", &[])
        .await
        .map_err(q)?
        .get(0);
    report.item(
        can_emit || config.snapshot.mode == crate::config::SnapshotMode::Never,
        "snapshot watermarks can be written (pg_logical_emit_message)",
        &format!("GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO {user}; or [snapshot] mode = \"never\""),
    );
    Ok(())
}

/// The same conditions `outflow run` refuses to start without (see
/// `mysql::catalog::Catalog::preflight`), each as one item.
async fn check_mysql(config: &Config, report: &mut Report) -> Result<()> {
    use crate::mysql::catalog::{display, parse_url, Catalog};
    let where_ = display(&parse_url(&config.source.url)?);
    let mut catalog = match Catalog::connect(&config.source.url).await {
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
    let ours = config.source.server_id.unwrap_or(crate::config::DEFAULT_MYSQL_SERVER_ID);
    report.item(
        ours != catalog.server_id,
        &format!("[source] server_id {ours} differs from the server's own ({})", catalog.server_id),
        "choose a server_id no server or replica in the topology uses",
    );
    let tables = catalog.resolve_tables(&config.source.tables).await?;
    report.item(
        !tables.is_empty(),
        &format!("[source] tables match {} table(s)", tables.len()),
        "check the database.table patterns in [source] tables",
    );
    for t in &tables {
        let keyed: Option<u64> = mysql_async::prelude::Queryable::exec_first(
            &mut catalog.conn,
            "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_TYPE = 'PRIMARY KEY'",
            (t.schema.as_str(), t.name.as_str()),
        )
        .await
        .map_err(|e| crate::mysql::catalog::sql_error("reading primary keys", e))?;
        report.item(
            keyed.unwrap_or(0) > 0,
            &format!("{t}: has a primary key (rows can be matched by key)"),
            &format!("ALTER TABLE {t} ADD PRIMARY KEY (...); without one, changes cannot be deduplicated"),
        );
    }
    Ok(())
}

async fn check_sinks(config: &Config, report: &mut Report) {
    for probe in crate::check_sinks::preflight(&config.sinks).await {
        report.item(probe.ok, &probe.what, &probe.fix);
    }
    let state = &config.state.dir;
    let base = if state.exists() {
        state.as_path()
    } else {
        state.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    };
    report.item(
        writable_dir(base),
        &format!("state directory {} is writable", state.display()),
        &format!("create {} and make it writable for this user", state.display()),
    );
}

fn writable_dir(dir: &Path) -> bool {
    let probe = dir.join(format!(".outflow-check-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}
