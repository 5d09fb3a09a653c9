//! The stream mode: messages into RabbitMQ streams over the stream
//! protocol, exactly-once by publisher deduplication (see [`super::ids`]).
//!
//! It drives `rabbitmq-stream-client`'s low-level [`Client`] rather than its
//! `Producer`: the producer keeps no bound on unconfirmed messages, cannot
//! resend them on a new connection with their IDs, and panics on a confirm
//! it does not expect; the client gives the protocol's commands
//! (`declare_publisher`, `query_publisher_sequence`, `publish`,
//! `subscribe`) and hands every confirm, error and delivery to one handler.
//!
//! The client is pinned to 0.4.4: from 0.5 on it asks the broker for its
//! command versions (`ExchangeCommandVersions`) when it connects, which
//! RabbitMQ before 3.11 (Debian 12 ships 3.10) does not know, and the
//! connection fails. 0.4.4 speaks protocol version 1, which newer brokers
//! still serve.
//!
//! Protocol surprises handled here:
//! - one connection holds up to 255 publishers (a u8 ID each): one per
//!   stream, the same reference (`<pipeline>.<sink>`) on every stream;
//! - a publish frame must stay under the negotiated frame size (1 MiB by
//!   default) or the broker closes the connection: batches are cut by an
//!   upper bound of each message's encoded size, and a message that cannot
//!   fit alone is a definite "record too large" error;
//! - the broker confirms, and does not store, a message whose publishing
//!   ID is not above the producer's last one;
//! - `query_publisher_sequence` says 0 both for "never published" and for
//!   ID 0, so IDs start at 1;
//! - the stream's last message is read by subscribing at `last`, which
//!   delivers the last chunk whole in one frame.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use outflow_model::{ChangeEvent, Position, StreamItem, TableId};
use rabbitmq_stream_client::error::ClientError;
use rabbitmq_stream_client::types::{
    Message, MessageResult, OffsetSpecification, ResponseCode, ResponseKind, SimpleValue,
};
use rabbitmq_stream_client::{Client, ClientOptions};
use tokio::runtime::Handle;

use super::config::RabbitmqConfig;
use super::errors::{self, one_line};
use super::ids::Sequence;
use super::{time_to_log, Renderer, CONNECT_TIMEOUT, MAX_BACKOFF};
use crate::format::routing::NameTemplate;
use crate::{Checkpoint, Sink, SinkContext, SinkError};

/// The frame size the client asks for (the broker's default too).
pub const MAX_FRAME: usize = 1_048_576;
/// A publish frame's own bytes: size, key, version, publisher ID, count.
const FRAME_OVERHEAD: usize = 4 + 2 + 2 + 1 + 4;
/// Per message in a publish frame (publishing ID, length) plus an upper
/// bound of the AMQP 1.0 sections around the body and properties.
const MESSAGE_OVERHEAD: usize = 8 + 4 + 256;
/// Messages in one publish frame at most.
const BATCH: usize = 1000;
/// The subscription that reads a stream's last chunk.
const TAIL_SUBSCRIPTION: u8 = 0;
/// How long the last chunk of a stream may take to arrive.
const TAIL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an answer to a command may take before the connection is
/// taken as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed step: retry on a new connection, or stop.
enum Failure {
    Retry(String),
    Stop(SinkError),
}

impl Failure {
    fn client(e: ClientError, what: &str, url: &str) -> Failure {
        match errors::stream_client(&e, what, url) {
            Some(fatal) => Failure::Stop(fatal),
            None => Failure::Retry(format!("cannot {what}: {e}")),
        }
    }

    fn code(code: &ResponseCode, what: &str, url: &str) -> Failure {
        match errors::stream_code(code, what, url) {
            Some(fatal) => Failure::Stop(fatal),
            None => Failure::Retry(format!("cannot {what}: {code:?}")),
        }
    }
}

/// What the connection's handler and the sink's thread share.
#[derive(Default)]
struct Shared {
    state: Mutex<Inflight>,
    changed: Condvar,
}

#[derive(Default)]
struct Inflight {
    /// Sent and not yet confirmed, by (publisher, publishing ID).
    unconfirmed: BTreeMap<(u8, u64), Message>,
    /// Upper bound of their bytes.
    bytes: usize,
    /// The current connection (handlers of older ones are ignored).
    conn_id: u64,
    /// The current connection is gone.
    closed: bool,
    /// A message the broker refused.
    refused: Option<(u8, u64, ResponseCode)>,
    /// The chunk the tail subscription delivered.
    tail: Option<Vec<Message>>,
}

impl Inflight {
    fn forget(&mut self, publisher: u8, id: u64) {
        if let Some(m) = self.unconfirmed.remove(&(publisher, id)) {
            self.bytes = self.bytes.saturating_sub(upper_size(&m));
        }
    }

    /// Whether `bytes` more of unconfirmed messages fit.
    fn room(&self, count: usize, bytes: usize, max_count: usize) -> bool {
        self.unconfirmed.is_empty()
            || (self.unconfirmed.len() + count <= max_count && self.bytes + bytes <= super::MAX_INFLIGHT_BYTES)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inflight> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes one connection's confirms, errors, deliveries and close into the
/// shared state (the client's handler trait is not public: it takes any
/// cloneable closure).
fn handle(shared: &Shared, conn_id: u64, item: MessageResult) {
    {
        let mut s = shared.lock();
        match item {
            Some(Ok(response)) => match response.kind() {
                ResponseKind::PublishConfirm(c) => {
                    for id in c.publishing_ids {
                        s.forget(c.publisher_id, id);
                    }
                }
                ResponseKind::PublishError(e) => {
                    for err in e.publishing_errors {
                        s.forget(e.publisher_id, err.publishing_id);
                        if s.refused.is_none() && s.conn_id == conn_id {
                            s.refused = Some((e.publisher_id, err.publishing_id, err.error_code));
                        }
                    }
                }
                ResponseKind::Deliver(d) if d.subscription_id == TAIL_SUBSCRIPTION => s.tail = Some(d.messages),
                _ => {}
            },
            Some(Err(_)) | None => {
                if s.conn_id == conn_id {
                    s.closed = true;
                }
            }
        }
    }
    shared.changed.notify_all();
}

/// One stream the sink publishes to (its publisher ID is its index).
struct StreamState {
    name: String,
    seq: Sequence,
}

pub struct StreamSink {
    cfg: RabbitmqConfig,
    url: String,
    template: NameTemplate,
    ctx: SinkContext,
    render: Renderer,
    runtime: Handle,
    options: ClientOptions,
    /// The producers' name on every stream: `<pipeline>.<sink>`.
    reference: String,
    shared: Arc<Shared>,
    client: Option<Client>,
    conn_id: u64,
    streams: Vec<StreamState>,
    table_streams: HashMap<TableId, u8>,
    /// Messages for one publisher not yet sent, and an upper bound of
    /// their bytes in a frame.
    batch: Vec<Message>,
    batch_publisher: u8,
    batch_bytes: usize,
    bytes: u64,
}

impl StreamSink {
    /// Connects (waiting while the broker is down) on the pipeline's
    /// runtime.
    pub fn open(
        cfg: &RabbitmqConfig,
        template: NameTemplate,
        ctx: SinkContext,
        runtime: Handle,
    ) -> Result<StreamSink, SinkError> {
        let uri = cfg.uri()?;
        let options = ClientOptions::builder()
            .host(&uri.authority.host)
            .port(cfg.stream_port)
            .user(&uri.authority.userinfo.username)
            .password(&uri.authority.userinfo.password)
            .v_host(&uri.vhost)
            .heartbeat(20)
            .max_frame_size(MAX_FRAME as u32)
            .build();
        let mut sink = StreamSink {
            url: format!("{}:{} (stream protocol)", cfg.shown_url(), cfg.stream_port),
            reference: format!("{}.{}", ctx.pipeline, cfg.name),
            render: Renderer::new(cfg, ctx.clone()),
            cfg: cfg.clone(),
            template,
            ctx,
            runtime,
            options,
            shared: Arc::default(),
            client: None,
            conn_id: 0,
            streams: Vec::new(),
            table_streams: HashMap::new(),
            batch: Vec::with_capacity(BATCH),
            batch_publisher: 0,
            batch_bytes: 0,
            bytes: 0,
        };
        sink.connection()?;
        Ok(sink)
    }

    /// The open connection, connecting (with backoff while the broker
    /// cannot be reached) when there is none; a new connection declares
    /// every known publisher again and resends what was unconfirmed.
    fn connection(&mut self) -> Result<Client, SinkError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut backoff = Duration::from_millis(100);
        let mut logged = None;
        loop {
            match self.connect_once() {
                Ok(c) => return Ok(c),
                Err(Failure::Stop(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    if time_to_log(&mut logged) {
                        tracing::warn!(sink = %self.cfg.name, url = %self.url, error = %one_line(&e),
                            "rabbitmq stream connection failed; retrying (nothing after the last confirmed message is acknowledged to the source)");
                    }
                    self.drop_connection();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn connect_once(&mut self) -> Result<Client, Failure> {
        self.conn_id += 1;
        let conn_id = self.conn_id;
        {
            let mut s = self.shared.lock();
            s.conn_id = conn_id;
            s.closed = false;
        }
        let url = self.url.clone();
        let options = self.options.clone();
        let client = self
            .runtime
            .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(options)).await })
            .map_err(|_| Failure::Retry(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| Failure::client(e, "connect", &url))?;
        let shared = self.shared.clone();
        let handler = move |item: MessageResult| {
            let shared = shared.clone();
            async move {
                handle(&shared, conn_id, item);
                Ok(())
            }
        };
        self.runtime.block_on(client.set_handler(handler));
        self.client = Some(client.clone());
        for id in 0..self.streams.len() {
            let name = self.streams[id].name.clone();
            let what = format!("declare the publisher on stream {name:?}");
            let r = self.command(client.declare_publisher(id as u8, Some(self.reference.clone()), &name), &what)?;
            if !r.is_ok() {
                return Err(Failure::code(r.code(), &what, &url));
            }
        }
        self.resend(&client)?;
        Ok(client)
    }

    /// Runs one command with a timeout.
    fn command<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ClientError>>,
        what: &str,
    ) -> Result<T, Failure> {
        match self.runtime.block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, fut).await }) {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(Failure::client(e, what, &self.url)),
            Err(_) => Err(Failure::Retry(format!("cannot {what}: no answer within {} s", COMMAND_TIMEOUT.as_secs()))),
        }
    }

    /// On a new connection: forgets the unconfirmed messages the broker
    /// stored (at or below the producer's sequence) and sends the rest again,
    /// with their IDs.
    fn resend(&mut self, client: &Client) -> Result<(), Failure> {
        let mut resent = 0usize;
        for id in 0..self.streams.len() {
            let publisher = id as u8;
            if !self.shared.lock().unconfirmed.keys().any(|(p, _)| *p == publisher) {
                continue;
            }
            let name = self.streams[id].name.clone();
            let stored = self.command(
                client.query_publisher_sequence(&self.reference, &name),
                &format!("read the publisher's sequence on stream {name:?}"),
            )?;
            let pending: Vec<Message> = {
                let mut s = self.shared.lock();
                s.unconfirmed.retain(|(p, seq), _| *p != publisher || *seq > stored);
                s.bytes = s.unconfirmed.values().map(upper_size).sum();
                s.unconfirmed.range((publisher, 0)..=(publisher, u64::MAX)).map(|(_, m)| m.clone()).collect()
            };
            resent += pending.len();
            let mut frame: Vec<Message> = Vec::new();
            let mut bytes = FRAME_OVERHEAD;
            for m in pending {
                let size = upper_size(&m);
                if !frame.is_empty() && (bytes + size > MAX_FRAME || frame.len() >= BATCH) {
                    let what = format!("publish to stream {name:?}");
                    self.command(client.publish(publisher, std::mem::take(&mut frame)), &what)?;
                    bytes = FRAME_OVERHEAD;
                }
                bytes += size;
                frame.push(m);
            }
            if !frame.is_empty() {
                self.command(client.publish(publisher, frame), &format!("publish to stream {name:?}"))?;
            }
        }
        if resent > 0 {
            tracing::info!(sink = %self.cfg.name, resent, "resent the unconfirmed messages on a new connection (the broker drops those it had stored)");
        }
        Ok(())
    }

    /// Forgets the connection (closing it in the background).
    fn drop_connection(&mut self) {
        if let Some(client) = self.client.take() {
            self.runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
            });
        }
    }

    /// Runs `step` on the connection until it succeeds, reconnecting on a
    /// transient failure.
    fn with_retry<T>(&mut self, mut step: impl FnMut(&mut Self, &Client) -> Result<T, Failure>) -> Result<T, SinkError> {
        let mut backoff = Duration::from_millis(100);
        let mut logged = None;
        loop {
            let client = self.connection()?;
            match step(self, &client) {
                Ok(t) => return Ok(t),
                Err(Failure::Stop(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    if time_to_log(&mut logged) {
                        tracing::warn!(sink = %self.cfg.name, url = %self.url, error = %one_line(&e), "retrying on a new connection");
                    }
                    self.drop_connection();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The publisher ID of `table`'s stream, opening the stream on first
    /// use.
    fn table_stream(&mut self, table: &TableId) -> Result<u8, SinkError> {
        if let Some(id) = self.table_streams.get(table) {
            return Ok(*id);
        }
        let name = self.template.render(&self.ctx.pipeline, &self.ctx.db, &table.schema, &table.name, String::push_str);
        let id = match self.streams.iter().position(|s| s.name == name) {
            Some(id) => id as u8,
            None => self.open_stream(name)?,
        };
        self.table_streams.insert(table.clone(), id);
        Ok(id)
    }

    /// Creates the stream if asked, declares its publisher, reads the
    /// publisher's last ID and the stream's last message.
    fn open_stream(&mut self, name: String) -> Result<u8, SinkError> {
        if self.streams.len() >= usize::from(u8::MAX) {
            return Err(SinkError::fatal(
                format!("sink {:?}: the stream template names more than 255 streams", self.cfg.name),
                "use fewer streams (e.g. `stream = \"{name}\"` for one stream of every table)",
            ));
        }
        self.send_batch()?;
        let id = self.streams.len() as u8;
        let seq = self.with_retry(|sink, client| {
            let url = sink.url.clone();
            if sink.cfg.create_stream {
                let what = format!("create stream {name:?}");
                let r = sink.command(client.create_stream(&name, HashMap::new()), &what)?;
                if !r.is_ok() && *r.code() != ResponseCode::StreamAlreadyExists {
                    return Err(Failure::code(r.code(), &what, &url));
                }
            }
            let what = format!("declare a publisher on stream {name:?}");
            let r = sink.command(client.declare_publisher(id, Some(sink.reference.clone()), &name), &what)?;
            if !r.is_ok() {
                return Err(Failure::code(r.code(), &what, &url));
            }
            let last = sink.command(
                client.query_publisher_sequence(&sink.reference, &name),
                &format!("read the publisher's sequence on stream {name:?}"),
            )?;
            let recovered = if last > 0 { sink.read_tail(client, &name)? } else { None };
            Ok(Sequence { last, recovered })
        })?;
        match &seq.recovered {
            Some(p) => tracing::info!(sink = %self.cfg.name, stream = %name, position = %p, last_id = seq.last,
                "stream already holds changes up to this position; skipping those"),
            None if seq.last > 0 => tracing::warn!(sink = %self.cfg.name, stream = %name, last_id = seq.last,
                "the stream's last message has no outflow position; new messages go after the producer's last ID"),
            None => {}
        }
        self.streams.push(StreamState { name, seq });
        Ok(id)
    }

    /// The position of the stream's last message: subscribes at `last`
    /// (the last chunk, delivered in one frame) and reads its last message.
    fn read_tail(&self, client: &Client, name: &str) -> Result<Option<Position>, Failure> {
        self.shared.lock().tail = None;
        let what = format!("read the last message of stream {name:?}");
        let r = self.command(
            client.subscribe(TAIL_SUBSCRIPTION, name, OffsetSpecification::Last, 1, HashMap::new()),
            &what,
        )?;
        if !r.is_ok() {
            return Err(Failure::code(r.code(), &what, &self.url));
        }
        let deadline = Instant::now() + TAIL_TIMEOUT;
        let chunk = {
            let mut s = self.shared.lock();
            loop {
                if let Some(chunk) = s.tail.take() {
                    break Some(chunk);
                }
                if s.closed {
                    return Err(Failure::Retry(format!("cannot {what}: the connection closed")));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break None;
                }
                s = self.shared.changed.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        };
        self.command(client.unsubscribe(TAIL_SUBSCRIPTION), &what)?;
        let Some(chunk) = chunk else {
            return Err(Failure::Retry(format!(
                "cannot {what}: nothing arrived within {} s",
                TAIL_TIMEOUT.as_secs()
            )));
        };
        Ok(chunk.last().and_then(position_of))
    }

    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        let publisher = self.table_stream(&ev.table.id)?;
        let seq = &mut self.streams[usize::from(publisher)].seq;
        if seq.holds(&ev.position) {
            return Ok(());
        }
        let id = seq.next_id(&ev.position);
        let position = ev.position.to_string();
        let table = ev.table.id.to_string();
        let (key, value) = self.render.render(ev);
        self.bytes += (key.len() + value.len()) as u64;
        let message = build_message(id, key, value, ev.op.code(), &table, &position);
        let size = upper_size(&message);
        if size + FRAME_OVERHEAD > MAX_FRAME {
            return Err(SinkError::fatal(
                format!(
                    "a change of {table} at {position} is {} bytes, more than a rabbitmq stream frame ({MAX_FRAME} bytes) holds",
                    value.len() + key.len()
                ),
                "keep rows under 1 MiB (exclude large columns with a transform) or use the exchange mode; nothing from this change on was acknowledged",
            ));
        }
        if !self.batch.is_empty()
            && (self.batch_publisher != publisher
                || self.batch_bytes + size + FRAME_OVERHEAD > MAX_FRAME
                || self.batch.len() >= BATCH)
        {
            self.send_batch()?;
        }
        self.batch_publisher = publisher;
        self.batch_bytes += size;
        self.batch.push(message);
        Ok(())
    }

    /// Sends the batch (after waiting for room among the unconfirmed).
    fn send_batch(&mut self) -> Result<(), SinkError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let (count, bytes, max) = (self.batch.len(), self.batch_bytes, self.cfg.max_in_flight);
        self.wait_until("room for more unconfirmed messages", |s| s.room(count, bytes, max))?;
        let publisher = self.batch_publisher;
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        {
            let mut s = self.shared.lock();
            for m in &batch {
                let id = *m.publishing_id().expect("every message is given its ID");
                s.bytes += upper_size(m);
                s.unconfirmed.insert((publisher, id), m.clone());
            }
        }
        let client = self.connection()?;
        let sent = self.runtime.block_on(async {
            tokio::time::timeout(COMMAND_TIMEOUT, client.publish(publisher, batch)).await
        });
        if !matches!(sent, Ok(Ok(_))) {
            // The connection is gone; the next wait reconnects and resends.
            self.shared.lock().closed = true;
        }
        Ok(())
    }

    /// Waits until `done` holds for the shared state, reconnecting (and
    /// resending) when the connection closes, stopping on a refusal.
    fn wait_until(&mut self, what: &str, done: impl Fn(&Inflight) -> bool) -> Result<(), SinkError> {
        let mut logged: Option<Instant> = None;
        let started = Instant::now();
        loop {
            let closed = {
                let mut s = self.shared.lock();
                if let Some((publisher, id, code)) = s.refused.take() {
                    let stream = self.streams.get(usize::from(publisher)).map_or("?", |s| s.name.as_str());
                    let what = format!("store message {id} in stream {stream:?}");
                    return Err(errors::stream_code(&code, &what, &self.url)
                        .unwrap_or_else(|| SinkError::Data(format!("rabbitmq at {}: cannot {what}: {code:?}", self.url))));
                }
                if done(&s) {
                    return Ok(());
                }
                if !s.closed {
                    s = self.shared.changed.wait_timeout(s, Duration::from_secs(1)).unwrap_or_else(|p| p.into_inner()).0;
                }
                s.closed
            };
            if closed {
                self.drop_connection();
                self.connection()?;
            } else if started.elapsed() >= super::WAIT_LOG && time_to_log(&mut logged) {
                let unconfirmed = self.shared.lock().unconfirmed.len();
                tracing::warn!(sink = %self.cfg.name, url = %self.url, unconfirmed,
                    "waiting for rabbitmq to confirm ({what}); the source is held meanwhile");
            }
        }
    }
}

/// A change's message: the body, `content_type`, the `key`, `op`, `table`
/// and `position` application properties, and its publishing ID.
fn build_message(id: u64, key: &str, body: &[u8], op: &str, table: &str, position: &str) -> Message {
    Message::builder()
        .body(body.to_vec())
        .properties()
        .content_type("application/json")
        .message_builder()
        .application_properties()
        .insert("key", key)
        .insert("op", op)
        .insert("table", table)
        .insert("position", position)
        .message_builder()
        .publising_id(id) // (sic: the 0.4 builder's name)
        .build()
}

/// An upper bound of a message's bytes in a publish frame.
fn upper_size(m: &Message) -> usize {
    let props: usize = m.application_properties().map_or(0, |p| {
        p.iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        SimpleValue::String(s) => s.len(),
                        _ => 16,
                    }
            })
            .sum()
    });
    m.data().map_or(0, <[u8]>::len) + props + MESSAGE_OVERHEAD
}

/// The `position` property of a message outflow wrote.
fn position_of(m: &Message) -> Option<Position> {
    match m.application_properties()?.get("position")? {
        SimpleValue::String(p) => p.parse().ok(),
        _ => None,
    }
}

impl Sink for StreamSink {
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
        self.send_batch()?;
        self.wait_until("every message sent", |s| s.unconfirmed.is_empty())?;
        Ok(Checkpoint::Null)
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

impl Drop for StreamSink {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), client.close()).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use rabbitmq_stream_protocol::codec::Encoder;

    use super::*;

    #[test]
    fn the_size_bound_covers_the_encoded_message() {
        for (key, body, position) in [
            ("null", 0, "lsn:0/1:1"),
            ("{\"id\": 1}", 700, "lsn:0/16B3748:3"),
            (&*"k".repeat(300), 300, &*format!("gtid:{}:1", "0-1-5,".repeat(60))),
            ("{}", 1 << 20, "file:bin.000001:4:1"),
        ] {
            let m = build_message(u64::MAX, key, &vec![b'x'; body], "c", "public.items", position);
            // The frame holds the publishing ID (8) and the length (4) too.
            assert!(upper_size(&m) >= m.encoded_size() as usize + 12, "{} < {}", upper_size(&m), m.encoded_size());
            assert_eq!(position_of(&m), position.parse().ok());
        }
    }
}
