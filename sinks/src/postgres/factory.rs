//! The PostgreSQL apply sink's factory: `validate` (the settings alone),
//! `build` (connect and recover, on a blocking thread), and `preflight` for
//! `outflow check`: the target is reachable, and the user may create what a
//! run creates — the `outflow` schema and its offsets table, and the tables
//! in the target schema (the configured `schema`; without one, each source
//! schema, checked when a run creates its first table there). A schema that
//! exists needs CREATE on it; one that does not needs CREATE on the
//! database.

use async_trait::async_trait;

use super::{describe_target, ident, PostgresConfig, OFFSETS_SCHEMA};
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

#[async_trait]
impl SinkFactory for PostgresConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        PostgresConfig::validate(self)
    }

    async fn build(&self, ctx: SinkContext, _checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        open_blocking("postgres", move |runtime| config.open(ctx, runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        probe(self).await
    }
}

async fn probe(config: &PostgresConfig) -> Vec<Probe> {
    let name = &config.name;
    let target = match config.target_config() {
        Ok(c) => c,
        Err(e) => return vec![Probe::fail(format!("sink {name:?}: {e}"), "fix the sink's url")],
    };
    let shown = describe_target(&target);
    let user = target.user.clone();
    let connect = format!("sink {name:?}: connect to the postgres target {shown} as {user:?}");
    let client = match config.connect(&target, &shown).await {
        Ok(c) => c,
        Err(e) => {
            let fix = match &e {
                SinkError::Fatal { hint, .. } => hint.clone(),
                _ => "check the sink's url".to_string(),
            };
            return vec![Probe::fail(format!("{connect}: {e}"), fix)];
        }
    };
    let mut probes = vec![Probe::pass(connect)];
    let mut schemas = vec![OFFSETS_SCHEMA.to_string()];
    schemas.extend(config.schema.iter().filter(|s| *s != OFFSETS_SCHEMA).cloned());
    for schema in schemas {
        let row = client
            .query_one(
                "SELECT current_database()::text, current_user::text, \
                 EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                 CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
                      THEN has_schema_privilege($1, 'USAGE') AND has_schema_privilege($1, 'CREATE') \
                      ELSE has_database_privilege(current_database(), 'CREATE') END",
                &[&schema],
            )
            .await;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                probes.push(Probe::fail(
                    format!("sink {name:?}: cannot read the privileges of {user:?} in {shown}: {e}"),
                    "check that the sink's user may connect and query the catalog",
                ));
                continue;
            }
        };
        let (db, current, exists, allowed): (String, String, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (what, fix) = if exists {
            (
                format!("sink {name:?}: {current:?} may create tables in schema {schema:?} of {shown}"),
                format!("GRANT USAGE, CREATE ON SCHEMA {} TO {};", ident(&schema), ident(&current)),
            )
        } else {
            (
                format!("sink {name:?}: {current:?} may create schema {schema:?} in {shown}"),
                format!(
                    "GRANT CREATE ON DATABASE {} TO {}; (or create schema {} for it, owned by that user)",
                    ident(&db),
                    ident(&current),
                    ident(&schema)
                ),
            )
        };
        probes.push(if allowed { Probe::pass(what) } else { Probe::fail(what, fix) });
    }
    probes
}
