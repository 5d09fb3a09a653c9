//! The Connect → Avro schema mapping (AvroData's shapes) and the payload
//! transcoder, read back with apache-avro's own decoder.

use apache_avro::types::Value as Avro;
use outflow_model::{ColumnSchema, ColumnType, Dialect, TableId, TableSchema};
use serde_json::{json, Value};

use super::*;
use crate::format::schema;
use crate::format::values::{DecimalMode, TimeMode, ValueModes};

fn col(name: &str, ty: ColumnType, nullable: bool, key: bool) -> ColumnSchema {
    ColumnSchema { name: name.into(), ty, type_name: String::new(), type_id: 0, type_modifier: -1, nullable, key }
}

fn orders() -> TableSchema {
    TableSchema {
        id: TableId::new("public", "orders"),
        version: 1,
        columns: vec![
            col("id", ColumnType::Int { bits: 32, signed: true }, false, true),
            col("qty", ColumnType::Int { bits: 16, signed: true }, true, false),
            col("price", ColumnType::Decimal(Some((10, 2))), true, false),
            col("placed", ColumnType::Date, true, false),
            col("at", ColumnType::Timestamp { precision: Some(6) }, true, false),
            col("note", ColumnType::Text { max_chars: None }, true, false),
        ],
    }
}

fn precise() -> ValueModes {
    ValueModes { decimal: DecimalMode::Precise, ..ValueModes::default() }
}

fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["fields"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn envelopes_are_records_named_like_avrodata_names_them() {
    let env = schema::envelope(&orders(), "my-app.public.orders", Dialect::Postgres, &precise());
    let avro = avro_schema(&env);
    assert_eq!(avro["type"], "record");
    assert_eq!(avro["name"], "Envelope");
    assert_eq!(avro["namespace"], "my_app.public.orders", "invalid name characters become _");
    assert_eq!(avro["connect.name"], "my-app.public.orders.Envelope", "connect.name keeps the Connect name");
    assert_eq!(avro["connect.version"], 2);

    let before = field(&avro, "before");
    assert_eq!(before["default"], Value::Null);
    assert_eq!(before["type"][0], "null");
    let value = &before["type"][1];
    assert_eq!((&value["name"], &value["namespace"]), (&json!("Value"), &json!("my_app.public.orders")));
    // `after` refers to the record `before` defined.
    assert_eq!(field(&avro, "after")["type"], json!(["null", "my_app.public.orders.Value"]));

    assert_eq!(field(value, "id")["type"], "int");
    assert!(field(value, "id").get("default").is_none(), "required fields have no default");
    assert_eq!(field(value, "qty")["type"], json!(["null", {"type": "int", "connect.type": "int16"}]));
    assert_eq!(
        field(value, "price")["type"][1],
        json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2, "connect.version": 1,
               "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
               "connect.name": "org.apache.kafka.connect.data.Decimal"})
    );
    assert_eq!(
        field(value, "placed")["type"][1],
        json!({"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"})
    );
    assert_eq!(
        field(value, "at")["type"][1],
        json!({"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"})
    );

    let source = &field(&avro, "source")["type"];
    assert_eq!((&source["name"], &source["namespace"]), (&json!("Source"), &json!("io.debezium.connector.postgresql")));
    let snapshot = field(source, "snapshot");
    assert_eq!(snapshot["default"], "false", "a field with a default puts its type first");
    assert_eq!(snapshot["type"][1], "null");
    assert_eq!(snapshot["type"][0]["connect.default"], "false");
    assert_eq!(snapshot["type"][0]["connect.name"], "io.debezium.data.Enum");
    assert_eq!(field(&avro, "op")["type"], "string");
    assert_eq!(field(&avro, "ts_ms")["type"], json!(["null", "long"]));
}

#[test]
fn connect_logical_types_get_avro_logical_types() {
    let modes = ValueModes { time: TimeMode::Connect, decimal: DecimalMode::Precise, ..ValueModes::default() };
    let table = TableSchema {
        id: TableId::new("s", "t"),
        version: 1,
        columns: vec![
            col("d", ColumnType::Date, false, true),
            col("t", ColumnType::Time { precision: Some(3) }, false, false),
            col("ts", ColumnType::Timestamp { precision: Some(3) }, false, false),
            col("money", ColumnType::Decimal(None), false, false),
        ],
    };
    let mut money = table.clone();
    money.columns[3].type_name = "money".into();
    let avro = avro_schema(&schema::key(&money, "p.s.t", Some(&[0, 1, 2, 3]), None, &modes));
    assert_eq!(avro["name"], "Key");
    let logical = |f: &str| field(&avro, f)["type"]["logicalType"].clone();
    assert_eq!(logical("d"), "date");
    assert_eq!(logical("t"), "time-millis");
    assert_eq!(logical("ts"), "timestamp-millis");
    assert_eq!(field(&avro, "money")["type"]["precision"], 64, "AvroData's default precision");
    assert_eq!(field(&avro, "money")["type"]["scale"], 2);
}

#[test]
fn every_fixed_and_table_schema_parses_as_avro() {
    let table = orders();
    let schemas = [
        schema::envelope(&table, "p.public.orders", Dialect::Postgres, &precise()),
        schema::envelope(&table, "p.public.orders", Dialect::Mysql, &ValueModes::default()),
        schema::key(&table, "p.public.orders", None, Some("__dbz__physicalTableIdentifier"), &precise()),
        schema::message_key(),
        schema::message_value(Dialect::Postgres),
        schema::transaction_key(),
        schema::transaction_value(),
    ];
    for s in &schemas {
        AvroSchema::of(s).unwrap_or_else(|e| panic!("{e}: {}", avro_schema(s)));
    }
}

#[test]
fn payloads_transcode_to_what_an_avro_reader_reads_back() {
    let env = schema::envelope(&orders(), "p.public.orders", Dialect::Postgres, &precise());
    let avro = AvroSchema::of(&env).unwrap();
    // 12345.67 as Connect's Decimal: the unscaled value's big-endian two's complement.
    let unscaled = 1_234_567i64.to_be_bytes();
    let price = base64::engine::general_purpose::STANDARD.encode(&unscaled[5..]);
    let payload = json!({
        "before": null,
        "after": {"id": 7, "qty": null, "price": price, "placed": 19000, "at": 1_700_000_000_000_000i64, "note": "hé"},
        "source": {"version": "3.6.3", "connector": "postgresql", "name": "p", "ts_ms": 1, "snapshot": "false",
                   "db": "app", "sequence": null, "ts_us": 1000, "ts_ns": 1_000_000, "schema": "public",
                   "table": "orders", "txId": 5, "lsn": 99, "xmin": null, "origin": null, "origin_lsn": null},
        "transaction": null,
        "op": "c",
        "ts_ms": 2, "ts_us": 2000, "ts_ns": 2_000_000
    });
    let mut out = Vec::new();
    wire_header(&mut out, 42);
    encode(&env, payload.to_string().as_bytes(), &mut out).unwrap();
    assert_eq!(&out[..5], &[0, 0, 0, 0, 42]);
    let read = apache_avro::from_avro_datum(&avro.parsed, &mut &out[5..], None).unwrap();
    let Avro::Record(fields) = read else { panic!("not a record: {read:?}") };
    let get = |fields: &[(String, Avro)], n: &str| fields.iter().find(|(f, _)| f == n).unwrap().1.clone();
    assert_eq!(get(&fields, "before"), Avro::Union(0, Box::new(Avro::Null)));
    assert_eq!(get(&fields, "op"), Avro::String("c".into()));
    let Avro::Union(1, after) = get(&fields, "after") else { panic!("after is set") };
    let Avro::Record(row) = *after else { panic!("after is a record") };
    assert_eq!(get(&row, "id"), Avro::Int(7));
    assert_eq!(get(&row, "qty"), Avro::Union(0, Box::new(Avro::Null)));
    assert_eq!(get(&row, "price"), Avro::Union(1, Box::new(Avro::Decimal(apache_avro::Decimal::from(&unscaled[5..])))));
    assert_eq!(get(&row, "placed"), Avro::Union(1, Box::new(Avro::Int(19000))));
    assert_eq!(get(&row, "note"), Avro::Union(1, Box::new(Avro::String("hé".into()))));
    let Avro::Union(0, source) = get(&fields, "source") else {
        let Avro::Record(source) = get(&fields, "source") else { panic!("source is a record") };
        assert_eq!(get(&source, "snapshot"), Avro::Union(0, Box::new(Avro::String("false".into()))));
        return;
    };
    panic!("source is required, got a union: {source:?}");
}

#[test]
fn a_payload_that_does_not_fit_its_schema_is_an_error_naming_the_field() {
    let env = schema::envelope(&orders(), "p.public.orders", Dialect::Postgres, &precise());
    let payload = json!({"after": {"id": "seven"}, "source": {}, "op": "c"});
    let err = encode(&env, payload.to_string().as_bytes(), &mut Vec::new()).unwrap_err();
    assert!(err.contains("\"id\""), "{err}");
    let payload = json!({"after": {"id": 1}, "source": null, "op": "c"});
    let err = encode(&env, payload.to_string().as_bytes(), &mut Vec::new()).unwrap_err();
    assert!(err.contains("\"source\""), "{err}");
}

#[test]
fn a_required_column_the_source_did_not_send_is_its_types_zero_as_in_debezium() {
    let env = schema::envelope(&orders(), "p.public.orders", Dialect::Postgres, &precise());
    let avro = AvroSchema::of(&env).unwrap();
    let mut table = orders();
    table.columns[1].nullable = false; // qty NOT NULL
    let env = schema::envelope(&table, "p.public.orders", Dialect::Postgres, &precise());
    let avro2 = AvroSchema::of(&env).unwrap();
    assert_ne!(avro.text, avro2.text);
    let source = json!({"version": "v", "connector": "postgresql", "name": "p", "ts_ms": 1, "db": "d",
                        "schema": "public", "table": "orders"});
    let payload = json!({"before": {"id": 1, "qty": null}, "after": null, "source": source, "op": "d"});
    let mut out = Vec::new();
    encode(&env, payload.to_string().as_bytes(), &mut out).unwrap();
    let Avro::Record(fields) = apache_avro::from_avro_datum(&avro2.parsed, &mut &out[..], None).unwrap() else {
        panic!("not a record")
    };
    let Avro::Union(1, before) = &fields[0].1 else { panic!("before is set: {:?}", fields[0]) };
    let Avro::Record(row) = &**before else { panic!("before is a record") };
    assert_eq!(row[1], ("qty".to_string(), Avro::Int(0)));
}

#[test]
fn arrays_floats_and_negative_numbers_read_back() {
    let table = TableSchema {
        id: TableId::new("s", "t"),
        version: 1,
        columns: vec![
            col("id", ColumnType::Int { bits: 64, signed: true }, false, true),
            col("xs", ColumnType::Array(Box::new(ColumnType::Int { bits: 32, signed: true })), true, false),
            col("f", ColumnType::Float64, false, false),
            col("g", ColumnType::Float32, true, false),
            col("b", ColumnType::Bool, false, false),
        ],
    };
    let key = schema::key(&table, "p.s.t", Some(&[0, 1, 2, 3, 4]), None, &precise());
    let avro = AvroSchema::of(&key).unwrap();
    let rows = [
        json!({"id": -1_234_567_890_123i64, "xs": [1, -2, null, 300000], "f": "NaN", "g": 1.5, "b": true}),
        json!({"id": i64::MIN, "xs": [], "f": -2.0, "g": null, "b": false}),
        json!({"id": 0, "xs": null, "f": 1.0e300, "g": "-Infinity", "b": true}),
    ];
    for row in rows {
        let mut out = Vec::new();
        encode(&key, row.to_string().as_bytes(), &mut out).unwrap();
        let read = apache_avro::from_avro_datum(&avro.parsed, &mut &out[..], None).unwrap();
        let Avro::Record(fields) = read else { panic!("not a record") };
        let opt = |v: Avro| Avro::Union(1, Box::new(v));
        assert_eq!(fields[0].1, Avro::Long(row["id"].as_i64().unwrap()));
        match row["xs"].as_array() {
            None => assert_eq!(fields[1].1, Avro::Union(0, Box::new(Avro::Null))),
            Some(xs) => {
                let items = xs
                    .iter()
                    .map(|x| x.as_i64().map_or(Avro::Union(0, Box::new(Avro::Null)), |i| opt(Avro::Int(i as i32))))
                    .collect();
                assert_eq!(fields[1].1, opt(Avro::Array(items)));
            }
        }
        let Avro::Double(f) = fields[2].1 else { panic!("f is a double") };
        assert!(f.is_nan() || Some(f) == row["f"].as_f64(), "{f}");
        assert_eq!(fields[4].1, Avro::Boolean(row["b"].as_bool().unwrap()));
    }
}
