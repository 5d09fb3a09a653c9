//! Avro records for Confluent's Schema Registry: Avro schemas derived from
//! the Kafka Connect schemas of `schema` (the same [`Schema`] values the
//! JSON converter writes), and record bodies transcoded from the JSON
//! payloads `values`/`envelope` render, guided by those schemas. No I/O:
//! registering schemas is the Kafka sink's (`kafka::registry`).
//!
//! The mapping is Confluent's `AvroData.fromConnectSchema`, as Debezium's
//! `AvroConverter` uses it (with `connect.meta.data` on, its default):
//! - a struct is a `record` named by its Connect name split at the last dot
//!   (namespace, name), with `connect.name`, `connect.version`,
//!   `connect.doc` and `doc`; a record met again (the envelope's `before`
//!   and `after`) is referred to by its full name;
//! - an optional field is the union `["null", T]` with `"default": null`;
//!   one with a default (the source block's `snapshot`) is `[T, "null"]`
//!   with that default and `connect.default`;
//! - `int8`/`int16` are `int` with `connect.type`; Connect's `Decimal` is
//!   `bytes` with `logicalType: decimal`, `precision` (the
//!   `connect.decimal.precision` parameter, else AvroData's 64) and
//!   `scale`; `Date`, `Time`, `Timestamp` are `int`/`int`/`long` with
//!   `date`/`time-millis`/`timestamp-millis`;
//! - Debezium's semantic types (`io.debezium.time.MicroTimestamp`, …) are
//!   their plain Avro type with `connect.name`, `connect.version` and
//!   `connect.parameters`.
//!
//! Difference: record names and namespace parts are made valid Avro names
//! (characters other than letters, digits and `_` become `_`, a leading
//! digit gets a `_` in front), as Debezium's `schema.name.adjustment.mode =
//! avro` does; `connect.name` keeps the Connect name unchanged. Column
//! names are not adjusted: a column that is no valid Avro name is an error
//! naming it.
//!
//! Payload surprises handled: bytes and precise decimals arrive as base64
//! strings (decoded to Avro `bytes`), float NaN and infinities as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"`; a null in a required
//! column (a value the source did not send: the non-key columns of a
//! PostgreSQL delete's old row under `REPLICA IDENTITY DEFAULT`) becomes
//! the type's zero, as Debezium's value converters write it (Avro has no
//! null for a required field; the JSON records show null there).

use std::collections::HashSet;

use base64::Engine;
use serde_json::{json, Map, Value as Json};

use super::schema::Schema;

const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
/// AvroData's precision for a `Decimal` without `connect.decimal.precision`.
const DEFAULT_PRECISION: u32 = 64;

/// The Avro schema of a Connect schema, as JSON (what the registry gets).
pub fn avro_schema(schema: &Schema) -> Json {
    node(schema, &mut HashSet::new())
}

/// A Connect schema's Avro schema: the JSON text registered, checked by
/// apache-avro's parser.
pub struct AvroSchema {
    pub text: String,
    pub parsed: apache_avro::Schema,
}

impl AvroSchema {
    pub fn of(schema: &Schema) -> Result<AvroSchema, String> {
        let text = avro_schema(schema).to_string();
        let parsed = apache_avro::Schema::parse_str(&text).map_err(|e| format!("invalid avro schema: {e}"))?;
        Ok(AvroSchema { text, parsed })
    }
}

/// The node for `s` where it is used (a field's type, an array's items, a
/// record's root), before optionality.
fn node(s: &Schema, named: &mut HashSet<String>) -> Json {
    let base = base(s, named);
    if !s.optional {
        return base;
    }
    match s.default {
        Some(_) => json!([base, "null"]),
        None => json!(["null", base]),
    }
}

fn base(s: &Schema, named: &mut HashSet<String>) -> Json {
    let mut out = Map::new();
    match s.ty {
        "struct" => {
            let full = s.name.as_deref().map_or_else(|| "io.confluent.connect.avro.ConnectDefault".into(), avro_name);
            if !named.insert(full.clone()) {
                return Json::String(full);
            }
            let (namespace, name) = match full.rsplit_once('.') {
                Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
                None => (None, full.clone()),
            };
            out.insert("type".into(), "record".into());
            out.insert("name".into(), name.into());
            if let Some(ns) = namespace {
                out.insert("namespace".into(), ns.into());
            }
            if let Some(doc) = s.doc {
                out.insert("doc".into(), doc.into());
            }
            let fields: Vec<Json> = s
                .fields
                .iter()
                .map(|(name, f)| {
                    let mut field = Map::new();
                    field.insert("name".into(), name.as_str().into());
                    field.insert("type".into(), node(f, named));
                    if f.optional || f.default.is_some() {
                        field.insert("default".into(), default_of(f));
                    }
                    Json::Object(field)
                })
                .collect();
            out.insert("fields".into(), fields.into());
        }
        "array" => {
            out.insert("type".into(), "array".into());
            let items = s.items.as_deref().map_or(Json::from("null"), |i| node(i, named));
            out.insert("items".into(), items);
        }
        ty => {
            let avro = match ty {
                "int8" | "int16" | "int32" => "int",
                "int64" => "long",
                other => other,
            };
            out.insert("type".into(), avro.into());
            if matches!(ty, "int8" | "int16") {
                out.insert("connect.type".into(), ty.into());
            }
            match s.name.as_deref() {
                Some(DECIMAL) => {
                    let param = |k: &str| s.parameters.iter().find(|(p, _)| *p == k).map(|(_, v)| v.as_str());
                    let precision = param("connect.decimal.precision").and_then(|p| p.parse().ok());
                    let scale: u32 = param("scale").and_then(|p| p.parse().ok()).unwrap_or(0);
                    out.insert("logicalType".into(), "decimal".into());
                    out.insert("precision".into(), precision.unwrap_or(DEFAULT_PRECISION).into());
                    out.insert("scale".into(), scale.into());
                }
                Some("org.apache.kafka.connect.data.Date") => {
                    out.insert("logicalType".into(), "date".into());
                }
                Some("org.apache.kafka.connect.data.Time") => {
                    out.insert("logicalType".into(), "time-millis".into());
                }
                Some("org.apache.kafka.connect.data.Timestamp") => {
                    out.insert("logicalType".into(), "timestamp-millis".into());
                }
                _ => {}
            }
        }
    }
    if let Some(doc) = s.doc {
        out.insert("connect.doc".into(), doc.into());
    }
    if let Some(v) = s.version {
        out.insert("connect.version".into(), v.into());
    }
    if !s.parameters.is_empty() {
        let params: Map<String, Json> = s.parameters.iter().map(|(k, v)| (k.to_string(), v.as_str().into())).collect();
        out.insert("connect.parameters".into(), params.into());
    }
    if let Some(d) = s.default {
        out.insert("connect.default".into(), serde_json::from_str(d).unwrap_or(Json::Null));
    }
    if let Some(name) = &s.name {
        out.insert("connect.name".into(), name.as_str().into());
    }
    if out.len() == 1 && s.ty != "struct" && s.ty != "array" {
        return out.remove("type").expect("inserted above");
    }
    Json::Object(out)
}

fn default_of(f: &Schema) -> Json {
    f.default.and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Json::Null)
}

/// A Connect name as a valid Avro full name: each dotted part's invalid
/// characters become `_`, and a part starting with a digit gets a `_`.
fn avro_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if part.is_empty() || part.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('_');
        }
        out.extend(part.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    }
    out
}

/// Appends the Avro binary body of `payload` (the record's JSON, without
/// its schema) by `schema` (its Connect schema, whose Avro form
/// [`avro_schema`] describes the bytes written).
///
/// The body is written directly (zigzag varints, length-prefixed strings
/// and bytes, union branch indexes, array blocks), walking the Connect
/// schema and the parsed JSON once: building apache-avro's `Value` and
/// encoding it (which resolves and validates the schema on every record)
/// cost more than half the sink's throughput. The unit tests read the
/// bytes back with apache-avro's decoder, the e2e tests with Confluent's.
pub fn encode(schema: &Schema, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let json: Json = serde_json::from_slice(payload).map_err(|e| format!("record is not JSON: {e}"))?;
    write(schema, &json, "", out)
}

/// `v` under the Connect schema `s` (`path` names the field in errors).
fn write(s: &Schema, v: &Json, path: &str, out: &mut Vec<u8>) -> Result<(), String> {
    if s.optional {
        // ["null", T], or [T, "null"] for a field with a default.
        let null_first = s.default.is_none();
        let branch = v.is_null() != null_first;
        long(out, i64::from(branch));
        if v.is_null() {
            return Ok(());
        }
    }
    let bad = || format!("field {path:?}: {v} is not a {}", s.ty);
    match (s.ty, v) {
        (_, Json::Null) => fallback(s, out).ok_or_else(bad)?,
        ("boolean", Json::Bool(b)) => out.push(u8::from(*b)),
        ("int8" | "int16" | "int32", Json::Number(n)) => {
            long(out, n.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(bad)?.into())
        }
        ("int64", Json::Number(n)) => long(out, n.as_i64().ok_or_else(bad)?),
        ("float", v) => out.extend_from_slice(&(float(v).ok_or_else(bad)? as f32).to_le_bytes()),
        ("double", v) => out.extend_from_slice(&float(v).ok_or_else(bad)?.to_le_bytes()),
        ("string", Json::String(t)) => {
            long(out, t.len() as i64);
            out.extend_from_slice(t.as_bytes());
        }
        ("bytes", Json::String(t)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|e| format!("field {path:?}: not base64 ({e})"))?;
            long(out, bytes.len() as i64);
            out.extend_from_slice(&bytes);
        }
        ("array", Json::Array(items)) => {
            let item = s.items.as_deref().ok_or_else(|| format!("field {path:?}: array without items"))?;
            if !items.is_empty() {
                long(out, items.len() as i64);
                for v in items {
                    write(item, v, path, out)?;
                }
            }
            long(out, 0);
        }
        ("struct", Json::Object(obj)) => {
            for (name, f) in &s.fields {
                write(f, obj.get(name).unwrap_or(&Json::Null), name, out)?;
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// What Debezium's value converters write for a required column whose
/// value the source did not send (PostgreSQL's delete under `REPLICA
/// IDENTITY DEFAULT` carries the key columns only): the type's zero,
/// `JdbcValueConverters`' `fallback`. `None` for a struct.
fn fallback(s: &Schema, out: &mut Vec<u8>) -> Option<()> {
    match s.ty {
        "boolean" | "int8" | "int16" | "int32" | "int64" | "string" | "array" => out.push(0),
        "float" => out.extend_from_slice(&[0; 4]),
        "double" => out.extend_from_slice(&[0; 8]),
        // One zero byte: the unscaled value 0.
        "bytes" if s.name.as_deref() == Some(DECIMAL) => out.extend_from_slice(&[2, 0]),
        "bytes" => out.push(0),
        _ => return None,
    }
    Some(())
}

/// Avro's `long`/`int`: zigzag, then a little-endian base-128 varint.
fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// The Confluent wire format's header: magic byte 0, then the schema id
/// (big-endian).
pub fn wire_header(out: &mut Vec<u8>, id: u32) {
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
}

#[cfg(test)]
#[path = "avro_tests.rs"]
mod tests;
