//! Changes buffered column by column, with the change-log metadata columns
//! every change-log row ends with; shared by the Parquet and Iceberg sinks.
//!
//! A change becomes one row: the table's columns from `after` (`before` for
//! deletes, all null for truncates), then `_op` (`c u d r t`), `_position`
//! (the source position as text), `_tx`, `_source_ts` (commit time, UTC),
//! `_snapshot` and `_unchanged` (the columns whose TOASTed value the source
//! did not send; they are null in the row).

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, TimeUnit};
use outflow_model::{ChangeEvent, Op, TableSchema, Value};

use crate::parquet::types::value_size;

/// The metadata columns every change-log row ends with.
pub const META_COLUMNS: [&str; 6] = ["_op", "_position", "_tx", "_source_ts", "_snapshot", "_unchanged"];

#[derive(Default)]
pub struct RowBuffer {
    pub cols: Vec<Vec<Value>>,
    op: Vec<&'static str>,
    pub position: Vec<String>,
    tx: Vec<Option<u64>>,
    pub ts: Vec<i64>,
    snapshot: Vec<bool>,
    /// Per row, the indexes of columns whose value the source did not send.
    unchanged: Vec<Vec<u16>>,
    /// Approximate bytes held.
    pub bytes: usize,
}

impl RowBuffer {
    /// An empty buffer for `ncols` table columns, sized for `rows` rows.
    pub fn new(ncols: usize, rows: usize) -> RowBuffer {
        RowBuffer { cols: (0..ncols).map(|_| Vec::with_capacity(rows)).collect(), ..RowBuffer::default() }
    }

    pub fn len(&self) -> usize {
        self.op.len()
    }

    pub fn is_empty(&self) -> bool {
        self.op.is_empty()
    }

    /// Appends one change as a row of `ncols` table columns.
    pub fn push(&mut self, ev: &ChangeEvent, ncols: usize) {
        if self.cols.len() != ncols {
            self.cols = (0..ncols).map(|_| Vec::new()).collect();
        }
        let row = match ev.op {
            Op::Delete => ev.before.as_ref(),
            Op::Truncate => None,
            _ => ev.after.as_ref().or(ev.before.as_ref()),
        };
        let mut unchanged = Vec::new();
        for (i, col) in self.cols.iter_mut().enumerate() {
            let v = row.and_then(|r| r.get(i)).cloned().unwrap_or(Value::Null);
            if matches!(v, Value::Unchanged) {
                unchanged.push(i as u16);
            }
            self.bytes += value_size(&v);
            col.push(v);
        }
        let position = ev.position.to_string();
        self.bytes += position.len() + 64 + unchanged.len() * 2;
        self.op.push(ev.op.code());
        self.position.push(position);
        self.tx.push(ev.source.tx_id);
        self.ts.push(ev.source.commit_ts_us);
        self.snapshot.push(ev.source.snapshot || ev.op == Op::Read);
        self.unchanged.push(unchanged);
    }

    /// The Arrow fields of the metadata columns, in [`META_COLUMNS`] order.
    pub fn meta_fields() -> Vec<Field> {
        vec![
            Field::new("_op", DataType::Utf8, false),
            Field::new("_position", DataType::Utf8, false),
            Field::new("_tx", DataType::UInt64, true),
            Field::new("_source_ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("_snapshot", DataType::Boolean, false),
            Field::new("_unchanged", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        ]
    }

    /// The metadata columns' arrays, in [`META_COLUMNS`] order (`schema`
    /// names the unchanged columns).
    pub fn meta_arrays(&self, schema: &TableSchema) -> Vec<ArrayRef> {
        let rows = self.len();
        let mut op = StringBuilder::with_capacity(rows, rows);
        let mut position = StringBuilder::with_capacity(rows, rows * 20);
        let mut tx = UInt64Builder::with_capacity(rows);
        let mut ts = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut snapshot = BooleanBuilder::with_capacity(rows);
        let mut unchanged = ListBuilder::new(StringBuilder::new());
        for i in 0..rows {
            op.append_value(self.op[i]);
            position.append_value(&self.position[i]);
            tx.append_option(self.tx[i]);
            ts.append_value(self.ts[i]);
            snapshot.append_value(self.snapshot[i]);
            for &c in &self.unchanged[i] {
                unchanged.values().append_value(&schema.columns[c as usize].name);
            }
            unchanged.append(true);
        }
        // ListBuilder names its child "item" and makes it nullable, as declared.
        vec![
            Arc::new(op.finish()),
            Arc::new(position.finish()),
            Arc::new(tx.finish()),
            Arc::new(ts.finish()),
            Arc::new(snapshot.finish()),
            Arc::new(unchanged.finish()),
        ]
    }
}
