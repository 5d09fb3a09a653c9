//! The RabbitMQ sink end to end: the real binary publishes to a
//! `rabbitmq-server` of this test binary's own ([`OwnRabbit`]: Debian's
//! 3.10 with the stream plugin, on free loopback ports with its own node
//! name and directories, one shared by the tests and stopped at exit, plus
//! one of its own for the test that freezes it), and independent readers —
//! rstream for streams, pika for a queue bound to the exchange, through
//! `tests/readers/rabbitmq_read.py` — read it back.
//!
//! Stream mode (exactly-once): PostgreSQL changes in order per key with
//! their properties; kill -9 during a busy writer, three rounds, then a
//! clean run with the sink's offset file gone → every row exactly once; the
//! broker frozen (SIGSTOP) for 20 s mid-run → the slot held, everything
//! delivered once it returns; MariaDB changes exactly once across kill -9.
//! Exchange mode (at-least-once): order per key, headers, persistent
//! messages with the position as `message_id`; kill -9 rounds → every row
//! at least once, duplicates counted and equal to their first copy. Both:
//! a missing stream or exchange with creation off,
//! a wrong password and a too-large record stop the run with one clean
//! line and nothing acknowledged past them; `outflow check` names the fix.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{env_var, kill_9_while_writing, wait_for, Outflow, TestDb};
use crate::kafka::unique_name;
use crate::outage::{confirmed_flush_lsn, slot_holds_while_down};
use crate::own_servers::Thaw;

/// A `rabbitmq-server` of the tests' own: AMQP and stream ports, the
/// server script and the Erlang VM's pid.
struct OwnRabbit {
    dir: PathBuf,
    amqp: u16,
    stream: u16,
    script: Child,
    beam: i32,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

impl OwnRabbit {
    /// Boots a node `outflow<port>@localhost` (it registers with the
    /// system's epmd and uses the user's Erlang cookie) and waits until both
    /// listeners accept.
    fn start() -> OwnRabbit {
        let dir = tempfile::Builder::new().prefix("outflow-rabbitmq-").tempdir().unwrap().keep();
        let (amqp, dist, stream) = (free_port(), free_port(), free_port());
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp}\nstream.listeners.tcp.1 = 127.0.0.1:{stream}\n\
                 loopback_users = none\nmax_message_size = 4194304\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_stream].\n").unwrap();
        let out = std::fs::File::create(dir.join("server.out")).unwrap();
        let script = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("RABBITMQ_NODENAME", format!("outflow{amqp}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", amqp.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting rabbitmq-server (apt-get install rabbitmq-server)");
        let mut server = OwnRabbit { dir, amqp, stream, script, beam: 0 };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let pid = std::fs::read_to_string(server.dir.join("pid")).ok().and_then(|p| p.trim().parse().ok());
            if let (Some(pid), true, true) = (pid, accepts(amqp), accepts(stream)) {
                server.beam = pid;
                return server;
            }
            if let Ok(Some(status)) = server.script.try_wait() {
                let out = std::fs::read_to_string(server.dir.join("server.out")).unwrap_or_default();
                panic!("rabbitmq-server exited ({status}) before it listened:\n{out}");
            }
            assert!(Instant::now() < deadline, "rabbitmq-server on port {amqp} did not start within 90 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server the tests share: started once per test binary, stopped
    /// when the binary exits.
    fn shared() -> &'static OwnRabbit {
        static SHARED: OnceLock<OwnRabbit> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(s) = SHARED.get() {
                s.stop();
            }
        }
        SHARED.get_or_init(|| {
            let server = OwnRabbit::start();
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    fn stop(&self) {
        unsafe {
            libc::kill(self.beam, libc::SIGKILL);
            libc::kill(self.script.id() as i32, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn url(&self, password: &str) -> String {
        format!("amqp://guest:{password}@127.0.0.1:{}/%2f", self.amqp)
    }

    fn reader(&self, args: &[&str]) -> Value {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/rabbitmq_read.py");
        let out =
            Command::new(env_var("OUTFLOW_TEST_PYTHON")).arg(&script).args(args).output().expect("running the reader");
        assert!(out.status.success(), "rabbitmq reader {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        if out.stdout.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
    }

    /// Every message of `stream`, in stream order (rstream).
    fn stream_messages(&self, stream: &str) -> Vec<Value> {
        let port = self.stream.to_string();
        let v = self.reader(&["stream", "127.0.0.1", &port, "guest", "guest", "/", stream]);
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    /// Declares `exchange` and a queue bound to it with `#` (pika).
    fn bind_queue(&self, exchange: &str, queue: &str) {
        self.reader(&["bind", &self.url("guest"), exchange, queue]);
    }

    /// Drains `queue` (pika): its messages in queue order.
    fn queue_messages(&self, queue: &str) -> Vec<Value> {
        let v = self.reader(&["queue", &self.url("guest"), queue]);
        v["messages"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = self.script.wait();
    }
}

fn stream_sink(rabbit: &OwnRabbit, password: &str, stream: &str) -> String {
    format!(
        "[[sink]]\nname = \"bus\"\nkind = \"rabbitmq\"\nurl = {:?}\nstream = {stream:?}\nstream_port = {}\n",
        rabbit.url(password),
        rabbit.stream
    )
}

fn exchange_sink(rabbit: &OwnRabbit, password: &str, exchange: &str) -> String {
    format!(
        "[[sink]]\nname = \"bus\"\nkind = \"rabbitmq\"\nurl = {:?}\nexchange = {exchange:?}\ncreate_exchange = false\n",
        rabbit.url(password)
    )
}

/// An outflow setup named `name` whose only sink is `sink`.
fn rabbit_outflow(db: &TestDb, tables: &[&str], name: &str, sink: &str) -> Outflow {
    let outflow = Outflow::new(db, tables).name(name);
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    outflow.raw_config(format!("{base}{sink}"))
}

/// Every id in `1..=n` exactly once among the creates, in commit order.
#[track_caller]
fn assert_exactly_once(messages: &[Value], n: i64) {
    let ids: Vec<i64> = messages.iter().filter(|m| m["op"] == "c").map(|m| m["key"]["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of commit order or repeated");
    let mut counts = BTreeMap::new();
    for id in &ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).map(|(id, c)| (*id, *c)).collect();
    let missing: Vec<_> = (1..=n).filter(|id| !counts.contains_key(id)).collect();
    assert!(dups.is_empty(), "duplicated ids (id, count): {:?} ({} in all)", &dups[..dups.len().min(20)], dups.len());
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
}

/// The ops of each key, in message order.
fn ops_per_key<'a>(messages: impl Iterator<Item = &'a Value>) -> BTreeMap<i64, Vec<String>> {
    let mut per_key: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for m in messages {
        let op = m["value"]["op"].as_str().unwrap().to_string();
        per_key.entry(m["key"]["id"].as_i64().expect("key {\"id\": N}")).or_default().push(op);
    }
    per_key
}

/// What the items scenario leaves per key: 10 creates, 5 updates, the key
/// change 3 → 100 (a delete of 3 and a create of 100 in Debezium's terms is
/// the PostgreSQL sink's business: here it is one update of key 100) and 3
/// deletes.
fn expected_items_ops(id: i64) -> Vec<&'static str> {
    match id {
        3 => vec!["c"],
        100 => vec!["u", "d"],
        id => match (id % 2 == 0, id % 5 == 0) {
            (true, true) => vec!["c", "u", "d"],
            (true, false) => vec!["c", "u"],
            (false, true) => vec!["c", "d"],
            (false, false) => vec!["c"],
        },
    }
}

async fn items_scenario(db: &TestDb) {
    db.execute("INSERT INTO items SELECT g, 'tag' || g, g FROM generate_series(1, 10) g").await;
    db.execute("UPDATE items SET qty = qty + 100 WHERE id % 2 = 0").await;
    db.execute("UPDATE items SET id = 100, tag = 'moved' WHERE id = 3").await;
    db.execute("DELETE FROM items WHERE id % 5 = 0").await;
}

#[tokio::test]
async fn stream_postgres_changes_arrive_in_order_per_key_with_their_properties() {
    let rabbit = OwnRabbit::shared();
    let db = TestDb::create("rmq_shape").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    let (name, stream) = (unique_name("shape"), unique_name("rmq_shape"));
    let outflow = rabbit_outflow(&db, &["public.items"], &name, &stream_sink(rabbit, "guest", &stream));
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    items_scenario(&db).await;
    outflow.run_until_caught_up().await.assert_success();

    let all = rabbit.stream_messages(&stream);
    assert_eq!(all.len(), 10 + 5 + 1 + 3, "messages: {all:#?}");
    for m in &all {
        assert_eq!(m["table"], "public.items", "{m}");
        assert_eq!(m["op"], m["value"]["op"], "the op property is the envelope's: {m}");
        assert_eq!(m["value"]["source"]["connector"], "postgresql");
        assert_eq!(m["value"]["source"]["name"], name.as_str());
    }
    let positions: Vec<String> = all.iter().map(|m| m["position"].as_str().unwrap().to_string()).collect();
    let parsed: Vec<(u64, u64)> = positions.iter().map(|p| pg_position(p)).collect();
    assert!(parsed.windows(2).all(|w| w[0] < w[1]), "positions increase: {positions:?}");
    let per_key = ops_per_key(all.iter());
    for (id, ops) in &per_key {
        assert_eq!(ops, &expected_items_ops(*id), "key {id}");
    }
    let first = all.iter().find(|m| m["key"]["id"] == 1).unwrap();
    assert_eq!(first["value"]["after"], json!({"id": 1, "tag": "tag1", "qty": 1}));
    let moved = all.iter().find(|m| m["key"]["id"] == 100).unwrap();
    assert_eq!(moved["value"]["before"]["id"], 3, "the key change carries the old key: {moved}");

    // A run with nothing new adds nothing.
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(rabbit.stream_messages(&stream).len(), all.len());
    db.cleanup().await;
}

/// `lsn:X/Y:N` → (lsn, N).
fn pg_position(position: &str) -> (u64, u64) {
    let mut parts = position.strip_prefix("lsn:").expect("a PostgreSQL position").split(':');
    let (hi, lo) = parts.next().unwrap().split_once('/').unwrap();
    let lsn = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    (lsn, parts.next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn stream_kill_9_during_a_busy_run_leaves_every_change_exactly_once() {
    let rabbit = OwnRabbit::shared();
    let db = TestDb::create("rmq_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let (name, stream) = (unique_name("kill9"), unique_name("rmq_kill9"));
    let outflow = rabbit_outflow(&db, &["public.t"], &name, &stream_sink(rabbit, "guest", &stream));
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    // The state directory is only a cache: without the sink's offset file
    // the run replays from the slot, and the broker's deduplication and the
    // stream's last message keep the replay out.
    std::fs::remove_file(outflow.state_dir().join("sinks/bus.json")).expect("removing the sink's offset file");
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once(&rabbit.stream_messages(&stream), written);
    db.cleanup().await;
}

#[tokio::test]
async fn stream_a_frozen_broker_holds_the_slot_and_everything_arrives_once_it_returns() {
    let rabbit = OwnRabbit::start();
    let db = TestDb::create("rmq_frozen").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let (name, stream) = (unique_name("frozen"), unique_name("rmq_frozen"));
    let outflow = rabbit_outflow(&db, &["public.t"], &name, &stream_sink(&rabbit, "guest", &stream));
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let thaw = Thaw(rabbit.beam as u32);
    slot_holds_while_down(&db, || unsafe {
        libc::kill(rabbit.beam, libc::SIGSTOP);
    })
    .await;
    drop(thaw); // SIGCONT
    wait_for(Duration::from_secs(120), "every row in the stream after the broker returned", || {
        let n = rabbit.stream_messages(&stream).len();
        async move { n >= 2000 }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert_exactly_once(&rabbit.stream_messages(&stream), 2000);
    db.cleanup().await;
}

#[tokio::test]
async fn exchange_changes_arrive_in_order_per_key_at_least_once_across_kill_9() {
    let rabbit = OwnRabbit::shared();
    let db = TestDb::create("rmq_exchange").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let (name, exchange, queue) = (unique_name("exch"), unique_name("cdc"), unique_name("q"));
    rabbit.bind_queue(&exchange, &queue);
    let sink = exchange_sink(rabbit, "guest", &exchange);
    let outflow = rabbit_outflow(&db, &["public.items", "public.t"], &name, &sink);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    items_scenario(&db).await;
    outflow.run_until_caught_up().await.assert_success();

    let items = rabbit.queue_messages(&queue);
    assert_eq!(items.len(), 10 + 5 + 1 + 3, "messages: {items:#?}");
    for m in &items {
        assert_eq!(m["routing_key"], "public.items", "{m}");
        assert_eq!(m["delivery_mode"], 2, "persistent: {m}");
        assert_eq!(m["content_type"], "application/json");
        assert_eq!(m["headers"]["table"], "public.items");
        assert_eq!(m["headers"]["op"], m["value"]["op"]);
        assert_eq!(m["message_id"], m["headers"]["position"], "the message id is the position: {m}");
        assert_eq!(
            m["headers"]["key"],
            json!({"id": m["value"]["after"]["id"].as_i64().or(m["value"]["before"]["id"].as_i64())})
        );
    }
    let keyed: Vec<Value> = items.iter().map(|m| json!({"key": m["headers"]["key"], "value": m["value"]})).collect();
    for (id, ops) in &ops_per_key(keyed.iter()) {
        assert_eq!(ops, &expected_items_ops(*id), "key {id}");
    }

    // kill -9 rounds: every row at least once; a duplicate is its first
    // copy again (same message id, same body).
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    outflow.run_until_caught_up().await.assert_success();
    let all = rabbit.queue_messages(&queue);
    let mut first: HashMap<String, &Value> = HashMap::new();
    let mut unique_ids: Vec<i64> = Vec::new();
    let mut duplicates = 0usize;
    for m in all.iter().filter(|m| m["headers"]["table"] == "public.t") {
        let id = m["message_id"].as_str().unwrap().to_string();
        match first.get(&id) {
            Some(f) => {
                duplicates += 1;
                let (a, b) = (change_of(&f["value"]), change_of(&m["value"]));
                let differ: Vec<String> = ["before", "after", "op"]
                    .iter()
                    .filter(|k| a[**k] != b[**k])
                    .map(|k| k.to_string())
                    .chain(
                        a["source"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .filter(|(k, v)| *k != "sequence" && b["source"][k.as_str()] != **v)
                            .map(|(k, v)| format!("source.{k}: {v} vs {}", b["source"][k.as_str()])),
                    )
                    .collect();
                assert!(differ.is_empty(), "a duplicate carries its first copy's change; differs: {differ:?}");
                assert_eq!(f["headers"], m["headers"]);
            }
            None => {
                unique_ids.push(m["headers"]["key"]["id"].as_i64().unwrap());
                first.insert(id, m);
            }
        }
    }
    eprintln!("exchange mode: {} messages for {written} rows, {duplicates} duplicates", first.len() + duplicates);
    assert!(unique_ids.windows(2).all(|w| w[0] < w[1]), "first copies in commit order");
    assert_eq!(unique_ids.len() as i64, written, "every row once among the first copies");
    assert_eq!(unique_ids.first(), Some(&1));
    db.cleanup().await;
}

/// An envelope without its top-level `ts_*` (when it was rendered, which
/// differs between a message and its resent copy; so does `source.sequence`,
/// which names the last LSN the run had seen before it, and is left out of
/// the comparison below).
fn change_of(value: &Value) -> Value {
    let mut v = value.clone();
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.starts_with("ts_"));
    }
    v
}

/// One error line naming the broker (password hidden), and the fix.
#[track_caller]
fn assert_one_error(out: &crate::harness::Outcome, contains: &str, hint: &str) {
    assert!(matches!(out.code, Some(c) if c != 0), "expected a failure: {}", out.stderr);
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("wrong-password"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    assert!(errors[0].contains(contains), "{}", out.stderr);
    assert!(out.stderr.contains(hint), "{}", out.stderr);
}

#[tokio::test]
async fn a_wrong_password_stops_with_one_clean_line_and_check_names_the_fix() {
    let rabbit = OwnRabbit::shared();
    let db = TestDb::create("rmq_auth").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let stream = unique_name("rmq_auth");
    for sink in [stream_sink(rabbit, "wrong-password", &stream), exchange_sink(rabbit, "wrong-password", "amq.topic")] {
        let outflow = rabbit_outflow(&db, &["public.t"], &unique_name("auth"), &sink);
        let out = outflow.run_until_caught_up().await;
        assert_one_error(
            &out,
            &format!("rabbitmq at amqp://guest:***@127.0.0.1:{}", rabbit.amqp),
            "hint: set the user and password in the sink's url",
        );
        assert!(out.stderr.contains("refused the credentials"), "{}", out.stderr);
        let check = outflow.exec(&["check"]).await;
        assert_eq!(check.code, Some(1), "{}\n{}", check.stdout, check.stderr);
        assert!(check.stdout.contains("✗ sink \"bus\": rabbitmq at"), "{}", check.stdout);
        assert!(check.stdout.contains("fix: set the user and password"), "{}", check.stdout);
    }
    // The right password: check passes in both modes.
    for sink in [stream_sink(rabbit, "guest", &stream), exchange_sink(rabbit, "guest", "amq.topic")] {
        let outflow = rabbit_outflow(&db, &["public.t"], &unique_name("auth"), &sink);
        let check = outflow.exec(&["check"]).await;
        assert!(check.stdout.contains("✓ sink \"bus\": rabbitmq at"), "{}\n{}", check.stdout, check.stderr);
    }
    db.cleanup().await;
}

/// A missing stream (found when the first row is written) or exchange
/// (found on connecting), with creation off, stops the run with the fix.
#[tokio::test]
async fn a_missing_stream_or_exchange_with_creation_off_stops_with_the_fix() {
    let rabbit = OwnRabbit::shared();
    let db = TestDb::create("rmq_missing").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    db.execute("INSERT INTO t VALUES (1)").await;
    let stream = format!("{}create_stream = false\n", stream_sink(rabbit, "guest", &unique_name("rmq_missing")));
    let exchange = exchange_sink(rabbit, "guest", &unique_name("no_such_exchange"));
    for (sink, error, hint) in [
        (stream, "the stream does not exist", "or set `create_stream = true`"),
        (exchange, "does not exist", "declare the exchange or set `create_exchange = true`"),
    ] {
        let outflow = rabbit_outflow(&db, &["public.t"], &unique_name("missing"), &sink);
        assert_one_error(&outflow.run_until_caught_up().await, error, hint);
    }
    db.cleanup().await;
}

/// A row too large for a stream frame (1 MiB) or for the broker's
/// `max_message_size` (4 MiB here) stops the run; what came before it is
/// delivered, nothing from it on, and the slot stays before it.
#[tokio::test]
async fn a_too_large_record_stops_the_run_and_nothing_past_it_is_acknowledged() {
    let rabbit = OwnRabbit::shared();
    let (exchange, queue) = (unique_name("cdc_big"), unique_name("q_big"));
    rabbit.bind_queue(&exchange, &queue);
    let stream = unique_name("rmq_big");
    let cases = [
        (
            stream_sink(rabbit, "guest", &stream),
            2_000_000,
            "more than a rabbitmq stream frame",
            "keep rows under 1 MiB",
        ),
        (
            exchange_sink(rabbit, "guest", &exchange),
            5_000_000,
            "refused a record as too large",
            "raise the broker's max_message_size",
        ),
    ];
    for (i, (sink, size, error, hint)) in cases.into_iter().enumerate() {
        let db = TestDb::create("rmq_big").await;
        db.execute("CREATE TABLE t (id int PRIMARY KEY, payload text)").await;
        let outflow = rabbit_outflow(&db, &["public.t"], &unique_name("big"), &sink);
        outflow.run_until_caught_up().await.assert_success();
        db.wait_for_slot_idle().await;
        db.execute("INSERT INTO t VALUES (1, 'small')").await;
        outflow.run_until_caught_up().await.assert_success();
        db.wait_for_slot_idle().await;
        let before = confirmed_flush_lsn(&db).await;
        // Random text does not compress: the row is `size` bytes in the record.
        db.execute(&format!(
            "INSERT INTO t SELECT 2, string_agg(md5(g::text), '') FROM generate_series(1, {}) g",
            size / 32
        ))
        .await;
        db.execute("INSERT INTO t VALUES (3, 'after')").await;
        let out = outflow.run_until_caught_up().await;
        assert_one_error(&out, error, hint);
        assert_eq!(confirmed_flush_lsn(&db).await, before, "the slot moved past the large row");
        let ids: Vec<i64> = if i == 0 {
            rabbit.stream_messages(&stream).iter().map(|m| m["key"]["id"].as_i64().unwrap()).collect()
        } else {
            rabbit.queue_messages(&queue).iter().map(|m| m["headers"]["key"]["id"].as_i64().unwrap()).collect()
        };
        assert_eq!(ids, [1], "only the row before the large one was delivered");
        db.cleanup().await;
    }
}

/// MariaDB → a RabbitMQ stream: changes with the binlog source block;
/// kill -9 during a busy run leaves every change exactly once (the IDs are
/// counted, and the stream's last message says where to go on).
#[tokio::test]
async fn mariadb_changes_reach_a_stream_exactly_once() {
    use crate::lifecycle::{mariadb_outflow, write_mariadb_items};
    use crate::mysql_harness::{mysql_kill_9_while_writing, MyDb};

    let rabbit = OwnRabbit::shared();
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "rmq").await;
    let (name, stream) = (unique_name("maria"), unique_name("rmq_maria"));
    let outflow = mariadb_outflow(&mut db, &name, &stream_sink(rabbit, "guest", &stream)).await;
    outflow.run_until_caught_up().await.assert_success();

    write_mariadb_items(&mut db).await;
    outflow.run_until_caught_up().await.assert_success();

    let items = rabbit.stream_messages(&stream);
    let ops: Vec<(i64, &str)> =
        items.iter().map(|m| (m["key"]["id"].as_i64().unwrap(), m["op"].as_str().unwrap())).collect();
    assert_eq!(ops, [(1, "c"), (2, "c"), (3, "c"), (2, "u"), (3, "d")]);
    assert_eq!(items[0]["value"]["after"], json!({"id": 1, "tag": "one"}));
    assert_eq!(items[0]["value"]["source"]["connector"], "mysql");
    assert_eq!(items[0]["table"], format!("{}.items", db.name));
    assert_eq!(items[3]["value"]["before"]["tag"], "two");

    let written = mysql_kill_9_while_writing(&mut db, &outflow).await;
    outflow.run_until_caught_up().await.assert_success();
    let t: Vec<Value> =
        rabbit.stream_messages(&stream).into_iter().filter(|m| m["table"] == format!("{}.t", db.name)).collect();
    assert_exactly_once(&t, written);
}
