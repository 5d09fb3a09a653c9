//! Transforms: what leaves the database, decided between the source and
//! the sinks (`[[transform]]` in the config).
//!
//! A transform applies to the tables its `tables` patterns match and
//! rewrites their changes: columns excluded (gone from `before`, `after`,
//! the key and the schema) or masked (hashed, redacted, truncated). The
//! change keeps its position, so offsets, snapshot windows and key dedup
//! are untouched.
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

pub mod config;
mod mask;

use std::collections::HashMap;
use std::sync::Arc;

use outflow_model::{StreamItem, TableFilter, TableId, TableSchema};

pub use config::TransformConfig;
use mask::TablePlan;

use crate::error::Result;

/// One configured transform, ready to apply.
#[derive(Debug, Clone)]
pub struct Step {
    label: String,
    tables: TableFilter,
    config: TransformConfig,
}

/// A chain of transforms with the plan of each table shape met so far.
#[derive(Debug, Default, Clone)]
pub struct Transforms {
    steps: Vec<Step>,
    /// Per table: the source shape the plan was made for, and the plan
    /// (None: the transforms leave this table alone).
    plans: HashMap<TableId, (Arc<TableSchema>, Option<Arc<TablePlan>>)>,
}

impl Transforms {
    /// The transforms of `configs` that `pick` selects, in config order.
    /// The configs were validated with the config.
    pub fn new(configs: &[TransformConfig], pick: impl Fn(&TransformConfig) -> bool) -> Result<Transforms> {
        let mut steps = Vec::new();
        for (index, config) in configs.iter().enumerate().filter(|(_, c)| pick(c)) {
            steps.push(Step {
                label: config.label(index),
                tables: config.table_filter(index)?,
                config: config.clone(),
            });
        }
        Ok(Transforms { steps, plans: HashMap::new() })
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

    /// The plan for `schema`, made on first sight of each shape.
    fn plan(&mut self, schema: &Arc<TableSchema>) -> Result<Option<Arc<TablePlan>>> {
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
        let plan = TablePlan::build(schema, &self.steps)?.map(Arc::new);
        self.plans.insert(schema.id.clone(), (schema.clone(), plan.clone()));
        Ok(plan)
    }

    /// The shape sinks see of `schema`.
    pub fn schema(&mut self, schema: &Arc<TableSchema>) -> Result<Arc<TableSchema>> {
        if self.steps.is_empty() {
            return Ok(schema.clone());
        }
        Ok(self.plan(schema)?.map_or_else(|| schema.clone(), |p| p.schema.clone()))
    }

    /// Rewrites the items in place. An error (a key column excluded, a
    /// mask on a column that does not hold characters) stops the stream
    /// before the item: nothing from it on is delivered or acknowledged.
    pub fn apply(&mut self, items: &mut [StreamItem]) -> Result<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        for item in items {
            match item {
                StreamItem::Change(ev) => {
                    let Some(plan) = self.plan(&ev.table)? else { continue };
                    ev.table = plan.schema.clone();
                    ev.before = ev.before.take().map(|row| plan.row(row));
                    ev.after = ev.after.take().map(|row| plan.row(row));
                }
                StreamItem::SchemaChange(schema) => *schema = self.schema(schema)?,
                _ => {}
            }
        }
        Ok(())
    }
}
