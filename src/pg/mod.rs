//! PostgreSQL: connection parameters and TLS, the replication connection,
//! catalog queries, and the streaming source.

pub mod catalog;
pub mod params;
pub mod replication;
pub mod retention;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod tls;
