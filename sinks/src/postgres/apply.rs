//! One target table: its shape, the changes buffered for it, and the SQL
//! that applies them as one batch.
//!
//! Keyed tables collapse a batch to the last event per key (rendered key
//! text): an insert/update/snapshot read is an upsert, a delete a delete; an
//! update that changes the key is a delete of the old key plus an upsert of
//! the new one. A PostgreSQL TOAST value the source did not send
//! (`Value::Unchanged`) is filled from an earlier upsert of the same key in
//! the batch when there is one; otherwise the row is marked (`_unch`, the
//! column indexes) and its merge keeps the target's value for that column.
//!
//! The batch goes into a temporary staging table with `COPY`, then one
//! round trip runs the merge: `DELETE ... USING` for the deletes,
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

use outflow_decoders::{ChangeEvent, Op, Row, TableSchema, Value};

use super::text::write_copy_field;
use super::types::{target_type, SourceDialect};

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The target columns of a source schema: (name, SQL type).
pub fn target_columns(dialect: SourceDialect, schema: &TableSchema) -> Vec<(String, String)> {
    schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), target_type(dialect, &c.type_name, c.type_id, c.type_modifier)))
        .collect()
}

enum Pending {
    Upsert(Row),
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
    pub fn new(dialect: SourceDialect, schema: Arc<TableSchema>, target: String, stage: String) -> Self {
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
                if let Some(before) = ev.before.as_ref().filter(|_| ev.op == Op::Update) {
                    let old = self.key_of(before);
                    if old != self.key_of(after) {
                        self.put(old, Pending::Delete(before.clone()));
                    }
                }
                let key = self.key_of(after);
                let mut row = after.clone();
                if row.iter().any(|v| matches!(v, Value::Unchanged)) {
                    if let Some(Pending::Upsert(prev)) = self.by_key.get(&key).map(|&i| &self.entries[i]) {
                        for (v, p) in row.iter_mut().zip(prev) {
                            if matches!(v, Value::Unchanged) {
                                *v = p.clone();
                            }
                        }
                    }
                }
                self.put(key, Pending::Upsert(row));
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
        let mut b = Batch { copy: Vec::new(), rows: 0, deletes: false, upserts: false, unchanged: false };
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
                    let mut key_only = vec![Value::Null; width];
                    for &k in &self.keys {
                        key_only[k] = row.get(k).cloned().unwrap_or(Value::Null);
                    }
                    write_row(&mut b.copy, &key_only, width, &mut self.scratch);
                }
                Pending::Upsert(row) => {
                    let unchanged: Vec<usize> =
                        (0..width).filter(|&i| matches!(row.get(i), Some(Value::Unchanged))).collect();
                    b.copy.extend_from_slice(b"u\t");
                    if unchanged.is_empty() {
                        b.upserts = true;
                        b.copy.extend_from_slice(b"\\N");
                    } else {
                        b.unchanged = true;
                        let list: Vec<String> = unchanged.iter().map(|i| i.to_string()).collect();
                        b.copy.push(b'{');
                        b.copy.extend_from_slice(list.join(",").as_bytes());
                        b.copy.push(b'}');
                    }
                    b.copy.push(b'\t');
                    write_row(&mut b.copy, &row, width, &mut self.scratch);
                }
            }
        }
        b
    }

    /// `CREATE TEMP TABLE` for the staging table.
    pub fn create_stage_sql(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|(n, t)| format!("{} {t}", ident(n))).collect();
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} (_op \"char\", _unch int[], {}) ON COMMIT DROP",
            self.stage,
            cols.join(", ")
        )
    }

    fn column_list(&self) -> String {
        self.columns.iter().map(|(n, _)| ident(n)).collect::<Vec<_>>().join(", ")
    }

    pub fn copy_stage_sql(&self) -> String {
        format!("COPY {} (_op, _unch, {}) FROM STDIN", self.stage, self.column_list())
    }

    pub fn copy_target_sql(&self) -> String {
        format!("COPY {} ({}) FROM STDIN", self.target, self.column_list())
    }

    /// The merge statements for a staged batch, as one multi-statement string.
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
        let mut sql = String::new();
        if b.deletes {
            sql.push_str(&format!(
                "DELETE FROM {} t USING {} s WHERE s._op = 'd' AND {key_match};\n",
                self.target, self.stage
            ));
        }
        if b.upserts {
            let key_cols: Vec<String> = self.keys.iter().map(|&k| ident(&self.columns[k].0)).collect();
            let action = if non_key.is_empty() {
                "DO NOTHING".to_string()
            } else {
                let sets: Vec<String> = non_key
                    .iter()
                    .map(|&i| {
                        let c = ident(&self.columns[i].0);
                        format!("{c} = EXCLUDED.{c}")
                    })
                    .collect();
                format!("DO UPDATE SET {}", sets.join(", "))
            };
            sql.push_str(&format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE _op = 'u' AND _unch IS NULL ON CONFLICT ({}) {action};\n",
                self.target,
                self.stage,
                key_cols.join(", ")
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
    use outflow_decoders::{ColumnSchema, Position, SourceInfo, TableId};

    use super::*;

    fn schema() -> Arc<TableSchema> {
        let col = |name: &str, key: bool| ColumnSchema {
            name: name.into(),
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
        TableState::new(SourceDialect::Postgres, schema(), "\"public\".\"t\"".into(), "_s".into())
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
        assert_eq!(text, "u\t\\N\t1\t10\nd\t\\N\t2\t\\N\nu\t{1}\t3\t\\N\n");
        assert!(b.deletes && b.upserts && b.unchanged);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_key_change_deletes_the_old_key() {
        let mut t = state();
        t.add(&ev(Op::Update, Some(vec![Value::Int(1), Value::Int(5)]), Some(vec![Value::Int(2), Value::Int(5)])));
        let text = String::from_utf8(t.take_batch().copy).unwrap();
        assert_eq!(text, "d\t\\N\t1\t\\N\nu\t\\N\t2\t5\n");
    }
}
