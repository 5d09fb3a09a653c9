//! The PostgreSQL type corpus end to end: `tests/golden/pg_types.sql` is
//! replayed through the real binary, and each row's `after` must equal the
//! hand-checked Debezium rendering in `tests/golden/pg_types.expected.json`.

use serde_json::Value;

use crate::harness::{changes, create_pg_types, Outflow, TestDb};

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[tokio::test]
async fn every_type_renders_as_the_golden_file_says() {
    let expected: Vec<Value> = serde_json::from_str(&golden("pg_types.expected.json")).expect("golden JSON");
    let db = TestDb::create("pg_types").await;
    let rows = create_pg_types(&db).await;
    let outflow = Outflow::new(&db, &["public.pg_types"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute(&rows).await;
    outflow.run_until_caught_up().await.assert_success();

    let events = outflow.events();
    let got = changes(&events, "pg_types");
    assert_eq!(got.len(), expected.len(), "one event per golden row");
    for (event, want) in got.iter().zip(&expected) {
        assert_eq!(event["op"], "c");
        let after = &event["after"];
        let id = &want["id"];
        for (column, want_value) in want.as_object().expect("golden rows are objects") {
            assert_eq!(
                &after[column], want_value,
                "row id={id} column {column}: got {} want {want_value}",
                after[column]
            );
        }
        assert_eq!(
            after.as_object().map(|o| o.len()),
            want.as_object().map(|o| o.len()),
            "row id={id} has exactly the golden columns"
        );
    }
    db.cleanup().await;
}
