//! TableMap events → table shapes: what the row decoder needs per column
//! (binlog type, type metadata, signedness, charset, ENUM/SET labels) and
//! the [`TableSchema`] users see.
//!
//! Everything comes from the TableMap's optional metadata, which the server
//! writes with `binlog_row_metadata=FULL`: column names, signedness, charsets,
//! ENUM/SET value lists, primary key. Without names the decoder refuses the
//! table (the preflight check should have caught the setting).
//!
//! Protocol surprises handled here:
//! - ENUM and SET travel as `MYSQL_TYPE_STRING` with the real type in the
//!   first metadata byte (mysql_common's `get_column_type` unpacks it).
//! - Signedness bits exist only for numeric columns, charsets only for
//!   character columns (BLOB/TEXT included: charset 63 means binary), and
//!   ENUM/SET charsets in their own list; each list is consumed in column
//!   order, skipping columns it does not cover.
//! - ENUM/SET label lists are parsed here, bounded by the bytes present
//!   (a count as sent could ask mysql_common for any allocation).
//! - A TableMap carries no NOT NULL information beyond its null bitmask and
//!   no declared display widths: `TINYINT(1)` and `BOOL` look the same.
//!
//! [`logical_type`] is the one mapping of MySQL types to logical column
//! types: the snapshot reader, which describes tables from
//! `information_schema`, calls it too, so both describe a table alike.

use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::constants::ColumnType;
use mysql_common::proto::MySerialize;

use crate::DecodeError;
use outflow_model::types::ColumnType as LogicalType;
use outflow_model::{numeric_typmod, ColumnSchema, TableId, TableSchema};

/// Charset number of `binary` (BLOB, BINARY, VARBINARY).
pub const BINARY_CHARSET: u16 = 63;

/// How to decode one column's binlog value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCodec {
    pub ty: ColumnType,
    pub meta: Vec<u8>,
    pub unsigned: bool,
    pub charset: u16,
    /// ENUM or SET labels, in declaration order.
    pub labels: Vec<String>,
}

/// A table as the current TableMap describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    pub id: TableId,
    pub columns: Vec<ColumnSchema>,
    pub codecs: Vec<ColumnCodec>,
}

fn bad(table: &TableId, detail: impl Into<String>) -> DecodeError {
    DecodeError::invalid("table map", format!("{table}: {}", detail.into()))
}

/// Reads a TableMap event into a shape. `version` is left to the caller.
pub fn shape_from_table_map(tme: &TableMapEvent<'_>) -> Result<TableShape, DecodeError> {
    let id = TableId::new(tme.database_name().into_owned(), tme.table_name().into_owned());
    let n = usize::try_from(tme.columns_count()).map_err(|_| bad(&id, "column count"))?;
    if n > 4096 {
        return Err(bad(&id, format!("{n} columns")));
    }
    let extractor = OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| bad(&id, e.to_string()))?;
    let mut names = extractor.iter_column_name();
    let mut signedness = extractor.iter_signedness();
    let mut charsets = extractor.iter_charset();
    let mut enum_set_charsets = extractor.iter_enum_and_set_charset();
    let mut pk = Vec::new();
    for k in extractor.iter_primary_key() {
        pk.push(k.map_err(|e| bad(&id, e.to_string()))?);
    }
    let (mut enum_labels, mut set_labels) = (Vec::new(), Vec::new());
    for field in tme.iter_optional_meta() {
        // The label lists are read by hand (see `label_lists`); mysql_common
        // only hands over their raw bytes here.
        let mut raw = Vec::new();
        match field.map_err(|e| bad(&id, e.to_string()))? {
            OptionalMetadataField::EnumStrValue(values) => {
                values.serialize(&mut raw);
                enum_labels.extend(label_lists(&raw).map_err(|e| bad(&id, format!("ENUM labels: {e}")))?);
            }
            OptionalMetadataField::SetStrValue(values) => {
                values.serialize(&mut raw);
                set_labels.extend(label_lists(&raw).map_err(|e| bad(&id, format!("SET labels: {e}")))?);
            }
            _ => {}
        }
    }
    let (mut enum_labels, mut set_labels) = (enum_labels.into_iter(), set_labels.into_iter());
    let nullable = tme.null_bitmask();

    let mut columns = Vec::with_capacity(n);
    let mut codecs = Vec::with_capacity(n);
    for i in 0..n {
        let ty = tme
            .get_column_type(i)
            .map_err(|e| bad(&id, format!("column {i}: {e}")))?
            .ok_or_else(|| bad(&id, format!("column {i} has no type")))?;
        let meta = tme.get_column_metadata(i).ok_or_else(|| bad(&id, format!("column {i} has no metadata")))?.to_vec();
        check_meta(&id, i, ty, &meta)?;
        let name =
            names.next().transpose().map_err(|e| bad(&id, e.to_string()))?.map(|c| c.name().into_owned()).ok_or_else(
                || bad(&id, "the table map has no column names (the server needs binlog_row_metadata=FULL)"),
            )?;
        let unsigned = if ty.is_numeric_type() { signedness.next().unwrap_or(false) } else { false };
        let charset = if ty.is_character_type() {
            charsets.next().transpose().map_err(|e| bad(&id, e.to_string()))?.unwrap_or(0)
        } else if ty.is_enum_or_set_type() {
            enum_set_charsets.next().transpose().map_err(|e| bad(&id, e.to_string()))?.unwrap_or(0)
        } else {
            0
        };
        let labels = match ty {
            ColumnType::MYSQL_TYPE_ENUM => enum_labels.next().unwrap_or_default(),
            ColumnType::MYSQL_TYPE_SET => set_labels.next().unwrap_or_default(),
            _ => Vec::new(),
        };
        let (type_name, modifier) = type_name(ty, &meta, unsigned, charset);
        columns.push(ColumnSchema {
            name,
            ty: logical_type(ty, modifier, unsigned, charset == BINARY_CHARSET, &labels),
            type_name,
            type_id: ty as u32,
            type_modifier: modifier,
            nullable: nullable.get(i).map(|b| *b).unwrap_or(true),
            key: pk.contains(&(i as u64)),
        });
        codecs.push(ColumnCodec { ty, meta, unsigned, charset, labels });
    }
    Ok(TableShape { id, columns, codecs })
}

/// The ENUM_STR_VALUE / SET_STR_VALUE optional metadata: per ENUM (SET)
/// column, a length-encoded label count, then each label as a
/// length-encoded string.
///
/// Hand-written, not mysql_common's `iter_values`: that one reserves
/// `Vec::with_capacity(count)` from the count as sent, so an absurd count
/// panicked ("capacity overflow", found by the binlog fuzz target). Here a
/// count larger than the bytes left (each label takes at least its length
/// byte) is an error, and nothing is reserved from it.
pub(super) fn label_lists(mut raw: &[u8]) -> Result<Vec<Vec<String>>, String> {
    let mut lists = Vec::new();
    while !raw.is_empty() {
        let count = lenenc_int(&mut raw)?;
        if count > raw.len() as u64 {
            return Err(format!("{count} labels announced, {} bytes left", raw.len()));
        }
        let mut labels = Vec::new();
        for _ in 0..count {
            let len = lenenc_int(&mut raw)?;
            if len > raw.len() as u64 {
                return Err(format!("a {len}-byte label, {} bytes left", raw.len()));
            }
            let (label, rest) = raw.split_at(len as usize);
            labels.push(String::from_utf8_lossy(label).into_owned());
            raw = rest;
        }
        lists.push(labels);
    }
    Ok(lists)
}

/// A MySQL length-encoded integer (1, 3, 4 or 9 bytes), advancing `raw`.
fn lenenc_int(raw: &mut &[u8]) -> Result<u64, String> {
    let (&first, rest) = raw.split_first().ok_or("a length is missing")?;
    let width = match first {
        0..=0xfa => {
            *raw = rest;
            return Ok(u64::from(first));
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return Err(format!("{first:#x} does not start a length")),
    };
    if rest.len() < width {
        return Err("a length is cut short".into());
    }
    let mut bytes = [0u8; 8];
    bytes[..width].copy_from_slice(&rest[..width]);
    *raw = &rest[width..];
    Ok(u64::from_le_bytes(bytes))
}

/// Metadata byte counts the value decoder indexes into.
fn check_meta(id: &TableId, i: usize, ty: ColumnType, meta: &[u8]) -> Result<(), DecodeError> {
    use ColumnType::*;
    let need = match ty {
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_BIT
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING => 2,
        MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_DOUBLE => 1,
        _ => 0,
    };
    if meta.len() < need {
        return Err(bad(id, format!("column {i} ({ty:?}) has {} metadata bytes, needs {need}", meta.len())));
    }
    match ty {
        MYSQL_TYPE_NEWDECIMAL if meta[0] == 0 || meta[0] > 65 || meta[1] > 30 || meta[1] > meta[0] => {
            Err(bad(id, format!("column {i}: decimal({}, {})", meta[0], meta[1])))
        }
        MYSQL_TYPE_TIMESTAMP2 | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIME2 if meta[0] > 6 => {
            Err(bad(id, format!("column {i}: fractional precision {}", meta[0])))
        }
        _ => Ok(()),
    }
}

/// The SQL type name outflow reports (and renders by), and the modifier:
/// fractional-second precision for temporal types, bit width for BIT,
/// precision and scale for DECIMAL (encoded as PostgreSQL encodes numeric's,
/// so sinks read one form from both sources), -1 otherwise.
fn type_name(ty: ColumnType, meta: &[u8], unsigned: bool, charset: u16) -> (String, i32) {
    use ColumnType::*;
    let binary = charset == BINARY_CHARSET;
    let (name, modifier): (&str, i32) = match ty {
        MYSQL_TYPE_TINY => ("tinyint", -1),
        MYSQL_TYPE_SHORT => ("smallint", -1),
        MYSQL_TYPE_INT24 => ("mediumint", -1),
        MYSQL_TYPE_LONG => ("int", -1),
        MYSQL_TYPE_LONGLONG => ("bigint", -1),
        MYSQL_TYPE_FLOAT => ("float", -1),
        MYSQL_TYPE_DOUBLE => ("double", -1),
        MYSQL_TYPE_NEWDECIMAL => ("decimal", numeric_typmod(meta[0], meta[1])),
        MYSQL_TYPE_DECIMAL => ("decimal", -1),
        MYSQL_TYPE_YEAR => ("year", -1),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ("date", -1),
        MYSQL_TYPE_TIME => ("time", 0),
        MYSQL_TYPE_TIME2 => ("time", meta[0] as i32),
        MYSQL_TYPE_DATETIME => ("datetime", 0),
        MYSQL_TYPE_DATETIME2 => ("datetime", meta[0] as i32),
        MYSQL_TYPE_TIMESTAMP => ("timestamp", 0),
        MYSQL_TYPE_TIMESTAMP2 => ("timestamp", meta[0] as i32),
        MYSQL_TYPE_BIT => ("bit", meta[1] as i32 * 8 + meta[0] as i32),
        MYSQL_TYPE_ENUM => ("enum", -1),
        MYSQL_TYPE_SET => ("set", -1),
        MYSQL_TYPE_STRING => (if binary { "binary" } else { "char" }, -1),
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => (if binary { "varbinary" } else { "varchar" }, -1),
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            (if binary { "blob" } else { "text" }, -1)
        }
        MYSQL_TYPE_JSON => ("json", -1),
        MYSQL_TYPE_GEOMETRY => ("geometry", -1),
        other => return (format!("{other:?}").trim_start_matches("MYSQL_TYPE_").to_lowercase(), -1),
    };
    let numeric = matches!(
        ty,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
    );
    if unsigned && numeric {
        (format!("{name} unsigned"), modifier)
    } else {
        (name.to_string(), modifier)
    }
}

/// The logical type of a column of binlog type `ty` with the modifier
/// [`type_name`] derives (fractional-second precision, BIT width, DECIMAL's
/// precision and scale as [`numeric_typmod`]), signedness, whether its
/// charset is `binary`, and an ENUM's or SET's labels.
pub fn logical_type(ty: ColumnType, modifier: i32, unsigned: bool, binary: bool, labels: &[String]) -> LogicalType {
    use ColumnType::*;
    let precision = u8::try_from(modifier).ok().filter(|p| *p <= 6);
    let int = |bits| LogicalType::Int { bits, signed: !unsigned };
    match ty {
        MYSQL_TYPE_TINY => int(8),
        MYSQL_TYPE_SHORT => int(16),
        MYSQL_TYPE_INT24 => int(24),
        MYSQL_TYPE_LONG => int(32),
        MYSQL_TYPE_LONGLONG => int(64),
        MYSQL_TYPE_YEAR => LogicalType::Year,
        MYSQL_TYPE_FLOAT => LogicalType::Float32,
        MYSQL_TYPE_DOUBLE => LogicalType::Float64,
        MYSQL_TYPE_NEWDECIMAL if modifier >= 4 => {
            let m = modifier - 4;
            LogicalType::Decimal(Some(((m >> 16) as u32, m & 0xffff)))
        }
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => LogicalType::Decimal(None),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => LogicalType::Date,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => LogicalType::Duration { precision },
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => LogicalType::Timestamp { precision },
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => LogicalType::TimestampTz { precision },
        MYSQL_TYPE_BIT if modifier == 1 => LogicalType::Bool,
        MYSQL_TYPE_BIT => LogicalType::Bits { length: u32::try_from(modifier).ok(), varying: false },
        MYSQL_TYPE_ENUM => LogicalType::Enum { labels: labels.to_vec() },
        MYSQL_TYPE_SET => LogicalType::Set { labels: labels.to_vec() },
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => {
            if binary {
                LogicalType::Bytes
            } else {
                LogicalType::Text { max_chars: None }
            }
        }
        MYSQL_TYPE_JSON => LogicalType::Json,
        MYSQL_TYPE_GEOMETRY => LogicalType::Geometry,
        _ => LogicalType::Other,
    }
}

/// The schema a shape gives, at `version`.
pub fn schema_of(shape: &TableShape, version: u32) -> TableSchema {
    TableSchema { id: shape.id.clone(), version, columns: shape.columns.clone() }
}
