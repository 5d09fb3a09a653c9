//! `outflow check` for a PostgreSQL source: server settings, privileges,
//! the slot, the publication and each table, one item each with its exact
//! fix (the conditions `outflow run` refuses to start without, and those
//! that would fail it later).

use super::catalog::{sql_error, Catalog};
use super::config::PgConfig;
use outflow_pgconn::PgParams;
use super::sql::ident;
use crate::error::Result;
use crate::report::Checklist;
use crate::source::SourceFactory;

/// The settings a standby the URL lists needs to take over the failover
/// slot: `sync_replication_slots`, `hot_standby_feedback`, a
/// `primary_slot_name` the primary waits for; and whether it has the slot.
async fn check_failover_standby(params: &PgParams, slot: &str, waits_for: &[&str], report: &mut Checklist) {
    let at = params.display();
    let catalog = match Catalog::connect(params).await {
        Ok(c) => c,
        Err(e) => {
            report.item(false, &format!("connect to the standby {at}: {}", e.message), "check the host in [source] url");
            return;
        }
    };
    if !catalog.standby {
        report.note(&format!("{at} is not a standby (not in recovery)"));
        return;
    }
    let row = catalog
        .client()
        .query_one(
            "SELECT current_setting('sync_replication_slots', true), current_setting('hot_standby_feedback'), \
             current_setting('primary_slot_name'), \
             (SELECT synced FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .await;
    let row = match row {
        Ok(r) => r,
        Err(e) => {
            report.item(false, &format!("read the standby {at}'s settings: {e}"), "check the standby's logs");
            return;
        }
    };
    let (sync, feedback, primary_slot, synced): (Option<String>, String, String, Option<bool>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let sync = sync.unwrap_or_default();
    report.item(
        sync == "on",
        &format!("the standby {at} synchronizes failover slots (sync_replication_slots = {sync})"),
        "on the standby: ALTER SYSTEM SET sync_replication_slots = on; SELECT pg_reload_conf(); (and dbname in primary_conninfo)",
    );
    report.item(
        feedback == "on",
        &format!("the standby {at}'s hot_standby_feedback = {feedback}"),
        "on the standby: ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();",
    );
    report.item(
        !primary_slot.is_empty() && waits_for.contains(&primary_slot.as_str()),
        &format!("the standby {at} streams from slot {primary_slot:?}, which the primary's synchronized_standby_slots lists"),
        "give the standby a physical slot (primary_slot_name) and list it in the primary's synchronized_standby_slots",
    );
    report.item(
        synced == Some(true),
        &format!("the standby {at} has a synchronized copy of slot {slot:?}"),
        "wait for the standby's slot sync worker (it copies failover slots every few seconds), or run SELECT pg_sync_replication_slots(); on the standby",
    );
}

pub async fn preflight(cfg: &PgConfig, snapshots: bool, report: &mut Checklist) -> Result<()> {
    let params = PgParams::from_url(&cfg.url, "[source] url")?;
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
    let q = |e: tokio_postgres::Error| sql_error("preflight query", &e);

    let level: String = client.query_one("SHOW wal_level", &[]).await.map_err(q)?.get(0);
    report.item(
        level == "logical",
        &format!("wal_level = {level}"),
        "ALTER SYSTEM SET wal_level = logical; then restart postgres",
    );

    if catalog.standby {
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int >= 160000, current_setting('server_version'), \
                 current_setting('hot_standby_feedback'), current_setting('primary_slot_name')",
                &[],
            )
            .await
            .map_err(q)?;
        let (new_enough, version, feedback, primary_slot): (bool, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        report.item(
            new_enough,
            &format!("a standby (PostgreSQL {version}) that can decode: 16 or later"),
            "point [source] url at the primary, or upgrade the standby to PostgreSQL 16+",
        );
        report.item(
            feedback == "on",
            &format!("the standby's hot_standby_feedback = {feedback}"),
            "on the standby: ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();",
        );
        match primary_slot.is_empty() {
            true => report.note(
                "the standby streams without a physical slot on the primary, which may then remove WAL the standby \
                 still needs; recommended: SELECT pg_create_physical_replication_slot('standby1'); on the primary, \
                 then on the standby ALTER SYSTEM SET primary_slot_name = 'standby1'; SELECT pg_reload_conf();",
            ),
            false => report.item(true, &format!("the standby streams from slot {primary_slot:?} on the primary"), ""),
        }
        report.note("the primary's wal_level (logical) is checked when the slot is created: a standby cannot read it");
    }

    if cfg.failover {
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int >= 170000, \
                 current_setting('synchronized_standby_slots', true)",
                &[],
            )
            .await
            .map_err(q)?;
        let (new_enough, standby_slots): (bool, Option<String>) = (row.get(0), row.get(1));
        report.item(
            new_enough && !catalog.standby,
            "failover = true: the server is a PostgreSQL 17+ primary",
            "failover slots are created on a PostgreSQL 17+ primary; set failover = false otherwise",
        );
        let standby_slots = standby_slots.unwrap_or_default();
        report.item(
            !standby_slots.is_empty(),
            &format!("the primary waits for its standbys before sending changes (synchronized_standby_slots = {standby_slots:?})"),
            "without it outflow may receive changes a standby lacks, which a failover then undoes: \
             ALTER SYSTEM SET synchronized_standby_slots = '<the standby's physical slot>'; SELECT pg_reload_conf(); \
             on the standby: sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name set, \
             and dbname in primary_conninfo",
        );
        let waits_for: Vec<&str> = standby_slots.split(',').map(str::trim).collect();
        for (host, port) in params.hosts.iter().filter(|(h, p)| (h.as_str(), *p) != (params.host.as_str(), params.port)) {
            check_failover_standby(&params.only_host(host, *port), &cfg.slot, &waits_for, report).await;
        }
    }

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
    let slot = catalog.slot(&cfg.slot).await?;
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
                    cfg.slot,
                    s.plugin.as_deref().unwrap_or(""),
                    s.database.as_deref().unwrap_or("")
                ),
                "choose another [source] slot name: this slot belongs to another plugin or database",
            );
            report.item(
                !s.active,
                &format!("slot {:?} is not in use by another process", cfg.slot),
                &format!("stop the process with pid {} or give this pipeline its own slot", s.active_pid.unwrap_or(0)),
            );
            report.item(
                s.wal_status.as_deref() != Some("lost"),
                &format!(
                    "slot {:?} still has its WAL (wal_status {})",
                    cfg.slot,
                    s.wal_status.as_deref().unwrap_or("-")
                ),
                "the slot lost WAL it needed: drop it, then `outflow offsets reset` each sink to snapshot again",
            );
        }
        None => report.note(&format!("slot {:?} does not exist yet: `outflow run` creates it", cfg.slot)),
    }

    let tables = match catalog.resolve_tables(&cfg.table_filter()?).await {
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
            report.note(&format!(
                "{schema}.{table}: owned by another role; the publication must be created by its owner or a superuser"
            ));
        }
    }

    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&cfg.publication])
        .await
        .map_err(q)?
        .is_some();
    if exists {
        let rows = client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                &[&cfg.publication],
            )
            .await
            .map_err(q)?;
        let mut have: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        have.sort();
        // Added and dropped one by one: SET TABLE would reset the others' column lists and row filters.
        let publication = ident(&cfg.publication);
        let qualified = |(s, t): &(String, String)| format!("{}.{}", ident(s), ident(t));
        let fixes: Vec<String> = tables
            .iter()
            .filter(|t| !have.contains(t))
            .map(|t| format!("ALTER PUBLICATION {publication} ADD TABLE {};", qualified(t)))
            .chain(
                have.iter()
                    .filter(|t| !tables.contains(t))
                    .map(|t| format!("ALTER PUBLICATION {publication} DROP TABLE {};", qualified(t))),
            )
            .collect();
        report.item(
            fixes.is_empty(),
            &format!("publication {:?} covers exactly the configured tables", cfg.publication),
            &fixes.join(" "),
        );
    } else {
        report.note(&format!("publication {:?} does not exist yet: `outflow run` creates it", cfg.publication));
    }

    // The text variant; PostgreSQL 17 added a fourth argument (`flush`).
    let emit = client
        .query_one(
            "SELECT has_function_privilege(oid, 'EXECUTE'), oid::regprocedure::text FROM pg_proc \
             WHERE proname = 'pg_logical_emit_message' AND pronamespace = 'pg_catalog'::regnamespace \
             AND proargtypes[2] = 'text'::regtype",
            &[],
        )
        .await
        .map_err(q)?;
    let (can_emit, signature): (bool, String) = (emit.get(0), emit.get(1));
    report.item(
        can_emit || !snapshots,
        "snapshot watermarks can be written (pg_logical_emit_message)",
        &format!("GRANT EXECUTE ON FUNCTION {signature} TO {user}; or [snapshot] mode = \"never\""),
    );
    Ok(())
}
