//! outflow sinks and output formats. Knows the event model, nothing about
//! PostgreSQL or MySQL wire protocols.
//!
//! Every sink is a folder (or file) here with the same parts: its config
//! (serde, `deny_unknown_fields`) implementing [`SinkFactory`] (`validate`,
//! `build`, `preflight`), and the [`Sink`] it builds. A new sink is its
//! folder, one line in the `sinks!` list below and, when it pulls in
//! dependencies, a cargo feature.

#[cfg(feature = "parquet")]
pub mod columnar;
pub mod exactly_once;
pub mod failpoints;
pub mod format;
pub mod preflight;
pub mod registry;
pub mod settings;
pub mod sink;
pub mod snapshot_marks;
pub mod text;

pub use preflight::Probe;
pub use sink::{Checkpoint, Durable, Sink, SinkContext, SinkError, SinkFactory};

// The registered sinks: `module: Variant(config) = "kind"`. A new sink is a
// folder (or file) here and a line in this list.
registry::sinks! {
    jsonl: Jsonl(jsonl::JsonlConfig) = "jsonl",
    #[cfg(feature = "kafka")]
    kafka: Kafka(kafka::KafkaConfig) = "kafka",
    #[cfg(feature = "parquet")]
    parquet: Parquet(parquet::ParquetConfig) = "parquet",
    #[cfg(feature = "postgres-sink")]
    postgres: Postgres(postgres::PostgresConfig) = "postgres",
    #[cfg(feature = "iceberg")]
    iceberg: Iceberg(iceberg::IcebergConfig) = "iceberg",
    #[cfg(feature = "redis")]
    redis: Redis(redis::RedisConfig) = "redis",
    #[cfg(feature = "http")]
    http: Http(http::HttpConfig) = "http",
    #[cfg(feature = "nats")]
    nats: Nats(nats::NatsConfig) = "nats",
    #[cfg(feature = "rabbitmq")]
    rabbitmq: Rabbitmq(rabbitmq::RabbitmqConfig) = "rabbitmq",
    #[cfg(feature = "kinesis")]
    kinesis: Kinesis(kinesis::KinesisConfig) = "kinesis",
}

/// The runtime sink tests hand their sinks, as the pipeline hands its own.
#[cfg(test)]
pub(crate) fn test_runtime() -> tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a test runtime")
        })
        .handle()
        .clone()
}
