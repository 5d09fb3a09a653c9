//! Parquet sink scenarios on a local directory: rows and metadata columns
//! read back with the parquet crate's own reader, the durable position
//! trailing uncommitted files, and recovery after a crash mid-file.

use std::sync::Arc;

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, RecordBatch};
use outflow_model::{
    ChangeEvent, ColumnSchema, ColumnType, Op, Position, SourceInfo, StreamItem, TableId, TableSchema, Value,
};

use super::*;

fn schema(version: u32, extra: bool) -> Arc<TableSchema> {
    let col = |name: &str, t: &str, key: bool| ColumnSchema {
        name: name.into(),
        ty: match t {
            "int4" => ColumnType::Int { bits: 32, signed: true },
            "int8" => ColumnType::Int { bits: 64, signed: true },
            _ => ColumnType::Text { max_chars: None },
        },
        type_name: t.into(),
        type_id: 0,
        type_modifier: -1,
        nullable: !key,
        key,
    };
    let mut columns = vec![col("id", "int4", true), col("body", "text", false)];
    if extra {
        columns.push(col("extra", "int8", false));
    }
    Arc::new(TableSchema { id: TableId::new("public", "t"), version, columns })
}

fn change(op: Op, lsn: u64, index: u32, id: i32, body: Value) -> StreamItem {
    let row = vec![Value::Int(id.into()), body];
    let (before, after) = match op {
        Op::Delete => (Some(row), None),
        _ => (None, Some(row)),
    };
    StreamItem::Change(ChangeEvent {
        op,
        table: schema(1, false),
        before,
        after,
        source: SourceInfo {
            commit_ts_us: 1_700_000_000_000_000,
            tx_id: Some(7),
            lsn: None,
            last_commit_lsn: None,
            snapshot: false,
            binlog: None,
        },
        position: Position::Pg { lsn, index },
    })
}

fn commit(lsn: u64) -> StreamItem {
    StreamItem::Commit { tx_id: Some(7), commit_ts_us: 0, position: Position::pg(lsn + 1) }
}

fn config(dir: &std::path::Path, roll_rows: u64) -> ParquetConfig {
    let text = format!("name = \"lake\"\npath = {:?}\nroll_rows = {roll_rows}\n", dir.display().to_string());
    toml_like(&text)
}

/// The config through serde, as the binary reads it (JSON here: the sinks
/// crate has no toml dependency).
fn toml_like(text: &str) -> ParquetConfig {
    let mut map = serde_json::Map::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(" = ").unwrap();
        let v: serde_json::Value = serde_json::from_str(v).unwrap();
        map.insert(k.into(), v);
    }
    serde_json::from_value(serde_json::Value::Object(map)).unwrap()
}

fn read_table(dir: &std::path::Path) -> Vec<RecordBatch> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("public.t")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap()).unwrap().build().unwrap();
            reader.map(|b| b.unwrap()).collect::<Vec<_>>()
        })
        .collect()
}

fn ids(batches: &[RecordBatch]) -> Vec<i32> {
    batches.iter().flat_map(|b| b.column_by_name("id").unwrap().as_primitive::<Int32Type>().values().to_vec()).collect()
}

#[test]
fn changes_arrive_with_metadata_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), 1000).open(None, crate::test_runtime()).unwrap();
    sink.write(&[
        change(Op::Create, 0x100, 1, 1, Value::Text("a".into())),
        change(Op::Update, 0x100, 2, 1, Value::Unchanged),
        change(Op::Delete, 0x100, 3, 1, Value::Null),
        commit(0x100),
    ])
    .unwrap();
    sink.finish().unwrap();
    assert_eq!(sink.durable(), Durable::All);
    let batches = read_table(dir.path());
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3);
    let ops: Vec<_> =
        b.column_by_name("_op").unwrap().as_string::<i32>().iter().map(|o| o.unwrap().to_string()).collect();
    assert_eq!(ops, ["c", "u", "d"]);
    let body = b.column_by_name("body").unwrap();
    assert!(body.is_null(1), "an unchanged TOAST value is null...");
    let unchanged = b.column_by_name("_unchanged").unwrap().as_list::<i32>();
    assert_eq!(unchanged.value(1).as_string::<i32>().value(0), "body", "...and named in _unchanged");
    assert_eq!(unchanged.value(0).len(), 0);
    assert_eq!(b.column_by_name("_position").unwrap().as_string::<i32>().value(2), "lsn:0/100:3");
    assert!(dir.path().join("_outflow/manifest-0000000001.json").exists());
    assert_eq!(std::fs::read_dir(dir.path().join("_outflow/tmp")).unwrap().count(), 0);
}

#[test]
fn durable_position_trails_uncommitted_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), 2).open(None, crate::test_runtime()).unwrap();
    sink.write(&[StreamItem::Heartbeat { position: Position::pg(0x50) }]).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.durable(), Durable::All);
    sink.write(&[
        change(Op::Create, 0x100, 1, 1, Value::Null),
        change(Op::Create, 0x100, 2, 2, Value::Null),
        change(Op::Create, 0x100, 3, 3, Value::Null),
        commit(0x100),
    ])
    .unwrap();
    sink.flush().unwrap();
    // Rows 1-2 rolled and committed; row 3 sits in an open file.
    assert_eq!(sink.durable(), Durable::Through(Position::Pg { lsn: 0x100, index: 2 }));
    sink.finish().unwrap();
    assert_eq!(sink.durable(), Durable::All);
    assert_eq!(ids(&read_table(dir.path())), [1, 2, 3]);
}

#[test]
fn a_snapshot_chunk_is_never_committed_in_part() {
    // A chunk's rows get new positions when it is read again after a
    // crash, so its files roll only at its Commit, with its progress mark.
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), 2).open(None, crate::test_runtime()).unwrap();
    let read = |index, id| match change(Op::Read, 0x100, index, id, Value::Null) {
        StreamItem::Change(mut ev) => {
            ev.source.snapshot = true;
            StreamItem::Change(ev)
        }
        _ => unreachable!(),
    };
    sink.write(&[
        StreamItem::Begin { tx_id: None, commit_ts_us: 0, position: Position::Pg { lsn: 0x100, index: 0 } },
        read(1, 1),
        read(2, 2),
        read(3, 3),
    ])
    .unwrap();
    sink.flush().unwrap();
    let before_chunk = Durable::Through(Position::Pg { lsn: 0x100, index: 0 });
    assert_eq!(sink.durable(), before_chunk, "no file rolled inside the chunk");
    sink.write(&[StreamItem::Commit { tx_id: None, commit_ts_us: 0, position: Position::Pg { lsn: 0x100, index: 4 } }])
        .unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.durable(), Durable::All, "the whole chunk rolled at its Commit");
    assert_eq!(ids(&read_table(dir.path())), [1, 2, 3]);
}

#[test]
fn a_crash_mid_file_leaves_every_change_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<StreamItem> = (1..=10).map(|i| change(Op::Create, 0x100, i, i as i32, Value::Null)).collect();
    let mut sink = config(dir.path(), 4).open(None, crate::test_runtime()).unwrap();
    sink.write(&items[..6]).unwrap();
    let checkpoint = sink.flush().unwrap();
    assert_eq!(checkpoint, json!({"manifest": 1}));
    // Crash: the open file (rows 5-6) is never committed, and the pipeline's
    // stored offset is older than the manifest (its write was lost).
    drop(sink);
    // A file that was being written when the process died.
    std::fs::write(dir.path().join("_outflow/tmp/0000000099.parquet"), b"PAR1 torn").unwrap();
    let mut sink = config(dir.path(), 4).open(None, crate::test_runtime()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("_outflow/tmp")).unwrap().count(), 0, "staged file deleted");
    sink.write(&items).unwrap();
    sink.finish().unwrap();
    assert_eq!(ids(&read_table(dir.path())), (1..=10).collect::<Vec<_>>());
}

#[test]
fn a_schema_change_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), 1000).open(None, crate::test_runtime()).unwrap();
    let mut second = change(Op::Create, 0x200, 1, 2, Value::Null);
    if let StreamItem::Change(ev) = &mut second {
        ev.table = schema(2, true);
        ev.after = Some(vec![Value::Int(2), Value::Null, Value::Int(42)]);
    }
    sink.write(&[change(Op::Create, 0x100, 1, 1, Value::Null), StreamItem::SchemaChange(outflow_model::SchemaChange::shape(schema(2, true))), second])
        .unwrap();
    sink.finish().unwrap();
    let batches = read_table(dir.path());
    assert_eq!(batches.len(), 2);
    assert!(batches[0].column_by_name("extra").is_none());
    assert!(batches[1].column_by_name("extra").is_some());
}
