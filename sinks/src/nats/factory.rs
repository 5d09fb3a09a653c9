//! The NATS sink's factory: `validate` (the settings alone), `build`
//! (connect on the pipeline's runtime, waiting while NATS is down) and
//! `preflight` (`outflow check`: connect within a timeout, which proves the
//! credentials and that JetStream is on, and look the stream up).

use std::time::Duration;

use async_trait::async_trait;

use super::config::redact;
use super::connect;
use super::errors::Failure;
use super::NatsConfig;
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

/// How long `outflow check` waits for NATS.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl SinkFactory for NatsConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        NatsConfig::validate(self)
    }

    /// Runs on a blocking thread: the sink blocks on the runtime's handle.
    async fn build(&self, ctx: SinkContext, _checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        open_blocking("nats", move |runtime| config.open(ctx, runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let what = format!(
            "sink {:?}: nats at {} accepts the sink's credentials and has JetStream",
            self.name,
            redact(&self.url)
        );
        let unreachable = "check `url` (host:port of a NATS server reachable from this host)";
        let checked = match self.check() {
            Ok(c) => c,
            Err(e) => return vec![Probe::fail(format!("{what}: {e}"), "fix the sink's settings")],
        };
        let conn = match tokio::time::timeout(PROBE_TIMEOUT, connect::open(self, &checked, "check", 1)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(Failure::Definite(SinkError::Fatal { message, hint }))) => {
                return vec![Probe::fail(format!("{what}: {message}"), hint)]
            }
            Ok(Err(Failure::Definite(e))) => return vec![Probe::fail(format!("{what}: {e}"), unreachable)],
            Ok(Err(Failure::Retry(why))) => return vec![Probe::fail(format!("{what}: {why}"), unreachable)],
            Err(_) => {
                return vec![Probe::fail(format!("{what}: no answer within {} s", PROBE_TIMEOUT.as_secs()), unreachable)]
            }
        };
        let stream = format!("sink {:?}: stream {:?}", self.name, self.stream);
        let looked_up = tokio::time::timeout(PROBE_TIMEOUT, conn.js.get_stream(&self.stream)).await;
        let stream_probe = match looked_up {
            Ok(Ok(_)) => Probe::pass(format!("{stream} exists")),
            Ok(Err(e)) if is_not_found(&e) && self.create_stream => {
                Probe::pass(format!("{stream} is missing and will be created (create_stream = true)"))
            }
            Ok(Err(e)) if is_not_found(&e) => Probe::fail(
                format!("{stream} does not exist"),
                format!("create it (nats stream add {}), or set `create_stream = true`", self.stream),
            ),
            Ok(Err(e)) => Probe::fail(format!("{stream}: cannot look it up: {e}"), "check the sink's JetStream permissions"),
            Err(_) => Probe::fail(
                format!("{stream}: no answer within {} s", PROBE_TIMEOUT.as_secs()),
                "check that JetStream is healthy on the server",
            ),
        };
        vec![Probe::pass(what), stream_probe]
    }
}

fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    super::is_stream_not_found(e)
}
