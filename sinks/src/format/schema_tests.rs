//! The schema builder against what Debezium 3.6.3 wrote
//! (`tests/golden/*.schemas.json*`, see `tests/golden/README.md`).

use outflow_model::{ColumnSchema, ColumnType, Dialect, TableId, TableSchema};
use serde_json::Value;

use super::*;
use crate::format::debezium::{DeleteHandling, Meta, MetaField, Unwrap};

fn golden(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A golden schema node (compared as JSON values: serde_json's maps do not
/// keep key order, so [`a_postgres_envelope_is_debeziums_byte_for_byte`]
/// checks the order on Debezium's own bytes).
fn compact(v: &Value) -> Value {
    v.clone()
}

fn rendered(s: &Schema, field: Option<&str>) -> Value {
    let mut out = Vec::new();
    s.write(&mut out, field);
    serde_json::from_slice(&out).unwrap()
}

fn col(name: &str, ty: ColumnType, type_name: &str, nullable: bool) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        ty,
        type_name: type_name.into(),
        type_id: 0,
        type_modifier: -1,
        nullable,
        key: !nullable,
    }
}

fn table(schema: &str, name: &str, columns: Vec<ColumnSchema>) -> TableSchema {
    TableSchema { id: TableId::new(schema, name), version: 1, columns }
}

/// The golden field named `field` of a row struct (`before`'s) of an envelope.
fn golden_field(envelope: &Value, field: &str) -> Value {
    let fields = envelope["fields"][0]["fields"].as_array().unwrap();
    compact(fields.iter().find(|f| f["field"] == field).unwrap_or_else(|| panic!("no golden field {field}")))
}

const A: ValueModes = ValueModes {
    decimal: DecimalMode::Precise,
    binary: BinaryMode::Hex,
    time: TimeMode::Connect,
    interval: IntervalMode::String,
    unsigned: UnsignedMode::Long,
};
const B: ValueModes = ValueModes {
    decimal: DecimalMode::Double,
    binary: BinaryMode::Base64UrlSafe,
    time: TimeMode::AdaptiveTimeMicroseconds,
    interval: IntervalMode::Numeric,
    unsigned: UnsignedMode::Precise,
};

/// Debezium's schema of each PostgreSQL type under the three golden mode sets.
#[test]
fn postgres_columns_match_debezium_under_every_mode() {
    let golden: Value = serde_json::from_str(&golden("pg_types.schemas.json")).unwrap();
    let mood = || ColumnType::Enum { labels: ["sad", "ok", "happy", "quote'd"].map(String::from).to_vec() };
    let arr = |t: ColumnType| ColumnType::Array(Box::new(t));
    let columns = [
        col("c_int2", ColumnType::Int { bits: 16, signed: true }, "int2", true),
        col("c_int8", ColumnType::Int { bits: 64, signed: true }, "int8", true),
        col("c_oid", ColumnType::Int { bits: 32, signed: false }, "oid", true),
        col("c_numeric", ColumnType::Decimal(None), "numeric", true),
        col("c_numeric_ps", ColumnType::Decimal(Some((10, 3))), "numeric", true),
        col("c_float4", ColumnType::Float32, "float4", true),
        col("c_varchar", ColumnType::Text { max_chars: Some(20) }, "varchar", true),
        col("c_bytea", ColumnType::Bytes, "bytea", true),
        col("c_date", ColumnType::Date, "date", true),
        col("c_time", ColumnType::Time { precision: None }, "time", true),
        col("c_time3", ColumnType::Time { precision: Some(3) }, "time", true),
        col("c_timetz", ColumnType::TimeTz { precision: None }, "timetz", true),
        col("c_timestamp", ColumnType::Timestamp { precision: None }, "timestamp", true),
        col("c_timestamp3", ColumnType::Timestamp { precision: Some(3) }, "timestamp", true),
        col("c_timestamptz", ColumnType::TimestampTz { precision: None }, "timestamptz", true),
        col("c_interval", ColumnType::Interval, "interval", true),
        col("c_uuid", ColumnType::Uuid, "uuid", true),
        col("c_jsonb", ColumnType::Json, "jsonb", true),
        col("c_enum", mood(), "mood", true),
        col("c_money", ColumnType::Decimal(None), "money", true),
        col("c_bit1", ColumnType::Bits { length: Some(1), varying: false }, "bit", true),
        col("c_bit8", ColumnType::Bits { length: Some(8), varying: false }, "bit", true),
        col("c_varbit", ColumnType::Bits { length: None, varying: true }, "varbit", true),
        col("c_xml", ColumnType::Xml, "xml", true),
        col("c_range", ColumnType::Other, "int4range", true),
        col("c_int4_arr", arr(ColumnType::Int { bits: 32, signed: true }), "_int4", true),
        col("c_numeric_arr", arr(ColumnType::Decimal(None)), "_numeric", true),
        col("c_date_arr", arr(ColumnType::Date), "_date", true),
        col("c_enum_arr", arr(mood()), "_mood", true),
        col("c_bytea_arr", arr(ColumnType::Bytes), "_bytea", true),
    ];
    for (set, modes) in [("default", ValueModes::default()), ("modes_a", A), ("modes_b", B)] {
        for c in &columns {
            assert_eq!(rendered(&column(c, &modes), Some(&c.name)), golden_field(&golden[set], &c.name), "{set}");
        }
    }
    let id = col("id", ColumnType::Int { bits: 32, signed: true }, "int4", false);
    assert_eq!(rendered(&column(&id, &ValueModes::default()), Some("id")), golden_field(&golden["default"], "id"));
}

/// Debezium's schema of each MySQL type under the three golden mode sets.
#[test]
fn mysql_columns_match_debezium_under_every_mode() {
    let golden: Value = serde_json::from_str(&golden("mysql_types.schemas.json")).unwrap();
    let int = |bits, signed| ColumnType::Int { bits, signed };
    let columns = [
        col("ti", int(8, true), "tinyint", true),
        col("tiu", int(8, false), "tinyint unsigned", true),
        col("siu", int(16, false), "smallint unsigned", true),
        col("mi", int(24, true), "mediumint", true),
        col("iu", int(32, false), "int unsigned", true),
        col("biu", int(64, false), "bigint unsigned", true),
        col("dec1", ColumnType::Decimal(Some((30, 10))), "decimal", true),
        col("b1", ColumnType::Bool, "bit", true),
        col("b12", ColumnType::Bits { length: Some(12), varying: false }, "bit", true),
        col("e", ColumnType::Enum { labels: ["small", "medium", "large"].map(String::from).to_vec() }, "enum", true),
        col("st", ColumnType::Set { labels: ["a", "b", "c"].map(String::from).to_vec() }, "set", true),
        col("y", ColumnType::Year, "year", true),
        col("tm3", ColumnType::Duration { precision: Some(3) }, "time", true),
        col("dtm", ColumnType::Timestamp { precision: Some(0) }, "datetime", true),
        col("dtm6", ColumnType::Timestamp { precision: Some(6) }, "datetime", true),
        col("ts3", ColumnType::TimestampTz { precision: Some(3) }, "timestamp", true),
        col("bl", ColumnType::Bytes, "blob", true),
        col("js", ColumnType::Text { max_chars: None }, "text", true),
        col("g", ColumnType::Geometry, "geometry", true),
    ];
    for (set, modes) in [
        ("default", ValueModes { unsigned: UnsignedMode::Precise, ..ValueModes::default() }),
        ("modes_a", A),
        ("modes_b", B),
    ] {
        for c in &columns {
            assert_eq!(rendered(&column(c, &modes), Some(&c.name)), golden_field(&golden[set], &c.name), "{set}");
        }
    }
    let source = &golden["default"]["fields"][2];
    assert_eq!(rendered(&super::source(Dialect::Mysql), Some("source")), compact(source));
}

/// A whole PostgreSQL envelope, byte for byte, and the envelope's parts
/// that do not depend on the table.
#[test]
fn a_postgres_envelope_is_debeziums() {
    let golden: Vec<Value> =
        golden("message.pg.schemas.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let t = table(
        "public",
        "t",
        vec![
            col("id", ColumnType::Int { bits: 32, signed: true }, "int4", false),
            col("v", ColumnType::Text { max_chars: None }, "text", true),
        ],
    );
    let modes = ValueModes::default();
    assert_eq!(
        rendered(&envelope(&t, "dbz.public.t", Dialect::Postgres, &modes), None),
        compact(&golden[0]["value"]["schema"])
    );
    assert_eq!(rendered(&key(&t, "dbz.public.t", None, None, &modes), None), compact(&golden[0]["key"]["schema"]));
    assert_eq!(rendered(&message_value(Dialect::Postgres), None), compact(&golden[1]["value"]["schema"]));
    assert_eq!(rendered(&message_key(), None), compact(&golden[1]["key"]["schema"]));
}

/// Debezium's bytes of `dbz.public.t`'s envelope (`message.pg.schemas.jsonl`,
/// compacted with the key order kept): the converter's key order.
const T_ENVELOPE: &str = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"v"}],"optional":true,"name":"dbz.public.t.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"v"}],"optional":true,"name":"dbz.public.t.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"},{"type":"string","optional":true,"field":"origin"},{"type":"int64","optional":true,"field":"origin_lsn"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":"dbz.public.t.Envelope","version":2}"#;

/// Debezium's bytes of a geometry and a precise unsigned column
/// (`mysql_types.schemas.json`): `doc`, `parameters` in the converter's order.
const GEOMETRY: &str = r#"{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Geometry","version":1,"doc":"Geometry","field":"g"}"#;
const BIU: &str = r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"20"},"field":"biu"}"#;

#[test]
fn a_postgres_envelope_is_debeziums_byte_for_byte() {
    let t = table(
        "public",
        "t",
        vec![
            col("id", ColumnType::Int { bits: 32, signed: true }, "int4", false),
            col("v", ColumnType::Text { max_chars: None }, "text", true),
        ],
    );
    let modes = ValueModes::default();
    let prefix = String::from_utf8(envelope(&t, "dbz.public.t", Dialect::Postgres, &modes).record_prefix()).unwrap();
    assert_eq!(prefix, format!("{{\"schema\":{T_ENVELOPE},\"payload\":"));
    let bytes = |s: &Schema, f| {
        let mut out = Vec::new();
        s.write(&mut out, Some(f));
        String::from_utf8(out).unwrap()
    };
    let g = col("g", ColumnType::Geometry, "geometry", true);
    assert_eq!(bytes(&column(&g, &modes), "g"), GEOMETRY);
    let biu = col("biu", ColumnType::Int { bits: 64, signed: false }, "bigint unsigned", true);
    let precise = ValueModes { unsigned: UnsignedMode::Precise, ..modes };
    assert_eq!(bytes(&column(&biu, &precise), "biu"), BIU);
}

/// Keys from `message.key.columns` (nullable columns are optional), keys of
/// routed tables (the original topic field, the routed name), and the
/// unwrapped value with `__deleted` and the added source fields.
#[test]
fn keys_and_unwrapped_values_are_debeziums() {
    let golden: Vec<Value> =
        golden("unwrap_route.pg.schemas.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let record = |topic: &str| golden.iter().find(|r| r["topic"] == topic && !r["value"].is_null()).unwrap();
    let int = || ColumnType::Int { bits: 32, signed: true };
    let events = table(
        "public",
        "events",
        vec![
            col("tenant_id", int(), "int4", true),
            col("id", int(), "int4", true),
            col("body", ColumnType::Text { max_chars: None }, "text", true),
        ],
    );
    let modes = ValueModes::default();
    let events_record = record("dbz.public.events");
    assert_eq!(
        rendered(&key(&events, "dbz.public.events", Some(&[0, 1]), None, &modes), None),
        compact(&events_record["key"]["schema"])
    );
    let unwrap = Unwrap {
        deletes: DeleteHandling::Rewrite,
        fields: ["op", "table", "lsn", "source.ts_ms"]
            .iter()
            .map(|f| Meta {
                name: format!("__{}", f.replace('.', "_")),
                field: match *f {
                    "op" => MetaField::Op,
                    "source.ts_ms" => MetaField::Source("ts_ms".into()),
                    other => MetaField::Source(other.into()),
                },
            })
            .collect(),
        headers: Vec::new(),
    };
    assert_eq!(
        rendered(&unwrapped(&events, "dbz.public.events", Dialect::Postgres, &unwrap, &modes), None),
        compact(&events_record["value"]["schema"])
    );
    let shard = table(
        "public",
        "orders_shard_1",
        vec![col("id", int(), "int4", false), col("v", ColumnType::Text { max_chars: None }, "text", true)],
    );
    let routed = record("dbz.public.orders_all");
    let routed_key = key(&shard, "dbz.public.orders_all", None, Some("__dbz__physicalTableIdentifier"), &modes);
    assert_eq!(rendered(&routed_key, None), compact(&routed["key"]["schema"]));
}

#[test]
fn the_cache_renders_once_per_table_version() {
    let mut t = table("public", "t", vec![col("id", ColumnType::Int { bits: 32, signed: true }, "int4", false)]);
    let mut cache = SchemaCache::default();
    let mut builds = 0;
    let modes = ValueModes::default();
    for _ in 0..3 {
        cache.get(&t, || {
            builds += 1;
            row(&t, "a".into(), &modes)
        });
    }
    assert_eq!(builds, 1);
    t.version = 2;
    t.columns.push(col("v", ColumnType::Text { max_chars: None }, "text", true));
    let prefix = cache.get(&t, || {
        builds += 1;
        row(&t, "a".into(), &modes)
    });
    assert_eq!(builds, 2, "a new version is rendered anew");
    assert!(String::from_utf8_lossy(prefix).contains("\"field\":\"v\""));
}

/// The transaction topic's BEGIN/END records (`transaction.pg.schemas.jsonl`).
#[cfg(feature = "kafka")]
#[test]
fn transaction_records_are_debeziums() {
    let golden: Vec<Value> =
        golden("transaction.pg.schemas.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for record in &golden {
        assert_eq!(rendered(&transaction_key(), None), record["key"]["schema"]);
        assert_eq!(rendered(&transaction_value(), None), record["value"]["schema"]);
    }
    let end = golden.iter().find(|r| r["value"]["payload"]["status"] == "END").unwrap();
    let id = end["value"]["payload"]["id"].as_str().unwrap();
    let ts_ms = end["value"]["payload"]["ts_ms"].as_i64().unwrap();
    let ours = crate::kafka::message::transaction_end(id, ts_ms, &[("public.t".into(), 2)]);
    let theirs = serde_json::to_string(&end["value"]["payload"]).unwrap();
    let ours: Value = serde_json::from_slice(&ours).unwrap();
    assert_eq!(ours, serde_json::from_str::<Value>(&theirs).unwrap());
}
