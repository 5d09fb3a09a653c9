//! Pure decoding for outflow: the pgoutput protocol parser, PostgreSQL text
//! and binary values, and MySQL/MariaDB binlog events, all producing the
//! types of `outflow-model`.
//!
//! Nothing in this crate does I/O or depends on an async runtime. Every parser
//! takes bytes and returns `Result<_, DecodeError>`; none panics on bad input
//! and none allocates from an untrusted length field without checking it
//! against the bytes actually present.

pub mod binlog;
pub mod error;
pub mod pg_decoder;
pub mod pg_type_registry;
pub mod pgoutput;
pub mod pgtypes;

pub use error::DecodeError;
