//! The exchange mode: persistent messages to an exchange over AMQP 0.9.1
//! (lapin on the pipeline's tokio runtime) with publisher confirms;
//! at-least-once, every duplicate carrying its first copy's `message_id`.
//!
//! Every message is published on one channel in confirm mode, in source
//! order, and kept until the broker confirms it: at most `max_in_flight` of
//! them (and 64 MiB of bodies), `write` waits for the oldest confirm when that many are open and
//! `flush` waits for all. A lost connection, a channel closed by the
//! broker for a transient reason or a negative confirm opens a new
//! connection and sends every unconfirmed message again, in order (a
//! consumer then sees some messages twice, with equal `message_id`s; the
//! order per key of their first copies holds). With `mandatory` (the
//! default) a message that no queue takes comes back with its confirm and
//! stops the run, since the broker would otherwise confirm a message it
//! dropped.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm};
use outflow_model::{ChangeEvent, StreamItem, TableId};
use tokio::runtime::Handle;

use super::config::RabbitmqConfig;
use super::errors::{self, one_line};
use super::ids::message_id;
use super::{time_to_log, Renderer, CONNECT_TIMEOUT, MAX_BACKOFF};
use crate::format::routing::NameTemplate;
use crate::{Checkpoint, Sink, SinkContext, SinkError};

/// One published message, kept until confirmed.
struct Pending {
    /// None: not sent on the current connection.
    confirm: Option<Pin<Box<PublisherConfirm>>>,
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
}

pub struct ExchangeSink {
    cfg: RabbitmqConfig,
    url: String,
    exchange: String,
    routing_key: NameTemplate,
    ctx: SinkContext,
    render: Renderer,
    runtime: Handle,
    conn: Option<(Connection, Channel)>,
    inflight: VecDeque<Pending>,
    /// Messages of `inflight` from this index on are not sent on the
    /// current connection.
    unsent: usize,
    /// Body bytes of `inflight`.
    inflight_bytes: usize,
    table_keys: HashMap<TableId, String>,
    bytes: u64,
}

impl ExchangeSink {
    /// Connects (waiting while the broker is down) on the pipeline's
    /// runtime and checks or declares the exchange.
    pub fn open(
        cfg: &RabbitmqConfig,
        exchange: String,
        routing_key: NameTemplate,
        ctx: SinkContext,
        runtime: Handle,
    ) -> Result<ExchangeSink, SinkError> {
        let mut sink = ExchangeSink {
            url: cfg.shown_url(),
            render: Renderer::new(cfg, ctx.clone()),
            cfg: cfg.clone(),
            exchange,
            routing_key,
            ctx,
            runtime,
            conn: None,
            inflight: VecDeque::new(),
            unsent: 0,
            inflight_bytes: 0,
            table_keys: HashMap::new(),
            bytes: 0,
        };
        sink.reconnect()?;
        Ok(sink)
    }

    /// One connection attempt: connect, open a channel in confirm mode,
    /// check or declare the exchange.
    async fn connect_once(cfg: &RabbitmqConfig, exchange: &str) -> Result<(Connection, Channel), lapin::Error> {
        let props = ConnectionProperties::default().with_connection_name(format!("outflow {}", cfg.name).into());
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&cfg.url, props)).await {
            Ok(c) => c?,
            Err(_) => {
                return Err(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                )))
            }
        };
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let kind = match cfg.exchange_type.as_str() {
            "topic" => ExchangeKind::Topic,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Direct,
        };
        let options = ExchangeDeclareOptions { passive: !cfg.create_exchange, durable: true, ..Default::default() };
        channel.exchange_declare(exchange.into(), kind, options, FieldTable::default()).await?;
        Ok((conn, channel))
    }

    /// Opens a new connection (with backoff while the broker cannot be
    /// reached) and sends every unconfirmed message again, in order.
    fn reconnect(&mut self) -> Result<(), SinkError> {
        let mut backoff = Duration::from_millis(100);
        let mut logged = None;
        loop {
            if let Some((conn, _)) = self.conn.take() {
                self.runtime.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "reconnecting".into())).await;
                });
            }
            let cfg = self.cfg.clone();
            let exchange = self.exchange.clone();
            let attempt = self.runtime.block_on(async move {
                let (conn, channel) = Self::connect_once(&cfg, &exchange).await?;
                Ok::<_, lapin::Error>((conn, channel))
            });
            let e = match attempt {
                Ok((conn, channel)) => {
                    self.conn = Some((conn, channel));
                    for p in &mut self.inflight {
                        p.confirm = None;
                    }
                    self.unsent = 0;
                    match self.send_unsent() {
                        Ok(()) => {
                            if !self.inflight.is_empty() {
                                tracing::info!(sink = %self.cfg.name, resent = self.inflight.len(),
                                    "resent the unconfirmed messages on a new connection (consumers may see them twice, with equal message_id)");
                            }
                            return Ok(());
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if let Some(fatal) = errors::amqp(&e, &self.url, &self.exchange) {
                return Err(fatal);
            }
            if time_to_log(&mut logged) {
                tracing::warn!(sink = %self.cfg.name, url = %self.url, error = %one_line(&e.to_string()),
                    "rabbitmq connection failed; retrying (nothing after the last confirmed message is acknowledged to the source)");
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Publishes the messages not sent on the current connection.
    fn send_unsent(&mut self) -> Result<(), lapin::Error> {
        let Some((_, channel)) = &self.conn else {
            return Err(lapin::Error::from(std::io::Error::other("not connected")));
        };
        let options = BasicPublishOptions { mandatory: self.cfg.mandatory, ..Default::default() };
        while let Some(p) = self.inflight.get_mut(self.unsent) {
            let confirm = self.runtime.block_on(channel.basic_publish(
                self.exchange.as_str().into(),
                p.routing_key.as_str().into(),
                options,
                &p.body,
                p.properties.clone(),
            ))?;
            p.confirm = Some(Box::pin(confirm));
            self.unsent += 1;
        }
        Ok(())
    }

    fn table_key(&mut self, table: &TableId) -> String {
        if let Some(k) = self.table_keys.get(table) {
            return k.clone();
        }
        let k = self.routing_key.render(&self.ctx.pipeline, &self.ctx.db, &table.schema, &table.name, String::push_str);
        self.table_keys.insert(table.clone(), k.clone());
        k
    }

    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        let routing_key = self.table_key(&ev.table.id);
        let position = ev.position.to_string();
        let (key, value) = self.render.render(ev);
        self.bytes += (key.len() + value.len()) as u64;
        let mut headers = FieldTable::default();
        headers.insert("key".into(), AMQPValue::LongString(key.into()));
        headers.insert("op".into(), AMQPValue::LongString(ev.op.code().into()));
        headers.insert("table".into(), AMQPValue::LongString(ev.table.id.to_string().into()));
        headers.insert("position".into(), AMQPValue::LongString(position.into()));
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id(&ev.position).into())
            .with_headers(headers);
        let body = value.to_vec();
        while !self.inflight.is_empty()
            && (self.inflight.len() >= self.cfg.max_in_flight
                || self.inflight_bytes + body.len() > super::MAX_INFLIGHT_BYTES)
        {
            self.settle_oldest()?;
        }
        self.inflight_bytes += body.len();
        self.inflight.push_back(Pending { confirm: None, routing_key, body, properties });
        if self.send_unsent().is_err() {
            self.reconnect()?;
        }
        Ok(())
    }

    /// Forgets the oldest message, confirmed.
    fn pop_confirmed(&mut self) {
        if let Some(p) = self.inflight.pop_front() {
            self.inflight_bytes -= p.body.len();
        }
        self.unsent = self.unsent.saturating_sub(1);
    }

    /// Waits for the oldest message's confirm; reconnects and resends on a
    /// transient failure.
    fn settle_oldest(&mut self) -> Result<(), SinkError> {
        let mut logged: Option<Instant> = None;
        let started = Instant::now();
        loop {
            let Some(front) = self.inflight.front_mut() else { return Ok(()) };
            let Some(confirm) = front.confirm.as_mut() else {
                self.reconnect()?;
                continue;
            };
            let waited =
                self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(1), confirm.as_mut()).await });
            let outcome = match waited {
                Err(_) if !self.conn.as_ref().is_some_and(|(c, ch)| c.status().connected() && ch.status().connected()) => {
                    self.reconnect()?;
                    continue;
                }
                Err(_) => {
                    if started.elapsed() >= super::WAIT_LOG && time_to_log(&mut logged) {
                        tracing::warn!(sink = %self.cfg.name, url = %self.url, unconfirmed = self.inflight.len(),
                            "waiting for rabbitmq to confirm; the source is held meanwhile");
                    }
                    continue;
                }
                Ok(outcome) => outcome,
            };
            match outcome {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                    self.pop_confirmed();
                    return Ok(());
                }
                Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) if self.cfg.mandatory => {
                    return Err(SinkError::fatal(
                        format!(
                            "rabbitmq at {}: exchange {:?} routed a message with routing key {:?} to no queue ({})",
                            self.url, self.exchange, front.routing_key, returned.reply_text
                        ),
                        "bind a queue to the exchange for this routing key, or set `mandatory = false` to let the broker drop such messages",
                    ));
                }
                Ok(Confirmation::Ack(Some(_))) => {
                    self.pop_confirmed();
                    return Ok(());
                }
                Ok(Confirmation::Nack(_)) => {
                    tracing::warn!(sink = %self.cfg.name, "rabbitmq refused to confirm a message (nack); resending");
                    self.reconnect()?;
                }
                Err(e) => {
                    if let Some(fatal) = errors::amqp(&e, &self.url, &self.exchange) {
                        return Err(fatal);
                    }
                    if time_to_log(&mut logged) {
                        tracing::warn!(sink = %self.cfg.name, url = %self.url, error = %one_line(&e.to_string()),
                            "rabbitmq connection lost; retrying");
                    }
                    self.reconnect()?;
                }
            }
        }
    }
}

impl Sink for ExchangeSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.render.start_batch();
        for item in items {
            if let StreamItem::Change(ev) = item {
                self.write_change(ev)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        while !self.inflight.is_empty() {
            self.settle_oldest()?;
        }
        Ok(Checkpoint::Null)
    }

    fn exactly_once(&self) -> bool {
        false
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

impl Drop for ExchangeSink {
    fn drop(&mut self) {
        if let Some((conn, _)) = self.conn.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), conn.close(200, "outflow stops".into())).await
            });
        }
    }
}
