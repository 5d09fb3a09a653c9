//! parse_text on text PostgreSQL 15 printed, and on malformed input.

use super::*;

fn b(oid: u32) -> PgType {
    PgType::Builtin(oid)
}

#[test]
fn scalars() {
    assert_eq!(parse_text(&b(23), "-2147483648"), Ok(Value::Int(-2147483648)));
    assert_eq!(parse_text(&b(1700), "-0.01"), Ok(Value::Decimal("-0.01".into())));
    assert_eq!(parse_text(&b(790), "-$1,234.56"), Ok(Value::Decimal("-1234.56".into())));
    assert_eq!(parse_text(&b(790), "($1.00)"), Ok(Value::Decimal("-1.00".into())));
    assert!(matches!(parse_text(&b(701), "NaN"), Ok(Value::Float64(f)) if f.is_nan()));
    assert_eq!(parse_text(&b(700), "-Infinity"), Ok(Value::Float32(f32::NEG_INFINITY)));
    assert_eq!(parse_text(&b(17), "\\x00ff"), Ok(Value::Bytes(vec![0, 255])));
    assert_eq!(parse_text(&b(17), "a\\\\b\\001\\377"), Ok(Value::Bytes(b"a\\b\x01\xff".to_vec())));
    assert_eq!(parse_text(&b(1043), "x"), Ok(Value::Text("x".into())));
    assert_eq!(parse_text(&PgType::Other, "(1,2)"), Ok(Value::Text("(1,2)".into())));
    assert_eq!(
        parse_text(&b(2950), "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
        Ok(Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()))
    );
}

#[test]
fn dates_and_times() {
    assert_eq!(parse_text(&b(1082), "0001-01-01 BC"), Ok(Value::Date(-719_528)));
    assert_eq!(parse_text(&b(1082), "-infinity"), Ok(Value::Infinity { negative: true }));
    assert_eq!(parse_text(&b(1083), "00:00:00.000001"), Ok(Value::Time(1)));
    assert_eq!(
        parse_text(&b(1266), "00:00:00-12:34:56"),
        Ok(Value::TimeTz { micros: 0, offset_secs: -(12 * 3600 + 34 * 60 + 56) })
    );
    assert_eq!(parse_text(&b(1184), "1970-01-01 01:00:00+01"), Ok(Value::TimestampTz(0)));
    assert_eq!(parse_text(&b(1114), "294276-12-31 23:59:59.999999"), Ok(Value::Timestamp(i64::MAX)));
    assert_eq!(parse_text(&b(1186), "00:00:00"), Ok(Value::Interval { months: 0, days: 0, micros: 0 }));
    assert_eq!(
        parse_text(&b(1186), "-178000000 years"),
        Ok(Value::Interval { months: -2_136_000_000, days: 0, micros: 0 })
    );
    assert_eq!(
        parse_text(&b(1186), "1 day -2562047788:00:54.775807"),
        Ok(Value::Interval { months: 0, days: 1, micros: -9_223_372_036_854_775_807 })
    );
}

#[test]
fn arrays() {
    let int4s = PgType::Array(Box::new(b(23)));
    assert_eq!(parse_text(&int4s, "[0:1]={1,NULL}"), Ok(Value::Array(vec![Value::Int(1), Value::Null])));
    assert_eq!(
        parse_text(&b(1009), r#"{"\"",\N,null}"#).unwrap(),
        Value::Array(vec![Value::Text("\"".into()), Value::Text("N".into()), Value::Null,])
    );
    assert_eq!(
        parse_text(&b(1020), "{(1,1),(0,0);(2,2),(1,1)}").unwrap(),
        Value::Array(vec![Value::Text("(1,1),(0,0)".into()), Value::Text("(2,2),(1,1)".into()),])
    );
}

#[test]
fn malformed_input_is_an_error() {
    let bad: &[(PgType, &str)] = &[
        (b(23), "2147483648"),
        (b(16), "yes"),
        (b(1700), "1e5"),
        (b(1700), "1."),
        (b(790), "$"),
        (b(17), "\\x0"),
        (b(17), "\\9"),
        (b(1082), "2023-02-29"),
        (b(1082), "0000-01-01"),
        (b(1083), "24:00:01"),
        (b(1266), "10:00:00"),
        (b(1184), "2024-01-01 00:00:00"),
        (b(1186), "3 weeks"),
        (b(1560), "102"),
        (b(1007), "{1,2"),
        (b(1007), "{{{{{{{1}}}}}}}"),
        (b(1007), "{1} x"),
        (b(1007), "[1:2]{1,2}"),
    ];
    for (ty, text) in bad {
        assert!(parse_text(ty, text).is_err(), "{ty:?} {text:?} should fail");
    }
}

#[test]
fn never_panics_on_prefixes_and_noise() {
    let types = [
        b(23),
        b(1700),
        b(790),
        b(17),
        b(1082),
        b(1083),
        b(1266),
        b(1114),
        b(1184),
        b(1186),
        b(1007),
        b(1009),
        b(1185),
    ];
    let samples = [
        "-$92,233,720,368,547,758.08",
        "0044-03-15 12:34:56.789012 BC",
        "0001-01-01 00:00:00+00 BC",
        "-1 years -2 mons +3 days -04:05:06.000007",
        r#"[0:1][1:2]={{1,NULL},{"a\"b",4}}"#,
        "23:59:59.999999+14:00:00",
        "\\x0102ÿ\\",
        "é{😀,\"",
    ];
    for s in samples {
        for (i, _) in s.char_indices() {
            for ty in &types {
                let _ = parse_text(ty, &s[..i]);
                let _ = parse_text(ty, &s[i..]);
            }
        }
    }
}
