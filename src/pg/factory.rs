//! How the commands reach this folder: the [`SourceFactory`] of a
//! `kind = "postgres"` config (connect, check, status, offsets).

use std::sync::Arc;

use futures::future::BoxFuture;
use outflow_model::{Position, TableId, TableSchema};
use serde_json::Value;

use super::catalog::Catalog;
use super::config::PgConfig;
use outflow_pgconn::PgParams;
use super::source::PgSource;
use crate::error::Result;
use crate::report::Checklist;
use crate::source::{AnySource, Purpose, SourceFactory, SourceStatus};
use crate::state::SourceIdentity;
use crate::transform::Transforms;

impl SourceFactory for PgConfig {
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
        PgParams::from_url(&self.url, "[source] url").map(|_| ()).map_err(crate::error::Error::from)
    }

    fn probe_identity(&self) -> BoxFuture<'_, Result<Option<SourceIdentity>>> {
        Box::pin(async move {
            let params = PgParams::from_url(&self.url, "[source] url")?;
            let catalog = Catalog::connect(&params).await?;
            Ok(Some(SourceIdentity {
                kind: "postgres".into(),
                system_identifier: catalog.system_identifier().await?,
                database: params.dbname.clone(),
                slot: self.slot.clone(),
            }))
        })
    }

    fn connect<'a>(&'a self, purpose: Purpose, transforms: &'a Transforms) -> BoxFuture<'a, Result<Box<dyn AnySource>>> {
        Box::pin(async move {
            let (slot, temporary, must_exist) = match purpose {
                Purpose::Run { has_offsets } => (self.slot.clone(), false, has_offsets),
                Purpose::Tail => (format!("outflow_tail_{}", std::process::id()), true, false),
            };
            let source = PgSource::prepare(self, &slot, temporary, must_exist, transforms).await?;
            Ok(Box::new(source) as Box<dyn AnySource>)
        })
    }

    fn table_schemas(&self) -> BoxFuture<'_, Result<Vec<Arc<TableSchema>>>> {
        Box::pin(async move {
            let catalog = Catalog::connect(&PgParams::from_url(&self.url, "[source] url")?).await?;
            let mut schemas = Vec::new();
            for (schema, table) in catalog.resolve_tables(&self.table_filter()?).await? {
                schemas.push(super::snapshot::describe_schema(&catalog, &TableId::new(schema, table)).await?);
            }
            Ok(schemas)
        })
    }

    fn preflight<'a>(&'a self, snapshots: bool, report: &'a mut Checklist) -> BoxFuture<'a, Result<()>> {
        Box::pin(super::check::preflight(self, snapshots, report))
    }

    fn status(&self) -> BoxFuture<'_, Result<SourceStatus>> {
        Box::pin(super::status::status(self))
    }

    fn print_status(&self, block: &Value) {
        super::status::print(block)
    }

    fn check_position<'a>(&'a self, target: &'a Position) -> BoxFuture<'a, Result<()>> {
        Box::pin(super::status::check_position(self, target))
    }
}
