//! The `[source]` settings of `kind = "mysql"` (MySQL and MariaDB; see
//! `factory.rs` for what the commands do with them).

use serde::Deserialize;

/// The replica id a mysql source uses when `server_id` is not set.
pub const DEFAULT_SERVER_ID: u32 = 5401;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    pub url: String,
    /// Table patterns to capture (`schema.table` globs, or regexes after `re:`).
    pub tables: Vec<String>,
    /// Patterns of tables not to capture even though `tables` matches them.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// A table whose inserted rows are signals (Debezium's
    /// `signal.data.collection`; see `src/signal/`), captured but never
    /// delivered or snapshotted.
    #[serde(default)]
    pub signal_table: Option<String>,
    /// The replica id outflow registers with; unique among the server's
    /// replicas (default 5401).
    #[serde(default)]
    pub server_id: Option<u32>,
}

impl MysqlConfig {
    pub fn server_id(&self) -> u32 {
        self.server_id.unwrap_or(DEFAULT_SERVER_ID)
    }
}
