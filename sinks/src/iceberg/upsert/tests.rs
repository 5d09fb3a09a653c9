//! Unit tests of the upsert index: collapsing, TOAST fills, rebuilds.

use std::sync::Arc;

use outflow_model::{ColumnSchema, Position, SourceInfo, TableId, TableSchema};

use super::*;
use crate::parquet::types::Kind;

fn schema() -> Arc<TableSchema> {
    let col = |name: &str, key: bool| ColumnSchema {
        name: name.into(),
        ty: outflow_model::ColumnType::Int { bits: 32, signed: true },
        type_name: "int4".into(),
        type_id: 23,
        type_modifier: -1,
        nullable: !key,
        key,
    };
    Arc::new(TableSchema {
        id: TableId::new("public", "t"),
        version: 1,
        columns: vec![col("id", true), col("v", false)],
    })
}

fn ev(op: Op, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
    ChangeEvent { op, table: schema(), before, after, source: SourceInfo::default(), position: Position::pg(1) }
}

fn upsert() -> Upsert {
    Upsert::new(vec![KeyColumn { source: 0, kind: Kind::Int(32), ty: DataType::Int32, field_id: 1 }])
}

fn int(v: i64) -> Value {
    Value::Int(v)
}

/// What `take` returns, as (id, v) of each row to write, plus deletes.
fn applied(u: &mut Upsert) -> (Vec<(Value, Value)>, Vec<Loc>) {
    let rows = u.take().into_iter().map(|(_, ev, _)| {
        let after = ev.after.unwrap();
        (after[0].clone(), after[1].clone())
    });
    let rows = rows.collect();
    (rows, std::mem::take(&mut u.deletes))
}

#[test]
fn a_batch_collapses_to_the_last_state_per_key_and_fills_unchanged_values() {
    let mut u = upsert();
    u.add(&ev(Op::Create, None, Some(vec![int(1), int(10)]))).unwrap();
    u.add(&ev(Op::Update, None, Some(vec![int(1), Value::Unchanged]))).unwrap();
    u.add(&ev(Op::Create, None, Some(vec![int(2), int(20)]))).unwrap();
    u.add(&ev(Op::Delete, Some(vec![int(2), Value::Null]), None)).unwrap();
    u.add(&ev(Op::Update, None, Some(vec![int(3), Value::Unchanged]))).unwrap();
    assert_eq!(u.pending(), 3);
    let (rows, deletes) = applied(&mut u);
    assert_eq!(rows, vec![(int(1), int(10)), (int(3), Value::Unchanged)]);
    assert!(deletes.is_empty(), "nothing was live yet");
}

#[test]
fn replaced_and_deleted_live_rows_become_position_deletes() {
    let mut u = upsert();
    for id in 1..=3 {
        u.add(&ev(Op::Read, None, Some(vec![int(id), int(0)]))).unwrap();
    }
    let keys = u.take().into_iter().map(|(k, _, _)| k).collect();
    u.written(keys, "file:///wh/a.parquet", 0);
    assert_eq!(u.live_rows(), 3);
    // 1 updated, 2 deleted, 3 moved to key 4.
    u.add(&ev(Op::Update, None, Some(vec![int(1), int(11)]))).unwrap();
    u.add(&ev(Op::Delete, Some(vec![int(2), Value::Null]), None)).unwrap();
    u.add(&ev(Op::Update, Some(vec![int(3), int(0)]), Some(vec![int(4), int(0)]))).unwrap();
    let rows = u.take();
    let keys: Vec<Key> = rows.iter().map(|(k, _, _)| k.clone()).collect();
    assert_eq!(rows.len(), 2, "1 and 4 are written");
    assert_eq!(rows[0].2, Some(Loc { file: 0, pos: 0 }), "1's previous row, for unchanged values");
    u.written(keys, "file:///wh/b.parquet", 0);
    let deletes: Vec<(String, u64)> = u.take_deletes().into_iter().map(|(p, pos)| (p.to_string(), pos)).collect();
    let a = "file:///wh/a.parquet".to_string();
    assert_eq!(deletes, vec![(a.clone(), 0), (a.clone(), 1), (a, 2)]);
    assert_eq!(u.live_rows(), 2);
    u.truncate();
    assert_eq!(u.live_rows(), 0);
    assert!(u.truncated);
}

#[test]
fn an_update_that_moves_the_row_takes_unchanged_values_from_the_old_key() {
    let mut u = upsert();
    u.add(&ev(Op::Read, None, Some(vec![int(1), int(10)]))).unwrap();
    u.add(&ev(Op::Read, None, Some(vec![int(5), int(50)]))).unwrap();
    let keys = u.take().into_iter().map(|(k, _, _)| k).collect();
    u.written(keys, "file:///wh/a.parquet", 0);
    // 1 → 2 → 3 with the value unchanged: from 1's live row; 5 → 6 after
    // an update in the batch: from that update's image.
    u.add(&ev(Op::Update, Some(vec![int(1), Value::Null]), Some(vec![int(2), Value::Unchanged]))).unwrap();
    u.add(&ev(Op::Update, Some(vec![int(2), Value::Null]), Some(vec![int(3), Value::Unchanged]))).unwrap();
    u.add(&ev(Op::Update, None, Some(vec![int(5), int(55)]))).unwrap();
    u.add(&ev(Op::Update, Some(vec![int(5), Value::Null]), Some(vec![int(6), Value::Unchanged]))).unwrap();
    let rows: Vec<(Value, Value, Option<Loc>)> = u
        .take()
        .into_iter()
        .map(|(_, ev, from)| {
            let after = ev.after.unwrap();
            (after[0].clone(), after[1].clone(), from)
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (int(3), Value::Unchanged, Some(Loc { file: 0, pos: 0 })),
            (int(6), int(55), Some(Loc { file: 0, pos: 1 }))
        ]
    );
    let deletes: Vec<u64> = u.take_deletes().into_iter().map(|(_, pos)| pos).collect();
    assert_eq!(deletes, vec![0, 1], "the old keys' rows are deleted");
}

#[test]
fn keyless_tables_append_inserts_and_count_the_rest() {
    let mut u = Upsert::new(Vec::new());
    assert_eq!(u.add(&ev(Op::Create, None, Some(vec![int(1), int(1)]))).unwrap(), Added::Append);
    assert_eq!(u.add(&ev(Op::Update, None, Some(vec![int(1), int(2)]))).unwrap(), Added::NotApplied);
    assert_eq!(u.add(&ev(Op::Delete, Some(vec![int(1), int(2)]), None)).unwrap(), Added::NotApplied);
    assert_eq!(u.not_applied, 2);
}

#[test]
fn keys_render_alike_from_values_and_from_arrays() {
    let u = upsert();
    let from_value = u.key_of(&vec![int(42), int(0)]).unwrap();
    let array: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![41, 42]));
    let from_array = encode_keys(&[array]).unwrap();
    assert_eq!(from_array[1], from_value);
    assert_ne!(from_array[0], from_value);
}
