//! Pure decoding for outflow: the change-event model every source produces and
//! every sink consumes, the pgoutput protocol parser, PostgreSQL text values,
//! and MySQL/MariaDB binlog events.
//!
//! Nothing in this crate does I/O or depends on an async runtime. Every parser
//! takes bytes and returns `Result<_, DecodeError>`; none panics on bad input
//! and none allocates from an untrusted length field without checking it
//! against the bytes actually present.

pub mod binlog;
pub mod error;
pub mod model;
pub mod pg_decoder;
pub mod pg_type_registry;
pub mod pgoutput;
pub mod pgtypes;
pub mod position;
pub mod value;

pub use error::DecodeError;
pub use model::*;
pub use position::Position;
pub use value::Value;
