//! Source columns → Iceberg types, and buffered rows → record batches shaped
//! exactly like the table's current Iceberg schema.
//!
//! The column's logical type is read once, by the Parquet sink's [`kind_of`]
//! (the one table for both sinks); this file maps each
//! [`Kind`] to the Iceberg type that holds it without loss:
//!
//! | kind | Iceberg | note |
//! |---|---|---|
//! | Int(8/16/32), UInt(8/16) | int | Iceberg has no narrower integers |
//! | Int(64), UInt(32) | long | |
//! | UInt(64) | decimal(20,0) | exact up to 18446744073709551615 |
//! | Decimal(p,s), p ≤ 38, s ≥ 0 | decimal(p,s) | |
//! | Decimal beyond that, unconstrained numeric | string | the exact text |
//! | Duration (MySQL TIME) | long | signed microseconds |
//! | Time | time | `24:00:00` (PostgreSQL) becomes 23:59:59.999999 |
//! | Timestamp / TimestampTz | timestamp / timestamptz | microseconds |
//! | Interval | struct<months int, days int, micros long> | |
//! | Uuid | uuid | |
//! | List(k) | list<k> | |
//!
//! Values are built into Arrow arrays by the Parquet sink's [`build_array`]
//! and then conformed ([`conform`]) to the Arrow type the Iceberg writer
//! expects: widened integers, decimal(20,0) for unsigned 64-bit, and nested
//! fields re-tagged with the table's field ids.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int64Array, ListArray, RecordBatch, StructArray};
use arrow_schema::{DataType, SchemaRef as ArrowSchemaRef};
use iceberg::spec::{ListType, NestedField, PrimitiveType, Schema, StructType, Type};
use outflow_model::{ColumnSchema, TableSchema, Value};

use super::Mode;
use crate::columnar::rows::{RowBuffer, META_COLUMNS};
use crate::parquet::types::{build_array, kind_of, Kind};
use crate::SinkError;

/// The kind a source column's values are built with: decimals Iceberg
/// cannot hold as decimals are kept as their exact text.
pub fn build_kind(kind: Kind) -> Kind {
    match kind {
        Kind::Decimal { precision, scale } if precision > 38 || scale < 0 => Kind::Utf8,
        Kind::List(elem) => Kind::List(Box::new(build_kind(*elem))),
        other => other,
    }
}

/// The Iceberg type of a (built) kind; nested field ids come from `next_id`.
pub fn iceberg_type(kind: &Kind, next_id: &mut i32) -> Type {
    let p = |t| Type::Primitive(t);
    match kind {
        Kind::Bool => p(PrimitiveType::Boolean),
        Kind::Int(64) | Kind::UInt(32) | Kind::Duration => p(PrimitiveType::Long),
        Kind::Int(_) | Kind::UInt(8) | Kind::UInt(16) => p(PrimitiveType::Int),
        Kind::UInt(_) => p(PrimitiveType::Decimal { precision: 20, scale: 0 }),
        Kind::Float32 => p(PrimitiveType::Float),
        Kind::Float64 => p(PrimitiveType::Double),
        Kind::Decimal { precision, scale } if *precision <= 38 && *scale >= 0 => {
            p(PrimitiveType::Decimal { precision: u32::from(*precision), scale: *scale as u32 })
        }
        Kind::Decimal { .. } | Kind::Utf8 => p(PrimitiveType::String),
        Kind::Binary => p(PrimitiveType::Binary),
        Kind::Date => p(PrimitiveType::Date),
        Kind::Time => p(PrimitiveType::Time),
        Kind::Timestamp => p(PrimitiveType::Timestamp),
        Kind::TimestampTz => p(PrimitiveType::Timestamptz),
        Kind::Uuid => p(PrimitiveType::Uuid),
        Kind::Interval => {
            let mut field = |name: &str, t| {
                *next_id += 1;
                Arc::new(NestedField::required(*next_id, name, p(t)))
            };
            Type::Struct(StructType::new(vec![
                field("months", PrimitiveType::Int),
                field("days", PrimitiveType::Int),
                field("micros", PrimitiveType::Long),
            ]))
        }
        Kind::List(elem) => {
            *next_id += 1;
            let id = *next_id;
            let elem = iceberg_type(elem, next_id);
            Type::List(ListType::new(Arc::new(NestedField::list_element(id, elem, false))))
        }
    }
}

/// One column the table should have: its name, Iceberg type, whether it
/// is required and whether it is part of the row's key (upsert tables).
#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: String,
    pub ty: Type,
    pub required: bool,
    pub key: bool,
}

/// The columns a table of this source shape should have, in order: the
/// source's columns, then the metadata columns. Change-log tables (`append`)
/// have every column optional (a delete's before-image may hold only the
/// key) and all of [`META_COLUMNS`]; current-row tables (`upsert`) have
/// their key columns required (unless the key is the whole row, which may
/// hold nulls) and only `_position` and `_source_ts` (of the row's last
/// change).
pub fn wanted_columns(columns: &[ColumnSchema], mode: Mode) -> Vec<Wanted> {
    let mut scratch = 0;
    let upsert = mode == Mode::Upsert;
    // Every column flagged as key is PostgreSQL's REPLICA IDENTITY FULL (or
    // a key over all columns): its columns may hold nulls. A proper key
    // (primary key or replica identity index) never does.
    let whole_row = columns.iter().all(|c| c.key);
    let mut out: Vec<Wanted> = columns
        .iter()
        .map(|c| Wanted {
            name: c.name.clone(),
            ty: iceberg_type(&build_kind(kind_of(c)), &mut scratch),
            required: upsert && c.key && (!c.nullable || !whole_row),
            key: upsert && c.key,
        })
        .collect();
    let string = Type::Primitive(PrimitiveType::String);
    let meta = [
        ("_op", string.clone(), true),
        ("_position", string.clone(), true),
        ("_tx", Type::Primitive(PrimitiveType::Long), false),
        ("_source_ts", Type::Primitive(PrimitiveType::Timestamptz), true),
        ("_snapshot", Type::Primitive(PrimitiveType::Boolean), true),
        ("_unchanged", Type::List(ListType::new(Arc::new(NestedField::list_element(0, string, false)))), false),
    ];
    debug_assert_eq!(meta.len(), META_COLUMNS.len());
    out.extend(
        meta.into_iter()
            .filter(|(name, _, _)| !upsert || UPSERT_META.contains(name))
            .map(|(name, ty, required)| Wanted { name: name.into(), ty, required, key: false }),
    );
    out
}

/// The metadata columns of an upsert table.
pub const UPSERT_META: [&str; 2] = ["_position", "_source_ts"];

/// A fresh Iceberg schema for a new table (field ids 1.. in column order,
/// nested ids after them). Key columns become the schema's identifier
/// fields when Iceberg allows them all (required, primitive, not floating
/// point).
pub fn new_schema(wanted: &[Wanted]) -> Result<Schema, SinkError> {
    let mut next_id = wanted.len() as i32;
    let fields = wanted.iter().enumerate().map(|(i, w)| {
        let ty = renumber(&w.ty, &mut next_id);
        Arc::new(NestedField::new(i as i32 + 1, w.name.clone(), ty, w.required))
    });
    let identifiable = |w: &Wanted| {
        w.required && matches!(&w.ty, Type::Primitive(p) if !matches!(p, PrimitiveType::Float | PrimitiveType::Double))
    };
    let keys: Vec<i32> = wanted.iter().enumerate().filter(|(_, w)| w.key).map(|(i, _)| i as i32 + 1).collect();
    let identifiers = if wanted.iter().filter(|w| w.key).all(identifiable) { keys } else { Vec::new() };
    Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(identifiers)
        .build()
        .map_err(|e| SinkError::Data(format!("cannot build an iceberg schema: {}", super::one_line(&e))))
}

fn renumber(ty: &Type, next_id: &mut i32) -> Type {
    match ty {
        Type::Struct(s) => Type::Struct(StructType::new(
            s.fields()
                .iter()
                .map(|f| {
                    *next_id += 1;
                    let id = *next_id;
                    Arc::new(NestedField::new(id, f.name.clone(), renumber(&f.field_type, next_id), f.required))
                })
                .collect(),
        )),
        Type::List(l) => {
            *next_id += 1;
            let id = *next_id;
            let elem = renumber(&l.element_field.field_type, next_id);
            Type::List(ListType::new(Arc::new(NestedField::list_element(id, elem, l.element_field.required))))
        }
        other => other.clone(),
    }
}

/// Whether two types are the same apart from nested field ids.
pub fn same_type(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Primitive(x), Type::Primitive(y)) => x == y,
        (Type::List(x), Type::List(y)) => {
            x.element_field.required == y.element_field.required
                && same_type(&x.element_field.field_type, &y.element_field.field_type)
        }
        (Type::Struct(x), Type::Struct(y)) => {
            x.fields().len() == y.fields().len()
                && x.fields().iter().zip(y.fields()).all(|(f, g)| {
                    f.name == g.name && f.required == g.required && same_type(&f.field_type, &g.field_type)
                })
        }
        _ => false,
    }
}

/// What changes turn the table's schema into the wanted columns: names to
/// drop (absent from the source, or of another type), then columns to add.
pub fn schema_diff(current: &Schema, wanted: &[Wanted]) -> (Vec<String>, Vec<Wanted>) {
    let mut drop = Vec::new();
    let mut add = Vec::new();
    for f in current.as_struct().fields() {
        match wanted.iter().find(|w| w.name == f.name) {
            Some(w) if same_type(&w.ty, &f.field_type) => {}
            _ => drop.push(f.name.clone()),
        }
    }
    for w in wanted {
        match current.field_by_name(&w.name) {
            Some(f) if same_type(&w.ty, &f.field_type) => {}
            _ => add.push(w.clone()),
        }
    }
    (drop, add)
}

/// Where each column of the table's Arrow schema comes from.
#[derive(Debug, Clone)]
pub enum Slot {
    /// The source column at this index, built as this kind.
    Source(usize, Kind),
    /// The metadata column at this index of [`META_COLUMNS`].
    Meta(usize),
    /// Not in this source shape (null).
    Absent,
}

/// The slots of every field of `arrow`, for rows of `source` shape.
pub fn plan(arrow: &ArrowSchemaRef, source: &TableSchema) -> Vec<Slot> {
    arrow
        .fields()
        .iter()
        .map(|f| {
            if let Some(i) = source.columns.iter().position(|c| &c.name == f.name()) {
                Slot::Source(i, build_kind(kind_of(&source.columns[i])))
            } else if let Some(m) = META_COLUMNS.iter().position(|m| m == f.name()) {
                Slot::Meta(m)
            } else {
                Slot::Absent
            }
        })
        .collect()
}

/// The buffered rows as a record batch of the table's Arrow schema.
pub fn record_batch(
    buf: &RowBuffer,
    arrow: &ArrowSchemaRef,
    slots: &[Slot],
    source: &TableSchema,
) -> Result<RecordBatch, SinkError> {
    let meta = buf.meta_arrays(source);
    let mut arrays = Vec::with_capacity(slots.len());
    for (field, slot) in arrow.fields().iter().zip(slots) {
        let built = match slot {
            Slot::Source(i, kind) => {
                let refs: Vec<&Value> = buf.cols[*i].iter().collect();
                build_array(kind, &refs).map_err(|m| {
                    let col = &source.columns[*i];
                    SinkError::Data(format!(
                        "column {:?} of {} (type {}) holds {} which does not fit {:?}; this is a bug in outflow's type mapping, please report it",
                        col.name, source.id, col.type_name, m.value, m.kind
                    ))
                })?
            }
            Slot::Meta(m) => meta[*m].clone(),
            Slot::Absent => arrow_array::new_null_array(field.data_type(), buf.len()),
        };
        let conformed = conform(built, field.data_type()).map_err(|e| {
            SinkError::Data(format!(
                "column {:?} of {}: {e}; this is a bug in outflow's iceberg type mapping, please report it",
                field.name(),
                source.id
            ))
        })?;
        arrays.push(conformed);
    }
    RecordBatch::try_new(arrow.clone(), arrays)
        .map_err(|e| SinkError::Data(format!("cannot assemble a record batch for {}: {e}", source.id)))
}

/// The last microsecond of a day: Iceberg's `time` ends before midnight.
const LAST_TIME_US: i64 = 86_399_999_999;

/// Re-types an array to `target`: nested arrays get the target's child
/// fields (field ids), other types are cast (widening integers, unsigned to
/// decimal, durations to their microseconds), and PostgreSQL's
/// `time '24:00:00'` becomes 23:59:59.999999.
pub fn conform(array: ArrayRef, target: &DataType) -> Result<ArrayRef, String> {
    if let DataType::Time64(_) = array.data_type() {
        let t = array.as_primitive::<arrow_array::types::Time64MicrosecondType>();
        if t.values().iter().any(|v| *v > LAST_TIME_US) {
            let clamped: arrow_array::Time64MicrosecondArray = t.unary(|v| v.min(LAST_TIME_US));
            return conform(Arc::new(clamped), target);
        }
    }
    if array.data_type() == target {
        return Ok(array);
    }
    match (array.data_type(), target) {
        (DataType::List(_), DataType::List(child)) => {
            let list = array.as_list::<i32>();
            let values = conform(list.values().clone(), child.data_type())?;
            let out = ListArray::try_new(child.clone(), list.offsets().clone(), values, list.nulls().cloned())
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(out))
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| conform(c.clone(), f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            let out = StructArray::try_new(fields.clone(), columns, s.nulls().cloned()).map_err(|e| e.to_string())?;
            Ok(Arc::new(out))
        }
        (DataType::Duration(_), DataType::Int64) => {
            let d = array.as_primitive::<arrow_array::types::DurationMicrosecondType>();
            Ok(Arc::new(Int64Array::new(d.values().clone(), d.nulls().cloned())))
        }
        (from, to) => arrow_cast::cast(&array, to).map_err(|e| format!("cannot convert {from} to {to}: {e}")),
    }
}
