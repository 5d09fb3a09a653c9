//! Signals against a real run (PostgreSQL): the admin API's actions behind
//! the token (a bad token does nothing), an ad-hoc snapshot of exactly the
//! rows a condition matches, a malformed one failing while streaming goes
//! on, pausing and resuming one of two sinks, adding a table without a
//! restart, stopping a snapshot for good, and the signal table (rows read
//! from the log, never delivered, not run twice after a restart).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin::free_port;
use crate::harness::{changes, wait_for, Outflow, TestDb, SHORT};

pub const TOKEN: &str = "t0ken-for-signals";

/// An HTTP/1.0 request: (status, body as JSON, or Null).
pub async fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connecting to the admin server");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// POSTs an action with the token; returns the accepted signal's id.
pub async fn act(port: u16, path: &str, body: Value) -> String {
    let (status, answer) = request(port, "POST", path, Some(TOKEN), &body.to_string()).await;
    assert_eq!(status, 202, "POST {path} {body}: {answer}");
    answer["id"].as_str().expect("an id").to_string()
}

/// The signal `id`'s record once its status is `status` (polls, with a deadline).
pub async fn signal_when(port: u16, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + SHORT;
    loop {
        let (_, list) = request(port, "GET", "/api/signals", None, "").await;
        let record = list["signals"].as_array().into_iter().flatten().find(|s| s["id"] == id).cloned();
        let record = record.unwrap_or_default();
        if record["status"] == status {
            return record;
        }
        assert!(Instant::now() < deadline, "timed out waiting for signal {id} to be {status}; it is {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sink<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sinks"].as_array().unwrap().iter().find(|s| s["name"] == name).expect("the sink in status")
}

fn ids_of(events: &[&Value]) -> BTreeSet<i64> {
    events.iter().filter_map(|e| e["after"]["id"].as_i64()).collect()
}

fn reads<'a>(events: &'a [Value], table: &str) -> Vec<&'a Value> {
    changes(events, table).into_iter().filter(|e| e["op"] == "r").collect()
}

fn with_admin(outflow: Outflow, port: u16) -> Outflow {
    let outflow =
        outflow.section(&format!("[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"${{OUTFLOW_TEST_ADMIN_TOKEN}}\""));
    outflow.with_env("OUTFLOW_TEST_ADMIN_TOKEN", TOKEN);
    outflow
}

#[tokio::test]
async fn api_actions_need_the_token_and_snapshot_exactly_the_rows_a_condition_matches() {
    let db = TestDb::create("sig_api").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, region text)").await;
    db.execute("INSERT INTO t SELECT g, CASE WHEN g % 4 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 40) g")
        .await;
    db.execute("CREATE TABLE u (id int PRIMARY KEY)").await;
    db.execute("INSERT INTO u VALUES (1), (2), (3)").await;
    let port = free_port();
    let outflow = with_admin(Outflow::new(&db, &["public.t"]), port);
    let run = outflow.spawn_run();
    wait_for(SHORT, "the initial snapshot", || async { reads(&outflow.events_so_far(), "t").len() == 40 }).await;

    // Without the right token: refused, nothing recorded or done.
    let body = json!({"tables": ["public.t"]}).to_string();
    assert_eq!(request(port, "POST", "/api/snapshot", None, &body).await.0, 401);
    assert_eq!(request(port, "POST", "/api/snapshot", Some("wrong"), &body).await.0, 401);
    assert_eq!(request(port, "POST", "/api/sinks/events/pause", Some("wrong"), "").await.0, 401);
    assert_eq!(request(port, "GET", "/api/signals", None, "").await.1, json!({"signals": []}));
    // Malformed: 400 with the reason.
    let (status, answer) = request(port, "POST", "/api/snapshot", Some(TOKEN), "not json").await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = request(port, "POST", "/api/snapshot", Some(TOKEN), r#"{"tables": ["public.nope"]}"#).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("matches no captured table"), "{answer}");
    assert_eq!(request(port, "POST", "/api/sinks/nope/pause", Some(TOKEN), "").await.0, 400);

    // An ad-hoc snapshot of the rows matching a condition: exactly those.
    let id = act(port, "/api/snapshot", json!({"tables": ["public.t"], "filter": "region = 'eu'"})).await;
    let record = signal_when(port, &id, "done").await;
    assert_eq!(record["tables"], json!(["public.t"]));
    wait_for(SHORT, "the 10 matching rows read again", || async { reads(&outflow.events_so_far(), "t").len() == 50 })
        .await;
    let events = outflow.events_so_far();
    let again = &reads(&events, "t")[40..];
    assert_eq!(ids_of(again), (1..=10).map(|i| i * 4).collect(), "only the rows with region 'eu'");
    assert!(again.iter().all(|e| e["after"]["region"] == "eu"));

    // A condition the server refuses fails the signal; streaming goes on.
    let id = act(port, "/api/snapshot", json!({"tables": ["public.t"], "filter": "no_such_column > 1"})).await;
    let record = signal_when(port, &id, "failed").await;
    assert!(record["detail"].as_str().unwrap().contains("no_such_column"), "{record}");
    let id = act(port, "/api/snapshot", json!({"tables": ["public.t"], "filter": "true; DROP TABLE u"})).await;
    signal_when(port, &id, "failed").await;
    db.execute("INSERT INTO t VALUES (1000, 'eu')").await;
    wait_for(SHORT, "the insert streamed", || async {
        changes(&outflow.events_so_far(), "t").iter().any(|e| e["op"] == "c" && e["after"]["id"] == 1000)
    })
    .await;

    // A table added without a restart: its rows read, its changes streamed.
    let id = act(port, "/api/tables", json!({"tables": ["public.u"]})).await;
    signal_when(port, &id, "done").await;
    db.execute("INSERT INTO u VALUES (4)").await;
    wait_for(SHORT, "u's rows and its insert", || async {
        let events = outflow.events_so_far();
        let u = changes(&events, "u");
        ids_of(&reads(&events, "u")) == BTreeSet::from([1, 2, 3]) && u.iter().any(|e| e["op"] == "c")
    })
    .await;
    run.sigterm_and_wait().await.assert_success();

    // The next run still captures u (and does not read it again).
    db.execute("INSERT INTO u VALUES (5)").await;
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    let u = changes(&events, "u");
    assert_eq!(u.iter().filter(|e| e["op"] == "r").count(), 3, "u was not snapshotted twice");
    assert_eq!(ids_of(&u.iter().filter(|e| e["op"] == "c").copied().collect::<Vec<_>>()), BTreeSet::from([4, 5]));
    let status = outflow.status_json().await;
    let kinds: Vec<&str> = status["signals"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["add-tables", "execute-snapshot", "execute-snapshot", "execute-snapshot"], "{status}");
    db.cleanup().await;
}

#[tokio::test]
async fn a_paused_sink_gets_nothing_until_resumed_then_everything_once() {
    let db = TestDb::create("sig_pause").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let port = free_port();
    let outflow = Outflow::new(&db, &["public.t"]);
    let second = outflow.state_dir().with_file_name("second.jsonl");
    let outflow = with_admin(outflow, port)
        .section(&format!("[[sink]]\nname = \"second\"\nkind = \"jsonl\"\npath = {:?}", second.to_string_lossy()));
    let run = outflow.spawn_run();
    wait_for(SHORT, "the (empty) initial snapshot", || async {
        outflow.status_json().await["snapshot"][0]["status"] == "done"
    })
    .await;
    let second_events = || crate::events::read_complete_lines(&second);
    // An ad-hoc snapshot first: re-attaching the sink later streams again
    // from its durable position, right after the chunk, and the server
    // sends the chunk's high watermark again, which must be ignored.
    db.execute("INSERT INTO t VALUES (-1)").await;
    let id = act(port, "/api/snapshot", json!({"tables": ["public.t"]})).await;
    signal_when(port, &id, "done").await;
    wait_for(SHORT, "the row read again in both sinks", || async {
        reads(&outflow.events_so_far(), "t").len() == 1 && reads(&second_events(), "t").len() == 1
    })
    .await;

    let id = act(port, "/api/sinks/events/pause", json!({})).await;
    signal_when(port, &id, "done").await;
    let status = outflow.status_json().await;
    assert_eq!(sink(&status, "events")["paused"], true, "{status}");
    assert_eq!(sink(&status, "second")["paused"], false, "{status}");
    db.execute("INSERT INTO t SELECT g FROM generate_series(1, 5) g").await;
    wait_for(SHORT, "the other sink to get the inserts", || async { changes(&second_events(), "t").len() == 7 }).await;
    assert_eq!(changes(&outflow.events_so_far(), "t").len(), 2, "the paused sink got changes");
    // An ad-hoc snapshot while a sink is paused is refused, not half-delivered.
    let id = act(port, "/api/snapshot", json!({"tables": ["public.t"]})).await;
    let record = signal_when(port, &id, "failed").await;
    assert!(record["detail"].as_str().unwrap().contains("paused"), "{record}");

    let id = act(port, "/api/sinks/events/resume", json!({})).await;
    signal_when(port, &id, "done").await;
    db.execute("INSERT INTO t VALUES (6)").await;
    let deadline = std::time::Instant::now() + SHORT;
    while changes(&outflow.events_so_far(), "t").len() != 8 {
        assert!(std::time::Instant::now() < deadline, "the resumed sink did not catch up:\n{}", run.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.sigterm_and_wait().await.assert_success();
    for events in [outflow.events(), crate::harness::read_jsonl(&second)] {
        assert_eq!(ids_of(&changes(&events, "t")), (-1..=6).filter(|i| *i != 0).collect(), "every change once");
        assert_eq!(changes(&events, "t").len(), 8, "-1 inserted and read again, 1..=6 inserted");
    }
    assert_eq!(sink(&outflow.status_json().await, "events")["paused"], false);
    db.cleanup().await;
}

#[tokio::test]
async fn a_stopped_snapshot_ends_and_no_later_run_resumes_it() {
    let db = TestDb::create("sig_stop").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    db.execute("INSERT INTO t SELECT g FROM generate_series(1, 50000) g").await;
    let port = free_port();
    let outflow = with_admin(Outflow::new(&db, &["public.t"]), port)
        .section("[snapshot]\nmode = \"never\"\nchunk_size = 10\nparallelism = 1");
    let run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    let snapshot = act(port, "/api/snapshot", json!({"tables": ["public.t"]})).await;
    wait_for(SHORT, "the first rows read", || async { !reads(&outflow.events_so_far(), "t").is_empty() }).await;
    let stop = act(port, "/api/snapshot/stop", json!({"tables": ["public.t"]})).await;
    signal_when(port, &stop, "done").await;
    signal_when(port, &snapshot, "stopped").await;
    run.sigterm_and_wait().await.assert_success();
    let read = reads(&outflow.events(), "t").len();
    assert!(read > 0 && read < 50000, "{read} rows read");
    let status = outflow.status_json().await;
    assert_eq!(status["snapshot"][0]["status"], "done", "{status}");

    // A new run does not resume it.
    db.execute("INSERT INTO t VALUES (100000)").await;
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    assert_eq!(reads(&events, "t").len(), read);
    assert!(changes(&events, "t").iter().any(|e| e["op"] == "c"));
    db.cleanup().await;
}

#[tokio::test]
async fn signal_table_rows_run_in_log_order_and_never_reach_a_sink() {
    let db = TestDb::create("sig_table").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    db.execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 20) g").await;
    db.execute("CREATE TABLE dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))")
        .await;
    let outflow = Outflow::new(&db, &["public.t"]);
    let text = outflow.config_text().replace("[source]\n", "[source]\nsignal_table = \"public.dbz_signal\"\n");
    let outflow = outflow.raw_config(text);
    let run = outflow.spawn_run();
    wait_for(SHORT, "the initial snapshot", || async { reads(&outflow.events_so_far(), "t").len() == 20 }).await;
    db.execute(
        r#"INSERT INTO dbz_signal VALUES
           ('s1', 'execute-snapshot', '{"data-collections": ["public.t"], "type": "incremental",
             "additional-conditions": [{"data-collection": "public.t", "filter": "id <= 5"}]}'),
           ('bad', 'execute-snapshot', 'not json'),
           ('s3', 'log', '{"message": "hello from SQL"}')"#,
    )
    .await;
    db.execute("UPDATE dbz_signal SET data = '{}'").await;
    let config = outflow.config_path();
    let config = config.to_string_lossy();
    outflow.exec(&["snapshot", "-c", &config, "--table", "public.t", "--filter", "id > 18"]).await.assert_success();
    wait_for(SHORT, "5 + 2 rows read again", || async { reads(&outflow.events_so_far(), "t").len() == 27 }).await;
    wait_for(SHORT, "every signal settled", || async {
        let status = outflow.status_json().await;
        status["signals"].as_array().unwrap().iter().all(|s| s["status"] != "pending" && s["status"] != "running")
    })
    .await;
    let status = outflow.status_json().await;
    let by_id = |id: &str| status["signals"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned();
    assert_eq!(by_id("s1").unwrap()["origin"], "table");
    assert_eq!(by_id("s1").unwrap()["status"], "done");
    assert_eq!(by_id("s3").unwrap()["status"], "done");
    assert!(run.stderr().contains("hello from SQL"), "the log signal's line");
    assert_eq!(by_id("bad").unwrap()["status"], "failed");
    assert!(by_id("bad").unwrap()["detail"].as_str().unwrap().contains("not JSON"));
    run.sigterm_and_wait().await.assert_success();
    let events = outflow.events();
    let again = &reads(&events, "t")[20..];
    assert_eq!(ids_of(again), BTreeSet::from([1, 2, 3, 4, 5, 19, 20]));
    assert!(changes(&events, "dbz_signal").is_empty(), "signal rows reached the sink");

    // A restart replays nothing of them: s1 is not run twice.
    outflow.run_until_caught_up().await.assert_success();
    assert_eq!(reads(&outflow.events(), "t").len(), 27);
    db.cleanup().await;
}
