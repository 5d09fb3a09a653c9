//! A shortcut for the expressions most transforms use: comparisons of
//! columns with literals, `&&`, `||`, `!`, `? :` and decimal arithmetic
//! with a literal (`op != 'd' && after.country == 'DE'`, `after.amount *
//! 0.92`). They are evaluated straight from the row, without the CEL
//! interpreter's context, boxed values and name lookups: on a busy stream
//! that is most of a transform's cost.
//!
//! The shortcut only answers where its answer is certainly CEL's: same-type
//! operands (strings, ints, bools, a decimal column against a number), a
//! present, non-null column. Anything else (a null, a missing TOAST value,
//! mixed types, overflow, an error) gives `None`, and the caller asks the
//! interpreter, which then decides, errors included. The decimal operations
//! are [`decimal`]'s own, so the results are the same values.

use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use outflow_model::{ChangeEvent, Value};

use super::decimal::f64_to_decimal;
use super::Outcome;

/// An expression in the shortcut's subset.
#[derive(Debug, Clone)]
pub enum Fast {
    Op,
    /// `after.<column>` (`after`: true) or `before.<column>`.
    Field {
        after: bool,
        column: String,
    },
    Str(String),
    Int(i64),
    /// A double literal, as the decimal it is when it meets a decimal (its
    /// shortest text, as the decimal operators take it; None for NaN and
    /// the infinities). A double meeting anything else is the interpreter's.
    Double(Option<BigDecimal>),
    Bool(bool),
    Cmp(Cmp, Box<Fast>, Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Not(Box<Fast>),
    Arith(Arith, Box<Fast>, Box<Fast>),
    Cond(Box<Fast>, Box<Fast>, Box<Fast>),
}

#[derive(Debug, Clone, Copy)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
pub enum Arith {
    Add,
    Sub,
    Mul,
}

/// A value met on the way.
enum V<'a> {
    Bool(bool),
    Int(i64),
    Str(&'a str),
    Dec(BigDecimal),
    /// A double literal (only ever meets a decimal) and its decimal.
    Double(&'a Option<BigDecimal>),
}

impl Fast {
    /// The shortcut of a compiled expression (before the decimal rewrite),
    /// when all of it is in the subset.
    pub fn of(e: &IdedExpr) -> Option<Fast> {
        let bin = |args: &[IdedExpr]| -> Option<(Box<Fast>, Box<Fast>)> {
            Some((Box::new(Fast::of(&args[0])?), Box::new(Fast::of(&args[1])?)))
        };
        Some(match &e.expr {
            Expr::Ident(name) if name == "op" => Fast::Op,
            Expr::Select(s) if !s.test => match &s.operand.expr {
                Expr::Ident(map) if map == "after" || map == "before" => {
                    Fast::Field { after: map == "after", column: s.field.clone() }
                }
                _ => return None,
            },
            Expr::Literal(LiteralValue::String(s)) => Fast::Str(s.inner().to_string()),
            Expr::Literal(LiteralValue::Int(i)) => Fast::Int(*i.inner()),
            Expr::Literal(LiteralValue::Double(d)) => Fast::Double(f64_to_decimal(*d.inner()).ok()),
            Expr::Literal(LiteralValue::Boolean(b)) => Fast::Bool(*b.inner()),
            Expr::Call(call) if call.target.is_none() => {
                let args = &call.args;
                let cmp = |op| bin(args).map(|(l, r)| Fast::Cmp(op, l, r));
                let arith = |op| bin(args).map(|(l, r)| Fast::Arith(op, l, r));
                match (call.func_name.as_str(), args.len()) {
                    ("_==_", 2) => cmp(Cmp::Eq)?,
                    ("_!=_", 2) => cmp(Cmp::Ne)?,
                    ("_<_", 2) => cmp(Cmp::Lt)?,
                    ("_<=_", 2) => cmp(Cmp::Le)?,
                    ("_>_", 2) => cmp(Cmp::Gt)?,
                    ("_>=_", 2) => cmp(Cmp::Ge)?,
                    ("_+_", 2) => arith(Arith::Add)?,
                    ("_-_", 2) => arith(Arith::Sub)?,
                    ("_*_", 2) => arith(Arith::Mul)?,
                    ("_&&_", 2) => bin(args).map(|(l, r)| Fast::And(l, r))?,
                    ("_||_", 2) => bin(args).map(|(l, r)| Fast::Or(l, r))?,
                    ("!_", 1) => Fast::Not(Box::new(Fast::of(&args[0])?)),
                    ("_?_:_", 3) => Fast::Cond(
                        Box::new(Fast::of(&args[0])?),
                        Box::new(Fast::of(&args[1])?),
                        Box::new(Fast::of(&args[2])?),
                    ),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The outcome, or `None` when the interpreter must decide.
    pub fn eval(&self, ev: &ChangeEvent) -> Option<Outcome> {
        Some(match self.value(ev)? {
            V::Bool(b) => Outcome::Bool(b),
            V::Int(i) => Outcome::Int(i),
            V::Str(s) => Outcome::Text(s.to_string()),
            V::Dec(d) => Outcome::Decimal(d.to_plain_string()),
            V::Double(_) => return None,
        })
    }

    fn value<'a>(&'a self, ev: &'a ChangeEvent) -> Option<V<'a>> {
        Some(match self {
            Fast::Op => V::Str(ev.op.code()),
            Fast::Field { after, column } => {
                let row = if *after { ev.after.as_ref() } else { ev.before.as_ref() }?;
                let at = ev.table.columns.iter().position(|c| &c.name == column)?;
                match row.get(at)? {
                    Value::Text(s) | Value::Enum(s) | Value::Uuid(s) | Value::Json(s) => V::Str(s),
                    Value::Int(i) => V::Int(*i),
                    Value::Bool(b) => V::Bool(*b),
                    Value::Decimal(text) => V::Dec(BigDecimal::from_str(text).ok()?),
                    _ => return None,
                }
            }
            Fast::Str(s) => V::Str(s),
            Fast::Int(i) => V::Int(*i),
            Fast::Double(d) => V::Double(d),
            Fast::Bool(b) => V::Bool(*b),
            Fast::Cmp(op, l, r) => V::Bool(compare(*op, l.value(ev)?, r.value(ev)?)?),
            // CEL's `&&`/`||` give false/true from either side, errors
            // included: decided here only when the left side decides, or
            // when both are booleans.
            Fast::And(l, r) => match l.value(ev)? {
                V::Bool(false) => V::Bool(false),
                V::Bool(true) => V::Bool(bool_of(r.value(ev)?)?),
                _ => return None,
            },
            Fast::Or(l, r) => match l.value(ev)? {
                V::Bool(true) => V::Bool(true),
                V::Bool(false) => V::Bool(bool_of(r.value(ev)?)?),
                _ => return None,
            },
            Fast::Not(x) => V::Bool(!bool_of(x.value(ev)?)?),
            Fast::Cond(c, yes, no) => {
                if bool_of(c.value(ev)?)? {
                    yes.value(ev)?
                } else {
                    no.value(ev)?
                }
            }
            Fast::Arith(op, l, r) => match (l.value(ev)?, r.value(ev)?) {
                (V::Dec(a), V::Double(b)) => {
                    let b = b.as_ref()?;
                    V::Dec(match op {
                        Arith::Add => a + b,
                        Arith::Sub => a - b,
                        Arith::Mul => a * b,
                    })
                }
                (V::Dec(a), b) => {
                    let b = decimal_of(b)?;
                    V::Dec(match op {
                        Arith::Add => a + b,
                        Arith::Sub => a - b,
                        Arith::Mul => a * b,
                    })
                }
                (V::Int(a), V::Int(b)) => V::Int(match op {
                    Arith::Add => a.checked_add(b)?,
                    Arith::Sub => a.checked_sub(b)?,
                    Arith::Mul => a.checked_mul(b)?,
                }),
                _ => return None,
            },
        })
    }
}

fn bool_of(v: V<'_>) -> Option<bool> {
    match v {
        V::Bool(b) => Some(b),
        _ => None,
    }
}

/// The right operand of a decimal's operator, as the decimal operators
/// take it (a double through its shortest text).
fn decimal_of(v: V<'_>) -> Option<BigDecimal> {
    match v {
        V::Dec(d) => Some(d),
        V::Int(i) => Some(BigDecimal::from(i)),
        V::Double(d) => d.clone(),
        _ => None,
    }
}

fn compare(op: Cmp, l: V<'_>, r: V<'_>) -> Option<bool> {
    let ordering = match (l, r) {
        (V::Str(a), V::Str(b)) => a.cmp(b),
        (V::Int(a), V::Int(b)) => a.cmp(&b),
        (V::Bool(a), V::Bool(b)) if matches!(op, Cmp::Eq | Cmp::Ne) => a.cmp(&b),
        (V::Dec(a), V::Double(b)) => a.cmp(b.as_ref()?),
        (V::Dec(a), b) => a.cmp(&decimal_of(b)?),
        _ => return None,
    };
    Some(match op {
        Cmp::Eq => ordering == Ordering::Equal,
        Cmp::Ne => ordering != Ordering::Equal,
        Cmp::Lt => ordering == Ordering::Less,
        Cmp::Le => ordering != Ordering::Greater,
        Cmp::Gt => ordering == Ordering::Greater,
        Cmp::Ge => ordering != Ordering::Less,
    })
}
