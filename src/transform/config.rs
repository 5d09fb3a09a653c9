//! `[[transform]]`: what one transform does to which tables, as written in
//! `outflow.toml`, and its validation.

use std::collections::BTreeMap;

use outflow_model::TableFilter;
use serde::Deserialize;

use super::cel::Expression;
use crate::error::{Error, Result};

/// One `[[transform]]`. Column names are plain names, looked up in every
/// table the transform applies to; the masks keep Debezium's meaning
/// (`column.mask.hash.v2.SHA-256.with.salt.*`, `column.mask.with.N.chars`,
/// `column.truncate.to.N.chars`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Named transforms listed in a `[[sink]]`'s `transforms` apply to
    /// those sinks only; every other transform applies to all of them.
    #[serde(default)]
    pub name: Option<String>,
    /// Table patterns (as `[source] tables`) this transform applies to;
    /// empty: every captured table.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Columns left out of every event, key and schema.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// Character columns replaced by the hex SHA-256 of `hash_salt` followed
    /// by the value (cut to the column's declared length, as Debezium does).
    #[serde(default)]
    pub hash_columns: Vec<String>,
    #[serde(default)]
    pub hash_salt: Option<String>,
    /// Columns replaced by this many asterisks, whatever their value (null too).
    #[serde(default)]
    pub redact_columns: BTreeMap<String, usize>,
    /// Character columns cut to this many characters.
    #[serde(default)]
    pub truncate_columns: BTreeMap<String, usize>,
    /// A CEL expression: events for which it is false are dropped.
    #[serde(default)]
    pub filter: Option<String>,
    /// Columns added to `after`, each the value of a CEL expression.
    #[serde(default)]
    pub derive: BTreeMap<String, String>,
    /// What an expression that fails for an event does.
    #[serde(default)]
    pub on_error: OnError,
}

/// `on_error`: what a filter or derived field that fails for an event
/// (a type error, a column a DDL removed) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop: nothing from the event on is delivered or acknowledged.
    #[default]
    Fail,
    /// Drop the event (logged as a warning, counted).
    Skip,
    /// The derived field is null; a failing filter counts as false.
    Null,
}

impl TransformConfig {
    /// Where the transform is, for messages: `[[transform]] "name"` or its place.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(name) => format!("[[transform]] {name:?}"),
            None => format!("[[transform]] #{}", index + 1),
        }
    }

    /// The tables it applies to.
    pub fn table_filter(&self, index: usize) -> Result<TableFilter> {
        let include = if self.tables.is_empty() { vec!["*.*".to_string()] } else { self.tables.clone() };
        TableFilter::new(&include, &[]).map_err(|e| {
            Error::config(
                format!("{} tables: {e}", self.label(index)),
                "write tables as \"schema.table\" globs (* and ? within a name) or as \"re:<regular expression>\"",
            )
        })
    }

    /// The compiled `filter` and `derive` expressions (in `derive` order).
    pub fn expressions(&self, index: usize) -> Result<(Option<Expression>, Vec<(String, Expression)>)> {
        let label = self.label(index);
        let filter = match &self.filter {
            None => None,
            Some(text) => Some(Expression::compile(text).map_err(|e| {
                Error::config(
                    format!("{label} filter: {e}"),
                    "write filter as a CEL expression, e.g. \"op != 'd' && after.country == 'DE'\"",
                )
            })?),
        };
        let mut derive = Vec::new();
        for (column, text) in &self.derive {
            let expression = Expression::compile(text).map_err(|e| {
                Error::config(
                    format!("{label} derive {column}: {e}"),
                    "write each derived field as a CEL expression, e.g. \"after.amount * 0.92\"",
                )
            })?;
            derive.push((column.clone(), expression));
        }
        Ok((filter, derive))
    }

    /// Checks what can be checked without the tables' schemas.
    pub fn validate(&self, index: usize) -> Result<()> {
        let label = self.label(index);
        self.table_filter(index)?;
        if let Some(name) = &self.name {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(Error::config(
                    format!("{label}: the name is not allowed"),
                    "use letters, digits, '-' and '_' only",
                ));
            }
        }
        match (&self.hash_salt, self.hash_columns.is_empty()) {
            (None, false) => {
                return Err(Error::config(
                    format!("{label} has hash_columns but no hash_salt"),
                    "set hash_salt = \"${MASK_SALT}\" (a secret from the environment): unsalted hashes of emails or names are easy to reverse",
                ))
            }
            (Some(_), true) => {
                return Err(Error::config(
                    format!("{label} has a hash_salt but no hash_columns"),
                    "list the columns to hash in hash_columns, or remove hash_salt",
                ))
            }
            _ => {}
        }
        for (column, n) in self.redact_columns.iter().chain(&self.truncate_columns) {
            if *n == 0 {
                return Err(Error::config(
                    format!("{label}: {column} = 0 would leave nothing"),
                    "give redact_columns and truncate_columns a length of at least 1, or use exclude_columns",
                ));
            }
        }
        self.expressions(index)?;
        // A column in two lists: excluded and masked, or masked twice, is a
        // mistake whose outcome would depend on an order nobody wrote down.
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        let lists = [
            ("exclude_columns", self.exclude_columns.iter().collect::<Vec<_>>()),
            ("hash_columns", self.hash_columns.iter().collect()),
            ("redact_columns", self.redact_columns.keys().collect()),
            ("truncate_columns", self.truncate_columns.keys().collect()),
            ("derive", self.derive.keys().collect()),
        ];
        for (list, columns) in &lists {
            for column in columns {
                if let Some(other) = seen.insert(column.as_str(), list) {
                    return Err(Error::config(
                        format!("{label}: column {column:?} is in both {other} and {list}"),
                        "name each column in one of exclude_columns, hash_columns, redact_columns, truncate_columns, derive",
                    ));
                }
            }
        }
        Ok(())
    }
}
