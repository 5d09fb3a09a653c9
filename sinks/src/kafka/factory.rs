//! The Kafka sink's factory: `validate` (the settings alone), `build` (on
//! a blocking thread: connecting waits for the broker) and `preflight`
//! (`outflow check`: one metadata fetch within [`PROBE_TIMEOUT`] proves the
//! brokers reachable and the credentials accepted; with Avro, the schema
//! registry answers with the sink's credentials too).

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};

use super::KafkaConfig;
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

/// How long `outflow check` waits for the cluster's metadata.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl SinkFactory for KafkaConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        KafkaConfig::validate(self)
    }

    /// Runs on a blocking thread: connecting waits for the broker.
    async fn build(&self, ctx: SinkContext, checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let (config, checkpoint) = (self.clone(), checkpoint.cloned());
        open_blocking("kafka", move |runtime| config.open(ctx, checkpoint.as_ref(), runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let config = self.clone();
        let probe = tokio::task::spawn_blocking(move || config.probe_metadata()).await;
        let what = format!(
            "sink {:?}: kafka brokers {} are reachable and accept the sink's credentials",
            self.name, self.brokers
        );
        let mut probes = vec![match probe {
            Ok(Ok(topics)) => Probe::pass(format!("{what} ({topics} topics visible)")),
            Ok(Err(why)) => Probe::fail(
                format!("{what}: {why}"),
                "check `brokers` (host:port of brokers reachable from this host) and the security settings \
                 (security.protocol, sasl.*, ssl.*) in [sink.producer]",
            ),
            Err(e) => Probe::fail(format!("{what}: the probe failed: {e}"), "this is a bug; please report it"),
        }];
        if let Ok(super::config::Checked { registry: Some(registry), .. }) = self.check() {
            probes.push(super::registry::probe(&self.name, &registry).await);
        }
        probes
    }
}

impl KafkaConfig {
    /// Fetches the cluster's metadata once (at most [`PROBE_TIMEOUT`]) and
    /// returns how many topics it lists.
    fn probe_metadata(&self) -> Result<usize, String> {
        let client: BaseProducer<DefaultProducerContext> =
            self.admin_config().create().map_err(|e| format!("cannot create a kafka client: {e}"))?;
        let md = client
            .client()
            .fetch_metadata(None, PROBE_TIMEOUT)
            .map_err(|e| format!("no metadata within {} s: {e}", PROBE_TIMEOUT.as_secs()))?;
        if md.brokers().is_empty() {
            return Err("the cluster lists no brokers".into());
        }
        Ok(md.topics().len())
    }
}
