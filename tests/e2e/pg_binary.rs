//! pgoutput's binary mode (`[source] binary = true`): the type corpus's
//! values of every type outflow decodes in binary form (all but "char",
//! inet, cidr, macaddr, money, xml and ranges), streamed through two
//! pipelines on one database — one in text mode, one in binary mode — must
//! give the same events, byte for byte (but for the processing time). A
//! captured column of another type makes the stream use text: from the
//! start, and when a table gains one while streaming.

use serde_json::Value;

use crate::harness::{create_pg_types, wait_for, Outflow, TestDb, SHORT};

/// The corpus's columns binary mode decodes.
const BINARY_COLUMNS: &str = "id, c_int2, c_int4, c_int8, c_oid, c_numeric, c_numeric_ps, c_float4, c_float8, c_bool, \
     c_text, c_varchar, c_bpchar, c_name, c_bytea, c_date, c_time, c_time3, c_timetz, c_timestamp, c_timestamp3, \
     c_timestamptz, c_interval, c_uuid, c_json, c_jsonb, c_enum, c_domain, c_bit1, c_bit8, c_varbit, c_int4_arr, \
     c_int4_2d, c_text_arr, c_numeric_arr, c_date_arr, c_tstz_arr, c_enum_arr, c_uuid_arr, c_bool_arr, c_float8_arr, \
     c_bytea_arr";

/// A pipeline of its own (slot `slot`) on `tables`, binary or not.
fn pipeline(db: &TestDb, tables: &[&str], slot: &str, binary: bool) -> Outflow {
    let outflow = Outflow::new(db, tables);
    let text = outflow
        .config_text()
        .replace(&format!("slot = \"{}\"", db.name()), &format!("slot = \"{slot}\"\nbinary = {binary}"));
    outflow.raw_config(text)
}

/// The events without the processing time (the only field allowed to differ).
fn comparable(outflow: &Outflow) -> Vec<Value> {
    let mut events = outflow.events();
    for e in &mut events {
        if let Some(o) = e.as_object_mut() {
            o.retain(|k, _| !k.starts_with("ts_"));
        }
    }
    events
}

#[tokio::test]
async fn binary_mode_gives_the_same_events_as_text_mode() {
    let db = TestDb::create("pg_binary").await;
    let rows = create_pg_types(&db).await;
    db.execute(&rows).await;
    db.execute(&format!("CREATE TABLE pg_bin AS SELECT {BINARY_COLUMNS} FROM pg_types WITH NO DATA")).await;
    db.execute("ALTER TABLE pg_bin ADD PRIMARY KEY (id)").await;
    let text = pipeline(&db, &["public.pg_bin"], &format!("{}_t", db.name()), false);
    let binary = pipeline(&db, &["public.pg_bin"], &format!("{}_b", db.name()), true);
    for p in [&text, &binary] {
        p.run_until_caught_up().await.assert_success();
    }
    db.execute(&format!("INSERT INTO pg_bin SELECT {BINARY_COLUMNS} FROM pg_types")).await;
    db.execute("UPDATE pg_bin SET c_int4 = coalesce(c_int4, 0) + 1 WHERE id % 2 = 0").await;
    db.execute("DELETE FROM pg_bin WHERE id = (SELECT min(id) FROM pg_bin)").await;
    let text_run = text.run_until_caught_up().await;
    text_run.assert_success();
    let binary_run = binary.run_until_caught_up().await;
    binary_run.assert_success();
    assert!(!binary_run.stderr.contains("no binary decoding"), "binary mode was used:\n{}", binary_run.stderr);
    let (t, b) = (comparable(&text), comparable(&binary));
    assert!(t.len() > 5, "the corpus streamed: {} events", t.len());
    assert_eq!(b, t, "binary and text mode give the same events");

    // A column binary mode cannot decode, added while streaming: the stream
    // goes on in text mode, nothing lost.
    let run = binary.spawn_run();
    let slot = format!("{}_b", db.name());
    wait_for(SHORT, "the binary pipeline to stream", || async {
        let rows = db.query(&format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}' AND active")).await;
        !rows.is_empty()
    })
    .await;
    db.execute("ALTER TABLE pg_bin ADD COLUMN c_inet inet").await;
    db.execute("INSERT INTO pg_bin (id, c_inet) VALUES (1000, '10.1.2.3/16')").await;
    wait_for(SHORT, "the row with an inet", || async {
        binary.events_so_far().iter().any(|e| e["after"]["c_inet"] == "10.1.2.3/16")
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("streaming in text from now on"), "{}", out.stderr);
    text.run_until_caught_up().await.assert_success();
    assert_eq!(comparable(&binary), comparable(&text), "the same events after the switch");

    // From the start: a captured column binary mode cannot decode means text.
    let mixed = pipeline(&db, &["public.pg_types"], &format!("{}_m", db.name()), true);
    let out = mixed.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("no binary decoding in outflow: streaming in text"), "{}", out.stderr);
    db.cleanup().await;
}
