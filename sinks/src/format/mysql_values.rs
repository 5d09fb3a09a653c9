//! Column values of MySQL/MariaDB tables the way Debezium 3.x's MySQL
//! connector renders them (JSON converter, `schemas.enable=false`,
//! `decimal.handling.mode=string`, `time.precision.mode=adaptive_time_microseconds`).
//! Where it agrees with the PostgreSQL connector the shared renderer is used.
//!
//! Checked against the real connector (`/work/shared/tools/debezium-ref/mariadb`,
//! see `tests/golden/mysql_types.sql`):
//! - TIME → microseconds whatever its precision (negative and > 24 h kept);
//!   DATETIME(0-3) → epoch millis, DATETIME(4-6) → epoch micros; DATE → days;
//!   TIMESTAMP(n) → `2024-01-02T03:04:05.120Z` with n fraction digits.
//! - GEOMETRY → `{"wkb": base64 of the WKB, "srid": n}`, srid null when 0.
//! - BIT(1) → boolean, BIT(n) → base64 of the little-endian bytes; ENUM/SET →
//!   label text; YEAR → number.
//! - Deliberate difference: BIGINT UNSIGNED is the exact integer (Debezium's
//!   precise mode emits base64 bytes without a schema to read them by).

use outflow_model::{ColumnSchema, Value};

use super::values::{write_debezium_value, ValueStyle};

/// Appends the Debezium MySQL-connector JSON for `v` to `out`.
pub fn write_mysql_value(out: &mut Vec<u8>, v: &Value, col: &ColumnSchema, style: &ValueStyle) {
    match v {
        Value::Time(us) => out.extend_from_slice(itoa::Buffer::new().format(*us).as_bytes()),
        Value::Bytes(b) if col.type_name == "geometry" && b.len() >= 4 => {
            use base64::Engine as _;
            let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            out.extend_from_slice(b"{\"wkb\":\"");
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&b[4..]).as_bytes());
            out.extend_from_slice(b"\",\"srid\":");
            if srid == 0 {
                out.extend_from_slice(b"null");
            } else {
                out.extend_from_slice(itoa::Buffer::new().format(srid).as_bytes());
            }
            out.push(b'}');
        }
        _ => write_debezium_value(out, v, col, style),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(type_name: &str, modifier: i32) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            type_name: type_name.into(),
            type_id: 0,
            type_modifier: modifier,
            nullable: true,
            key: false,
        }
    }

    fn render(v: Value, c: &ColumnSchema) -> String {
        let mut out = Vec::new();
        write_mysql_value(&mut out, &v, c, &ValueStyle::default());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_like_debeziums_mysql_connector() {
        // Reference values from debezium-ref mariadb (tests/golden/mysql_types.sql).
        assert_eq!(render(Value::Time(-3_020_399_000_000), &col("time", 0)), "-3020399000000");
        assert_eq!(render(Value::Time(45_296_789_000), &col("time", 3)), "45296789000");
        assert_eq!(render(Value::Timestamp(1_704_164_645_123_000), &col("datetime", 3)), "1704164645123");
        assert_eq!(render(Value::Timestamp(-1), &col("datetime", 6)), "-1");
        assert_eq!(
            render(Value::TimestampTz(1_704_164_645_120_000), &col("timestamp", 3)),
            "\"2024-01-02T03:04:05.120Z\""
        );
        assert_eq!(render(Value::TimestampTz(1_704_164_645_000_000), &col("timestamp", 0)), "\"2024-01-02T03:04:05Z\"");
        let point = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64];
        assert_eq!(
            render(Value::Bytes(point.to_vec()), &col("geometry", -1)),
            r#"{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null}"#
        );
        assert_eq!(render(Value::Bits("101010101010".into()), &col("bit", 12)), "\"qgo=\"");
        assert_eq!(render(Value::Bits("1".into()), &col("bit", 1)), "true");
        assert_eq!(render(Value::UInt(u64::MAX), &col("bigint unsigned", -1)), "18446744073709551615");
        assert_eq!(render(Value::Decimal("-1.50".into()), &col("decimal", 5)), "\"-1.50\"");
    }
}
