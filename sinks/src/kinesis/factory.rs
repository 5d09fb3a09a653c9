//! The Kinesis sink's factory: `validate` (the settings alone), `build`
//! (connect on the pipeline's runtime, create the stream if allowed, read
//! what the stream holds past the checkpoint) and `preflight` (`outflow
//! check`: region and credentials resolve, and the stream answers
//! `ListShards` within a timeout, which proves the credentials).

use std::time::Duration;

use async_trait::async_trait;

use super::errors::{classify, Failure};
use super::{client, KinesisConfig};
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

/// How long `outflow check` waits for Kinesis.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

#[async_trait]
impl SinkFactory for KinesisConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        KinesisConfig::validate(self)
    }

    /// Runs on a blocking thread: the sink blocks on the runtime's handle.
    async fn build(&self, ctx: SinkContext, checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        let checkpoint = checkpoint.cloned();
        open_blocking("kinesis", move |runtime| config.open(ctx, runtime, checkpoint.as_ref())).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let fail_hint = "check `region`, `endpoint` and the AWS credentials the sink runs with";
        let stream = match self.check().and_then(|t| self.stream_name(&t, "outflow", "")) {
            Ok(_) if self.stream.contains('{') => return vec![self.probe_credentials(fail_hint).await],
            Ok(s) => s,
            Err(e) => return vec![Probe::fail(format!("sink {:?}: {e}", self.name), "fix the sink's settings")],
        };
        let what = format!("sink {:?}: kinesis stream {stream:?} answers with the sink's credentials", self.name);
        let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
            let client = client(self).await?;
            Ok::<_, SinkError>(client.list_shards().stream_name(&stream).max_results(1).send().await)
        })
        .await;
        vec![match probe {
            Err(_) => Probe::fail(format!("{what}: no answer within {} s", PROBE_TIMEOUT.as_secs()), fail_hint),
            Ok(Err(SinkError::Fatal { message, hint })) => Probe::fail(format!("{what}: {message}"), hint),
            Ok(Err(e)) => Probe::fail(format!("{what}: {e}"), fail_hint),
            Ok(Ok(Ok(_))) => Probe::pass(what),
            Ok(Ok(Err(e))) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                if self.create_stream {
                    Probe::pass(format!("{what} (missing: the sink creates it, create_stream = true)"))
                } else {
                    match super::errors::missing_stream(&stream) {
                        SinkError::Fatal { message, hint } => Probe::fail(format!("{what}: {message}"), hint),
                        other => Probe::fail(format!("{what}: {other}"), fail_hint),
                    }
                }
            }
            Ok(Ok(Err(e))) => match classify(&e, &stream) {
                Failure::Fatal(SinkError::Fatal { message, hint }) => Probe::fail(format!("{what}: {message}"), hint),
                Failure::Fatal(other) => Probe::fail(format!("{what}: {other}"), fail_hint),
                Failure::Retry(t) | Failure::Ambiguous(t) => Probe::fail(format!("{what}: {t}"), fail_hint),
            },
        }]
    }
}

impl KinesisConfig {
    /// For a templated `stream` (only the pipeline knows `{name}`/`{db}`):
    /// proves region and credentials with `ListStreams`.
    async fn probe_credentials(&self, fail_hint: &str) -> Probe {
        let what = format!("sink {:?}: kinesis answers ListStreams with the sink's credentials", self.name);
        let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
            let client = client(self).await?;
            Ok::<_, SinkError>(client.list_streams().limit(1).send().await)
        })
        .await;
        match probe {
            Err(_) => Probe::fail(format!("{what}: no answer within {} s", PROBE_TIMEOUT.as_secs()), fail_hint),
            Ok(Err(SinkError::Fatal { message, hint })) => Probe::fail(format!("{what}: {message}"), hint),
            Ok(Err(e)) => Probe::fail(format!("{what}: {e}"), fail_hint),
            Ok(Ok(Ok(_))) => Probe::pass(what),
            Ok(Ok(Err(e))) => match classify(&e, &self.stream) {
                Failure::Fatal(SinkError::Fatal { message, hint }) => Probe::fail(format!("{what}: {message}"), hint),
                Failure::Fatal(other) => Probe::fail(format!("{what}: {other}"), fail_hint),
                Failure::Retry(t) | Failure::Ambiguous(t) => Probe::fail(format!("{what}: {t}"), fail_hint),
            },
        }
    }
}
