//! The NATS JetStream sink end to end: the real binary writes into a
//! `nats-server -js` of the test's own ([`OwnNats`], on a free loopback port
//! with a temp store directory, stopped when dropped), and an independent
//! reader — nats-py through `tests/readers/nats_read.py` in the test venv —
//! reads the stream whole, headers included. Scenarios: PostgreSQL changes
//! (insert, update, a key change, delete) in order per key with their
//! headers, on a stream the sink created; kill -9 during a busy writer,
//! three rounds, then a clean run without the sink's offset file, on a
//! stream whose duplicate window is a fraction of a second (so only the
//! sink's tail read can keep replays out) → every row exactly once; the
//! server killed for 20 s mid-run and restarted on its store → the slot
//! held, everything exactly once after; the server frozen (SIGSTOP) for
//! 20 s → the same; a wrong password → one clean error
//! line, and `outflow check` names the fix; a missing stream with
//! `create_stream = false` → one clean line naming the fix; a record over
//! the server's `max_payload` → a clean error, nothing after it published
//! or acknowledged, and everything once after the limit is raised; MariaDB
//! changes, exactly once across kill -9.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{env_var, kill_9_while_writing, wait_for, Outcome, Outflow, TestDb};
use crate::kafka::unique_name;
use crate::lifecycle::{assert_lifecycle, write_lifecycle};
use crate::outage::{confirmed_flush_lsn, slot_holds_while_down};
use crate::own_servers::Thaw;

/// A `nats-server -js` of one test's own, with an optional config file
/// (auth users, `max_payload`). Stopped on drop.
struct OwnNats {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl OwnNats {
    fn start(config: &str) -> OwnNats {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Self::spawn(dir.path(), port, config);
        let server = OwnNats { dir, port, child };
        server.wait_ready();
        server
    }

    fn spawn(dir: &Path, port: u16, config: &str) -> Child {
        // Debian installs it in /usr/sbin, which is not on every PATH.
        let bin = if Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" };
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(dir.join("store"))
            .arg("-l")
            .arg(dir.join("nats.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !config.is_empty() {
            std::fs::write(dir.join("nats.conf"), config).unwrap();
            cmd.arg("-c").arg(dir.join("nats.conf"));
        }
        cmd.spawn().expect("starting nats-server (is the nats-server package installed?)")
    }

    /// Waits until the server greets a client with its INFO line.
    fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"INFO" {
                    return;
                }
            }
            assert!(std::time::Instant::now() < deadline, "nats-server on port {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and store (after `kill`),
    /// with `config` (empty: none).
    fn restart(&mut self, config: &str) {
        self.kill();
        self.child = Self::spawn(self.dir.path(), self.port, config);
        self.wait_ready();
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the reader script with `args`; its stdout.
fn reader(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/nats_read.py");
    let out = Command::new(env_var("OUTFLOW_TEST_PYTHON"))
        .arg(&script)
        .args(args)
        .env("OUTFLOW_TEST_TLS_CA", crate::harness::pg_ca_path()) // for tls:// urls
        .output()
        .expect("running the nats reader");
    assert!(out.status.success(), "nats reader {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every message of `stream`, in stream order, read by nats-py.
fn messages(url: &str, stream: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&reader(&["read", url, stream])).expect("reader prints JSON");
    v["messages"].as_array().cloned().unwrap_or_default()
}

fn count(url: &str, stream: &str) -> u64 {
    reader(&["count", url, stream]).trim().parse().expect("a count")
}

/// The sink's section: `[[sink]] kind = "nats"` named `bus`, plus `extra`.
fn sink_toml(url: &str, extra: &str) -> String {
    format!("[[sink]]\nname = \"bus\"\nkind = \"nats\"\nurl = {url:?}\n{extra}")
}

/// An outflow setup named `name` whose only sink is the NATS sink.
fn nats_outflow(db: &TestDb, tables: &[&str], name: &str, url: &str, extra: &str) -> Outflow {
    let outflow = Outflow::new(db, tables).name(name);
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    outflow.raw_config(format!("{base}{}", sink_toml(url, extra)))
}

/// The one `error: ` line of a failed run (log lines come before it).
#[track_caller]
fn error_line(out: &Outcome) -> &str {
    assert!(matches!(out.code, Some(c) if c != 0), "expected a failure: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    errors[0]
}

/// `lsn:X/Y:N` → `(lsn, N)`, ordered like the positions.
fn pg_position(position: &str) -> (u64, u64) {
    let mut parts = position.strip_prefix("lsn:").expect("a PostgreSQL position").split(':');
    let (hi, lo) = parts.next().unwrap().split_once('/').unwrap();
    let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    (lsn, parts.next().unwrap().parse().unwrap())
}

/// Every id in `1..=n` exactly once among the creates, in id (= commit)
/// order, each message id once.
#[track_caller]
fn assert_exactly_once(messages: &[Value], n: i64) {
    let ids: Vec<i64> = messages.iter().filter(|m| m["op"] == "c").map(|m| m["key"]["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of commit order");
    let mut counts = BTreeMap::new();
    for id in &ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?} ({} in all)", &dups[..dups.len().min(20)], dups.len());
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
    let mut msg_ids: Vec<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    msg_ids.sort_unstable();
    assert!(msg_ids.windows(2).all(|w| w[0] != w[1]), "a Nats-Msg-Id appears twice");
}

#[tokio::test]
async fn postgres_changes_arrive_in_order_per_key_with_their_headers() {
    let nats = OwnNats::start("");
    let db = TestDb::create("nats_shape").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    let name = unique_name("shape");
    let outflow = nats_outflow(&db, &["public.items"], &name, &nats.url(), "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    write_lifecycle(&db).await;
    outflow.run_until_caught_up().await.assert_success();

    let all = messages(&nats.url(), "OUTFLOW");
    for m in &all {
        assert_eq!(m["subject"], format!("{name}.public.items"), "{m}");
        assert_eq!(m["table"], "public.items", "{m}");
        assert_eq!(m["op"], m["value"]["op"], "the op header is the envelope's: {m}");
        assert_eq!(m["value"]["source"]["connector"], "postgresql");
        assert_eq!(m["value"]["source"]["name"], name.as_str());
        let position = m["position"].as_str().unwrap();
        assert_eq!(m["id"], format!("{name}:bus:{position}"), "the message id is the position: {m}");
        let row = if m["op"] == "d" { &m["value"]["before"] } else { &m["value"]["after"] };
        assert_eq!(m["key"]["id"], row["id"], "the key header is the row's: {m}");
    }
    let positions: Vec<_> = all.iter().map(|m| pg_position(m["position"].as_str().unwrap())).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "stream order is source order");
    assert_lifecycle(&all.iter().map(|m| &m["value"]).collect::<Vec<_>>());

    // A run with nothing new adds nothing.
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(count(&nats.url(), "OUTFLOW"), all.len() as u64);
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_during_a_busy_run_leaves_every_change_exactly_once_past_the_duplicate_window() {
    let nats = OwnNats::start("");
    let db = TestDb::create("nats_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("kill9");
    // A duplicate window of 100 ms (the least JetStream takes):
    // JetStream's deduplication cannot drop a replay, only the sink's tail
    // read can.
    reader(&["create", &nats.url(), "CDC", &format!("{name}.>"), "0.1"]);
    let outflow = nats_outflow(&db, &["public.t"], &name, &nats.url(), "stream = \"CDC\"\ncreate_stream = false\n");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    // The state directory is only a cache: without the sink's offset file
    // the run replays from the slot, and the subject's last message says
    // where the stream is.
    std::fs::remove_file(outflow.state_dir().join("sinks/bus.json")).expect("removing the sink's offset file");
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("already holds this subject's changes up to this position"), "{}", out.stderr);
    assert_exactly_once(&messages(&nats.url(), "CDC"), written);
    db.cleanup().await;
}

#[tokio::test]
async fn a_server_down_for_20_s_holds_the_slot_and_everything_arrives_once_it_returns() {
    let mut nats = OwnNats::start("");
    let db = TestDb::create("nats_down").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("down");
    let outflow = nats_outflow(&db, &["public.t"], &name, &nats.url(), "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    slot_holds_while_down(&db, || nats.kill()).await;
    // Back on the same store directory.
    nats.restart("");
    wait_for(Duration::from_secs(120), "every row in the stream after nats returned", || {
        let n = count(&nats.url(), "OUTFLOW");
        async move { n >= 2000 }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("retrying"), "the lost connection was retried:\n{}", out.stderr);
    assert_exactly_once(&messages(&nats.url(), "OUTFLOW"), 2000);
    db.cleanup().await;
}

/// A frozen server (SIGSTOP) keeps its connections open and answers
/// nothing: acks time out, outflow gives the connection up and reconnects
/// once the server thaws, while the old connection's buffered publishes
/// are still being stored.
#[tokio::test]
async fn a_frozen_server_holds_the_slot_and_everything_arrives_once_it_thaws() {
    let nats = OwnNats::start("");
    let db = TestDb::create("nats_frozen").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("frozen");
    let outflow = nats_outflow(&db, &["public.t"], &name, &nats.url(), "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let pid = nats.child.id();
    let thaw = Thaw(pid);
    slot_holds_while_down(&db, || unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGSTOP);
    })
    .await;
    drop(thaw); // SIGCONT
    wait_for(Duration::from_secs(120), "every row in the stream after nats thawed", || {
        let n = count(&nats.url(), "OUTFLOW");
        async move { n >= 2000 }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("retrying"), "the missing acks were noticed:\n{}", out.stderr);
    assert_exactly_once(&messages(&nats.url(), "OUTFLOW"), 2000);
    db.cleanup().await;
}

#[tokio::test]
async fn a_wrong_password_stops_with_one_clean_line_and_check_names_the_fix() {
    let nats = OwnNats::start("authorization { user: outflow, password: right-password }\n");
    let db = TestDb::create("nats_auth").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let wrong = format!("nats://outflow:wrong-password@127.0.0.1:{}", nats.port);
    let outflow = nats_outflow(&db, &["public.t"], &unique_name("auth"), &wrong, "");
    let out = outflow.run_until_caught_up().await;
    let first = error_line(&out);
    assert!(!out.stderr.contains("wrong-password"), "{}", out.stderr);
    assert!(first.contains("nats at nats://outflow:***@127.0.0.1") && first.contains("refused the sink's credentials"));
    assert!(out.stderr.contains("hint: set the user and password"), "{}", out.stderr);

    let check = outflow.exec(&["check"]).await;
    assert_eq!(check.code, Some(1), "{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("✗ sink \"bus\": nats at"), "{}", check.stdout);
    assert!(check.stdout.contains("fix: set the user and password"), "{}", check.stdout);

    // The right password, as keys: check passes, the stream will be created.
    let keys = "user = \"outflow\"\npassword = \"right-password\"\n";
    let outflow = nats_outflow(&db, &["public.t"], &unique_name("auth"), &nats.url(), keys);
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✓ sink \"bus\": nats at"), "{}\n{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains("✓ sink \"bus\": stream \"OUTFLOW\" is missing and will be created"),
        "{}",
        check.stdout
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_missing_stream_without_create_stream_stops_with_one_clean_line() {
    let nats = OwnNats::start("");
    let db = TestDb::create("nats_nostream").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = nats_outflow(&db, &["public.t"], &unique_name("nostream"), &nats.url(), "create_stream = false\n");
    let out = outflow.run_until_caught_up().await;
    let first = error_line(&out);
    assert!(first.contains("has no stream \"OUTFLOW\""), "{}", out.stderr);
    assert!(out.stderr.contains("hint: create it (nats stream add OUTFLOW --subjects"), "{}", out.stderr);
    assert!(out.stderr.contains("or set `create_stream = true`"), "{}", out.stderr);
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✗ sink \"bus\": stream \"OUTFLOW\" does not exist"), "{}", check.stdout);
    assert_eq!(count(&nats.url(), "OUTFLOW"), 0);
    db.cleanup().await;
}

#[tokio::test]
async fn a_record_over_max_payload_stops_cleanly_and_nothing_after_it_is_acknowledged() {
    let mut nats = OwnNats::start("max_payload: 8192\n");
    let db = TestDb::create("nats_big").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("big");
    let outflow = nats_outflow(&db, &["public.t"], &name, &nats.url(), "");
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    db.execute("INSERT INTO t SELECT g, 'small' FROM generate_series(1, 5) g").await;
    let before_big = db.query("SELECT pg_current_wal_lsn()::text").await[0].get::<_, String>(0);
    db.execute("INSERT INTO t VALUES (6, repeat('x', 20000))").await;
    db.execute("INSERT INTO t SELECT g, 'small' FROM generate_series(7, 10) g").await;
    let out = outflow.run_until_caught_up().await;
    let first = error_line(&out);
    assert!(
        first.contains("the change to public.t at lsn:")
            && first.contains("over the server's max_payload of 8192 bytes"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("raise max_payload in the nats-server config"), "{}", out.stderr);
    // Nothing after the big row was published; the slot did not pass it.
    let stored = messages(&nats.url(), "OUTFLOW");
    let ids: Vec<i64> = stored.iter().map(|m| m["key"]["id"].as_i64().unwrap()).collect();
    assert!(ids.iter().all(|id| *id <= 5), "nothing after the big row: {ids:?}");
    let held = confirmed_flush_lsn(&db).await;
    let sql = format!("SELECT '{held}'::pg_lsn <= '{before_big}'::pg_lsn");
    assert!(db.query(&sql).await[0].get::<_, bool>(0), "the slot passed the big row: {held} > {before_big}");

    // With a larger limit everything arrives, each row once.
    nats.restart("max_payload: 1048576\n");
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&messages(&nats.url(), "OUTFLOW"), 10);
    db.cleanup().await;
}

/// MariaDB → NATS: changes with the binlog source block; kill -9 during a
/// busy run leaves every change exactly once.
#[tokio::test]
async fn mariadb_changes_reach_nats_exactly_once() {
    use crate::lifecycle::{mariadb_outflow, write_mariadb_items};
    use crate::mysql_harness::{mysql_kill_9_while_writing, MyDb};

    let nats = OwnNats::start("");
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "nats").await;
    let name = unique_name("maria");
    let outflow = mariadb_outflow(&mut db, &name, &sink_toml(&nats.url(), "")).await;
    outflow.run_until_caught_up().await.assert_success();

    write_mariadb_items(&mut db).await;
    outflow.run_until_caught_up().await.assert_success();

    let items: Vec<Value> = messages(&nats.url(), "OUTFLOW")
        .into_iter()
        .filter(|m| m["subject"] == format!("{name}.{}.items", db.name))
        .collect();
    let ops: Vec<(i64, &str)> =
        items.iter().map(|m| (m["key"]["id"].as_i64().unwrap(), m["op"].as_str().unwrap())).collect();
    assert_eq!(ops, [(1, "c"), (2, "c"), (3, "c"), (2, "u"), (3, "d")]);
    let create = &items[0]["value"];
    assert_eq!(create["after"], json!({"id": 1, "tag": "one"}));
    assert_eq!(create["source"]["connector"], "mysql");
    assert_eq!(items[0]["table"], format!("{}.items", db.name));
    for m in &items {
        let position = m["position"].as_str().unwrap();
        assert!(position.starts_with("gtid:") || position.starts_with("file:"), "{m}");
        assert_eq!(m["id"], format!("{name}:bus:{position}"));
    }
    assert_eq!(items[3]["value"]["before"]["tag"], "two");

    // Kill -9 at random moments while a writer inserts: exactly once per id.
    let written = mysql_kill_9_while_writing(&mut db, &outflow).await;
    outflow.run_until_caught_up().await.assert_success();
    let t: Vec<Value> = messages(&nats.url(), "OUTFLOW")
        .into_iter()
        .filter(|m| m["subject"] == format!("{name}.{}.t", db.name))
        .collect();
    assert_exactly_once(&t, written);
}

/// `tls://` with `tls_ca_file`: the changes arrive over TLS verified
/// against the test CA (the server requires TLS); a certificate from another
/// CA, or one that does not name the host, is one TLS error with the fix.
#[tokio::test]
async fn nats_tls_with_the_servers_ca() {
    let ca = crate::harness::pg_ca_path();
    let dir = Path::new(&ca).parent().unwrap().to_path_buf();
    let config =
        format!("tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n", dir.join("server.crt"), dir.join("server.key"));
    let nats = OwnNats::start(&config);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let db = TestDb::create("nats_tls").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    let name = unique_name("tls");
    let with_ca = |url: &str, ca_file: &str| {
        nats_outflow(&db, &["public.items"], &name, url, &format!("tls_ca_file = {ca_file:?}\n"))
    };
    let outflow = with_ca(&url, &ca);
    outflow.run_until_caught_up().await.assert_success();
    write_lifecycle(&db).await;
    outflow.run_until_caught_up().await.assert_success();
    let all = messages(&url, "OUTFLOW");
    assert_lifecycle(&all.iter().map(|m| &m["value"]).collect::<Vec<_>>());

    let refused =
        [with_ca(&url, &env_var("OUTFLOW_TEST_MYSQL_CA")), with_ca(&format!("tls://localhost:{}", nats.port), &ca)];
    for outflow in refused {
        db.execute("INSERT INTO items VALUES (1000, 'x', 1) ON CONFLICT (id) DO UPDATE SET qty = items.qty + 1").await;
        let out = outflow.run_until_caught_up().await;
        let error = error_line(&out);
        assert!(error.contains("TLS"), "{}", out.stderr);
        assert!(out.stderr.contains("tls_ca_file"), "the hint names the setting: {}", out.stderr);
    }
    db.cleanup().await;
}
