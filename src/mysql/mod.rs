//! MySQL and MariaDB, behind the `Source` trait (`src/source.rs`): its
//! config and factory, catalog queries and preflight checks, the binlog
//! streaming source, the snapshot reader, and its parts of `check`,
//! `status` and `offsets`.

pub mod catalog;
pub mod check;
pub mod config;
pub mod factory;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod tls;
