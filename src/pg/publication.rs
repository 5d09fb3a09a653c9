//! The publication: which tables (and columns) the server decodes for us.
//! On a standby it is the primary's (replicated, read-only): what outflow
//! would change there is an error that gives the SQL to run on the primary.
//!
//! outflow creates the publication when it is missing and marks it as its
//! own with a comment ([`OWNED`]). It then keeps the table list in step
//! with `[source] tables` by adding and dropping single tables — never
//! `SET TABLE`, which would reset the column lists and row filters a DBA
//! gave the other tables.
//!
//! Column lists (PostgreSQL 15+) carry the global transforms'
//! `exclude_columns` to the server, so excluded values never leave it —
//! only on a publication outflow owns (on a DBA's publication the column
//! lists are the DBA's), and only where the server allows it: a column
//! list must cover the replica identity, so a table with `REPLICA
//! IDENTITY FULL`, or an excluded column inside the replica identity,
//! keeps every column published and outflow drops the excluded ones itself
//! (the transform refuses to exclude a key column anyway).

use std::collections::BTreeMap;

use outflow_model::TableId;

use super::catalog::{sql_error, Catalog};
use super::sql::ident;
use crate::error::{Error, Result};
use crate::transform::Transforms;

/// The comment that marks a publication as created, and so managed, by outflow.
pub const OWNED: &str = "created by outflow: its table and column lists follow the config";

/// A table the publication should cover, with the columns to leave out.
#[derive(Debug, Clone)]
pub struct Published<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    pub exclude: Vec<&'a str>,
}

impl<'a> Published<'a> {
    /// Each of `tables` with the global transforms' exclusions.
    pub fn all(tables: &'a [(String, String)], transforms: &'a Transforms) -> Vec<Published<'a>> {
        tables
            .iter()
            .map(|(schema, table)| Published {
                schema,
                table,
                exclude: transforms.excluded_columns(&TableId::new(schema, table)),
            })
            .collect()
    }
}

impl Catalog {
    /// Creates the publication for exactly `tables`, or brings an existing
    /// one to that table list (and, if outflow owns it, those column lists).
    pub async fn ensure_publication(&self, name: &str, tables: &[Published<'_>]) -> Result<()> {
        let found = self.publication_flags(name).await?;
        let owned = match found {
            None => {
                self.create_publication(name, tables).await?;
                return Ok(());
            }
            Some(Flags { all_tables: true, .. }) => {
                // Its table list cannot be set, and it would stream every table.
                return Err(Error::fatal(
                    format!("publication {name:?} is defined FOR ALL TABLES, not for the configured tables"),
                    format!(
                        "set [source] publication to a name no publication has (outflow creates it), or DROP PUBLICATION {};",
                        ident(name)
                    ),
                ));
            }
            Some(flags) => {
                // Every kind of change, and changes of partitions reported
                // under their partitioned table (when one is captured): a
                // publication made by hand with less would silently drop
                // changes. A DBA's publication that has both needs no change.
                let needs_root = !flags.via_root && self.any_partitioned(tables).await?;
                if !flags.every_change || needs_root {
                    self.alter(
                        &format!(
                            "ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)",
                            ident(name)
                        ),
                        "updating the publication",
                    )
                    .await?;
                    tracing::info!(publication = name, "set the publication to publish every change");
                }
                flags.owned
            }
        };
        let have = self.published(name).await?;
        let mut statements = Vec::new();
        for t in tables {
            let columns = match owned {
                true => self.column_list(t).await?,
                false => None,
            };
            match have.get(&(t.schema.to_string(), t.table.to_string())) {
                None => statements.push(add_table(name, t, columns.as_deref())),
                Some(current) if owned && *current != columns => {
                    // One transaction: the table is never out of the publication.
                    statements.push(format!("ALTER PUBLICATION {} DROP TABLE {}", ident(name), qualified(t)));
                    statements.push(add_table(name, t, columns.as_deref()));
                }
                Some(_) => {}
            }
        }
        for (schema, table) in have.keys() {
            if !tables.iter().any(|t| t.schema == schema && t.table == table) {
                let drop = format!("ALTER PUBLICATION {} DROP TABLE {}.{}", ident(name), ident(schema), ident(table));
                statements.push(drop);
            }
        }
        if !statements.is_empty() {
            let sql = format!("BEGIN; {}; COMMIT", statements.join("; "));
            self.alter(&sql, "updating the publication").await?;
            tracing::info!(publication = name, changes = statements.len(), "brought the publication to the configured tables");
        }
        Ok(())
    }

    async fn create_publication(&self, name: &str, tables: &[Published<'_>]) -> Result<()> {
        let mut list = Vec::new();
        for t in tables {
            let columns = self.column_list(t).await?;
            list.push(format!("{}{}", qualified(t), columns.as_deref().map(column_clause).unwrap_or_default()));
        }
        let sql = format!(
            "BEGIN; CREATE PUBLICATION {name} FOR TABLE {} WITH (publish_via_partition_root = true); \
             COMMENT ON PUBLICATION {name} IS '{OWNED}'; COMMIT",
            list.join(", "),
            name = ident(name),
        );
        self.alter(&sql, "creating the publication").await?;
        tracing::info!(publication = name, "created publication");
        Ok(())
    }

    async fn alter(&self, sql: &str, what: &str) -> Result<()> {
        if self.standby {
            // Read-only: the publication is the primary's to change.
            return Err(Error::fatal(
                format!("[source] url is a standby, where outflow cannot do this: {what}"),
                format!("run this on the primary, then start outflow again: {sql};"),
            ));
        }
        if let Err(e) = self.client().batch_execute(sql).await {
            let _ = self.client().batch_execute("ROLLBACK").await;
            return Err(privilege_hint(sql_error(what, &e)));
        }
        Ok(())
    }

    async fn publication_flags(&self, name: &str) -> Result<Option<Flags>> {
        let row = self
            .client()
            .query_opt(
                "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate, pubviaroot, puballtables, \
                 obj_description(oid, 'pg_publication') IS NOT DISTINCT FROM $2 \
                 FROM pg_publication WHERE pubname = $1",
                &[&name, &OWNED],
            )
            .await
            .map_err(|e| sql_error("reading pg_publication", &e))?;
        Ok(row.map(|r| Flags { every_change: r.get(0), via_root: r.get(1), all_tables: r.get(2), owned: r.get(3) }))
    }

    /// Whether any of `tables` is a partitioned table.
    async fn any_partitioned(&self, tables: &[Published<'_>]) -> Result<bool> {
        let schemas: Vec<&str> = tables.iter().map(|t| t.schema).collect();
        let names: Vec<&str> = tables.iter().map(|t| t.table).collect();
        let row = self
            .client()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'p' AND (n.nspname::text, c.relname::text) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[])))",
                &[&schemas, &names],
            )
            .await
            .map_err(|e| sql_error("reading pg_class", &e))?;
        Ok(row.get(0))
    }

    /// The tables in the publication, each with its column list (None: all columns).
    async fn published(&self, name: &str) -> Result<BTreeMap<(String, String), Option<Vec<String>>>> {
        let rows = self
            .client()
            .query(
                "SELECT t.schemaname::text, t.tablename::text, \
                 (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_publication_rel pr \
                  JOIN pg_publication p ON p.oid = pr.prpubid \
                  JOIN pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs) \
                  WHERE p.pubname = t.pubname AND pr.prrelid = format('%I.%I', t.schemaname, t.tablename)::regclass) \
                 FROM pg_publication_tables t WHERE t.pubname = $1",
                &[&name],
            )
            .await
            .map_err(|e| sql_error("reading pg_publication_tables", &e))?;
        Ok(rows.iter().map(|r| ((r.get(0), r.get(1)), r.get(2))).collect())
    }

    /// The column list that leaves out `t.exclude`: None when nothing is
    /// excluded, or when the server would refuse it (an excluded column in
    /// the replica identity, or `REPLICA IDENTITY FULL`).
    async fn column_list(&self, t: &Published<'_>) -> Result<Option<Vec<String>>> {
        if t.exclude.is_empty() {
            return Ok(None);
        }
        let rows = self
            .client()
            .query(
                "SELECT a.attname::text, c.relreplident::text, \
                 a.attnum = ANY(COALESCE((SELECT i.indkey::int2[] FROM pg_index i WHERE i.indrelid = c.oid \
                   AND CASE c.relreplident WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END), '{}')) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 WHERE c.oid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 AND a.attgenerated = '' ORDER BY a.attnum",
                &[&t.schema, &t.table],
            )
            .await
            .map_err(|e| sql_error("reading the table's columns", &e))?;
        let mut keep = Vec::new();
        for r in &rows {
            let (column, identity, in_identity): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
            if !t.exclude.contains(&column.as_str()) {
                keep.push(column);
            } else if identity == "f" {
                tracing::warn!(table = %format!("{}.{}", t.schema, t.table), column, "the table has REPLICA IDENTITY FULL: the server still sends the excluded column (outflow drops it)");
                return Ok(None);
            } else if in_identity {
                return Ok(None); // a key column: the transform refuses it
            }
        }
        Ok((keep.len() < rows.len()).then_some(keep))
    }
}

struct Flags {
    /// Publishes inserts, updates, deletes and truncates.
    every_change: bool,
    /// `publish_via_partition_root`.
    via_root: bool,
    all_tables: bool,
    owned: bool,
}

fn qualified(t: &Published<'_>) -> String {
    format!("{}.{}", ident(t.schema), ident(t.table))
}

fn column_clause(columns: &[String]) -> String {
    format!(" ({})", columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "))
}

fn add_table(publication: &str, t: &Published<'_>, columns: Option<&[String]>) -> String {
    let columns = columns.map(column_clause).unwrap_or_default();
    format!("ALTER PUBLICATION {} ADD TABLE {}{columns}", ident(publication), qualified(t))
}

/// A refused `CREATE`/`ALTER PUBLICATION` says who may run it.
pub fn privilege_hint(e: Error) -> Error {
    if e.message.contains("42501") {
        e.with_hint("the user needs to own the tables (or be superuser) to create a publication; a DBA can run CREATE PUBLICATION outflow FOR TABLE ... WITH (publish_via_partition_root = true)")
    } else {
        e
    }
}
