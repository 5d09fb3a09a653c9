//! `[sink.debezium]`: Debezium's connector and transform properties, as a
//! Debezium user writes them, for the sinks that write Debezium records
//! (Kafka, JSONL). Keys and values are Debezium's; a key or value outflow
//! does not support is a config error that lists what is supported, so a
//! pasted connector config either means the same bytes or says why not.
//!
//! Supported:
//! - `tombstones.on.delete`;
//! - `message.key.columns` (`<schema>.<table>:<col>,<col>;…`, the table part
//!   a regular expression, as in Debezium);
//! - `transforms` with `io.debezium.transforms.ExtractNewRecordState`
//!   ([`Unwrap`]: `delete.tombstone.handling.mode`, the 2.x
//!   `delete.handling.mode`/`drop.tombstones`, `add.fields`, `add.headers`
//!   and their `.prefix`) and `io.debezium.transforms.ByLogicalTableRouter`
//!   ([`Route`]: `topic.regex`, `topic.replacement`,
//!   `key.enforce.uniqueness`, `key.field.name`);
//! - converter settings ([`ValueModes`]): `decimal.handling.mode`,
//!   `time.precision.mode`, `binary.handling.mode`, `interval.handling.mode`,
//!   `bigint.unsigned.handling.mode` with all of Debezium's values;
//! - `key.converter.schemas.enable`/`value.converter.schemas.enable`
//!   ([`SchemasEnable`]): records as the JSON converter's `{"schema",
//!   "payload"}` (see `schema`); the sink's own `schemas = true` means both.
//!   With schemas on and `bigint.unsigned.handling.mode` unset, BIGINT
//!   UNSIGNED is Debezium's `precise` (a `Decimal` the schema describes)
//!   rather than outflow's exact JSON integer, which no Connect type holds.
//! - `heartbeat.interval.ms` and `topic.heartbeat.prefix` ([`Heartbeat`],
//!   Kafka only).
//! - `include.schema.changes` (Kafka only): schema change records on the
//!   `<pipeline>` topic (see `schema_change`). Off unless set: Debezium's
//!   MySQL connector defaults it to true, outflow to false.
//! - `key.converter`/`value.converter` ([`AvroConverter`]): Confluent's
//!   `io.confluent.connect.avro.AvroConverter` for both (Kafka sink only),
//!   with `*.converter.schema.registry.url` and, for basic auth,
//!   `*.converter.basic.auth.credentials.source = USER_INFO` and
//!   `*.converter.basic.auth.user.info = user:password`; or Kafka's
//!   `org.apache.kafka.connect.json.JsonConverter` (the default). Key and
//!   value settings must agree: outflow has one registry client per sink.

use std::collections::BTreeMap;

use regex::Regex;

pub use super::converters::AvroConverter;
use super::converters::{converter_key, parse_converters, AVRO_KEYS};
use super::values::{BinaryMode, DecimalMode, IntervalMode, TimeMode, UnsignedMode, ValueModes};
use crate::settings::Setting;

/// The `[sink.debezium]` table, verbatim.
pub type DebeziumProperties = BTreeMap<String, Setting>;

const UNWRAP: &str = "io.debezium.transforms.ExtractNewRecordState";
const ROUTER: &str = "io.debezium.transforms.ByLogicalTableRouter";

/// The JSON converter's schema switches, for keys and values.
const SCHEMAS_KEY: &str = "key.converter.schemas.enable";
const SCHEMAS_VALUE: &str = "value.converter.schemas.enable";

/// Converter settings and the values each supports.
const MODES: &[(&str, &[&str])] = &[
    ("decimal.handling.mode", &["precise", "string", "double"]),
    ("time.precision.mode", &["adaptive", "adaptive_time_microseconds", "connect"]),
    ("binary.handling.mode", &["bytes", "base64", "base64-url-safe", "hex"]),
    ("interval.handling.mode", &["numeric", "string"]),
    ("bigint.unsigned.handling.mode", &["long", "precise"]),
];

const UNWRAP_KEYS: &[&str] = &[
    "type",
    "delete.tombstone.handling.mode",
    "delete.handling.mode",
    "drop.tombstones",
    "add.fields",
    "add.fields.prefix",
    "add.headers",
    "add.headers.prefix",
];

const ROUTER_KEYS: &[&str] = &["type", "topic.regex", "topic.replacement", "key.enforce.uniqueness", "key.field.name"];

/// Schema change records (Kafka only).
const SCHEMA_CHANGES: &str = "include.schema.changes";

/// `heartbeat.interval.ms` and `topic.heartbeat.prefix`.
const HEARTBEAT_KEYS: &[&str] = &["heartbeat.interval.ms", "topic.heartbeat.prefix"];

/// What `[sink.debezium]` asks for, checked.
#[derive(Debug, Clone, Default)]
pub struct Debezium {
    /// `tombstones.on.delete`, when set.
    pub tombstones: Option<bool>,
    /// `message.key.columns`, in the order given.
    pub key_columns: Vec<KeyColumns>,
    pub unwrap: Option<Unwrap>,
    pub routes: Vec<Route>,
    /// The converter settings (`decimal.handling.mode`, …).
    pub values: ValueModes,
    /// Heartbeat records, when `heartbeat.interval.ms` is above 0.
    pub heartbeat: Option<Heartbeat>,
    /// Whether keys and values are written with their schemas.
    pub schemas: SchemasEnable,
    /// `*.converter = io.confluent.connect.avro.AvroConverter`.
    pub avro: Option<AvroConverter>,
    /// `include.schema.changes`: schema change records on the pipeline's topic.
    pub schema_changes: bool,
}

/// Debezium's heartbeat records: every `interval`, a record keyed
/// `{"serverName": <name>}` with value `{"ts_ms": <now>}` on the topic
/// `<prefix>.<name>`, so consumers see the pipeline alive while the
/// captured tables are quiet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval: std::time::Duration,
    /// `topic.heartbeat.prefix` (Debezium's default `__debezium-heartbeat`).
    pub prefix: String,
}

impl Heartbeat {
    /// The heartbeat topic of the pipeline `name` (Debezium's `topic.prefix`).
    pub fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// The record's key and value, as Debezium's JSON converter writes
    /// them, with their schemas (`ServerNameKey`, `Heartbeat`) where
    /// `schemas` asks for them.
    pub fn record(name: &str, ts_ms: i64, schemas: SchemasEnable) -> (Vec<u8>, Vec<u8>) {
        const KEY_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1}"#;
        const VALUE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1}"#;
        let key = serde_json::json!({ "serverName": name }).to_string();
        let value = serde_json::json!({ "ts_ms": ts_ms }).to_string();
        let with = |on: bool, schema: &str, payload: String| {
            if on { format!(r#"{{"schema":{schema},"payload":{payload}}}"#) } else { payload }.into_bytes()
        };
        (with(schemas.key, KEY_SCHEMA, key), with(schemas.value, VALUE_SCHEMA, value))
    }
}

/// `key.converter.schemas.enable` and `value.converter.schemas.enable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemasEnable {
    pub key: bool,
    pub value: bool,
}

impl SchemasEnable {
    pub fn any(self) -> bool {
        self.key || self.value
    }
}

/// One `message.key.columns` entry: the tables it applies to and the
/// columns that form their record key.
#[derive(Debug, Clone)]
pub struct KeyColumns {
    pub table: Regex,
    pub columns: Vec<String>,
}

/// `ExtractNewRecordState`: the record value is the row, flat.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    pub deletes: DeleteHandling,
    /// `add.fields`, appended to the value in order.
    pub fields: Vec<Meta>,
    /// `add.headers`, as record headers.
    pub headers: Vec<Meta>,
}

/// `delete.tombstone.handling.mode`: what becomes of a delete record and
/// the tombstone after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteHandling {
    /// Neither the delete nor its tombstone.
    Drop,
    /// The tombstone only (Debezium's default).
    Tombstone,
    /// The delete as the old row with `__deleted: "true"`; no tombstone.
    Rewrite,
    /// The rewritten delete and the tombstone.
    RewriteWithTombstone,
    /// The delete itself becomes the tombstone.
    DeleteToTombstone,
}

impl DeleteHandling {
    /// Whether the value carries `__deleted`.
    pub fn rewrites(self) -> bool {
        matches!(self, DeleteHandling::Rewrite | DeleteHandling::RewriteWithTombstone)
    }

    /// `(delete record, tombstone)` written for one delete, given whether the
    /// connector writes tombstones (`tombstones.on.delete`).
    pub fn records(self, tombstones: bool) -> (bool, bool) {
        match self {
            DeleteHandling::Drop => (false, false),
            DeleteHandling::Tombstone => (false, tombstones),
            DeleteHandling::Rewrite => (true, false),
            DeleteHandling::RewriteWithTombstone => (true, tombstones),
            DeleteHandling::DeleteToTombstone => (false, true),
        }
    }
}

/// An `add.fields`/`add.headers` entry: the envelope or source field and
/// the name it is added under (`__op`, `__source_ts_ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub name: String,
    pub field: MetaField,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetaField {
    /// The envelope's `op`.
    Op,
    /// The envelope's `ts_ms` (processing time).
    TsMs,
    /// A field of the source block.
    Source(String),
}

/// `ByLogicalTableRouter`: topics whose whole name matches `regex` become
/// `replacement`; the key gets `key_field` = the original topic.
#[derive(Debug, Clone)]
pub struct Route {
    pub regex: Regex,
    /// In the `regex` crate's syntax (`${1}`).
    pub replacement: String,
    pub key_field: Option<String>,
}

impl Route {
    /// The routed topic, or `None` when the route does not apply.
    pub fn apply(&self, topic: &str) -> Option<String> {
        let caps = self.regex.captures(topic)?;
        let mut out = String::new();
        caps.expand(&self.replacement, &mut out);
        Some(out)
    }
}

impl Debezium {
    /// Checks the properties. `schemas`: the sink's own `schemas = true`,
    /// turning both converter switches on (a switch set to `false` as well
    /// is an error).
    pub fn parse(props: &DebeziumProperties, schemas: bool) -> Result<Debezium, String> {
        let mut out = Debezium::default();
        let get = |k: &str| props.get(k).map(ToString::to_string);
        let aliases: Vec<String> = match get("transforms") {
            Some(t) => t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            None => Vec::new(),
        };
        for key in props.keys() {
            let known = key == "transforms"
                || key == "tombstones.on.delete"
                || key == "message.key.columns"
                || key == SCHEMA_CHANGES
                || HEARTBEAT_KEYS.contains(&key.as_str())
                || key == SCHEMAS_KEY
                || key == SCHEMAS_VALUE
                || converter_key(key)
                || MODES.iter().any(|(k, _)| k == key)
                || key.strip_prefix("transforms.").is_some_and(|rest| {
                    aliases.iter().any(|a| rest.strip_prefix(a.as_str()).is_some_and(|r| r.starts_with('.')))
                });
            if !known {
                return Err(format!("`{key}` is not supported; supported keys: {}", supported_keys()));
            }
        }
        let switch = |key: &str| -> Result<bool, String> {
            match get(key) {
                None => Ok(schemas),
                Some(v) => match parse_bool(key, &v)? {
                    false if schemas => {
                        Err(format!("`{key} = false` contradicts the sink's `schemas = true`; remove one"))
                    }
                    on => Ok(on),
                },
            }
        };
        out.schemas = SchemasEnable { key: switch(SCHEMAS_KEY)?, value: switch(SCHEMAS_VALUE)? };
        out.avro = parse_converters(&get)?;
        if out.avro.is_some() && out.schemas.any() {
            return Err(format!(
                "`{SCHEMAS_KEY}`/`{SCHEMAS_VALUE}` (and the sink's `schemas`) are the JSON converter's; \
                 Avro records always have their schemas (in the registry): remove them"
            ));
        }
        for (key, values) in MODES {
            if let Some(v) = get(key) {
                if !values.contains(&v.as_str()) {
                    return Err(format!("`{key} = {v:?}` is not supported; supported: {}", values.join(", ")));
                }
            }
        }
        let mode = |k: &str| get(k).unwrap_or_default();
        out.values = ValueModes {
            decimal: match mode("decimal.handling.mode").as_str() {
                "precise" => DecimalMode::Precise,
                "double" => DecimalMode::Double,
                _ => DecimalMode::String,
            },
            time: match mode("time.precision.mode").as_str() {
                "adaptive_time_microseconds" => TimeMode::AdaptiveTimeMicroseconds,
                "connect" => TimeMode::Connect,
                _ => TimeMode::Adaptive,
            },
            binary: match mode("binary.handling.mode").as_str() {
                "base64-url-safe" => BinaryMode::Base64UrlSafe,
                "hex" => BinaryMode::Hex,
                "base64" => BinaryMode::Base64,
                _ => BinaryMode::Bytes,
            },
            interval: match mode("interval.handling.mode").as_str() {
                "string" => IntervalMode::String,
                _ => IntervalMode::Numeric,
            },
            unsigned: match mode("bigint.unsigned.handling.mode").as_str() {
                "long" => UnsignedMode::Long,
                "precise" => UnsignedMode::Precise,
                _ if out.schemas.any() || out.avro.is_some() => UnsignedMode::Precise,
                _ => UnsignedMode::Exact,
            },
        };
        if let Some(v) = get("tombstones.on.delete") {
            out.tombstones = Some(parse_bool("tombstones.on.delete", &v)?);
        }
        if let Some(v) = get("message.key.columns") {
            out.key_columns = parse_key_columns(&v)?;
        }
        out.heartbeat = parse_heartbeat(&get)?;
        if let Some(v) = get(SCHEMA_CHANGES) {
            out.schema_changes = parse_bool(SCHEMA_CHANGES, &v)?;
        }
        for alias in &aliases {
            let key = |k: &str| format!("transforms.{alias}.{k}");
            let prop = |k: &str| get(&key(k));
            let ty = prop("type").ok_or_else(|| format!("transform {alias:?} has no `{}`", key("type")))?;
            let allowed = match ty.as_str() {
                UNWRAP => UNWRAP_KEYS,
                ROUTER => ROUTER_KEYS,
                other => {
                    return Err(format!(
                        "`{} = {other:?}` is not supported; supported transforms: {UNWRAP}, {ROUTER}",
                        key("type")
                    ))
                }
            };
            let prefix = format!("transforms.{alias}.");
            for k in props.keys().filter_map(|k| k.strip_prefix(&prefix)) {
                if !allowed.contains(&k) {
                    return Err(format!(
                        "`{prefix}{k}` is not supported for {ty}; supported: {}",
                        allowed.iter().map(|a| format!("{prefix}{a}")).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if ty == UNWRAP {
                if out.unwrap.is_some() {
                    return Err(format!("transform {alias:?}: only one {UNWRAP} is supported"));
                }
                out.unwrap = Some(parse_unwrap(&prop, &key)?);
            } else {
                out.routes.push(parse_route(&prop, &key)?);
            }
        }
        Ok(out)
    }

    /// The key columns configured for `table` (`schema.table`), if any.
    pub fn key_columns_for(&self, table: &str) -> Option<&[String]> {
        self.key_columns.iter().find(|k| k.table.is_match(table)).map(|k| k.columns.as_slice())
    }

    /// A table's topic after the routes; with the original topic when a
    /// route asks for it in the key (`key_field`, topic).
    pub fn route(&self, topic: String) -> (String, Option<(String, String)>) {
        for r in &self.routes {
            if let Some(routed) = r.apply(&topic) {
                let key = r.key_field.clone().map(|f| (f, topic));
                return (routed, key);
            }
        }
        (topic, None)
    }
}

fn supported_keys() -> String {
    let mut keys: Vec<String> = ["tombstones.on.delete", "message.key.columns", SCHEMA_CHANGES, "transforms"]
        .into_iter()
        .chain(HEARTBEAT_KEYS.iter().copied())
        .chain(MODES.iter().map(|(k, _)| *k))
        .chain([SCHEMAS_KEY, SCHEMAS_VALUE, "key.converter", "value.converter"])
        .map(str::to_string)
        .collect();
    keys.push(format!("*.converter.{}", AVRO_KEYS.join(" | ")));
    keys.push(format!("transforms.<name>.type = {UNWRAP} | {ROUTER} and their settings"));
    keys.join(", ")
}

fn parse_heartbeat(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Heartbeat>, String> {
    let ms = match get("heartbeat.interval.ms") {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            format!("`heartbeat.interval.ms = {v:?}` is not a number of milliseconds (0, the default, turns heartbeats off)")
        })?,
    };
    let prefix = get("topic.heartbeat.prefix").unwrap_or_else(|| "__debezium-heartbeat".into());
    if prefix.is_empty() {
        return Err("`topic.heartbeat.prefix` is empty; leave it out for `__debezium-heartbeat`".into());
    }
    Ok((ms > 0).then(|| Heartbeat { interval: std::time::Duration::from_millis(ms), prefix }))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{key} = {v:?}` must be true or false")),
    }
}

/// `schema.table:col,col;schema.table2:col` (table part a regular
/// expression matched against the whole `schema.table`).
fn parse_key_columns(v: &str) -> Result<Vec<KeyColumns>, String> {
    let mut out = Vec::new();
    for entry in v.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || format!("`message.key.columns`: {entry:?} is not `<schema>.<table>:<column>[,<column>…]`");
        let (table, columns) = entry.rsplit_once(':').ok_or_else(bad)?;
        let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
        if table.trim().is_empty() || columns.is_empty() {
            return Err(bad());
        }
        let table = Regex::new(&format!("^(?:{})$", table.trim()))
            .map_err(|e| format!("`message.key.columns`: {table:?} is not a regular expression: {e}"))?;
        out.push(KeyColumns { table, columns });
    }
    Ok(out)
}

fn parse_unwrap(prop: &dyn Fn(&str) -> Option<String>, key: &dyn Fn(&str) -> String) -> Result<Unwrap, String> {
    let modes = "drop, tombstone, rewrite, rewrite-with-tombstone, delete-to-tombstone";
    let deletes = match (prop("delete.tombstone.handling.mode"), prop("delete.handling.mode")) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "set `{}` or the older `{}`, not both",
                key("delete.tombstone.handling.mode"),
                key("delete.handling.mode")
            ))
        }
        (Some(m), None) => match m.as_str() {
            "drop" => DeleteHandling::Drop,
            "tombstone" => DeleteHandling::Tombstone,
            "rewrite" => DeleteHandling::Rewrite,
            "rewrite-with-tombstone" => DeleteHandling::RewriteWithTombstone,
            "delete-to-tombstone" => DeleteHandling::DeleteToTombstone,
            other => {
                return Err(format!("`{} = {other:?}` is not one of {modes}", key("delete.tombstone.handling.mode")))
            }
        },
        // Debezium 2.x: `delete.handling.mode` (default drop) with
        // `drop.tombstones` (default true).
        (None, legacy) => {
            let drop_tombstones = match prop("drop.tombstones") {
                Some(v) => parse_bool(&key("drop.tombstones"), &v)?,
                None => true,
            };
            match (legacy.as_deref().unwrap_or("drop"), drop_tombstones) {
                ("drop", true) if legacy.is_none() && prop("drop.tombstones").is_none() => DeleteHandling::Tombstone,
                ("drop", true) => DeleteHandling::Drop,
                ("drop", false) => DeleteHandling::Tombstone,
                ("rewrite", true) => DeleteHandling::Rewrite,
                ("rewrite", false) => DeleteHandling::RewriteWithTombstone,
                ("none", _) => DeleteHandling::DeleteToTombstone,
                (other, _) => {
                    return Err(format!(
                        "`{} = {other:?}` is not one of drop, rewrite, none",
                        key("delete.handling.mode")
                    ))
                }
            }
        }
    };
    let list = |k: &str, prefix_key: &str| -> Result<Vec<Meta>, String> {
        let prefix = prop(prefix_key).unwrap_or_else(|| "__".into());
        let Some(v) = prop(k) else { return Ok(Vec::new()) };
        v.split(',').map(str::trim).filter(|f| !f.is_empty()).map(|f| parse_meta(f, &prefix, &key(k))).collect()
    };
    Ok(Unwrap {
        deletes,
        fields: list("add.fields", "add.fields.prefix")?,
        headers: list("add.headers", "add.headers.prefix")?,
    })
}

/// `op`, `ts_ms`, `source.<field>` or a bare source field (`table`, `lsn`).
fn parse_meta(f: &str, prefix: &str, key: &str) -> Result<Meta, String> {
    let field = match f.split_once('.') {
        None if f == "op" => MetaField::Op,
        None if f == "ts_ms" => MetaField::TsMs,
        None => MetaField::Source(f.to_string()),
        Some(("source", field)) if !field.is_empty() => MetaField::Source(field.to_string()),
        Some(_) => {
            return Err(format!(
                "`{key}`: {f:?} is not supported; use op, ts_ms, a source field (table, lsn, …) or source.<field>"
            ))
        }
    };
    Ok(Meta { name: format!("{prefix}{}", f.replace('.', "_")), field })
}

fn parse_route(prop: &dyn Fn(&str) -> Option<String>, key: &dyn Fn(&str) -> String) -> Result<Route, String> {
    let regex = prop("topic.regex").ok_or_else(|| format!("`{}` is required", key("topic.regex")))?;
    let replacement = prop("topic.replacement").ok_or_else(|| format!("`{}` is required", key("topic.replacement")))?;
    let regex = Regex::new(&format!("^(?:{regex})$"))
        .map_err(|e| format!("`{} = {regex:?}` is not a regular expression: {e}", key("topic.regex")))?;
    let unique = match prop("key.enforce.uniqueness") {
        Some(v) => parse_bool(&key("key.enforce.uniqueness"), &v)?,
        None => true,
    };
    let field = prop("key.field.name").unwrap_or_else(|| "__dbz__physicalTableIdentifier".into());
    Ok(Route { regex, replacement: java_replacement(&replacement), key_field: unique.then_some(field) })
}

/// Java's `$1` group references in the `regex` crate's `${1}` form (its
/// `$1_all` would name a group `1_all`).
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(n) => out.push(n),
                None => {}
            },
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> DebeziumProperties {
        pairs.iter().map(|(k, v)| (k.to_string(), Setting::Text(v.to_string()))).collect()
    }

    #[test]
    fn the_issue_example_parses() {
        let d = Debezium::parse(
            &props(&[
                ("tombstones.on.delete", "true"),
                ("message.key.columns", "public.events:tenant_id,id"),
                ("transforms", "unwrap,route"),
                ("transforms.unwrap.type", UNWRAP),
                ("transforms.unwrap.delete.tombstone.handling.mode", "rewrite"),
                ("transforms.unwrap.add.fields", "op,table,lsn,source.ts_ms"),
                ("transforms.route.type", ROUTER),
                ("transforms.route.topic.regex", "(.*)_shard_\\d+"),
                ("transforms.route.topic.replacement", "$1_all"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(d.tombstones, Some(true));
        assert_eq!(d.key_columns_for("public.events"), Some(&["tenant_id".to_string(), "id".to_string()][..]));
        assert_eq!(d.key_columns_for("public.events2"), None);
        let u = d.unwrap.unwrap();
        assert_eq!(u.deletes, DeleteHandling::Rewrite);
        let names: Vec<&str> = u.fields.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["__op", "__table", "__lsn", "__source_ts_ms"]);
        assert_eq!(u.fields[3].field, MetaField::Source("ts_ms".into()));
        assert_eq!(
            d.routes[0].apply("dbz.public.orders_shard_12").as_deref(),
            Some("dbz.public.orders_all"),
            "Java's $1 followed by text"
        );
        assert_eq!(d.routes[0].apply("dbz.public.orders"), None);
    }

    #[test]
    fn heartbeats_are_off_unless_an_interval_is_set() {
        assert_eq!(Debezium::parse(&props(&[]), false).unwrap().heartbeat, None);
        assert_eq!(Debezium::parse(&props(&[("heartbeat.interval.ms", "0")]), false).unwrap().heartbeat, None);
        let h = Debezium::parse(&props(&[("heartbeat.interval.ms", "500")]), false).unwrap().heartbeat.unwrap();
        assert_eq!(h.interval, std::time::Duration::from_millis(500));
        assert_eq!(h.topic("inventory"), "__debezium-heartbeat.inventory");
        let h = Debezium::parse(&props(&[("heartbeat.interval.ms", "10000"), ("topic.heartbeat.prefix", "hb")]), false)
            .unwrap()
            .heartbeat
            .unwrap();
        assert_eq!(h.topic("inventory"), "hb.inventory");
        let err = Debezium::parse(&props(&[("heartbeat.interval.ms", "10s")]), false).unwrap_err();
        assert!(err.contains("not a number of milliseconds"), "{err}");
        // Debezium 3.6.3 (debezium-ref, heartbeat.interval.ms=500) writes exactly these bytes.
        let (key, value) = Heartbeat::record("dbz", 1796425989637, SchemasEnable::default());
        assert_eq!(key, br#"{"serverName":"dbz"}"#);
        assert_eq!(value, br#"{"ts_ms":1796425989637}"#);
        let (key, value) = Heartbeat::record("dbz", 1796425989637, SchemasEnable { key: true, value: true });
        let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        assert_eq!(
            json(&key),
            serde_json::json!({"schema": {"type": "struct", "fields": [{"type": "string", "optional": false, "field": "serverName"}],
                "optional": false, "name": "io.debezium.connector.common.ServerNameKey", "version": 1},
                "payload": {"serverName": "dbz"}})
        );
        assert_eq!(
            json(&value),
            serde_json::json!({"schema": {"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "ts_ms"}],
                "optional": false, "name": "io.debezium.connector.common.Heartbeat", "version": 1},
                "payload": {"ts_ms": 1796425989637_i64}})
        );
    }

    #[test]
    fn schema_switches_are_independent_and_the_sink_key_sets_both() {
        let parse = |p: &[(&str, &str)], sink: bool| Debezium::parse(&props(p), sink);
        let only_value = parse(&[("value.converter.schemas.enable", "true")], false).unwrap();
        assert_eq!(only_value.schemas, SchemasEnable { key: false, value: true });
        let only_key = parse(&[("key.converter.schemas.enable", "true")], false).unwrap();
        assert_eq!(only_key.schemas, SchemasEnable { key: true, value: false });
        let both = parse(&[], true).unwrap();
        assert_eq!(both.schemas, SchemasEnable { key: true, value: true });
        assert_eq!(both.values.unsigned, UnsignedMode::Precise, "the exact integer has no Connect type");
        assert_eq!(parse(&[], false).unwrap().values.unsigned, UnsignedMode::Exact);
        let long = parse(&[("bigint.unsigned.handling.mode", "long")], true).unwrap();
        assert_eq!(long.values.unsigned, UnsignedMode::Long);
        let err = parse(&[("key.converter.schemas.enable", "false")], true).unwrap_err();
        assert!(err.contains("contradicts"), "{err}");
    }

    #[test]
    fn unsupported_keys_and_values_say_what_is_supported() {
        let err = |p: &[(&str, &str)]| Debezium::parse(&props(p), false).unwrap_err();
        assert!(err(&[("snapshot.mode", "never")]).contains("supported keys: tombstones.on.delete"));
        assert!(err(&[("decimal.handling.mode", "exact")]).contains("supported: precise, string, double"));
        assert!(err(&[("value.converter.schemas.enable", "yes")]).contains("must be true or false"));
        assert!(err(&[("transforms", "x"), ("transforms.x.type", "org.apache.kafka.connect.transforms.Filter")])
            .contains("supported transforms"));
        assert!(err(&[("transforms", "u"), ("transforms.u.type", UNWRAP), ("transforms.u.drop.fields", "a")])
            .contains("transforms.u.add.fields"));
        assert!(err(&[("transforms.u.type", UNWRAP)]).contains("not supported"), "a transform not listed");
        assert!(err(&[("message.key.columns", "public.t")]).contains("<schema>.<table>:<column>"));
    }

    #[test]
    fn debezium_2_delete_settings_map_to_3_modes() {
        let mode = |p: &[(&str, &str)]| {
            let mut all = vec![("transforms", "u"), ("transforms.u.type", UNWRAP)];
            all.extend(p.iter().map(|(k, v)| (*k, *v)));
            Debezium::parse(&props(&all), false).unwrap().unwrap.unwrap().deletes
        };
        assert_eq!(mode(&[]), DeleteHandling::Tombstone);
        assert_eq!(mode(&[("transforms.u.delete.handling.mode", "rewrite")]), DeleteHandling::Rewrite);
        assert_eq!(
            mode(&[("transforms.u.delete.handling.mode", "rewrite"), ("transforms.u.drop.tombstones", "false")]),
            DeleteHandling::RewriteWithTombstone
        );
        assert_eq!(mode(&[("transforms.u.drop.tombstones", "true")]), DeleteHandling::Drop);
    }

    /// What debezium-ref showed for one insert and delete with tombstones on
    /// (`tests/golden/README.md`): `(delete record, tombstone)` per mode.
    #[test]
    fn delete_modes_write_what_debezium_writes() {
        use DeleteHandling::*;
        let seen = [
            (Drop, (false, false)),
            (Tombstone, (false, true)),
            (Rewrite, (true, false)),
            (RewriteWithTombstone, (true, true)),
            (DeleteToTombstone, (false, true)),
        ];
        for (mode, records) in seen {
            assert_eq!(mode.records(true), records, "{mode:?}");
        }
        assert_eq!(Tombstone.records(false), (false, false), "no connector tombstone to keep");
        assert_eq!(DeleteToTombstone.records(false), (false, true), "the delete itself becomes one");
    }

    #[test]
    fn java_group_references_become_braced() {
        assert_eq!(java_replacement("$1_all"), "${1}_all");
        assert_eq!(java_replacement("a\\$b$"), "a$$b$$");
        assert_eq!(java_replacement("$12x"), "${12}x");
    }
}
