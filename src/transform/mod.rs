//! Transforms: what leaves the database, decided between the source and
//! the sinks (`[[transform]]` in the config).
//!
//! A transform applies to the tables its `tables` patterns match: its
//! `filter` (a CEL expression, `cel/`) drops the changes for which it is
//! false; then columns are excluded (gone from `before`, `after`, the key
//! and the schema) or masked (hashed, redacted, truncated), and `derive`d
//! columns are appended (`plan.rs`). A change keeps its position, so
//! offsets, snapshot windows and key dedup are untouched; a transaction
//! whose changes were all dropped still passes as its Begin and Commit.
//!
//! **Where they run.** Transforms that no `[[sink]]` names in its
//! `transforms` run once, in the stream driver, on every batch before it
//! is fanned out (`src/stream.rs`): no sink, no schema history entry and no
//! log line sees what they remove. Snapshot windows compare keys on the
//! source's rows, before that. A transform a sink names runs in that sink's
//! worker only (`src/pipeline.rs`), after the global ones: one capture can
//! feed a masked topic and an unmasked replica.
//!
//! On PostgreSQL the global `exclude_columns` are also pushed into the
//! publication's column list (`src/pg/catalog.rs`), so the server never
//! sends them.

pub mod cel;
pub mod config;
mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use outflow_model::{StreamItem, TableFilter, TableId, TableSchema};

pub use config::TransformConfig;
use plan::{Fate, StepPlan};

use crate::error::Result;
use crate::metrics::{metrics, DroppedLabels};

/// One configured transform, ready to apply, with its plan for each table
/// shape met so far.
#[derive(Debug, Clone)]
pub struct Step {
    label: String,
    /// The `transform` label of its metrics: its name, or its place (`#2`).
    metric: String,
    tables: TableFilter,
    config: TransformConfig,
    /// `config.filter` and `config.derive`, compiled once.
    filter: Option<cel::Expression>,
    derive: Vec<(String, cel::Expression)>,
    /// Per table: the shape coming in the plan was made for, and the plan
    /// (None: this transform leaves the table alone).
    plans: HashMap<TableId, (Arc<TableSchema>, Option<Arc<StepPlan>>)>,
}

impl Step {
    /// The plan for `schema`, made on first sight of each shape (`strict`:
    /// see [`StepPlan::build`]).
    fn plan(&mut self, schema: &Arc<TableSchema>, strict: bool) -> Result<Option<Arc<StepPlan>>> {
        if let Some((seen, plan)) = self.plans.get_mut(&schema.id) {
            if Arc::ptr_eq(seen, schema) {
                return Ok(plan.clone());
            }
            if **seen == **schema {
                // The same shape in another allocation (a snapshot chunk's):
                // remembered, so its next events match by pointer.
                *seen = schema.clone();
                return Ok(plan.clone());
            }
        }
        let previous = self.plans.get(&schema.id).and_then(|(_, p)| p.clone());
        let plan = StepPlan::build(schema, self, previous.as_deref(), strict)?.map(Arc::new);
        self.plans.insert(schema.id.clone(), (schema.clone(), plan.clone()));
        Ok(plan)
    }
}

/// Changes dropped by this process's transforms, per table (what `status`
/// shows; `/metrics` has them by transform and reason too).
static DROPPED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// See [`DROPPED`].
pub fn dropped_so_far() -> BTreeMap<String, u64> {
    DROPPED.lock().map(|d| d.clone()).unwrap_or_default()
}

/// The plans one table shape goes through: (step index, plan).
type Chain = Arc<Vec<(usize, Arc<StepPlan>)>>;

/// What became of one item: kept (None), dropped by a step (its index and
/// why), or an error.
type ItemFate = Result<Option<(usize, &'static str)>>;

/// Rewrites `items` by their `chains` (None: left alone), on two threads
/// for a batch big enough to be worth it.
fn rewrite_all(items: &mut [StreamItem], chains: &[Option<Chain>]) -> Vec<ItemFate> {
    let one = |items: &mut [StreamItem], chains: &[Option<Chain>]| -> Vec<ItemFate> {
        items.iter_mut().zip(chains).map(|(item, chain)| rewrite(item, chain.as_deref())).collect()
    };
    if items.len() < 256 {
        return one(items, chains);
    }
    let half = items.len() / 2;
    let (first, second) = items.split_at_mut(half);
    let (first_chains, second_chains) = chains.split_at(half);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| one(second, second_chains));
        let mut fates = one(first, first_chains);
        fates.extend(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        fates
    })
}

fn rewrite(item: &mut StreamItem, chain: Option<&Vec<(usize, Arc<StepPlan>)>>) -> ItemFate {
    let (StreamItem::Change(ev), Some(chain)) = (item, chain) else { return Ok(None) };
    for (step, plan) in chain {
        if let Fate::Drop(reason) = plan.apply(ev)? {
            return Ok(Some((*step, reason)));
        }
    }
    Ok(None)
}

/// A chain of transforms, applied in order.
#[derive(Debug, Default, Clone)]
pub struct Transforms {
    steps: Vec<Step>,
}

impl Transforms {
    /// The transforms of `configs` that `pick` selects, in config order.
    /// The configs were validated with the config.
    pub fn new(configs: &[TransformConfig], pick: impl Fn(&TransformConfig) -> bool) -> Result<Transforms> {
        let mut steps = Vec::new();
        for (index, config) in configs.iter().enumerate().filter(|(_, c)| pick(c)) {
            let (filter, derive) = config.expressions(index)?;
            steps.push(Step {
                filter,
                derive,
                label: config.label(index),
                metric: config.name.clone().unwrap_or_else(|| format!("#{}", index + 1)),
                tables: config.table_filter(index)?,
                config: config.clone(),
                plans: HashMap::new(),
            });
        }
        Ok(Transforms { steps })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The columns these transforms leave out of `table`, when they apply
    /// to it (for pushing exclusions into the source).
    pub fn excluded_columns(&self, table: &TableId) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.tables.matches(&table.schema, &table.name))
            .flat_map(|s| s.config.exclude_columns.iter().map(String::as_str))
            .collect()
    }

    /// The shape sinks see of `schema`.
    pub fn schema(&mut self, schema: &Arc<TableSchema>) -> Result<Arc<TableSchema>> {
        self.shape(schema, false)
    }

    /// The shape sinks see of `schema`, refusing expressions that fail on
    /// it (before a run, and `outflow check`).
    pub fn check(&mut self, schema: &Arc<TableSchema>) -> Result<Arc<TableSchema>> {
        self.shape(schema, true)
    }

    fn shape(&mut self, schema: &Arc<TableSchema>, strict: bool) -> Result<Arc<TableSchema>> {
        let mut shape = schema.clone();
        for step in &mut self.steps {
            if let Some(plan) = step.plan(&shape, strict)? {
                shape = plan.schema.clone();
            }
        }
        Ok(shape)
    }

    /// Rewrites the items in place and removes the changes a filter drops.
    /// An error (a key column excluded, a mask on a column that does not
    /// hold characters, an expression failing with `on_error = "fail"`)
    /// stops the stream at that item: nothing from it on is delivered or
    /// acknowledged.
    ///
    /// The plans are looked up in order (they change with schema changes);
    /// the changes are then rewritten on two threads, a half each, as
    /// expressions and hashes cost microseconds per change.
    pub fn apply(&mut self, items: &mut Vec<StreamItem>) -> Result<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        let mut chains: Vec<Option<Chain>> = Vec::with_capacity(items.len());
        let mut failure = None;
        let mut known: HashMap<*const TableSchema, Chain> = HashMap::new();
        for (at, item) in items.iter_mut().enumerate() {
            let chain = match item {
                StreamItem::Change(ev) => match known.get(&Arc::as_ptr(&ev.table)) {
                    Some(chain) => Some(chain.clone()),
                    None => match self.chain(&ev.table) {
                        Ok(chain) => {
                            known.insert(Arc::as_ptr(&ev.table), chain.clone());
                            Some(chain)
                        }
                        Err(e) => {
                            failure = Some((at, e));
                            break;
                        }
                    },
                },
                StreamItem::SchemaChange(change) => match self.schema(&change.schema) {
                    Ok(shape) => {
                        change.schema = shape;
                        None
                    }
                    Err(e) => {
                        failure = Some((at, e));
                        break;
                    }
                },
                _ => None,
            };
            chains.push(chain);
        }
        let done = chains.len();
        let fates = rewrite_all(&mut items[..done], &chains);
        let mut keep = Vec::with_capacity(items.len());
        for (at, fate) in fates.into_iter().enumerate() {
            match fate {
                Ok(None) => keep.push(true),
                Ok(Some((step, reason))) => {
                    let StreamItem::Change(ev) = &items[at] else { unreachable!("only changes are dropped") };
                    let labels = DroppedLabels {
                        transform: self.steps[step].metric.clone(),
                        table: ev.table.id.to_string(),
                        reason: reason.into(),
                    };
                    metrics().dropped.get_or_create(&labels).inc();
                    if let Ok(mut dropped) = DROPPED.lock() {
                        *dropped.entry(labels.table).or_default() += 1;
                    }
                    keep.push(false);
                }
                Err(e) => {
                    if failure.as_ref().is_none_or(|(first, _)| at < *first) {
                        failure = Some((at, e));
                    }
                    keep.push(true);
                }
            }
        }
        if let Some((_, e)) = failure {
            return Err(e);
        }
        let mut kept = keep.into_iter();
        items.retain(|_| kept.next().unwrap_or(true));
        Ok(())
    }

    /// The plans a change of shape `schema` goes through, in order.
    fn chain(&mut self, schema: &Arc<TableSchema>) -> Result<Chain> {
        let mut chain = Vec::new();
        let mut shape = schema.clone();
        for (at, step) in self.steps.iter_mut().enumerate() {
            if let Some(plan) = step.plan(&shape, false)? {
                shape = plan.schema.clone();
                chain.push((at, plan));
            }
        }
        Ok(Arc::new(chain))
    }
}

#[cfg(test)]
mod tests {
    use outflow_model::{ChangeEvent, ColumnSchema, ColumnType, Op, Position, Value};

    use super::*;

    fn batch(n: i64) -> Vec<StreamItem> {
        let column = |name: &str, ty, key| ColumnSchema {
            name: name.into(),
            ty,
            type_name: String::new(),
            type_id: 0,
            type_modifier: -1,
            nullable: true,
            key,
        };
        let table = Arc::new(TableSchema {
            id: TableId::new("s", "t"),
            version: 1,
            columns: vec![
                column("id", ColumnType::Int { bits: 64, signed: true }, true),
                column("email", ColumnType::Text { max_chars: None }, false),
            ],
        });
        (0..n)
            .map(|i| {
                StreamItem::Change(ChangeEvent {
                    op: Op::Create,
                    table: table.clone(),
                    before: None,
                    after: Some(vec![Value::Int(i), Value::Text(format!("{i}@example.com"))]),
                    source: Default::default(),
                    position: Position::Pg { lsn: i as u64 + 1, index: 0 },
                })
            })
            .collect()
    }

    fn transforms(toml: &str) -> Transforms {
        Transforms::new(&[toml::from_str(toml).unwrap()], |_| true).unwrap()
    }

    /// A batch big enough to be rewritten on two threads keeps its order,
    /// drops what the filter drops on both halves, and reports the first
    /// failing change.
    #[test]
    fn big_batches_keep_order_drops_and_the_first_error() {
        let mut items = batch(1000);
        transforms("filter = \"after.id % 3 != 0\"\nderive = { twice = \"after.id * 2\" }").apply(&mut items).unwrap();
        let ids: Vec<(i64, i64)> = items
            .iter()
            .map(|i| match i {
                StreamItem::Change(ev) => match ev.after.as_deref() {
                    Some([Value::Int(id), _, Value::Int(twice)]) => (*id, *twice),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<(i64, i64)> = (0..1000).filter(|i| i % 3 != 0).map(|i| (i, i * 2)).collect();
        assert_eq!(ids, expected);

        let mut items = batch(1000);
        let err = transforms("derive = { d = \"100 / (after.id - 700)\" }").apply(&mut items).unwrap_err();
        assert!(err.message.contains("at lsn:0/2BD"), "{}", err.message); // id 700 is at lsn 701 = 0x2BD
    }

    /// A filter that gives no bool (here: after a DDL, as the stream meets
    /// it) follows on_error like a failing one.
    #[test]
    fn a_filter_giving_no_bool_follows_on_error() {
        let mut items = batch(3);
        transforms("filter = \"after.email\"\non_error = \"skip\"").apply(&mut items).unwrap();
        assert!(items.is_empty());
        let mut items = batch(3);
        let err = transforms("filter = \"after.email\"").apply(&mut items).unwrap_err();
        assert!(err.message.contains("filter failed for s.t at lsn:0/1: gave Text"), "{}", err.message);
        // Before a run the same filter is a config error.
        let schema = match &batch(1)[0] {
            StreamItem::Change(ev) => ev.table.clone(),
            _ => unreachable!(),
        };
        let err = transforms("filter = \"after.email\"").check(&schema).unwrap_err();
        assert!(err.message.contains("not true or false"), "{}", err.message);
    }
}
