//! Rendering tests that need no decoder: TOAST placeholders, MySQL values
//! (reference values from debezium-ref mariadb, `tests/golden/mysql_types.sql`),
//! JSON string escapes and Java's float layout. PostgreSQL text → value →
//! JSON goldens are in the root crate's `tests/debezium_values.rs`, where
//! the decoders are visible.

use super::*;

fn col(ty: ColumnType) -> ColumnSchema {
    ColumnSchema {
        name: "c".into(),
        ty,
        type_name: String::new(),
        type_id: 0,
        type_modifier: -1,
        nullable: true,
        key: false,
    }
}

fn render(v: Value, ty: ColumnType) -> String {
    let mut out = Vec::new();
    write_debezium_value(&mut out, &v, &col(ty), &ValueStyle::default());
    String::from_utf8(out).unwrap()
}

#[test]
fn unchanged_toast_values_render_like_debezium() {
    let p = "__debezium_unavailable_value";
    let bytes = p.bytes().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
    let arr = |t| ColumnType::Array(Box::new(t));
    let text = ColumnType::Text { max_chars: None };
    let cases = [
        (text.clone(), format!("\"{p}\"")),
        (ColumnType::Json, format!("\"{p}\"")),
        (ColumnType::Bytes, "\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"".to_owned()),
        (arr(ColumnType::Int { bits: 32, signed: true }), format!("[{bytes}]")),
        (arr(ColumnType::Int { bits: 64, signed: true }), format!("[{bytes}]")),
        (arr(ColumnType::Date), format!("[{bytes}]")),
        (arr(text), format!("[\"{p}\"]")),
        (arr(ColumnType::Bytes), "[\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"]".to_owned()),
        (arr(ColumnType::Float64), format!("[\"{p}\"]")), // * Debezium: null
    ];
    for (ty, want) in cases {
        let name = format!("{ty:?}");
        assert_eq!(render(Value::Unchanged, ty), want, "{name}");
    }
}

#[test]
fn json_strings_escape_like_jackson() {
    let mut out = Vec::new();
    write_json_str(&mut out, "q\" b\\ t\t n\n r\r bell\u{7} del\u{7f} é 😀 \u{2028}");
    assert_eq!(String::from_utf8(out).unwrap(), "\"q\\\" b\\\\ t\\t n\\n r\\r bell\\u0007 del\u{7f} é 😀 \u{2028}\"");
}

#[test]
fn java_float_layout() {
    for (x, want) in [
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (123.0, "123.0"),
        (1.25e-5, "1.25E-5"),
    ] {
        let mut out = Vec::new();
        write_java_float(&mut out, x, false);
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

#[test]
fn mysql_values_render_like_debezium() {
    // Reference values from debezium-ref mariadb (tests/golden/mysql_types.sql).
    let duration = |p| ColumnType::Duration { precision: Some(p) };
    let datetime = |p| ColumnType::Timestamp { precision: Some(p) };
    let timestamp = |p| ColumnType::TimestampTz { precision: Some(p) };
    assert_eq!(render(Value::Time(-3_020_399_000_000), duration(0)), "-3020399000000");
    assert_eq!(render(Value::Time(45_296_789_000), duration(3)), "45296789000");
    assert_eq!(render(Value::Timestamp(1_704_164_645_123_000), datetime(3)), "1704164645123");
    assert_eq!(render(Value::Timestamp(-1), datetime(6)), "-1");
    assert_eq!(render(Value::TimestampTz(1_704_164_645_120_000), timestamp(3)), "\"2024-01-02T03:04:05.120Z\"");
    assert_eq!(render(Value::TimestampTz(1_704_164_645_000_000), timestamp(0)), "\"2024-01-02T03:04:05Z\"");
    let point = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64];
    assert_eq!(
        render(Value::Bytes(point.to_vec()), ColumnType::Geometry),
        r#"{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null}"#
    );
    let bits = |n| ColumnType::Bits { length: Some(n), varying: false };
    assert_eq!(render(Value::Bits("101010101010".into()), bits(12)), "\"qgo=\"");
    assert_eq!(render(Value::Bits("1".into()), ColumnType::Bool), "true");
    assert_eq!(render(Value::UInt(u64::MAX), ColumnType::Int { bits: 64, signed: false }), "18446744073709551615");
    assert_eq!(render(Value::Decimal("-1.50".into()), ColumnType::Decimal(Some((5, 2)))), "\"-1.50\"");
}

fn render_with(v: Value, ty: ColumnType, modes: ValueModes) -> String {
    let mut out = Vec::new();
    write_debezium_value(&mut out, &v, &col(ty), &ValueStyle { modes, ..ValueStyle::default() });
    String::from_utf8(out).unwrap()
}

/// Reference values from debezium-ref (`tests/golden/pg_types.modes_*.json`,
/// `mysql_types.modes_*.json`).
#[test]
fn converter_modes_render_like_debezium() {
    let precise = ValueModes { decimal: DecimalMode::Precise, ..ValueModes::default() };
    let dec = |s: &str| Value::Decimal(s.into());
    assert_eq!(render_with(dec("12.50"), ColumnType::Decimal(None), precise), r#"{"scale":1,"value":"fQ=="}"#);
    assert_eq!(render_with(dec("2"), ColumnType::Decimal(None), precise), r#"{"scale":0,"value":"Ag=="}"#);
    assert_eq!(render_with(dec("0.0"), ColumnType::Decimal(None), precise), r#"{"scale":0,"value":"AA=="}"#);
    assert_eq!(
        render_with(dec("-0.000000000000000000001"), ColumnType::Decimal(None), precise),
        r#"{"scale":21,"value":"/w=="}"#
    );
    assert_eq!(render_with(dec("NaN"), ColumnType::Decimal(None), precise), "null");
    assert_eq!(render_with(dec("3.140"), ColumnType::Decimal(Some((10, 3))), precise), r#""DEQ=""#);
    assert_eq!(render_with(dec("-1234567.891"), ColumnType::Decimal(Some((10, 3))), precise), r#""tmn9LQ==""#);
    assert_eq!(
        render_with(dec("-12345678901234567890.0123456789"), ColumnType::Decimal(Some((30, 10))), precise),
        r#""/nEW8Ak8jB8R8/sq6w==""#
    );
    let double = ValueModes { decimal: DecimalMode::Double, ..ValueModes::default() };
    assert_eq!(render_with(dec("99999"), ColumnType::Decimal(Some((5, 0))), double), "99999.0");
    assert_eq!(render_with(dec("-Infinity"), ColumnType::Decimal(None), double), r#""-Infinity""#);

    let bytes = Value::Bytes(vec![1, 2, 0xfe, 0xff]);
    let hex = ValueModes { binary: BinaryMode::Hex, ..ValueModes::default() };
    let url = ValueModes { binary: BinaryMode::Base64UrlSafe, ..ValueModes::default() };
    assert_eq!(render_with(bytes.clone(), ColumnType::Bytes, hex), r#""0102feff""#);
    assert_eq!(render_with(bytes, ColumnType::Bytes, url), r#""AQL-_w==""#);

    let string = ValueModes { interval: IntervalMode::String, ..ValueModes::default() };
    let iv = |months, days, micros| Value::Interval { months, days, micros };
    assert_eq!(render_with(iv(14, 3, 14_706_789_000), ColumnType::Interval, string), r#""P1Y2M3DT4H5M6.789S""#);
    assert_eq!(
        render_with(iv(-14, 3, -14_706_000_007), ColumnType::Interval, string),
        r#""P-1Y-2M3DT-4H-5M-6.000007S""#
    );
    assert_eq!(render_with(iv(0, 0, -1_000_000), ColumnType::Interval, string), r#""P0Y0M0DT0H0M-1S""#);

    let connect = ValueModes { time: TimeMode::Connect, ..ValueModes::default() };
    let duration = ColumnType::Duration { precision: Some(3) };
    assert_eq!(render_with(Value::Time(45_296_789_000), duration.clone(), connect), "45296789");
    assert_eq!(render_with(Value::Time(-3_723_000_004), duration, connect), "null", "outside a day");
    let micros = ValueModes { time: TimeMode::AdaptiveTimeMicroseconds, ..ValueModes::default() };
    assert_eq!(
        render_with(Value::Time(36_672_345_000), ColumnType::Time { precision: Some(3) }, micros),
        "36672345000"
    );

    let u64max = Value::UInt(u64::MAX);
    let big = ColumnType::Int { bits: 64, signed: false };
    let long = ValueModes { unsigned: UnsignedMode::Long, ..ValueModes::default() };
    let exact = ValueModes { unsigned: UnsignedMode::Precise, ..ValueModes::default() };
    assert_eq!(render_with(u64max.clone(), big.clone(), long), "-1");
    assert_eq!(render_with(u64max.clone(), big.clone(), exact), r#""AP//////////""#);
    assert_eq!(render_with(u64max, big, ValueModes::default()), "18446744073709551615");
}

/// A NOT NULL column the source did not send (a PostgreSQL delete's old
/// row under `REPLICA IDENTITY DEFAULT`): Debezium 3.6.3's fallbacks, as
/// debezium-ref printed them for `DELETE` on a table of NOT NULL columns:
/// `{"c_text": "", "c_int": 0, "c_bool": false, "c_num": "0.00", "c_numu":
/// "0", "c_f8": 0.0, "c_date": 0, "c_ts": 0, "c_tstz":
/// "1970-01-01T00:00:00Z", "c_uuid": "", "c_bytea": "", "c_jsonb": "",
/// "c_arr": [], "c_time": 0}`. A nullable column stays null.
#[test]
fn not_null_columns_without_a_value_render_debeziums_fallback() {
    let not_null = |ty: ColumnType| {
        let mut out = Vec::new();
        let c = ColumnSchema { nullable: false, ..col(ty) };
        write_debezium_value(&mut out, &Value::Null, &c, &ValueStyle::default());
        String::from_utf8(out).unwrap()
    };
    assert_eq!(not_null(ColumnType::Text { max_chars: None }), r#""""#);
    assert_eq!(not_null(ColumnType::Int { bits: 32, signed: true }), "0");
    assert_eq!(not_null(ColumnType::Bool), "false");
    assert_eq!(not_null(ColumnType::Decimal(Some((10, 2)))), r#""0.00""#);
    assert_eq!(not_null(ColumnType::Decimal(None)), r#""0""#);
    assert_eq!(not_null(ColumnType::Float64), "0.0");
    assert_eq!(not_null(ColumnType::Date), "0");
    assert_eq!(not_null(ColumnType::Timestamp { precision: None }), "0");
    assert_eq!(not_null(ColumnType::TimestampTz { precision: None }), r#""1970-01-01T00:00:00Z""#);
    assert_eq!(not_null(ColumnType::Uuid), r#""""#);
    assert_eq!(not_null(ColumnType::Bytes), r#""""#);
    assert_eq!(not_null(ColumnType::Json), r#""""#);
    assert_eq!(not_null(ColumnType::Array(Box::new(ColumnType::Int { bits: 32, signed: true }))), "[]");
    assert_eq!(not_null(ColumnType::Time { precision: None }), "0");
    assert_eq!(render(Value::Null, ColumnType::Int { bits: 32, signed: true }), "null", "nullable stays null");
}
