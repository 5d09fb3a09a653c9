//! `outflow init` on PostgreSQL: the server version, `wal_level`, the
//! user's REPLICATION attribute and free replication slots, and every user
//! table (partitioned tables as one, their partitions summed) with its
//! primary key or replica identity, SELECT privilege, estimated rows and
//! size.
//!
//! `reltuples` is -1 until a table is first vacuumed or analyzed; such a
//! table is counted exactly when it is small (a fresh demo database), and
//! shown as "rows unknown" otherwise.

use outflow_pgconn::PgParams;

use super::inspect::{Finding, Inspection, Key, TableInfo};
use super::url::Kind;
use crate::error::Result;
use crate::pg::catalog::{sql_error, Catalog};
use crate::pg::sql::ident;

/// Tables up to this size without an estimate are counted with `count(*)`.
const COUNT_BELOW_BYTES: i64 = 16 << 20;

pub async fn inspect(url: &str) -> Result<Inspection> {
    let params = PgParams::from_url(url, "URL")?;
    super::reachable(&params.host, params.port, "postgres").await?;
    let catalog = Catalog::connect(&params).await?;
    let client = catalog.client();
    let q = |e: tokio_postgres::Error| sql_error("inspecting the server", &e);
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('wal_level'), \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
             current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int, \
             current_setting('max_wal_senders')::int, current_database()::text",
            &[],
        )
        .await
        .map_err(q)?;
    let (version, level, replication, free_slots, senders, database): (String, String, bool, i32, i32, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    let user = ident(&params.user);
    let findings = vec![
        Finding::new(
            level == "logical",
            format!("wal_level = {level}"),
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (Amazon RDS/Aurora: \
             rds.logical_replication = 1 in the parameter group; Cloud SQL: the cloudsql.logical_decoding flag)",
        ),
        Finding::new(
            replication,
            "the user may replicate (REPLICATION)",
            format!("ALTER ROLE {user} WITH REPLICATION; (Amazon RDS: GRANT rds_replication TO {user};)"),
        ),
        Finding::new(
            free_slots > 0,
            format!("a replication slot is free ({free_slots} of max_replication_slots)"),
            "raise max_replication_slots (restart needed), or drop unused slots with pg_drop_replication_slot('name')",
        ),
        Finding::new(
            senders > 0,
            format!("max_wal_senders = {senders}"),
            "ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL",
        ),
    ];
    let tables = tables(&catalog).await?;
    Ok(Inspection {
        kind: Kind::Postgres,
        server: format!("PostgreSQL {version}"),
        location: params.display(),
        user: params.user.clone(),
        database,
        findings,
        tables,
    })
}

/// Ordinary and partitioned tables outside the system schemas (as the
/// source lists them: partitions are captured through their parent).
async fn tables(catalog: &Catalog) -> Result<Vec<TableInfo>> {
    let rows = catalog
        .client()
        .query(
            "WITH t AS (\
               SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relkind, \
                 c.relreplident::text AS identity \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE c.relkind IN ('r','p') AND NOT c.relispartition \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'), \
             leaves AS (\
               SELECT t.oid, l.oid AS leaf FROM t JOIN pg_class l ON l.oid = t.oid WHERE t.relkind = 'r' \
               UNION ALL \
               SELECT t.oid, p.relid FROM t, pg_partition_tree(t.oid) p WHERE t.relkind = 'p' AND p.isleaf) \
             SELECT t.schema, t.name, t.identity, \
               (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i \
                  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                  WHERE i.indrelid = t.oid AND i.indisprimary), \
               (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
                  WHERE i.indrelid = t.oid AND i.indisreplident), \
               has_table_privilege(t.oid, 'SELECT'), \
               (SELECT CASE WHEN bool_or(l.reltuples < 0) THEN NULL ELSE sum(l.reltuples)::bigint END \
                  FROM leaves JOIN pg_class l ON l.oid = leaves.leaf WHERE leaves.oid = t.oid), \
               (SELECT COALESCE(sum(pg_total_relation_size(leaves.leaf)), 0)::bigint FROM leaves \
                  WHERE leaves.oid = t.oid) \
             FROM t ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| sql_error("listing tables", &e))?;
    let mut tables = Vec::new();
    for r in rows {
        let (schema, name, identity): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let primary: Option<Vec<String>> = r.get(3);
        let identity_index: Option<String> = r.get(4);
        let key = match (primary, identity.as_str(), identity_index) {
            (Some(cols), "d", _) => Key::Primary(cols),
            (_, "i", Some(index)) => Key::IdentityIndex(index),
            (_, "f", _) => Key::IdentityFull,
            (Some(cols), _, _) => Key::Primary(cols),
            _ => Key::None,
        };
        let selectable: bool = r.get(5);
        let mut rows: Option<i64> = r.get(6);
        let bytes: i64 = r.get(7);
        let rows_exact = rows.is_none() && selectable && bytes <= COUNT_BELOW_BYTES;
        if rows_exact {
            let count = catalog
                .client()
                .query_one(&format!("SELECT count(*) FROM {}.{}", ident(&schema), ident(&name)), &[])
                .await
                .map_err(|e| sql_error("counting rows", &e))?;
            rows = Some(count.get(0));
        }
        tables.push(TableInfo { schema, name, key, rows, rows_exact, bytes: Some(bytes), selectable });
    }
    Ok(tables)
}
