//! PostgreSQL text output (captured from a PostgreSQL 15 server with the
//! replication session settings) → the decoders' `parse_text` and logical
//! column type → the sinks' `write_debezium_value`, compared with what
//! Debezium 3.6.3 emitted for the same values (see `tests/golden/README.md`);
//! `*` marks a deliberate difference. Plain unit tests across the two
//! crates: no servers.

use outflow_decoders::pg_type_registry::{column_type, PgType};
use outflow_decoders::pgtypes::parse_text;
use outflow_model::{ColumnSchema, Value};
use outflow_sinks::format::values::{write_debezium_value, write_flat_value, ValueStyle};

/// A column of type `ty` with modifier `typmod`, typed as the PostgreSQL
/// source types it.
fn col(ty: &PgType, type_name: &str, typmod: i32) -> ColumnSchema {
    ColumnSchema {
        name: "c".into(),
        ty: column_type(ty, typmod),
        type_name: type_name.into(),
        type_id: 0,
        type_modifier: typmod,
        nullable: true,
        key: false,
    }
}

fn b(oid: u32) -> PgType {
    PgType::Builtin(oid)
}

fn arr(t: PgType) -> PgType {
    PgType::Array(Box::new(t))
}

fn dbz(ty: &PgType, type_name: &str, typmod: i32, text: &str) -> String {
    let v = parse_text(ty, text).unwrap_or_else(|e| panic!("{type_name} {text:?}: {e}"));
    let mut out = Vec::new();
    write_debezium_value(&mut out, &v, &col(ty, type_name, typmod), &ValueStyle::default());
    String::from_utf8(out).unwrap()
}

fn flat_of(v: &Value, ty: &PgType, type_name: &str) -> String {
    let mut out = Vec::new();
    write_flat_value(&mut out, v, &col(ty, type_name, -1), &ValueStyle::default());
    String::from_utf8(out).unwrap()
}

#[test]
fn pg_text_renders_like_debezium() {
    let cases: &[(PgType, &str, i32, &str, &str)] = &[
        (b(21), "int2", -1, "-32768", "-32768"),
        (b(23), "int4", -1, "345678", "345678"),
        (b(20), "int8", -1, "-9223372036854775808", "-9223372036854775808"),
        (b(26), "oid", -1, "4294967295", "4294967295"),
        (b(1700), "numeric", -1, "12.50", r#""12.50""#),
        (
            b(1700),
            "numeric",
            -1,
            "-12345678901234567890123456789012345678901234567890.000123456789012345678901234567890",
            r#""-12345678901234567890123456789012345678901234567890.000123456789012345678901234567890""#,
        ),
        (b(1700), "numeric", -1, "NaN", r#""NAN""#),
        (b(1700), "numeric", -1, "Infinity", r#""POSITIVE_INFINITY""#),
        (b(1700), "numeric", -1, "-Infinity", r#""NEGATIVE_INFINITY""#),
        (b(700), "float4", -1, "0.1", "0.1"),
        (b(700), "float4", -1, "1.5", "1.5"),
        (b(700), "float4", -1, "Infinity", r#""Infinity""#),
        (b(701), "float8", -1, "-0", "-0.0"),
        (b(701), "float8", -1, "NaN", r#""NaN""#),
        (b(701), "float8", -1, "-Infinity", r#""-Infinity""#),
        (b(16), "bool", -1, "t", "true"),
        (b(1042), "bpchar", 9, "ab   ", r#""ab   ""#),
        (b(19), "name", -1, "a_name", r#""a_name""#), // * Debezium streams null
        (b(18), "char", -1, "\"", r#""\"""#),
        (b(17), "bytea", -1, "\\x0102feff", r#""AQL+/w==""#),
        (b(17), "bytea", -1, "\\x", r#""""#),
        (b(1082), "date", -1, "2024-01-02", "19724"),
        (b(1082), "date", -1, "1969-12-31", "-1"),
        (b(1082), "date", -1, "0044-03-15 BC", "-735160"),
        (b(1082), "date", -1, "5874897-12-31", "2145042905"),
        (b(1082), "date", -1, "infinity", "2147483647"), // * Debezium: int overflow garbage
        (b(1083), "time", -1, "10:11:12.345678", "36672345678"),
        (b(1083), "time", -1, "24:00:00", "86400000000"),
        (b(1083), "time", 3, "10:11:12.345", "36672345"),
        (b(1083), "time", 0, "01:02:03", "3723000"),
        (b(1266), "timetz", -1, "10:11:12.5+05:30", r#""04:41:12.5Z""#),
        (b(1266), "timetz", -1, "23:59:59.999999+14", r#""09:59:59.999999Z""#),
        (b(1266), "timetz", -1, "00:00:00-12:34", r#""12:34:00Z""#),
        (b(1266), "timetz", 2, "23:00:00.12-02", r#""01:00:00.12Z""#),
        (b(1266), "timetz", -1, "12:00:00+00", r#""12:00:00Z""#),
        (b(1114), "timestamp", -1, "2024-01-02 03:04:05.123456", "1704164645123456"),
        (b(1114), "timestamp", 3, "2024-01-02 03:04:05.123", "1704164645123"),
        (b(1114), "timestamp", 3, "1582-10-04 23:59:59.999", "-12220156800001"),
        (b(1114), "timestamp", -1, "0044-03-15 12:34:56.789012 BC", "-63517778703210988"),
        (b(1114), "timestamp", -1, "1969-12-31 23:59:59.999999", "-1"),
        (b(1114), "timestamp", -1, "infinity", "9223372036825200000"),
        (b(1114), "timestamp", -1, "-infinity", "-9223372036832400000"),
        (b(1114), "timestamp", 3, "infinity", "9223372036825200"),
        (b(1114), "timestamp", 4, "2024-01-02 03:04:05.1234", "1704164645123400"),
        (b(1184), "timestamptz", -1, "2024-01-02 03:04:05.123456+00", r#""2024-01-02T03:04:05.123456Z""#),
        (b(1184), "timestamptz", -1, "2262-04-11 22:00:00+00", r#""2262-04-11T22:00:00.000000Z""#),
        (b(1184), "timestamptz", -1, "1899-12-31 22:30:00+00", r#""1899-12-31T22:30:00.000000Z""#),
        (b(1184), "timestamptz", -1, "0001-01-01 00:00:00+00 BC", r#""0000-01-01T00:00:00.000000Z""#),
        (b(1184), "timestamptz", -1, "2024-01-02 05:34:05+05:30", r#""2024-01-02T00:04:05.000000Z""#),
        (b(1184), "timestamptz", 3, "2024-01-02 03:04:05.123+00", r#""2024-01-02T03:04:05.123Z""#),
        (b(1184), "timestamptz", -1, "infinity", r#""infinity""#),
        (b(1184), "timestamptz", -1, "-infinity", r#""-infinity""#),
        (b(1186), "interval", -1, "1 year 2 mons 3 days 04:05:06.789", "37091106789000"),
        (b(1186), "interval", -1, "-1 years -2 mons +3 days -04:05:06.000007", "-36572706000007"),
        (b(1186), "interval", -1, "-00:00:01", "-1000000"),
        (b(1186), "interval", -1, "178000000 years", "9223372036854775807"),
        (b(1186), "interval", -1, "1000 years 1 mon 00:00:00.000001", "31560229800000001"), // * Debezium: ...000 (double)
        (b(2950), "uuid", -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", r#""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#),
        (b(3802), "jsonb", -1, r#"{"k": "v\"q", "n": 1500}"#, r#""{\"k\": \"v\\\"q\", \"n\": 1500}""#),
        (PgType::Enum(Vec::new()), "mood", -1, "quote'd", r#""quote'd""#),
        (b(869), "inet", -1, "192.168.0.1/24", r#""192.168.0.1/24""#),
        (b(774), "macaddr8", -1, "08:00:2b:01:02:03:04:05", r#""08:00:2b:01:02:03:04:05""#),
        (b(790), "money", -1, "$1,234.56", r#""1234.56""#),
        (b(790), "money", -1, "-$92,233,720,368,547,758.08", r#""-92233720368547758.08""#),
        (b(790), "money", -1, "$0.00", r#""0.00""#),
        (b(1560), "bit", 1, "1", "true"),
        (b(1560), "bit", 1, "0", "false"),
        (b(1560), "bit", 8, "10100101", r#""pQ==""#),
        (b(1560), "bit", 8, "00000000", r#""""#),
        (b(1560), "bit", 16, "0000000100000010", r#""AgE=""#),
        (b(1562), "varbit", -1, "101", r#""BQ==""#),
        (b(1562), "varbit", -1, "", r#""""#),
        (
            b(1562),
            "varbit",
            -1,
            "1000000000000000000000000000000000000000000000000000000000000000000001",
            r#""AQAAAAAAAAAg""#,
        ),
        (b(142), "xml", -1, "<a x=\"1\">&amp;\n</a>", r#""<a x=\"1\">&amp;\n</a>""#),
        (PgType::Other, "int4range", -1, "[1,10)", r#""[1,10)""#),
        (arr(b(23)), "_int4", -1, "{1,2,3}", "[1,2,3]"),
        (arr(b(23)), "_int4", -1, "{}", "[]"),
        (arr(b(23)), "_int4", -1, "{{1,2},{3,4}}", "[[1,2],[3,4]]"), // * Debezium: [null,null]
        (arr(b(23)), "_int4", -1, "[0:1][1:2]={{1,NULL},{3,4}}", "[[1,null],[3,4]]"), // *
        (
            arr(b(25)),
            "_text",
            -1,
            r#"{"a,b","c\"d","e\\f",NULL,"NULL","",x y,"{}"}"#,
            r#"["a,b","c\"d","e\\f",null,"NULL","","x y","{}"]"#,
        ),
        (
            arr(b(1700)),
            "_numeric",
            -1,
            "{-0.000000000000000000001,123456789012345678901234567890,NULL}",
            r#"["-0.000000000000000000001","123456789012345678901234567890",null]"#,
        ),
        (
            arr(b(1700)),
            "_numeric",
            -1,
            "{NaN,Infinity,-Infinity}",
            r#"["NAN","POSITIVE_INFINITY","NEGATIVE_INFINITY"]"#,
        ), // * Debezium: null
        (arr(b(1082)), "_date", -1, "{2024-01-02,1970-01-01}", "[19724,0]"),
        (arr(b(1082)), "_date", -1, r#"{"0001-01-01 BC",1582-10-15,9999-12-31}"#, "[-719528,-141427,2932896]"), // * Debezium drops BC
        (arr(b(1184)), "_timestamptz", -1, r#"{"2024-01-02 03:04:05+00"}"#, r#"["2024-01-02T03:04:05.000000Z"]"#),
        (arr(b(1184)), "_timestamptz", -1, "{-infinity,infinity}", r#"["-infinity","infinity"]"#), // *
        (arr(PgType::Enum(Vec::new())), "_mood", -1, r#"{"quote'd",NULL}"#, r#"["quote'd",null]"#),
        (arr(b(2950)), "_uuid", -1, "{NULL}", "[null]"),
        (arr(b(16)), "_bool", -1, "{t,NULL}", "[true,null]"),
        (arr(b(701)), "_float8", -1, "{0.1,1e+300,-1e-300}", "[0.1,1.0E300,-1.0E-300]"),
        (arr(b(701)), "_float8", -1, "{1.5,-2}", "[1.5,-2.0]"),
        (arr(b(701)), "_float8", -1, "{NaN,Infinity,-Infinity}", r#"["NaN","Infinity","-Infinity"]"#),
        (arr(b(17)), "_bytea", -1, r#"{"\\x",NULL,"\\x0a"}"#, r#"["",null,"Cg=="]"#),
        (arr(b(1083)), "_time", -1, "{01:02:03,24:00:00}", "[3723000000,86400000000]"), // * Debezium wraps 24:00 to 0
    ];
    for (ty, name, typmod, text, want) in cases {
        assert_eq!(dbz(ty, name, *typmod, text), *want, "{name}({typmod}) {text:?}");
    }
}

#[test]
fn flat_format_is_iso_8601() {
    let cases = [
        (parse_text(&b(1082), "0044-03-15 BC").unwrap(), b(1082), "date", r#""-0043-03-15""#),
        (parse_text(&b(1114), "2024-01-02 03:04:05.1").unwrap(), b(1114), "timestamp", r#""2024-01-02T03:04:05.1""#),
        (parse_text(&b(1184), "2024-01-02 03:04:05+01").unwrap(), b(1184), "timestamptz", r#""2024-01-02T02:04:05Z""#),
        (parse_text(&b(1266), "10:11:12.5+05:30").unwrap(), b(1266), "timetz", r#""10:11:12.5+05:30""#),
        (
            parse_text(&b(1186), "1 year 2 mons 3 days 04:05:06.789").unwrap(),
            b(1186),
            "interval",
            r#""P1Y2M3DT4H5M6.789S""#,
        ),
        (parse_text(&b(1186), "-1 days -00:00:01.5").unwrap(), b(1186), "interval", r#""P-1DT-1.5S""#),
        (parse_text(&b(1186), "00:00:00").unwrap(), b(1186), "interval", r#""PT0S""#),
        (parse_text(&b(1700), "NaN").unwrap(), b(1700), "numeric", r#""NaN""#),
        (parse_text(&b(701), "1e+300").unwrap(), b(701), "float8", "1e300"),
        (parse_text(&b(1082), "infinity").unwrap(), b(1082), "date", r#""infinity""#),
        (parse_text(&b(17), "\\x00ff").unwrap(), b(17), "bytea", r#""AP8=""#),
        (Value::Unchanged, b(25), "text", r#""__debezium_unavailable_value""#),
    ];
    for (v, ty, name, want) in cases {
        assert_eq!(flat_of(&v, &ty, name), want, "{v:?}");
    }
}
