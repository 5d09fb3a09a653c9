//! Kafka Connect schemas of Debezium records, for the JSON converter's
//! `schemas.enable=true` form `{"schema": …, "payload": …}`
//! (`key.converter.schemas.enable`, `value.converter.schemas.enable`).
//!
//! A table's schemas are built from its [`TableSchema`] and the converter
//! settings ([`ValueModes`]): the same logical type and mode that decide a
//! value's JSON in `values` decide its schema here, so a payload always
//! matches its schema. Each record's schema is rendered once per table
//! schema version and cached by the writer ([`SchemaCache`]); the hot path
//! only copies the cached bytes.
//!
//! What Debezium 3.6.3 emits, checked with `tools/debezium-ref` (see
//! `tests/golden/README.md`, `*.schemas.json`):
//! - JSON key order of a schema node is the converter's: `type`, `fields` or
//!   `items`, `optional`, `name`, `version`, `doc`, `parameters`, `default`,
//!   then the node's `field` name in its parent struct;
//! - row structs are `<prefix>.<schema>.<table>.Value` (optional), keys
//!   `<prefix>.<schema>.<table>.Key`, envelopes `….Envelope` version 2, with
//!   the connector's `source` struct (version 1) and the `event.block`
//!   transaction struct;
//! - a column is optional when nullable; array elements are optional,
//!   except enum labels;
//! - semantic types (`io.debezium.time.*`, `io.debezium.data.*`,
//!   `org.apache.kafka.connect.data.*`) follow the time, decimal, binary and
//!   interval modes; `money` is a `Decimal` of scale 2 without a precision;
//!   a variable-scale decimal is the `VariableScaleDecimal` struct.
//!
//! Not described: column defaults (Debezium adds `"default"` for columns
//! declared with one; the model does not carry defaults).

use std::collections::HashMap;

use outflow_model::{ColumnSchema, ColumnType, Dialect, TableId, TableSchema};

use super::debezium::{MetaField, Unwrap};
use super::values::{write_json_str, BinaryMode, DecimalMode, IntervalMode, TimeMode, UnsignedMode, ValueModes};

/// One Kafka Connect schema node.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub(super) ty: &'static str,
    pub(super) optional: bool,
    pub(super) name: Option<String>,
    pub(super) version: Option<u32>,
    pub(super) doc: Option<&'static str>,
    pub(super) parameters: Vec<(&'static str, String)>,
    /// The default as JSON text.
    pub(super) default: Option<&'static str>,
    pub(super) items: Option<Box<Schema>>,
    pub(super) fields: Vec<(String, Schema)>,
}

impl Schema {
    pub(super) fn of(ty: &'static str, optional: bool) -> Schema {
        Schema {
            ty,
            optional,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
            items: None,
            fields: Vec::new(),
        }
    }

    /// A semantic type: `name` with version 1.
    fn named(ty: &'static str, optional: bool, name: &str) -> Schema {
        Schema { name: Some(name.to_string()), version: Some(1), ..Schema::of(ty, optional) }
    }

    fn with_param(mut self, key: &'static str, value: impl Into<String>) -> Schema {
        self.parameters.push((key, value.into()));
        self
    }

    /// A struct named `name` (no version) of `fields`.
    pub(super) fn structure(name: String, optional: bool, fields: Vec<(String, Schema)>) -> Schema {
        Schema { name: Some(name), fields, ..Schema::of("struct", optional) }
    }

    /// Appends the node as the JSON converter writes it, with `field` (its
    /// name in the parent struct) last.
    pub fn write(&self, out: &mut Vec<u8>, field: Option<&str>) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.ty.as_bytes());
        out.push(b'"');
        if self.ty == "struct" {
            out.extend_from_slice(b",\"fields\":[");
            for (i, (name, f)) in self.fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                f.write(out, Some(name));
            }
            out.push(b']');
        }
        if let Some(items) = &self.items {
            out.extend_from_slice(b",\"items\":");
            items.write(out, None);
        }
        out.extend_from_slice(if self.optional { b",\"optional\":true" } else { b",\"optional\":false" });
        if let Some(name) = &self.name {
            out.extend_from_slice(b",\"name\":");
            write_json_str(out, name);
        }
        if let Some(v) = self.version {
            out.extend_from_slice(format!(",\"version\":{v}").as_bytes());
        }
        if let Some(doc) = self.doc {
            out.extend_from_slice(b",\"doc\":");
            write_json_str(out, doc);
        }
        if !self.parameters.is_empty() {
            out.extend_from_slice(b",\"parameters\":{");
            for (i, (k, v)) in self.parameters.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, k);
                out.push(b':');
                write_json_str(out, v);
            }
            out.push(b'}');
        }
        if let Some(d) = self.default {
            out.extend_from_slice(b",\"default\":");
            out.extend_from_slice(d.as_bytes());
        }
        if let Some(f) = field {
            out.extend_from_slice(b",\"field\":");
            write_json_str(out, f);
        }
        out.push(b'}');
    }

    /// `{"schema":<this>,"payload":` — what precedes a record's payload
    /// (the record then ends with `}`).
    pub fn record_prefix(&self) -> Vec<u8> {
        let mut out = b"{\"schema\":".to_vec();
        self.write(&mut out, None);
        out.extend_from_slice(b",\"payload\":");
        out
    }
}

/// The schema of one column's values under `modes`.
pub fn column(col: &ColumnSchema, modes: &ValueModes) -> Schema {
    match &col.ty {
        ColumnType::Array(elem) => {
            let element = elem.element();
            let optional = !matches!(element, ColumnType::Enum { .. });
            Schema { items: Some(Box::new(scalar(element, col, modes, optional))), ..Schema::of("array", col.nullable) }
        }
        ty => scalar(ty, col, modes, col.nullable),
    }
}

/// A non-array type's schema. `col` is consulted for `money`, which the
/// logical type does not tell from an unconstrained decimal, by the
/// source's type name as `values` renders it (a decimal of scale 2).
fn scalar(ty: &ColumnType, col: &ColumnSchema, modes: &ValueModes, optional: bool) -> Schema {
    let plain = |t| Schema::of(t, optional);
    let named = |t, n: &str| Schema::named(t, optional, n);
    let connect = modes.time == TimeMode::Connect;
    match ty {
        ColumnType::Bool => plain("boolean"),
        ColumnType::Year => named("int32", "io.debezium.time.Year"),
        ColumnType::Int { bits: 8 | 16, signed: true } | ColumnType::Int { bits: 8, signed: false } => plain("int16"),
        ColumnType::Int { bits: 16 | 24, .. } | ColumnType::Int { bits: 32, signed: true } => plain("int32"),
        ColumnType::Int { bits: 64, signed: false } => match modes.unsigned {
            UnsignedMode::Long => plain("int64"),
            UnsignedMode::Precise | UnsignedMode::Exact => named("bytes", "org.apache.kafka.connect.data.Decimal")
                .with_param("scale", "0")
                .with_param("connect.decimal.precision", "20"),
        },
        ColumnType::Int { .. } => plain("int64"),
        ColumnType::Float32 => plain("float"),
        ColumnType::Float64 => plain("double"),
        ColumnType::Decimal(declared) => match modes.decimal {
            DecimalMode::String => plain("string"),
            DecimalMode::Double => plain("double"),
            DecimalMode::Precise => match declared {
                Some((precision, scale)) => named("bytes", "org.apache.kafka.connect.data.Decimal")
                    .with_param("scale", scale.to_string())
                    .with_param("connect.decimal.precision", precision.to_string()),
                None if col.type_name == "money" => {
                    named("bytes", "org.apache.kafka.connect.data.Decimal").with_param("scale", "2")
                }
                None => Schema {
                    doc: Some("Variable scaled decimal"),
                    fields: vec![
                        ("scale".into(), Schema::of("int32", false)),
                        ("value".into(), Schema::of("bytes", false)),
                    ],
                    ..named("struct", "io.debezium.data.VariableScaleDecimal")
                },
            },
        },
        ColumnType::Text { .. } => plain("string"),
        ColumnType::Bytes => match modes.binary {
            BinaryMode::Bytes => plain("bytes"),
            BinaryMode::Base64 | BinaryMode::Base64UrlSafe | BinaryMode::Hex => plain("string"),
        },
        ColumnType::Date if connect => named("int32", "org.apache.kafka.connect.data.Date"),
        ColumnType::Date => named("int32", "io.debezium.time.Date"),
        ColumnType::Time { .. } | ColumnType::Duration { .. } if connect => {
            named("int32", "org.apache.kafka.connect.data.Time")
        }
        ColumnType::Time { precision: Some(0..=3) } if modes.time == TimeMode::Adaptive => {
            named("int32", "io.debezium.time.Time")
        }
        ColumnType::Time { .. } | ColumnType::Duration { .. } => named("int64", "io.debezium.time.MicroTime"),
        ColumnType::TimeTz { .. } => named("string", "io.debezium.time.ZonedTime"),
        ColumnType::Timestamp { .. } if connect => named("int64", "org.apache.kafka.connect.data.Timestamp"),
        ColumnType::Timestamp { precision: Some(0..=3) } => named("int64", "io.debezium.time.Timestamp"),
        ColumnType::Timestamp { .. } => named("int64", "io.debezium.time.MicroTimestamp"),
        ColumnType::TimestampTz { .. } => named("string", "io.debezium.time.ZonedTimestamp"),
        ColumnType::Interval => match modes.interval {
            IntervalMode::Numeric => named("int64", "io.debezium.time.MicroDuration"),
            IntervalMode::String => named("string", "io.debezium.time.Interval"),
        },
        ColumnType::Uuid => named("string", "io.debezium.data.Uuid"),
        ColumnType::Json => named("string", "io.debezium.data.Json"),
        ColumnType::Enum { labels } => named("string", "io.debezium.data.Enum").with_param("allowed", labels.join(",")),
        ColumnType::Set { labels } => {
            named("string", "io.debezium.data.EnumSet").with_param("allowed", labels.join(","))
        }
        ColumnType::Bits { length: Some(1), varying: false } => plain("boolean"),
        ColumnType::Bits { length, .. } => {
            named("bytes", "io.debezium.data.Bits").with_param("length", length.unwrap_or(i32::MAX as u32).to_string())
        }
        ColumnType::Geometry => Schema {
            doc: Some("Geometry"),
            fields: vec![("wkb".into(), Schema::of("bytes", false)), ("srid".into(), Schema::of("int32", true))],
            ..named("struct", "io.debezium.data.geometry.Geometry")
        },
        ColumnType::Xml => named("string", "io.debezium.data.Xml"),
        ColumnType::Other | ColumnType::Array(_) => plain("string"),
    }
}

/// `<prefix>.<schema>.<table>` — the start of a table's struct names.
pub fn table_name(prefix: &str, table: &TableId) -> String {
    format!("{prefix}.{}.{}", table.schema, table.name)
}

/// The row struct (`before`/`after`, the unwrapped value): every column.
pub fn row(table: &TableSchema, name: String, modes: &ValueModes) -> Schema {
    let fields = table.columns.iter().map(|c| (c.name.clone(), column(c, modes))).collect();
    Schema::structure(name, true, fields)
}

/// The record key's struct `<name>.Key` of the chosen columns (`None`: the
/// table's key columns), with a routed record's `extra` string field last.
pub fn key(
    table: &TableSchema,
    name: &str,
    columns: Option<&[usize]>,
    extra: Option<&str>,
    modes: &ValueModes,
) -> Schema {
    let cols: Vec<&ColumnSchema> = match columns {
        None => table.columns.iter().filter(|c| c.key).collect(),
        Some(indexes) => indexes.iter().filter_map(|&i| table.columns.get(i)).collect(),
    };
    let mut fields: Vec<(String, Schema)> = cols.into_iter().map(|c| (c.name.clone(), column(c, modes))).collect();
    if let Some(extra) = extra {
        fields.push((extra.to_string(), Schema::of("string", false)));
    }
    Schema::structure(format!("{name}.Key"), false, fields)
}

/// The change-event envelope `<name>.Envelope` (version 2).
pub fn envelope(table: &TableSchema, name: &str, dialect: Dialect, modes: &ValueModes) -> Schema {
    let row = row(table, format!("{name}.Value"), modes);
    let mut fields = vec![("before".to_string(), row.clone()), ("after".to_string(), row)];
    fields.push(("source".into(), source(dialect)));
    fields.push(("transaction".into(), transaction_block()));
    fields.push(("op".into(), Schema::of("string", false)));
    for ts in ["ts_ms", "ts_us", "ts_ns"] {
        fields.push((ts.into(), Schema::of("int64", true)));
    }
    Schema { version: Some(2), ..Schema::structure(format!("{name}.Envelope"), false, fields) }
}

/// `ExtractNewRecordState`'s value: the row struct, then `__deleted` when
/// deletes are rewritten, then the `add.fields` with their source types.
pub fn unwrapped(table: &TableSchema, name: &str, dialect: Dialect, unwrap: &Unwrap, modes: &ValueModes) -> Schema {
    let mut value = row(table, format!("{name}.Value"), modes);
    value.optional = false;
    if unwrap.deletes.rewrites() {
        value.fields.push(("__deleted".into(), Schema::of("string", true)));
    }
    let source = source(dialect);
    for meta in &unwrap.fields {
        let mut f = match &meta.field {
            MetaField::Op => Schema::of("string", true),
            MetaField::TsMs => Schema::of("int64", true),
            MetaField::Source(field) => {
                source.fields.iter().find(|(n, _)| n == field).map_or(Schema::of("string", true), |(_, s)| s.clone())
            }
        };
        f.optional = true;
        value.fields.push((meta.name.clone(), f));
    }
    value
}

/// The connector's `source` struct.
pub fn source(dialect: Dialect) -> Schema {
    let s = |t| Schema::of(t, false);
    let o = |t| Schema::of(t, true);
    let snapshot = Schema {
        default: Some("\"false\""),
        ..Schema::named("string", true, "io.debezium.data.Enum")
            .with_param("allowed", "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental")
    };
    let mut fields: Vec<(&str, Schema)> = vec![
        ("version", s("string")),
        ("connector", s("string")),
        ("name", s("string")),
        ("ts_ms", s("int64")),
        ("snapshot", snapshot),
        ("db", s("string")),
        ("sequence", o("string")),
        ("ts_us", o("int64")),
        ("ts_ns", o("int64")),
    ];
    let name = match dialect {
        Dialect::Postgres => {
            fields.extend([
                ("schema", s("string")),
                ("table", s("string")),
                ("txId", o("int64")),
                ("lsn", o("int64")),
                ("xmin", o("int64")),
                ("origin", o("string")),
                ("origin_lsn", o("int64")),
            ]);
            "io.debezium.connector.postgresql.Source"
        }
        Dialect::Mysql => {
            fields.extend([
                ("table", o("string")),
                ("server_id", s("int64")),
                ("gtid", o("string")),
                ("file", s("string")),
                ("pos", s("int64")),
                ("row", s("int32")),
                ("thread", o("int64")),
                ("query", o("string")),
            ]);
            "io.debezium.connector.mysql.Source"
        }
    };
    let fields = fields.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    Schema { version: Some(1), ..Schema::structure(name.into(), false, fields) }
}

/// A logical decoding message's record value (PostgreSQL's `MessageValue`).
pub fn message_value(dialect: Dialect) -> Schema {
    let message =
        vec![("prefix".to_string(), Schema::of("string", true)), ("content".to_string(), Schema::of("bytes", true))];
    let fields = vec![
        ("op".to_string(), Schema::of("string", false)),
        ("ts_ms".to_string(), Schema::of("int64", true)),
        ("source".to_string(), source(dialect)),
        ("transaction".to_string(), transaction_block()),
        (
            "message".to_string(),
            Schema {
                version: Some(1),
                ..Schema::structure("io.debezium.connector.postgresql.Message".into(), false, message)
            },
        ),
    ];
    Schema {
        version: Some(1),
        ..Schema::structure("io.debezium.connector.postgresql.MessageValue".into(), false, fields)
    }
}

/// A logical decoding message's record key (`{"prefix"}`).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn message_key() -> Schema {
    let fields = vec![("prefix".to_string(), Schema::of("string", true))];
    Schema {
        version: Some(1),
        ..Schema::structure("io.debezium.connector.postgresql.MessageKey".into(), false, fields)
    }
}

/// A transaction record's key (`{"id"}`, the transaction topic).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn transaction_key() -> Schema {
    let fields = vec![("id".to_string(), Schema::of("string", false))];
    Schema {
        version: Some(1),
        ..Schema::structure("io.debezium.connector.common.TransactionMetadataKey".into(), false, fields)
    }
}

/// A transaction record's value (BEGIN/END, the transaction topic).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn transaction_value() -> Schema {
    let collection = vec![
        ("data_collection".to_string(), Schema::of("string", false)),
        ("event_count".to_string(), Schema::of("int64", false)),
    ];
    let collection = Schema { version: Some(1), ..Schema::structure("event.collection".into(), true, collection) };
    let fields = vec![
        ("status".to_string(), Schema::of("string", false)),
        ("id".to_string(), Schema::of("string", false)),
        ("event_count".to_string(), Schema::of("int64", true)),
        ("data_collections".to_string(), Schema { items: Some(Box::new(collection)), ..Schema::of("array", true) }),
        ("ts_ms".to_string(), Schema::of("int64", false)),
    ];
    Schema {
        version: Some(1),
        ..Schema::structure("io.debezium.connector.common.TransactionMetadataValue".into(), false, fields)
    }
}

/// The `transaction` block's struct (`event.block`).
fn transaction_block() -> Schema {
    let fields = vec![
        ("id".to_string(), Schema::of("string", false)),
        ("total_order".to_string(), Schema::of("int64", false)),
        ("data_collection_order".to_string(), Schema::of("int64", false)),
    ];
    Schema { version: Some(1), ..Schema::structure("event.block".into(), true, fields) }
}

/// Rendered record prefixes ([`Schema::record_prefix`]) per table, rebuilt
/// when the table's schema version changes.
#[derive(Default)]
pub struct SchemaCache {
    tables: HashMap<TableId, (u32, Box<[u8]>)>,
}

impl SchemaCache {
    /// The prefix for `table`, built by `build` the first time a version is seen.
    pub fn get(&mut self, table: &TableSchema, build: impl FnOnce() -> Schema) -> &[u8] {
        if self.tables.get(&table.id).is_none_or(|(version, _)| *version != table.version) {
            self.tables.insert(table.id.clone(), (table.version, build().record_prefix().into()));
        }
        &self.tables[&table.id].1
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
