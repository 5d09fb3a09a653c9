//! The bookkeeping every exactly-once sink shares around its own commit
//! record (Kafka's offsets topic, the PostgreSQL target's offsets row,
//! Parquet's manifests, Iceberg's snapshot summaries).
//!
//! Such a sink stores, atomically with its data, how far its data reaches
//! and the snapshot progress of the chunks it holds ([`crate::snapshot_marks`]).
//! On start it reads that record back ([`Delivered::recovered`]) and skips
//! what the destination already holds — by one position for the whole sink
//! ([`Delivered::holds`]), or per table when its tables commit separately
//! ([`Delivered::table_holds`]) — because the state directory's offset can
//! trail the destination's record by one commit after a crash. While
//! writing it notes every item ([`Delivered::note`]); at a commit it takes
//! the record to store ([`Delivered::commit_record`]) and then says what
//! the commit made durable ([`Delivered::committed`],
//! [`Delivered::table_committed`]).
//!
//! What each sink stores, and where, is its own: this helper only keeps the
//! positions and the snapshot record, so every sink's stored format is what
//! it was.

use std::collections::BTreeMap;

use outflow_model::{Position, StreamItem};

use crate::snapshot_marks::{SnapshotMarks, SnapshotRecord};
use crate::Durable;

#[derive(Debug, Default)]
pub struct Delivered {
    /// Everything at or before this was in the destination on start.
    recovered: Option<Position>,
    /// Per table (the sink's own key), the last change its committed data
    /// holds.
    tables: BTreeMap<String, Position>,
    /// The last position noted since start.
    written: Option<Position>,
    /// The position the last commit (or the recovered record) reaches.
    committed: Option<Position>,
    marks: SnapshotMarks,
    /// Whether the recovered record had snapshot progress.
    marks_recovered: bool,
}

impl Delivered {
    /// Starts from what the destination's commit record holds: `position`
    /// (the whole sink's), `tables` (per table) and `snapshot` (None: the
    /// record had no snapshot progress, or there was no record).
    pub fn recovered(
        position: Option<Position>,
        tables: BTreeMap<String, Position>,
        snapshot: Option<SnapshotRecord>,
    ) -> Delivered {
        Delivered {
            recovered: position.clone(),
            tables,
            written: None,
            committed: position,
            marks_recovered: snapshot.is_some(),
            marks: SnapshotMarks::recovered(snapshot),
        }
    }

    /// Whether the destination held `position` already on start.
    pub fn holds(&self, position: &Position) -> bool {
        self.recovered.as_ref().is_some_and(|r| position <= r)
    }

    /// Whether `table`'s committed data holds `position` already.
    pub fn table_holds(&self, table: &str, position: &Position) -> bool {
        self.tables.get(table).is_some_and(|done| position <= done)
    }

    /// Per table, the last change its committed data holds.
    pub fn tables(&self) -> impl Iterator<Item = (&String, &Position)> {
        self.tables.iter()
    }

    /// The last change `table`'s committed data holds.
    pub fn table(&self, table: &str) -> Option<&Position> {
        self.tables.get(table)
    }

    /// Notes an item handed to the sink (its snapshot progress, and its
    /// position as the last written).
    pub fn note(&mut self, item: &StreamItem) {
        self.marks.note(item);
        if let Some(p) = item.position() {
            self.written = Some(p.clone());
        }
    }

    /// The last position noted since start.
    pub fn written(&self) -> Option<&Position> {
        self.written.as_ref()
    }

    /// The last position noted, when no commit reaches it yet.
    pub fn uncommitted(&self) -> Option<Position> {
        self.written.clone().filter(|w| Some(w) != self.committed.as_ref())
    }

    /// The snapshot record for a commit that makes everything through
    /// `durable` durable ([`Durable::Nothing`]: the record as it was).
    pub fn commit_record(&mut self, durable: &Durable) -> &SnapshotRecord {
        match durable {
            Durable::All => self.marks.commit_through(None),
            Durable::Through(p) => self.marks.commit_through(Some(p)),
            Durable::Nothing => self.marks.committed(),
        }
    }

    /// The snapshot record as of the last commit.
    pub fn committed_record(&self) -> &SnapshotRecord {
        self.marks.committed()
    }

    /// A commit made everything through `position` durable.
    pub fn committed(&mut self, position: Position) {
        self.committed = Some(position);
    }

    /// A commit made `table`'s data through `position` durable.
    pub fn table_committed(&mut self, table: String, position: Position) {
        self.tables.insert(table, position);
    }

    /// For [`crate::Sink::recovered_snapshot`]: the recovered record's
    /// snapshot progress (None when it had none).
    pub fn recovered_snapshot(&self) -> Option<&SnapshotRecord> {
        self.marks_recovered.then(|| self.marks.committed())
    }
}

/// What a sink whose tables commit separately has made durable, from the
/// tables still holding uncommitted rows: for each, the stream position
/// just before its first uncommitted row (None: that row came first in the
/// run). Everything before the oldest of them is durable.
pub fn durable_before<'a>(open: impl IntoIterator<Item = Option<&'a Position>>) -> Durable {
    let mut min: Option<&Position> = None;
    for before in open {
        let Some(before) = before else { return Durable::Nothing };
        if min.is_none_or(|m| before < m) {
            min = Some(before);
        }
    }
    match min {
        None => Durable::All,
        Some(p) => Durable::Through(p.clone()),
    }
}

#[cfg(test)]
mod tests {
    use outflow_model::{SnapshotProgress, TableId};

    use super::*;

    fn pg(lsn: u64) -> Position {
        Position::Pg { lsn, index: 1 }
    }

    #[test]
    fn the_recovered_record_is_skipped_and_commits_move_it() {
        let mut d = Delivered::recovered(Some(pg(10)), BTreeMap::from([("t".into(), pg(20))]), None);
        assert!(d.holds(&pg(10)) && !d.holds(&pg(11)));
        assert!(d.table_holds("t", &pg(20)) && !d.table_holds("t", &pg(21)) && !d.table_holds("u", &pg(1)));
        assert_eq!(d.recovered_snapshot(), None);
        assert_eq!(d.uncommitted(), None);
        let mark = StreamItem::SnapshotProgress(SnapshotProgress {
            table: TableId::new("public", "a"),
            last_key: None,
            resume: None,
            ranges: Vec::new(),
            rows: 3,
            done: true,
            position: pg(12),
        });
        d.note(&mark);
        assert_eq!(d.uncommitted(), Some(pg(12)));
        assert!(d.commit_record(&Durable::Through(pg(11))).is_empty());
        assert_eq!(d.commit_record(&Durable::All)["public.a"]["rows"], 3);
        d.committed(pg(12));
        assert_eq!(d.uncommitted(), None);
    }

    #[test]
    fn durable_is_before_the_oldest_open_table() {
        assert_eq!(durable_before([]), Durable::All);
        assert_eq!(durable_before([Some(&pg(5)), Some(&pg(3))]), Durable::Through(pg(3)));
        assert_eq!(durable_before([Some(&pg(5)), None]), Durable::Nothing);
    }
}
