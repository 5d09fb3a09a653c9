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
            steps.push(Step {
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
    pub fn apply(&mut self, items: &mut Vec<StreamItem>) -> Result<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        let mut failure = None;
        items.retain_mut(|item| {
            if failure.is_some() {
                return true;
            }
            match self.apply_one(item) {
                Ok(keep) => keep,
                Err(e) => {
                    failure = Some(e);
                    true
                }
            }
        });
        failure.map_or(Ok(()), Err)
    }

    /// One item; false when a filter drops it.
    fn apply_one(&mut self, item: &mut StreamItem) -> Result<bool> {
        match item {
            StreamItem::Change(ev) => {
                for step in &mut self.steps {
                    let Some(plan) = step.plan(&ev.table, false)? else { continue };
                    if let Fate::Drop(reason) = plan.apply(ev)? {
                        let labels = DroppedLabels {
                            transform: step.metric.clone(),
                            table: ev.table.id.to_string(),
                            reason: reason.into(),
                        };
                        metrics().dropped.get_or_create(&labels).inc();
                        if let Ok(mut dropped) = DROPPED.lock() {
                            *dropped.entry(labels.table).or_default() += 1;
                        }
                        return Ok(false);
                    }
                }
            }
            StreamItem::SchemaChange(schema) => *schema = self.schema(schema)?,
            _ => {}
        }
        Ok(true)
    }
}
