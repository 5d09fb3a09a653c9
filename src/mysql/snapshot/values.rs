//! A MySQL/MariaDB table's columns as the snapshot reads them: described
//! from `information_schema.COLUMNS` the way the binlog decoder describes a
//! TableMap, their binary-protocol values converted to the decoder's
//! [`Value`]s, and key values passed back as the next chunk's parameters.

use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row as MyRow, Value as MyValue};
use outflow_decoders::binlog::table::logical_type;
use outflow_model::types::ColumnType as LogicalType;
use outflow_model::value::{civil_from_days, days_from_civil};
use outflow_model::{numeric_typmod, ColumnSchema, Row, TableId, Value};

use crate::error::{Error, Result};
use crate::mysql::catalog::sql_error;

/// How a column's values are read and compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Int {
        unsigned: bool,
    },
    Year,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Date,
    DateTime,
    Timestamp,
    Time,
    Bit {
        width: u32,
    },
    Enum,
    Set,
    Text,
    Bytes,
    /// MySQL's JSON type (MariaDB's JSON is LONGTEXT: `Text`).
    Json,
}

#[derive(Clone)]
pub(super) struct Column {
    pub(super) schema: ColumnSchema,
    pub(super) kind: Kind,
    /// ENUM labels in definition order (the server orders and compares an
    /// ENUM by its 1-based position in this list, not by label text).
    pub(super) labels: Vec<String>,
}

/// The table's columns as the binlog decoder would describe them, and the
/// primary key's column indexes in key order (empty: no key).
/// `exclude` names columns left out (unless they are key columns).
pub(super) async fn describe(
    conn: &mut Conn,
    table: &TableId,
    exclude: &[String],
) -> Result<(Vec<Column>, Vec<usize>)> {
    type ColumnRow = (String, String, String, String, String, Option<u64>, Option<u64>, Option<u64>, Option<String>);
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, NUMERIC_PRECISION, NUMERIC_SCALE, \
             DATETIME_PRECISION, CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| sql_error(&format!("describing {table} for its snapshot"), e))?;
    if rows.is_empty() {
        return Err(Error::fatal(
            format!("table {table} has no columns to snapshot (does it exist?)"),
            "check [source] tables",
        ));
    }
    let mut columns = Vec::with_capacity(rows.len());
    for (name, data_type, column_type, nullable, key, precision, scale, dt_precision, charset) in rows {
        let data_type = data_type.to_lowercase();
        let labels = if matches!(data_type.as_str(), "enum" | "set") { enum_labels(&column_type) } else { Vec::new() };
        let (ty, type_name, modifier, kind, logical) = column_type_of(
            &data_type,
            &column_type.to_lowercase(),
            precision.unwrap_or(0),
            scale.unwrap_or(0),
            dt_precision.unwrap_or(0),
            charset.as_deref(),
            &labels,
        )
        .ok_or_else(|| {
            Error::fatal(
                format!("column {name} of {table} has type {column_type}, which snapshots cannot read"),
                "please report this with the column's type; or set [snapshot] mode = \"never\"",
            )
        })?;
        columns.push(Column {
            schema: ColumnSchema {
                name,
                ty: logical,
                type_name,
                type_id: ty as u32,
                type_modifier: modifier,
                nullable: nullable.eq_ignore_ascii_case("YES"),
                key: key.eq_ignore_ascii_case("PRI"),
            },
            kind,
            labels: if kind == Kind::Enum { labels } else { Vec::new() },
        });
    }
    columns.retain(|c| c.schema.key || !exclude.contains(&c.schema.name));
    let pk: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (&table.schema, &table.name),
        )
        .await
        .map_err(|e| sql_error(&format!("reading the primary key of {table}"), e))?;
    let mut order: Vec<usize> =
        pk.iter().filter_map(|k| columns.iter().position(|c| &c.schema.name == k && c.schema.key)).collect();
    if order.len() != columns.iter().filter(|c| c.schema.key).count() {
        order = columns.iter().enumerate().filter(|(_, c)| c.schema.key).map(|(i, _)| i).collect();
    }
    Ok((columns, order))
}

/// The binlog column type, type name, modifier and logical type
/// `decoders/src/binlog/table.rs` derives from a TableMap for a column of
/// this SQL type (`labels`: an ENUM's or SET's), and how to read it.
fn column_type_of(
    data_type: &str,
    column_type: &str,
    precision: u64,
    scale: u64,
    dt_precision: u64,
    charset: Option<&str>,
    labels: &[String],
) -> Option<(ColumnType, String, i32, Kind, LogicalType)> {
    use ColumnType::*;
    let unsigned = column_type.contains("unsigned");
    let binary = charset.is_none_or(|c| c.eq_ignore_ascii_case("binary"));
    let fsp = dt_precision.min(6) as i32;
    let (ty, name, modifier, kind, numeric) = match data_type {
        "tinyint" => (MYSQL_TYPE_TINY, "tinyint", -1, Kind::Int { unsigned }, true),
        "smallint" => (MYSQL_TYPE_SHORT, "smallint", -1, Kind::Int { unsigned }, true),
        "mediumint" => (MYSQL_TYPE_INT24, "mediumint", -1, Kind::Int { unsigned }, true),
        "int" | "integer" => (MYSQL_TYPE_LONG, "int", -1, Kind::Int { unsigned }, true),
        "bigint" => (MYSQL_TYPE_LONGLONG, "bigint", -1, Kind::Int { unsigned }, true),
        "float" => (MYSQL_TYPE_FLOAT, "float", -1, Kind::Float, true),
        "double" | "real" | "double precision" => (MYSQL_TYPE_DOUBLE, "double", -1, Kind::Double, true),
        "decimal" | "numeric" => {
            let (p, s) = (precision.min(65) as u8, scale.min(30) as u8);
            (MYSQL_TYPE_NEWDECIMAL, "decimal", numeric_typmod(p, s), Kind::Decimal { precision: p, scale: s }, true)
        }
        "year" => (MYSQL_TYPE_YEAR, "year", -1, Kind::Year, false),
        // The binlog's TableMap says NEWDATE (the storage type), not DATE.
        "date" => (MYSQL_TYPE_NEWDATE, "date", -1, Kind::Date, false),
        "time" => (MYSQL_TYPE_TIME2, "time", fsp, Kind::Time, false),
        "datetime" => (MYSQL_TYPE_DATETIME2, "datetime", fsp, Kind::DateTime, false),
        "timestamp" => (MYSQL_TYPE_TIMESTAMP2, "timestamp", fsp, Kind::Timestamp, false),
        "bit" => (MYSQL_TYPE_BIT, "bit", precision as i32, Kind::Bit { width: precision as u32 }, false),
        "enum" => (MYSQL_TYPE_ENUM, "enum", -1, Kind::Enum, false),
        "set" => (MYSQL_TYPE_SET, "set", -1, Kind::Set, false),
        "char" => (MYSQL_TYPE_STRING, if binary { "binary" } else { "char" }, -1, text_kind(binary), false),
        "binary" => (MYSQL_TYPE_STRING, "binary", -1, Kind::Bytes, false),
        "varchar" => (MYSQL_TYPE_VARCHAR, if binary { "varbinary" } else { "varchar" }, -1, text_kind(binary), false),
        "varbinary" => (MYSQL_TYPE_VARCHAR, "varbinary", -1, Kind::Bytes, false),
        "tinytext" | "text" | "mediumtext" | "longtext" => {
            (MYSQL_TYPE_BLOB, if binary { "blob" } else { "text" }, -1, text_kind(binary), false)
        }
        "tinyblob" | "blob" | "mediumblob" | "longblob" => (MYSQL_TYPE_BLOB, "blob", -1, Kind::Bytes, false),
        "json" => (MYSQL_TYPE_JSON, "json", -1, Kind::Json, false),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" | "geomcollection" => (MYSQL_TYPE_GEOMETRY, "geometry", -1, Kind::Bytes, false),
        _ => return None,
    };
    let name = if unsigned && numeric { format!("{name} unsigned") } else { name.to_string() };
    Some((ty, name, modifier, kind, logical_type(ty, modifier, unsigned && numeric, binary, labels)))
}

/// The labels of an `enum('a','it''s','a\\b')` column type (quotes doubled,
/// backslashes escaped, as `information_schema.COLUMNS.COLUMN_TYPE` has them).
pub(super) fn enum_labels(column_type: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut chars = column_type.chars().skip_while(|&c| c != '(').skip(1).peekable();
    while chars.peek() == Some(&'\'') {
        chars.next();
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => label.extend(chars.next()),
                c => label.push(c),
            }
        }
        labels.push(label);
        if chars.next() != Some(',') {
            break;
        }
    }
    labels
}

fn text_kind(binary: bool) -> Kind {
    if binary {
        Kind::Bytes
    } else {
        Kind::Text
    }
}

/// Parameters for the chunk filter: for the n-th term, keys 0..=n.
pub(super) fn key_params(columns: &[Column], keys: &[usize], last: &[Option<String>]) -> Result<Vec<MyValue>> {
    let bad = || {
        Error::fatal(
            "the stored snapshot progress does not fit the table's primary key (was the key changed?)",
            "re-snapshot the table: `outflow snapshot --table SCHEMA.TABLE`",
        )
    };
    if last.len() != keys.len() {
        return Err(bad());
    }
    let values: Vec<MyValue> = keys
        .iter()
        .zip(last)
        .map(|(&i, text)| key_param(&columns[i], text.as_deref().ok_or_else(bad)?).ok_or_else(bad))
        .collect::<Result<_>>()?;
    let mut params = Vec::new();
    for n in 0..keys.len() {
        params.extend(values[..=n].iter().cloned());
    }
    Ok(params)
}

pub(super) fn key_param(column: &Column, text: &str) -> Option<MyValue> {
    Some(match column.kind {
        // Compared with a number, an ENUM compares by position, as it sorts.
        Kind::Enum => MyValue::UInt(match column.labels.iter().position(|l| l == text) {
            Some(i) => i as u64 + 1,
            None if text.is_empty() => 0, // the error value of an invalid insert
            None => return None,
        }),
        Kind::Int { unsigned: true } => MyValue::UInt(text.parse().ok()?),
        Kind::Int { unsigned: false } | Kind::Year => MyValue::Int(text.parse().ok()?),
        Kind::Float | Kind::Double => MyValue::Double(text.parse().ok()?),
        Kind::Bit { .. } => MyValue::UInt(u64::from_str_radix(text, 2).ok()?),
        Kind::Bytes => MyValue::Bytes(from_hex(text)?),
        _ => MyValue::Bytes(text.as_bytes().to_vec()),
    })
}

/// A key value as stored in the snapshot progress (and read back by [`key_param`]).
pub(super) fn key_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null | Value::Unchanged => return None,
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float32(f) => f.to_string(),
        Value::Float64(f) => f.to_string(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Value::Date(days) => {
            let (y, m, d) = civil_from_days(*days as i64);
            format!("{y:04}-{m:02}-{d:02}")
        }
        Value::Timestamp(us) | Value::TimestampTz(us) => {
            let (days, rest) = (us.div_euclid(86_400_000_000), us.rem_euclid(86_400_000_000));
            let (y, m, d) = civil_from_days(days);
            format!("{y:04}-{m:02}-{d:02} {}", clock(rest))
        }
        Value::Time(us) => format!("{}{}", if *us < 0 { "-" } else { "" }, clock(us.unsigned_abs() as i64)),
        Value::Decimal(s) | Value::Text(s) | Value::Enum(s) | Value::Bits(s) | Value::Json(s) => s.clone(),
        other => format!("{other:?}"),
    })
}

/// Micros of a day (or of a TIME, hours unbounded) as `H:MM:SS.ffffff`.
fn clock(us: i64) -> String {
    let secs = us / 1_000_000;
    format!("{:02}:{:02}:{:02}.{:06}", secs / 3600, secs / 60 % 60, secs % 60, us % 1_000_000)
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

pub(super) fn convert_row(columns: &[Column], row: MyRow) -> Result<Row> {
    let values = row.unwrap();
    if values.len() != columns.len() {
        return Err(Error::fatal(
            format!("a snapshot row has {} columns, the table {}", values.len(), columns.len()),
            "the table changed during the snapshot; run again",
        ));
    }
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| {
            convert(c.kind, v).ok_or_else(|| {
                Error::fatal(
                    format!("cannot read a snapshot value of column {} ({})", c.schema.name, c.schema.type_name),
                    "please report this with the column's type",
                )
            })
        })
        .collect()
}

/// One binary-protocol value as the binlog decoder would give it.
pub(super) fn convert(kind: Kind, v: MyValue) -> Option<Value> {
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Some(match (kind, v) {
        (_, MyValue::NULL) => Value::Null,
        (Kind::Int { unsigned: true }, MyValue::Int(i)) => Value::UInt(i as u64),
        (Kind::Int { unsigned: true }, MyValue::UInt(u)) => Value::UInt(u),
        (Kind::Int { unsigned: false }, MyValue::Int(i)) => Value::Int(i),
        (Kind::Int { unsigned: false }, MyValue::UInt(u)) => Value::Int(u as i64),
        (Kind::Int { unsigned }, MyValue::Bytes(b)) => {
            let t = text(b);
            if unsigned {
                Value::UInt(t.parse().ok()?)
            } else {
                Value::Int(t.parse().ok()?)
            }
        }
        // YEAR 0000 is stored as 0 and the binlog decoder reads it as 1900.
        (Kind::Year, MyValue::Int(y)) => Value::Int(if y == 0 { 1900 } else { y }),
        (Kind::Year, MyValue::UInt(y)) => Value::Int(if y == 0 { 1900 } else { y as i64 }),
        (Kind::Float, MyValue::Float(f)) => Value::Float32(f),
        (Kind::Float, MyValue::Double(d)) => Value::Float32(d as f32),
        (Kind::Double, MyValue::Double(d)) => Value::Float64(d),
        (Kind::Double, MyValue::Float(f)) => Value::Float64(f as f64),
        (Kind::Decimal { .. }, MyValue::Bytes(b)) => Value::Decimal(text(b)),
        (Kind::Date, MyValue::Date(y, m, d, ..)) => match civil(y, m, d) {
            Some(days) => Value::Date(days as i32),
            None => Value::Null,
        },
        (Kind::DateTime, MyValue::Date(y, m, d, h, mi, s, us)) => match civil(y, m, d) {
            Some(days) => Value::Timestamp(micros(days, h, mi, s, us)),
            None => Value::Null,
        },
        (Kind::Timestamp, MyValue::Date(y, m, d, h, mi, s, us)) => match civil(y, m, d) {
            Some(days) => Value::TimestampTz(micros(days, h, mi, s, us)),
            None => Value::Null,
        },
        (Kind::Time, MyValue::Time(neg, days, h, m, s, us)) => {
            let t = ((days as i64 * 24 + h as i64) * 3600 + m as i64 * 60 + s as i64) * 1_000_000 + us as i64;
            Value::Time(if neg { -t } else { t })
        }
        (Kind::Bit { width }, MyValue::Bytes(b)) => {
            let mut s = String::with_capacity(width as usize);
            for i in (0..width as usize).rev() {
                let byte = b.len().checked_sub(1 + i / 8).map_or(0, |j| b[j]);
                s.push(if byte & (1 << (i % 8)) != 0 { '1' } else { '0' });
            }
            Value::Bits(s)
        }
        (Kind::Bit { width }, MyValue::UInt(u)) => {
            convert(Kind::Bit { width }, MyValue::Bytes(u.to_be_bytes().to_vec()))?
        }
        (Kind::Bit { width }, MyValue::Int(i)) => {
            convert(Kind::Bit { width }, MyValue::Bytes((i as u64).to_be_bytes().to_vec()))?
        }
        (Kind::Enum, MyValue::Bytes(b)) => Value::Enum(text(b)),
        (Kind::Set | Kind::Text, MyValue::Bytes(b)) => Value::Text(text(b)),
        (Kind::Bytes, MyValue::Bytes(b)) => Value::Bytes(b),
        (Kind::Json, MyValue::Bytes(b)) => {
            // The binlog's binary JSON is rendered through serde_json: the same spelling.
            let parsed: serde_json::Value = serde_json::from_slice(&b).ok()?;
            Value::Json(parsed.to_string())
        }
        _ => return None,
    })
}

/// Days since the epoch; None for zero dates and dates with a zero month or
/// day (the binlog decoder gives NULL for those, as Debezium does).
fn civil(y: u16, m: u8, d: u8) -> Option<i64> {
    if m == 0 || d == 0 || m > 12 || d > 31 {
        return None;
    }
    Some(days_from_civil(y as i64, m as u32, d as u32))
}

fn micros(days: i64, h: u8, mi: u8, s: u8, us: u32) -> i64 {
    days * 86_400_000_000 + (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000 + us as i64
}
