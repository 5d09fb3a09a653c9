//! The RabbitMQ sink's factory: `validate` (the settings alone), `build`
//! (connect on the pipeline's runtime, waiting while the broker is down)
//! and `preflight` (`outflow check`: connect within a timeout, which proves
//! the credentials and vhost, and in the exchange mode check the exchange
//! exists unless the sink declares it).

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use rabbitmq_stream_client::{Client, ClientOptions};

use super::config::Target;
use super::errors;
use super::exchange::ExchangeSink;
use super::stream::StreamSink;
use super::RabbitmqConfig;
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

/// How long `outflow check` waits for the broker.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const REACH_HINT: &str = "check `url` (host:port of a RabbitMQ broker reachable from this host) and, for a stream, \
                          `stream_port` and that the rabbitmq_stream plugin is enabled";

#[async_trait]
impl SinkFactory for RabbitmqConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        RabbitmqConfig::validate(self)
    }

    /// Runs on a blocking thread: the sink blocks on the runtime's handle.
    async fn build(&self, ctx: SinkContext, _checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        match self.check()? {
            Target::Stream(template) => {
                open_blocking("rabbitmq", move |runtime| StreamSink::open(&config, template, ctx, runtime)).await
            }
            Target::Exchange { exchange, routing_key } => {
                open_blocking("rabbitmq", move |runtime| {
                    ExchangeSink::open(&config, exchange, routing_key, ctx, runtime)
                })
                .await
            }
        }
    }

    async fn preflight(&self) -> Vec<Probe> {
        let target = match self.check() {
            Ok(t) => t,
            Err(e) => return vec![Probe::fail(format!("sink {:?}: {e}", self.name), "fix the sink's settings")],
        };
        let url = self.shown_url();
        let (what, probe) = match target {
            Target::Stream(_) => (
                format!("sink {:?}: rabbitmq at {url} accepts the sink's credentials on the stream port {}", self.name, self.stream_port),
                tokio::time::timeout(PROBE_TIMEOUT, self.probe_stream()).await,
            ),
            Target::Exchange { exchange, .. } => (
                format!("sink {:?}: rabbitmq at {url} accepts the sink's credentials and has exchange {exchange:?}", self.name),
                tokio::time::timeout(PROBE_TIMEOUT, self.probe_exchange(&exchange)).await,
            ),
        };
        vec![match probe {
            Ok(Ok(())) => Probe::pass(what),
            Ok(Err(SinkError::Fatal { message, hint })) => Probe::fail(format!("{what}: {message}"), hint),
            Ok(Err(e)) => Probe::fail(format!("{what}: {e}"), REACH_HINT),
            Err(_) => Probe::fail(format!("{what}: no answer within {} s", PROBE_TIMEOUT.as_secs()), REACH_HINT),
        }]
    }
}

impl RabbitmqConfig {
    async fn probe_stream(&self) -> Result<(), SinkError> {
        let uri = self.uri()?;
        let options = ClientOptions::builder()
            .host(&uri.authority.host)
            .port(self.stream_port)
            .user(&uri.authority.userinfo.username)
            .password(&uri.authority.userinfo.password)
            .v_host(&uri.vhost)
            .build();
        let shown = self.shown_url();
        let client = Client::connect(options).await.map_err(|e| {
            errors::stream_client(&e, "connect", &shown).unwrap_or_else(|| SinkError::Data(errors::one_line(&e.to_string())))
        })?;
        let _ = client.close().await;
        Ok(())
    }

    async fn probe_exchange(&self, exchange: &str) -> Result<(), SinkError> {
        let shown = self.shown_url();
        let fail = |e: lapin::Error| {
            errors::amqp(&e, &shown, exchange).unwrap_or_else(|| SinkError::Data(errors::one_line(&e.to_string())))
        };
        let conn = Connection::connect(&self.url, ConnectionProperties::default()).await.map_err(fail)?;
        if !self.create_exchange {
            let channel = conn.create_channel().await.map_err(fail)?;
            let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
            channel.exchange_declare(exchange.into(), ExchangeKind::Topic, passive, FieldTable::default()).await.map_err(fail)?;
        }
        let _ = conn.close(200, "outflow check".into()).await;
        Ok(())
    }
}
