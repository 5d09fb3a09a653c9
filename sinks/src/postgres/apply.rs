//! One target table: its shape, the changes buffered for it, and the SQL
//! that applies them as one batch.
//!
//! Keyed tables collapse a batch to the last event per key (rendered key
//! text): an insert/update/snapshot read is an upsert, a delete a delete; an
//! update that changes the key is a delete of the old key plus an upsert of
//! the new one. A PostgreSQL TOAST value the source did not send
//! (`Value::Unchanged`) is filled from the row's earlier image in the batch
//! (for an update that changed the key: the old key's image) when there is
//! one; otherwise the row is marked (`_unch`, the column indexes) and its
//! merge takes that column from the target: from the row's own key, or, for
//! a row an update moved to another key, from the old key's row (staged as
//! `_op = 'm'` with the old key in `_from_<key column position>`). An image
//! that still leaves values to the target passes on where they are, so a
//! chain of key changes in one batch reads the first old key. When the old
//! key's row is not in the target either (it never reached it), the moved
//! row is inserted with those columns NULL, and a warning gives the count.
//!
//! The batch goes into a temporary staging table with `COPY`, then one
//! round trip runs the merge: first, for moved rows, a count of those whose
//! old row is missing and an `INSERT ... SELECT` from the staging table
//! joined to the old keys' target rows, before any row of the batch is
//! deleted or replaced, so the old values are still there (`ON CONFLICT`:
//! the new key may hold a row the batch deletes or moves away, as in a swap
//! of keys); then `DELETE ... USING` for the deletes,
//! `INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE` for complete rows,
//! and `UPDATE ... FROM` with a `CASE` per column for rows with unchanged
//! values. Every key occurs once in the staging table, so `ON CONFLICT`
//! never meets the same row twice.
//!
//! Tables without a key are append-only: inserts are copied straight into
//! the target; updates and deletes cannot be matched to a row and are
//! counted and logged, not applied.

use std::collections::HashMap;
use std::sync::Arc;

use outflow_model::{ChangeEvent, Dialect, Op, Row, TableSchema, Value};

use super::text::write_copy_field;
use super::types::target_type;

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The target columns of a source schema: (name, SQL type).
pub fn target_columns(dialect: Dialect, schema: &TableSchema) -> Vec<(String, String)> {
    schema.columns.iter().map(|c| (c.name.clone(), target_type(dialect, c))).collect()
}

enum Pending {
    /// The new row image, and the old row (key columns set) of an update
    /// that moved it to another key when the values the image left
    /// unchanged are in that key's target row (None: in its own).
    Upsert(Row, Option<Row>),
    Delete(Row),
}

/// What one batch of a table needs sent.
pub struct Batch {
    /// COPY data for the staging table (keyed) or the target (keyless).
    pub copy: Vec<u8>,
    pub rows: usize,
    pub deletes: bool,
    pub upserts: bool,
    pub unchanged: bool,
    /// Rows moved to another key that take unchanged values from the old key's target row.
    pub moves: bool,
}

pub struct TableState {
    pub schema: Arc<TableSchema>,
    /// Quoted `"schema"."table"` in the target.
    pub target: String,
    /// Name of this table's temporary staging table.
    pub stage: String,
    /// The staging table exists in the open transaction.
    pub stage_ready: bool,
    pub columns: Vec<(String, String)>,
    keys: Vec<usize>,
    /// Keyed tables: rendered key → index into `entries`.
    by_key: HashMap<Vec<u8>, usize>,
    entries: Vec<Pending>,
    /// Keyless tables: rows to append.
    appends: Vec<Row>,
    /// Updates and deletes of a keyless table not applied (this run).
    pub not_applicable: u64,
    scratch: String,
    key_buf: Vec<u8>,
}

impl TableState {
    pub fn new(dialect: Dialect, schema: Arc<TableSchema>, target: String, stage: String) -> Self {
        let columns = target_columns(dialect, &schema);
        let keys = schema.key_indexes().collect();
        TableState {
            schema,
            target,
            stage,
            stage_ready: false,
            columns,
            keys,
            by_key: HashMap::new(),
            entries: Vec::new(),
            appends: Vec::new(),
            not_applicable: 0,
            scratch: String::new(),
            key_buf: Vec::new(),
        }
    }

    pub fn keyed(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn pending(&self) -> usize {
        self.entries.len() + self.appends.len()
    }

    /// Forgets what is buffered (the table was truncated after it).
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.entries.clear();
        self.appends.clear();
    }

    /// Buffers one change (not a truncate). Returns false when it does not
    /// apply (update or delete of a keyless table).
    pub fn add(&mut self, ev: &ChangeEvent) -> bool {
        if !self.keyed() {
            return match (ev.op, &ev.after) {
                (Op::Create | Op::Read, Some(after)) => {
                    self.appends.push(after.clone());
                    true
                }
                _ => {
                    self.not_applicable += 1;
                    false
                }
            };
        }
        match ev.op {
            Op::Create | Op::Read | Op::Update => {
                let Some(after) = &ev.after else { return false };
                let key = self.key_of(after);
                // The old key and row of an update that moved the row to another key.
                let mut moved = None;
                if let (Op::Update, Some(before)) = (ev.op, &ev.before) {
                    let old = self.key_of(before);
                    if old != key {
                        moved = Some((old, before));
                    }
                }
                let mut row = after.clone();
                let mut from = None;
                if row.iter().any(|v| matches!(v, Value::Unchanged)) {
                    from = moved.as_ref().map(|(_, before)| (*before).clone());
                    let earlier = moved.as_ref().map_or(&key, |(old, _)| old);
                    if let Some(Pending::Upsert(prev, prev_from)) = self.by_key.get(earlier).map(|&i| &self.entries[i])
                    {
                        for (v, p) in row.iter_mut().zip(prev) {
                            if matches!(v, Value::Unchanged) {
                                *v = p.clone();
                            }
                        }
                        // What the earlier image left unchanged is where it said.
                        from = prev_from.clone().or(from);
                    }
                }
                if let Some((old, before)) = moved {
                    self.put(old, Pending::Delete(before.clone()));
                }
                self.put(key, Pending::Upsert(row, from));
            }
            Op::Delete => {
                let Some(before) = &ev.before else { return false };
                let key = self.key_of(before);
                self.put(key, Pending::Delete(before.clone()));
            }
            Op::Truncate => return false,
        }
        true
    }

    fn put(&mut self, key: Vec<u8>, p: Pending) {
        match self.by_key.get(&key) {
            Some(&i) => self.entries[i] = p,
            None => {
                self.by_key.insert(key, self.entries.len());
                self.entries.push(p);
            }
        }
    }

    fn key_of(&mut self, row: &Row) -> Vec<u8> {
        self.key_buf.clear();
        for &k in &self.keys {
            let v = row.get(k).unwrap_or(&Value::Null);
            write_copy_field(&mut self.key_buf, v, &mut self.scratch);
            self.key_buf.push(b'\t');
        }
        self.key_buf.clone()
    }

    /// Renders and empties the buffer.
    pub fn take_batch(&mut self) -> Batch {
        let mut b = Batch { copy: Vec::new(), rows: 0, deletes: false, upserts: false, unchanged: false, moves: false };
        let width = self.columns.len();
        if !self.keyed() {
            for row in self.appends.drain(..) {
                write_row(&mut b.copy, &row, width, &mut self.scratch);
                b.rows += 1;
            }
            return b;
        }
        self.by_key.clear();
        for p in self.entries.drain(..) {
            b.rows += 1;
            match p {
                Pending::Delete(row) => {
                    b.deletes = true;
                    b.copy.extend_from_slice(b"d\t\\N\t");
                    write_old_key(&mut b.copy, &self.keys, None, &mut self.scratch);
                    let mut key_only = vec![Value::Null; width];
                    for &k in &self.keys {
                        key_only[k] = row.get(k).cloned().unwrap_or(Value::Null);
                    }
                    write_row(&mut b.copy, &key_only, width, &mut self.scratch);
                }
                Pending::Upsert(row, from) => {
                    let unchanged: Vec<usize> =
                        (0..width).filter(|&i| matches!(row.get(i), Some(Value::Unchanged))).collect();
                    let from = from.filter(|_| !unchanged.is_empty());
                    if unchanged.is_empty() {
                        b.upserts = true;
                        b.copy.extend_from_slice(b"u\t\\N");
                    } else {
                        if from.is_some() {
                            b.moves = true;
                            b.copy.extend_from_slice(b"m\t");
                        } else {
                            b.unchanged = true;
                            b.copy.extend_from_slice(b"u\t");
                        }
                        let list: Vec<String> = unchanged.iter().map(|i| i.to_string()).collect();
                        b.copy.push(b'{');
                        b.copy.extend_from_slice(list.join(",").as_bytes());
                        b.copy.push(b'}');
                    }
                    b.copy.push(b'\t');
                    write_old_key(&mut b.copy, &self.keys, from.as_ref(), &mut self.scratch);
                    write_row(&mut b.copy, &row, width, &mut self.scratch);
                }
            }
        }
        b
    }

    /// The staging column holding the old key's value of key column `k`
    /// (named by position: a name derived from the column's could pass
    /// PostgreSQL's 63-byte limit).
    fn old_key_column(&self, k: usize) -> String {
        format!("_from_{k}")
    }

    /// `CREATE TEMP TABLE` for the staging table.
    pub fn create_stage_sql(&self) -> String {
        let from: Vec<String> =
            self.keys.iter().map(|&k| format!("{} {}", self.old_key_column(k), self.columns[k].1)).collect();
        let cols: Vec<String> = self.columns.iter().map(|(n, t)| format!("{} {t}", ident(n))).collect();
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} (_op \"char\", _unch int[], {}, {}) ON COMMIT DROP",
            self.stage,
            from.join(", "),
            cols.join(", ")
        )
    }

    fn column_list(&self) -> String {
        self.columns.iter().map(|(n, _)| ident(n)).collect::<Vec<_>>().join(", ")
    }

    pub fn copy_stage_sql(&self) -> String {
        let from: Vec<String> = self.keys.iter().map(|&k| self.old_key_column(k)).collect();
        format!("COPY {} (_op, _unch, {}, {}) FROM STDIN", self.stage, from.join(", "), self.column_list())
    }

    pub fn copy_target_sql(&self) -> String {
        format!("COPY {} ({}) FROM STDIN", self.target, self.column_list())
    }

    /// The merge statements for a staged batch, as one multi-statement
    /// string. With moved rows it starts with a query whose one value is
    /// how many of them found no old row in the target.
    pub fn merge_sql(&self, b: &Batch) -> String {
        let key_match: Vec<String> = self
            .keys
            .iter()
            .map(|&k| {
                let c = ident(&self.columns[k].0);
                format!("t.{c} = s.{c}")
            })
            .collect();
        let key_match = key_match.join(" AND ");
        let cols = self.column_list();
        let non_key: Vec<usize> = (0..self.columns.len()).filter(|i| !self.keys.contains(i)).collect();
        let key_cols: Vec<String> = self.keys.iter().map(|&k| ident(&self.columns[k].0)).collect();
        let on_conflict = if non_key.is_empty() {
            format!("ON CONFLICT ({}) DO NOTHING", key_cols.join(", "))
        } else {
            let sets: Vec<String> = non_key
                .iter()
                .map(|&i| {
                    let c = ident(&self.columns[i].0);
                    format!("{c} = EXCLUDED.{c}")
                })
                .collect();
            format!("ON CONFLICT ({}) DO UPDATE SET {}", key_cols.join(", "), sets.join(", "))
        };
        let mut sql = String::new();
        if b.moves {
            let from_match: Vec<String> = self
                .keys
                .iter()
                .map(|&k| format!("o.{} = s.{}", ident(&self.columns[k].0), self.old_key_column(k)))
                .collect();
            let from_match = from_match.join(" AND ");
            let values: Vec<String> = (0..self.columns.len())
                .map(|i| {
                    let c = ident(&self.columns[i].0);
                    format!("CASE WHEN {i} = ANY(s._unch) THEN o.{c} ELSE s.{c} END")
                })
                .collect();
            sql.push_str(&format!(
                "SELECT count(*) FROM {} s WHERE s._op = 'm' AND NOT EXISTS (SELECT FROM {} o WHERE {from_match});\n",
                self.stage, self.target
            ));
            sql.push_str(&format!(
                "INSERT INTO {} ({cols}) SELECT {} FROM {} s LEFT JOIN {} o ON {from_match} WHERE s._op = 'm' {on_conflict};\n",
                self.target,
                values.join(", "),
                self.stage,
                self.target
            ));
        }
        if b.deletes {
            sql.push_str(&format!(
                "DELETE FROM {} t USING {} s WHERE s._op = 'd' AND {key_match};\n",
                self.target, self.stage
            ));
        }
        if b.upserts {
            sql.push_str(&format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE _op = 'u' AND _unch IS NULL {on_conflict};\n",
                self.target, self.stage
            ));
        }
        if b.unchanged && !non_key.is_empty() {
            let sets: Vec<String> = non_key
                .iter()
                .map(|&i| {
                    let c = ident(&self.columns[i].0);
                    format!("{c} = CASE WHEN {i} = ANY(s._unch) THEN t.{c} ELSE s.{c} END")
                })
                .collect();
            sql.push_str(&format!(
                "UPDATE {} t SET {} FROM {} s WHERE s._op = 'u' AND s._unch IS NOT NULL AND {key_match};\n",
                self.target,
                sets.join(", "),
                self.stage
            ));
        }
        sql.push_str(&format!("TRUNCATE {};", self.stage));
        sql
    }
}

/// Appends the staging fields of the old key a row moved from (`\N` each
/// when it did not move), each followed by a tab.
fn write_old_key(out: &mut Vec<u8>, keys: &[usize], from: Option<&Row>, scratch: &mut String) {
    for &k in keys {
        write_copy_field(out, from.and_then(|row| row.get(k)).unwrap_or(&Value::Null), scratch);
        out.push(b'\t');
    }
}

fn write_row(out: &mut Vec<u8>, row: &Row, width: usize, scratch: &mut String) {
    for i in 0..width {
        if i > 0 {
            out.push(b'\t');
        }
        write_copy_field(out, row.get(i).unwrap_or(&Value::Null), scratch);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use outflow_model::{ColumnSchema, Position, SourceInfo, TableId};

    use super::*;

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

    fn state() -> TableState {
        TableState::new(Dialect::Postgres, schema(), "\"public\".\"t\"".into(), "_s".into())
    }

    #[test]
    fn the_last_event_per_key_wins_and_unchanged_values_fill_from_earlier_ones() {
        let mut t = state();
        t.add(&ev(Op::Create, None, Some(vec![Value::Int(1), Value::Int(10)])));
        t.add(&ev(Op::Update, None, Some(vec![Value::Int(1), Value::Unchanged])));
        t.add(&ev(Op::Create, None, Some(vec![Value::Int(2), Value::Int(20)])));
        t.add(&ev(Op::Delete, Some(vec![Value::Int(2), Value::Null]), None));
        t.add(&ev(Op::Update, None, Some(vec![Value::Int(3), Value::Unchanged])));
        let b = t.take_batch();
        let text = String::from_utf8(b.copy).unwrap();
        assert_eq!(text, "u\t\\N\t\\N\t1\t10\nd\t\\N\t\\N\t2\t\\N\nu\t{1}\t\\N\t3\t\\N\n");
        assert!(b.deletes && b.upserts && b.unchanged);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_key_change_deletes_the_old_key() {
        let mut t = state();
        t.add(&ev(Op::Update, Some(vec![Value::Int(1), Value::Int(5)]), Some(vec![Value::Int(2), Value::Int(5)])));
        let text = String::from_utf8(t.take_batch().copy).unwrap();
        assert_eq!(text, "d\t\\N\t\\N\t1\t\\N\nu\t\\N\t\\N\t2\t5\n");
    }

    #[test]
    fn a_moved_row_takes_unchanged_values_from_its_old_key() {
        let mut t = state();
        let old = |id| Some(vec![Value::Int(id), Value::Null]);
        let new = |id| Some(vec![Value::Int(id), Value::Unchanged]);
        // 1 is only in the target, moved twice: both moves read its row.
        t.add(&ev(Op::Update, old(1), new(2)));
        t.add(&ev(Op::Update, old(2), new(3)));
        // 4 is inserted in this batch, then moved: its image fills the value.
        t.add(&ev(Op::Create, None, Some(vec![Value::Int(4), Value::Int(40)])));
        t.add(&ev(Op::Update, old(4), new(5)));
        // 6 is updated in place, then moved: the value is still target row 6's.
        t.add(&ev(Op::Update, None, new(6)));
        t.add(&ev(Op::Update, old(6), new(7)));
        let b = t.take_batch();
        assert!(b.moves && b.deletes && b.upserts && !b.unchanged);
        let sql = t.merge_sql(&b);
        let text = String::from_utf8(b.copy).unwrap();
        assert_eq!(
            text,
            "d\t\\N\t\\N\t1\t\\N\nd\t\\N\t\\N\t2\t\\N\nm\t{1}\t1\t3\t\\N\n\
             d\t\\N\t\\N\t4\t\\N\nu\t\\N\t\\N\t5\t40\nd\t\\N\t\\N\t6\t\\N\nm\t{1}\t6\t7\t\\N\n"
        );
        // The old rows are read before the batch deletes or replaces any row.
        let at = |part: &str| sql.find(part).unwrap_or_else(|| panic!("{part:?} not in {sql}"));
        assert!(at("SELECT count(*)") < at("LEFT JOIN \"public\".\"t\" o ON o.\"id\" = s._from_0"));
        assert!(at("LEFT JOIN") < at("DELETE FROM"));
        assert!(at("DELETE FROM") < at("_unch IS NULL"));
    }
}
