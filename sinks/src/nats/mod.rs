//! `kind = "nats"`: every change event as a message of a NATS JetStream
//! stream (one subject per table, from the `subject` template), exactly-once
//! by the stream's deduplication and its per-subject last messages.
//!
//! Each change is published to its table's subject with the configured
//! format's bytes as body and the headers `Nats-Msg-Id`
//! (`<pipeline>:<sink>:<position>`), `Outflow-Position`, `Outflow-Table`,
//! `Outflow-Op` and `Outflow-Key` (the key columns as JSON, `null` without a
//! key or for a truncate) ([`message`]). Transaction boundaries, logical
//! decoding messages and schema changes carry no message. The stream is
//! created when missing (`create_stream = true`, subjects: the template with
//! the schema and table tokens as `*`), or given those subjects when it does
//! not capture them; otherwise either is a definite error naming the fix.
//!
//! Exactly-once: a replayed change has the same `Nats-Msg-Id`, so
//! JetStream's duplicate window (2 minutes by default) drops it. Past that
//! window, and with the state directory lost, the sink relies on each
//! subject holding a gap-free prefix of the source order ([`connect`] says
//! why): on first use of a subject it reads the subject's last message (the
//! JetStream "get last message for subject" request) and skips every change
//! at or before that message's `Outflow-Position`; after a failed publish
//! it reads them again and drops what already landed before it resends the
//! rest. outflow must be the only writer of its subjects. The sink keeps no
//! snapshot progress of its own: snapshot rows of a chunk written after the
//! last checkpoint are written again (with new positions) when a restarted
//! snapshot redoes that chunk.
//!
//! Delivery: publishes are pipelined, up to `max_in_flight` messages (and
//! [`MAX_IN_FLIGHT_BYTES`]) awaiting their acks; `write` waits for the
//! oldest acks when that is full and `flush` waits for all of them, so
//! memory stays bounded, a slow server holds the source and nothing is
//! acknowledged to the source before JetStream has stored it. A lost
//! connection, a missing ack and a stream out of space are retried with
//! backoff on a new connection; refused credentials, JetStream off, a
//! missing stream with `create_stream = false` and a record over the
//! server's `max_payload` or the stream's `max_msg_size` (checked before it
//! is sent, so nothing after it is published) stop the run with one line
//! and its fix ([`errors`]).
//!
//! The `async-nats` crate speaks the protocol; outflow only takes over its
//! reconnects (see [`connect`]).

mod config;
mod connect;
mod errors;
mod factory;
pub mod message;

use std::collections::{HashMap, VecDeque};

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::Subject;
use outflow_model::{ChangeEvent, Op, Position, StreamItem, TableId};
use tokio::runtime::Handle;

pub use config::NatsConfig;
use config::{push_subject_token, subject_filter, Checked};
use connect::{Conn, StreamShape, REQUEST_TIMEOUT};
use errors::{one_line, Backoff, Failure};
use message::Outgoing;

use crate::format::envelope::EventWriter;
use crate::format::routing::write_key;
use crate::format::values::ValueStyle;
use crate::{Checkpoint, Sink, SinkContext, SinkError};

/// Bytes of messages awaiting acks before `write` waits (a larger message
/// still goes alone).
pub const MAX_IN_FLIGHT_BYTES: usize = 16 << 20;

pub struct NatsSink {
    cfg: NatsConfig,
    checked: Checked,
    ctx: SinkContext,
    writer: EventWriter,
    style: ValueStyle,
    runtime: Handle,
    conn: Option<Conn>,
    /// The stream's subjects and size limit (after the first connection).
    shape: Option<StreamShape>,
    /// The server's `max_payload`.
    max_payload: usize,
    /// The stream's subject filter for this pipeline.
    filter: String,
    id_prefix: String,
    table_subjects: HashMap<TableId, Subject>,
    /// Per subject: the position of its last message when first read.
    tails: HashMap<String, Option<Position>>,
    /// Messages not yet acknowledged, oldest first; those with an ack
    /// future were sent on the current connection.
    window: VecDeque<InFlight>,
    window_bytes: usize,
    /// A failed attempt may have stored part of the window: check the
    /// subjects' last messages before resending.
    resync: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Bytes of keys and bodies written by this instance.
    bytes: u64,
}

struct InFlight {
    msg: Outgoing,
    ack: Option<PublishAckFuture>,
}

impl NatsConfig {
    /// Connects (waiting while NATS is down) on the pipeline's runtime and
    /// makes sure the stream is there.
    pub fn open(&self, ctx: SinkContext, runtime: Handle) -> Result<NatsSink, SinkError> {
        let checked = self.check()?;
        let style = ValueStyle::new(self.unavailable_value_placeholder.clone());
        let mut sink = NatsSink {
            cfg: self.clone(),
            checked,
            filter: subject_filter(&self.subject, &ctx.pipeline, &ctx.db),
            id_prefix: message::id_prefix(&ctx.pipeline, &self.name),
            writer: EventWriter::new(self.format, style.clone(), ctx.clone()),
            ctx,
            style,
            runtime: runtime.clone(),
            conn: None,
            shape: None,
            max_payload: usize::MAX,
            table_subjects: HashMap::new(),
            tails: HashMap::new(),
            window: VecDeque::new(),
            window_bytes: 0,
            resync: false,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            bytes: 0,
        };
        runtime.block_on(async {
            let mut backoff = Backoff::new();
            loop {
                match sink.connection().await {
                    Ok(_) => return Ok(()),
                    Err(Failure::Definite(e)) => return Err(e),
                    Err(Failure::Retry(why)) => backoff.wait(&sink.cfg.name, &sink.cfg.url, "cannot open the stream", &why).await,
                }
            }
        })?;
        Ok(sink)
    }
}

impl NatsSink {
    /// The open connection, connecting (and checking the stream) when
    /// there is none.
    async fn connection(&mut self) -> Result<Conn, Failure> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let conn = connect::open(&self.cfg, &self.checked, &self.ctx.pipeline, self.cfg.max_in_flight).await?;
        let shape = connect::ensure_stream(&conn, &self.cfg, &self.filter, self.shape.is_some()).await?;
        self.max_payload = conn.client.server_info().max_payload;
        self.shape = Some(shape);
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection (ending its client) after a failure; what it
    /// had not acknowledged is sent again on the next one.
    fn retire(&mut self) {
        self.conn = None;
        for entry in &mut self.window {
            entry.ack = None;
        }
        self.resync = true;
    }

    fn table_subject(&mut self, table: &TableId) -> Subject {
        if let Some(s) = self.table_subjects.get(table) {
            return s.clone();
        }
        let s = self.checked.template.render(&self.ctx.pipeline, &self.ctx.db, &table.schema, &table.name, push_subject_token);
        let s = Subject::from(s);
        self.table_subjects.insert(table.clone(), s.clone());
        s
    }

    /// Whether the subject already holds the change at `position` (its last
    /// message, read on first use, is at or after it).
    async fn holds(&mut self, subject: &Subject, position: &Position) -> Result<bool, SinkError> {
        if !self.tails.contains_key(subject.as_str()) {
            let mut backoff = Backoff::new();
            let recovered = loop {
                match self.read_tail(subject).await {
                    Ok(t) => break t,
                    Err(Failure::Definite(e)) => return Err(e),
                    Err(Failure::Retry(why)) => {
                        self.retire();
                        backoff.wait(&self.cfg.name, &self.cfg.url, "cannot read a subject's last message", &why).await;
                    }
                }
            };
            if let Some(p) = &recovered {
                tracing::info!(sink = %self.cfg.name, subject = %subject, position = %p,
                    "the stream already holds this subject's changes up to this position; skipping those");
            }
            self.tails.insert(subject.to_string(), recovered);
        }
        Ok(self.tails[subject.as_str()].as_ref().is_some_and(|last| position <= last))
    }

    /// Makes sure the stream captures `subject` and reads its last position.
    async fn read_tail(&mut self, subject: &Subject) -> Result<Option<Position>, Failure> {
        let conn = self.connection().await?;
        let shape = self.shape.as_mut().expect("set by connection()");
        connect::capture(&conn, &self.cfg, shape, subject, &self.filter).await?;
        connect::last_position(&conn, &self.cfg, subject).await
    }

    /// Queues the change's message (unless its subject holds it already),
    /// sending when the window is full.
    async fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        let subject = self.table_subject(&ev.table.id);
        if self.holds(&subject, &ev.position).await? {
            return Ok(());
        }
        self.key.clear();
        self.value.clear();
        if ev.op == Op::Truncate || !write_key(&mut self.key, ev, &self.style) {
            self.key.clear();
            self.key.extend_from_slice(b"null");
        }
        self.writer.write_change(&mut self.value, ev);
        self.value.pop(); // the line's newline
        let msg = Outgoing::new(subject, &self.id_prefix, &ev.position, &ev.table.id, ev.op.code(), &self.key, &self.value);
        self.check_size(&msg, &ev.table.id)?;
        self.bytes += (self.key.len() + self.value.len()) as u64;
        self.window_bytes += msg.size;
        self.window.push_back(InFlight { msg, ack: None });
        if self.full() {
            self.pump(false).await?;
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.window.len() >= self.cfg.max_in_flight || self.window_bytes >= MAX_IN_FLIGHT_BYTES
    }

    /// A message over the server's or the stream's size limit is refused
    /// before anything after it is sent.
    fn check_size(&self, msg: &Outgoing, table: &TableId) -> Result<(), SinkError> {
        let stream_limit = self.shape.as_ref().and_then(|s| s.max_msg_size).unwrap_or(usize::MAX);
        if msg.size <= self.max_payload.min(stream_limit) {
            return Ok(());
        }
        let (what, limit, hint) = if self.max_payload <= stream_limit {
            (
                "the server's max_payload".to_string(),
                self.max_payload,
                "raise max_payload in the nats-server config (up to 64MB), or leave the large columns out \
                 with a [[transform]] exclude_columns"
                    .to_string(),
            )
        } else {
            (
                format!("stream {:?}'s max_msg_size", self.cfg.stream),
                stream_limit,
                format!(
                    "raise it (nats stream edit {} --max-msg-size ...), or leave the large columns out with a \
                     [[transform]] exclude_columns",
                    self.cfg.stream
                ),
            )
        };
        Err(SinkError::fatal(
            format!(
                "nats: the change to {table} at {} is {} bytes with its headers, over {what} of {limit} bytes",
                msg.position, msg.size
            ),
            hint,
        ))
    }

    /// Sends every queued message and, when the window is full, waits for
    /// acks until it is half empty (`drain`: until every message is
    /// acknowledged), on a new connection after each failure.
    async fn pump(&mut self, drain: bool) -> Result<(), SinkError> {
        let mut backoff = Backoff::new();
        loop {
            match self.try_pump(drain).await {
                Ok(()) => return Ok(()),
                Err(Failure::Definite(e)) => return Err(e),
                Err(Failure::Retry(why)) => {
                    self.retire();
                    backoff.wait(&self.cfg.name, &self.cfg.url, "cannot publish to nats", &why).await;
                }
            }
        }
    }

    async fn try_pump(&mut self, drain: bool) -> Result<(), Failure> {
        if self.window.is_empty() {
            return Ok(());
        }
        let conn = self.connection().await?;
        if self.resync {
            self.drop_stored(&conn).await?;
            self.resync = false;
        }
        for entry in self.window.iter_mut().filter(|e| e.ack.is_none()) {
            let publish =
                PublishMessage::build().payload(entry.msg.payload.clone()).headers(entry.msg.headers());
            let ack = conn.js.send_publish(entry.msg.subject.clone(), publish).await.map_err(|e| {
                send_failure(&e, &entry.msg)
            })?;
            entry.ack = Some(ack);
        }
        // A full window drains to half before `write` goes on: the sink's
        // thread then sleeps once per half window, not once per ack.
        let low = match (drain, self.full()) {
            (true, _) => 0,
            (false, true) => self.cfg.max_in_flight / 2,
            (false, false) => return Ok(()),
        };
        while self.window.len() > low || (self.window_bytes > MAX_IN_FLIGHT_BYTES / 2 && !self.window.is_empty()) {
            let front = self.window.front_mut().expect("not empty");
            let ack = front.ack.take().expect("every queued message was sent above");
            match ack.await {
                Ok(_) => {
                    let done = self.window.pop_front().expect("not empty");
                    self.window_bytes -= done.msg.size;
                }
                Err(e) => {
                    let subject = front.msg.subject.clone();
                    return Err(self.ack_failure(&conn, e, &subject).await);
                }
            }
        }
        Ok(())
    }

    /// After a failure, drops from the window what the stream already holds
    /// (each subject's last message says how far it got), so nothing is
    /// sent twice even when the outage outlasted the duplicate window.
    async fn drop_stored(&mut self, conn: &Conn) -> Result<(), Failure> {
        let mut subjects: Vec<Subject> = Vec::new();
        for entry in &self.window {
            if !subjects.contains(&entry.msg.subject) {
                subjects.push(entry.msg.subject.clone());
            }
        }
        let mut stored = 0usize;
        for subject in subjects {
            let Some(last) = connect::last_position(conn, &self.cfg, &subject).await? else { continue };
            let before = self.window.len();
            self.window.retain(|e| e.msg.subject != subject || e.msg.position > last);
            stored += before - self.window.len();
        }
        self.window_bytes = self.window.iter().map(|e| e.msg.size).sum();
        if stored > 0 {
            tracing::info!(sink = %self.cfg.name, stored, "messages the stream had stored before the failure are not sent again");
        }
        Ok(())
    }

    /// What a failed ack means: definite when JetStream refused the message
    /// for good, else retry.
    async fn ack_failure(&self, conn: &Conn, e: PublishError, subject: &Subject) -> Failure {
        let refused = |why: String| {
            Failure::Definite(SinkError::fatal(
                format!("JetStream refused a message on {subject}: {why}"),
                format!("check stream {:?} and the sink's permissions on the server", self.cfg.stream),
            ))
        };
        match e.kind() {
            PublishErrorKind::TimedOut => {
                let server_error = conn.server_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match server_error {
                    Some(err) if err.to_lowercase().contains("permissions violation") => refused(one_line(&err)),
                    _ => Failure::Retry(format!("no ack within {} s", REQUEST_TIMEOUT.as_secs())),
                }
            }
            PublishErrorKind::StreamNotFound => match conn.js.get_stream(&self.cfg.stream).await {
                Err(err) if is_stream_not_found(&err) => Failure::Definite(connect::stream_vanished(&self.cfg)),
                Ok(mut stream) => match stream.info().await {
                    Ok(info) if !info.config.subjects.iter().any(|f| config::filter_matches(f, subject)) => {
                        refused(format!("stream {:?} no longer captures it", self.cfg.stream))
                    }
                    _ => Failure::Retry("no stream answered the publish".into()),
                },
                Err(_) => Failure::Retry("no stream answered the publish".into()),
            },
            PublishErrorKind::Other => match jetstream_code(&e) {
                Some(code) if code == async_nats::jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM => {
                    Failure::Definite(SinkError::fatal(
                        format!("nats: a message on {subject} is over stream {:?}'s max_msg_size", self.cfg.stream),
                        "raise the stream's max_msg_size (nats stream edit), or leave the large columns out with a \
                         [[transform]] exclude_columns",
                    ))
                }
                Some(code) if errors::transient_code(code) => Failure::Retry(one_line(&e.to_string())),
                Some(_) => refused(one_line(&e.to_string())),
                None => Failure::Retry(one_line(&e.to_string())),
            },
            PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => refused(one_line(&e.to_string())),
            _ => Failure::Retry(one_line(&e.to_string())),
        }
    }
}

/// A publish the client would not send.
fn send_failure(e: &PublishError, msg: &Outgoing) -> Failure {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => Failure::Definite(SinkError::fatal(
            format!(
                "nats: a message on {} at {} is {} bytes with its headers, over the server's max_payload",
                msg.subject, msg.position, msg.size
            ),
            "raise max_payload in the nats-server config (up to 64MB), or leave the large columns out with a \
             [[transform]] exclude_columns",
        )),
        _ => Failure::Retry(one_line(&e.to_string())),
    }
}

/// The JetStream error code behind a publish error, when the server sent
/// one.
fn jetstream_code(e: &PublishError) -> Option<async_nats::jetstream::ErrorCode> {
    std::error::Error::source(e)?.downcast_ref::<async_nats::jetstream::Error>().map(|e| e.error_code())
}

pub(crate) fn is_stream_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), async_nats::jetstream::context::GetStreamErrorKind::JetStream(err)
        if err.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

impl Sink for NatsSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.writer.start_batch();
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            for item in items {
                if let StreamItem::Change(ev) = item {
                    self.write_change(ev).await?;
                }
            }
            self.pump(false).await
        })
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.pump(true))?;
        Ok(Checkpoint::Null)
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}
