//! The HTTP webhook sink end to end: the real binary POSTs to a receiver of
//! the test's own ([`OwnReceiver`]: `tests/readers/http_receiver.py` in the
//! test venv, on a free loopback port, stopped when dropped), which checks
//! every request's HMAC signature itself and records each request (status
//! answered, idempotency key, headers, body). Scenarios: PostgreSQL changes
//! in order per key, in batches (Debezium envelope) and one per request
//! (`mode = "single"`, flat JSON), signed, with the configured and
//! position headers; kill -9 during a busy writer, three rounds, then a
//! clean run → every row at least once, and every duplicate re-sent in a
//! request whose key was seen before with the same events, or (the batch a
//! flush closed when the crash came before its offset was stored) in a
//! request that starts where an earlier one started and holds its events
//! first; the receiver answering 503 for 20 s → the slot held, everything
//! delivered after; a 400 and a 413 → one clean error line with the status
//! and body, nothing acknowledged past the batch, delivered once the
//! receiver takes it; connections dropped without an answer and answers
//! slower than the timeout → retried until taken; HTTPS with `ca_file`
//! (and an untrusted certificate: a clean error); MariaDB changes in
//! order, at least once across kill -9.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{env_var, kill_9_while_writing, wait_for, write_rows, Outflow, TestDb};
use crate::kafka::unique_name;
use crate::lifecycle::{assert_lifecycle, write_lifecycle};
use crate::outage::{confirmed_flush_lsn, slot_holds_while_down};

const SECRET: &str = "webhook-test-secret";
const SECRET_ENV: &str = "OUTFLOW_TEST_WEBHOOK_SECRET";

/// A webhook receiver of one test's own. Stopped on drop.
struct OwnReceiver {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl OwnReceiver {
    fn start() -> OwnReceiver {
        OwnReceiver::start_with(&[])
    }

    /// Starts the receiver with extra arguments (`--tls CERT KEY`).
    fn start_with(args: &[&Path]) -> OwnReceiver {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/http_receiver.py");
        let mut cmd = Command::new(env_var("OUTFLOW_TEST_PYTHON"));
        cmd.arg(&script).arg(dir.path()).args(["--secret", SECRET]).args(args);
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn().expect("starting the http receiver");
        let port_file = dir.path().join("port");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|s| s.trim().parse().ok()) {
                break p;
            }
            assert!(std::time::Instant::now() < deadline, "the http receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        OwnReceiver { dir, port, child }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Changes the receiver's answers (see the script's doc); `{}` resets.
    fn control(&self, control: Value) {
        let tmp = self.dir.path().join("control.json.tmp");
        std::fs::write(&tmp, control.to_string()).unwrap();
        std::fs::rename(tmp, self.dir.path().join("control.json")).unwrap();
    }

    /// Every request so far, in arrival order (a partial last line skipped).
    fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The requests to `path` the receiver took (2xx), checking each one's
    /// signature and headers against its body.
    fn delivered(&self, path: &str) -> Vec<Value> {
        let took: Vec<Value> = self
            .requests()
            .into_iter()
            .filter(|r| r["path"] == path && r["status"] == 200 && r["count"] != 0)
            .collect();
        for r in &took {
            assert_eq!(r["sig_ok"], true, "the signature does not match the body: {r}");
            let h = &r["headers"];
            assert_eq!(
                r["key"],
                format!("{}..{}", str_of(&h["x-outflow-first-position"]), str_of(&h["x-outflow-last-position"]))
            );
            let n = r["body"].as_array().map_or(1, Vec::len);
            assert_eq!(r["count"], n, "X-Outflow-Count is the number of records: {r}");
        }
        took
    }
}

impl Drop for OwnReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The sink's section: `[[sink]] kind = "http"` named `name`.
fn sink_toml(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[sink]]\nname = {name:?}\nkind = \"http\"\nurl = {url:?}\nsecret = \"${{{SECRET_ENV}}}\"\n\
         max_backoff = \"1s\"\nheaders = {{ \"X-Test\" = \"yes\" }}\n{extra}\n"
    )
}

/// An outflow setup named `name` whose sinks are `sinks` (TOML).
fn http_outflow(db: &TestDb, tables: &[&str], name: &str, sinks: &str) -> Outflow {
    let outflow = Outflow::new(db, tables).name(name);
    let text = outflow.config_text();
    let base = &text[..text.find("[[sink]]").expect("generated config has a sink")];
    let outflow = outflow.raw_config(format!("{base}{sinks}"));
    outflow.with_env(SECRET_ENV, SECRET);
    outflow
}

/// The records of `requests`, in order.
fn records(requests: &[Value]) -> Vec<&Value> {
    requests.iter().flat_map(|r| r["body"].as_array().expect("a batch body is an array")).collect()
}

/// Checks the at-least-once delivery of rows `1..=n` of `table` (flat
/// `json` records, `id` column) over `requests` (arrival order) and returns how
/// many records were duplicates. Each request's records are in id (=
/// commit) order and its key spans their positions. A record seen before
/// must come in a request whose key was seen before, holding the same
/// records, or in one that starts where an earlier one started and holds
/// that one's records first (see the module doc of `sinks/src/http`).
#[track_caller]
fn assert_at_least_once(requests: &[Value], table: &str, n: i64) -> usize {
    let mut seen_ids: HashMap<i64, usize> = HashMap::new();
    let mut by_key: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut by_first: HashMap<&str, Vec<i64>> = HashMap::new();
    let (mut dups, mut same_key, mut same_start) = (0, 0, 0);
    for r in requests {
        let body = r["body"].as_array().unwrap();
        let ids: Vec<i64> = body
            .iter()
            .filter(|e| e["_table"] == table)
            .map(|e| e["id"].as_i64().expect("flat record with id"))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "records out of commit order in {}", r["key"]);
        let key = str_of(&r["key"]);
        assert_eq!(key, format!("{}..{}", str_of(&body[0]["_position"]), str_of(&body[body.len() - 1]["_position"])));
        let first = str_of(&r["headers"]["x-outflow-first-position"]);
        let repeated = ids.iter().filter(|id| seen_ids.contains_key(id)).count();
        if repeated > 0 {
            dups += repeated;
            if let Some(earlier) = by_key.get(key) {
                assert_eq!(earlier, &ids, "request {key} re-sent with other records");
                same_key += 1;
            } else if let Some(earlier) = by_first.get(first) {
                assert!(ids.starts_with(earlier), "request {key} starts like an earlier one but does not extend it");
                assert!(ids[earlier.len()..].iter().all(|id| !seen_ids.contains_key(id)), "{key}: more duplicates");
                same_start += 1;
            } else {
                panic!("request {key} re-sends {repeated} records under a key and first position never seen");
            }
        }
        for id in &ids {
            *seen_ids.entry(*id).or_default() += 1;
        }
        by_key.insert(key, ids.clone());
        by_first.entry(first).or_insert(ids);
    }
    let missing: Vec<i64> = (1..=n).filter(|id| !seen_ids.contains_key(id)).collect();
    assert!(missing.is_empty(), "missing ids: {:?} ({} in all)", &missing[..missing.len().min(20)], missing.len());
    eprintln!(
        "http: {n} rows, {dups} duplicates, in {same_key} requests re-sent with their key and {same_start} \
         extending an earlier request from its first position"
    );
    dups
}

/// The distinct ids of table `t` the receiver took on `path`.
fn distinct_ids(receiver: &OwnReceiver, path: &str) -> usize {
    let reqs = receiver.delivered(path);
    let ids: std::collections::HashSet<i64> = records(&reqs).iter().filter_map(|e| e["id"].as_i64()).collect();
    ids.len()
}

#[tokio::test]
async fn postgres_changes_arrive_signed_in_order_in_batches_and_one_per_request() {
    let receiver = OwnReceiver::start();
    let db = TestDb::create("http_shape").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, tag text NOT NULL, qty int)").await;
    let name = unique_name("shape");
    let sinks = format!(
        "{}{}{}",
        sink_toml("hook", &receiver.url("/cdc"), "batch_size = 4"),
        sink_toml("one", &receiver.url("/single"), "mode = \"single\"\nformat = \"json\""),
        sink_toml("small", &receiver.url("/small"), "max_batch_bytes = 1500"),
    );
    let outflow = http_outflow(&db, &["public.items"], &name, &sinks);
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✓ sink \"hook\": the receiver at"), "{}\n{}", check.stdout, check.stderr);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    write_lifecycle(&db).await;
    outflow.run_until_caught_up().await.assert_success();

    // Batches: arrays of Debezium envelopes, at most batch_size each.
    let batches = receiver.delivered("/cdc");
    let all = records(&batches);
    assert!(batches.iter().all(|r| r["count"].as_u64().unwrap() <= 4), "batch_size = 4 holds");
    for r in &batches {
        let h = &r["headers"];
        assert_eq!(h["x-test"], "yes", "the configured header: {h}");
        assert_eq!(h["x-outflow-pipeline"], name.as_str());
        assert_eq!(h["content-type"], "application/json");
        assert!(str_of(&h["x-outflow-signature"]).starts_with("sha256="));
        assert!(str_of(&r["key"]).starts_with("lsn:"), "{}", r["key"]);
    }
    for e in &all {
        assert_eq!(e["source"]["connector"], "postgresql");
        assert_eq!(e["source"]["name"], name.as_str());
    }
    assert_lifecycle(&all);

    // One per request: the flat record itself, with table, op, key and position headers.
    let singles = receiver.delivered("/single");
    assert_eq!(singles.len(), all.len());
    for r in &singles {
        let (h, body) = (&r["headers"], &r["body"]);
        assert!(body.is_object(), "one record per request: {body}");
        assert_eq!(h["x-outflow-table"], "public.items");
        assert_eq!(h["x-outflow-op"], body["_op"]);
        assert_eq!(h["x-outflow-first-position"], body["_position"]);
        assert_eq!(r["key"], format!("{0}..{0}", str_of(&body["_position"])));
        let key: Value = serde_json::from_str(str_of(&h["x-outflow-key"])).unwrap();
        assert_eq!(key["id"], body["id"], "{h}");
    }
    let ops: Vec<&str> = singles.iter().map(|r| r["body"]["_op"].as_str().unwrap()).collect();
    let batch_ops: Vec<&str> = all.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(ops, batch_ops, "both sinks see the same changes in the same order");

    // max_batch_bytes: bodies stay under it, the records are the same.
    let small = receiver.delivered("/small");
    for r in &small {
        let length: usize = str_of(&r["headers"]["content-length"]).parse().unwrap();
        assert!(length <= 1500 || r["count"] == 1, "a body of {length} bytes with {} records", r["count"]);
    }
    assert!(small.len() > batches.len(), "smaller bodies, more requests");
    let small_ops: Vec<&str> = records(&small).iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(small_ops, batch_ops);

    // A run with nothing new sends nothing.
    let before = receiver.requests().len();
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(receiver.requests().len(), before);
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_during_a_busy_run_delivers_every_change_with_duplicates_under_known_keys() {
    let receiver = OwnReceiver::start();
    let db = TestDb::create("http_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("kill9");
    let sinks = sink_toml("hook", &receiver.url("/cdc"), "format = \"json\"\nbatch_size = 100");
    let outflow = http_outflow(&db, &["public.t"], &name, &sinks);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 3000, 200..1500).await;
    outflow.run_until_caught_up().await.assert_success();
    assert_at_least_once(&receiver.delivered("/cdc"), "public.t", written);
    db.cleanup().await;
}

/// A crash right after a flush's batch was taken, before its offset was
/// stored (the failpoint `sink.after_flush`): the replay's first request
/// starts at that batch's first position and holds it whole.
#[tokio::test]
async fn a_crash_between_a_flush_and_its_offset_replays_from_the_same_first_position() {
    let receiver = OwnReceiver::start();
    let db = TestDb::create("http_afterflush").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("afterflush");
    let sinks = sink_toml("hook", &receiver.url("/cdc"), "format = \"json\"\nbatch_size = 100");
    let outflow = http_outflow(&db, &["public.t"], &name, &sinks);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    write_rows(&db, 1, 30).await;
    outflow.with_env("OUTFLOW_FAILPOINTS", "sink.after_flush=1");
    let out = outflow.run_until_caught_up().await;
    assert_ne!(out.code, Some(0), "the failpoint stops the run: {}", out.stderr);
    outflow.with_env("OUTFLOW_FAILPOINTS", "");
    let crashed = records(&receiver.delivered("/cdc")).len();
    assert!(crashed > 0, "the crashed run's flush sent its batch before the failpoint");
    write_rows(&db, 31, 30).await;
    outflow.run_until_caught_up().await.assert_success();
    let delivered = receiver.delivered("/cdc");
    let dups = assert_at_least_once(&delivered, "public.t", 60);
    assert_eq!(dups, crashed, "the rows of the crashed flush come again, and only those");
    db.cleanup().await;
}

#[tokio::test]
async fn a_receiver_answering_503_holds_the_slot_and_everything_arrives_after() {
    let receiver = OwnReceiver::start();
    let db = TestDb::create("http_down").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("down");
    let sinks = sink_toml("hook", &receiver.url("/cdc"), "format = \"json\"");
    let outflow = http_outflow(&db, &["public.t"], &name, &sinks);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    slot_holds_while_down(&db, || {
        receiver.control(json!({"status": 503, "body": "down for maintenance", "retry_after": "1"}));
    })
    .await;
    let refused = receiver.requests().iter().filter(|r| r["status"] == 503).count();
    assert!(refused > 5, "the batch was retried while the receiver answered 503 ({refused} times)");
    receiver.control(json!({}));
    wait_for(Duration::from_secs(120), "every row delivered after the receiver returned", || {
        let n = distinct_ids(&receiver, "/cdc");
        async move { n == 2000 }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("retrying") && out.stderr.contains("503"), "{}", out.stderr);
    assert_at_least_once(&receiver.delivered("/cdc"), "public.t", 2000);
    db.cleanup().await;
}

/// The one `error: ` line of a failed run (after whatever it logged).
#[track_caller]
fn error_line(out: &crate::harness::Outcome) -> String {
    assert!(matches!(out.code, Some(c) if c != 0), "expected a failure: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.stderr);
    // The error line and its fix (`hint: …` on the next line).
    let hint = out.stderr.lines().find_map(|l| l.strip_prefix("hint: ")).unwrap_or_default();
    format!("{}; {hint}", errors[0])
}

#[tokio::test]
async fn dropped_connections_and_timeouts_are_retried_until_the_receiver_takes_the_batch() {
    let receiver = OwnReceiver::start();
    let db = TestDb::create("http_flaky").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("flaky");
    let sinks = sink_toml("hook", &receiver.url("/cdc"), "format = \"json\"\ntimeout = \"1s\"");
    let outflow = http_outflow(&db, &["public.t"], &name, &sinks);
    outflow.run_until_caught_up().await.assert_success();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();

    // Connections closed without an answer for 3 s.
    receiver.control(json!({"drop": true, "until": now() + 3.0}));
    write_rows(&db, 1, 200).await;
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("retrying"), "{}", out.stderr);
    assert!(receiver.requests().iter().any(|r| r["status"] == 0), "no connection was dropped");
    assert_eq!(distinct_ids(&receiver, "/cdc"), 200);

    // Answers slower than the sink's 1 s timeout for 4 s.
    receiver.control(json!({"sleep": 1.5, "until": now() + 4.0}));
    write_rows(&db, 201, 200).await;
    let out = outflow.run_until_caught_up().await;
    out.assert_success();
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert_at_least_once(&receiver.delivered("/cdc"), "public.t", 400);
    db.cleanup().await;
}

/// A throwaway CA and a certificate it signed for 127.0.0.1, made with the
/// openssl CLI in `dir`: (ca.pem, server.pem, server.key).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let script = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj "/CN=outflow test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext
"#;
    let out = Command::new("bash").arg("-c").arg(script).current_dir(dir).output().expect("running openssl");
    assert!(out.status.success(), "openssl failed: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[tokio::test]
async fn https_works_with_the_receivers_ca_and_an_untrusted_certificate_stops_the_run() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(certs.path());
    let receiver = OwnReceiver::start_with(&[Path::new("--tls"), &cert, &key]);
    let db = TestDb::create("http_tls").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let url = receiver.https_url("/cdc");

    // Without the CA the certificate is not trusted: a definite error.
    let other = TestDb::create("http_untrusted").await;
    other.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    write_rows(&other, 1, 20).await;
    let sink = sink_toml("hook", &url, "format = \"json\"");
    let out = http_outflow(&other, &["public.t"], &unique_name("tls"), &sink).run_until_caught_up().await;
    let line = error_line(&out);
    assert!(line.contains("certificate outflow does not trust") && line.contains("`ca_file`"), "{line}");
    assert!(receiver.requests().is_empty(), "nothing reached the receiver without TLS");
    other.cleanup().await;

    write_rows(&db, 1, 20).await;
    let extra = format!("format = \"json\"\nca_file = {:?}", ca.to_string_lossy());
    let outflow = http_outflow(&db, &["public.t"], &unique_name("tls"), &sink_toml("hook", &url, &extra));
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✓ sink \"hook\": the receiver at https://"), "{}\n{}", check.stdout, check.stderr);
    outflow.run_until_caught_up().await.assert_success();
    assert_at_least_once(&receiver.delivered("/cdc"), "public.t", 20);
    db.cleanup().await;
}

/// Whether the slot is acknowledged no further than `lsn`.
async fn slot_not_past(db: &TestDb, lsn: &str) -> bool {
    let confirmed = confirmed_flush_lsn(db).await;
    let rows = db.query(&format!("SELECT '{confirmed}'::pg_lsn <= '{lsn}'::pg_lsn")).await;
    rows[0].get::<_, bool>(0)
}

#[tokio::test]
async fn a_400_or_413_stops_with_one_clean_line_and_nothing_past_the_batch_is_acknowledged() {
    let receiver = OwnReceiver::start();
    let db = TestDb::create("http_refused").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("refused");
    let sinks = sink_toml("hook", &receiver.url("/cdc"), "format = \"json\"");
    let outflow = http_outflow(&db, &["public.t"], &name, &sinks);
    write_rows(&db, 1, 10).await;
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    assert_eq!(distinct_ids(&receiver, "/cdc"), 10);

    // 400: the run stops with the status and the receiver's body.
    let lsn = db.query("SELECT pg_current_wal_lsn()::text").await[0].get::<_, String>(0);
    receiver.control(json!({"status": 400, "body": "{\"error\": \"field qty is required\"}"}));
    write_rows(&db, 11, 10).await;
    let out = outflow.run_until_caught_up().await;
    let line = error_line(&out);
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    assert!(line.contains("400 Bad Request") && line.contains("field qty is required"), "{line}");
    assert!(line.contains("fix what the receiver objects to"), "{line}");
    assert!(slot_not_past(&db, &lsn).await, "the slot moved past the refused batch");
    assert_eq!(distinct_ids(&receiver, "/cdc"), 10, "nothing after the refused batch was taken");
    let check = outflow.exec(&["check"]).await;
    assert!(check.stdout.contains("✗ sink \"hook\": the receiver at"), "{}", check.stdout);

    // 413 for a record too large for the receiver.
    receiver.control(json!({"max_body": 3000}));
    db.execute("INSERT INTO t VALUES (21, repeat('y', 5000))").await;
    let out = outflow.run_until_caught_up().await;
    let line = error_line(&out);
    assert!(line.contains("413"), "{line}");
    assert!(line.contains("lower the sink's `batch_size` or `max_batch_bytes`"), "{line}");
    assert!(slot_not_past(&db, &lsn).await, "the slot moved past the refused batch");

    // The receiver takes them: everything arrives.
    receiver.control(json!({}));
    outflow.run_until_caught_up().await.assert_success();
    assert_at_least_once(&receiver.delivered("/cdc"), "public.t", 21);
    db.cleanup().await;
}

/// MariaDB → HTTP: changes in order with the binlog source block; kill -9
/// during a busy run delivers every change at least once.
#[tokio::test]
async fn mariadb_changes_reach_the_receiver_in_order_at_least_once() {
    use crate::mysql_harness::{mysql_kill_9_while_writing, server_id, MyDb};

    let receiver = OwnReceiver::start();
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "http").await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, tag VARCHAR(20) NOT NULL)").await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, payload VARCHAR(300))").await;
    let name = unique_name("maria");
    let (url, id, db_name) = (db.url(), server_id(), db.name.clone());
    let sink = sink_toml("hook", &receiver.url("/cdc"), "format = \"json\"\nbatch_size = 100");
    let config = |dir: &Path| {
        format!(
            "name = {name:?}\n[source]\nkind = \"mysql\"\nurl = {url:?}\ntables = [\"{db_name}.items\", \"{db_name}.t\"]\n\
             server_id = {id}\n[state]\ndir = {:?}\n{sink}",
            dir.join("state"),
        )
    };
    let outflow = Outflow::raw(config);
    outflow.with_env(SECRET_ENV, SECRET);
    outflow.run_until_caught_up().await.assert_success();

    db.exec("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')").await;
    db.exec("UPDATE items SET tag = 'TWO' WHERE id = 2").await;
    db.exec("DELETE FROM items WHERE id = 3").await;
    outflow.run_until_caught_up().await.assert_success();

    let items_table = format!("{}.items", db.name);
    let reqs = receiver.delivered("/cdc");
    let items: Vec<&Value> = records(&reqs).into_iter().filter(|e| e["_table"] == items_table.as_str()).collect();
    let ops: Vec<(i64, &str, &str)> = items
        .iter()
        .map(|e| (e["id"].as_i64().unwrap(), e["_op"].as_str().unwrap(), e["tag"].as_str().unwrap()))
        .collect();
    assert_eq!(ops, [(1, "c", "one"), (2, "c", "two"), (3, "c", "three"), (2, "u", "TWO"), (3, "d", "three")]);
    assert!(reqs.iter().all(|r| {
        let key = str_of(&r["key"]);
        (key.starts_with("gtid:") || key.starts_with("file:")) && key.contains("..")
    }));

    let written = mysql_kill_9_while_writing(&mut db, &outflow).await;
    outflow.run_until_caught_up().await.assert_success();
    assert_at_least_once(&receiver.delivered("/cdc"), &format!("{}.t", db.name), written);
}
