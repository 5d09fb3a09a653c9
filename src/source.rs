//! The sources outflow reads, behind one enum so the commands do not care
//! which database they talk to. Adding a source means a module with the same
//! four operations and one arm here.

use outflow_sinks::SinkContext;
use tokio_util::sync::CancellationToken;

use crate::config::{SourceConfig, SourceKind};
use crate::error::Result;
use crate::mysql::source::MysqlSource;
use crate::pg::source::PgSource;
use crate::pipeline::SinkHandle;
use crate::snapshot::SnapshotPlan;
use crate::state::{SourceIdentity, StateDir};
use outflow_model::TableId;

/// What the source is being prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `run`: durable server-side state (a slot). `has_offsets` says sinks
    /// have stored positions, so that state must already exist.
    Run { has_offsets: bool },
    /// `tail`: nothing left behind on the server.
    Tail,
}

pub enum Source {
    Postgres(PgSource),
    Mysql(MysqlSource),
}

impl Source {
    /// Connects, checks the server's settings and privileges, and sets up
    /// what streaming needs.
    pub async fn prepare(cfg: &SourceConfig, purpose: Purpose) -> Result<Source> {
        match cfg.kind {
            SourceKind::Postgres => {
                let (slot, temporary, must_exist) = match purpose {
                    Purpose::Run { has_offsets } => (cfg.slot.clone(), false, has_offsets),
                    Purpose::Tail => (format!("outflow_tail_{}", std::process::id()), true, false),
                };
                Ok(Source::Postgres(PgSource::prepare(cfg, &slot, temporary, must_exist).await?))
            }
            // Nothing is left on the server either way: run and tail differ
            // only in whether offsets are stored.
            SourceKind::Mysql => Ok(Source::Mysql(MysqlSource::prepare(cfg).await?)),
        }
    }

    /// Which server and stream a state directory belongs to.
    pub fn identity(&self) -> SourceIdentity {
        match self {
            Source::Postgres(s) => SourceIdentity {
                kind: "postgres".into(),
                system_identifier: s.system_identifier.clone(),
                database: s.params.dbname.clone(),
                slot: s.slot.clone(),
            },
            Source::Mysql(s) => SourceIdentity {
                kind: "mysql".into(),
                system_identifier: s.system_identifier(),
                database: s.database.clone(),
                slot: "binlog".into(),
            },
        }
    }

    pub fn sink_context(&self, pipeline: &str) -> SinkContext {
        match self {
            Source::Postgres(s) => SinkContext {
                pipeline: pipeline.to_string(),
                connector: "postgresql",
                dialect: outflow_model::Dialect::Postgres,
                db: s.params.dbname.clone(),
            },
            Source::Mysql(s) => SinkContext {
                pipeline: pipeline.to_string(),
                connector: "mysql",
                dialect: outflow_model::Dialect::Mysql,
                db: s.database.clone(),
            },
        }
    }

    /// The captured tables.
    pub fn tables(&self) -> Vec<TableId> {
        match self {
            Source::Postgres(s) => s.tables.clone(),
            Source::Mysql(s) => s.captured.clone(),
        }
    }

    /// Has the stream snapshot `plan`'s tables (and stop when done with
    /// `exit_after`, for `mode = "initial_only"`).
    pub fn set_snapshot(&mut self, plan: SnapshotPlan, exit_after: bool) {
        match self {
            Source::Postgres(s) => {
                s.snapshot = Some(plan);
                s.exit_after_snapshot = exit_after;
            }
            Source::Mysql(s) => {
                s.snapshot = Some(plan);
                s.exit_after_snapshot = exit_after;
            }
        }
    }

    /// Streams into the sinks until stopped or caught up; returns after the
    /// sinks have drained and committed.
    pub async fn stream(
        self,
        sinks: &mut [SinkHandle],
        state: Option<&StateDir>,
        until_caught_up: bool,
        stop: CancellationToken,
    ) -> Result<()> {
        match self {
            Source::Postgres(s) => s.stream(sinks, state, until_caught_up, stop).await,
            Source::Mysql(s) => s.stream(sinks, state, until_caught_up, stop).await,
        }
    }
}
