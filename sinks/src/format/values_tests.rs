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
