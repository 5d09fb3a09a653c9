//! `kind = "rabbitmq"`: every change event as a RabbitMQ message, either
//! into a RabbitMQ **stream** over the stream protocol (`stream = "..."`,
//! exactly-once) or to an **exchange** over AMQP 0.9.1 (`exchange = "..."`,
//! at-least-once with a stable `message_id`).
//!
//! Each message's body is the configured format's bytes (the Debezium
//! envelope by default); its properties carry `key` (a JSON object of the
//! key columns, `null` without a key or for a truncate), `op` (`r c u d t`),
//! `table` (`schema.table`) and `position` (the source position): AMQP 1.0
//! application properties on a stream, headers on an exchange message.
//! Transaction boundaries, logical decoding messages and schema changes
//! carry no message.
//!
//! **Stream mode** ([`stream`], with the official `rabbitmq-stream-client`'s
//! low-level client): one named producer per stream (`<pipeline>.<sink>`)
//! and publishing IDs derived from positions ([`ids`]), so the broker's
//! publisher deduplication drops what it already stored; on first use of a
//! stream the sink reads the producer's last ID and the stream's last
//! message and skips what that message's position covers. Exactly-once
//! across crashes and a lost state directory, as long as outflow is the only
//! writer of its streams.
//!
//! **Exchange mode** ([`exchange`], lapin): persistent messages with
//! publisher confirms, mandatory by default (a message no queue takes stops
//! the run rather than vanish), routing keys from a template (one channel,
//! so the order per key holds). A crash or a lost connection resends what
//! was not confirmed: duplicates are possible and carry the same
//! `message_id` (the position), for consumers that deduplicate.
//!
//! In both modes at most `max_in_flight` messages (and 64 MiB) wait for their confirms
//! (`write` blocks when full, holding the source), `flush` returns only
//! when every message is confirmed, lost connections are reopened with
//! backoff and what was unconfirmed is resent, and definite errors (auth,
//! a missing stream or exchange with creation off, a record too large) stop
//! the run with one line and its fix ([`errors`]).

mod config;
mod errors;
pub mod exchange;
mod factory;
pub mod ids;
pub mod stream;

use std::time::Duration;

use outflow_model::{ChangeEvent, Op};

pub use config::RabbitmqConfig;

use crate::format::envelope::EventWriter;
use crate::format::routing::write_key;
use crate::format::values::ValueStyle;
use crate::SinkContext;

/// How often a wait on the broker says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bytes of unconfirmed messages at most (besides `max_in_flight`); a
/// larger message still goes alone.
const MAX_INFLIGHT_BYTES: usize = 64 << 20;
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders a change's key and body into reused buffers.
struct Renderer {
    writer: EventWriter,
    style: ValueStyle,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Renderer {
    fn new(cfg: &RabbitmqConfig, ctx: SinkContext) -> Renderer {
        let style = ValueStyle::new(cfg.unavailable_value_placeholder.clone());
        Renderer {
            writer: EventWriter::new(cfg.format, style.clone(), ctx),
            style,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
        }
    }

    fn start_batch(&mut self) {
        self.writer.start_batch();
    }

    /// The change's key (JSON text, `null` when it has none) and body.
    fn render(&mut self, ev: &ChangeEvent) -> (&str, &[u8]) {
        self.key.clear();
        self.value.clear();
        if ev.op == Op::Truncate || !write_key(&mut self.key, ev, &self.style) {
            self.key.clear();
            self.key.extend_from_slice(b"null");
        }
        self.writer.write_change(&mut self.value, ev);
        self.value.pop(); // the line's newline
        (std::str::from_utf8(&self.key).unwrap_or("null"), &self.value)
    }
}

/// Logs a wait now and then: true when it is time to say so again.
fn time_to_log(logged: &mut Option<std::time::Instant>) -> bool {
    if logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
        *logged = Some(std::time::Instant::now());
        true
    } else {
        false
    }
}
