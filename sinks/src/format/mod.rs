//! Output formats: the Debezium JSON envelope (default; with Kafka Connect
//! schemas on request, `schema`; as Avro for a schema registry, `avro`)
//! and flat JSON, and how message sinks name
//! destinations and key records (`routing`).

#[cfg(feature = "kafka")]
pub mod avro;
mod converters;
pub mod debezium;
pub mod envelope;
pub mod routing;
mod scalars;
pub mod schema;
#[cfg(feature = "kafka")]
pub mod schema_change;
pub mod values;

use serde::Deserialize;

/// How a change event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Debezium's JSON envelope (with `{"schema", "payload"}` around it when
    /// `[sink.debezium]` turns the converter's schemas on; see `schema`).
    #[default]
    Debezium,
    /// The row flat, with ISO-8601 dates, plus `_op` and `_position`.
    Json,
}
