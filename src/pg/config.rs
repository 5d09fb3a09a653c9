//! The `[source]` config of `kind = "postgres"`, and its [`SourceFactory`]:
//! how the commands reach this folder (connect, check, status, offsets).

use futures::future::BoxFuture;
use outflow_model::Position;
use outflow_sinks::parquet::ByteSize;
use serde::Deserialize;
use serde_json::Value;

use super::catalog::Catalog;
use super::params::PgParams;
use super::source::PgSource;
use crate::error::Result;
use crate::report::Checklist;
use crate::source::{AnySource, Purpose, SourceFactory, SourceStatus};
use crate::state::SourceIdentity;

/// Retained WAL above which a postgres source warns, when not configured.
pub const DEFAULT_WAL_WARN_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgConfig {
    pub url: String,
    pub tables: Vec<String>,
    /// The logical replication slot; created if missing.
    #[serde(default = "default_outflow")]
    pub slot: String,
    /// The publication of the captured tables; created if missing.
    #[serde(default = "default_outflow")]
    pub publication: String,
    /// Warn (log, metric, status) when the WAL the slot retains passes this
    /// size (default 1 GiB).
    #[serde(default)]
    pub wal_warn_bytes: Option<ByteSize>,
}

fn default_outflow() -> String {
    "outflow".into()
}

impl PgConfig {
    pub fn wal_warn_bytes(&self) -> u64 {
        self.wal_warn_bytes.map_or(DEFAULT_WAL_WARN_BYTES, |b| b.0)
    }
}

impl SourceFactory for PgConfig {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn tables(&self) -> &[String] {
        &self.tables
    }

    fn validate(&self) -> Result<()> {
        PgParams::from_url(&self.url).map(|_| ())
    }

    fn probe_identity(&self) -> BoxFuture<'_, Result<Option<SourceIdentity>>> {
        Box::pin(async move {
            let params = PgParams::from_url(&self.url)?;
            let catalog = Catalog::connect(&params).await?;
            Ok(Some(SourceIdentity {
                kind: "postgres".into(),
                system_identifier: catalog.system_identifier().await?,
                database: params.dbname.clone(),
                slot: self.slot.clone(),
            }))
        })
    }

    fn connect(&self, purpose: Purpose) -> BoxFuture<'_, Result<Box<dyn AnySource>>> {
        Box::pin(async move {
            let (slot, temporary, must_exist) = match purpose {
                Purpose::Run { has_offsets } => (self.slot.clone(), false, has_offsets),
                Purpose::Tail => (format!("outflow_tail_{}", std::process::id()), true, false),
            };
            let source = PgSource::prepare(self, &slot, temporary, must_exist).await?;
            Ok(Box::new(source) as Box<dyn AnySource>)
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
