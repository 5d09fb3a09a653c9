//! The signal table (`[source] signal_table`): Debezium's `debezium_signal`
//! with columns `id`, `type` and `data` (a JSON object as text). A row
//! inserted there is a signal, read from the log in commit order with the
//! data around it. Its changes are taken out of the batch before transforms
//! and sinks see it; updates and deletes of the table are ignored.
//!
//! ```sql
//! CREATE TABLE outflow.signals (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));
//! INSERT INTO outflow.signals VALUES ('snap-1', 'execute-snapshot',
//!   '{"data-collections": ["public.orders"], "additional-conditions":
//!     [{"data-collection": "public.orders", "filter": "region = ''eu''"}]}');
//! ```

use outflow_model::{ChangeEvent, Op, StreamItem, TableId, Value};
use serde_json::Value as Json;

use super::{signals, Origin};

/// Takes the signal table's changes out of `batch[from..]` and submits its
/// inserts as signals. A row without an id or a type, or whose data is not
/// JSON, is recorded as a failed signal (streaming goes on).
pub fn take_signals(batch: &mut Vec<StreamItem>, from: usize, table: &TableId) {
    let from = from.min(batch.len());
    if !batch[from..].iter().any(|i| matches!(i, StreamItem::Change(ev) if ev.table.id == *table)) {
        return;
    }
    let mut kept = Vec::with_capacity(batch.len());
    for item in batch.drain(from..) {
        match item {
            StreamItem::Change(ev) if ev.table.id == *table => {
                if ev.op == Op::Create {
                    submit_row(&ev);
                }
            }
            other => kept.push(other),
        }
    }
    batch.extend(kept);
}

fn submit_row(ev: &ChangeEvent) {
    let Some(row) = &ev.after else { return };
    let column = |name: &str| {
        ev.table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)).and_then(|i| row.get(i)).and_then(text)
    };
    let id = column("id").filter(|id| !id.is_empty());
    let kind = column("type").unwrap_or_default();
    let data = column("data").unwrap_or_default();
    let parsed = if data.trim().is_empty() {
        Ok(Json::Object(Default::default()))
    } else {
        serde_json::from_str::<Json>(&data).map_err(|e| format!("the data column is not JSON: {e}"))
    };
    match (id, parsed) {
        (None, _) => tracing::warn!(table = %ev.table.id, position = %ev.position, "signal row without an id ignored"),
        (Some(id), Ok(data)) => {
            signals().submit(Some(id), &kind, data, Origin::Table);
        }
        (Some(id), Err(e)) => {
            signals().reject(id, &kind, Json::String(data), Origin::Table, e);
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) | Value::Decimal(s) | Value::Uuid(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::Json(s) => Some(s.clone()),
        _ => None,
    }
}
