//! outflow: change-data-capture from PostgreSQL and MySQL/MariaDB to sinks, with offsets that
//! survive any restart. The binary (`src/main.rs`) is a thin CLI over this.

pub mod admin;
pub mod check;
pub mod check_sinks;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub use outflow_sinks::failpoints;
pub mod health;
pub mod init;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod signal;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod status;
pub mod stream;
pub mod transform;

// The registered sources: a new one is a folder under `src/` and a line here.
config::sources! {
    pg: Postgres(pg::config::PgConfig),
    /// MySQL and MariaDB.
    mysql: Mysql(mysql::config::MysqlConfig),
}
