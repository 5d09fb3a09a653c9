//! Transforms (`[[transform]]`) and table selection (`exclude_tables`,
//! regexes) on both sources: excluded columns are absent from every event,
//! the schema history and (PostgreSQL) the publication's column list;
//! hashes equal the SHA-256 the database itself computes of salt and value;
//! redaction and truncation as Debezium's masks; per-sink transforms; a
//! DBA's publication keeps its column lists and row filters; bad transforms
//! are refused before anything is sent.

use serde_json::{json, Value};

use crate::events::{changes, read_jsonl};
use crate::harness::{wait_for, Outflow, TestDb, RUN_TIMEOUT, SHORT};
use crate::mysql_harness::{clean_error, MyDb, MyOutflow};

const SALT: &str = "pepper-e2e";

/// The rows of `events` (after, or before for deletes).
fn rows<'a>(events: &[&'a Value]) -> Vec<&'a Value> {
    events.iter().map(|e| if e["op"] == "d" { &e["before"] } else { &e["after"] }).collect()
}

/// The hex SHA-256 of [`SALT`] followed by `value`, computed by PostgreSQL.
async fn sha(db: &TestDb, value: &str) -> String {
    let sql = format!("SELECT encode(sha256(convert_to('{SALT}' || '{value}', 'UTF8')), 'hex')");
    db.query(&sql).await[0].get(0)
}

/// No event, before or after, carries `column`.
fn assert_absent(events: &[&Value], column: &str) {
    for e in events {
        for image in ["before", "after"] {
            assert!(e[image].get(column).is_none(), "{column} leaked in {image}: {e}");
        }
    }
}

#[tokio::test]
async fn pg_transforms_exclude_hash_redact_and_truncate_everywhere_and_push_the_exclusion_down() {
    let db = TestDb::create("transforms").await;
    db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, email text, code varchar(10), notes text, bio text, ssn text, n int); \
         CREATE TABLE audit_log (id int PRIMARY KEY); CREATE TABLE tmp_12 (id int PRIMARY KEY); \
         CREATE TABLE tmp_x (id int PRIMARY KEY); \
         INSERT INTO users VALUES (1, 'a@example.com', 'abc', 'hello world', 'a long biography', '123-45-6789', 42); \
         INSERT INTO audit_log VALUES (1); INSERT INTO tmp_12 VALUES (1); INSERT INTO tmp_x VALUES (1)",
    )
    .await;
    // The first section lands in [source].
    let outflow = Outflow::new(&db, &["public.*"])
        .section(r#"exclude_tables = ["public.audit_*", 're:^public\.tmp_\d+$']"#)
        .section(
            "[[transform]]\ntables = [\"public.users\"]\nexclude_columns = [\"ssn\"]\nhash_columns = [\"email\", \"code\"]\n\
             hash_salt = \"${MASK_SALT}\"\nredact_columns = { notes = 6 }\ntruncate_columns = { bio = 5 }",
        );
    outflow.with_env("MASK_SALT", SALT);
    outflow.run_until_caught_up().await.assert_success();

    // The server no longer sends ssn: the publication's column list leaves it out.
    let published = db
        .query(&format!(
            "SELECT tablename::text, attnames::text[] FROM pg_publication_tables WHERE pubname = 'outflow' ORDER BY 1"
        ))
        .await;
    let published: Vec<(String, Vec<String>)> = published.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        published,
        vec![
            ("tmp_x".into(), vec!["id".into()]),
            ("users".into(), ["id", "email", "code", "notes", "bio", "n"].map(String::from).to_vec()),
        ]
    );

    db.execute(
        "INSERT INTO users VALUES (2, 'b@example.com', NULL, NULL, 'x', '987-65-4321', 7); \
         UPDATE users SET email = 'c@example.com', ssn = '000' WHERE id = 1; DELETE FROM users WHERE id = 2; \
         INSERT INTO audit_log VALUES (2); INSERT INTO tmp_12 VALUES (2); INSERT INTO tmp_x VALUES (2)",
    )
    .await;
    outflow.run_until_caught_up().await.assert_success();

    let events = read_jsonl(&outflow.out_path());
    for excluded in ["audit_log", "tmp_12"] {
        assert!(changes(&events, excluded).is_empty(), "{excluded} is in exclude_tables");
    }
    assert_eq!(changes(&events, "tmp_x").len(), 2);
    let users = changes(&events, "users");
    assert_eq!(users.iter().map(|e| e["op"].as_str().unwrap()).collect::<Vec<_>>(), ["r", "c", "u", "d"]);
    assert_absent(&users, "ssn");
    // SHA-256 of salt || value, computed by PostgreSQL itself.
    let (a, b, c, abc) = (
        sha(&db, "a@example.com").await,
        sha(&db, "b@example.com").await,
        sha(&db, "c@example.com").await,
        sha(&db, "abc").await,
    );
    let rows = rows(&users);
    assert_eq!(rows[0], &json!({"id": 1, "email": a, "code": abc[..10], "notes": "******", "bio": "a lon", "n": 42}));
    assert_eq!(rows[1], &json!({"id": 2, "email": b, "code": null, "notes": "******", "bio": "x", "n": 7}));
    assert_eq!(rows[2], &json!({"id": 1, "email": c, "code": abc[..10], "notes": "******", "bio": "a lon", "n": 42}));
    // The delete's before image has the key only (replica identity default);
    // the redaction covers the unsent column too, as in Debezium.
    assert_eq!(rows[3]["id"], 2);
    assert_eq!(rows[3]["notes"], "******");

    // The schema history records the shape the sinks see.
    let history = std::fs::read_to_string(outflow.state_dir().join("schemas/public.users.json")).unwrap();
    assert!(history.contains("\"email\"") && !history.contains("ssn"), "{history}");
    // Nothing outflow wrote holds the excluded values or the salt.
    for value in ["123-45-6789", "987-65-4321", SALT, "a@example.com"] {
        let out = std::fs::read_to_string(outflow.out_path()).unwrap();
        assert!(!out.contains(value), "{value} in the output");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn pg_a_transform_named_by_one_sink_masks_only_that_sink() {
    let db = TestDb::create("transforms_sink").await;
    db.execute("CREATE TABLE users (id int PRIMARY KEY, email text, ssn text)").await;
    db.execute("INSERT INTO users VALUES (1, 'a@example.com', '111')").await;
    let masked = tempfile::tempdir().unwrap();
    let masked_path = masked.path().join("masked.jsonl");
    let outflow = Outflow::new(&db, &["public.users"]).section(&format!(
        "[[transform]]\nname = \"pii\"\nexclude_columns = [\"ssn\"]\nhash_columns = [\"email\"]\nhash_salt = \"{SALT}\"\n\n\
         [[sink]]\nname = \"analytics\"\nkind = \"jsonl\"\npath = {:?}\ntransforms = [\"pii\"]",
        masked_path.to_str().unwrap()
    ));
    outflow.run_until_caught_up().await.assert_success();
    db.execute("UPDATE users SET email = 'b@example.com' WHERE id = 1").await;
    outflow.run_until_caught_up().await.assert_success();

    // A per-sink exclusion is not pushed into the publication: the other sink needs the column.
    let published = db.query("SELECT attnames::text[] FROM pg_publication_tables WHERE tablename = 'users'").await;
    assert_eq!(published[0].get::<_, Vec<String>>(0), ["id", "email", "ssn"]);

    let plain = read_jsonl(&outflow.out_path());
    let plain = rows(&changes(&plain, "users")).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        plain,
        [
            json!({"id": 1, "email": "a@example.com", "ssn": "111"}),
            json!({"id": 1, "email": "b@example.com", "ssn": "111"})
        ]
    );
    let masked = read_jsonl(&masked_path);
    let masked = changes(&masked, "users");
    assert_absent(&masked, "ssn");
    let emails: Vec<&Value> = rows(&masked).iter().map(|r| &r["email"]).collect();
    assert_eq!(emails, [&json!(sha(&db, "a@example.com").await), &json!(sha(&db, "b@example.com").await)]);
    db.cleanup().await;
}

#[tokio::test]
async fn pg_a_publication_made_by_a_dba_keeps_its_column_lists_and_row_filters() {
    let db = TestDb::create("transforms_dba_pub").await;
    db.execute(
        "CREATE TABLE a (id int PRIMARY KEY, x text, secret text); CREATE TABLE b (id int PRIMARY KEY); \
         CREATE TABLE c (id int PRIMARY KEY); \
         CREATE PUBLICATION outflow FOR TABLE a (id, x) WHERE (id > 10), b WITH (publish_via_partition_root = true)",
    )
    .await;
    let outflow = Outflow::new(&db, &["public.a", "public.c"]).section("[snapshot]\nmode = \"never\"");
    outflow.run_until_caught_up().await.assert_success();
    let published = db
        .query("SELECT tablename::text, attnames::text[], rowfilter FROM pg_publication_tables WHERE pubname = 'outflow' ORDER BY 1")
        .await;
    let published: Vec<(String, Vec<String>, Option<String>)> =
        published.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        published,
        vec![
            ("a".into(), vec!["id".into(), "x".into()], Some("(id > 10)".into())),
            ("c".into(), vec!["id".into()], None)
        ]
    );
    // The row filter is the server's: outflow streams what it sends.
    db.execute("INSERT INTO a VALUES (1, 'low', 's1'), (11, 'high', 's2'); INSERT INTO c VALUES (1)").await;
    outflow.run_until_caught_up().await.assert_success();
    let events = read_jsonl(&outflow.out_path());
    assert_eq!(rows(&changes(&events, "a")), [&json!({"id": 11, "x": "high"})]);
    assert_eq!(changes(&events, "c").len(), 1);
    db.cleanup().await;
}

#[tokio::test]
async fn pg_bad_transforms_are_refused_before_anything_is_sent() {
    let db = TestDb::create("transforms_bad").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, n int, s text); INSERT INTO t VALUES (1, 2, 'x')").await;
    let cases = [
        ("[[transform]]\nexclude_columns = [\"id\"]", "exclude_columns names \"id\", a key column of public.t"),
        ("[[transform]]\nhash_columns = [\"n\"]\nhash_salt = \"s\"", "hash_columns names public.t.n, a int4 column"),
        ("[[transform]]\nhash_columns = [\"s\"]", "[[transform]] #1 has hash_columns but no hash_salt"),
        (
            "[[transform]]\nexclude_columns = [\"s\"]\nredact_columns = { s = 3 }",
            "column \"s\" is in both exclude_columns and redact_columns",
        ),
        ("[[transform]]\ntables = [\"re:(\"]", "[[transform]] #1 tables: \"re:(\" is not a valid regular expression"),
    ];
    for (section, expected) in cases {
        let outflow = Outflow::new(&db, &["public.t"]).section(section);
        // Refused before anything is created or streamed (the table shapes
        // are read from the source's catalog).
        let error = outflow.run_until_caught_up().await.assert_clean_error().to_string();
        assert!(error.contains(expected), "{section}: {error}");
        assert!(!outflow.out_path().exists(), "{section}: the sink was opened");
    }
    // `outflow check` says the same as a failed item, with the fix.
    let outflow = Outflow::new(&db, &["public.t"]).section(cases[1].0);
    let check = outflow.exec(&["check", "-c", &outflow.config_path().to_string_lossy()]).await;
    assert_eq!(check.code, Some(1), "{}", check.stdout);
    assert!(
        check.stdout.contains("✗ [[transform]] #1: hash_columns names public.t.n, a int4 column"),
        "{}",
        check.stdout
    );
    let slots = db.query(&format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = '{}'", db.name())).await;
    assert!(slots.is_empty(), "a refused run created the slot");
    let outflow = Outflow::new(&db, &["public.t"])
        .section("[[sink]]\nname = \"other\"\nkind = \"jsonl\"\npath = \"other.jsonl\"\ntransforms = [\"nope\"]");
    let error = outflow.run_until_caught_up().await.assert_clean_error().to_string(); // a config error: nothing is touched
    assert!(
        error.contains("[[sink]] \"other\" lists transform \"nope\", but no [[transform]] has that name"),
        "{error}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn mysql_transforms_and_exclude_tables_apply_to_snapshot_and_binlog() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "transforms").await;
    db.exec(
        "CREATE TABLE users (id INT PRIMARY KEY, email TEXT, ssn VARCHAR(11), bio TEXT); \
         CREATE TABLE audit_log (id INT PRIMARY KEY); CREATE TABLE tmp_3 (id INT PRIMARY KEY)",
    )
    .await;
    db.exec("INSERT INTO users VALUES (1, 'a@example.com', '123-45-6789', 'a long biography')").await;
    let mut outflow = MyOutflow::new(&db);
    outflow.source_extra = format!(r#"exclude_tables = ["{0}.audit_*", 're:{0}\.tmp_\d+']"#, db.name);
    let outflow = outflow.section(&format!(
        "[[transform]]\nexclude_columns = [\"ssn\"]\nhash_columns = [\"email\"]\nhash_salt = \"{SALT}\"\ntruncate_columns = {{ bio = 6 }}"
    ));
    outflow.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO users VALUES (2, 'b@example.com', '987-65-4321', 'x')").await;
    db.exec("UPDATE users SET email = 'c@example.com' WHERE id = 1").await;
    db.exec("DELETE FROM users WHERE id = 2").await;
    db.exec("INSERT INTO audit_log VALUES (1); INSERT INTO tmp_3 VALUES (1)").await;
    outflow.run_until_caught_up().await.assert_success();

    let events = outflow.events();
    for excluded in ["audit_log", "tmp_3"] {
        assert!(changes(&events, excluded).is_empty(), "{excluded} is in exclude_tables");
    }
    let users = changes(&events, "users");
    assert_absent(&users, "ssn");
    // SHA-256 of salt and value, computed by MariaDB.
    let mut sha = Vec::new();
    for v in ["a@example.com", "b@example.com", "c@example.com"] {
        use mysql_async::prelude::Queryable;
        let h: String =
            db.conn.query_first(format!("SELECT SHA2(CONCAT('{SALT}', '{v}'), 256)")).await.unwrap().unwrap();
        sha.push(h);
    }
    let rows = rows(&users);
    assert_eq!(rows[0], &json!({"id": 1, "email": sha[0], "bio": "a long"}));
    assert_eq!(rows[1], &json!({"id": 2, "email": sha[1], "bio": "x"}));
    assert_eq!(rows[2], &json!({"id": 1, "email": sha[2], "bio": "a long"}));
    assert_eq!(rows[3], &json!({"id": 2, "email": sha[1], "bio": "x"}));
    // Before images of the binlog are transformed too.
    assert_eq!(users[2]["before"], json!({"id": 1, "email": sha[0], "bio": "a long"}));

    let history = std::fs::read_to_string(outflow.state_dir().join(format!("schemas/{}.users.json", db.name))).unwrap();
    assert!(!history.contains("ssn"), "{history}");
    let out = std::fs::read_to_string(outflow.out_path()).unwrap();
    assert!(!out.contains("123-45-6789") && !out.contains("a@example.com"), "{out}");

    let bad = MyOutflow::new(&db).section("[[transform]]\nexclude_columns = [\"id\"]");
    let error = clean_error(&bad.run_until_caught_up().await);
    assert!(error.contains("a key column of"), "{error}");
}

/// The ids of `table`'s rows in `events` that are not deleted: reads and creates.
fn present_ids(events: &[Value], table: &str) -> std::collections::BTreeSet<i64> {
    changes(events, table)
        .iter()
        .filter(|e| e["op"] == "r" || e["op"] == "c")
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn pg_a_table_created_mid_run_that_matches_is_added_snapshotted_and_streamed() {
    let db = TestDb::create("transforms_new_table").await;
    db.execute("CREATE TABLE evt_1 (id int PRIMARY KEY, v text, secret text); INSERT INTO evt_1 VALUES (1, 'a', 's')")
        .await;
    let outflow = Outflow::new(&db, &["public.evt_*"]).section("[[transform]]\nexclude_columns = [\"secret\"]");
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    // Rows written before outflow adds the table to the publication reach
    // the sinks through its snapshot, later ones through the stream.
    db.execute(
        "CREATE TABLE evt_2 (id int PRIMARY KEY, v text, secret text); \
                INSERT INTO evt_2 SELECT g, 'v' || g, 'hidden' FROM generate_series(1, 50) g",
    )
    .await;
    wait_for(SHORT, "the new table's existing rows", || {
        let n = present_ids(&outflow.events_so_far(), "evt_2").len();
        async move { n == 50 }
    })
    .await;
    db.execute("INSERT INTO evt_2 SELECT g, 'v' || g, 'hidden' FROM generate_series(51, 60) g; UPDATE evt_2 SET v = 'new' WHERE id = 1").await;
    wait_for(SHORT, "the new table's later rows", || {
        let events = outflow.events_so_far();
        let done =
            present_ids(&events, "evt_2").len() == 60 && changes(&events, "evt_2").iter().any(|e| e["op"] == "u");
        async move { done }
    })
    .await;
    run.sigterm_and_wait().await.assert_success();
    let events = read_jsonl(&outflow.out_path());
    let new = changes(&events, "evt_2");
    assert_eq!(present_ids(&events, "evt_2"), (1..=60).collect());
    assert!(new.iter().filter(|e| e["op"] == "c").count() >= 10, "the later rows are streamed");
    assert_absent(&new, "secret");
    assert_eq!(new.last().unwrap()["after"], json!({"id": 1, "v": "new"}));
    // Added with the global exclusion as its column list.
    let published = db.query("SELECT attnames::text[] FROM pg_publication_tables WHERE tablename = 'evt_2'").await;
    assert_eq!(published[0].get::<_, Vec<String>>(0), ["id", "v"]);
    db.cleanup().await;
}

#[tokio::test]
async fn mysql_a_table_created_mid_run_that_matches_is_streamed_from_its_create() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "new_table").await;
    db.exec("CREATE TABLE evt_1 (id INT PRIMARY KEY)").await;
    let mut outflow = MyOutflow::new(&db);
    outflow.tables = vec![format!("{}.evt_*", db.name)];
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    let log = outflow.dir.path().join("run.stderr");
    wait_for(SHORT, "the run to stream", || {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        async move { logged.contains("streaming binlog") }
    })
    .await;
    db.exec("CREATE TABLE evt_2 (id INT PRIMARY KEY, v TEXT)").await;
    db.exec("INSERT INTO evt_2 VALUES (1, 'a'), (2, 'b')").await;
    db.exec("CREATE TABLE other (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO other VALUES (1)").await;
    wait_for(SHORT, "the new table's rows", || {
        let n = present_ids(&outflow.events(), "evt_2").len();
        async move { n == 2 }
    })
    .await;
    // Known for snapshot requests too, once discovered.
    wait_for(SHORT, "the new table to be captured", || {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        async move { logged.contains("captured a new table") }
    })
    .await;
    outflow.sigterm(run).await;
    let events = outflow.events();
    assert_eq!(changes(&events, "evt_2").iter().map(|e| e["op"].as_str().unwrap()).collect::<Vec<_>>(), ["c", "c"]);
    assert!(changes(&events, "other").is_empty());
}

/// `(op, id)` of each change of `table`, with the row's `after` (or `before`).
fn ops_and_ids(events: &[&Value]) -> Vec<(String, i64)> {
    rows(events)
        .iter()
        .zip(events)
        .map(|(r, e)| (e["op"].as_str().unwrap().to_string(), r["id"].as_i64().unwrap()))
        .collect()
}

const DE_FILTER: &str = r#"filter = "op == 'd' ? before.country == 'DE' : after.country == 'DE'""#;
const DERIVE: &str =
    r#"derive = { amount_eur = "after.amount * 0.92", region = "after.country == 'DE' ? 'eu' : 'other'" }"#;

#[tokio::test]
async fn pg_filters_and_derived_fields_follow_rows_in_and_out_of_the_filter() {
    let db = TestDb::create("transforms_filter").await;
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), country text); \
         ALTER TABLE orders REPLICA IDENTITY FULL; \
         INSERT INTO orders VALUES (1, 10.00, 'DE'), (2, 20.00, 'FR')",
    )
    .await;
    let all = tempfile::tempdir().unwrap();
    let all_path = all.path().join("all.jsonl");
    let outflow = Outflow::new(&db, &["public.orders"]).section(&format!(
        "[[transform]]\nname = \"de\"\n{DE_FILTER}\n{DERIVE}\n\n\
         [[sink]]\nname = \"all\"\nkind = \"jsonl\"\npath = {:?}",
        all_path.to_str().unwrap()
    ));
    // The named transform is listed by no sink: it applies to both.
    outflow.run_until_caught_up().await.assert_success();
    db.execute(
        "INSERT INTO orders VALUES (3, 19.99, 'DE'), (4, 5.00, 'US'); \
         UPDATE orders SET country = 'FR' WHERE id = 1; UPDATE orders SET country = 'DE' WHERE id = 2; \
         DELETE FROM orders WHERE id = 3; DELETE FROM orders WHERE id = 4",
    )
    .await;
    outflow.run_until_caught_up().await.assert_success();

    for path in [outflow.out_path(), all_path] {
        let events = read_jsonl(&path);
        let orders = changes(&events, "orders");
        // 1 leaves the filter (its update is dropped), 2 enters it, 4 never is in it.
        assert_eq!(ops_and_ids(&orders), [("r".into(), 1), ("c".into(), 3), ("u".into(), 2), ("d".into(), 3)]);
        let computed: String = db.query("SELECT (19.99 * 0.92)::text").await[0].get(0);
        assert_eq!(
            orders[1]["after"],
            json!({"id": 3, "amount": "19.99", "country": "DE", "amount_eur": computed, "region": "eu"})
        );
        assert_eq!(orders[0]["after"]["amount_eur"], "9.2000");
        assert_eq!(orders[2]["after"]["amount_eur"], "18.4000");
        // Derived fields are null in before images and absent from deletes' after.
        assert_eq!(orders[2]["before"]["amount_eur"], Value::Null);
        assert_eq!(orders[3]["after"], Value::Null);
    }
    // status counts the dropped changes per table, over both runs: the
    // snapshot's FR row, the US insert, the update out of the filter, the US delete.
    assert_eq!(outflow.status_json().await["dropped_by_transforms"], json!({"public.orders": 4}));
    db.cleanup().await;
}

#[tokio::test]
async fn pg_a_ddl_that_removes_a_column_an_expression_uses_follows_on_error() {
    let db = TestDb::create("transforms_ddl").await;
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), country text)").await;
    let transform = |on_error: &str| format!("[[transform]]\n{DERIVE}\non_error = \"{on_error}\"");
    let outflow = Outflow::new(&db, &["public.orders"]).section(&transform("fail"));
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO orders VALUES (1, 1.00, 'DE'); ALTER TABLE orders DROP COLUMN country; INSERT INTO orders VALUES (2, 2.00)").await;

    // fail (the default): the run stops at the change and names it...
    let out = run.wait_exit(RUN_TIMEOUT).await;
    let error = clean_error(&out);
    assert!(error.contains("[[transform]] #1 derive region failed for public.orders at lsn:"), "{error}");
    assert!(error.contains("No such key: country"), "{error}");
    // ... and acknowledges nothing from it on; a new run refuses to start
    // while the table has no such column.
    let error = outflow.run_until_caught_up().await.assert_clean_error().to_string();
    assert_eq!(error, "error: [[transform]] #1 derive region fails on public.orders: No such key: country");
    let ids: Vec<i64> = changes(&read_jsonl(&outflow.out_path()), "orders")
        .iter()
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1]);

    // null: the field that cannot be computed is null, the change goes on.
    let switch = |outflow: Outflow, from: &str, to: &str| {
        let text = outflow.config_text().replace(&format!("on_error = \"{from}\""), &format!("on_error = \"{to}\""));
        outflow.raw_config(text)
    };
    let outflow = switch(outflow, "fail", "null");
    outflow.run_until_caught_up().await.assert_success();
    let events = read_jsonl(&outflow.out_path());
    let orders = changes(&events, "orders");
    assert_eq!(orders[1]["after"], json!({"id": 2, "amount": "2.00", "amount_eur": "1.8400", "region": null}));

    // skip: the change is left out, with a warning naming it.
    let outflow = switch(outflow, "null", "skip");
    db.execute("INSERT INTO orders VALUES (3, 3.00)").await;
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("derive region failed; the event is skipped"), "{}", out.stderr);
    assert_eq!(changes(&read_jsonl(&outflow.out_path()), "orders").len(), 2);
    db.cleanup().await;
}

#[tokio::test]
async fn mysql_filters_and_derived_fields_apply_to_snapshot_and_binlog_and_per_sink() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "transforms_filter").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2), country VARCHAR(2))").await;
    db.exec("INSERT INTO orders VALUES (1, 10.00, 'DE'), (2, 20.00, 'FR')").await;
    let de = tempfile::tempdir().unwrap();
    let de_path = de.path().join("de.jsonl");
    // The events sink gets every row with the derived fields; the "de" sink only German rows.
    let outflow = MyOutflow::new(&db).section(&format!(
        "[[transform]]\n{DERIVE}\n[[transform]]\nname = \"de_only\"\n{DE_FILTER}\n\
         [[sink]]\nname = \"de\"\nkind = \"jsonl\"\npath = {:?}\ntransforms = [\"de_only\"]",
        de_path.to_str().unwrap()
    ));
    outflow.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO orders VALUES (3, 19.99, 'DE'), (4, 5.00, 'US')").await;
    db.exec("UPDATE orders SET country = 'FR' WHERE id = 1").await;
    db.exec("UPDATE orders SET country = 'DE' WHERE id = 2").await;
    db.exec("DELETE FROM orders WHERE id IN (3, 4)").await;
    outflow.run_until_caught_up().await.assert_success();

    let everything = outflow.events();
    let all = changes(&everything, "orders");
    assert_eq!(all.len(), 8);
    use mysql_async::prelude::Queryable;
    let computed: String = db.conn.query_first("SELECT CAST(19.99 * 0.92 AS CHAR)").await.unwrap().unwrap();
    assert_eq!(
        all[2]["after"],
        json!({"id": 3, "amount": "19.99", "country": "DE", "amount_eur": computed, "region": "eu"})
    );
    assert_eq!(all[3]["after"]["region"], "other");

    let de = read_jsonl(&de_path);
    let de = changes(&de, "orders");
    assert_eq!(ops_and_ids(&de), [("r".into(), 1), ("c".into(), 3), ("u".into(), 2), ("d".into(), 3)]);
    // The per-sink filter sees the global derived fields too.
    assert_eq!(de[2]["after"]["region"], "eu");
}

#[tokio::test]
async fn tail_tries_a_named_transform_without_touching_the_pipeline() {
    let db = TestDb::create("transforms_tail").await;
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), country text)").await;
    let outflow = Outflow::new(&db, &["public.orders"])
        .section(&format!("[[transform]]\nname = \"try\"\nfilter = \"after.country == 'DE'\"\n{DERIVE}"));
    let config = outflow.config_path().to_string_lossy().to_string();
    let tail = outflow.spawn_command(&["tail", "-c", &config, "--transform", "try"]);
    wait_for(SHORT, "tail to stream", || async {
        !db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'outflow_tail_%' AND active")
            .await
            .is_empty()
    })
    .await;
    db.execute("INSERT INTO orders VALUES (1, 10.00, 'FR'), (2, 19.99, 'DE')").await;
    wait_for(SHORT, "tail to print the German order", || {
        let out = tail.stdout();
        async move { out.contains("\"amount_eur\"") }
    })
    .await;
    let out = tail.sigterm_and_wait().await;
    out.assert_success();
    let printed: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let orders = changes(&printed, "orders");
    assert_eq!(
        rows(&orders),
        [&json!({"id": 2, "amount": "19.99", "country": "DE", "amount_eur": "18.3908", "region": "eu"})]
    );

    let unknown = outflow.exec(&["tail", "-c", &config, "--transform", "nope"]).await;
    assert_eq!(unknown.assert_clean_error(), "error: no [[transform]] is named \"nope\"");
    db.cleanup().await;
}

/// Column privileges prove the snapshot never reads an excluded column: the
/// user may not SELECT it, and the publication (a DBA's) leaves it out.
#[tokio::test]
async fn pg_an_excluded_column_is_never_read_so_a_column_grant_suffices() {
    let db = TestDb::create("transforms_grants").await;
    let role = format!("r_{}", db.name());
    db.execute(&format!(
        "CREATE TABLE users (id int PRIMARY KEY, email text, secret text); \
         INSERT INTO users VALUES (1, 'a@example.com', 's1'); \
         CREATE PUBLICATION outflow FOR TABLE users (id, email) WITH (publish_via_partition_root = true); \
         CREATE ROLE {role} LOGIN REPLICATION; GRANT SELECT (id, email) ON users TO {role}"
    ))
    .await;
    let outflow = Outflow::new(&db, &["public.users"])
        .source_url(db.url_as(&role, "", ""))
        .section("[[transform]]\nexclude_columns = [\"secret\"]");
    outflow.run_until_caught_up().await.assert_success();
    db.execute(
        "INSERT INTO users VALUES (2, 'b@example.com', 's2'); UPDATE users SET email = 'c@example.com' WHERE id = 1",
    )
    .await;
    outflow.run_until_caught_up().await.assert_success();
    let events = read_jsonl(&outflow.out_path());
    let users = changes(&events, "users");
    assert_eq!(ops_and_ids(&users), [("r".into(), 1), ("c".into(), 2), ("u".into(), 1)]);
    assert_absent(&users, "secret");
    crate::bad_source::drop_role(db, &role).await;
}

/// MariaDB: a user granted only the columns outflow keeps (and the
/// replication privileges) snapshots and streams; the binlog's rows carry
/// the excluded column, which the transform drops.
#[tokio::test]
async fn mysql_an_excluded_column_is_never_read_so_a_column_grant_suffices() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "transforms_grants").await;
    db.exec("CREATE TABLE users (id INT PRIMARY KEY, email TEXT, secret TEXT)").await;
    db.exec("INSERT INTO users VALUES (1, 'a@example.com', 's1')").await;
    let user = format!("u_{}", db.name);
    db.exec(&format!("CREATE USER '{user}'@'127.0.0.1'")).await;
    db.exec(&format!("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'")).await;
    db.exec(&format!("GRANT SELECT (id, email) ON {}.users TO '{user}'@'127.0.0.1'", db.name)).await;
    let mut outflow = MyOutflow::new(&db);
    outflow.url = db.url().replace("root@", &format!("{user}@"));
    let outflow = outflow.section("[[transform]]\nexclude_columns = [\"secret\"]");
    outflow.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO users VALUES (2, 'b@example.com', 's2')").await;
    db.exec("UPDATE users SET email = 'c@example.com' WHERE id = 1").await;
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    let events = outflow.events();
    let users = changes(&events, "users");
    assert_eq!(ops_and_ids(&users), [("r".into(), 1), ("c".into(), 2), ("u".into(), 1)]);
    assert_absent(&users, "secret");
    assert_eq!(users[2]["before"], json!({"id": 1, "email": "a@example.com"}));
    db.exec(&format!("DROP USER '{user}'@'127.0.0.1'")).await;
}

#[tokio::test]
async fn mysql_a_ddl_that_removes_a_column_an_expression_uses_follows_on_error() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "transforms_ddl").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2), country VARCHAR(2))").await;
    let outflow = MyOutflow::new(&db).section(&format!("[[transform]]\n{DERIVE}\non_error = \"skip\""));
    outflow.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO orders VALUES (1, 1.00, 'DE')").await;
    db.exec("ALTER TABLE orders DROP COLUMN country").await;
    db.exec("INSERT INTO orders VALUES (2, 2.00)").await;
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("derive region failed; the event is skipped"), "{}", out.stderr);
    let events = outflow.events();
    let orders = changes(&events, "orders");
    assert_eq!(ops_and_ids(&orders), [("c".into(), 1)]);
    assert_eq!(
        orders[0]["after"],
        json!({"id": 1, "amount": "1.00", "country": "DE", "amount_eur": "0.9200", "region": "eu"})
    );

    // With the default (fail), a new run refuses the table's new shape.
    let strict = MyOutflow::new(&db).section(&format!("[[transform]]\n{DERIVE}"));
    let error = clean_error(&strict.run_until_caught_up().await);
    assert!(error.contains("derive region fails on") && error.contains("No such key: country"), "{error}");
}
