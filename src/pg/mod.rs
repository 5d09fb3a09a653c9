//! PostgreSQL, behind the `Source` trait (`src/source.rs`): its config and
//! factory, connection parameters and TLS, the replication connection,
//! catalog queries, the streaming source, snapshot reader, and its parts of
//! `check`, `status` and `offsets`.

pub mod catalog;
pub mod check;
pub mod config;
pub mod factory;
pub mod publication;
pub mod replication;
pub mod retention;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod status;
pub mod watermark;
