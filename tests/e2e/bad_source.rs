//! Bad input, part 4: the source misbehaves or is misconfigured. A slot
//! dropped under a running process, a captured table dropped, a user
//! without the REPLICATION privilege or without EXECUTE on the watermark
//! function, a publication that does not publish every change. Each gives
//! the documented error (exit code 1, `error:` + `hint:`) with the state
//! intact, or, for the dropped table, streaming that goes on.

use crate::harness::{changes, ops, wait_for, Outflow, TestDb, SHORT};
use crate::intact::{Error, Image};
use crate::own_servers::OwnPg;

fn image(outflow: &Outflow) -> Image {
    Image::take(&[&outflow.state_dir(), &outflow.out_path()])
}

async fn slot_exists(db: &TestDb) -> bool {
    !db.query(&format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = '{}'", db.name())).await.is_empty()
}

/// The slot is dropped (its walsender terminated first) while `run` streams:
/// the process must stop by itself with the slot named, not reconnect
/// forever and not create a new slot, and leave its offsets as they were.
#[tokio::test]
async fn source_slot_dropped_under_a_running_process_stops_it_with_a_clear_error() {
    let db = TestDb::create("slot_dropped").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO t VALUES (1)").await;
    let offset_path = outflow.state_dir().join("sinks/events.json");
    let stored = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&offset_path).unwrap_or_default()).unwrap_or_default()
    };
    wait_for(SHORT, "the row to be durable", || async { stored()["events"] == 1 }).await;
    let durable = lsn(&stored());

    wait_for(SHORT, "the slot to be dropped", || async {
        let _ = db
            .client()
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&db.name()],
            )
            .await;
        db.client().execute("SELECT pg_drop_replication_slot($1)", &[&db.name()]).await.is_ok()
    })
    .await;
    let out = run.wait_exit(SHORT).await;
    let error = Error::of(&out, 1);
    error.names(&[db.name(), "does not exist"]);
    assert!(error.hint.contains("dropped"), "{}", error.hint);
    assert!(!slot_exists(&db).await, "a new slot was created");
    // The offset kept its place (what was received before the drop may
    // still have been committed on the way out), nothing was invented.
    let last = stored();
    assert_eq!(last["events"], 1, "{last}");
    assert!(lsn(&last) >= durable, "the offset went back: {last}");
    assert_eq!(changes(&outflow.events(), "t").len(), 1);
    let before = image(&outflow);

    // The next run refuses as well, and creates no slot either.
    let out = outflow.run_until_caught_up().await;
    Error::of(&out, 1).names(&[db.name(), "does not exist"]);
    before.assert_unchanged(&image(&outflow));
    assert!(!slot_exists(&db).await, "a new slot was created");
    db.cleanup().await;
}

/// The LSN of a stored `lsn:X/Y[:N]` position.
fn lsn(offset: &serde_json::Value) -> u64 {
    let p = offset["position"].as_str().unwrap_or_else(|| panic!("no position in {offset}"));
    let (hi, lo) = p.strip_prefix("lsn:").unwrap().split(':').next().unwrap().split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// A captured table is dropped while `run` streams: like Debezium, the
/// other tables keep streaming. A restart whose config still names the
/// table stops with the table named (the config is out of date).
#[tokio::test]
async fn source_table_dropped_while_captured_the_others_keep_streaming() {
    let db = TestDb::create("table_dropped").await;
    db.execute("CREATE TABLE keep (id int PRIMARY KEY); CREATE TABLE gone (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.keep", "public.gone"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO keep VALUES (1); INSERT INTO gone VALUES (1)").await;
    wait_for(SHORT, "both rows", || async {
        let e = outflow.events_so_far();
        changes(&e, "keep").len() == 1 && changes(&e, "gone").len() == 1
    })
    .await;

    db.execute("DROP TABLE gone").await;
    db.execute("INSERT INTO keep VALUES (2)").await;
    wait_for(SHORT, "the row after the drop", || async { changes(&outflow.events_so_far(), "keep").len() == 2 }).await;
    assert!(run.is_running(), "outflow stopped after the drop: {}", run.stderr());
    run.sigterm_and_wait().await.assert_success();
    let events = outflow.events();
    assert_eq!(ops(&changes(&events, "keep")), ["c", "c"]);
    assert_eq!(ops(&changes(&events, "gone")), ["c"]);

    let before = image(&outflow);
    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 2);
    error.names(&["public.gone", "does not exist"]);
    assert!(error.hint.contains("[source] tables"), "{}", error.hint);
    before.assert_unchanged(&image(&outflow));

    // Without it in the config, the pipeline goes on where it was.
    db.execute("INSERT INTO keep VALUES (3)").await;
    let text = outflow.config_text().replace(", \"public.gone\"", "");
    let outflow = outflow.raw_config(text);
    outflow.run_until_caught_up().await.assert_success();
    let ids: Vec<_> = changes(&outflow.events(), "keep").iter().map(|e| e["after"]["id"].clone()).collect();
    assert_eq!(ids, [1, 2, 3]);
    db.cleanup().await;
}

/// A role for one test: LOGIN (trust auth on the test server), owner of
/// the test's tables, `REPLICATION` or not. Dropped by [`drop_role`].
async fn role(db: &TestDb, replication: bool, tables: &[&str]) -> String {
    let role = format!("r_{}", db.name());
    let repl = if replication { "REPLICATION" } else { "NOREPLICATION" };
    db.execute(&format!("CREATE ROLE {role} LOGIN {repl}; GRANT CREATE ON DATABASE {} TO {role}", db.name())).await;
    for t in tables {
        db.execute(&format!("ALTER TABLE {t} OWNER TO {role}")).await;
    }
    role
}

pub(crate) async fn drop_role(db: TestDb, role: &str) {
    let admin = crate::harness::env_var("OUTFLOW_TEST_PG_URL");
    db.cleanup().await;
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
}

/// A user without REPLICATION: refused with the ALTER ROLE that fixes it;
/// the state of the earlier (superuser) runs stays as it was.
#[tokio::test]
async fn source_user_without_the_replication_privilege() {
    let db = TestDb::create("no_replication").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let admin = Outflow::new(&db, &["public.t"]);
    admin.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (1)").await;
    db.wait_for_slot_idle().await;
    let user = role(&db, false, &["t"]).await;
    let outflow = admin.source_url(db.url_as(&user, "", ""));
    let before = image(&outflow);

    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["REPLICATION"]);
    assert!(error.hint.contains(&format!("ALTER ROLE \"{user}\" WITH REPLICATION")), "{}", error.hint);
    before.assert_unchanged(&image(&outflow));

    db.execute(&format!("ALTER ROLE {user} WITH REPLICATION")).await;
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(changes(&outflow.events(), "t").len(), 1, "the pending row, once");
    drop_role(db, &user).await;
}

/// The snapshot's watermark function revoked: the snapshot stops with the
/// GRANT that fixes it, nothing is delivered or acknowledged; granted, the
/// next run reads every row once.
#[tokio::test]
async fn source_watermark_function_not_permitted() {
    let db = TestDb::create("no_emit_message").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50)").await;
    // Its text variant, (boolean, text, text) before PostgreSQL 17, with a `flush` boolean after.
    let emit: String = db
        .query("SELECT oid::regprocedure::text FROM pg_proc WHERE proname = 'pg_logical_emit_message' AND proargtypes[2] = 'text'::regtype")
        .await[0]
        .get(0);
    db.execute(&format!("REVOKE EXECUTE ON FUNCTION {emit} FROM PUBLIC")).await;
    let user = role(&db, true, &["t"]).await;
    let outflow = Outflow::new(&db, &["public.t"]).source_url(db.url_as(&user, "", ""));

    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["pg_logical_emit_message"]);
    assert!(error.hint.contains("GRANT EXECUTE ON FUNCTION pg_logical_emit_message"), "{}", error.hint);
    assert!(changes(&outflow.events_so_far(), "t").is_empty(), "rows were delivered");
    let stored = std::fs::read_to_string(outflow.state_dir().join("sinks/events.json")).unwrap_or_default();
    assert!(!stored.contains("\"done\": true"), "the snapshot is recorded as done: {stored}");

    db.execute(&format!("GRANT EXECUTE ON FUNCTION {emit} TO {user}")).await;
    outflow.run_until_caught_up().await.assert_success();
    let mut ids: Vec<i64> =
        changes(&outflow.events(), "t").iter().map(|e| e["after"]["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=50).collect::<Vec<_>>(), "every row once");
    drop_role(db, &user).await;
}

/// A publication that exists but publishes only inserts (or not via the
/// partition root) would silently drop updates and deletes: outflow sets
/// its options as it sets its table list.
#[tokio::test]
async fn source_publication_that_does_not_publish_every_change_is_set_right() {
    let db = TestDb::create("pub_insert_only").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    db.execute("CREATE PUBLICATION outflow FOR TABLE t WITH (publish = 'insert', publish_via_partition_root = false)")
        .await;
    let outflow = Outflow::new(&db, &["public.t"]);
    outflow.run_until_caught_up().await.assert_success();
    db.execute(
        "INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b'; DELETE FROM t; INSERT INTO t VALUES (2, 'c'); TRUNCATE t",
    )
    .await;
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(ops(&changes(&outflow.events(), "t")), ["c", "u", "d", "c", "t"]);
    let row = &db
        .query("SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate AND pubviaroot FROM pg_publication")
        .await[0];
    assert!(row.get::<_, bool>(0), "the publication's options were not set");
    db.cleanup().await;
}

/// A publication FOR ALL TABLES under the configured name cannot be set to
/// the configured tables (and would stream every table): refused with the
/// fix, before a slot is created.
#[tokio::test]
async fn source_publication_for_all_tables_is_refused() {
    let db = TestDb::create("pub_all_tables").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION outflow FOR ALL TABLES").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["\"outflow\"", "FOR ALL TABLES"]);
    assert!(error.hint.contains("[source] publication"), "{}", error.hint);
    assert!(!slot_exists(&db).await, "a slot was created");
    assert!(!outflow.state_dir().join("sinks/events.json").exists(), "an offset was stored");
    db.cleanup().await;
}

/// A row larger than the Kafka sink accepts (`message.max.bytes`): the
/// run stops naming the setting, the rows after it are not acknowledged
/// and the state stays as it was; with the limit raised, the next run
/// delivers the large row and the rest exactly once.
#[tokio::test]
async fn source_row_larger_than_the_kafka_sink_accepts() {
    use crate::kafka::{brokers, records, unique_name};
    let db = TestDb::create("row_too_large").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("too_large");
    let base = Outflow::new(&db, &["public.t"]).name(&name);
    let text = base.config_text();
    let head = text[..text.find("[[sink]]").unwrap()].to_string();
    let sink = |limit: u32| {
        format!(
            "{head}[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\n[sink.producer]\n\"message.max.bytes\" = {limit}\n",
            brokers()
        )
    };
    let outflow = base.raw_config(sink(2000));
    outflow.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (1, repeat('x', 5000))").await;
    db.execute("INSERT INTO t VALUES (2, 'small')").await;
    db.wait_for_slot_idle().await;
    // The offsets and the source identity must not change (the schema
    // history may record the table's shape: it was seen).
    let offsets = || Image::take(&[&outflow.state_dir().join("sinks"), &outflow.state_dir().join("source.json")]);
    let state = offsets();
    let lsn = db
        .query(&format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'", db.name()))
        .await[0]
        .get::<_, String>(0);

    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["message.max.bytes"]);
    state.assert_unchanged(&offsets());
    let now = db
        .query(&format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'", db.name()))
        .await[0]
        .get::<_, String>(0);
    assert_eq!(now, lsn, "the slot moved past the refused row");

    let outflow = outflow.raw_config(sink(1_000_000));
    outflow.run_until_caught_up().await.assert_success();
    let mut ids: Vec<i64> = records(&format!("{name}.public.t"))
        .iter()
        .filter(|r| !r["value"].is_null())
        .map(|r| r["value"]["after"]["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2], "each row exactly once");
    db.cleanup().await;
}

/// The server invalidates the slot (`max_slot_wal_keep_size` passed while
/// outflow was stopped): the next run stops with the recovery steps, leaves
/// the state as it was and streams nothing from a slot with a gap; the
/// steps it names (drop the slot, reset the sink) recover every row.
#[tokio::test]
async fn source_slot_invalidated_by_max_slot_wal_keep_size_stops_with_the_recovery_steps() {
    let pg = OwnPg::start();
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'").await.unwrap();
    client.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await.unwrap();
    client.batch_execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 10) g").await.unwrap();
    let url = pg.url();
    let outflow = Outflow::raw(|dir| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {url:?}\ntables = [\"public.t\"]\nslot = \"lossy\"\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = {:?}\n",
            dir.join("state"),
            dir.join("out.jsonl")
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(changes(&outflow.events(), "t").len(), 10);

    // Stopped; writes go on and the WAL the slot holds passes the limit.
    let wal_status = || async {
        let row = client.query_one("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lossy'", &[]).await;
        row.ok().and_then(|r| r.get::<_, Option<String>>(0)).unwrap_or_default()
    };
    wait_for(SHORT, "the slot to be invalidated", || async {
        client
            .batch_execute("INSERT INTO t SELECT g, 'y' FROM generate_series(11, 5010) g ON CONFLICT DO NOTHING")
            .await
            .unwrap();
        client.batch_execute("SELECT pg_switch_wal()").await.unwrap();
        client.batch_execute("CHECKPOINT").await.unwrap();
        wal_status().await == "lost"
    })
    .await;
    let before = image(&outflow);
    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["\"lossy\"", "invalidated", "removed WAL"]);
    assert!(error.hint.contains("pg_drop_replication_slot('lossy')"), "{}", error.hint);
    assert!(error.hint.contains("offsets reset --sink"), "{}", error.hint);
    before.assert_unchanged(&image(&outflow));
    let check = outflow.exec(&["check", "-c", &outflow.config_path().to_string_lossy()]).await;
    assert_ne!(check.code, Some(0), "check flags the lost slot:\n{}", check.stdout);
    assert!(check.stdout.contains("wal_status lost"), "{}", check.stdout);

    // The recovery steps: drop the slot, reset the sink, run: a new snapshot.
    client.batch_execute("SELECT pg_drop_replication_slot('lossy')").await.unwrap();
    let config = outflow.config_path().to_string_lossy().into_owned();
    outflow.exec(&["offsets", "-c", &config, "reset", "--sink", "events"]).await.assert_success();
    outflow.run_until_caught_up().await.assert_success();
    let rows: std::collections::BTreeSet<i64> = outflow
        .events()
        .iter()
        .filter(|e| e["op"] == "r" && e["source"]["table"] == "t")
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, (1..=5010).collect(), "the new snapshot holds every row");
}
