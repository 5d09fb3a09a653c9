//! The Redis Streams sink end to end: the real binary writes into a
//! `redis-server` of the test's own ([`OwnRedis`], on a free loopback port
//! with a temp directory, stopped when dropped), and an independent reader —
//! redis-py through `tests/readers/redis_read.py` in the test venv — reads
//! each stream whole. Scenarios: PostgreSQL changes (insert, update, a key
//! change, delete) in order per key with their fields and position-derived
//! IDs; kill -9 during a busy writer, three rounds, then a clean run (and a
//! lost state directory) → every row exactly once; MariaDB changes, also
//! exactly once across kill -9; outflow's connection dropped again and
//! again mid-run → reconnected, nothing lost or doubled; the server frozen
//! (SIGSTOP) for 20 s mid-run → the slot held, everything delivered once it
//! returns; a wrong password → one clean error line,
//! and `outflow check` names the fix; a change larger than the server's
//! `proto-max-bulk-len` → one clean error line, nothing acknowledged past
//! it, delivered once the limit is raised.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{env_var, kill_9_while_writing, wait_for, write_rows, Outflow, TestDb, SHORT};
use crate::kafka::unique_name;
use crate::lifecycle::{assert_lifecycle, write_lifecycle};
use crate::outage::slot_holds_while_down;
use crate::own_servers::Thaw;

/// A `redis-server` of one test's own. Stopped on drop.
struct OwnRedis {
    _dir: tempfile::TempDir,
    port: u16,
    password: Option<String>,
    child: Child,
}

impl OwnRedis {
    fn start(password: Option<&str>) -> OwnRedis {
        OwnRedis::start_with(password, &[])
    }

    /// A server with more command-line settings (e.g. `--proto-max-bulk-len 1mb`).
    fn start_with(password: Option<&str>, settings: &[&str]) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        cmd.args(settings);
        let child = cmd.spawn().expect("starting redis-server (is it installed?)");
        let server = OwnRedis { _dir: dir, port, password: password.map(str::to_string), child };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !server.answers() {
            assert!(std::time::Instant::now() < deadline, "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Whether the server answers PING (or asks for a password).
    fn answers(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 64];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
    }

    /// Sends one command (no password) and returns the reply's first line.
    fn command(&self, args: &[&str]) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connecting to redis");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("writing to redis");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).expect("reading from redis");
        String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
    }

    fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every entry of `stream`, in stream order, read by redis-py.
fn entries(url: &str, stream: &str) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/redis_read.py");
    let out = Command::new(env_var("OUTFLOW_TEST_PYTHON"))
        .arg(&script)
        .arg(url)
        .arg(stream)
        .output()
        .expect("running the redis reader");
    assert!(out.status.success(), "redis reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("reader prints JSON");
    v["streams"][stream].as_array().cloned().unwrap_or_default()
}

/// The sink's section: `[[sink]] kind = "redis"` named `bus`.
fn sink_toml(url: &str) -> String {
    format!("[[sink]]\nname = \"bus\"\nkind = \"redis\"\nurl = {url:?}\n")
}

/// An outflow setup named `name` whose only sink is the Redis sink.
fn redis_outflow(db: &TestDb, tables: &[&str], name: &str, url: &str) -> Outflow {
    let outflow = Outflow::new(db, tables).name(name);
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    outflow.raw_config(format!("{base}{}", sink_toml(url)))
}

/// `(ms, seq)` of an entry ID.
fn id_of(e: &Value) -> (u64, u64) {
    let (ms, seq) = e["id"].as_str().unwrap().split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// Every id in `1..=n` exactly once among the creates, in id (= commit) order.
#[track_caller]
fn assert_exactly_once(entries: &[Value], n: i64) {
    assert!(entries.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])), "entry IDs do not increase");
    let ids: Vec<i64> = entries.iter().filter(|e| e["op"] == "c").map(|e| e["key"]["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of commit order");
    let mut counts = BTreeMap::new();
    for id in &ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?} ({} in all)", &dups[..dups.len().min(20)], dups.len());
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
}

/// `lsn:X/Y:N` → the entry ID outflow derives from it: `<lsn>-<N>`.
fn pg_id(position: &str) -> (u64, u64) {
    let mut parts = position.strip_prefix("lsn:").expect("a PostgreSQL position").split(':');
    let (hi, lo) = parts.next().unwrap().split_once('/').unwrap();
    let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    (lsn, parts.next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn postgres_changes_arrive_in_order_per_key_with_their_fields() {
    let redis = OwnRedis::start(None);
    let db = TestDb::create("redis_shape").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    let name = unique_name("shape");
    let outflow = redis_outflow(&db, &["public.items"], &name, &redis.url());
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    write_lifecycle(&db).await;
    outflow.run_until_caught_up().await.assert_success();

    let all = entries(&redis.url(), &format!("{name}.public.items"));
    for e in &all {
        assert_eq!(e["table"], "public.items", "{e}");
        assert_eq!(e["op"], e["value"]["op"], "the op field is the envelope's: {e}");
        assert_eq!(e["value"]["source"]["connector"], "postgresql");
        assert_eq!(e["value"]["source"]["name"], name.as_str());
        assert_eq!(id_of(e), pg_id(e["position"].as_str().unwrap()), "the ID is the position: {e}");
        let row = if e["op"] == "d" { &e["value"]["before"] } else { &e["value"]["after"] };
        assert_eq!(e["key"]["id"], row["id"], "the key is the row's: {e}");
    }
    assert!(all.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])));
    assert_lifecycle(&all.iter().map(|e| &e["value"]).collect::<Vec<_>>());

    // A run with nothing new adds nothing.
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(entries(&redis.url(), &format!("{name}.public.items")).len(), all.len());
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_during_a_busy_run_leaves_every_change_exactly_once_in_redis() {
    let redis = OwnRedis::start(None);
    let db = TestDb::create("redis_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("kill9");
    let outflow = redis_outflow(&db, &["public.t"], &name, &redis.url());
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    // The state directory is only a cache: without the sink's offset file
    // the run replays from the slot, and the stream's IDs refuse the rest.
    std::fs::remove_file(outflow.state_dir().join("sinks/bus.json")).expect("removing the sink's offset file");
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&entries(&redis.url(), &format!("{name}.public.t")), written);
    db.cleanup().await;
}

#[tokio::test]
async fn dropped_connections_are_reopened_and_nothing_is_written_twice() {
    let redis = OwnRedis::start(None);
    let db = TestDb::create("redis_drop").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("drop");
    let outflow = redis_outflow(&db, &["public.t"], &name, &redis.url());
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let mut killed = 0;
    let killer = async {
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // outflow's connection is the only other client.
            let reply = redis.command(&["CLIENT", "KILL", "TYPE", "normal"]);
            killed += reply.trim_start_matches(':').parse::<i64>().unwrap_or(0);
        }
    };
    tokio::join!(write_rows(&db, 1, 5000), killer);
    assert!(killed > 0, "no connection of outflow's was dropped");
    let stream = format!("{name}.public.t");
    wait_for(SHORT, "every row in the stream", || {
        let len = redis.command(&["XLEN", &stream]);
        async move { len == ":5000" }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("retrying"), "the dropped connection was retried:\n{}", out.stderr);
    assert_exactly_once(&entries(&redis.url(), &stream), 5000);
    db.cleanup().await;
}

#[tokio::test]
async fn a_frozen_server_holds_the_slot_and_everything_arrives_once_it_returns() {
    let redis = OwnRedis::start(None);
    let db = TestDb::create("redis_frozen").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("frozen");
    let outflow = redis_outflow(&db, &["public.t"], &name, &redis.url());
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let pid = redis.child.id();
    let thaw = Thaw(pid);
    slot_holds_while_down(&db, || unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGSTOP);
    })
    .await;
    drop(thaw); // SIGCONT
    let stream = format!("{name}.public.t");
    wait_for(Duration::from_secs(120), "every row in the stream after redis returned", || {
        let len = redis.command(&["XLEN", &stream]);
        async move { len == ":2000" }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert_exactly_once(&entries(&redis.url(), &stream), 2000);
    db.cleanup().await;
}

/// MariaDB → Redis: changes with the binlog source block and counted IDs;
/// kill -9 during a busy run leaves every change exactly once.
#[tokio::test]
async fn mariadb_changes_reach_redis_exactly_once() {
    use crate::lifecycle::{mariadb_outflow, write_mariadb_items};
    use crate::mysql_harness::{mysql_kill_9_while_writing, MyDb};

    let redis = OwnRedis::start(None);
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "redis").await;
    let name = unique_name("maria");
    let outflow = mariadb_outflow(&mut db, &name, &sink_toml(&redis.url())).await;
    outflow.run_until_caught_up().await.assert_success();

    write_mariadb_items(&mut db).await;
    outflow.run_until_caught_up().await.assert_success();

    let items = entries(&redis.url(), &format!("{name}.{}.items", db.name));
    let ops: Vec<(i64, &str)> =
        items.iter().map(|e| (e["key"]["id"].as_i64().unwrap(), e["op"].as_str().unwrap())).collect();
    assert_eq!(ops, [(1, "c"), (2, "c"), (3, "c"), (2, "u"), (3, "d")]);
    let ids: Vec<&str> = items.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1-0", "2-0", "3-0", "4-0", "5-0"], "MySQL entries are counted");
    let create = &items[0]["value"];
    assert_eq!(create["after"], json!({"id": 1, "tag": "one"}));
    assert_eq!(create["source"]["connector"], "mysql");
    assert_eq!(items[0]["table"], format!("{}.items", db.name));
    assert!(items.iter().all(|e| e["position"].as_str().is_some_and(|p| !p.is_empty())));
    assert_eq!(items[3]["value"]["before"]["tag"], "two");

    // Kill -9 at random moments while a writer inserts: exactly once per id.
    let written = mysql_kill_9_while_writing(&mut db, &outflow).await;
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&entries(&redis.url(), &format!("{name}.{}.t", db.name)), written);
}

#[tokio::test]
async fn a_wrong_password_stops_with_one_clean_line_and_check_names_the_fix() {
    let redis = OwnRedis::start(Some("right-password"));
    let db = TestDb::create("redis_auth").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let wrong = format!("redis://:wrong-password@127.0.0.1:{}/0", redis.port);
    let outflow = redis_outflow(&db, &["public.t"], &unique_name("auth"), &wrong);
    let out = outflow.run_until_caught_up().await;
    assert!(matches!(out.code, Some(c) if c != 0), "expected a failure: {}", out.stderr);
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("wrong-password"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert!(errors[0].contains("redis at redis://:***@127.0.0.1") && errors[0].contains("refused the credentials"));
    assert!(out.stderr.contains("hint: set the user and password in the sink's url"), "{}", out.stderr);

    let check = outflow.exec(&["check"]).await;
    assert_eq!(check.code, Some(1), "{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("✗ sink \"bus\": redis at"), "{}", check.stdout);
    assert!(check.stdout.contains("fix: set the user and password"), "{}", check.stdout);

    // The right password: check passes.
    let outflow = redis_outflow(&db, &["public.t"], &unique_name("auth"), &redis.url());
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✓ sink \"bus\": redis at"), "{}\n{}", check.stdout, check.stderr);
    db.cleanup().await;
}

#[tokio::test]
async fn a_change_over_the_servers_bulk_limit_stops_the_run_until_the_limit_is_raised() {
    let redis = OwnRedis::start_with(None, &["--proto-max-bulk-len", "1mb"]);
    let db = TestDb::create("redis_too_large").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, body text)").await;
    let name = unique_name("large");
    let outflow = redis_outflow(&db, &["public.t"], &name, &redis.url());
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let before = crate::outage::confirmed_flush_lsn(&db).await;

    // A small change, then one of 2 MB (in one transaction each).
    db.execute("INSERT INTO t VALUES (1, 'small')").await;
    db.execute("INSERT INTO t SELECT 2, string_agg(md5(g::text), '') FROM generate_series(1, 65536) g").await;
    let out = outflow.run_until_caught_up().await;
    assert!(matches!(out.code, Some(c) if c != 0), "expected a failure: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert!(
        errors[0].contains("public.t") && errors[0].contains("proto-max-bulk-len of 1048576 bytes"),
        "{}",
        errors[0]
    );
    assert!(out.stderr.contains("hint: raise proto-max-bulk-len"), "{}", out.stderr);
    // The slot is not past the large change (at most past the small one).
    let stream = format!("{name}.public.t");
    let held = crate::outage::confirmed_flush_lsn(&db).await;
    let current = db.query("SELECT pg_current_wal_lsn()::text").await[0].get::<_, String>(0);
    assert_ne!(held, current, "the slot moved past the refused change (was {before})");
    let len = redis.command(&["XLEN", &stream]);
    assert!(matches!(len.as_str(), ":0" | ":1"), "only the small change may be there: {len}");

    // Raise the limit: the next run delivers the large change, and the small one once.
    assert_eq!(redis.command(&["CONFIG", "SET", "proto-max-bulk-len", "8mb"]), "+OK");
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&entries(&redis.url(), &stream), 2);
    db.cleanup().await;
}

/// `rediss://` with `tls_ca_file`: the changes arrive over TLS verified
/// against the test CA; a server certificate from another CA, or one that
/// does not name the host, stops the run with one TLS error (not an
/// endless retry).
#[tokio::test]
async fn redis_tls_with_the_servers_ca() {
    let ca = crate::harness::pg_ca_path();
    let dir = std::path::Path::new(&ca).parent().unwrap().to_path_buf();
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let redis = OwnRedis::start_with(
        None,
        &[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ],
    );
    let db = TestDb::create("redis_tls").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    let name = unique_name("tls");
    let with = |url: String, ca_file: &str| {
        let outflow = Outflow::new(&db, &["public.items"]).name(&name);
        let text = outflow.config_text();
        let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
        outflow.raw_config(format!("{base}{}tls_ca_file = {ca_file:?}\n", sink_toml(&url)))
    };
    let outflow = with(format!("rediss://127.0.0.1:{tls_port}/0"), &ca);
    outflow.run_until_caught_up().await.assert_success();
    write_lifecycle(&db).await;
    outflow.run_until_caught_up().await.assert_success();
    let all = entries(&redis.url(), &format!("{name}.public.items"));
    assert_lifecycle(&all.iter().map(|e| &e["value"]).collect::<Vec<_>>());

    let refused = [
        with(format!("rediss://127.0.0.1:{tls_port}/0"), &env_var("OUTFLOW_TEST_MYSQL_CA")),
        with(format!("rediss://localhost:{tls_port}/0"), &ca),
    ];
    for outflow in refused {
        db.execute("INSERT INTO items VALUES (1000, 'x', 1) ON CONFLICT (id) DO UPDATE SET qty = items.qty + 1").await;
        let out = outflow.run_until_caught_up().await;
        out.assert_clean_error();
        assert!(out.stderr.contains("TLS handshake failed") && out.stderr.contains("tls_ca_file"), "{}", out.stderr);
    }
    db.cleanup().await;
}
