//! The `[source]` settings of `kind = "postgres"` (see `factory.rs` for
//! what the commands do with them).

use outflow_sinks::settings::ByteSize;
use serde::Deserialize;

/// Retained WAL above which a postgres source warns, when not configured.
pub const DEFAULT_WAL_WARN_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgConfig {
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
    /// The logical replication slot; created if missing.
    #[serde(default = "default_outflow")]
    pub slot: String,
    /// The publication of the captured tables; created if missing.
    #[serde(default = "default_outflow")]
    pub publication: String,
    /// Create the slot as a failover slot (PostgreSQL 17+), which standbys
    /// with `sync_replication_slots = on` keep in step, so that after a
    /// promotion outflow goes on from the new primary (list both hosts in
    /// `url` with `target_session_attrs=read-write`).
    #[serde(default)]
    pub failover: bool,
    /// pgoutput's binary mode (PostgreSQL 14+): values in their binary send
    /// format, decoded without a text round trip, while every captured
    /// column's type is one outflow decodes in binary; text otherwise (the
    /// stream switches to text when a table with another type appears).
    #[serde(default)]
    pub binary: bool,
    /// Warn (log, metric, status) when the WAL the slot retains passes this
    /// size (default 1 GiB).
    #[serde(default)]
    pub wal_warn_bytes: Option<ByteSize>,
}

fn default_outflow() -> String {
    "outflow".into()
}

impl PgConfig {
    pub fn wal_warn_bytes(&self) -> u64 {
        self.wal_warn_bytes.map_or(DEFAULT_WAL_WARN_BYTES, |b| b.0)
    }
}
