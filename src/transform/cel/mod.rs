//! CEL expressions over change events (`[[transform]] filter` and
//! `derive`), through the `cel` crate: typed, sandboxed, without loops.
//!
//! An expression sees `op` (`"c"`, `"u"`, `"d"`, `"r"`, `"t"`), `before`
//! and `after` (maps of column to value, or null when the event has no such
//! image) and `source` (`schema`, `table`, `ts_ms`, `position`,
//! `snapshot`). Values keep their types: integers are ints (unsigned ones
//! uints), decimals exact decimals ([`decimal`]), timestamps timestamps
//! (UTC), dates timestamps at midnight UTC, times and intervals durations
//! (an interval's month as 30 days), text, enums, UUIDs and JSON strings,
//! bytes bytes, arrays lists. A column the server did not send (an
//! unchanged TOASTed value) is absent from its map: `has(after.doc)`
//! tells. Only the columns an expression names are converted per event.

pub mod decimal;
mod fast;

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use bigdecimal::BigDecimal;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::traits::Indexer;
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::types::{Type, MAP_TYPE};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError};
use chrono::{DateTime, Utc};
use outflow_model::{ChangeEvent, ColumnType, Row, TableSchema, Value};

use decimal::CelDecimal;

/// The environment every expression runs in: CEL's standard library and
/// the decimal operators.
fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        decimal::install(&mut env).expect("the decimal overloads are declared once");
        Arc::new(env)
    })
    .clone()
}

/// One compiled expression.
#[derive(Debug, Clone)]
pub struct Expression {
    pub text: String,
    expr: IdedExpr,
    /// The columns of `before` and `after` the expression names (None: it
    /// uses a whole map, so every column is converted).
    columns: Option<BTreeSet<String>>,
    /// The shortcut, when the expression is in its subset ([`fast`]).
    fast: Option<fast::Fast>,
}

/// What an expression gave: one of the value kinds below, or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Exact, as plain text (`18.3908`).
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch.
    Timestamp(i64),
}

impl Expression {
    /// Compiles `text`; the error is CEL's message with the place marked.
    pub fn compile(text: &str) -> Result<Expression, String> {
        let program = env().compile(text).map_err(|e| e.to_string().replace('\n', " "))?;
        let mut expr = program.expression().clone();
        let fast = fast::Fast::of(&expr);
        decimal::rewrite(&mut expr);
        let columns = references(&expr);
        Ok(Expression { text: text.to_string(), expr, columns, fast })
    }

    /// Evaluates the expression for `event`. The variables are built when
    /// the expression reads them ([`EventVariables`]), not beforehand.
    pub fn eval(&self, event: &ChangeEvent) -> Result<Outcome, String> {
        if let Some(outcome) = self.fast.as_ref().and_then(|f| f.eval(event)) {
            return Ok(outcome);
        }
        self.interpret(event)
    }

    /// Evaluates the expression with the CEL interpreter.
    fn interpret(&self, event: &ChangeEvent) -> Result<Outcome, String> {
        let variables = EventVariables { expression: self, event };
        let mut ctx = Context::with_env(env());
        ctx.set_variable_resolver(&variables);
        let value = cel::Value::resolve_val(&self.expr, &ctx).map_err(|e| e.to_string())?;
        outcome(&*value)
    }

    /// The result's column type, from evaluating the expression on a row of
    /// `schema` whose values are all one (1, "1", 1.0, …; checks the column
    /// names and the operators' types too). `None` when it gives null.
    pub fn result_type(&self, schema: &Arc<TableSchema>) -> Result<Option<ColumnType>, String> {
        let row: Row = schema.columns.iter().map(|c| sample(&c.ty)).collect();
        let event = ChangeEvent {
            op: outflow_model::Op::Create,
            table: schema.clone(),
            before: None,
            after: Some(row),
            source: Default::default(),
            position: outflow_model::Position::Pg { lsn: 0, index: 0 },
        };
        Ok(match self.eval(&event)? {
            Outcome::Null => None,
            Outcome::Bool(_) => Some(ColumnType::Bool),
            Outcome::Int(_) => Some(ColumnType::Int { bits: 64, signed: true }),
            Outcome::UInt(_) => Some(ColumnType::Int { bits: 64, signed: false }),
            Outcome::Float(_) => Some(ColumnType::Float64),
            Outcome::Decimal(_) => Some(ColumnType::Decimal(None)),
            Outcome::Text(_) => Some(ColumnType::Text { max_chars: None }),
            Outcome::Bytes(_) => Some(ColumnType::Bytes),
            Outcome::Timestamp(_) => Some(ColumnType::TimestampTz { precision: Some(6) }),
        })
    }

    /// `before` or `after` (null without the image): read field by field
    /// when the expression only reads fields, else a whole CEL map.
    fn image<'v>(&self, schema: &'v TableSchema, row: Option<&'v Row>) -> Box<dyn Val + 'v> {
        let Some(row) = row else { return Box::new(CelNull) };
        if self.columns.is_some() {
            return Box::new(RowVal { schema, row });
        }
        let mut map = HashMap::new();
        for (column, value) in schema.columns.iter().zip(row) {
            if self.columns.as_ref().is_some_and(|named| !named.contains(&column.name)) {
                continue;
            }
            if let Some(v) = to_cel(value, &column.ty) {
                map.insert(CelMapKey::from(column.name.clone()), v);
            }
        }
        Box::new(CelMap::from(map))
    }
}

impl Outcome {
    /// The value of a column of type `ty` (as [`Expression::result_type`]
    /// chose it); an outcome of another kind is an error.
    pub fn into_value(self, ty: &ColumnType) -> Result<Value, String> {
        Ok(match (self, ty) {
            (Outcome::Null, _) => Value::Null,
            (Outcome::Bool(b), ColumnType::Bool) => Value::Bool(b),
            (Outcome::Int(i), ColumnType::Int { signed: true, .. }) => Value::Int(i),
            (Outcome::UInt(u), ColumnType::Int { signed: false, .. }) => Value::UInt(u),
            (Outcome::Float(f), ColumnType::Float64) => Value::Float64(f),
            (Outcome::Decimal(d), ColumnType::Decimal(_)) => Value::Decimal(d),
            (Outcome::Int(i), ColumnType::Decimal(_)) => Value::Decimal(i.to_string()),
            (Outcome::Text(s), ColumnType::Text { .. }) => Value::Text(s),
            (Outcome::Bytes(b), ColumnType::Bytes) => Value::Bytes(b),
            (Outcome::Timestamp(t), ColumnType::TimestampTz { .. }) => Value::TimestampTz(t),
            (other, ty) => return Err(format!("gave {other:?}, but the column is {ty:?} (from its first value)")),
        })
    }
}

/// The variables of one event (`op`, `before`, `after`, `source`), each
/// made when the expression reads it.
struct EventVariables<'v> {
    expression: &'v Expression,
    event: &'v ChangeEvent,
}

impl VariableResolver for EventVariables<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let event = self.event;
        let value: Box<dyn Val + 'b> = match variable {
            "op" => Box::new(CelString::from(event.op.code())),
            "before" => self.expression.image(&event.table, event.before.as_ref()),
            "after" => self.expression.image(&event.table, event.after.as_ref()),
            "source" => source(event),
            _ => return None,
        };
        Some(CowVal::Owned(value))
    }
}

/// A row read field by field: `after.amount` converts that one value when
/// it is read; a column the server did not send is a missing key (so
/// `has()` is false). Only for expressions that use no whole map: it
/// answers nothing but field reads.
#[derive(Debug, Clone, Copy)]
struct RowVal<'v> {
    schema: &'v TableSchema,
    row: &'v Row,
}

impl RowVal<'_> {
    fn field(&self, idx: &dyn Val) -> Result<Box<dyn Val>, ExecutionError> {
        let name = idx.downcast_ref::<CelString>().map(|s| s.inner()).unwrap_or_default();
        let missing = || ExecutionError::NoSuchKey(Arc::new(name.to_string()));
        let at = self.schema.columns.iter().position(|c| c.name == name).ok_or_else(missing)?;
        self.row.get(at).and_then(|v| to_cel(v, &self.schema.columns[at].ty)).ok_or_else(missing)
    }
}

impl Val for RowVal<'_> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
}

impl Indexer for RowVal<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.field(idx).map(CowVal::Owned)
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.field(idx)
    }
}

/// The columns named as `before.x` / `after.x` (None when a bare `before`
/// or `after` is used elsewhere: every column).
fn references(expr: &IdedExpr) -> Option<BTreeSet<String>> {
    let row_map = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == "before" || n == "after");
    let mut columns = Some(BTreeSet::new());
    walk(expr, &mut |e| match &e.expr {
        Expr::Select(s) if row_map(&s.operand) => {
            if let Some(set) = &mut columns {
                set.insert(s.field.clone());
            }
            false // not the bare map
        }
        Expr::Ident(_) => {
            if row_map(e) {
                columns = None;
            }
            false
        }
        _ => true,
    });
    columns
}

/// Calls `visit` on `e` and, while it returns true, on every expression inside.
fn walk(e: &IdedExpr, visit: &mut dyn FnMut(&IdedExpr) -> bool) {
    if !visit(e) {
        return;
    }
    match &e.expr {
        Expr::Select(s) => walk(&s.operand, visit),
        Expr::Call(call) => {
            call.target.iter().for_each(|t| walk(t, visit));
            call.args.iter().for_each(|a| walk(a, visit));
        }
        Expr::Comprehension(c) => {
            for part in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                walk(part, visit);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| walk(x, visit)),
        Expr::Map(m) => m.entries.iter().for_each(|en| walk_entry(&en.expr, visit)),
        Expr::Struct(s) => s.entries.iter().for_each(|en| walk_entry(&en.expr, visit)),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry(entry: &EntryExpr, visit: &mut dyn FnMut(&IdedExpr) -> bool) {
    match entry {
        EntryExpr::MapEntry(me) => {
            walk(&me.key, visit);
            walk(&me.value, visit);
        }
        EntryExpr::StructField(sf) => walk(&sf.value, visit),
    }
}

/// The `source` map.
fn source(event: &ChangeEvent) -> Box<dyn Val> {
    let text = |s: &str| Box::new(CelString::from(s.to_string())) as Box<dyn Val>;
    let entries: [(&str, Box<dyn Val>); 5] = [
        ("schema", text(&event.table.id.schema)),
        ("table", text(&event.table.id.name)),
        ("ts_ms", Box::new(CelInt::from(event.source.commit_ts_us.div_euclid(1000)))),
        ("position", text(&event.position.to_string())),
        ("snapshot", Box::new(CelBool::from(event.source.snapshot))),
    ];
    Box::new(CelMap::from(
        entries.into_iter().map(|(k, v)| (CelMapKey::from(k.to_string()), v)).collect::<HashMap<_, _>>(),
    ))
}

/// A column value as CEL sees it; None for a value the server did not send.
fn to_cel(value: &Value, ty: &ColumnType) -> Option<Box<dyn Val>> {
    let timestamp = |micros: i64| {
        DateTime::<Utc>::from_timestamp_micros(micros)
            .map(|t| Box::new(CelTimestamp::from(t.fixed_offset())) as Box<dyn Val>)
            .unwrap_or_else(|| Box::new(CelNull))
    };
    let duration = |micros: i64| Box::new(CelDuration::from(chrono::Duration::microseconds(micros))) as Box<dyn Val>;
    Some(match value {
        Value::Unchanged => return None,
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Int(i) => Box::new(CelInt::from(*i)),
        Value::UInt(u) => Box::new(CelUInt::from(*u)),
        Value::Float32(f) => Box::new(CelDouble::from(f64::from(*f))),
        Value::Float64(f) => Box::new(CelDouble::from(*f)),
        Value::Decimal(text) => match BigDecimal::from_str(text) {
            Ok(d) => Box::new(CelDecimal(d)),
            // NaN and ±Infinity of an unconstrained numeric.
            Err(_) => Box::new(CelDouble::from(text.parse::<f64>().unwrap_or(f64::NAN))),
        },
        Value::Text(s) | Value::Json(s) | Value::Uuid(s) | Value::Enum(s) | Value::Bits(s) => {
            Box::new(CelString::from(s.clone()))
        }
        Value::Bytes(b) => Box::new(CelBytes::from(b.clone())),
        Value::Date(days) => timestamp(i64::from(*days) * 86_400_000_000),
        Value::Timestamp(us) | Value::TimestampTz(us) => timestamp(*us),
        Value::Time(us) | Value::TimeTz { micros: us, .. } => duration(*us),
        Value::Interval { months, days, micros } => {
            duration((i64::from(*months) * 30 + i64::from(*days)) * 86_400_000_000 + micros)
        }
        Value::Infinity { negative } => {
            Box::new(CelString::from(if *negative { "-infinity" } else { "infinity" }.to_string()))
        }
        Value::Array(items) => {
            let element = match ty {
                ColumnType::Array(inner) => inner.as_ref(),
                other => other,
            };
            Box::new(CelList::from(items.iter().filter_map(|v| to_cel(v, element)).collect::<Vec<_>>()))
        }
    })
}

/// A value of type `ty` for [`Expression::result_type`]'s trial run.
fn sample(ty: &ColumnType) -> Value {
    match ty {
        ColumnType::Bool => Value::Bool(true),
        ColumnType::Int { signed: false, .. } => Value::UInt(1),
        ColumnType::Int { .. } | ColumnType::Year => Value::Int(1),
        ColumnType::Float32 => Value::Float32(1.0),
        ColumnType::Float64 => Value::Float64(1.0),
        ColumnType::Decimal(_) => Value::Decimal("1".into()),
        ColumnType::Bytes | ColumnType::Geometry => Value::Bytes(vec![1]),
        ColumnType::Date => Value::Date(1),
        ColumnType::Time { .. } | ColumnType::Duration { .. } => Value::Time(1),
        ColumnType::TimeTz { .. } => Value::TimeTz { micros: 1, offset_secs: 0 },
        ColumnType::Timestamp { .. } => Value::Timestamp(1),
        ColumnType::TimestampTz { .. } => Value::TimestampTz(1),
        ColumnType::Interval => Value::Interval { months: 0, days: 1, micros: 0 },
        ColumnType::Array(inner) => Value::Array(vec![sample(inner)]),
        _ => Value::Text("1".into()),
    }
}

/// The result as an [`Outcome`].
fn outcome(v: &dyn Val) -> Result<Outcome, String> {
    if let Some(d) = v.downcast_ref::<CelDecimal>() {
        return Ok(Outcome::Decimal(d.0.to_plain_string()));
    }
    if v.downcast_ref::<CelNull>().is_some() {
        return Ok(Outcome::Null);
    }
    if let Some(b) = v.downcast_ref::<CelBool>() {
        return Ok(Outcome::Bool(*b.inner()));
    }
    if let Some(i) = v.downcast_ref::<CelInt>() {
        return Ok(Outcome::Int(*i.inner()));
    }
    if let Some(u) = v.downcast_ref::<CelUInt>() {
        return Ok(Outcome::UInt(*u.inner()));
    }
    if let Some(f) = v.downcast_ref::<CelDouble>() {
        return Ok(Outcome::Float(*f.inner()));
    }
    if let Some(s) = v.downcast_ref::<CelString>() {
        return Ok(Outcome::Text(s.inner().to_owned()));
    }
    if let Some(b) = v.downcast_ref::<CelBytes>() {
        return Ok(Outcome::Bytes(b.inner().to_vec()));
    }
    if let Some(t) = v.downcast_ref::<CelTimestamp>() {
        return Ok(Outcome::Timestamp(t.inner().timestamp_micros()));
    }
    Err(format!(
        "gives a {}, which is not a column value (bool, int, uint, double, decimal, string, bytes, timestamp or null)",
        v.get_type().name()
    ))
}

#[cfg(test)]
mod tests;
