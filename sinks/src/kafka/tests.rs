//! Unit tests: the partitioner against Kafka's Java client, topic templates,
//! keys and transaction records.

use std::sync::Arc;

use outflow_model::{ChangeEvent, ColumnSchema, ColumnType, Op, Position, SourceInfo, TableId, TableSchema, Value};

use super::message::*;
use crate::format::routing::{write_key, NameTemplate};
use crate::format::values::ValueStyle;

/// `UtilsTest.testMurmur2` in Kafka's clients module.
#[test]
fn murmur2_matches_kafkas_java_client() {
    let cases: &[(&str, i32)] = &[
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ];
    for (input, want) in cases {
        assert_eq!(murmur2(input.as_bytes()), *want, "murmur2({input:?})");
    }
}

#[test]
fn partitions_like_the_default_partitioner() {
    // toPositive(murmur2("foobar")) % 7, computed by hand: -790332482 & 0x7fffffff = 1357151166.
    assert_eq!(partition_for(Some(b"foobar"), 7), (1357151166u32 % 7) as i32);
    assert_eq!(partition_for(Some(b"abc"), 3), (479470107u32 % 3) as i32);
    assert_eq!(partition_for(Some(b"abc"), 1), 0);
    assert_eq!(partition_for(None, 12), 0);
}

#[test]
fn topic_templates() {
    let t = NameTemplate::parse("{name}.{schema}.{table}", "topic").unwrap();
    assert_eq!(t.render("app", "db", "public", "orders", push_topic_chars), "app.public.orders");
    let t = NameTemplate::parse("cdc-{db}_{table}", "topic").unwrap();
    assert_eq!(t.render("app", "shop", "public", "order items", push_topic_chars), "cdc-shop_order_items");
    let t = NameTemplate::parse("all-changes", "topic").unwrap();
    assert_eq!(t.render("app", "db", "s", "t", push_topic_chars), "all-changes");
    assert!(NameTemplate::parse("{name}.{tabel}", "topic").unwrap_err().contains("{tabel}"));
    assert!(NameTemplate::parse("{name", "topic").is_err());
    assert!(NameTemplate::parse("name}", "topic").is_err());
    assert!(NameTemplate::parse("", "topic").is_err());
}

fn col(name: &str, type_name: &str, key: bool) -> ColumnSchema {
    let ty = match type_name {
        "int4" => ColumnType::Int { bits: 32, signed: true },
        _ => ColumnType::Text { max_chars: None },
    };
    ColumnSchema {
        name: name.into(),
        ty,
        type_name: type_name.into(),
        type_id: 0,
        type_modifier: -1,
        nullable: !key,
        key,
    }
}

fn event(op: Op, columns: Vec<ColumnSchema>, row: Vec<Value>) -> ChangeEvent {
    let table = Arc::new(TableSchema { id: TableId::new("public", "t"), version: 1, columns });
    let (before, after) = if op == Op::Delete { (Some(row), None) } else { (None, Some(row)) };
    ChangeEvent {
        op,
        table,
        before,
        after,
        source: SourceInfo::default(),
        position: Position::Pg { lsn: 100, index: 1 },
    }
}

#[test]
fn keys_are_objects_of_the_key_columns() {
    let style = ValueStyle::new("x");
    let cols = vec![col("a", "text", false), col("id", "int4", true), col("k2", "text", true)];
    let ev = event(Op::Delete, cols, vec![Value::Text("no".into()), Value::Int(7), Value::Text("b".into())]);
    let mut out = Vec::new();
    assert!(write_key(&mut out, &ev, &style));
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"id":7,"k2":"b"}"#);

    let keyless = event(Op::Create, vec![col("a", "text", false)], vec![Value::Text("x".into())]);
    let mut out = Vec::new();
    assert!(!write_key(&mut out, &keyless, &style));
    assert!(out.is_empty());
}

#[test]
fn transaction_records() {
    let id = transaction_id(Some(571), &Position::pg(53195829));
    assert_eq!(id, "571:53195829");
    assert_eq!(String::from_utf8(transaction_key(&id)).unwrap(), r#"{"id":"571:53195829"}"#);
    let begin: serde_json::Value = serde_json::from_slice(&transaction_begin(&id, 5)).unwrap();
    assert_eq!(begin["status"], "BEGIN");
    assert!(begin["event_count"].is_null());
    let end: serde_json::Value =
        serde_json::from_slice(&transaction_end(&id, 5, &[("public.a".into(), 2), ("public.b".into(), 1)])).unwrap();
    assert_eq!(end["event_count"], 3);
    assert_eq!(end["data_collections"][1]["data_collection"], "public.b");
    assert_eq!(end["data_collections"][1]["event_count"], 1);
}

/// A sink's settings from JSON (as serde reads the TOML table).
fn kafka_config(extra: serde_json::Value) -> Result<super::KafkaConfig, String> {
    let mut v = serde_json::json!({"name": "k", "brokers": "127.0.0.1:9092"});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn checked(extra: serde_json::Value) -> Result<Option<super::RegistrySettings>, String> {
    kafka_config(extra)?.check().map(|c| c.registry).map_err(|e| e.to_string())
}

#[test]
fn avro_needs_a_registry_given_once() {
    use serde_json::json;
    let settings = |url: &str, auth: Option<(&str, &str)>| super::RegistrySettings {
        url: url.into(),
        auth: auth.map(|(u, p)| (u.into(), p.into())),
        ca_file: None,
    };
    assert_eq!(checked(json!({})).unwrap(), None);
    let own = checked(json!({"format": "avro", "schema_registry": "http://r:8081",
        "schema_registry_user": "u", "schema_registry_password": "p"}));
    assert_eq!(own.unwrap(), Some(settings("http://r:8081", Some(("u", "p")))));
    let debezium = checked(json!({"debezium": {
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter.schema.registry.url": "http://r:8081",
        "value.converter.basic.auth.credentials.source": "USER_INFO",
        "value.converter.basic.auth.user.info": "u:p"}}));
    assert_eq!(debezium.unwrap(), Some(settings("http://r:8081", Some(("u", "p")))));

    let err = |extra| checked(extra).unwrap_err();
    assert!(err(json!({"format": "avro"})).contains("schema_registry"));
    assert!(err(json!({"schema_registry": "http://r:8081"})).contains("format = \"avro\""));
    assert!(err(json!({"format": "avro", "schema_registry": "r:8081"})).contains("http"));
    assert!(err(json!({"format": "avro", "schema_registry": "http://r", "schema_registry_user": "u"})).contains("both"));
    assert!(err(json!({"format": "avro", "schema_registry": "http://r", "schemas": true})).contains("JSON converter"));
    assert!(err(json!({"format": "json", "debezium": {
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter": "io.confluent.connect.avro.AvroConverter",
        "key.converter.schema.registry.url": "http://r"}}))
    .contains("AvroConverter writes Debezium records"));
    assert!(kafka_config(json!({"schema_registry_url": "http://r"})).unwrap_err().contains("unknown field"));
}
