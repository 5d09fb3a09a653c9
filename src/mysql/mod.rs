//! MySQL and MariaDB: catalog queries and preflight checks, the binlog
//! streaming source, and the `status` report.

pub mod catalog;
pub mod snapshot;
pub mod source;
pub mod status;
