//! Exact decimals in CEL expressions (`[[transform]] filter` and `derive`).
//!
//! The `cel` crate has no decimal type, and its doubles would make
//! `after.amount * 0.92` inexact. [`CelDecimal`] is a CEL value wrapping a
//! `BigDecimal` (no size limit, as PostgreSQL's numeric and MySQL's
//! DECIMAL(65,30) need) that implements the operator traits, so the
//! arithmetic and comparisons of a decimal stay exact; a double literal
//! meets a decimal as its shortest round-trip text (`0.92` is exactly
//! 0.92). Division that does not terminate rounds to 100 significant digits.
//!
//! The interpreter dispatches a binary operator on its left operand only,
//! so `0.92 * after.amount`, `10 < after.amount` or `19.99 ==
//! after.amount` would reach the double's or int's own operator (an error,
//! or a silent `false` for `==`). [`rewrite`] therefore renames the binary
//! operators of a compiled expression to the `@dec_*` overloads that
//! [`install`] registers: they promote a number on the left when the right
//! is a decimal, and otherwise make the very calls the interpreter makes
//! (same results, same errors). Hand-written because no crate offers
//! decimals for CEL; the parser and interpreter are the crate's.

use std::any::Any;
use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::{BigDecimal, ToPrimitive, Zero};
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::traits::{Adder, Comparer, Divider, Modder, Multiplier, Negator, Subtractor, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelString, CelUInt, Type, DOUBLE_TYPE, DYN_TYPE, INT_TYPE, STRING_TYPE,
    UINT_TYPE,
};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{Env, ExecutionError, Value};

/// CEL type of decimals; `type(x)` yields `decimal`. Kind::Unspecified.
pub static DECIMAL_TYPE: Type = Type::new_unspecified_type("decimal");

#[derive(Clone, Debug, PartialEq)]
pub struct CelDecimal(pub BigDecimal);

impl CelDecimal {
    pub fn parse(s: &str) -> Result<Self, String> {
        BigDecimal::from_str(s.trim()).map(CelDecimal).map_err(|e| format!("invalid decimal '{s}': {e}"))
    }
}

/// A double as decimal, via its shortest round-trip text (`0.92` -> "0.92"), never its
/// binary expansion (0.9200000000000000399680288865056354552507400512695312).
pub fn f64_to_decimal(f: f64) -> Result<BigDecimal, ExecutionError> {
    if !f.is_finite() {
        return Err(ExecutionError::function_error("decimal", format!("cannot convert {f} to decimal")));
    }
    // `Display` for f64 prints the shortest string that round-trips, without
    // exponent. Remembered per thread: the same literal meets every row.
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<u64, BigDecimal>> = Default::default();
    }
    if let Some(d) = SEEN.with(|seen| seen.borrow().get(&f.to_bits()).cloned()) {
        return Ok(d);
    }
    let d =
        BigDecimal::from_str(&format!("{f}")).map_err(|e| ExecutionError::function_error("decimal", e.to_string()))?;
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() >= 1024 {
            seen.clear();
        }
        seen.insert(f.to_bits(), d.clone());
    });
    Ok(d)
}

/// The numeric value of `v` as a decimal: `Some(Ok)` for decimal/int/uint/finite double,
/// `Some(Err)` for NaN/inf, `None` for non-numeric values.
fn numeric_as_decimal(v: &dyn Val) -> Option<Result<BigDecimal, ExecutionError>> {
    if let Some(d) = v.downcast_ref::<CelDecimal>() {
        Some(Ok(d.0.clone()))
    } else if let Some(i) = v.downcast_ref::<CelInt>() {
        Some(Ok(BigDecimal::from(*i.inner())))
    } else if let Some(u) = v.downcast_ref::<CelUInt>() {
        Some(Ok(BigDecimal::from(*u.inner())))
    } else {
        v.downcast_ref::<CelDouble>().map(|d| f64_to_decimal(*d.inner()))
    }
}

fn is_decimal(v: &dyn Val) -> bool {
    v.downcast_ref::<CelDecimal>().is_some()
}

fn no_overload(op: &str, l: &dyn Val, r: &dyn Val) -> ExecutionError {
    ExecutionError::no_such_overload(op, vec![l.get_type().name().to_owned(), r.get_type().name().to_owned()])
}

impl CelDecimal {
    fn rhs(&self, op: &str, rhs: &dyn Val) -> Result<BigDecimal, ExecutionError> {
        numeric_as_decimal(rhs).unwrap_or_else(|| Err(no_overload(op, self, rhs)))
    }
}

impl Val for CelDecimal {
    fn get_type(&self) -> &Type {
        &DECIMAL_TYPE
    }
    fn cel_type() -> &'static Type {
        &DECIMAL_TYPE
    }
    fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn Adder + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_subtractor<'b, 'v>(&'b self) -> Option<&'b (dyn Subtractor + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_multiplier<'b, 'v>(&'b self) -> Option<&'b (dyn Multiplier + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_divider<'b, 'v>(&'b self) -> Option<&'b (dyn Divider + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_modder<'b, 'v>(&'b self) -> Option<&'b (dyn Modder + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_negator<'b, 'v>(&'b self) -> Option<&'b (dyn Negator + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
    fn as_comparer(&self) -> Option<&dyn Comparer> {
        Some(self)
    }
    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }
    /// Numeric equality with decimal, int, uint and double (double via shortest text).
    fn equals(&self, other: &dyn Val) -> bool {
        matches!(numeric_as_decimal(other), Some(Ok(o)) if o == self.0)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}
impl StaticVal for CelDecimal {}

impl Adder for CelDecimal {
    fn add<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(CowVal::owned(CelDecimal(&self.0 + self.rhs("_+_", rhs)?)))
    }
}
impl Subtractor for CelDecimal {
    fn sub<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(CowVal::owned(CelDecimal(&self.0 - self.rhs("_-_", rhs)?)))
    }
}
impl Multiplier for CelDecimal {
    fn mul<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(CowVal::owned(CelDecimal(&self.0 * self.rhs("_*_", rhs)?)))
    }
}
impl Divider for CelDecimal {
    /// Exact when the quotient terminates; otherwise rounded to bigdecimal's default
    /// precision (100 significant digits, RUST_BIGDECIMAL_DEFAULT_PRECISION at build time).
    fn div<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let r = self.rhs("_/_", rhs)?;
        if r.is_zero() {
            return Err(ExecutionError::function_error("_/_", "decimal division by zero"));
        }
        Ok(CowVal::owned(CelDecimal(&self.0 / r)))
    }
}
impl Modder for CelDecimal {
    fn modulo<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let r = self.rhs("_%_", rhs)?;
        if r.is_zero() {
            return Err(ExecutionError::function_error("_%_", "decimal modulo by zero"));
        }
        Ok(CowVal::owned(CelDecimal(&self.0 % r)))
    }
}
impl Negator for CelDecimal {
    fn negate<'v>(&self) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(Box::new(CelDecimal(-self.0.clone())))
    }
}
impl Comparer for CelDecimal {
    fn compare(&self, rhs: &dyn Val) -> Result<Ordering, ExecutionError> {
        Ok(self.0.cmp(&self.rhs("compare", rhs)?))
    }
}
impl Zeroer for CelDecimal {
    fn is_zero_value(&self) -> bool {
        self.0.is_zero()
    }
}

#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

fn arith<'b, 'v>(op: Arith, args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (l, r) = (args[0].as_ref(), args[1].as_ref());
    // `2 * dec`, `qty * dec`, `0.92 * dec`: promote the left operand.
    let promoted;
    let l: &(dyn Val + 'v) = if !is_decimal(l) && is_decimal(r) {
        let sym = match op {
            Arith::Add => "_+_",
            Arith::Sub => "_-_",
            Arith::Mul => "_*_",
            Arith::Div => "_/_",
            Arith::Rem => "_%_",
        };
        match numeric_as_decimal(l) {
            Some(d) => {
                promoted = CelDecimal(d?);
                &promoted
            }
            None => return Err(no_overload(sym, l, r)),
        }
    } else {
        l
    };
    // Same calls and errors as the interpreter's built-in operator handling.
    let unsupported = |name: &'static str| {
        ExecutionError::UnsupportedBinaryOperator(
            name,
            Value::try_from(l).unwrap_or(Value::Null),
            Value::try_from(r).unwrap_or(Value::Null),
        )
    };
    let out = match op {
        Arith::Add => l.as_adder().ok_or_else(|| unsupported("add"))?.add(r)?.into_owned(),
        Arith::Sub => l.as_subtractor().ok_or_else(|| unsupported("sub"))?.sub(r)?.into_owned(),
        Arith::Mul => l.as_multiplier().ok_or_else(|| unsupported("mul"))?.mul(r)?.into_owned(),
        Arith::Div => l.as_divider().ok_or_else(|| unsupported("div"))?.div(r)?.into_owned(),
        Arith::Rem => l.as_modder().ok_or_else(|| unsupported("rem"))?.modulo(r)?.into_owned(),
    };
    Ok(CowVal::Owned(out))
}

fn compare(op: &str, l: &dyn Val, r: &dyn Val) -> Result<Ordering, ExecutionError> {
    let res = if !is_decimal(l) && is_decimal(r) {
        r.as_comparer().expect("decimal compares").compare(l).map(Ordering::reverse)
    } else {
        match l.as_comparer() {
            Some(c) => c.compare(r),
            None => return Err(no_overload(op, l, r)),
        }
    };
    // like the interpreter: type errors are reported as "no matching overload for <op>"
    res.map_err(|e| match e {
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedKeyType(_)
        | ExecutionError::UnexpectedType { .. } => no_overload(op, l, r),
        e => e,
    })
}

fn bool_val<'b, 'v>(b: bool) -> CowVal<'b, 'v> {
    CowVal::owned(CelBool::from(b))
}

fn equal(l: &dyn Val, r: &dyn Val) -> bool {
    if !is_decimal(l) && is_decimal(r) {
        r.equals(l)
    } else {
        l.equals(r)
    }
}

fn op_add<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arith(Arith::Add, a)
}
fn op_sub<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arith(Arith::Sub, a)
}
fn op_mul<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arith(Arith::Mul, a)
}
fn op_div<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arith(Arith::Div, a)
}
fn op_rem<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arith(Arith::Rem, a)
}
fn op_lt<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(compare("_<_", &*a[0], &*a[1])? == Ordering::Less))
}
fn op_le<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(compare("_<=_", &*a[0], &*a[1])? != Ordering::Greater))
}
fn op_gt<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(compare("_>_", &*a[0], &*a[1])? == Ordering::Greater))
}
fn op_ge<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(compare("_>=_", &*a[0], &*a[1])? != Ordering::Less))
}
fn op_eq<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(equal(&*a[0], &*a[1])))
}
fn op_ne<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(bool_val(!equal(&*a[0], &*a[1])))
}
/// `x in list`: the built-in list `in` calls `element.equals(x)`, i.e. double/int
/// elements vs a decimal `x` would be false; use the symmetric `equal` instead.
fn op_in<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (l, r) = (&*a[0], &*a[1]);
    if is_decimal(l) {
        if let Some(list) = r.downcast_ref::<CelList>() {
            return Ok(bool_val(list.inner().iter().any(|e| equal(l, e.as_ref()))));
        }
    }
    match r.as_container() {
        Some(c) => c.contains(l).map(bool_val).map_err(|_| no_overload("@in", l, r)),
        None => Err(no_overload("@in", l, r)),
    }
}

/// Operators rewritten to overloads (interpreter name -> overload name).
const REWRITES: &[(&str, &str)] = &[
    ("_+_", "@dec_add"),
    ("_-_", "@dec_sub"),
    ("_*_", "@dec_mul"),
    ("_/_", "@dec_div"),
    ("_%_", "@dec_rem"),
    ("_<_", "@dec_lt"),
    ("_<=_", "@dec_le"),
    ("_>_", "@dec_gt"),
    ("_>=_", "@dec_ge"),
    ("_==_", "@dec_eq"),
    ("_!=_", "@dec_ne"),
    ("@in", "@dec_in"),
];

/// Rewrites binary operators of the parsed AST to the `@dec_*` overloads.
pub fn rewrite(e: &mut IdedExpr) {
    match &mut e.expr {
        Expr::Call(call) => {
            if call.target.is_none() && call.args.len() == 2 {
                if let Some((from, to)) = REWRITES.iter().find(|(from, _)| *from == call.func_name) {
                    // Only where the interpreter's own dispatch would be
                    // wrong (an overload costs a lookup per evaluation): a
                    // number on the left meeting a possible decimal on the
                    // right, or a possible decimal looked up in a list.
                    let needed = match *from {
                        "@in" => may_be_decimal(&call.args[0]),
                        _ => may_be_decimal(&call.args[1]) && may_be_number(&call.args[0]),
                    };
                    if needed {
                        call.func_name = (*to).to_owned();
                    }
                }
            }
            if let Some(t) = call.target.as_mut() {
                rewrite(t);
            }
            call.args.iter_mut().for_each(rewrite);
        }
        Expr::Comprehension(c) => {
            rewrite(&mut c.iter_range);
            rewrite(&mut c.accu_init);
            rewrite(&mut c.loop_cond);
            rewrite(&mut c.loop_step);
            rewrite(&mut c.result);
        }
        Expr::List(l) => l.elements.iter_mut().for_each(rewrite),
        Expr::Map(m) => m.entries.iter_mut().for_each(|en| match &mut en.expr {
            EntryExpr::MapEntry(me) => {
                rewrite(&mut me.key);
                rewrite(&mut me.value);
            }
            EntryExpr::StructField(sf) => rewrite(&mut sf.value),
        }),
        Expr::Struct(s) => s.entries.iter_mut().for_each(|en| match &mut en.expr {
            EntryExpr::MapEntry(me) => {
                rewrite(&mut me.key);
                rewrite(&mut me.value);
            }
            EntryExpr::StructField(sf) => rewrite(&mut sf.value),
        }),
        Expr::Select(s) => rewrite(&mut s.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Whether `e` can evaluate to a decimal: not a literal, `op`, a `source`
/// field, or a call that gives no number.
fn may_be_decimal(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Literal(_) => false,
        Expr::Ident(name) => name != "op",
        Expr::Select(s) => !matches!(&s.operand.expr, Expr::Ident(name) if name == "source"),
        Expr::Call(call) => {
            matches!(call.func_name.as_str(), "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_" | "_?_:_" | "decimal")
                || call.func_name.starts_with("@dec_")
                || call.target.is_some()
                    && !matches!(call.func_name.as_str(), "startsWith" | "endsWith" | "contains" | "matches" | "size")
        }
        _ => true,
    }
}

/// Whether `e` can evaluate to a number other than a decimal (not a string,
/// bytes, bool or null literal).
fn may_be_number(e: &IdedExpr) -> bool {
    !matches!(
        &e.expr,
        Expr::Literal(LiteralValue::String(_) | LiteralValue::Bytes(_) | LiteralValue::Boolean(_) | LiteralValue::Null)
    )
}

fn fn_decimal<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = &*a[0];
    if let Some(s) = v.downcast_ref::<CelString>() {
        return CelDecimal::parse(s.inner())
            .map(CowVal::owned)
            .map_err(|e| ExecutionError::function_error("decimal", e));
    }
    match numeric_as_decimal(v) {
        Some(d) => Ok(CowVal::owned(CelDecimal(d?))),
        None => Err(ExecutionError::no_such_overload("decimal", vec![v.get_type().name().to_owned()])),
    }
}
fn fn_string_of_decimal<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let d = a[0].downcast_ref::<CelDecimal>().expect("overload typed");
    Ok(CowVal::owned(CelString::from(d.0.to_plain_string())))
}
fn fn_double_of_decimal<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let d = a[0].downcast_ref::<CelDecimal>().expect("overload typed");
    let f = d.0.to_f64().ok_or_else(|| ExecutionError::function_error("double", "out of range"))?;
    Ok(CowVal::owned(CelDouble::from(f)))
}

/// Registers the `@dec_*` operators [`rewrite`] points at, and `decimal(x)`,
/// `string(decimal)`, `double(decimal)`.
pub fn install(env: &mut Env) -> Result<(), cel::DeclarationError> {
    let ops: [(&str, cel::common::functions::Function); 12] = [
        ("@dec_add", op_add),
        ("@dec_sub", op_sub),
        ("@dec_mul", op_mul),
        ("@dec_div", op_div),
        ("@dec_rem", op_rem),
        ("@dec_lt", op_lt),
        ("@dec_le", op_le),
        ("@dec_gt", op_gt),
        ("@dec_ge", op_ge),
        ("@dec_eq", op_eq),
        ("@dec_ne", op_ne),
        ("@dec_in", op_in),
    ];
    for (name, f) in ops {
        env.add_overload(name, name, vec![DYN_TYPE, DYN_TYPE], f)?;
    }
    env.add_overload("decimal", "decimal_string", vec![STRING_TYPE], fn_decimal)?;
    env.add_overload("decimal", "decimal_double", vec![DOUBLE_TYPE], fn_decimal)?;
    env.add_overload("decimal", "decimal_int", vec![INT_TYPE], fn_decimal)?;
    env.add_overload("decimal", "decimal_uint", vec![UINT_TYPE], fn_decimal)?;
    env.add_overload("decimal", "decimal_decimal", vec![DECIMAL_TYPE.to_owned()], fn_decimal)?;
    env.add_overload("string", "string_decimal", vec![DECIMAL_TYPE.to_owned()], fn_string_of_decimal)?;
    env.add_overload("double", "double_decimal", vec![DECIMAL_TYPE.to_owned()], fn_double_of_decimal)?;
    Ok(())
}
