//! How the commands reach this folder: the [`SourceFactory`] of a
//! `kind = "mysql"` config (connect, check, status, offsets).

use std::sync::Arc;

use futures::future::BoxFuture;
use outflow_model::{Position, TableSchema};
use serde_json::Value;

use super::catalog::Catalog;
use super::config::MysqlConfig;
use super::source::MysqlSource;
use crate::error::{Error, Result};
use crate::report::Checklist;
use crate::source::{AnySource, Purpose, SourceFactory, SourceStatus};
use crate::state::SourceIdentity;
use crate::transform::Transforms;

impl SourceFactory for MysqlConfig {
    fn tables(&self) -> &[String] {
        &self.tables
    }

    fn exclude_tables(&self) -> &[String] {
        &self.exclude_tables
    }

    fn signal_table(&self) -> Option<&str> {
        self.signal_table.as_deref()
    }

    fn capture_more(&mut self, patterns: &[String]) {
        self.tables.extend(patterns.iter().filter(|p| !self.tables.contains(p)).cloned().collect::<Vec<_>>());
    }

    fn validate(&self) -> Result<()> {
        if self.server_id == Some(0) {
            return Err(Error::config(
                "[source] server_id = 0 is not allowed: the server refuses replicas with id 0",
                "pick a number from 1 to 4294967295 no other server or replica uses",
            ));
        }
        super::catalog::parse_url(&self.url).map(|_| ())
    }

    /// Nothing is created on the server: `run` compares identities after connecting.
    fn probe_identity(&self) -> BoxFuture<'_, Result<Option<SourceIdentity>>> {
        Box::pin(async { Ok(None) })
    }

    /// Nothing is left on the server either way: run and tail differ only in
    /// whether offsets are stored.
    /// The binlog carries whole rows (`binlog_row_image = FULL`): the
    /// transforms drop excluded columns from it; snapshots do not read them.
    fn connect<'a>(&'a self, _purpose: Purpose, transforms: &'a Transforms) -> BoxFuture<'a, Result<Box<dyn AnySource>>> {
        Box::pin(async move { Ok(Box::new(MysqlSource::prepare(self, transforms).await?) as Box<dyn AnySource>) })
    }

    fn table_schemas(&self) -> BoxFuture<'_, Result<Vec<Arc<TableSchema>>>> {
        Box::pin(async move {
            let mut catalog = Catalog::connect(&self.url).await?;
            let mut schemas = Vec::new();
            for table in catalog.resolve_tables(&self.table_filter()?).await? {
                schemas.push(super::snapshot::describe_schema(&mut catalog.conn, &table).await?);
            }
            Ok(schemas)
        })
    }

    fn preflight<'a>(&'a self, _snapshots: bool, report: &'a mut Checklist) -> BoxFuture<'a, Result<()>> {
        Box::pin(super::check::preflight(self, report))
    }

    fn status(&self) -> BoxFuture<'_, Result<SourceStatus>> {
        Box::pin(super::status::status(self))
    }

    fn print_status(&self, block: &Value) {
        super::status::print_source(block)
    }

    fn check_position<'a>(&'a self, target: &'a Position) -> BoxFuture<'a, Result<()>> {
        Box::pin(super::status::check_position(self, target))
    }
}
