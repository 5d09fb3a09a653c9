//! outflow sinks and output formats. Knows the event model, nothing about
//! PostgreSQL or MySQL wire protocols.

pub mod failpoints;
pub mod format;
pub mod iceberg;
pub mod jsonl;
pub mod kafka;
pub mod parquet;
pub mod postgres;
pub mod sink;
pub mod snapshot_marks;

pub use sink::{Checkpoint, Durable, Sink, SinkContext, SinkError};
