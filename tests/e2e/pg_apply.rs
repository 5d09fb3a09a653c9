//! The PostgreSQL apply sink (`kind = "postgres"`): source tables kept equal
//! to target tables in a second database on the test server. Every check
//! reads both sides with plain SQL (tokio-postgres, mysql_async), never
//! through outflow: row-for-row equality after random inserts, updates and
//! deletes (PostgreSQL and MariaDB sources), after kill -9 in a busy run
//! (no duplicates in an append-only table), after ALTER TABLE, for every
//! type of the golden corpus, and for TOAST values the source did not resend
//! (also when an update moved the row to another key).

use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

use crate::harness::{create_pg_types, env_var, wait_for, Outflow, TestDb, SHORT};
use crate::mysql_harness::{server_id, MyDb};

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A PostgreSQL source → PostgreSQL target setup.
fn pg_to_pg(source: &TestDb, target: &TestDb, tables: &[&str]) -> Outflow {
    let (src, slot, dst) = (source.url(), source.name().to_string(), target.url());
    let tables: Vec<String> = tables.iter().map(|t| toml_str(t)).collect();
    Outflow::raw(move |dir: &Path| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [{}]\nslot = {}\npublication = \"outflow\"\n\n\
             [state]\ndir = {}\n\n[[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {}\nbatch_rows = 700\n",
            toml_str(&src),
            tables.join(", "),
            toml_str(&slot),
            toml_str(&dir.join("state").to_string_lossy()),
            toml_str(&dst),
        )
    })
}

/// Every row of `table` as text, ordered by `order`.
async fn pg_rows(db: &TestDb, table: &str, order: &str) -> Vec<String> {
    db.query(&format!("SELECT t::text FROM {table} t ORDER BY {order}"))
        .await
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn assert_same_rows(source: &TestDb, target: &TestDb, table: &str, order: &str) {
    let want = pg_rows(source, table, order).await;
    let got = pg_rows(target, table, order).await;
    if got.len() != want.len() {
        let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).take(5).collect();
        let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).take(5).collect();
        panic!(
            "{table}: target has {} rows, source {}; only in the target: {extra:?}; missing: {missing:?}",
            got.len(),
            want.len()
        );
    }
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{table}: target row differs from the source's");
    }
}

/// One random statement against `items (id int primary key, v text, n numeric(12,2))`.
pub(crate) fn random_statement(rng: &mut StdRng, next_id: &mut i32) -> String {
    let id = rng.random_range(1..=(*next_id).max(1));
    match rng.random_range(0..10) {
        0..=3 => {
            *next_id += 1;
            format!(
                "INSERT INTO items VALUES ({}, 'v{}', {}.{:02});",
                *next_id,
                rng.random::<u32>(),
                rng.random_range(-999..999),
                rng.random_range(0..100)
            )
        }
        4..=6 => format!("UPDATE items SET v = 'u{}', n = n + 1 WHERE id = {id};", rng.random::<u16>()),
        7 => format!("UPDATE items SET id = {} WHERE id = {id};", {
            *next_id += 1;
            *next_id
        }),
        _ => format!("DELETE FROM items WHERE id = {id};"),
    }
}

#[tokio::test]
async fn pg_apply_random_changes_leave_the_target_equal_to_the_source() {
    let source = TestDb::create("apply_src").await;
    let target = TestDb::create("apply_dst").await;
    source
        .execute(
            "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
             CREATE TABLE notes (note text, at int);
             INSERT INTO items SELECT g, 'seed' || g, g / 7.0 FROM generate_series(1, 300) g;
             INSERT INTO notes SELECT 'n' || g, g FROM generate_series(1, 50) g;",
        )
        .await;
    let outflow = pg_to_pg(&source, &target, &["public.items", "public.notes"]);
    outflow.run_until_caught_up().await.assert_success();
    assert_same_rows(&source, &target, "items", "id").await;
    assert_same_rows(&source, &target, "notes", "at").await;

    let mut rng = StdRng::seed_from_u64(8);
    let mut next_id = 300;
    for round in 0..20 {
        let mut tx = String::from("BEGIN;");
        for _ in 0..rng.random_range(1..40) {
            tx.push_str(&random_statement(&mut rng, &mut next_id));
        }
        tx.push_str(&format!("INSERT INTO notes VALUES ('round {round}', {});", 100 + round));
        tx.push_str("COMMIT;");
        source.execute(&tx).await;
    }
    // The same key touched several times inside one transaction: last one wins.
    source
        .execute(
            "BEGIN; INSERT INTO items VALUES (100000, 'a', 1); UPDATE items SET v = 'b' WHERE id = 100000;
             DELETE FROM items WHERE id = 100000; INSERT INTO items VALUES (100000, 'c', 3); COMMIT;",
        )
        .await;
    source.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    assert_same_rows(&source, &target, "items", "id").await;
    assert_same_rows(&source, &target, "notes", "at").await;
    let offset = target.query("SELECT position FROM outflow.offsets WHERE sink = 'replica'").await;
    assert!(offset[0].get::<_, String>(0).starts_with("lsn:"), "the offsets row holds a source position");

    // A truncate empties the target; rows after it arrive.
    source.execute("TRUNCATE items; INSERT INTO items VALUES (1, 'after truncate', 0);").await;
    source.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    assert_same_rows(&source, &target, "items", "id").await;
    target.cleanup().await;
    source.cleanup().await;
}

/// One transaction of 50 random `items` statements, each with an insert
/// into the keyless `appended` table.
pub(crate) fn busy_transaction(rng: &mut StdRng, next_id: &mut i32, seq: &mut i32) -> String {
    let mut tx = String::from("BEGIN;");
    for _ in 0..50 {
        tx.push_str(&random_statement(rng, next_id));
        *seq += 1;
        tx.push_str(&format!("INSERT INTO appended VALUES ({}, 'p{}');", *seq, *seq));
    }
    tx.push_str("COMMIT;");
    tx
}

/// `busy_transaction`s from their own connection until stopped, paced 20 ms
/// apart: not waiting, but under back-to-back transactions a pipeline's
/// timed commit rarely lands between two of them.
pub(crate) struct BusyWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(StdRng, i32, i32)>,
}

impl BusyWriter {
    pub(crate) fn start(load: tokio_postgres::Client, seed: u64) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let (mut rng, mut next_id, mut seq) = (StdRng::seed_from_u64(seed), 0, 0);
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                load.batch_execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await.expect("load");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (rng, next_id, seq)
        });
        BusyWriter { stop, task }
    }

    /// Stops writing; the generator's state, to go on where it stopped.
    pub(crate) async fn stop(self) -> (StdRng, i32, i32) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.expect("load task")
    }
}

const BUSY_DDL: &str = "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
     CREATE TABLE appended (seq int, payload text);";

async fn assert_busy_tables_equal(source: &TestDb, target: &TestDb) {
    assert_same_rows(source, target, "items", "id").await;
    assert_same_rows(source, target, "appended", "seq").await;
    let dupes: i64 = target.query("SELECT count(*) - count(DISTINCT seq) FROM appended").await[0].get(0);
    assert_eq!(dupes, 0, "the append-only table holds duplicates");
}

#[tokio::test]
async fn pg_apply_kill9_in_a_busy_run_then_completion_is_exactly_once() {
    let source = TestDb::create("apply_kill_src").await;
    let target = TestDb::create("apply_kill_dst").await;
    source.execute(BUSY_DDL).await;
    let outflow = pg_to_pg(&source, &target, &["public.items", "public.appended"]);
    // The (empty) snapshot first: a keyless table's snapshot running
    // alongside inserts can read a row the stream also delivers (a source
    // limit, logged as such), which would look like a duplicate here.
    outflow.run_until_caught_up().await.assert_success();
    source.wait_for_slot_idle().await;
    let mut run = outflow.spawn_run();
    source.wait_for_slot_streaming().await;

    // Load keeps coming from another connection while outflow is killed.
    let load = source.connect().await;
    let writer = BusyWriter::start(load, 9);
    let deadline = std::time::Instant::now() + SHORT;
    loop {
        let done = target.client().query_one("SELECT count(*) FROM appended", &[]).await;
        if done.is_ok_and(|r| r.get::<_, i64>(0) > 2000) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the target got no changes within {SHORT:?}:\n{}", run.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    run.kill9().await;
    let partial: i64 = target.query("SELECT count(*) FROM appended").await[0].get(0);
    let (mut rng, mut next_id, mut seq) = writer.stop().await;
    assert!(partial < seq as i64, "kill -9 came after everything was applied ({partial} rows)");
    for _ in 0..5 {
        source.execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await;
    }
    source.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    assert_busy_tables_equal(&source, &target).await;
    target.cleanup().await;
    source.cleanup().await;
}

#[tokio::test]
async fn pg_apply_crash_at_each_step_of_a_commit_is_exactly_once() {
    let source = TestDb::create("apply_fail_src").await;
    let target = TestDb::create("apply_fail_dst").await;
    source.execute(BUSY_DDL).await;
    let outflow = pg_to_pg(&source, &target, &["public.items", "public.appended"]);
    outflow.run_until_caught_up().await.assert_success();
    let (mut rng, mut next_id, mut seq) = (StdRng::seed_from_u64(11), 0, 0);
    // sink.after_flush is the sharp one: the target has committed data and
    // offset, the state directory does not know yet.
    for point in ["sink.after_write", "sink.after_flush", "sink.after_offset"] {
        for _ in 0..4 {
            source.execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await;
        }
        source.wait_for_slot_idle().await;
        let out = outflow.with_env("OUTFLOW_FAILPOINTS", &format!("{point}=1")).run_until_caught_up().await;
        assert_ne!(out.code, Some(0), "{point} was not reached:\n{}", out.stderr);
    }
    source.wait_for_slot_idle().await;
    outflow.with_env("OUTFLOW_FAILPOINTS", "").run_until_caught_up().await.assert_success();
    assert_busy_tables_equal(&source, &target).await;
    target.cleanup().await;
    source.cleanup().await;
}

#[tokio::test]
async fn pg_apply_added_and_dropped_columns_reach_the_target() {
    let source = TestDb::create("apply_ddl_src").await;
    let target = TestDb::create("apply_ddl_dst").await;
    source
        .execute("CREATE TABLE items (id int PRIMARY KEY, v text, old int); INSERT INTO items VALUES (1, 'a', 1);")
        .await;
    let outflow = pg_to_pg(&source, &target, &["public.items"]);
    let run = outflow.spawn_run();
    source.wait_for_slot_streaming().await;
    source.execute("INSERT INTO items VALUES (2, 'b', 2);").await;
    source
        .execute(
            "ALTER TABLE items ADD COLUMN price numeric(10,2), ADD COLUMN tags text[];
             INSERT INTO items VALUES (3, 'c', 3, 9.99, '{x,y}');
             UPDATE items SET price = 1.50 WHERE id = 1;",
        )
        .await;
    source.execute("ALTER TABLE items DROP COLUMN old; INSERT INTO items VALUES (4, 'd', 0.01, '{}');").await;
    wait_for(SHORT, "row 4 in the target", || async {
        target.client().query("SELECT 1 FROM items WHERE id = 4", &[]).await.is_ok_and(|r| r.len() == 1)
    })
    .await;
    let outcome = run.sigterm_and_wait().await;
    outcome.assert_success();
    let columns: Vec<String> = target
        .query(
            "SELECT column_name || ' ' || format_type(atttypid, atttypmod) FROM information_schema.columns c
             JOIN pg_attribute a ON a.attrelid = 'public.items'::regclass AND a.attname = c.column_name
             WHERE table_schema = 'public' AND table_name = 'items' ORDER BY ordinal_position",
        )
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["id integer", "v text", "price numeric(10,2)", "tags text[]"]);
    assert_same_rows(&source, &target, "items", "id").await;
    target.cleanup().await;
    source.cleanup().await;
}

#[tokio::test]
async fn pg_apply_type_corpus_arrives_with_its_types_and_values() {
    let source = TestDb::create("apply_types_src").await;
    let target = TestDb::create("apply_types_dst").await;
    let rows = create_pg_types(&source).await;
    let outflow = pg_to_pg(&source, &target, &["public.pg_types"]);
    outflow.run_until_caught_up().await.assert_success();
    source.wait_for_slot_idle().await;
    source.execute(&rows).await;
    outflow.run_until_caught_up().await.assert_success();

    let columns: Vec<(String, String)> = source
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'public.pg_types'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let target_types: Vec<(String, String)> = target
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'public.pg_types'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Built-in types arrive as themselves; the enum and the domain (types
    // the target database does not have) as text.
    let expected: Vec<(String, String)> = columns
        .iter()
        .map(|(name, ty)| {
            let ty = match ty.as_str() {
                "mood" | "amount" => "text",
                "mood[]" => "text[]",
                // Array dimensions are not part of a PostgreSQL type.
                other => other,
            };
            (name.clone(), ty.to_string())
        })
        .collect();
    assert_eq!(target_types, expected);
    let ids: Vec<i32> = source.query("SELECT id FROM pg_types ORDER BY id").await.iter().map(|r| r.get(0)).collect();
    assert!(ids.len() > 2, "the corpus has rows");
    let mut differ = Vec::new();
    for (column, _) in &columns {
        let q = format!("SELECT id, {column}::text FROM pg_types ORDER BY 1");
        let want: Vec<(i32, Option<String>)> = source.query(&q).await.iter().map(|r| (r.get(0), r.get(1))).collect();
        let got: Vec<(i32, Option<String>)> = target.query(&q).await.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got.len(), want.len());
        for ((id, g), (_, w)) in got.iter().zip(&want) {
            // The event model keeps timestamps in i64 microseconds: PostgreSQL's
            // last years (past 294247 AD) saturate (see `Value::Timestamp`).
            let saturated = w.as_deref().is_some_and(|w| w.starts_with("294276-"));
            // Nor array lower bounds (`[0:1]={...}` arrives as `{...}`).
            let bounds_only = match (g, w.as_deref().and_then(|w| w.strip_prefix('['))) {
                (Some(g), Some(w)) => w.split_once("]=").is_some_and(|(_, rest)| rest == g),
                _ => false,
            };
            if g != w && !saturated && !bounds_only {
                differ.push(format!("id={id} {column}: target {g:?}, source {w:?}"));
            }
        }
    }
    assert!(differ.is_empty(), "values differ:\n{}", differ.join("\n"));
    target.cleanup().await;
    source.cleanup().await;
}

#[tokio::test]
async fn pg_apply_unchanged_toast_values_keep_their_value() {
    let source = TestDb::create("apply_toast_src").await;
    let target = TestDb::create("apply_toast_dst").await;
    // Random hex does not compress below the TOAST threshold: stored out of line.
    source
        .execute(
            "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
             INSERT INTO docs SELECT g, 't' || g, (SELECT string_agg(md5(random()::text || i), '') FROM generate_series(1, 600) i)
               FROM generate_series(1, 3) g;",
        )
        .await;
    let outflow = pg_to_pg(&source, &target, &["public.docs"]);
    outflow.run_until_caught_up().await.assert_success();
    source.wait_for_slot_idle().await;
    // Updates that leave the TOASTed body alone: pgoutput does not resend it.
    source
        .execute(
            "UPDATE docs SET title = 'changed' WHERE id = 1;
             BEGIN; UPDATE docs SET title = 'x' WHERE id = 2; UPDATE docs SET title = 'y' WHERE id = 2; COMMIT;
             BEGIN; INSERT INTO docs VALUES (4, 'new', repeat(md5('z'), 500)); UPDATE docs SET title = 'new2' WHERE id = 4; COMMIT;",
        )
        .await;
    outflow.run_until_caught_up().await.assert_success();
    let q = "SELECT id, title, md5(body) FROM docs ORDER BY id";
    let read = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, String, Option<String>)> {
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    };
    let want = read(source.query(q).await);
    assert_eq!(read(target.query(q).await), want);
    assert!(want.iter().all(|r| r.2.is_some()));
    target.cleanup().await;
    source.cleanup().await;
}

#[tokio::test]
async fn pg_apply_key_changing_updates_keep_unchanged_toast_values() {
    let source = TestDb::create("apply_move_src").await;
    let target = TestDb::create("apply_move_dst").await;
    // ~19 kB of md5 hex per row, different for each `seed`, stored out of
    // line uncompressed.
    let big = |seed: &str| {
        format!("(SELECT string_agg(md5(random()::text || i || {seed}), '') FROM generate_series(1, 600) i)")
    };
    source
        .execute(&format!(
            "CREATE TABLE docs (id int PRIMARY KEY, title text, big text);
             ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL;
             INSERT INTO docs SELECT g, 't' || g, {} FROM generate_series(1, 9) g;",
            big("g")
        ))
        .await;
    let outflow = pg_to_pg(&source, &target, &["public.docs"]);
    outflow.run_until_caught_up().await.assert_success();
    source.wait_for_slot_idle().await;
    // Key changes that leave `big` alone: pgoutput sends the old key and the
    // new row with `big` unchanged (not resent).
    source
        .execute(&format!(
            "UPDATE docs SET id = id + 1000 WHERE id = 1;
             UPDATE docs SET id = 2002, title = 'moved' WHERE id = 2;
             BEGIN; UPDATE docs SET id = 1003 WHERE id = 3; UPDATE docs SET id = 2003 WHERE id = 1003; COMMIT;
             BEGIN; UPDATE docs SET title = 'edited' WHERE id = 4; UPDATE docs SET id = 1004 WHERE id = 4; COMMIT;
             BEGIN; UPDATE docs SET id = 1005 WHERE id = 5; UPDATE docs SET title = 'after move' WHERE id = 1005; COMMIT;
             BEGIN; UPDATE docs SET id = -6 WHERE id = 6; UPDATE docs SET id = 6 WHERE id = 7;
               UPDATE docs SET id = 7 WHERE id = -6; COMMIT;
             BEGIN; UPDATE docs SET id = 1008 WHERE id = 8; INSERT INTO docs VALUES (8, 'reused', {}); COMMIT;
             BEGIN; INSERT INTO docs VALUES (10, 't10', {}); UPDATE docs SET id = 1010 WHERE id = 10; COMMIT;
             BEGIN; INSERT INTO docs VALUES (11, 't11', {}); UPDATE docs SET id = 1011 WHERE id = 11;
               UPDATE docs SET id = 2011 WHERE id = 1011; COMMIT;",
            big("'r8'"),
            big("'n10'"),
            big("'n11'")
        ))
        .await;
    outflow.run_until_caught_up().await.assert_success();
    let q = "SELECT id, title, md5(big) FROM docs ORDER BY id";
    let read = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, String, Option<String>)> {
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    };
    let want = read(source.query(q).await);
    assert_eq!(want.len(), 12);
    let bigs: std::collections::HashSet<_> = want.iter().map(|r| r.2.clone().expect("big is set")).collect();
    assert_eq!(bigs.len(), 12, "each row has its own big value");
    assert_eq!(read(target.query(q).await), want);

    // The old row is not in the target (removed there by hand): the moved row
    // arrives with what the source sent, `big` NULL, and a warning.
    target.execute("DELETE FROM docs WHERE id = 9").await;
    source.wait_for_slot_idle().await;
    source.execute("UPDATE docs SET id = 1009 WHERE id = 9").await;
    let run = outflow.run_until_caught_up().await;
    run.assert_success();
    assert!(run.stderr.contains("not in the target"), "no warning about the missing old row:\n{}", run.stderr);
    let got = read(target.query("SELECT id, title, md5(big) FROM docs WHERE id = 1009").await);
    assert_eq!(got, vec![(1009, "t9".to_string(), None)]);
    target.cleanup().await;
    source.cleanup().await;
}

#[tokio::test]
async fn pg_apply_wrong_target_is_one_clear_error() {
    let source = TestDb::create("apply_bad_src").await;
    source.execute("CREATE TABLE items (id int PRIMARY KEY);").await;
    let missing = source.url().replace(source.name(), "no_such_database_here");
    let outflow = Outflow::raw(|dir: &Path| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.items\"]\nslot = {}\n[state]\ndir = {}\n\
             [[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {}\n",
            toml_str(&source.url()),
            toml_str(source.name()),
            toml_str(&dir.join("state").to_string_lossy()),
            toml_str(&missing),
        )
    });
    let out = outflow.run_until_caught_up().await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // Log lines (slot creation) may come first; then exactly one error and its hint.
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].contains("no_such_database_here") && errors[0].contains("does not exist"), "{}", errors[0]);
    let hint = out.stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_default();
    assert!(hint.contains("CREATE DATABASE"), "the hint says what to do:\n{}", out.stderr);
    assert!(!out.stderr.contains("postgres@"), "the url is not shown:\n{}", out.stderr);

    // A user without CREATE on the target database.
    let target = TestDb::create("apply_bad_dst").await;
    let role = format!("apply_noprivs_{}", std::process::id());
    target.execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw';")).await;
    let unprivileged = target.url_as(&role, "pw", "");
    let outflow = Outflow::raw(|dir: &Path| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.items\"]\nslot = {}\n[state]\ndir = {}\n\
             [[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {}\n",
            toml_str(&source.url()),
            toml_str(source.name()),
            toml_str(&dir.join("state").to_string_lossy()),
            toml_str(&unprivileged),
        )
    });
    let out = outflow.run_until_caught_up().await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = out.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(error.contains("permission denied"), "{}", out.stderr);
    let hint = out.stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_default();
    assert!(hint.contains("GRANT CREATE ON DATABASE"), "{}", out.stderr);
    assert!(!out.stderr.contains("'pw'") && !out.stderr.contains(":pw@"), "the password is not shown");
    target.cleanup().await;
    source.execute(&format!("DROP ROLE {role};")).await;

    // An unknown key is rejected with the nearest one suggested.
    let typo = Outflow::raw(|dir: &Path| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.items\"]\n[state]\ndir = {}\n\
             [[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = \"postgres://x@127.0.0.1/y\"\nbatch_row = 5\n",
            toml_str(&source.url()),
            toml_str(&dir.join("state").to_string_lossy()),
        )
    });
    let out = typo.run_until_caught_up().await;
    out.assert_clean_error();
    assert!(out.stderr.contains("did you mean `batch_rows`"), "{}", out.stderr);
    source.cleanup().await;
}

/// MariaDB rows and PostgreSQL target rows as comparable text.
const MY_ROW: &str = "CONCAT_WS('|', id, u, big, d, s, e, st, DATE_FORMAT(dt, '%Y-%m-%d %H:%i:%s.%f'), \
     DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s'), CAST(tm AS CHAR), y, HEX(b))";
const PG_ROW: &str = "concat_ws('|', id, u, big, d, s, e, st, to_char(dt, 'YYYY-MM-DD HH24:MI:SS.US'), \
     to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), tm::text, y, upper(encode(b, 'hex')))";

#[tokio::test]
async fn pg_apply_from_mariadb_keeps_the_target_equal() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "apply").await;
    let target = TestDb::create("apply_my_dst").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, u int unsigned, big bigint unsigned, d decimal(12,3), s varchar(40),
           e enum('a','b','c'), st set('x','y','z'), dt datetime(6), ts timestamp NULL, tm time, y year, b blob)",
    )
    .await;
    db.exec("CREATE TABLE log (n int, msg text)").await;
    db.exec(
        "INSERT INTO items VALUES (1, 4294967295, 18446744073709551615, -12.345, 'ü tab\there', 'b', 'x,z',
           '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05', '-838:59:59', 2024, x'00ff10')",
    )
    .await;
    let (url, name, dst) = (db.url(), db.name.clone(), target.url());
    let outflow = Outflow::raw(|dir: &Path| {
        format!(
            "[source]\nkind = \"mysql\"\nurl = {}\ntables = [\"{name}.items\", \"{name}.log\"]\nserver_id = {}\n\
             [state]\ndir = {}\n[[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {}\nschema = \"mirror\"\n",
            toml_str(&url),
            server_id(),
            toml_str(&dir.join("state").to_string_lossy()),
            toml_str(&dst),
        )
    });
    outflow.run_until_caught_up().await.assert_success();

    let mut rng = StdRng::seed_from_u64(10);
    let mut next_id = 1;
    for round in 0..15 {
        db.exec("BEGIN").await;
        for _ in 0..rng.random_range(1..30) {
            let id = rng.random_range(1..=next_id);
            let sql = match rng.random_range(0..10) {
                0..=4 => {
                    next_id += 1;
                    format!(
                        "INSERT INTO items VALUES ({next_id}, {}, {}, {}.{:03}, 's{}', '{}', 'y', '2023-05-06 07:08:09.{:06}',
                           FROM_UNIXTIME({}), '{}:{:02}:{:02}', {}, x'{:06x}')",
                        rng.random::<u32>(),
                        rng.random::<u64>(),
                        rng.random_range(-99999..99999),
                        rng.random_range(0..1000),
                        rng.random::<u16>(),
                        ["a", "b", "c"][rng.random_range(0..3)],
                        rng.random_range(0..1_000_000),
                        rng.random_range(1..2_000_000_000),
                        rng.random_range(-838..838),
                        rng.random_range(0..60),
                        rng.random_range(0..60),
                        rng.random_range(1901..2155),
                        rng.random_range(0..0xffffff),
                    )
                }
                5..=7 => {
                    format!("UPDATE items SET s = 'upd{}', d = d + 1, st = 'x,y' WHERE id = {id}", rng.random::<u8>())
                }
                _ => format!("DELETE FROM items WHERE id = {id}"),
            };
            db.exec(&sql).await;
        }
        db.exec(&format!("INSERT INTO log VALUES ({round}, 'round {round}')")).await;
        db.exec("COMMIT").await;
    }
    outflow.run_until_caught_up().await.assert_success();

    let want: Vec<String> = db.conn.query(format!("SELECT {MY_ROW} FROM items ORDER BY id")).await.unwrap();
    let got: Vec<String> = target
        .query(&format!("SELECT {PG_ROW} FROM mirror.items ORDER BY id"))
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, want);
    let types: Vec<String> = target
        .query(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'mirror.items'::regclass AND attnum > 0 ORDER BY attnum",
        )
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "integer",
            "bigint",
            "numeric(20,0)",
            "numeric(12,3)",
            "text",
            "text",
            "text",
            "timestamp(6) without time zone",
            "timestamp(0) with time zone",
            "interval",
            "smallint",
            "bytea"
        ]
    );
    let log: i64 = target.query("SELECT count(*) FROM mirror.log").await[0].get(0);
    assert_eq!(log, 15, "the keyless table is appended to once per insert");
    target.cleanup().await;
}

/// The target over TLS, `sslmode` and `sslrootcert` as for the source: with
/// `verify-full` against the test CA the rows arrive; a certificate from
/// another CA, or one that does not name the host (`localhost` against a
/// certificate for 127.0.0.1), is one TLS error with the fix.
#[tokio::test]
async fn pg_apply_tls_verify_full_target() {
    let source = TestDb::create("apply_tls_src").await;
    let target = TestDb::create("apply_tls_dst").await;
    source.execute("CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'a');").await;
    let with_target = |url: String| {
        let (src, slot) = (source.url(), source.name().to_string());
        Outflow::raw(move |dir: &Path| {
            format!(
                "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.items\"]\nslot = {}\n[state]\ndir = {}\n\
                 [[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {}\n",
                toml_str(&src),
                toml_str(&slot),
                toml_str(&dir.join("state").to_string_lossy()),
                toml_str(&url),
            )
        })
    };
    let ca = crate::harness::pg_ca_path();
    let verified = with_target(format!("{}?sslmode=verify-full&sslrootcert={ca}", target.url()));
    verified.run_until_caught_up().await.assert_success();
    source.execute("INSERT INTO items VALUES (2, 'b'); UPDATE items SET note = 'z' WHERE id = 1;").await;
    verified.run_until_caught_up().await.assert_success();
    assert_same_rows(&source, &target, "items", "id").await;

    let other_ca = env_var("OUTFLOW_TEST_MYSQL_CA");
    let refused = [
        format!("{}?sslmode=verify-ca&sslrootcert={other_ca}", target.url()),
        format!("{}?sslmode=verify-full&sslrootcert={ca}", target.url().replace("127.0.0.1", "localhost")),
    ];
    for url in refused {
        let out = with_target(url.clone()).run_until_caught_up().await;
        out.assert_clean_error();
        let error = out.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default().to_lowercase();
        assert!(error.contains("tls") || error.contains("certificate"), "{url}: {}", out.stderr);
        assert!(out.stderr.contains("sslrootcert"), "the hint names the setting: {}", out.stderr);
    }
    source.cleanup().await;
    target.cleanup().await;
}
