//! The one list of sink kinds: `[[sink]] kind = "..."` → the config type
//! that implements [`SinkFactory`]. A new sink is one line here (behind its
//! cargo feature); the binary's config, `outflow run` and `outflow check`
//! go through [`SinkConfig::factory`] and never name a kind.

use serde::Deserialize;

use crate::SinkFactory;

/// Declares [`SinkConfig`] (one variant per kind, tagged by `kind`) and its
/// dispatch to each kind's factory.
macro_rules! sinks {
    ($( $(#[$cfg:meta])* $variant:ident($config:ty) = $kind:literal, )*) => {
        /// One `[[sink]]`: its kind (the `kind` key) and its settings.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        pub enum SinkConfig {
            $( $(#[$cfg])* #[serde(rename = $kind)] $variant($config), )*
        }

        impl SinkConfig {
            /// The `kind` this sink was configured with.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( $(#[$cfg])* SinkConfig::$variant(_) => $kind, )*
                }
            }

            /// The kind's factory: `validate`, `build`, `preflight`.
            pub fn factory(&self) -> &dyn SinkFactory {
                match self {
                    $( $(#[$cfg])* SinkConfig::$variant(c) => c, )*
                }
            }
        }
    };
}

sinks! {
    Jsonl(crate::jsonl::JsonlConfig) = "jsonl",
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaConfig) = "kafka",
    #[cfg(feature = "parquet")]
    Parquet(crate::parquet::ParquetConfig) = "parquet",
    #[cfg(feature = "postgres-sink")]
    Postgres(crate::postgres::PostgresConfig) = "postgres",
    #[cfg(feature = "iceberg")]
    Iceberg(crate::iceberg::IcebergConfig) = "iceberg",
}

impl SinkConfig {
    /// The sink's name (its offsets are stored under it).
    pub fn name(&self) -> &str {
        self.factory().name()
    }
}
