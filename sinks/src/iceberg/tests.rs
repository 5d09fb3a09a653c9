//! Iceberg sink scenarios on a temporary SQLite catalog and warehouse: the
//! type mapping, rows and offsets read back with iceberg's own table scan,
//! the durable position trailing uncommitted rows, per-table skipping after
//! a restart, and a column added mid-stream.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use futures::TryStreamExt;
use iceberg::spec::{PrimitiveType, Type};
use outflow_model::{
    ChangeEvent, ColumnSchema, ColumnType, Op, Position, SourceInfo, StreamItem, TableId, TableSchema, Value,
};

use super::schema::{build_kind, iceberg_type};
use super::*;
use crate::parquet::types::kind_of;

fn col(name: &str, ty: ColumnType, key: bool) -> ColumnSchema {
    ColumnSchema { name: name.into(), ty, type_name: String::new(), type_id: 0, type_modifier: -1, nullable: !key, key }
}

const INT4: ColumnType = ColumnType::Int { bits: 32, signed: true };

fn table(name: &str, version: u32, extra: bool) -> Arc<TableSchema> {
    let mut columns = vec![col("id", INT4, true), col("body", ColumnType::Text { max_chars: None }, false)];
    if extra {
        columns.push(col("extra", ColumnType::Int { bits: 64, signed: true }, false));
    }
    Arc::new(TableSchema { id: TableId::new("public", name), version, columns })
}

fn change(schema: &Arc<TableSchema>, op: Op, lsn: u64, id: i32) -> StreamItem {
    let mut row = vec![Value::Int(id.into()), Value::Text(format!("row {id}"))];
    if schema.columns.len() == 3 {
        row.push(Value::Int(i64::from(id) * 10));
    }
    let (before, after) = match op {
        Op::Delete => (Some(row), None),
        _ => (None, Some(row)),
    };
    StreamItem::Change(ChangeEvent {
        op,
        table: schema.clone(),
        before,
        after,
        source: SourceInfo { commit_ts_us: 1_700_000_000_000_000, tx_id: Some(7), ..Default::default() },
        position: Position::Pg { lsn, index: 1 },
    })
}

fn commit(lsn: u64) -> StreamItem {
    StreamItem::Commit { tx_id: Some(7), commit_ts_us: 0, position: Position::pg(lsn + 1) }
}

fn config(dir: &std::path::Path, interval_secs: u64) -> IcebergConfig {
    serde_json::from_value(serde_json::json!({
        "name": "lake",
        "catalog": dir.join("catalog.db"),
        "warehouse": dir.join("warehouse").display().to_string(),
        "commit_interval": interval_secs,
    }))
    .unwrap()
}

/// Every row of `public.<name>`, read with iceberg's own scan.
fn read(sink: &IcebergSink, name: &str) -> Vec<RecordBatch> {
    sink.rt.block_on(async {
        let ident = TableIdent::from_strs(["public", name]).unwrap();
        let t = sink.catalog.load_table(&ident).await.unwrap();
        let stream = t.scan().select_all().build().unwrap().to_arrow().await.unwrap();
        stream.try_collect().await.unwrap()
    })
}

fn ids(batches: &[RecordBatch]) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for b in batches {
        let id = b.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int32Type>();
        let op = b.column_by_name("_op").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((id.value(i), op.value(i).to_string()));
        }
    }
    out.sort();
    out
}

#[test]
fn source_types_map_to_lossless_iceberg_types() {
    let ty = |t: ColumnType| iceberg_type(&build_kind(kind_of(&col("a", t, false))), &mut 0);
    let prim = |p| Type::Primitive(p);
    assert_eq!(ty(ColumnType::Decimal(Some((12, 4)))), prim(PrimitiveType::Decimal { precision: 12, scale: 4 }));
    assert_eq!(ty(ColumnType::Decimal(None)), prim(PrimitiveType::String));
    assert_eq!(ty(ColumnType::TimestampTz { precision: None }), prim(PrimitiveType::Timestamptz));
    assert_eq!(ty(ColumnType::Timestamp { precision: None }), prim(PrimitiveType::Timestamp));
    // MySQL: TIMESTAMP is an instant, DATETIME a wall-clock time, TIME a duration.
    assert_eq!(ty(ColumnType::TimestampTz { precision: Some(0) }), prim(PrimitiveType::Timestamptz));
    assert_eq!(ty(ColumnType::Timestamp { precision: Some(0) }), prim(PrimitiveType::Timestamp));
    assert_eq!(ty(ColumnType::Duration { precision: Some(0) }), prim(PrimitiveType::Long));
    assert_eq!(
        ty(ColumnType::Int { bits: 64, signed: false }),
        prim(PrimitiveType::Decimal { precision: 20, scale: 0 })
    );
    assert_eq!(ty(ColumnType::Int { bits: 32, signed: false }), prim(PrimitiveType::Long));
    assert_eq!(ty(ColumnType::Int { bits: 16, signed: true }), prim(PrimitiveType::Int));
    assert_eq!(ty(ColumnType::Uuid), prim(PrimitiveType::Uuid));
    assert_eq!(ty(ColumnType::Enum { labels: vec![] }), prim(PrimitiveType::String));
    assert!(matches!(ty(ColumnType::Interval), Type::Struct(_)));
    match ty(ColumnType::Array(Box::new(INT4))) {
        Type::List(l) => assert_eq!(*l.element_field.field_type, prim(PrimitiveType::Int)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn commits_hold_the_offset_and_a_restart_skips_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (table("a", 1, false), table("b", 1, false));
    let mut sink = config(dir.path(), 3600).open(crate::test_runtime()).unwrap();
    sink.write(&[change(&a, Op::Create, 10, 1), change(&b, Op::Create, 10, 1), commit(10)]).unwrap();
    sink.flush().unwrap();
    // Nothing is committed before the interval: only what precedes the first row is durable.
    assert_eq!(sink.durable(), Durable::Nothing);
    sink.write(&[change(&a, Op::Update, 20, 1), commit(20)]).unwrap();
    sink.finish().unwrap();
    assert_eq!(sink.durable(), Durable::All);
    assert_eq!(ids(&read(&sink, "a")), vec![(1, "c".into()), (1, "u".into())]);
    drop(sink);

    // Restart from nothing (the state directory's offset lost): the tables'
    // summaries say how far each got, so the replay adds only what is new.
    let mut sink = config(dir.path(), 3600).open(crate::test_runtime()).unwrap();
    assert_eq!(sink.delivered.table("public.a"), Some(&Position::pg(21)));
    sink.write(&[change(&a, Op::Create, 10, 1), change(&b, Op::Create, 10, 1), commit(10)]).unwrap();
    sink.write(&[change(&a, Op::Update, 20, 1), commit(20)]).unwrap();
    sink.write(&[change(&b, Op::Delete, 30, 1), commit(30)]).unwrap();
    sink.finish().unwrap();
    assert_eq!(ids(&read(&sink, "a")), vec![(1, "c".into()), (1, "u".into())]);
    assert_eq!(ids(&read(&sink, "b")), vec![(1, "c".into()), (1, "d".into())]);
}

#[test]
fn an_added_column_reaches_the_table_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (table("t", 1, false), table("t", 2, true));
    let mut sink = config(dir.path(), 0).open(crate::test_runtime()).unwrap();
    sink.write(&[change(&v1, Op::Create, 10, 1), commit(10)]).unwrap();
    sink.write(&[StreamItem::SchemaChange(outflow_model::SchemaChange::shape(v2.clone())), change(&v2, Op::Create, 20, 2), commit(20)]).unwrap();
    sink.finish().unwrap();
    let batches = read(&sink, "t");
    assert_eq!(ids(&batches), vec![(1, "c".into()), (2, "c".into())]);
    let mut extra: Vec<Option<i64>> = Vec::new();
    for b in &batches {
        let col = b.column_by_name("extra").expect("the added column").as_primitive::<arrow_array::types::Int64Type>();
        extra.extend(col.iter());
    }
    extra.sort();
    assert_eq!(extra, vec![None, Some(20)]);
}

fn upsert_config(dir: &std::path::Path) -> IcebergConfig {
    let mut c = config(dir, 3600);
    c.mode = Mode::Upsert;
    c
}

fn row_event(
    schema: &Arc<TableSchema>,
    op: Op,
    lsn: u64,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
) -> StreamItem {
    StreamItem::Change(ChangeEvent {
        op,
        table: schema.clone(),
        before,
        after,
        source: SourceInfo { commit_ts_us: 1_700_000_000_000_000, tx_id: Some(7), ..Default::default() },
        position: Position::Pg { lsn, index: 1 },
    })
}

fn text_row(id: i32, body: &str) -> Vec<Value> {
    vec![Value::Int(id.into()), Value::Text(body.into())]
}

/// `(id, body)` of every row iceberg's own scan returns (position deletes applied).
fn current_rows(sink: &IcebergSink, name: &str) -> Vec<(i32, Option<String>)> {
    let mut out = Vec::new();
    for b in read(sink, name) {
        let id = b.column_by_name("id").unwrap().as_primitive::<arrow_array::types::Int32Type>();
        let body = b.column_by_name("body").unwrap().as_string::<i32>();
        assert!(b.column_by_name("_op").is_none(), "upsert tables have no change-log columns");
        for i in 0..b.num_rows() {
            out.push((id.value(i), body.is_valid(i).then(|| body.value(i).to_string())));
        }
    }
    out.sort();
    out
}

#[test]
fn upsert_tables_hold_the_current_row_per_key_across_commits_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t", 1, false);
    let mut sink = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    let mut items: Vec<StreamItem> =
        (1..=5).map(|id| row_event(&t, Op::Read, 10, None, Some(text_row(id, "seed")))).collect();
    items.push(commit(10));
    sink.write(&items).unwrap();
    sink.finish().unwrap();
    assert_eq!(current_rows(&sink, "t").len(), 5);

    // Updated twice in one commit, deleted, moved to another key, TOAST left unchanged.
    sink.write(&[
        row_event(&t, Op::Update, 20, None, Some(text_row(1, "one"))),
        row_event(&t, Op::Update, 21, None, Some(text_row(1, "uno"))),
        row_event(&t, Op::Delete, 22, Some(vec![Value::Int(2), Value::Null]), None),
        row_event(&t, Op::Update, 23, Some(text_row(3, "seed")), Some(text_row(30, "moved"))),
        row_event(&t, Op::Update, 24, None, Some(vec![Value::Int(4), Value::Unchanged])),
        row_event(&t, Op::Create, 25, None, Some(text_row(6, "new"))),
        row_event(&t, Op::Delete, 26, Some(vec![Value::Int(6), Value::Null]), None),
        commit(26),
    ])
    .unwrap();
    sink.finish().unwrap();
    let want = vec![
        (1, Some("uno".to_string())),
        (4, Some("seed".to_string())),
        (5, Some("seed".to_string())),
        (30, Some("moved".to_string())),
    ];
    assert_eq!(current_rows(&sink, "t"), want);
    drop(sink);

    // A new run rebuilds the index from the table: its changes replace run 1's rows.
    let mut sink = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    sink.write(&[
        row_event(&t, Op::Update, 20, None, Some(text_row(1, "replayed, skipped"))),
        row_event(&t, Op::Update, 30, None, Some(vec![Value::Int(5), Value::Unchanged])),
        row_event(&t, Op::Update, 31, None, Some(text_row(30, "again"))),
        row_event(&t, Op::Delete, 32, Some(vec![Value::Int(4), Value::Null]), None),
        commit(32),
    ])
    .unwrap();
    sink.finish().unwrap();
    let want = vec![(1, Some("uno".to_string())), (5, Some("seed".to_string())), (30, Some("again".to_string()))];
    assert_eq!(current_rows(&sink, "t"), want);

    // A truncate empties the table; rows after it arrive.
    sink.write(&[
        row_event(&t, Op::Update, 40, None, Some(text_row(1, "gone"))),
        row_event(&t, Op::Truncate, 41, None, None),
        row_event(&t, Op::Create, 42, None, Some(text_row(7, "after"))),
        commit(42),
    ])
    .unwrap();
    sink.finish().unwrap();
    assert_eq!(current_rows(&sink, "t"), vec![(7, Some("after".to_string()))]);
    drop(sink);
    let sink = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    assert_eq!(sink.delivered.table("public.t"), Some(&Position::pg(43)));
}

#[test]
fn upsert_mode_refuses_a_change_log_table() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t", 1, false);
    let mut sink = config(dir.path(), 0).open(crate::test_runtime()).unwrap();
    sink.write(&[change(&t, Op::Create, 10, 1), commit(10)]).unwrap();
    sink.finish().unwrap();
    drop(sink);
    let mut sink = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    let err = sink.write(&[change(&t, Op::Create, 20, 2), commit(20)]).unwrap_err().to_string();
    assert!(err.contains("was created by mode = \"append\""), "{err}");
}

#[test]
fn upsert_changes_to_rows_written_earlier_in_the_same_commit_replace_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t", 1, false);
    let mut sink = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    // More keys than one batch: the first batch is written to the open data
    // file before the changes below arrive, all in one commit.
    let n = super::table::BATCH_ROWS as i32 + 10;
    let mut items: Vec<StreamItem> =
        (1..=n).map(|id| row_event(&t, Op::Read, 10, None, Some(text_row(id, &format!("body {id}"))))).collect();
    items.push(row_event(&t, Op::Update, 20, None, Some(vec![Value::Int(1), Value::Unchanged])));
    items.push(row_event(&t, Op::Update, 21, None, Some(text_row(2, "changed"))));
    items.push(row_event(&t, Op::Delete, 22, Some(vec![Value::Int(3), Value::Null]), None));
    items.push(commit(22));
    sink.write(&items).unwrap();
    sink.finish().unwrap();
    let rows = current_rows(&sink, "t");
    assert_eq!(rows.len(), n as usize - 1, "one row per key, 3 deleted");
    assert_eq!(rows[0], (1, Some("body 1".to_string())), "the unchanged value read back from the open file");
    assert_eq!(rows[1], (2, Some("changed".to_string())));
    assert_eq!(rows[2].0, 4);
}

#[test]
fn an_upsert_commit_fails_if_another_writer_committed_first() {
    let dir = tempfile::tempdir().unwrap();
    let t = table("t", 1, false);
    let mut first = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    first.write(&[row_event(&t, Op::Read, 10, None, Some(text_row(1, "seed"))), commit(10)]).unwrap();
    first.finish().unwrap();
    let mut second = upsert_config(dir.path()).open(crate::test_runtime()).unwrap();
    second.write(&[row_event(&t, Op::Update, 20, None, Some(text_row(1, "second"))), commit(20)]).unwrap();
    first.write(&[row_event(&t, Op::Update, 21, None, Some(text_row(1, "first"))), commit(21)]).unwrap();
    first.finish().unwrap();
    let err = second.finish().unwrap_err().to_string();
    assert!(err.contains("another writer committed to it"), "{err}");
    assert_eq!(
        current_rows(&first, "t"),
        vec![(1, Some("first".to_string()))],
        "nothing of the failed commit is visible"
    );
}
