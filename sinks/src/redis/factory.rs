//! The Redis sink's factory: `validate` (the settings alone), `build`
//! (connect on the pipeline's runtime, waiting while Redis is down) and
//! `preflight` (`outflow check`: connect and PING within a timeout, which
//! also proves the credentials).

use std::time::Duration;

use async_trait::async_trait;

use super::config::redact;
use super::{connect_once, RedisConfig};
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

/// How long `outflow check` waits for Redis.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl SinkFactory for RedisConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        RedisConfig::validate(self)
    }

    /// Runs on a blocking thread: the sink blocks on the runtime's handle.
    async fn build(&self, ctx: SinkContext, _checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        open_blocking("redis", move |runtime| config.open(ctx, runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let what = format!("sink {:?}: redis at {} answers PING with the sink's credentials", self.name, redact(&self.url));
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => return vec![Probe::fail(format!("{what}: {e}"), "fix the sink's `url` and `tls_ca_file`")],
        };
        let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
            let mut conn = connect_once(&client).await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        vec![match probe {
            Ok(Ok(_)) => Probe::pass(what),
            Ok(Err(e)) => match super::errors::definite(&e, &self.url) {
                Some(SinkError::Fatal { message, hint }) => Probe::fail(format!("{what}: {message}"), hint),
                _ => Probe::fail(
                    format!("{what}: {e}"),
                    "check `url` (host:port of a Redis server reachable from this host)",
                ),
            },
            Err(_) => Probe::fail(
                format!("{what}: no answer within {} s", PROBE_TIMEOUT.as_secs()),
                "check `url` (host:port of a Redis server reachable from this host)",
            ),
        }]
    }
}
