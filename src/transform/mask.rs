//! Column transforms of one table: which columns leave, and how masked
//! ones are rewritten. A [`TablePlan`] is built once per table shape and
//! then maps rows without looking anything up.

use std::sync::Arc;

use outflow_model::{ColumnType, Row, TableSchema, Value};
use sha2::{Digest, Sha256};

use super::Step;
use crate::error::{Error, Result};

/// How one column's values are rewritten.
#[derive(Debug, Clone)]
enum Mask {
    /// Hex SHA-256 of the salt followed by the value, cut to `max_chars`
    /// (Debezium's `column.mask.hash.v2.SHA-256.with.salt`, checked with
    /// debezium-ref: a `varchar(10)` gets the first 10 hex digits).
    Hash { salt: Arc<str>, max_chars: Option<u32> },
    /// This many asterisks, whatever the value, null included
    /// (Debezium's `column.mask.with.N.chars`).
    Redact(usize),
    /// The first N characters (`column.truncate.to.N.chars`).
    Truncate(usize),
}

impl Mask {
    fn apply(&self, value: Value) -> Value {
        match (self, value) {
            (Mask::Redact(n), _) => Value::Text("*".repeat(*n)),
            (Mask::Hash { salt, max_chars }, Value::Text(text)) => {
                let mut hasher = Sha256::new();
                hasher.update(salt.as_bytes());
                hasher.update(text.as_bytes());
                let mut hex = hex::encode(hasher.finalize());
                if let Some(n) = max_chars {
                    hex.truncate(*n as usize);
                }
                Value::Text(hex)
            }
            (Mask::Truncate(n), Value::Text(text)) => match text.char_indices().nth(*n) {
                Some((cut, _)) => Value::Text(text[..cut].to_string()),
                None => Value::Text(text),
            },
            // Null and unchanged TOAST values stay what they are.
            (_, other) => other,
        }
    }
}

/// What the transforms make of one table shape.
#[derive(Debug)]
pub struct TablePlan {
    /// The shape sinks see.
    pub schema: Arc<TableSchema>,
    /// For each column of `schema`: its index in the source's rows and its masks.
    columns: Vec<(usize, Vec<Mask>)>,
}

impl TablePlan {
    /// The plan for `source` under `steps` (those whose tables match), or
    /// None when they change nothing. Refuses to exclude a key column and
    /// to mask a column that does not hold characters.
    pub fn build(source: &TableSchema, steps: &[Step]) -> Result<Option<TablePlan>> {
        let id = &source.id;
        let steps: Vec<&Step> = steps.iter().filter(|s| s.tables.matches(&id.schema, &id.name)).collect();
        if steps.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<(usize, Vec<Mask>)> = (0..source.columns.len()).map(|i| (i, Vec::new())).collect();
        let mut changed = false;
        for step in steps {
            let c = &step.config;
            let position = |columns: &[(usize, Vec<Mask>)], name: &str| {
                columns.iter().position(|(i, _)| source.columns[*i].name == name)
            };
            for name in &c.exclude_columns {
                let Some(at) = position(&columns, name) else { continue };
                if source.columns[columns[at].0].key {
                    return Err(Error::config(
                        format!("{}: exclude_columns names {name:?}, a key column of {id}", step.label),
                        format!("a key column identifies the row in every sink: hash it (hash_columns) instead of excluding it, or exclude {id} from that transform's tables"),
                    ));
                }
                columns.remove(at);
                changed = true;
            }
            let salt: Arc<str> = c.hash_salt.as_deref().unwrap_or("").into();
            let masks = c
                .hash_columns
                .iter()
                .map(|name| (name, "hash_columns", None))
                .chain(c.redact_columns.iter().map(|(name, n)| (name, "redact_columns", Some(Mask::Redact(*n)))))
                .chain(c.truncate_columns.iter().map(|(name, n)| (name, "truncate_columns", Some(Mask::Truncate(*n)))));
            for (name, list, mask) in masks {
                let Some(at) = position(&columns, name) else { continue };
                let column = &source.columns[columns[at].0];
                let ColumnType::Text { max_chars } = column.ty else {
                    return Err(Error::config(
                        format!(
                            "{}: {list} names {id}.{name}, a {} column; masks apply to character columns",
                            step.label, column.type_name
                        ),
                        format!("exclude {name} instead (exclude_columns), or leave it out of {list}"),
                    ));
                };
                let mask = mask.unwrap_or_else(|| Mask::Hash { salt: salt.clone(), max_chars });
                columns[at].1.push(mask);
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let schema = TableSchema {
            id: id.clone(),
            version: source.version,
            columns: columns.iter().map(|(i, _)| source.columns[*i].clone()).collect(),
        };
        Ok(Some(TablePlan { schema: Arc::new(schema), columns }))
    }

    /// The row sinks see of the source's `row`.
    pub fn row(&self, mut row: Row) -> Row {
        self.columns
            .iter()
            .map(|(i, masks)| {
                let value = row.get_mut(*i).map_or(Value::Null, |v| std::mem::replace(v, Value::Null));
                masks.iter().fold(value, |v, m| m.apply(v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_render_as_debezium_does() {
        // Values from debezium-ref (column.mask.hash.v2.SHA-256.with.salt.pepper).
        let hash = Mask::Hash { salt: "pepper".into(), max_chars: None };
        let expected = "b933d59aaed37a1cf390cf5d081b2bc732116ea629ebd8fd26836f4b4d4849f0";
        assert_eq!(hash.apply(Value::Text("a@example.com".into())), Value::Text(expected.into()));
        let short = Mask::Hash { salt: "pepper".into(), max_chars: Some(10) };
        assert_eq!(short.apply(Value::Text("abc".into())), Value::Text("fadf7b9740".into()));
        assert_eq!(short.apply(Value::Null), Value::Null);
        assert_eq!(short.apply(Value::Unchanged), Value::Unchanged);
        assert_eq!(Mask::Redact(6).apply(Value::Null), Value::Text("******".into()));
        assert_eq!(Mask::Redact(3).apply(Value::Text("secret".into())), Value::Text("***".into()));
        let cut = Mask::Truncate(5);
        assert_eq!(cut.apply(Value::Text("a long biography".into())), Value::Text("a lon".into()));
        assert_eq!(cut.apply(Value::Text("ünïcödé".into())), Value::Text("ünïcö".into()));
        assert_eq!(cut.apply(Value::Text("x".into())), Value::Text("x".into()));
        assert_eq!(cut.apply(Value::Null), Value::Null);
    }
}
