//! Unit tests of the stream side of snapshots (windows, key ranges).

use super::*;
use outflow_model::Value;

#[test]
fn integer_keys_split_into_equal_widths() {
    let texts = |v: Vec<KeyText>| v.into_iter().map(|k| k[0].clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(texts(interpolated_uppers(1, 1_000_000, 2)), ["500000"]);
    assert_eq!(texts(interpolated_uppers(-10, 10, 4)), ["-5", "0", "5"]);
    // Fewer distinct keys than ranges: no empty or repeated boundary.
    assert_eq!(texts(interpolated_uppers(7, 8, 4)), ["7"]);
    assert!(interpolated_uppers(5, 5, 3).is_empty());
    let max = u64::MAX as i128;
    assert_eq!(texts(interpolated_uppers(0, max, 2)), [(max / 2).to_string()]);
}

fn schema() -> Arc<TableSchema> {
    let col = |name: &str, key: bool| outflow_model::ColumnSchema {
        name: name.into(),
        ty: outflow_model::ColumnType::Int { bits: 32, signed: true },
        type_name: "int".into(),
        type_id: 3,
        type_modifier: -1,
        nullable: !key,
        key,
    };
    Arc::new(TableSchema { id: TableId::new("d", "t"), version: 1, columns: vec![col("id", true), col("v", false)] })
}

fn at(sub: u32) -> Position {
    Position::mysql(outflow_model::position::MysqlAnchor::File { name: "mysql-bin.000001".into(), pos: sub as u64 })
}

#[tokio::test]
async fn chunks_without_watermarks_wait_for_their_position_and_drop_changed_keys() {
    let (tx, rx) = mpsc::channel(4);
    let mut windows = Windows::new(String::new(), rx, 1);
    let (opened, at_open) = oneshot::channel();
    tx.send(ReaderEvent::Open { id: 7, table: "d.t".into(), opened }).await.unwrap();
    windows.receive().await.unwrap();
    assert!(!windows.finished());
    windows.open_pending(&at(100));
    assert_eq!(at_open.await.unwrap(), at(100));
    let change = ChangeEvent {
        op: Op::Update,
        table: schema(),
        before: Some(vec![Value::Int(2), Value::Int(0)]),
        after: Some(vec![Value::Int(2), Value::Int(1)]),
        source: SourceInfo::default(),
        position: at(150),
    };
    windows.on_change(&change);
    let (emitted, done) = oneshot::channel();
    let rows = (1..=3).map(|i| vec![Value::Int(i), Value::Int(0)]).collect();
    let progress =
        TableSnapshot { last_key: Some(vec![Some("3".into())]), resume: None, ranges: vec![], rows: 3, done: true };
    let chunk = Chunk {
        id: 7,
        table: schema(),
        rows,
        keyed: true,
        progress,
        range: None,
        high: Some(at(200)),
        source: SourceInfo::default(),
        emitted,
    };
    tx.send(ReaderEvent::Chunk(chunk)).await.unwrap();
    windows.receive().await.unwrap();
    let mut n = 0;
    let mut next = || {
        n += 1;
        at(1000 + n)
    };
    let mut out = Vec::new();
    windows.emit_reached(|high| *high <= at(199), &mut next, &mut out);
    assert!(out.is_empty(), "the stream is not past the chunk's position yet");
    windows.emit_reached(|high| *high <= at(200), &mut next, &mut out);
    let ids: Vec<_> = out
        .iter()
        .filter_map(|i| match i {
            StreamItem::Change(e) => e.after.as_ref().map(|r| r[0].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![Value::Int(1), Value::Int(3)], "key 2 changed in the window");
    assert!(matches!(out.first(), Some(StreamItem::Begin { .. })));
    assert!(matches!(out.last(), Some(StreamItem::Commit { .. })));
    assert!(out.windows(2).all(|w| w[0].position() < w[1].position()));
    done.await.unwrap();
    tx.send(ReaderEvent::TableDone(TableId::new("public", "t"))).await.unwrap();
    windows.receive().await.unwrap();
    assert!(windows.finished());
}

#[test]
fn key_ranges_combine_into_the_tables_progress_in_emission_order() {
    let (_tx, rx) = mpsc::channel(1);
    let mut windows = Windows::new(String::new(), rx, 1);
    let key = |k: &str| Some(vec![Some(k.to_string())]);
    let ranges = ranges_between(vec![vec![Some("500".into())]]);
    assert_eq!(ranges.len(), 2);
    assert_eq!((range_start(&ranges, 0), range_start(&ranges, 1)), (None, key("500")));
    let base = TableSnapshot { ranges: ranges.clone(), rows: 0, ..TableSnapshot::default() };
    let table = TableId::new("d", "t");
    let update = |reader, index: usize, last: &str, done| RangeUpdate {
        reader,
        index,
        range: KeyRange { upper: ranges[index].upper.clone(), last_key: key(last), done },
    };
    // The second range's chunk is emitted first.
    let p = windows.advance_range(&table, base.clone(), update(1, 1, "600", false), 100);
    assert_eq!(
        (p.rows, p.done, p.ranges[0].last_key.clone(), p.ranges[1].last_key.clone()),
        (100, false, None, key("600"))
    );
    let p = windows.advance_range(&table, base.clone(), update(1, 0, "100", true), 100);
    assert_eq!((p.rows, p.done), (200, false), "done only once every range is");
    let p = windows.advance_range(&table, base.clone(), update(1, 1, "700", true), 50);
    assert_eq!((p.rows, p.done, p.ranges[1].last_key.clone()), (250, true, key("700")));
    // A new reader of the table (snapshotted again) starts over.
    let p = windows.advance_range(&table, base, update(2, 0, "10", false), 10);
    assert_eq!((p.rows, p.done, p.ranges[1].last_key.clone()), (10, false, None));
    // A table stored as one range (or by an older version) goes on from its last key.
    let old = TableSnapshot { last_key: key("42"), rows: 42, ..TableSnapshot::default() };
    assert_eq!(stored_ranges(&old), vec![KeyRange { upper: None, last_key: key("42"), done: false }]);
    assert!(!worth_splitting(&old, 1_000_000, 1000, 2), "a table partly read goes on as it was");
    assert!(worth_splitting(&TableSnapshot::default(), 8000, 1000, 2));
    assert!(!worth_splitting(&TableSnapshot::default(), 7999, 1000, 2));
}

/// A chunk of `table` (schema `d.t`) with ids `from..=to`, consistent with `high`.
fn chunk(id: u64, from: i64, to: i64, high: Position) -> (Chunk, oneshot::Receiver<()>) {
    let (emitted, done) = oneshot::channel();
    let rows = (from..=to).map(|i| vec![Value::Int(i), Value::Int(0)]).collect();
    let progress = TableSnapshot {
        last_key: Some(vec![Some(to.to_string())]),
        resume: None,
        ranges: vec![],
        rows: (to - from + 1) as u64,
        done: false,
    };
    let chunk = Chunk {
        id,
        table: schema(),
        rows,
        keyed: true,
        progress,
        range: None,
        high: Some(high),
        source: SourceInfo::default(),
        emitted,
    };
    (chunk, done)
}

#[tokio::test]
async fn a_stopped_table_drops_its_chunks_and_stores_its_progress_as_done_once() {
    let (tx, rx) = mpsc::channel(4);
    let mut windows = Windows::new(String::new(), rx, 0);
    let table = TableId::new("d", "t");
    windows.reader_started(&table);
    assert!(windows.stop(&table));
    assert!(!windows.stop(&TableId::new("d", "other")), "no reader of it runs");
    let mut n = 0;
    let mut next = || {
        n += 1;
        at(1000 + n)
    };
    let mut out = Vec::new();
    for (id, from) in [(1, 1), (2, 4)] {
        let (c, done) = chunk(id, from, from + 2, at(10));
        tx.send(ReaderEvent::Chunk(c)).await.unwrap();
        windows.receive().await.unwrap();
        windows.emit_reached(|_| true, &mut next, &mut out);
        assert!(done.await.is_err(), "the reader learns its chunk was dropped");
    }
    assert!(!out.iter().any(|i| matches!(i, StreamItem::Change(_))), "no row of a stopped table");
    let marks: Vec<_> = out
        .iter()
        .filter_map(|i| match i {
            StreamItem::SnapshotProgress(p) => Some((p.done, p.rows)),
            _ => None,
        })
        .collect();
    assert_eq!(marks, [(true, 3)], "one final progress, marked done");
    tx.send(ReaderEvent::TableDone(table.clone())).await.unwrap();
    windows.receive().await.unwrap();
    assert_eq!(windows.take_ended(), [table.clone()]);
    assert!(!windows.is_running(&table));
    assert!(windows.finished());
}

#[tokio::test]
async fn a_watermark_of_a_chunk_already_emitted_is_ignored() {
    let (tx, rx) = mpsc::channel(4);
    let mut windows = Windows::new(String::new(), rx, 1);
    windows.open_window(5, "d.t".into());
    let (c, _done) = chunk(5, 1, 3, at(10));
    tx.send(ReaderEvent::Chunk(c)).await.unwrap();
    let (c, changed) = windows.close_window(5).await.unwrap().expect("the chunk");
    let mut n = 0;
    let mut next = || {
        n += 1;
        at(1000 + n)
    };
    let mut out = Vec::new();
    windows.emit(c, &changed, SourceInfo::default(), &mut next, &mut out);
    // The stream restarts inside the run and reads both watermarks again.
    windows.open_window(5, "d.t".into());
    let again = tokio::time::timeout(std::time::Duration::from_secs(5), windows.close_window(5)).await;
    assert!(matches!(again, Ok(Ok(None))), "ignored at once, not waited for");
    tx.send(ReaderEvent::TableDone(TableId::new("d", "t"))).await.unwrap();
    windows.receive().await.unwrap();
    assert!(windows.finished(), "no window left open");
}
