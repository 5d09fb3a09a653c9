//! The `[[sink]] kind = "rabbitmq"` settings and their checks: the broker
//! URL (parsed with lapin's AMQP URI parser, also for the stream port), and
//! exactly one of `stream` (a RabbitMQ stream) or `exchange`.

use std::str::FromStr;

use lapin::uri::{AMQPScheme, AMQPUri};
use serde::Deserialize;

use crate::format::routing::NameTemplate;
use crate::format::Format;
use crate::SinkError;
pub use crate::text::redact;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitmqConfig {
    pub name: String,
    /// `amqp://user:password@host:port/vhost` (`%2f` is the default vhost
    /// `/`). The stream mode connects to the same host, user and vhost on
    /// `stream_port`.
    pub url: String,
    /// A RabbitMQ stream to publish to over the stream protocol, with
    /// publisher deduplication (exactly-once). `{name}`, `{db}`, `{schema}`
    /// and `{table}` are replaced.
    #[serde(default)]
    pub stream: Option<String>,
    /// The stream protocol's port on the url's host.
    #[serde(default = "default_stream_port")]
    pub stream_port: u16,
    /// Create the stream when it does not exist.
    #[serde(default = "yes")]
    pub create_stream: bool,
    /// An exchange to publish to over AMQP 0.9.1 with publisher confirms
    /// (at-least-once).
    #[serde(default)]
    pub exchange: Option<String>,
    /// Routing key of each table's messages (exchange mode).
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// Declare the exchange (durable, of `exchange_type`) when it does not
    /// exist; off: a missing exchange stops the run.
    #[serde(default = "yes")]
    pub create_exchange: bool,
    #[serde(default = "default_exchange_type")]
    pub exchange_type: String,
    /// Publish as mandatory: a message no queue takes stops the run instead
    /// of being dropped by the broker.
    #[serde(default = "yes")]
    pub mandatory: bool,
    /// Message body format: `debezium` (envelope) or `json` (the row flat).
    #[serde(default)]
    pub format: Format,
    /// Messages sent and not yet confirmed before `write` waits (bounds
    /// memory and holds the source while the broker is slow).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
}

fn yes() -> bool {
    true
}

fn default_stream_port() -> u16 {
    5552
}

fn default_routing_key() -> String {
    "{schema}.{table}".into()
}

fn default_exchange_type() -> String {
    "topic".into()
}

fn default_max_in_flight() -> usize {
    10_000
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

/// Where the sink publishes.
#[derive(Debug, Clone)]
pub enum Target {
    Stream(NameTemplate),
    Exchange { exchange: String, routing_key: NameTemplate },
}

impl RabbitmqConfig {
    /// The settings checks `build()` makes, without connecting.
    pub fn validate(&self) -> Result<(), SinkError> {
        self.check().map(|_| ())
    }

    fn bad(&self, what: String) -> SinkError {
        SinkError::Data(format!("sink {:?}: {what}", self.name))
    }

    /// The broker address, from `url`.
    pub(crate) fn uri(&self) -> Result<AMQPUri, SinkError> {
        let uri = AMQPUri::from_str(&self.url).map_err(|e| {
            self.bad(format!(
                "`url = {:?}` is not an AMQP URL ({e}); use amqp://user:password@host:port/vhost",
                redact(&self.url)
            ))
        })?;
        if uri.scheme == AMQPScheme::AMQPS {
            return Err(self.bad(format!(
                "`url = {:?}`: amqps:// (TLS) is not supported by this sink; use amqp:// on a trusted network",
                redact(&self.url)
            )));
        }
        Ok(uri)
    }

    pub(crate) fn check(&self) -> Result<Target, SinkError> {
        self.uri()?;
        if self.max_in_flight == 0 {
            return Err(self.bad("`max_in_flight` must be at least 1".into()));
        }
        match (&self.stream, &self.exchange) {
            (Some(stream), None) => NameTemplate::parse(stream, "stream name")
                .map(Target::Stream)
                .map_err(|e| self.bad(format!("`stream = {stream:?}`: {e}"))),
            (None, Some(exchange)) => {
                if exchange.is_empty() || exchange.len() > 255 {
                    return Err(self.bad(format!(
                        "`exchange = {exchange:?}` must be 1 to 255 bytes long (the default exchange cannot be used)"
                    )));
                }
                if !matches!(self.exchange_type.as_str(), "topic" | "direct" | "fanout" | "headers") {
                    return Err(self.bad(format!(
                        "`exchange_type = {:?}`: use topic, direct, fanout or headers",
                        self.exchange_type
                    )));
                }
                let routing_key = NameTemplate::parse(&self.routing_key, "routing key")
                    .map_err(|e| self.bad(format!("`routing_key = {:?}`: {e}", self.routing_key)))?;
                Ok(Target::Exchange { exchange: exchange.clone(), routing_key })
            }
            (Some(_), Some(_)) => Err(self.bad(
                "both `stream` and `exchange` are set; set `stream` for a RabbitMQ stream or `exchange` for an exchange"
                    .into(),
            )),
            (None, None) => Err(self.bad(
                "neither `stream` nor `exchange` is set; set `stream = \"outflow\"` for a RabbitMQ stream \
                 (exactly-once) or `exchange = \"cdc\"` for an exchange (at-least-once)"
                    .into(),
            )),
        }
    }

    /// The url with its password hidden, for messages.
    pub fn shown_url(&self) -> String {
        redact(&self.url)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Result<RabbitmqConfig, serde_json::Error> {
        let mut v = serde_json::json!({"name": "r", "url": "amqp://guest:guest@127.0.0.1:5672/%2f"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v)
    }

    #[test]
    fn a_stream_or_an_exchange_validates_and_renders() {
        let c = config(serde_json::json!({"stream": "{name}"})).unwrap();
        let Target::Stream(t) = c.check().unwrap() else { panic!("a stream") };
        assert_eq!(t.render("app", "db", "public", "users", String::push_str), "app");
        let c = config(serde_json::json!({"exchange": "cdc"})).unwrap();
        let Target::Exchange { exchange, routing_key } = c.check().unwrap() else { panic!("an exchange") };
        assert_eq!(exchange, "cdc");
        assert_eq!(routing_key.render("app", "db", "public", "users", String::push_str), "public.users");
        let uri = c.uri().unwrap();
        assert_eq!((uri.authority.host.as_str(), uri.authority.port, uri.vhost.as_str()), ("127.0.0.1", 5672, "/"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = |extra| config(extra).unwrap().validate().unwrap_err().to_string();
        assert!(err(serde_json::json!({})).contains("neither `stream` nor `exchange`"));
        assert!(err(serde_json::json!({"stream": "s", "exchange": "e"})).contains("both `stream` and `exchange`"));
        assert!(err(serde_json::json!({"stream": "{nope}"})).contains("unknown placeholder {nope}"));
        assert!(err(serde_json::json!({"exchange": ""})).contains("`exchange = \"\"`"));
        assert!(err(serde_json::json!({"exchange": "e", "exchange_type": "x"})).contains("`exchange_type"));
        assert!(err(serde_json::json!({"stream": "s", "max_in_flight": 0})).contains("`max_in_flight`"));
        let e = err(serde_json::json!({"stream": "s", "url": "http://u:secret@x"}));
        assert!(e.contains("is not an AMQP URL") && !e.contains("secret"), "{e}");
        assert!(err(serde_json::json!({"stream": "s", "url": "amqps://h"})).contains("amqps://"));
        assert!(config(serde_json::json!({"topic": "x"})).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("amqp://u:secret@h:1/%2f"), "amqp://u:***@h:1/%2f");
        assert_eq!(redact("amqp://h:1/%2f"), "amqp://h:1/%2f");
    }
}
