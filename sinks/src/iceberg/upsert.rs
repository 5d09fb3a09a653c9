//! `mode = "upsert"`: the table holds the current row of every source key,
//! kept by position deletes (merge-on-read, which pyiceberg, Spark and
//! Trino apply).
//!
//! Per keyed table the sink keeps an index in memory: the rendered key →
//! where its live row is (data file, row position). Changes are collapsed
//! per key into the last state (like the PostgreSQL apply sink): an insert,
//! update or snapshot read is an upsert, a delete a delete, an update that
//! changes the key a delete of the old key plus an upsert of the new one.
//! Every [`BATCH_ROWS`] keys and at each commit the collapsed changes are
//! applied: the new row images are written to the open data file (each
//! key's new position recorded), and every key that had a live row gets a
//! position delete for it. A delete may hit a row written earlier in the
//! same commit (position deletes apply to data files of the same sequence
//! number). A truncate forgets the index and the uncommitted files; the
//! commit then leaves every earlier file out of the snapshot
//! ([`super::commit`]).
//!
//! Keys are rendered as [`super::keys`] says.
//!
//! A PostgreSQL TOAST value the source did not resend (`Value::Unchanged`)
//! is taken from an earlier image of the row in the same batch, else from
//! its live row, read back from its data file at its position (for an
//! update that changed the key: the old key's row). Only when there is no
//! such row (it never reached the table) does the column stay null, logged.
//!
//! Memory: the index holds every live key of every keyed table: a hash
//! table entry (32 bytes, 1.1-2x that with the table's slack) and the
//! rendered key on the heap (an int key renders to 5-12 bytes, a 32-byte
//! allocation) per row, so 70-130 bytes, ~100 MB per million rows. It is
//! rebuilt on start from the table
//! ([`Upsert::rebuild`]): every live data file's key columns are
//! read, minus the positions its delete files list.
//!
//! Tables without a key are append-only: inserts and snapshot reads are
//! appended, updates and deletes cannot be matched to a row and are counted
//! and logged, not applied (as the PostgreSQL apply sink does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use iceberg::Catalog;
use outflow_model::{ChangeEvent, Op, Row, Value};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

use super::commit::{self, Cas, Delta};
use super::keys::{encode_keys, Key, KeyColumn};
use super::read;
use super::schema::{conform, record_batch, Slot};
use super::table::{DataFiles, WriteSettings, BATCH_ROWS};
use crate::columnar::rows::RowBuffer;
use crate::parquet::types::build_array;
use crate::SinkError;

/// Where a live row is: a data file (index into [`Upsert::files`]) and the
/// row's position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: u32,
    pub pos: u64,
}

enum Pending {
    /// The new row image, and the key whose live row holds the values the
    /// image left unchanged (its own, or the old key of an update that
    /// moved the row).
    Upsert(Box<ChangeEvent>, Key),
    Delete,
}

/// What [`Upsert::add`] did with a change.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Collapsed into the pending changes of its key.
    Buffered,
    /// A keyless table's insert: written as it is.
    Append,
    /// An update or delete of a keyless table: not applied.
    NotApplied,
}

/// The index of an upsert table and its changes not yet applied.
#[derive(Default)]
pub struct Upsert {
    keys: Vec<KeyColumn>,
    /// Pending changes: key → index into `entries`.
    by_key: HashMap<Key, usize>,
    entries: Vec<(Key, Pending)>,
    /// Live rows by key.
    index: HashMap<Key, Loc>,
    /// Data file paths, by [`Loc::file`].
    files: Vec<Arc<str>>,
    file_ids: HashMap<Arc<str>, u32>,
    /// Rows this commit deletes.
    deletes: Vec<Loc>,
    /// The table was truncated since the last commit.
    pub truncated: bool,
    /// Updates and deletes of a keyless table not applied (this run).
    pub not_applied: u64,
}

impl Upsert {
    pub fn new(keys: Vec<KeyColumn>) -> Upsert {
        Upsert { keys, ..Upsert::default() }
    }

    pub fn keyed(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Takes the key columns of a new source shape; the index stays valid
    /// only if they render alike.
    pub fn reshape(&mut self, keys: Vec<KeyColumn>, table: &str) -> Result<(), SinkError> {
        let same = |a: &KeyColumn, b: &KeyColumn| a.ty == b.ty && a.field_id == b.field_id;
        let unchanged = keys.len() == self.keys.len() && keys.iter().zip(&self.keys).all(|(a, b)| same(a, b));
        if !unchanged && (!self.index.is_empty() || !self.entries.is_empty()) {
            return Err(SinkError::fatal(
                format!("the key columns of {table} changed (another key or key type) while the iceberg sink keeps it in upsert mode"),
                "upsert tables follow one key: drop the iceberg table to rebuild it from a new snapshot, or use mode = \"append\"",
            ));
        }
        self.keys = keys;
        Ok(())
    }

    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    pub fn live_rows(&self) -> usize {
        self.index.len()
    }

    /// The rendered key of `row`.
    fn key_of(&self, row: &Row) -> Result<Key, SinkError> {
        let mut columns = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let value = row.get(k.source).unwrap_or(&Value::Null);
            let built = build_array(&k.kind, &[value])
                .map_err(|m| SinkError::Data(format!("a key value {} does not fit {:?}", m.value, m.kind)))?;
            columns.push(conform(built, &k.ty).map_err(|e| SinkError::Data(format!("a key value: {e}")))?);
        }
        let mut keys = encode_keys(&columns).map_err(|e| SinkError::Data(format!("cannot render a key: {e}")))?;
        Ok(keys.pop().expect("one row"))
    }

    /// Collapses one change (not a truncate) into the pending changes.
    pub fn add(&mut self, ev: &ChangeEvent) -> Result<Added, SinkError> {
        if !self.keyed() {
            return Ok(match (ev.op, &ev.after) {
                (Op::Create | Op::Read, Some(_)) => Added::Append,
                _ => {
                    self.not_applied += 1;
                    Added::NotApplied
                }
            });
        }
        match (ev.op, &ev.before, &ev.after) {
            (Op::Create | Op::Read | Op::Update, before, Some(after)) => {
                let key = self.key_of(after)?;
                // The key an update moved the row from.
                let moved_from = match (ev.op, before) {
                    (Op::Update, Some(before)) => Some(self.key_of(before)?).filter(|old| *old != key),
                    _ => None,
                };
                // Only the new image is kept.
                let mut ev = ChangeEvent {
                    op: ev.op,
                    table: ev.table.clone(),
                    before: None,
                    after: ev.after.clone(),
                    source: ev.source.clone(),
                    position: ev.position.clone(),
                };
                let mut fill_from = moved_from.clone().unwrap_or_else(|| key.clone());
                let row = ev.after.as_mut().expect("matched above");
                if row.iter().any(|v| matches!(v, Value::Unchanged)) {
                    // The row's previous image in this batch, if any; what
                    // it left unchanged too comes from where it said.
                    let earlier = self.by_key.get(&fill_from).map(|&i| &self.entries[i].1);
                    if let Some(Pending::Upsert(prev, prev_from)) = earlier {
                        let image = prev.after.as_ref().expect("upserts carry their row");
                        for (v, p) in row.iter_mut().zip(image) {
                            if matches!(v, Value::Unchanged) {
                                *v = p.clone();
                            }
                        }
                        fill_from = prev_from.clone();
                    }
                }
                if let Some(old) = moved_from {
                    self.put(old, Pending::Delete);
                }
                self.put(key, Pending::Upsert(Box::new(ev), fill_from));
            }
            (Op::Delete, Some(before), _) => {
                let key = self.key_of(before)?;
                self.put(key, Pending::Delete);
            }
            _ => {}
        }
        Ok(Added::Buffered)
    }

    fn put(&mut self, key: Key, p: Pending) {
        match self.by_key.get(&key) {
            Some(&i) => self.entries[i].1 = p,
            None => {
                self.by_key.insert(key.clone(), self.entries.len());
                self.entries.push((key, p));
            }
        }
    }

    /// Applies the pending changes to the index: every key loses its live
    /// row (noted for deletion); returns the rows to write, each with the
    /// live row its unchanged values come from.
    fn take(&mut self) -> Vec<(Key, ChangeEvent, Option<Loc>)> {
        self.by_key.clear();
        // Looked up before any key of the batch loses its row.
        let sources: Vec<Option<Loc>> = self
            .entries
            .iter()
            .map(|(_, p)| match p {
                Pending::Upsert(_, from) => self.index.get(from).copied(),
                Pending::Delete => None,
            })
            .collect();
        let mut out = Vec::new();
        for ((key, p), source) in self.entries.drain(..).zip(sources) {
            self.deletes.extend(self.index.remove(&key));
            if let Pending::Upsert(ev, _) = p {
                out.push((key, *ev, source));
            }
        }
        out
    }

    fn file_id(&mut self, path: &str) -> u32 {
        if let Some(&id) = self.file_ids.get(path) {
            return id;
        }
        let path: Arc<str> = path.into();
        let id = self.files.len() as u32;
        self.files.push(path.clone());
        self.file_ids.insert(path, id);
        id
    }

    /// Records that `keys` are now rows `start..` of the file at `path`.
    fn written(&mut self, keys: Vec<Key>, path: &str, start: u64) {
        let file = self.file_id(path);
        for (i, key) in keys.into_iter().enumerate() {
            self.index.insert(key, Loc { file, pos: start + i as u64 });
        }
    }

    /// Notes a live row found in the table (index rebuild); false if the
    /// key already had one.
    fn found(&mut self, key: Key, path: &str, pos: u64) -> bool {
        let file = self.file_id(path);
        self.index.insert(key, Loc { file, pos }).is_none()
    }

    /// Forgets every live row and pending change (the table was truncated).
    fn truncate(&mut self) {
        self.by_key.clear();
        self.entries.clear();
        self.index.clear();
        self.deletes.clear();
        self.truncated = true;
    }

    /// This commit's deletes as `(path, pos)`, sorted by path, then position.
    fn take_deletes(&mut self) -> Vec<(Arc<str>, u64)> {
        let mut out: Vec<(Arc<str>, u64)> =
            self.deletes.drain(..).map(|l| (self.files[l.file as usize].clone(), l.pos)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Upsert {
    /// Takes one change of this table: collapsed into the pending changes
    /// (applied every [`BATCH_ROWS`] keys), appended (keyless inserts) or
    /// counted (keyless updates and deletes); a truncate empties the table.
    pub async fn add_change(
        &mut self,
        files: &mut DataFiles,
        ev: &ChangeEvent,
        settings: &WriteSettings,
    ) -> Result<(), SinkError> {
        if ev.op == Op::Truncate {
            return self.truncate_table(files, settings).await;
        }
        match self.add(ev)? {
            Added::Buffered => {
                if self.pending() >= BATCH_ROWS {
                    self.apply(files, settings).await?;
                }
            }
            Added::Append => files.push_row(ev, settings).await?,
            Added::NotApplied => {
                let skipped = self.not_applied;
                if skipped.is_power_of_two() {
                    tracing::warn!(table = %files.key, skipped,
                        "table has no key: updates and deletes are not applied to its append-only iceberg table");
                }
            }
        }
        Ok(())
    }

    /// Writes the pending changes: new row images to the open data file,
    /// the positions of replaced and deleted rows to this commit's deletes.
    pub async fn apply(&mut self, files: &mut DataFiles, settings: &WriteSettings) -> Result<(), SinkError> {
        let rows = self.take();
        if rows.is_empty() {
            return Ok(());
        }
        let ncols = files.source.columns.len();
        let mut buf = RowBuffer::new(ncols, rows.len());
        let mut fills = Vec::new();
        let mut missing = 0u64;
        for (i, (_, ev, prev)) in rows.iter().enumerate() {
            buf.push(ev, ncols);
            let after = ev.after.as_ref().expect("upserts carry their row");
            for (c, _) in after.iter().enumerate().filter(|(_, v)| matches!(v, Value::Unchanged)) {
                match prev {
                    Some(loc) => fills.push(Fill { row: i, column: c, from: *loc }),
                    None => missing += 1,
                }
            }
        }
        if missing > 0 {
            tracing::warn!(table = %files.key, values = missing,
                "updates left TOASTed values unchanged for rows the iceberg table does not hold: written as null");
        }
        let mut batch = record_batch(&buf, &files.arrow, &files.slots, &files.source)?;
        if !fills.is_empty() {
            batch = self.fill_unchanged(files, batch, &fills, settings).await?;
        }
        let (path, start) = files.write_batch(batch, settings).await?;
        files.open_file = Some(path.clone());
        let keys = rows.into_iter().map(|(key, _, _)| key).collect();
        self.written(keys, &path, start);
        Ok(())
    }

    /// Replaces the unchanged values of `batch` with those of the keys'
    /// previous rows, read from their data files.
    async fn fill_unchanged(
        &self,
        files: &mut DataFiles,
        batch: RecordBatch,
        fills: &[Fill],
        settings: &WriteSettings,
    ) -> Result<RecordBatch, SinkError> {
        let open = files.open_file.clone();
        if fills.iter().any(|f| Some(&*self.files[f.from.file as usize]) == open.as_deref()) {
            // Rows of the open file cannot be read before it is closed.
            files.close_files(settings).await?;
        }
        // The table's fields to fetch, by source column.
        let mut fields: BTreeMap<usize, usize> = BTreeMap::new();
        for f in fills {
            let at = files.slots.iter().position(|s| matches!(s, Slot::Source(i, _) if *i == f.column));
            if let Some(at) = at {
                fields.insert(f.column, at);
            }
        }
        let (ids, types): (Vec<i32>, Vec<DataType>) = fields
            .values()
            .map(|&at| {
                let field = files.arrow.field(at);
                let id = field.metadata().get(PARQUET_FIELD_ID_META_KEY).and_then(|v| v.parse().ok()).unwrap_or(-1);
                (id, field.data_type().clone())
            })
            .unzip();
        let mut by_file: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for f in fills {
            by_file.entry(f.from.file).or_default().push(f.from.pos);
        }
        // Fetched values: per file, the arrays (in `fields` order) and the
        // row of each position in them.
        let mut fetched: Vec<Vec<ArrayRef>> = Vec::new();
        let mut found: HashMap<Loc, (usize, usize)> = HashMap::new();
        for (file, mut positions) in by_file {
            positions.sort_unstable();
            positions.dedup();
            let path = self.files[file as usize].clone();
            let arrays = read::read_columns(&files.table, &path, &ids, &types, Some(&positions)).await?;
            for (row, pos) in positions.iter().enumerate() {
                found.insert(Loc { file, pos: *pos }, (fetched.len(), row));
            }
            fetched.push(arrays);
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (n, (&source_col, &at)) in fields.iter().enumerate() {
            let mut sources: Vec<&dyn Array> = vec![columns[at].as_ref()];
            sources.extend(fetched.iter().map(|arrays| arrays[n].as_ref()));
            let mut take: Vec<(usize, usize)> = (0..batch.num_rows()).map(|i| (0, i)).collect();
            for f in fills.iter().filter(|f| f.column == source_col) {
                let (file, row) = found[&f.from];
                take[f.row] = (file + 1, row);
            }
            let filled = arrow_select::interleave::interleave(&sources, &take).map_err(|e| {
                SinkError::Data(format!("cannot fill unchanged values of {}: {e}; please report this bug", files.key))
            })?;
            columns[at] = filled;
        }
        RecordBatch::try_new(batch.schema(), columns)
            .map_err(|e| SinkError::Data(format!("cannot fill unchanged values of {}: {e}", files.key)))
    }

    /// A truncate: the index, the pending changes and every file written
    /// since the last commit are dropped; the commit leaves earlier files
    /// out of the snapshot.
    async fn truncate_table(&mut self, files: &mut DataFiles, settings: &WriteSettings) -> Result<(), SinkError> {
        self.truncate();
        files.clear_buffer();
        files.close_files(settings).await?;
        for file in std::mem::take(&mut files.pending) {
            // Unreferenced either way; removing them only saves space.
            if let Err(e) = files.table.file_io().delete(file.file_path()).await {
                tracing::debug!(table = %files.key, error = %super::one_line(&e), "iceberg: cannot remove a truncated data file");
            }
        }
        Ok(())
    }

    /// Commits what was written since the last commit (`rows` changes), the
    /// position deletes and `summary` as one snapshot ([`commit::commit`]);
    /// returns the bytes of the files it committed.
    pub async fn commit(
        &mut self,
        files: &mut DataFiles,
        catalog: &dyn Catalog,
        cas: &Cas,
        summary: HashMap<String, String>,
        settings: &WriteSettings,
        rows: u64,
    ) -> Result<u64, SinkError> {
        self.apply(files, settings).await?;
        files.close_files(settings).await?;
        let data = std::mem::take(&mut files.pending);
        let deletes = self.take_deletes();
        let delete_file = if deletes.is_empty() {
            None
        } else {
            files.files += 1;
            let name = format!("{}-{}-deletes.parquet", settings.file_prefix, files.files);
            Some(commit::write_position_deletes(&files.table, &deletes, &name).await?)
        };
        let bytes: u64 = data.iter().chain(&delete_file).map(|f| f.file_size_in_bytes()).sum();
        let (nfiles, ndeletes) = (data.len(), deletes.len());
        let delta = Delta { data, deletes: delete_file, truncated: self.truncated };
        files.table = commit::commit(&files.table, catalog, cas, delta, summary, &settings.file_prefix).await?;
        tracing::debug!(table = %files.key, files = nfiles, deletes = ndeletes, rows, "iceberg: committed");
        self.truncated = false;
        Ok(bytes)
    }

    /// Fills the index from the table's current snapshot: each live data
    /// file's key columns, minus the rows its position deletes remove.
    pub async fn rebuild(&mut self, files: &DataFiles) -> Result<(), SinkError> {
        if !self.keyed() {
            return Ok(());
        }
        let (ids, types): (Vec<i32>, Vec<DataType>) = self.keys.iter().map(|k| (k.field_id, k.ty.clone())).unzip();
        let live = read::live_files(&files.table).await?;
        let mut deleted: HashMap<String, HashSet<u64>> = HashMap::new();
        for file in &live.position_deletes {
            for (path, positions) in read::read_position_deletes(&files.table, file).await? {
                deleted.entry(path).or_default().extend(positions);
            }
        }
        // Sized once: growing a large map holds its old and new table at once.
        let rows: u64 = live.data.iter().map(|f| f.record_count()).sum();
        let gone: u64 = deleted.values().map(|d| d.len() as u64).sum();
        self.index.reserve(rows.saturating_sub(gone) as usize);
        let mut duplicates = 0u64;
        for file in &live.data {
            let columns = read::read_columns(&files.table, file.file_path(), &ids, &types, None).await?;
            let keys = encode_keys(&columns)
                .map_err(|e| SinkError::Data(format!("cannot render the keys of {}: {e}", file.file_path())))?;
            let gone = deleted.get(file.file_path());
            for (pos, key) in keys.into_iter().enumerate() {
                let pos = pos as u64;
                if !gone.is_some_and(|g| g.contains(&pos)) && !self.found(key, file.file_path(), pos) {
                    duplicates += 1;
                }
            }
        }
        if duplicates > 0 {
            tracing::warn!(table = %files.key, rows = duplicates,
                "iceberg: the table holds several live rows for some keys; the next change of such a key replaces only one of them");
        }
        tracing::info!(table = %files.key, rows = self.live_rows(), files = live.data.len(),
            "iceberg: rebuilt the upsert index");
        Ok(())
    }
}

/// An unchanged value of row `row`, column `column` (source index), to be
/// taken from the live row at `from`.
struct Fill {
    row: usize,
    column: usize,
    from: Loc,
}

#[cfg(test)]
mod tests;
