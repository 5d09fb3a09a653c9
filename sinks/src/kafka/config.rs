//! The `[[sink]] kind = "kafka"` settings, and the librdkafka properties they
//! turn into.
//!
//! outflow sets the properties its guarantees depend on (idempotence,
//! `acks=all`, no delivery timeout, bounded queues); the `[sink.producer]`
//! table passes anything else through to librdkafka unchanged (security,
//! compression, batching). A `[sink.producer]` entry that would break the
//! exactly-once guarantee (`enable.idempotence = false`, `acks = 1`) is
//! refused while `exactly_once = true`.
//!
//! Avro (`format = "avro"` with `schema_registry`, or Debezium's
//! `key.converter`/`value.converter = io.confluent.connect.avro.AvroConverter`
//! in `[sink.debezium]`) resolves to one [`RegistrySettings`]; the two
//! forms may be combined only when they agree.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::format::debezium::{Debezium, DebeziumProperties};
use crate::format::values::{UnsignedMode, ValueModes};
use crate::format::Format;
use super::registry::RegistrySettings;
pub use crate::settings::Setting;
use crate::SinkError;

use crate::format::routing::NameTemplate;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub name: String,
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Topic of each table's changes: `{name}` (the pipeline's name),
    /// `{db}`, `{schema}` and `{table}` are replaced.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Record format: `debezium` (the JSON envelope), `json` (the row
    /// flat) or `avro` (Debezium's records as Avro in Confluent's wire
    /// format, schemas in `schema_registry`).
    #[serde(default)]
    pub format: KafkaFormat,
    /// Confluent Schema Registry URL (`format = "avro"`).
    #[serde(default)]
    pub schema_registry: Option<String>,
    /// Basic auth for the registry (with `schema_registry_password`).
    #[serde(default)]
    pub schema_registry_user: Option<String>,
    #[serde(default)]
    pub schema_registry_password: Option<String>,
    /// PEM file of the CA(s) that signed an `https` registry's certificate.
    #[serde(default)]
    pub schema_registry_ca_file: Option<String>,
    /// A delete is followed by a tombstone (same key, null value).
    #[serde(default = "yes")]
    pub tombstones: bool,
    /// BEGIN/END records of every transaction go to `{name}.transaction`.
    #[serde(default)]
    pub transaction_topic: bool,
    /// Skip what a crashed run already delivered (partition tails and the
    /// `{name}.outflow-offsets` topic). Off: at-least-once.
    #[serde(default = "yes")]
    pub exactly_once: bool,
    /// Create missing topics (with `partitions` and `replication_factor`).
    #[serde(default = "yes")]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Messages librdkafka may hold unacknowledged before `write` waits
    /// (back-pressure to the source).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_messages: u32,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
    /// librdkafka producer properties, passed through.
    #[serde(default)]
    pub producer: BTreeMap<String, Setting>,
    /// Debezium connector and transform properties, verbatim
    /// (`format::debezium`).
    #[serde(default)]
    pub debezium: DebeziumProperties,
    /// Records with their schemas (Kafka Connect's JSON converter with
    /// `schemas.enable=true`, keys and values): the same as setting both
    /// `*.converter.schemas.enable` in `[sink.debezium]`.
    #[serde(default)]
    pub schemas: bool,
}

/// `format` on a Kafka sink: the shared formats plus Avro.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    #[default]
    Debezium,
    Json,
    /// Debezium records as Avro for a schema registry.
    Avro,
}

impl KafkaFormat {
    /// The records rendered before any Avro encoding.
    pub fn records(self) -> Format {
        match self {
            KafkaFormat::Json => Format::Json,
            KafkaFormat::Debezium | KafkaFormat::Avro => Format::Debezium,
        }
    }
}

/// What `check` found: the topic template, `[sink.debezium]`, and the
/// registry when records are Avro.
pub(crate) struct Checked {
    pub template: NameTemplate,
    pub debezium: Debezium,
    pub registry: Option<RegistrySettings>,
}

fn yes() -> bool {
    true
}

fn default_topic() -> String {
    "{name}.{schema}.{table}".into()
}

fn default_partitions() -> i32 {
    1
}

fn default_replication_factor() -> i32 {
    1
}

fn default_max_in_flight() -> u32 {
    100_000
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

/// Properties outflow owns: the durable path depends on them.
const OWNED: &[&str] = &["bootstrap.servers", "metadata.broker.list", "enable.idempotence", "partitioner"];

impl KafkaConfig {
    /// The settings checks `build()` makes, without connecting: for config
    /// validation before anything runs.
    pub fn validate(&self) -> Result<(), SinkError> {
        self.check().map(drop)
    }

    pub(crate) fn check(&self) -> Result<Checked, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: {what}", self.name));
        let mut debezium =
            Debezium::parse(&self.debezium, self.schemas).map_err(|e| bad(format!("[sink.debezium] {e}")))?;
        let registry = self.registry(&debezium).map_err(bad)?;
        if registry.is_some() && !self.debezium.contains_key("bigint.unsigned.handling.mode") {
            // As with schemas: a Decimal the schema describes.
            debezium.values.unsigned = UnsignedMode::Precise;
        }
        let converted = debezium.unwrap.is_some() || debezium.values != ValueModes::default() || debezium.schemas.any();
        if converted && self.format == KafkaFormat::Json {
            return Err(bad("[sink.debezium] transforms, schemas and converter settings apply to Debezium records: set `format = \"debezium\"` (the default) or remove them".into()));
        }
        if self.brokers.trim().is_empty() {
            return Err(bad("`brokers` is empty; set it to host:port of one or more brokers".into()));
        }
        if self.partitions < 1 {
            return Err(bad(format!("`partitions = {}` must be at least 1", self.partitions)));
        }
        if self.replication_factor < 1 && self.replication_factor != -1 {
            return Err(bad(format!(
                "`replication_factor = {}` must be at least 1 (or -1 for the broker's default)",
                self.replication_factor
            )));
        }
        if self.max_in_flight_messages == 0 {
            return Err(bad("`max_in_flight_messages` must be at least 1".into()));
        }
        for key in self.producer.keys() {
            if OWNED.contains(&key.as_str()) {
                return Err(bad(format!(
                    "[sink.producer] {key:?} is set by outflow; use `brokers` for the servers, and leave idempotence and partitioning to outflow"
                )));
            }
        }
        if self.exactly_once {
            if let Some(acks) = self.producer.get("acks").or_else(|| self.producer.get("request.required.acks")) {
                let acks = acks.to_string();
                if acks != "all" && acks != "-1" {
                    return Err(bad(format!(
                        "[sink.producer] acks = {acks:?} can lose acknowledged messages; remove it (outflow uses acks=all) or set exactly_once = false"
                    )));
                }
            }
        }
        let template =
            NameTemplate::parse(&self.topic, "topic").map_err(|e| bad(format!("`topic = {:?}`: {e}", self.topic)))?;
        Ok(Checked { template, debezium, registry })
    }

    /// The registry of Avro records, from `format = "avro"` and
    /// `schema_registry*`, or from `[sink.debezium]`'s Avro converter.
    fn registry(&self, debezium: &Debezium) -> Result<Option<RegistrySettings>, String> {
        let converter = debezium.avro.as_ref();
        let avro = self.format == KafkaFormat::Avro || converter.is_some();
        if !avro {
            if self.schema_registry.is_some()
                || self.schema_registry_user.is_some()
                || self.schema_registry_password.is_some()
                || self.schema_registry_ca_file.is_some()
            {
                return Err("`schema_registry*` settings apply to Avro records: set `format = \"avro\"` or remove them".into());
            }
            return Ok(None);
        }
        if self.format == KafkaFormat::Json {
            return Err("[sink.debezium] io.confluent.connect.avro.AvroConverter writes Debezium records: remove `format = \"json\"`".into());
        }
        if self.schemas {
            return Err("`schemas = true` is the JSON converter's; Avro records always have their schemas (in the registry): remove it".into());
        }
        if debezium.heartbeat.is_some() {
            return Err("heartbeat records are written with the JSON converter only: remove `heartbeat.interval.ms` from an Avro sink (or use a second, JSON kafka sink for them)".into());
        }
        let url = match (self.schema_registry.as_deref(), converter) {
            (Some(url), Some(c)) if url.trim_end_matches('/') != c.url.trim_end_matches('/') => {
                return Err(format!(
                    "`schema_registry = {url:?}` and [sink.debezium] `*.converter.schema.registry.url = {:?}` differ; keep one",
                    c.url
                ))
            }
            (Some(url), _) => url.to_string(),
            (None, Some(c)) => c.url.clone(),
            (None, None) => {
                return Err("`format = \"avro\"` needs `schema_registry = \"http://host:8081\"` (the Confluent Schema Registry's URL)".into())
            }
        };
        let auth = match (&self.schema_registry_user, &self.schema_registry_password, converter.and_then(|c| c.user_info.clone())) {
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err("set both `schema_registry_user` and `schema_registry_password`, or neither".into())
            }
            (Some(u), Some(p), Some(info)) if (u, p) != (&info.0, &info.1) => {
                return Err("`schema_registry_user`/`schema_registry_password` and [sink.debezium] `*.converter.basic.auth.user.info` differ; keep one".into())
            }
            (Some(u), Some(p), _) => Some((u.clone(), p.clone())),
            (None, None, info) => info,
        };
        let settings = RegistrySettings { url, auth, ca_file: self.schema_registry_ca_file.clone() };
        settings.validate()?;
        Ok(Some(settings))
    }

    /// The producer's librdkafka properties.
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = self.common_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            // Never give up on a message: a broker outage stalls delivery
            // (and so the source), it does not fail it.
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.messages", self.max_in_flight_messages.to_string())
            .set("queue.buffering.max.kbytes", "65536")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("compression.codec", "lz4")
            .set("allow.auto.create.topics", "false");
        for (k, v) in &self.producer {
            c.set(k, v.to_string());
        }
        c
    }

    /// A consumer for reading partition tails and the offsets topic: no group
    /// commits, explicit assignment, partition EOF events.
    pub(crate) fn consumer_config(&self) -> ClientConfig {
        let mut c = self.common_config();
        // Security settings apply to the consumer too; producer-only
        // properties would be rejected by librdkafka, so only pass those
        // that both clients know.
        for (k, v) in &self.producer {
            if k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") || k == "client.id" {
                c.set(k, v.to_string());
            }
        }
        c.set("group.id", format!("outflow-recovery-{}", self.name))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_uncommitted");
        c
    }

    pub(crate) fn admin_config(&self) -> ClientConfig {
        let mut c = self.common_config();
        for (k, v) in &self.producer {
            if k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.") {
                c.set(k, v.to_string());
            }
        }
        c
    }

    fn common_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.trim())
            .set("client.id", format!("outflow-{}", self.name))
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "5000")
            .set("log_level", "3");
        c
    }
}
