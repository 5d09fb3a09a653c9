//! Expressions over events: exact decimals whichever side they are on,
//! the bindings (`op`, `before`, `after`, `source`), result types, and the
//! errors users see.

use std::sync::Arc;

use outflow_model::{ChangeEvent, ColumnSchema, ColumnType, Op, Position, SourceInfo, TableId, TableSchema, Value};

use super::{Expression, Outcome};

fn column(name: &str, ty: ColumnType, key: bool) -> ColumnSchema {
    ColumnSchema { name: name.into(), ty, type_name: String::new(), type_id: 0, type_modifier: -1, nullable: true, key }
}

fn event(op: Op, after: Option<Vec<Value>>) -> ChangeEvent {
    let schema = TableSchema {
        id: TableId::new("public", "orders"),
        version: 1,
        columns: vec![
            column("id", ColumnType::Int { bits: 32, signed: true }, true),
            column("amount", ColumnType::Decimal(Some((10, 2))), false),
            column("country", ColumnType::Text { max_chars: None }, false),
            column("created", ColumnType::TimestampTz { precision: None }, false),
            column("doc", ColumnType::Json, false),
        ],
    };
    ChangeEvent {
        op,
        table: Arc::new(schema),
        before: None,
        after,
        source: SourceInfo { commit_ts_us: 1_700_000_000_123_456, ..Default::default() },
        position: Position::Pg { lsn: 0x16B3748, index: 0 },
    }
}

fn order() -> ChangeEvent {
    let row = vec![
        Value::Int(7),
        Value::Decimal("19.99".into()),
        Value::Text("DE".into()),
        Value::TimestampTz(1_700_000_000_000_000),
        Value::Unchanged,
    ];
    event(Op::Update, Some(row))
}

fn eval(text: &str) -> Result<Outcome, String> {
    Expression::compile(text).unwrap_or_else(|e| panic!("{text}: {e}")).eval(&order())
}

#[test]
fn decimals_stay_exact_on_either_side_of_an_operator() {
    let exact = |s: &str| Ok(Outcome::Decimal(s.into()));
    assert_eq!(eval("after.amount * 0.92"), exact("18.3908"));
    assert_eq!(eval("0.92 * after.amount"), exact("18.3908"));
    assert_eq!(eval("after.amount + after.amount"), exact("39.98"));
    assert_eq!(eval("after.amount - 1"), exact("18.99"));
    assert_eq!(eval("after.amount / 4"), exact("4.9975"));
    assert_eq!(eval("-after.amount"), exact("-19.99"));
    assert_eq!(eval("after.id * after.amount"), exact("139.93"));
    assert_eq!(eval("after.amount == 19.99"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("19.99 == after.amount"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("10 < after.amount"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("after.amount in [1, 19.99]"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("decimal('0.1') + 0.2 == 0.3"), Ok(Outcome::Bool(true)));
    // Plain doubles stay doubles.
    assert_eq!(eval("0.1 + 0.2 == 0.3"), Ok(Outcome::Bool(false)));
    assert_eq!(eval("1 + 2"), Ok(Outcome::Int(3)));
}

#[test]
fn expressions_see_op_rows_and_source() {
    assert_eq!(eval("op != 'd' && after.country == 'DE'"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("after.country == 'DE' ? 'eu' : 'other'"), Ok(Outcome::Text("eu".into())));
    assert_eq!(eval("before == null"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("source.table + '@' + source.schema"), Ok(Outcome::Text("orders@public".into())));
    assert_eq!(eval("source.ts_ms"), Ok(Outcome::Int(1_700_000_000_123)));
    assert_eq!(eval("source.position"), Ok(Outcome::Text("lsn:0/16B3748".into())));
    assert_eq!(eval("after.created > timestamp('2023-01-01T00:00:00Z')"), Ok(Outcome::Bool(true)));
    assert_eq!(eval("after.created"), Ok(Outcome::Timestamp(1_700_000_000_000_000)));
    // An unchanged TOASTed value is absent, not null.
    assert_eq!(eval("has(after.doc)"), Ok(Outcome::Bool(false)));
    assert_eq!(eval("has(after.country)"), Ok(Outcome::Bool(true)));
}

#[test]
fn failures_say_what_is_wrong() {
    assert_eq!(eval("after.amout > 1"), Err("No such key: amout".into()));
    let err = eval("after.amount * 'x'").unwrap_err();
    assert_eq!(err, "found no matching overload for '_*_' applied to '(decimal, string)'");
    let err = Expression::compile("after.amount *").unwrap_err();
    assert!(err.starts_with("ERROR: <input>:1:15: Syntax error"), "{err}");
    let deleted = event(Op::Delete, None);
    let err = Expression::compile("after.country == 'DE'").unwrap().eval(&deleted).unwrap_err();
    assert!(err.contains("null"), "{err}");
}

#[test]
fn result_types_come_from_a_trial_run_on_the_table_shape() {
    let schema = order().table;
    let ty = |text: &str| Expression::compile(text).unwrap().result_type(&schema);
    assert_eq!(ty("after.amount * 0.92"), Ok(Some(ColumnType::Decimal(None))));
    assert_eq!(ty("after.country == 'DE' ? 'eu' : 'other'"), Ok(Some(ColumnType::Text { max_chars: None })));
    assert_eq!(ty("after.id * 2"), Ok(Some(ColumnType::Int { bits: 64, signed: true })));
    assert_eq!(ty("after.id > 2"), Ok(Some(ColumnType::Bool)));
    assert_eq!(ty("null"), Ok(None));
    assert_eq!(ty("after.nope"), Err("No such key: nope".into()));
    assert_eq!(Outcome::Int(3).into_value(&ColumnType::Decimal(None)), Ok(Value::Decimal("3".into())));
    assert!(Outcome::Text("x".into()).into_value(&ColumnType::Bool).is_err());
}

#[test]
fn only_the_named_columns_are_converted() {
    assert_eq!(Expression::compile("after.amount * 2 + before.id").unwrap().columns.unwrap().len(), 2);
    assert!(Expression::compile("size(after) > 1").unwrap().columns.is_none());
    assert!(Expression::compile("has(after.doc)").unwrap().columns.unwrap().contains("doc"));
    // A bare map anywhere converts every column, of both maps.
    let both = Expression::compile("size(before) > 0 || after.id == 7").unwrap();
    assert!(both.columns.is_none());
    assert_eq!(both.eval(&order()), Ok(Outcome::Bool(true)));
}

/// The shortcut (`fast`) answers exactly as the interpreter does wherever
/// it answers, and answers the common forms at all.
#[test]
fn the_shortcut_agrees_with_the_interpreter() {
    let rows = [
        vec![Value::Int(7), Value::Decimal("19.99".into()), Value::Text("DE".into()), Value::Null, Value::Unchanged],
        vec![Value::Int(-3), Value::Decimal("0".into()), Value::Text("FR".into()), Value::Null, Value::Null],
        vec![
            Value::Int(0),
            Value::Decimal("-0.50".into()),
            Value::Text("".into()),
            Value::Null,
            Value::Json("{}".into()),
        ],
        vec![
            Value::Int(9_223_372_036_854_775_807),
            Value::Decimal("NaN".into()),
            Value::Null,
            Value::Null,
            Value::Null,
        ],
        vec![Value::Null, Value::Null, Value::Text("déjà".into()), Value::Null, Value::Null],
    ];
    let expressions = [
        "op != 'd' && after.country == 'DE'",
        "op == 'u' || after.amount > 10",
        "after.amount >= 0.0 && after.country != 'deleted'",
        "after.amount * 0.92",
        "after.amount + 1",
        "after.amount - 0.5",
        "after.amount == 19.99",
        "after.amount != 0",
        "after.amount < after.amount",
        "after.id * 2",
        "after.id + 1",
        "after.id - 1 < 0",
        "after.id >= 7",
        "!(after.id == 7)",
        "after.country < 'E'",
        "after.country == 'DE' ? 'eu' : 'other'",
        "after.id > 0 ? after.amount * 2 : after.amount",
        "after.doc == '{}'",
        "after.missing == 1",
        "before.id == 1 || true",
        "false && after.amount > 1",
        "true == (after.id == 7)",
        "after.amount * after.id",
        "after.id * after.amount",
    ];
    let mut answered = 0;
    for text in expressions {
        let expression = Expression::compile(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let fast = expression.fast.as_ref().unwrap_or_else(|| panic!("{text} is in the shortcut's subset"));
        for (i, row) in rows.iter().enumerate() {
            let ev = event(Op::Update, Some(row.clone()));
            if let Some(got) = fast.eval(&ev) {
                answered += 1;
                assert_eq!(Ok(got), expression.interpret(&ev), "{text} on row {i}");
            }
        }
    }
    assert!(answered >= 60, "the shortcut answered {answered} times");
    for text in ["has(after.doc)", "size(after.country) > 1", "source.table == 'x'", "after.x == null"] {
        assert!(Expression::compile(text).unwrap().fast.is_none(), "{text} is left to the interpreter");
    }
}
