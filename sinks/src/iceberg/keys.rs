//! Upsert keys: one byte string per row, rendered from Arrow values of the
//! table's own types (each key column built and conformed exactly as it is
//! written, then formatted), so keys read back from data files after a
//! restart render identically to keys of new changes.

use std::fmt::Write as _;

use arrow_array::{Array, ArrayRef};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use super::schema::Slot;
use crate::parquet::types::Kind;

/// A rendered key.
pub type Key = Box<[u8]>;

/// One key column: its index in the source shape, the kind its values are
/// built as, the table's Arrow type and Iceberg field id for it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyColumn {
    pub source: usize,
    pub kind: Kind,
    pub ty: DataType,
    pub field_id: i32,
}

/// The key columns of a source shape in the table's Arrow schema.
pub fn key_columns(
    source: &outflow_model::TableSchema,
    arrow: &arrow_schema::Schema,
    slots: &[Slot],
) -> Vec<KeyColumn> {
    source
        .key_indexes()
        .filter_map(|k| {
            let at = slots.iter().position(|s| matches!(s, Slot::Source(i, _) if *i == k))?;
            let Slot::Source(_, kind) = &slots[at] else { return None };
            let field = arrow.field(at);
            let field_id = field.metadata().get(PARQUET_FIELD_ID_META_KEY)?.parse().ok()?;
            Some(KeyColumn { source: k, kind: kind.clone(), ty: field.data_type().clone(), field_id })
        })
        .collect()
}

/// Renders row `i` of each of `columns` into one key: per column a null
/// tag, or a value tag, the formatted value's length and the value.
pub fn encode_keys(columns: &[ArrayRef]) -> Result<Vec<Key>, String> {
    let rows = columns.first().map_or(0, |c| c.len());
    let options = FormatOptions::default();
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let mut key = Vec::new();
        for (column, formatter) in columns.iter().zip(&formatters) {
            if column.is_null(i) {
                key.push(0);
                continue;
            }
            text.clear();
            write!(text, "{}", formatter.value(i)).map_err(|e| e.to_string())?;
            key.push(1);
            key.extend_from_slice(&(text.len() as u32).to_le_bytes());
            key.extend_from_slice(text.as_bytes());
        }
        out.push(key.into_boxed_slice());
    }
    Ok(out)
}
