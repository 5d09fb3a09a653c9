//! What one transform does to one table: which events pass its filter,
//! which columns leave, how masked ones are rewritten, which are derived.
//! A [`StepPlan`] is built once per table shape and then maps events
//! without looking anything up.

use std::sync::Arc;

use outflow_model::{ChangeEvent, ColumnSchema, ColumnType, Op, Row, TableId, TableSchema, Value};
use sha2::{Digest, Sha256};

use super::cel::{Expression, Outcome};
use super::config::OnError;
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
                let mut hex = [0u8; 64];
                hex::encode_to_slice(hasher.finalize(), &mut hex).expect("64 hex digits for 32 bytes");
                let n = max_chars.map_or(hex.len(), |n| (n as usize).min(hex.len()));
                Value::Text(std::str::from_utf8(&hex[..n]).expect("hex digits are ASCII").to_string())
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

/// What one transform makes of one table shape.
#[derive(Debug)]
pub struct StepPlan {
    /// The shape after this transform.
    pub schema: Arc<TableSchema>,
    /// For each source column kept: its index in the rows coming in and its masks.
    columns: Vec<(usize, Vec<Mask>)>,
    /// Columns added after them, in `derive` order.
    derived: Vec<Derived>,
    filter: Option<Expression>,
    on_error: OnError,
    label: Arc<str>,
    /// Whether rows change at all (false for a transform that only filters).
    reshapes: bool,
}

#[derive(Debug)]
struct Derived {
    name: String,
    ty: ColumnType,
    expression: Expression,
}

/// What happens to one event.
pub enum Fate {
    Keep,
    /// Dropped: `"filter"` (false) or `"error"` (an expression failed and
    /// `on_error` drops).
    Drop(&'static str),
}

impl StepPlan {
    /// The plan of `step` for `source`, or None when the step leaves the
    /// table alone. Refuses to exclude a key column and to mask a column
    /// that does not hold characters. With `strict` (before a run, and
    /// `outflow check`) an expression that fails on the table's shape is
    /// refused too, unless `on_error` tolerates it; mid-stream (after a DDL) it is left to fail on the
    /// first change it meets, which `on_error` then handles and the error
    /// names. `previous` (this table's last plan) keeps a derived column's
    /// type when its trial run fails.
    pub fn build(
        source: &Arc<TableSchema>,
        step: &Step,
        previous: Option<&StepPlan>,
        strict: bool,
    ) -> Result<Option<StepPlan>> {
        let id = &source.id;
        if !step.tables.matches(&id.schema, &id.name) {
            return Ok(None);
        }
        let c = &step.config;
        let label = &step.label;
        let mut columns: Vec<(usize, Vec<Mask>)> = (0..source.columns.len()).map(|i| (i, Vec::new())).collect();
        let position = |columns: &[(usize, Vec<Mask>)], name: &str| {
            columns.iter().position(|(i, _)| source.columns[*i].name == name)
        };
        for name in &c.exclude_columns {
            let Some(at) = position(&columns, name) else { continue };
            if source.columns[columns[at].0].key {
                return Err(Error::config(
                    format!("{label}: exclude_columns names {name:?}, a key column of {id}"),
                    format!("a key column identifies the row in every sink: hash it (hash_columns) instead of excluding it, or exclude {id} from that transform's tables"),
                ));
            }
            columns.remove(at);
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
                        "{label}: {list} names {id}.{name}, a {} column; masks apply to character columns",
                        column.type_name
                    ),
                    format!("exclude {name} instead (exclude_columns), or leave it out of {list}"),
                ));
            };
            columns[at].1.push(mask.unwrap_or_else(|| Mask::Hash { salt: salt.clone(), max_chars }));
        }
        let filter = match &step.filter {
            None => None,
            Some(filter) => {
                match filter.result_type(source) {
                    Ok(Some(ColumnType::Bool)) => {}
                    // Mid-stream a filter that stopped giving a bool fails
                    // on its first change, which on_error handles.
                    Ok(other) if strict => {
                        return Err(Error::config(
                            format!("{label} filter on {id}: gives {other:?}, not true or false"),
                            "write the filter as a condition, e.g. \"after.country == 'DE'\"",
                        ))
                    }
                    Ok(_) => {}
                    Err(e) if strict && c.on_error == OnError::Fail => {
                        return Err(trial_failed(label, "filter", id, &e))
                    }
                    Err(_) => {}
                }
                Some(filter.clone())
            }
        };
        let mut derived = Vec::new();
        for (name, expression) in &step.derive {
            if source.columns.iter().any(|col| &col.name == name) {
                return Err(Error::config(
                    format!("{label}: derive {name:?} would replace a column of {id}"),
                    "give the derived field a name the table does not have",
                ));
            }
            let known = previous.and_then(|p| p.derived.iter().find(|d| &d.name == name)).map(|d| d.ty.clone());
            let ty = match expression.result_type(source) {
                Ok(Some(ty)) => ty,
                Ok(None) => known.unwrap_or(ColumnType::Text { max_chars: None }),
                Err(e) if strict && c.on_error == OnError::Fail => {
                    return Err(trial_failed(label, &format!("derive {name}"), id, &e))
                }
                Err(_) => known.unwrap_or(ColumnType::Text { max_chars: None }),
            };
            derived.push(Derived { name: name.clone(), ty, expression: expression.clone() });
        }
        let reshapes = !derived.is_empty()
            || columns.len() != source.columns.len()
            || columns.iter().any(|(_, masks)| !masks.is_empty());
        let mut shape: Vec<ColumnSchema> = columns.iter().map(|(i, _)| source.columns[*i].clone()).collect();
        shape.extend(derived.iter().map(|d| derived_column(&d.name, &d.ty)));
        let schema = TableSchema { id: id.clone(), version: source.version, columns: shape };
        Ok(Some(StepPlan {
            schema: Arc::new(schema),
            columns,
            derived,
            filter,
            on_error: c.on_error,
            label: label.as_str().into(),
            reshapes,
        }))
    }

    /// Applies the step to one change: the filter and derived fields see the
    /// change as it comes in; then columns are excluded and masked and the
    /// derived fields appended to `after` (null in `before`; a change
    /// without `after` gets none computed). Truncates pass every filter.
    pub fn apply(&self, ev: &mut ChangeEvent) -> Result<Fate> {
        if let (Some(filter), false) = (&self.filter, ev.op == Op::Truncate) {
            match filter.eval(ev) {
                Ok(Outcome::Bool(true)) => {}
                Ok(Outcome::Bool(false) | Outcome::Null) => return Ok(Fate::Drop("filter")),
                outcome => {
                    let e = match outcome {
                        Ok(other) => format!("gave {other:?}, not true or false"),
                        Err(e) => e,
                    };
                    // A failing filter drops the change unless on_error stops the run.
                    return Ok(self.on_failure(ev, "filter", &e)?.unwrap_or(Fate::Drop("error")));
                }
            }
        }
        let mut values = Vec::with_capacity(self.derived.len());
        if ev.after.is_some() {
            for d in &self.derived {
                let value = d.expression.eval(ev).and_then(|outcome| outcome.into_value(&d.ty));
                match value {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        if let Some(fate) = self.on_failure(ev, &format!("derive {}", d.name), &e)? {
                            return Ok(fate);
                        }
                        values.push(Value::Null);
                    }
                }
            }
        }
        if self.reshapes {
            ev.table = self.schema.clone();
            ev.before = ev.before.take().map(|row| self.row(row, std::iter::repeat_n(Value::Null, self.derived.len())));
            ev.after = ev.after.take().map(|row| self.row(row, std::mem::take(&mut values)));
        }
        Ok(Fate::Keep)
    }

    /// `on_error` for a failed expression: an error (fail), a drop (skip),
    /// or go on with null (None).
    fn on_failure(&self, ev: &ChangeEvent, what: &str, error: &str) -> Result<Option<Fate>> {
        match self.on_error {
            OnError::Fail => self.failed(ev, what, error).map(Some),
            OnError::Skip => {
                tracing::warn!(transform = %self.label, table = %ev.table.id, position = %ev.position, error, "{what} failed; the event is skipped (on_error = \"skip\")");
                Ok(Some(Fate::Drop("error")))
            }
            OnError::Null => {
                tracing::warn!(transform = %self.label, table = %ev.table.id, position = %ev.position, error, "{what} failed; null is used (on_error = \"null\")");
                Ok(None)
            }
        }
    }

    fn failed(&self, ev: &ChangeEvent, what: &str, error: &str) -> Result<Fate> {
        Err(Error::fatal(
            format!("{} {what} failed for {} at {}: {error}", self.label, ev.table.id, ev.position),
            "fix the expression (a DDL may have removed or changed a column it uses), or set on_error = \"skip\" or \"null\" on the transform; nothing from this change on was delivered",
        ))
    }

    /// The row after this step: kept columns masked, then `derived`.
    fn row(&self, mut row: Row, derived: impl IntoIterator<Item = Value>) -> Row {
        let mut out: Row = self
            .columns
            .iter()
            .map(|(i, masks)| {
                let value = row.get_mut(*i).map_or(Value::Null, |v| std::mem::replace(v, Value::Null));
                masks.iter().fold(value, |v, m| m.apply(v))
            })
            .collect();
        out.extend(derived);
        out
    }
}

fn trial_failed(label: &str, what: &str, table: &TableId, error: &str) -> Error {
    Error::config(
        format!("{label} {what} fails on {table}: {error}"),
        "fix the expression for this table's columns (the names and types it uses), or set on_error = \"skip\" or \"null\"",
    )
}

/// The schema of a derived column, described in PostgreSQL's terms.
fn derived_column(name: &str, ty: &ColumnType) -> ColumnSchema {
    let (type_name, type_id) = match ty {
        ColumnType::Bool => ("bool", 16),
        ColumnType::Int { .. } => ("int8", 20),
        ColumnType::Float64 => ("float8", 701),
        ColumnType::Decimal(_) => ("numeric", 1700),
        ColumnType::Bytes => ("bytea", 17),
        ColumnType::TimestampTz { .. } => ("timestamptz", 1184),
        _ => ("text", 25),
    };
    ColumnSchema {
        name: name.to_string(),
        ty: ty.clone(),
        type_name: type_name.to_string(),
        type_id,
        type_modifier: -1,
        nullable: true,
        key: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an e2e test: excluding a table's last column (no masks, no
    /// derived field) must still rebuild the rows.
    #[test]
    fn excluding_the_last_column_drops_it_from_rows_and_schema() {
        use outflow_model::{ChangeEvent, ColumnSchema, Op, Position, StreamItem, TableId};
        let config: super::super::TransformConfig = toml::from_str("exclude_columns = [\"secret\"]").unwrap();
        let mut transforms = super::super::Transforms::new(&[config], |_| true).unwrap();
        let column = |name: &str, key| ColumnSchema {
            name: name.into(),
            ty: ColumnType::Text { max_chars: None },
            type_name: "text".into(),
            type_id: 25,
            type_modifier: -1,
            nullable: true,
            key,
        };
        let table = TableSchema {
            id: TableId::new("s", "t"),
            version: 1,
            columns: vec![column("id", true), column("secret", false)],
        };
        let mut items = vec![StreamItem::Change(ChangeEvent {
            op: Op::Create,
            table: Arc::new(table),
            before: None,
            after: Some(vec![Value::Text("1".into()), Value::Text("hidden".into())]),
            source: Default::default(),
            position: Position::Pg { lsn: 1, index: 0 },
        })];
        transforms.apply(&mut items).unwrap();
        let StreamItem::Change(ev) = &items[0] else { panic!() };
        assert_eq!(ev.after, Some(vec![Value::Text("1".into())]));
        assert_eq!(ev.table.columns.len(), 1);
    }

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
