//! The console's recent warnings and errors: a `tracing` layer
//! ([`log_layer`], installed by `src/main.rs` next to the stderr logger)
//! keeps the last [`CAPACITY`] WARN and ERROR events of the process with
//! their fields, whatever `OUTFLOW_LOG` lets through to stderr; `/api/log`
//! serves them newest first. outflow never logs row values, so neither does
//! this; and since the page needs no token, URL passwords and secret
//! `name=value` pairs in the text are masked (`mask.rs`), in case an error
//! quotes a connection string.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// How many events the ring keeps.
pub const CAPACITY: usize = 200;

#[derive(Default)]
struct Ring {
    entries: VecDeque<Value>,
    /// Events seen since the start, including those the ring forgot.
    total: u64,
}

fn ring() -> &'static Mutex<Ring> {
    static RING: OnceLock<Mutex<Ring>> = OnceLock::new();
    RING.get_or_init(Default::default)
}

fn push(entry: Value) {
    let mut ring = ring().lock().unwrap_or_else(|e| e.into_inner());
    if ring.entries.len() == CAPACITY {
        ring.entries.pop_front();
    }
    ring.entries.push_back(entry);
    ring.total += 1;
}

/// `/api/log`: `{"capacity", "total", "entries": [newest first]}`; each
/// entry has `time` (RFC 3339), `level`, `target`, `message` and `fields`.
pub fn recent() -> Value {
    let ring = ring().lock().unwrap_or_else(|e| e.into_inner());
    let entries: Vec<&Value> = ring.entries.iter().rev().collect();
    json!({"capacity": CAPACITY, "total": ring.total, "entries": entries})
}

/// The layer that fills the ring: WARN and ERROR events only.
pub fn log_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    RingLayer.with_filter(LevelFilter::WARN)
}

struct RingLayer;

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        push(json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": meta.level().as_str(),
            "target": meta.target(),
            "message": fields.message,
            "fields": fields.others,
        }));
    }
}

/// An event's `message` and its other fields, as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    others: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.set(field, Value::from(text));
    }
}

impl Fields {
    fn set(&mut self, field: &Field, value: Value) {
        let value = match value {
            Value::String(s) => Value::String(super::mask::mask_string(&s)),
            other => other,
        };
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.others.insert(field.name().to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_kept_with_their_fields_and_bounded() {
        let subscriber = tracing_subscriber::registry().with(log_layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(sink = "events", lag = 12_u64, "sink {:?} is behind", "events");
            tracing::error!(error = %"connection reset", "lost the source");
            for i in 0..CAPACITY {
                tracing::warn!(i, "filler");
            }
            tracing::error!(table = "public.orders", "last one");
        });
        let log = recent();
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), CAPACITY);
        assert!(log["total"].as_u64().unwrap() >= CAPACITY as u64 + 3);
        assert_eq!(entries[0]["message"], "last one");
        assert_eq!(entries[0]["level"], "ERROR");
        assert_eq!(entries[0]["fields"]["table"], "public.orders");
        assert!(entries.iter().all(|e| e["message"] != "not kept"));
        // The two first ones were pushed out by the fillers.
        assert!(entries.iter().all(|e| e["message"] != "lost the source"), "{log}");

        let subscriber = tracing_subscriber::registry().with(log_layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(sink = "events", lag = 12_u64, "sink {:?} is behind", "events");
            tracing::error!(error = "connecting to postgres://cdc:LogSecret-1@db/shop failed", "lost the source");
        });
        let masked = recent()["entries"][0].clone();
        assert_eq!(masked["fields"]["error"], "connecting to postgres://cdc:****@db/shop failed");
        let newest = recent()["entries"][1].clone();
        assert_eq!(newest["message"], "sink \"events\" is behind");
        assert_eq!(newest["fields"], json!({"sink": "events", "lag": 12}));
        assert_eq!(newest["level"], "WARN");
    }
}
