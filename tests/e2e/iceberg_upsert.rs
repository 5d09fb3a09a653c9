//! The Iceberg sink's `mode = "upsert"` end to end: the real binary keeps
//! one current row per key through position deletes, and pyiceberg
//! (`tests/readers/iceberg_read.py`, whose `table.scan()` applies them)
//! must read back exactly the source table: row for row, no key twice.
//! Scenarios: random inserts, updates (key changes included) and deletes
//! from PostgreSQL over several runs (each run rebuilds the key index from
//! the table, so its updates must replace rows earlier runs wrote) and from
//! MariaDB; a keyless table kept append-only; kill -9 in a busy run and a
//! crash at each step of a commit; TOASTed values an update left unchanged;
//! a column added mid-stream; TRUNCATE.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::harness::{wait_for, TestDb, SHORT};
use crate::iceberg::{column_types, iceberg_sink_mode, pg_to_iceberg_mode, read_catalog, table, toml_str};
use crate::mysql_harness::{server_id, MyDb};
use crate::pg_apply::{busy_transaction, random_statement, BusyWriter};

/// The rows pyiceberg reads from `name`, sorted by `key`; fails if a key
/// occurs twice.
fn current_rows(catalog: &Value, name: &str, key: &str) -> Vec<Value> {
    let mut rows = table(catalog, name)["rows"].as_array().cloned().expect("rows");
    rows.sort_by_key(|r| r[key].as_i64().expect("an integer key"));
    let keys: BTreeSet<i64> = rows.iter().map(|r| r[key].as_i64().unwrap()).collect();
    assert_eq!(keys.len(), rows.len(), "{name}: {} rows for {} keys (a key twice)", rows.len(), keys.len());
    rows
}

/// `a|b|c` of the given columns (nulls left out, like `concat_ws`).
fn joined(row: &Value, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| &row[*c])
        .filter(|v| !v.is_null())
        .map(|v| v.as_str().map_or(v.to_string(), String::from))
        .collect::<Vec<_>>()
        .join("|")
}

/// `items` in the catalog equals the source table, row for row.
async fn assert_items_equal(db: &TestDb, catalog: &Value) {
    let want: Vec<String> =
        db.query("SELECT concat_ws('|', id, v, n) FROM items ORDER BY id").await.iter().map(|r| r.get(0)).collect();
    let got: Vec<String> =
        current_rows(catalog, "public.items", "id").iter().map(|r| joined(r, &["id", "v", "n"])).collect();
    assert_eq!(got.len(), want.len(), "items: {} rows in iceberg, {} in the source", got.len(), want.len());
    assert_eq!(got, want, "items: the iceberg table differs from the source");
}

fn random_transaction(rng: &mut StdRng, next_id: &mut i32) -> String {
    let mut tx = String::from("BEGIN;");
    for _ in 0..rng.random_range(1..40) {
        tx.push_str(&random_statement(rng, next_id));
    }
    tx.push_str("COMMIT;");
    tx
}

#[tokio::test]
async fn iceberg_upsert_random_changes_over_several_runs_equal_the_source() {
    let db = TestDb::create("iceu_random").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         CREATE TABLE notes (note text, at int);
         INSERT INTO items SELECT g, 'seed' || g, g / 7.0 FROM generate_series(1, 300) g;
         INSERT INTO notes SELECT 'n' || g, g FROM generate_series(1, 20) g;",
    )
    .await;
    let (outflow, root) = pg_to_iceberg_mode(&db, &["public.items", "public.notes"], "upsert");
    outflow.run_until_caught_up().await.assert_success();
    let catalog = read_catalog(&root);
    assert_items_equal(&db, &catalog).await;
    let items = table(&catalog, "public.items");
    let types = column_types(&catalog, "public.items");
    assert!(types.contains_key("_position") && types.contains_key("_source_ts"), "{types:?}");
    assert!(!types.contains_key("_op"), "no change-log columns: {types:?}");
    assert_eq!(items["identifier_field_ids"], json!([1]), "the key is the identifier field");
    assert_eq!(items["format_version"], 2);
    assert_eq!(items["properties"]["outflow.mode"], "upsert");

    // Each run restarts the sink: its index comes from the table, and its
    // updates and deletes must hit rows the earlier runs wrote.
    let mut rng = StdRng::seed_from_u64(181);
    let mut next_id = 300;
    for run in 0..3 {
        for _ in 0..8 {
            db.execute(&random_transaction(&mut rng, &mut next_id)).await;
        }
        db.execute(&format!("INSERT INTO notes VALUES ('run {run}', 100 + {run});")).await;
        db.wait_for_slot_idle().await;
        outflow.run_until_caught_up().await.assert_success();
        assert_items_equal(&db, &read_catalog(&root)).await;
    }
    let catalog = read_catalog(&root);
    // The snapshot summary carries the offset and the delete counters.
    let snapshots = table(&catalog, "public.items")["snapshots"].as_array().unwrap().clone();
    let last = &snapshots.last().expect("snapshots")["summary"];
    assert_eq!(last["outflow.table"], "public.items");
    assert!(last["outflow.position"].as_str().is_some_and(|p| p.starts_with("lsn:")), "{last}");
    assert!(
        snapshots.iter().any(|s| s["summary"]["added-position-deletes"].as_str().is_some_and(|n| n != "0")),
        "updates were written as position deletes"
    );
    // The keyless table is append-only (PostgreSQL refuses its updates and
    // deletes without a replica identity): every insert once.
    let mut notes: Vec<i64> =
        table(&catalog, "public.notes")["rows"].as_array().unwrap().iter().map(|r| r["at"].as_i64().unwrap()).collect();
    notes.sort();
    let want: Vec<i64> = (1..=20).chain(100..103).collect();
    assert_eq!(notes, want, "notes: every insert once");
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_upsert_mariadb_random_changes_equal_the_source() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "iceu").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, s varchar(40), d decimal(12,3), b blob)").await;
    db.exec("INSERT INTO items SELECT seq, CONCAT('seed', seq), seq / 7, x'00ff' FROM seq_1_to_100").await;
    db.exec("CREATE TABLE notes (note varchar(20), at int)").await;
    db.exec("INSERT INTO notes SELECT CONCAT('n', seq), seq FROM seq_1_to_10").await;
    let (url, name) = (db.url(), db.name.clone());
    let mut root = PathBuf::new();
    let outflow = crate::harness::Outflow::raw(|d: &Path| {
        root = d.to_path_buf();
        format!(
            "[source]\nkind = \"mysql\"\nurl = {}\ntables = [\"{name}.items\", \"{name}.notes\"]\nserver_id = {}\n\
             [state]\ndir = {}\n{}",
            toml_str(&url),
            server_id(),
            toml_str(&d.join("state").to_string_lossy()),
            iceberg_sink_mode(d, "upsert"),
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    let mut rng = StdRng::seed_from_u64(112);
    let mut next_id = 100;
    for _ in 0..2 {
        for _ in 0..10 {
            db.exec("BEGIN").await;
            for _ in 0..rng.random_range(1..30) {
                let id = rng.random_range(1..=next_id);
                let sql = match rng.random_range(0..10) {
                    0..=3 => {
                        next_id += 1;
                        format!(
                            "INSERT INTO items VALUES ({next_id}, 's{}', {}.{:03}, x'{:04x}')",
                            rng.random::<u16>(),
                            rng.random_range(-99999..99999),
                            rng.random_range(0..1000),
                            rng.random::<u16>()
                        )
                    }
                    4..=6 => format!("UPDATE items SET s = 'upd{}', d = d + 1 WHERE id = {id}", rng.random::<u8>()),
                    7 => {
                        next_id += 1;
                        format!("UPDATE items SET id = {next_id} WHERE id = {id}")
                    }
                    _ => format!("DELETE FROM items WHERE id = {id}"),
                };
                db.exec(&sql).await;
            }
            db.exec("COMMIT").await;
        }
        // A keyless table: its updates and deletes cannot be matched to a row.
        db.exec("UPDATE notes SET at = at + 100 WHERE at <= 3").await;
        db.exec("DELETE FROM notes WHERE at = 5").await;
        db.exec(&format!("INSERT INTO notes VALUES ('later', {})", 20 + next_id % 2)).await;
        outflow.run_until_caught_up().await.assert_success();
    }
    use mysql_async::prelude::Queryable;
    let want: Vec<String> =
        db.conn.query("SELECT CONCAT_WS('|', id, s, d, LOWER(HEX(b))) FROM items ORDER BY id").await.unwrap();
    let catalog = read_catalog(&root);
    let got: Vec<String> = current_rows(&catalog, &format!("{name}.items"), "id")
        .iter()
        .map(|r| joined(r, &["id", "s", "d", "b"]))
        .collect();
    assert_eq!(got.len(), want.len(), "{} rows in iceberg, {} in the source", got.len(), want.len());
    assert_eq!(got, want, "the iceberg table differs from the source");
    // The keyless table is append-only: the inserts as inserted, nothing else.
    let mut notes: Vec<i64> = table(&catalog, &format!("{name}.notes"))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at"].as_i64().unwrap())
        .collect();
    notes.sort();
    assert_eq!(notes.len(), 12, "10 seeded and 2 later inserts: {notes:?}");
    assert_eq!(notes[..10], (1..=10).collect::<Vec<i64>>(), "updates and deletes are not applied");
}

/// Metadata files of `public.items` so far (one per commit, plus creation).
fn items_versions(root: &Path) -> usize {
    let dir = root.join("warehouse/public/items/metadata");
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".metadata.json"))).count()
    })
}

/// `items` equal to the source and every insert into the keyless `appended` exactly once.
async fn assert_busy_tables_exact(db: &TestDb, root: &Path, inserts: i32) {
    let catalog = read_catalog(root);
    assert_items_equal(db, &catalog).await;
    let mut seqs: Vec<i64> = table(&catalog, "public.appended")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().expect("seq"))
        .collect();
    seqs.sort();
    let want: Vec<i64> = (1..=i64::from(inserts)).collect();
    assert_eq!(seqs.len(), want.len(), "appended: {} rows for {inserts} inserts", seqs.len());
    assert_eq!(seqs, want, "appended: every insert exactly once");
}

#[tokio::test]
async fn iceberg_upsert_kill9_in_a_busy_run_then_completion_is_exactly_once() {
    let db = TestDb::create("iceu_kill").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         CREATE TABLE appended (seq int, payload text);",
    )
    .await;
    let (outflow, root) = pg_to_iceberg_mode(&db, &["public.items", "public.appended"], "upsert");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let load = db.connect().await;
    let writer = BusyWriter::start(load, 191);
    let deadline = std::time::Instant::now() + SHORT;
    while items_versions(&root) < 4 {
        assert!(std::time::Instant::now() < deadline, "no commits within {SHORT:?}:\n{}", run.stderr());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    run.kill9().await;
    let (mut rng, mut next_id, mut seq) = writer.stop().await;
    for _ in 0..5 {
        db.execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await;
    }
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    assert_busy_tables_exact(&db, &root, seq).await;
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_upsert_crash_at_each_step_of_a_commit_is_exactly_once() {
    let db = TestDb::create("iceu_fail").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         CREATE TABLE appended (seq int, payload text);",
    )
    .await;
    let (outflow, root) = pg_to_iceberg_mode(&db, &["public.items", "public.appended"], "upsert");
    outflow.run_until_caught_up().await.assert_success();
    let (mut rng, mut next_id, mut seq) = (StdRng::seed_from_u64(113), 0, 0);
    // iceberg.before_swap: a commit's files and metadata are written, the
    // catalog does not point at them (orphans). sink.after_flush: the tables
    // hold the commit, the state directory does not know.
    for point in ["sink.after_write", "iceberg.before_swap", "sink.after_flush", "sink.after_offset"] {
        for _ in 0..4 {
            db.execute(&busy_transaction(&mut rng, &mut next_id, &mut seq)).await;
        }
        db.wait_for_slot_idle().await;
        let out = outflow.with_env("OUTFLOW_FAILPOINTS", &format!("{point}=1")).run_until_caught_up().await;
        assert_ne!(out.code, Some(0), "{point} was not reached:\n{}", out.stderr);
    }
    db.wait_for_slot_idle().await;
    outflow.with_env("OUTFLOW_FAILPOINTS", "").run_until_caught_up().await.assert_success();
    assert_busy_tables_exact(&db, &root, seq).await;
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_upsert_keeps_toasted_values_an_update_left_unchanged() {
    let db = TestDb::create("iceu_toast").await;
    // Random hex does not compress below the TOAST threshold: stored out of line.
    db.execute(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
         INSERT INTO docs SELECT g, 't' || g, (SELECT string_agg(md5(random()::text || i || g), '') FROM generate_series(1, 600) i)
           FROM generate_series(1, 3) g;",
    )
    .await;
    let (outflow, root) = pg_to_iceberg_mode(&db, &["public.docs"], "upsert");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    // Updates that leave the TOASTed body alone: pgoutput does not resend it.
    // Row 1 and 2's bodies come from the data file run 1 wrote, row 4's from
    // the same batch, row 3's from a file written earlier in the same run,
    // then from its old key's row when an update moves it to 30.
    db.execute(
        "UPDATE docs SET title = 'changed' WHERE id = 1;
         BEGIN; UPDATE docs SET title = 'x' WHERE id = 2; UPDATE docs SET title = 'y' WHERE id = 2; COMMIT;
         BEGIN; INSERT INTO docs VALUES (4, 'new', repeat(md5('z'), 500)); UPDATE docs SET title = 'new2' WHERE id = 4; COMMIT;",
    )
    .await;
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("UPDATE docs SET title = 'first' WHERE id = 3;").await;
    wait_for(SHORT, "the first update of row 3 committed", || async {
        current_rows(&read_catalog(&root), "public.docs", "id").iter().any(|r| r["title"] == "first")
    })
    .await;
    db.execute("UPDATE docs SET title = 'second' WHERE id = 3;").await;
    wait_for(SHORT, "the second update of row 3 committed", || async {
        current_rows(&read_catalog(&root), "public.docs", "id").iter().any(|r| r["title"] == "second")
    })
    .await;
    // A key change leaves the body unchanged too: it comes from the old key's row.
    db.execute("UPDATE docs SET id = 30, title = 'moved' WHERE id = 3;").await;
    wait_for(SHORT, "row 3 moved to 30", || async {
        current_rows(&read_catalog(&root), "public.docs", "id").iter().any(|r| r["id"] == 30)
    })
    .await;
    run.sigterm_and_wait().await.assert_success();

    let want: Vec<(i64, String, String)> = db
        .query("SELECT id, title, body FROM docs ORDER BY id")
        .await
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1), r.get(2)))
        .collect();
    let got: Vec<(i64, String, String)> = current_rows(&read_catalog(&root), "public.docs", "id")
        .iter()
        .map(|r| {
            let text =
                |c: &str| r[c].as_str().unwrap_or_else(|| panic!("{c} of row {} is {}", r["id"], r[c])).to_string();
            (r["id"].as_i64().unwrap(), text("title"), text("body"))
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, &g.1), (w.0, &w.1));
        assert!(g.2 == w.2, "row {}: the body differs ({} vs {} chars)", g.0, g.2.len(), w.2.len());
    }
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_upsert_follows_an_added_column_and_a_truncate() {
    let db = TestDb::create("iceu_ddl").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a'), (2, 'b');").await;
    let (outflow, root) = pg_to_iceberg_mode(&db, &["public.items"], "upsert");
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO items VALUES (3, 'c');").await;
    db.execute(
        "ALTER TABLE items ADD COLUMN price numeric(10,2);
         UPDATE items SET price = 1.50 WHERE id = 1;
         INSERT INTO items VALUES (4, 'd', 9.99);",
    )
    .await;
    wait_for(SHORT, "row 4 committed to the iceberg table", || async {
        root.join("catalog.db").exists()
            && read_catalog(&root)["tables"]["public.items"]["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["id"] == json!(4)))
    })
    .await;
    run.sigterm_and_wait().await.assert_success();
    let catalog = read_catalog(&root);
    let types = column_types(&catalog, "public.items");
    assert_eq!(types.get("price").map(String::as_str), Some("decimal(10, 2)"), "{types:?}");
    let view: Vec<(i64, Value, Value)> = current_rows(&catalog, "public.items", "id")
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["v"].clone(), r["price"].clone()))
        .collect();
    assert_eq!(
        view,
        vec![
            (1, json!("a"), json!("1.50")),
            (2, json!("b"), Value::Null),
            (3, json!("c"), Value::Null),
            (4, json!("d"), json!("9.99")),
        ]
    );

    // TRUNCATE empties the table; what follows it arrives.
    db.execute("UPDATE items SET v = 'gone' WHERE id = 2; TRUNCATE items; INSERT INTO items VALUES (5, 'after', 0);")
        .await;
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let rows = current_rows(&read_catalog(&root), "public.items", "id");
    let view: Vec<String> = rows.iter().map(|r| joined(r, &["id", "v", "price"])).collect();
    assert_eq!(view, vec!["5|after|0.00".to_string()]);
    db.execute("INSERT INTO items VALUES (6, 'later', 1); UPDATE items SET v = 'updated' WHERE id = 5;").await;
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let rows = current_rows(&read_catalog(&root), "public.items", "id");
    let view: Vec<String> = rows.iter().map(|r| joined(r, &["id", "v", "price"])).collect();
    assert_eq!(view, vec!["5|updated|0.00".to_string(), "6|later|1.00".to_string()]);
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_upsert_composite_keys_of_many_types_survive_a_restart() {
    let db = TestDb::create("iceu_keys").await;
    db.execute(
        "CREATE TABLE kv (k1 text, k2 numeric(10,2), k3 timestamptz, k4 uuid, k5 bytea, k6 date, v int,
           PRIMARY KEY (k1, k2, k3, k4, k5, k6));
         INSERT INTO kv SELECT 'k' || g, g / 3.0, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour 1.5 s',
           md5(g::text)::uuid, decode(lpad(to_hex(g), 4, '0'), 'hex'), date '2020-02-29' + g, g
           FROM generate_series(1, 60) g;",
    )
    .await;
    let (outflow, root) = pg_to_iceberg_mode(&db, &["public.kv"], "upsert");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    // The second run finds run 1's rows by keys read back from its files.
    db.execute(
        "UPDATE kv SET v = v + 1000; DELETE FROM kv WHERE v % 7 = 0;
         UPDATE kv SET k1 = k1 || '-moved' WHERE v % 5 = 0;",
    )
    .await;
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let want: Vec<(String, i64)> = db
        .query("SELECT k1, v FROM kv ORDER BY v")
        .await
        .iter()
        .map(|r| (r.get(0), i64::from(r.get::<_, i32>(1))))
        .collect();
    let catalog = read_catalog(&root);
    let mut got: Vec<(String, i64)> = table(&catalog, "public.kv")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["k1"].as_str().unwrap().to_string(), r["v"].as_i64().unwrap()))
        .collect();
    got.sort_by_key(|(_, v)| *v);
    assert_eq!(
        got.len(),
        want.len(),
        "{} rows in iceberg, {} in the source (replaced rows left behind)",
        got.len(),
        want.len()
    );
    assert_eq!(got, want);
    let mut ids: Vec<i64> = table(&catalog, "public.kv")["identifier_field_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6], "the key columns are the identifier fields");
    db.cleanup().await;
}

#[tokio::test]
async fn iceberg_upsert_warehouse_on_a_local_s3_server() {
    let moto = crate::parquet::start_moto().await;
    let create = std::process::Command::new(crate::harness::env_var("OUTFLOW_TEST_PYTHON"))
        .args(["-c", "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='lake')", &moto.endpoint])
        .output()
        .unwrap();
    assert!(create.status.success(), "creating the bucket: {}", String::from_utf8_lossy(&create.stderr));
    let db = TestDb::create("iceu_s3").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(12,2));
         INSERT INTO items SELECT g, 'seed' || g, g / 7.0 FROM generate_series(1, 100) g;",
    )
    .await;
    let (url, slot) = (db.url(), db.name().to_string());
    let mut root = PathBuf::new();
    let outflow = crate::harness::Outflow::raw(|dir: &Path| {
        root = dir.to_path_buf();
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.items\"]\nslot = {}\n[state]\ndir = {}\n\
             [[sink]]\nname = \"lake\"\nkind = \"iceberg\"\nmode = \"upsert\"\ncatalog = {}\nwarehouse = \"s3://lake/warehouse\"\n\
             [sink.storage_options]\nendpoint = {}\nregion = \"us-east-1\"\naccess_key_id = \"test\"\n\
             secret_access_key = \"test\"\nallow_http = \"true\"\n",
            toml_str(&url),
            toml_str(&slot),
            toml_str(&dir.join("state").to_string_lossy()),
            toml_str(&dir.join("catalog.db").to_string_lossy()),
            toml_str(&moto.endpoint),
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    let mut rng = StdRng::seed_from_u64(114);
    let mut next_id = 100;
    for _ in 0..2 {
        db.wait_for_slot_idle().await;
        for _ in 0..5 {
            db.execute(&random_transaction(&mut rng, &mut next_id)).await;
        }
        db.wait_for_slot_idle().await;
        outflow.run_until_caught_up().await.assert_success();
    }
    let catalog = crate::iceberg::read_catalog_with(&root, &["--s3-endpoint", &moto.endpoint]);
    assert_items_equal(&db, &catalog).await;
    assert!(!root.join("warehouse").exists(), "nothing went to local disk");
    db.cleanup().await;
}
