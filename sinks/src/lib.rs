//! outflow sinks and output formats. Knows the event model, nothing about
//! PostgreSQL or MySQL wire protocols.

pub mod format;
pub mod jsonl;
pub mod sink;

pub use sink::{Checkpoint, Sink, SinkContext, SinkError};
