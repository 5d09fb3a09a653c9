//! Snapshot progress kept in a sink's own commit record.
//!
//! The pipeline stores each table's snapshot progress with the sink's offset
//! in the state directory, after the sink's flush. Sinks whose own commit
//! record is the source of truth (Kafka's offsets topic, Parquet's manifest)
//! can be one commit ahead of that file after a crash between the two writes;
//! if the progress lived only in the state directory, the next run would read
//! the last chunk again under new positions, and the sink, which skips by
//! position, would hold its rows twice. So these sinks also write the
//! progress of the chunks their commit holds into the commit record itself,
//! and report it back on start ([`crate::Sink::recovered_snapshot`]).
//!
//! The progress is kept as JSON objects shaped like the state directory's
//! (`last_key`, `resume`, `ranges`, `rows`, `done`); the sinks crate does not
//! interpret it. Sinks keep it through [`crate::exactly_once::Delivered`].

use std::collections::BTreeMap;

use outflow_model::{Position, SnapshotProgress, StreamItem};
use serde_json::{json, Value as Json};

/// Per table (`schema.table`), the progress of the last chunk committed.
pub type SnapshotRecord = BTreeMap<String, Json>;

#[derive(Debug, Default)]
pub struct SnapshotMarks {
    /// Written, not yet in a commit record, in stream order.
    pending: Vec<SnapshotProgress>,
    committed: SnapshotRecord,
}

impl SnapshotMarks {
    /// Starts from the record a commit stored (None: it had none).
    pub fn recovered(record: Option<SnapshotRecord>) -> Self {
        SnapshotMarks { pending: Vec::new(), committed: record.unwrap_or_default() }
    }

    /// Notes a written item (only progress marks matter).
    pub fn note(&mut self, item: &StreamItem) {
        if let StreamItem::SnapshotProgress(p) = item {
            self.pending.push(p.clone());
        }
    }

    /// The record for a commit that makes everything through `durable`
    /// durable (None: everything written).
    pub fn commit_through(&mut self, durable: Option<&Position>) -> &SnapshotRecord {
        let n = self.pending.iter().take_while(|p| durable.is_none_or(|d| p.position <= *d)).count();
        for p in self.pending.drain(..n) {
            let mut progress = json!({ "last_key": p.last_key, "resume": p.resume, "rows": p.rows, "done": p.done });
            if !p.ranges.is_empty() {
                progress["ranges"] = json!(p.ranges);
            }
            self.committed.insert(p.table.to_string(), progress);
        }
        &self.committed
    }

    /// The record as of the last commit.
    pub fn committed(&self) -> &SnapshotRecord {
        &self.committed
    }
}

#[cfg(test)]
mod tests {
    use outflow_model::TableId;

    use super::*;

    fn mark(table: &str, rows: u64, lsn: u64) -> StreamItem {
        StreamItem::SnapshotProgress(SnapshotProgress {
            table: TableId::new("public", table),
            last_key: Some(vec![Some(rows.to_string())]),
            resume: None,
            ranges: Vec::new(),
            rows,
            done: false,
            position: Position::Pg { lsn, index: 1 },
        })
    }

    #[test]
    fn only_marks_through_the_durable_position_are_committed() {
        let mut marks = SnapshotMarks::recovered(None);
        marks.note(&mark("a", 10, 100));
        marks.note(&mark("a", 20, 200));
        marks.note(&mark("b", 5, 300));
        let record = marks.commit_through(Some(&Position::Pg { lsn: 200, index: 1 }));
        assert_eq!(record.len(), 1);
        assert_eq!(record["public.a"]["rows"], 20);
        assert_eq!(marks.commit_through(None)["public.b"]["last_key"], json!(["5"]));
    }
}
