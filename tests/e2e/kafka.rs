//! The Kafka sink end to end: the real binary replicates PostgreSQL into the
//! test broker (tansu, started by `scripts/test-services.sh`, address in
//! `OUTFLOW_TEST_KAFKA_BROKERS`), and an independent reader — a plain
//! confluent-kafka consumer with explicitly assigned partitions, through
//! `tests/readers/kafka_read.py` in the test venv — reads every partition
//! from its beginning. Scenarios: Debezium keys, envelopes, tombstones,
//! truncates and position headers; topic template routing and the
//! transaction topic; kill -9 during a busy run (and a lost state
//! directory) → exactly once; the broker frozen mid-run → nothing lost and
//! the slot held; a record too large → an error naming the setting.
//!
//! Every test uses its own pipeline `name`, so its topics are its own on the
//! shared broker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use crate::harness::{env_var, kill_9_while_writing, wait_for, Outflow, TestDb};
use crate::outage::{confirmed_flush_lsn, slot_holds_while_down};

pub(crate) fn brokers() -> String {
    env_var("OUTFLOW_TEST_KAFKA_BROKERS")
}

fn python() -> String {
    env_var("OUTFLOW_TEST_PYTHON")
}

fn reader(args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/kafka_read.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(brokers())
        .args(args)
        .output()
        .expect("running the kafka reader");
    assert!(out.status.success(), "kafka reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

/// Every record of `topic`, partition by partition, from the beginning.
pub(crate) fn records(topic: &str) -> Vec<Value> {
    reader(&[topic])["topics"][topic]["records"].as_array().cloned().unwrap_or_default()
}

/// An outflow setup named `name` whose only sink is `[[sink]] kind = "kafka"`
/// named `bus`, with `settings` (TOML lines, may include `[sink.producer]`).
fn kafka_outflow(db: &TestDb, tables: &[&str], name: &str, settings: &str) -> Outflow {
    let outflow = Outflow::new(db, tables).name(name);
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    let sink = format!("[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\n{settings}\n", brokers());
    outflow.raw_config(format!("{base}{sink}"))
}

/// A pipeline name no other test (or earlier run on the same broker) uses.
pub(crate) fn unique_name(hint: &str) -> String {
    format!("{hint}_{}_{}", std::process::id(), rand::rng().random_range(0..1_000_000u32))
}

#[tokio::test]
async fn changes_arrive_as_debezium_records_with_keys_tombstones_and_positions() {
    let db = TestDb::create("kafka_shape").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    db.execute("CREATE TABLE notes (body text)").await; // no primary key
    let name = unique_name("shape");
    let outflow = kafka_outflow(&db, &["public.items", "public.notes"], &name, "partitions = 3");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    db.execute("INSERT INTO items SELECT g, 'tag' || g, g FROM generate_series(1, 40) g").await;
    db.execute("UPDATE items SET qty = qty + 100 WHERE id % 2 = 0").await;
    db.execute("DELETE FROM items WHERE id % 5 = 0").await;
    db.execute("INSERT INTO notes VALUES ('first'), ('second')").await;
    db.execute("TRUNCATE notes").await;
    outflow.run_until_caught_up().await.assert_success();

    let items = records(&format!("{name}.public.items"));
    assert_eq!(reader(&[&format!("{name}.public.items")])["topics"][format!("{name}.public.items")]["partitions"], 3);
    // 40 creates + 20 updates + 8 deletes, each delete followed by a tombstone.
    assert_eq!(items.len(), 40 + 20 + 8 * 2, "records: {items:#?}");
    let mut per_key: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for r in &items {
        assert_eq!(r["key"].as_object().map(|o| o.len()), Some(1), "key is {{\"id\": N}}: {r}");
        let id = r["key"]["id"].as_i64().expect("integer key");
        let position = r["headers"]["outflow.position"].as_str().expect("position header");
        assert!(position.starts_with("lsn:"), "{position}");
        per_key.entry(id).or_default().push(r);
    }
    assert_eq!(per_key.len(), 40);
    let mut partitions_used = std::collections::BTreeSet::new();
    for (id, recs) in &per_key {
        let partition = recs[0]["partition"].as_i64().unwrap();
        partitions_used.insert(partition);
        assert!(recs.iter().all(|r| r["partition"].as_i64() == Some(partition)), "key {id} spread over partitions");
        let ops: Vec<&str> = recs.iter().map(|r| r["value"]["op"].as_str().unwrap_or("tombstone")).collect();
        let want: Vec<&str> = match (id % 2 == 0, id % 5 == 0) {
            (true, true) => vec!["c", "u", "d", "tombstone"],
            (true, false) => vec!["c", "u"],
            (false, true) => vec!["c", "d", "tombstone"],
            (false, false) => vec!["c"],
        };
        assert_eq!(ops, want, "key {id}");
        let create = &recs[0]["value"];
        assert_eq!(create["after"], json!({"id": id, "tag": format!("tag{id}"), "qty": id}));
        assert_eq!(create["before"], Value::Null);
        assert_eq!(create["source"]["connector"], "postgresql");
        assert_eq!(create["source"]["name"], name.as_str());
        assert_eq!(create["source"]["schema"], "public");
        assert_eq!(create["source"]["table"], "items");
        assert!(create["source"]["lsn"].is_i64() && create["ts_ms"].is_i64());
        if id % 5 == 0 {
            let tomb = recs.last().unwrap();
            assert_eq!(tomb["value"], Value::Null);
            assert_eq!(tomb["headers"]["outflow.seq"], "1");
            let delete = &recs[recs.len() - 2];
            assert_eq!(tomb["headers"]["outflow.position"], delete["headers"]["outflow.position"]);
            assert_eq!(delete["value"]["after"], Value::Null);
            assert_eq!(delete["value"]["before"]["id"], *id);
        }
    }
    assert!(partitions_used.len() > 1, "40 keys all landed in one of 3 partitions");

    // A table without a key: null keys; the truncate goes to the table's topic.
    let notes = records(&format!("{name}.public.notes"));
    let ops: Vec<&str> = notes.iter().map(|r| r["value"]["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["c", "c", "t"]);
    assert!(notes.iter().all(|r| r["key"].is_null()));
    assert_eq!(notes[0]["value"]["after"], json!({"body": "first"}));

    // The offsets topic holds this sink's progress.
    let offsets = records(&format!("{name}.outflow-offsets"));
    let last = offsets.last().expect("an offsets record");
    assert_eq!(last["key"], "bus", "offsets records are keyed by the sink's name: {last}");
    assert!(last["value"]["position"].as_str().is_some_and(|p| p.starts_with("lsn:")), "{last}");
    db.cleanup().await;
}

#[tokio::test]
async fn topic_template_routes_tables_and_transactions_get_their_topic() {
    let db = TestDb::create("kafka_route").await;
    db.execute("CREATE TABLE a (id int PRIMARY KEY)").await;
    db.execute("CREATE TABLE b (id int PRIMARY KEY)").await;
    let name = unique_name("route");
    let outflow = kafka_outflow(
        &db,
        &["public.a", "public.b"],
        &name,
        "topic = \"{name}-cdc-{table}\"\ntransaction_topic = true\ntombstones = false",
    );
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("BEGIN; INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (1); COMMIT").await;
    db.execute("DELETE FROM a WHERE id = 2").await;
    outflow.run_until_caught_up().await.assert_success();

    let a = records(&format!("{name}-cdc-a"));
    let ops: Vec<&str> = a.iter().map(|r| r["value"]["op"].as_str().expect("no tombstones")).collect();
    assert_eq!(ops, ["c", "c", "d"]);
    let b = records(&format!("{name}-cdc-b"));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["key"], json!({"id": 1}));
    let topics = reader(&["--list", &name]);
    assert!(
        !topics.as_array().unwrap().iter().any(|t| t.as_str().unwrap().contains(".public.")),
        "default topics used: {topics}"
    );

    let tx = records(&format!("{name}.transaction"));
    let statuses: Vec<&str> = tx.iter().map(|r| r["value"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["BEGIN", "END", "BEGIN", "END"]);
    assert_eq!(tx[0]["key"]["id"], tx[1]["value"]["id"]);
    assert_eq!(tx[1]["value"]["event_count"], 3);
    assert_eq!(
        tx[1]["value"]["data_collections"],
        json!([{"data_collection": "public.a", "event_count": 2}, {"data_collection": "public.b", "event_count": 1}])
    );
    assert_eq!(tx[3]["value"]["event_count"], 1);
    db.cleanup().await;
}

/// Ids of the created rows in `topic`, per partition in offset order.
fn created_ids_per_partition(topic: &str) -> BTreeMap<i64, Vec<i64>> {
    let mut out: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in records(topic) {
        if r["value"]["op"] == "c" {
            out.entry(r["partition"].as_i64().unwrap()).or_default().push(r["value"]["after"]["id"].as_i64().unwrap());
        }
    }
    out
}

/// Every id in `1..=n` exactly once, and in commit (= id) order within each partition.
#[track_caller]
pub(crate) fn assert_exactly_once(per_partition: &BTreeMap<i64, Vec<i64>>, n: i64) {
    let mut counts = BTreeMap::new();
    for ids in per_partition.values() {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of commit order within a partition");
        for id in ids {
            *counts.entry(*id).or_insert(0) += 1;
        }
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?} ({} in all)", &dups[..dups.len().min(20)], dups.len());
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
}

#[tokio::test]
async fn kill_9_during_a_busy_run_leaves_every_change_exactly_once_in_kafka() {
    let db = TestDb::create("kafka_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("kill9");
    let outflow = kafka_outflow(&db, &["public.t"], &name, "partitions = 4");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    // The state directory is only a cache: without the sink's offset file
    // the run replays from the slot and Kafka's own record skips the rest.
    std::fs::remove_file(outflow.state_dir().join("sinks/bus.json")).expect("removing the sink's offset file");
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&created_ids_per_partition(&format!("{name}.public.t")), written);
    db.cleanup().await;
}

/// The test broker's pid (tansu, from test-services.sh's pid file).
fn broker_pid() -> Result<libc::pid_t, String> {
    let pid_file = env_var("OUTFLOW_TEST_KAFKA_PID_FILE");
    let text = std::fs::read_to_string(&pid_file).map_err(|e| format!("reading {pid_file}: {e}"))?;
    text.trim().parse().map_err(|e| format!("{pid_file} holds no pid ({text:?}): {e}"))
}

/// Sends `signal` to the test broker.
pub(crate) fn signal_broker(signal: libc::c_int) {
    let pid = broker_pid().unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: kill(2) with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signalling the broker (pid {pid})");
}

/// Resumes the broker even if the test fails while it is stopped. Best
/// effort and never a panic: panicking again while a failing test unwinds
/// would abort the whole e2e binary.
pub(crate) struct ContinueBroker;

impl Drop for ContinueBroker {
    fn drop(&mut self) {
        match broker_pid() {
            // SAFETY: kill(2) with a valid signal number.
            Ok(pid) => unsafe {
                libc::kill(pid, libc::SIGCONT);
            },
            Err(e) => eprintln!("cannot resume the broker: {e}"),
        }
    }
}

#[tokio::test]
async fn a_frozen_broker_loses_nothing_and_holds_the_slot() {
    let db = TestDb::create("kafka_outage").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("outage");
    let outflow = kafka_outflow(&db, &["public.t"], &name, "partitions = 2");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let guard = ContinueBroker;
    slot_holds_while_down(&db, || signal_broker(libc::SIGSTOP)).await;
    drop(guard); // SIGCONT
    let last_lsn = db.query("SELECT pg_current_wal_lsn()::text").await[0].get::<_, String>(0);
    wait_for(Duration::from_secs(120), "the slot to pass the last insert after the broker returned", || async {
        let rows = db
            .query(&format!(
                "SELECT confirmed_flush_lsn >= '{last_lsn}'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{}'",
                db.name()
            ))
            .await;
        rows.first().is_some_and(|r| r.get::<_, bool>(0))
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert_exactly_once(&created_ids_per_partition(&format!("{name}.public.t")), 2000);
    db.cleanup().await;
}

#[tokio::test]
async fn a_record_larger_than_allowed_stops_with_the_setting_to_change() {
    let db = TestDb::create("kafka_too_large").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("large");
    let outflow = kafka_outflow(&db, &["public.t"], &name, "[sink.producer]\n\"message.max.bytes\" = 2000");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let before = confirmed_flush_lsn(&db).await;
    db.execute("INSERT INTO t VALUES (1, repeat('x', 5000))").await;
    let out = outflow.run_until_caught_up().await;
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{}", out.stderr));
    assert!(error.contains("message.max.bytes"), "error does not name the setting: {error}");
    assert_eq!(confirmed_flush_lsn(&db).await, before, "the slot moved past the failed record");
    db.cleanup().await;
}

/// Crashes after Kafka has the snapshot's chunks and the offsets topic says
/// so, before the offset file does (each run aborts at its first flush, so the
/// file never catches up): the next run must go on from the chunks the
/// offsets topic records, not read them again under new positions.
#[tokio::test]
async fn kafka_snapshot_goes_on_from_the_offsets_topic_after_crashes_before_the_offset_file() {
    let db = TestDb::create("kafka_snap_crash").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1500) g").await;
    let name = unique_name("snapcrash");
    let outflow = kafka_outflow(&db, &["public.t"], &name, "partitions = 2");
    let text = outflow.config_text();
    let outflow = outflow.raw_config(format!("{text}\n[snapshot]\nchunk_size = 20\n"));
    outflow.with_env("OUTFLOW_FAILPOINTS", "sink.after_flush=1");
    for _ in 0..3 {
        let out = outflow.run_until_caught_up().await;
        assert_ne!(out.code, Some(0), "the failpoint should abort the run: {}", out.stderr);
        db.wait_for_slot_idle().await;
    }
    outflow.with_env("OUTFLOW_FAILPOINTS", "");
    outflow.run_until_caught_up().await.assert_success();

    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for r in records(&format!("{name}.public.t")) {
        assert_eq!(r["value"]["op"], "r", "only snapshot reads: {r}");
        *counts.entry(r["value"]["after"]["id"].as_i64().unwrap()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "rows read twice (id, count): {:?}", &dups[..dups.len().min(20)]);
    assert_eq!(counts.len(), 1500, "every row read once");
    db.cleanup().await;
}

/// MariaDB → Kafka: Debezium's MySQL topics (`<name>.<database>.<table>`),
/// keys, envelopes with the binlog source block, tombstones; kill -9 during
/// a busy run leaves every change exactly once.
#[tokio::test]
async fn mariadb_changes_reach_kafka_as_debezium_mysql_records_exactly_once() {
    use crate::mysql_harness::{mysql_kill_9_while_writing, server_id, MyDb};

    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "kafka").await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, tag VARCHAR(20) NOT NULL, n BIGINT UNSIGNED)").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, payload VARCHAR(300))").await;
    let name = unique_name("maria");
    let (url, id) = (db.url(), server_id());
    let config = |tables: &str, dir: &Path| {
        format!(
            "name = {name:?}\n[source]\nkind = \"mysql\"\nurl = {:?}\ntables = [{tables}]\nserver_id = {}\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 3\n",
            url,
            id,
            dir.join("state"),
            brokers()
        )
    };
    let tables = format!("\"{0}.items\", \"{0}.t\"", db.name);
    let outflow = Outflow::raw(|dir| config(&tables, dir));
    outflow.run_until_caught_up().await.assert_success();

    db.exec("INSERT INTO items VALUES (1, 'one', 18446744073709551615), (2, 'two', 0), (3, 'three', 7)").await;
    db.exec("UPDATE items SET tag = 'TWO' WHERE id = 2").await;
    db.exec("DELETE FROM items WHERE id = 3").await;
    outflow.run_until_caught_up().await.assert_success();

    let topic = format!("{name}.{}.items", db.name);
    let recs = records(&topic);
    let mut per_key: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for r in &recs {
        per_key.entry(r["key"]["id"].as_i64().expect("key {\"id\": N}")).or_default().push(r);
    }
    let ops = |id: i64| -> Vec<&str> {
        per_key[&id].iter().map(|r| r["value"]["op"].as_str().unwrap_or("tombstone")).collect()
    };
    assert_eq!(ops(1), ["c"]);
    assert_eq!(ops(2), ["c", "u"]);
    assert_eq!(ops(3), ["c", "d", "tombstone"]);
    let create = &per_key[&1][0]["value"];
    assert_eq!(create["after"], json!({"id": 1, "tag": "one", "n": 18446744073709551615u64}));
    assert_eq!(create["source"]["connector"], "mysql");
    assert_eq!(create["source"]["db"], db.name.as_str());
    assert_eq!(create["source"]["table"], "items");
    assert!(create["source"]["file"].as_str().is_some_and(|f| f.starts_with("mysql-bin.")), "{create}");
    assert_eq!(per_key[&2][1]["value"]["before"]["tag"], "two");
    assert!(per_key[&1][0]["headers"]["outflow.position"].as_str().is_some(), "position header");

    // Kill -9 at random moments while a writer inserts: exactly once per id.
    let written = mysql_kill_9_while_writing(&mut db, &outflow).await;
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&created_ids_per_partition(&format!("{name}.{}.t", db.name)), written);
}
