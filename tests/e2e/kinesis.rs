//! The Kinesis sink end to end: the real binary writes into a moto server of
//! the test's own ([`OwnMoto`], on a free loopback port, stopped when
//! dropped), and an independent reader — boto3 through
//! `tests/readers/kinesis_read.py` in the test venv — reads every shard from
//! TRIM_HORIZON. Scenarios: PostgreSQL changes (insert, update, a key
//! change, delete) in order per key with their partition keys and data, on
//! two shards; kill -9 during a busy writer, three rounds, then a clean run
//! with the state's checkpoint lost → every row exactly once; MariaDB
//! changes, also exactly once across kill -9; a PutRecords reply lost after
//! Kinesis took the call (failpoint `kinesis.lost_reply`) → the records
//! are found in the stream, not sent twice; the server frozen (SIGSTOP)
//! for 20 s mid-run → the slot held, everything delivered once it returns;
//! no credentials at all, a missing stream with `create_stream = false` and
//! a record over 1 MiB →
//! one clean error line each, nothing acknowledged past them, and `outflow
//! check` names the fix. (moto checks no credentials, so a missing stream
//! stands in for the refusals a real Kinesis gives.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::write_rows;
use crate::harness::{env_var, kill_9_while_writing, wait_for, Outflow, TestDb, SHORT};
use crate::kafka::unique_name;
use crate::lifecycle::{assert_lifecycle, write_lifecycle, LIFECYCLE_CHANGES};
use crate::outage::confirmed_flush_lsn;
use crate::own_servers::Thaw;

const STREAM: &str = "outflow-cdc";

/// A moto server (Kinesis API) of one test's own. Stopped on drop.
struct OwnMoto {
    child: Child,
    endpoint: String,
}

impl OwnMoto {
    /// Starts moto on a free port; tries another port when a server of
    /// another test took the same one first (its pid is not the listener).
    async fn start() -> OwnMoto {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut child = Command::new(env_var("OUTFLOW_TEST_PYTHON"))
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting moto (pip package moto[server], installed by scripts/python-env.sh)");
            let deadline = std::time::Instant::now() + SHORT;
            let mine = loop {
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break listener_pid(port).is_none_or(|pid| pid == child.id());
                }
                assert!(std::time::Instant::now() < deadline, "moto did not listen on port {port}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if mine {
                return OwnMoto { child, endpoint: format!("http://127.0.0.1:{port}") };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto could not get a port of its own in 5 tries");
    }
}

/// The pid listening on `port` (`ss`), None when `ss` cannot tell.
fn listener_pid(port: u16) -> Option<u32> {
    let out = Command::new("ss").args(["-ltnpH", &format!("sport = :{port}")]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("pid=")? + 4;
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGCONT) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every record of the stream, shard by shard in sequence order.
fn records(endpoint: &str, stream: &str) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/kinesis_read.py");
    let out = Command::new(env_var("OUTFLOW_TEST_PYTHON"))
        .arg(&script)
        .arg(endpoint)
        .arg(stream)
        .output()
        .expect("running the kinesis reader");
    assert!(out.status.success(), "kinesis reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("reader prints JSON");
    v["records"].as_array().cloned().unwrap_or_default()
}

/// The sink's section: `[[sink]] kind = "kinesis"` named `bus`.
fn sink_toml(endpoint: &str, extra: &str) -> String {
    format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kinesis\"\nstream = {STREAM:?}\nregion = \"us-east-1\"\n\
         endpoint = {endpoint:?}\n{extra}"
    )
}

/// Test credentials for moto, and no instance-metadata lookups.
fn with_credentials(outflow: Outflow) -> Outflow {
    outflow.with_env("AWS_ACCESS_KEY_ID", "test");
    outflow.with_env("AWS_SECRET_ACCESS_KEY", "test");
    outflow.with_env("AWS_EC2_METADATA_DISABLED", "true");
    outflow
}

/// An outflow setup named `name` whose only sink is the Kinesis sink.
fn kinesis_outflow(db: &TestDb, tables: &[&str], name: &str, endpoint: &str, extra: &str) -> Outflow {
    let outflow = Outflow::new(db, tables).name(name);
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    with_credentials(outflow.raw_config(format!("{base}{}", sink_toml(endpoint, extra))))
}

/// Every id in `1..=n` exactly once among the creates, in id (= commit)
/// order within each shard.
#[track_caller]
fn assert_exactly_once(records: &[Value], n: i64) {
    let mut per_shard: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for r in records.iter().filter(|r| r["data"]["op"] == "c") {
        let id = r["key"]["id"].as_i64().expect("key {\"id\": N}");
        per_shard.entry(r["shard"].as_str().unwrap()).or_default().push(id);
        *counts.entry(id).or_insert(0) += 1;
    }
    for (shard, ids) in &per_shard {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of commit order in {shard}");
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?} ({} in all)", &dups[..dups.len().min(20)], dups.len());
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
}

#[tokio::test]
async fn postgres_changes_arrive_in_order_per_key_with_their_partition_keys() {
    let moto = OwnMoto::start().await;
    let db = TestDb::create("kinesis_shape").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    db.execute("CREATE TABLE nokey (v text)").await;
    let name = unique_name("shape");
    let outflow = kinesis_outflow(&db, &["public.items", "public.nokey"], &name, &moto.endpoint, "shards = 2\n");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    write_lifecycle(&db).await;
    db.execute("INSERT INTO nokey VALUES ('a'), ('b')").await;
    outflow.run_until_caught_up().await.assert_success();

    let all = records(&moto.endpoint, STREAM);
    assert_eq!(all.len(), LIFECYCLE_CHANGES + 2, "records (and 2 keyless rows): {all:#?}");
    let shards: std::collections::BTreeSet<&str> = all.iter().map(|r| r["shard"].as_str().unwrap()).collect();
    assert_eq!(shards.len(), 2, "the keys spread over both shards");
    let mut per_key: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for r in &all {
        let data = &r["data"];
        assert_eq!(data["source"]["connector"], "postgresql", "{r}");
        assert_eq!(data["source"]["name"], name.as_str());
        if data["source"]["table"] == "nokey" {
            assert_eq!(r["pk"], "public.nokey", "a keyless table's partition key is its name: {r}");
            continue;
        }
        assert_eq!(data["source"]["table"], "items");
        let id = r["key"]["id"].as_i64().expect("partition key {\"id\": N}");
        assert_eq!(r["pk"], format!("{{\"id\":{id}}}"));
        per_key.entry(id).or_default().push(r);
    }
    for (id, rs) in &per_key {
        assert!(rs.iter().all(|r| r["shard"] == rs[0]["shard"]), "one key, one shard: {id}");
        let lsns: Vec<u64> = rs.iter().map(|r| r["data"]["source"]["lsn"].as_u64().unwrap()).collect();
        assert!(lsns.windows(2).all(|w| w[0] < w[1]), "key {id}: source positions in order");
    }
    // Shard by shard: each key's records in order, as the lifecycle wants.
    assert_lifecycle(&all.iter().map(|r| &r["data"]).filter(|d| d["source"]["table"] == "items").collect::<Vec<_>>());

    // A run with nothing new adds nothing.
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(records(&moto.endpoint, STREAM).len(), all.len());
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_during_a_busy_run_leaves_every_change_exactly_once_in_kinesis() {
    let moto = OwnMoto::start().await;
    let db = TestDb::create("kinesis_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("kill9");
    let outflow = kinesis_outflow(&db, &["public.t"], &name, &moto.endpoint, "shards = 2\n");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    // Without the sink's offset file (and its checkpoint) the run replays
    // from the slot and the sink reads the whole stream to skip what is there.
    std::fs::remove_file(outflow.state_dir().join("sinks/bus.json")).expect("removing the sink's offset file");
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    assert_exactly_once(&records(&moto.endpoint, STREAM), written);
    db.cleanup().await;
}

#[tokio::test]
async fn a_lost_reply_is_looked_up_in_the_stream_and_nothing_is_written_twice() {
    let moto = OwnMoto::start().await;
    let db = TestDb::create("kinesis_lost").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("lost");
    let outflow = kinesis_outflow(&db, &["public.t"], &name, &moto.endpoint, "shards = 2\nbatch_records = 100\n");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    write_rows(&db, 1, 1000).await;
    // The 3rd PutRecords call lands, but its reply is dropped: the sink must
    // find its records in the stream rather than send them again.
    outflow.with_env("OUTFLOW_FAILPOINTS", "kinesis.lost_reply=3");
    let out = outflow.run_until_caught_up().await;
    outflow.with_env("OUTFLOW_FAILPOINTS", "");
    out.assert_success();
    let line = out.stderr.lines().find(|l| l.contains("records of the unanswered call")).unwrap_or_else(|| {
        panic!("no lookup after the lost reply:\n{}", out.stderr);
    });
    let field = |name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    assert!(field("landed") > 0 && field("landed") == field("of"), "every record of the lost call was found: {line}");
    assert_exactly_once(&records(&moto.endpoint, STREAM), 1000);
    db.cleanup().await;
}

/// `0/16B3748` → 0x16B3748.
fn lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// Like `outage::slot_holds_while_down` (rows 1-500, stop, rows 501-2000,
/// 20 s of watching the slot), but returns the furthest position the slot
/// reached while the destination was down instead of requiring that it did
/// not move at all: a caught-up pipeline rightly confirms keepalive
/// positions that other databases of the shared cluster move on, up to the
/// first transaction it has not delivered. The caller checks that bound.
async fn slot_while_down(db: &TestDb, stop: impl FnOnce()) -> u64 {
    write_rows(db, 1, 500).await;
    let before = confirmed_flush_lsn(db).await;
    wait_for(SHORT, "the first rows to be acknowledged", || async { confirmed_flush_lsn(db).await != before }).await;
    stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    write_rows(db, 501, 1500).await;
    let mut furthest = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        furthest = furthest.max(lsn(&confirmed_flush_lsn(db).await));
    }
    furthest
}

#[tokio::test]
async fn a_frozen_endpoint_holds_the_slot_and_everything_arrives_once_it_returns() {
    let moto = OwnMoto::start().await;
    let db = TestDb::create("kinesis_frozen").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("frozen");
    // The flat format: `_position` carries each change's commit LSN.
    let outflow = kinesis_outflow(&db, &["public.t"], &name, &moto.endpoint, "format = \"json\"\n");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let pid = moto.child.id();
    let thaw = Thaw(pid);
    let furthest = slot_while_down(&db, || unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGSTOP);
    })
    .await;
    drop(thaw); // SIGCONT
    let endpoint = moto.endpoint.clone();
    wait_for(Duration::from_secs(180), "every row in the stream after moto returned", || {
        let n = records(&endpoint, STREAM).len();
        async move { n >= 2000 }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    let all: Vec<Value> = records(&moto.endpoint, STREAM)
        .into_iter()
        .map(|mut r| {
            r["data"]["op"] = r["data"]["_op"].clone();
            r
        })
        .collect();
    assert_exactly_once(&all, 2000);
    // The slot stayed before the first transaction written while moto was frozen.
    let first_down = all
        .iter()
        .filter(|r| r["key"]["id"].as_i64().unwrap() > 500)
        .map(|r| {
            let p = r["data"]["_position"].as_str().unwrap().strip_prefix("lsn:").unwrap();
            lsn(p.split(':').next().unwrap())
        })
        .min()
        .unwrap();
    assert!(
        furthest < first_down,
        "the slot reached {furthest:X} while moto was frozen, past the commit at {first_down:X} it did not have"
    );
    db.cleanup().await;
}

/// MariaDB → Kinesis: changes with the binlog source block; kill -9
/// during a busy run leaves every change exactly once.
#[tokio::test]
async fn mariadb_changes_reach_kinesis_exactly_once() {
    use crate::lifecycle::{mariadb_outflow, write_mariadb_items};
    use crate::mysql_harness::{mysql_kill_9_while_writing, MyDb};

    let moto = OwnMoto::start().await;
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "kinesis").await;
    let name = unique_name("maria");
    let outflow =
        with_credentials(mariadb_outflow(&mut db, &name, &sink_toml(&moto.endpoint, "format = \"json\"\n")).await);
    outflow.run_until_caught_up().await.assert_success();

    write_mariadb_items(&mut db).await;
    outflow.run_until_caught_up().await.assert_success();

    let items: Vec<Value> = records(&moto.endpoint, STREAM)
        .into_iter()
        .filter(|r| r["data"]["_table"] == format!("{}.items", db.name))
        .collect();
    let mut ops: Vec<(i64, String)> =
        items.iter().map(|r| (r["key"]["id"].as_i64().unwrap(), r["data"]["_op"].as_str().unwrap().into())).collect();
    ops.sort_by_key(|(id, _)| *id); // stable: per key in stream order
    let want: Vec<(i64, String)> =
        [(1, "c"), (2, "c"), (2, "u"), (3, "c"), (3, "d")].iter().map(|(i, o)| (*i, o.to_string())).collect();
    assert_eq!(ops, want);
    assert!(items.iter().all(|r| r["data"]["_position"].as_str().is_some_and(|p| !p.is_empty())));
    let two: Vec<&Value> = items.iter().filter(|r| r["key"]["id"] == 2).collect();
    assert_eq!(two[1]["data"]["tag"], "TWO");

    // Kill -9 at random moments while a writer inserts: exactly once per id.
    let written = mysql_kill_9_while_writing(&mut db, &outflow).await;
    outflow.run_until_caught_up().await.assert_success();
    let t: Vec<Value> = records(&moto.endpoint, STREAM)
        .into_iter()
        .filter(|r| r["data"]["_table"] == format!("{}.t", db.name))
        .map(|mut r| {
            // The flat format's op, where the envelope has its own.
            r["data"]["op"] = r["data"]["_op"].clone();
            r
        })
        .collect();
    assert_exactly_once(&t, written);
}

/// The run failed with exactly one `error: ` line, no panic; returns it.
#[track_caller]
fn error_line(out: &crate::harness::Outcome) -> String {
    assert!(matches!(out.code, Some(c) if c != 0), "expected a failure: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    errors[0].to_string()
}

#[tokio::test]
async fn a_missing_stream_and_a_too_large_record_stop_with_one_clean_line() {
    let moto = OwnMoto::start().await;
    let db = TestDb::create("kinesis_errors").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;

    // create_stream = false and no stream: one error line and its fix; check says the same.
    let outflow =
        kinesis_outflow(&db, &["public.t"], &unique_name("missing"), &moto.endpoint, "create_stream = false\n");
    let out = outflow.run_until_caught_up().await;
    let error = error_line(&out);
    assert!(error.contains("kinesis stream \"outflow-cdc\" does not exist"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: create it"), "{}", out.stderr);
    let check = outflow.exec(&["check"]).await;
    assert_eq!(check.code, Some(1), "{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("✗ sink \"bus\": kinesis stream"), "{}", check.stdout);
    assert!(check.stdout.contains("set `create_stream = true`"), "{}", check.stdout);

    // No credentials anywhere (no keys, no profile, no instance metadata): one clean line.
    outflow.with_env("AWS_ACCESS_KEY_ID", "");
    outflow.with_env("HOME", "/nonexistent");
    let out = outflow.run_until_caught_up().await;
    let error = error_line(&out);
    assert!(error.contains("no AWS credentials for kinesis"), "{}", out.stderr);
    assert!(out.stderr.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{}", out.stderr);

    // The default creates it; check passes.
    let outflow = kinesis_outflow(&db, &["public.t"], &unique_name("big"), &moto.endpoint, "");
    outflow.run_until_caught_up().await.assert_success();
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✓ sink \"bus\": kinesis stream"), "{}\n{}", check.stdout, check.stderr);
    db.wait_for_slot_idle().await;

    // Rows 1-5, a row over 1 MiB, row 7: the run stops at the big row.
    db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 5) g").await;
    let before_big_row = db.query("SELECT pg_current_wal_lsn()::text").await[0].get::<_, String>(0);
    db.execute("INSERT INTO t VALUES (6, repeat('y', 1100000))").await;
    db.execute("INSERT INTO t VALUES (7, 'z')").await;
    for _ in 0..2 {
        let out = outflow.run_until_caught_up().await;
        let error = error_line(&out);
        assert!(error.contains("the change to public.t at lsn:"), "{}", out.stderr);
        assert!(error.contains("at most 1048576 bytes"), "{}", out.stderr);
        assert!(out.stderr.contains("hint: leave the large columns out"), "{}", out.stderr);
    }
    let ids: Vec<i64> = records(&moto.endpoint, STREAM).iter().map(|r| r["key"]["id"].as_i64().unwrap()).collect();
    assert!(!ids.contains(&6) && !ids.contains(&7), "nothing past the big row was written: {ids:?}");
    let held = confirmed_flush_lsn(&db).await;
    assert!(lsn(&held) <= lsn(&before_big_row), "the slot ({held}) stayed before the big row ({before_big_row})");
    db.cleanup().await;
}
