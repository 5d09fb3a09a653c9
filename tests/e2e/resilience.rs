//! Outages and shutdowns through the real binary: a network cut in the
//! middle of a large transaction (a TCP proxy between outflow and the test
//! server, PostgreSQL and MariaDB), and SIGTERM during a snapshot and during
//! busy streaming, and a real restart of a PostgreSQL server of the test's
//! own (`pg_ctl restart`) and of a MariaDB of its own (both from
//! [`crate::own_servers`]), also while a run starts, and a fast shutdown of
//! that PostgreSQL while a Parquet sink holds rows in an open file. Each ends with every change
//! exactly once in the sink.

use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rand::Rng;
use serde_json::Value;

use crate::durability::{assert_exactly_once_in_order, created_ids};
use crate::harness::{changes, env_var, wait_for, write_rows, Outflow, TestDb, RUN_TIMEOUT, SHORT};
use crate::kafka::{brokers, records, signal_broker, unique_name, ContinueBroker};
use crate::mysql_harness::{MyDb, MyOutflow};
use crate::own_servers::{OwnMariaDb, OwnPg};
use crate::parquet::read_lake;
use crate::proxy::Proxy;

/// How long a clean shutdown may take after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// `scheme://user@host:port[/db]` → (`host:port`, the same URL through `proxy_port`).
fn through_proxy(url: &str, proxy_port: u16) -> (String, String) {
    let (head, rest) = url.split_once('@').unwrap_or_else(|| panic!("no user@ in {url}"));
    let (addr, tail) = rest.split_once('/').map_or((rest, String::new()), |(a, t)| (a, format!("/{t}")));
    (addr.to_string(), format!("{head}@127.0.0.1:{proxy_port}{tail}"))
}

/// A sink's stored offset file.
fn offset(state_dir: &std::path::Path, sink: &str) -> Value {
    let text = std::fs::read_to_string(state_dir.join("sinks").join(format!("{sink}.json"))).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn lines(path: &std::path::Path) -> u64 {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count() as u64)
}

#[tokio::test]
async fn a_network_cut_mid_transaction_resumes_without_loss_or_duplicates() {
    let db = TestDb::create("proxy_cut").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let (target, _) = through_proxy(&db.url(), 1);
    let proxy = Proxy::start(&target).await;
    let (_, proxied) = through_proxy(&db.url(), proxy.port());
    let outflow = Outflow::new(&db, &["public.t"]).source_url(proxied);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    // About 25 MB of changes in one transaction; the cut comes after 3 MB.
    proxy.cut_at(proxy.bytes_from_server() + 3_000_000);
    db.execute("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g").await;
    wait_for(SHORT, "the proxy to cut the connection", || async { proxy.cuts() == 1 }).await;
    assert!(lines(&outflow.out_path()) < 100_000, "the cut came after the whole transaction");
    write_rows(&db, 100_001, 100).await;
    wait_for(RUN_TIMEOUT, "every row to be committed after the cut", || async {
        offset(&outflow.state_dir(), "events")["events"] == 100_100
    })
    .await;
    assert!(run.is_running(), "outflow gave up instead of reconnecting: {}", run.stderr());
    assert!(run.stderr().contains("reconnecting"), "{}", run.stderr());
    tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM").assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), 100_100);
    db.cleanup().await;
}

#[tokio::test]
async fn sigterm_during_a_snapshot_exits_cleanly_and_the_next_run_resumes() {
    let db = TestDb::create("sigterm_snap").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    db.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100000) g").await;
    let outflow = Outflow::new(&db, &["public.t"]).section("[snapshot]\nchunk_size = 20\nparallelism = 1");
    let run = outflow.spawn_run();
    wait_for(RUN_TIMEOUT, "some snapshot chunks to be committed", || async {
        offset(&outflow.state_dir(), "events")["snapshot"]["public.t"]["rows"].as_u64().unwrap_or(0) >= 2000
    })
    .await;
    let out = tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM");
    out.assert_success();
    let stored = offset(&outflow.state_dir(), "events");
    assert_eq!(stored["snapshot"]["public.t"]["done"], false, "stopped too late to test a resume");
    // What was written was committed on the way out.
    assert_eq!(stored["events"], lines(&outflow.out_path()), "{stored}");

    db.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(100001, 100005) g").await;
    db.wait_for_slot_idle().await;
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    // Rows inserted after the stop may also be read by the resumed snapshot
    // (a snapshot reads what the table holds then); those before, once each.
    let mut read: Vec<i64> = changes(&events, "t")
        .iter()
        .filter(|e| e["op"] == "r")
        .filter_map(|e| e["after"]["id"].as_i64().filter(|id| *id <= 100_000))
        .collect();
    read.sort();
    assert_exactly_once_in_order(&read, 100_000);
    assert_eq!(created_ids(&events), (100_001..=100_005).collect::<Vec<_>>());
    db.cleanup().await;
}

#[tokio::test]
async fn sigterm_during_busy_streaming_exits_cleanly_and_the_next_run_resumes() {
    let db = TestDb::create("sigterm_stream").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    for round in 0..2 {
        let run = outflow.spawn_run();
        db.wait_for_slot_streaming().await;
        let writer = write_rows(&db, round * 2000 + 1, 2000);
        let delay = Duration::from_millis(rand::rng().random_range(100..1500));
        let stopper = async {
            tokio::time::sleep(delay).await;
            let out = tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM");
            out.assert_success();
            let stored = offset(&outflow.state_dir(), "events");
            assert_eq!(stored["events"], lines(&outflow.out_path()), "round {round}: {stored}");
        };
        tokio::join!(writer, stopper);
        db.wait_for_slot_idle().await;
    }
    outflow.run_until_caught_up().await.assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), 4000);
    db.cleanup().await;
}

#[tokio::test]
async fn mysql_a_network_cut_mid_stream_resumes_without_loss_or_duplicates() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "proxy_cut").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(100))").await;
    let (target, _) = through_proxy(&env_var("OUTFLOW_TEST_MYSQL_URL"), 1);
    let proxy = Proxy::start(&target).await;
    let mut of = MyOutflow::new(&db);
    // mysql_async moves loopback connections to the server's Unix socket
    // unless told not to, which would bypass the proxy.
    of.url = format!("{}?prefer_socket=false", through_proxy(&db.url(), proxy.port()).1);
    of.run_until_caught_up().await.assert_success();

    let stderr_path = of.dir.path().join("run.stderr");
    let mut child =
        of.command(&["run"]).stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap())).spawn().unwrap();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    wait_for(SHORT, "outflow to stream the binlog", || {
        let s = stderr();
        async move { s.contains("streaming binlog") }
    })
    .await;
    // About 11 MB of rows in one transaction; the cut comes after 1 MB.
    proxy.cut_at(proxy.bytes_from_server() + 1_000_000);
    db.exec("INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_100000").await;
    let deadline = std::time::Instant::now() + SHORT;
    while proxy.cuts() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy did not cut: {} bytes from the server; stderr:\n{}",
            proxy.bytes_from_server(),
            stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lines(&of.out_path()) < 100_000, "the cut came after the whole transaction");
    for i in 0..200 {
        db.conn.query_drop(format!("INSERT INTO t VALUES ({}, 'y')", 100_001 + i)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + SHORT;
    while offset(&of.state_dir(), "events")["events"].as_u64().unwrap_or(0) < 100_200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not every row was committed after the cut: {}; stderr:\n{}",
            offset(&of.state_dir(), "events"),
            stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stderr().contains("reconnecting"), "{}", stderr());
    let pid = child.id().expect("outflow is running") as libc::pid_t;
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(STOP_WITHIN, child.wait()).await.expect("exit after SIGTERM").unwrap();
    assert!(status.success(), "{status:?}: {}", stderr());

    let ids: Vec<i64> = of
        .events()
        .iter()
        .filter(|e| e["op"] == "c" && e["source"]["table"] == "t")
        .map(|e| e["after"]["id"].as_i64().unwrap())
        .collect();
    assert_exactly_once_in_order(&ids, 100_200);
}

#[tokio::test]
async fn a_postgres_restart_mid_run_resumes_without_loss_or_duplicates() {
    let pg = OwnPg::start();
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await.unwrap();
    let url = pg.url();
    let outflow = Outflow::raw(|dir| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {url:?}\ntables = [\"public.t\"]\nslot = \"restart\"\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = {:?}\nformat = \"debezium\"\n",
            dir.join("state"),
            dir.join("out.jsonl")
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    client.batch_execute("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g").await.unwrap();
    wait_for(SHORT, "the first rows to be committed", || async {
        offset(&outflow.state_dir(), "events")["events"] == 5000
    })
    .await;
    drop(client);
    pg.restart();
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("reconnect");
    tokio::spawn(conn);
    for i in 0..20 {
        let from = 5001 + i * 250;
        client
            .batch_execute(&format!("INSERT INTO t SELECT g, 'y' FROM generate_series({from}, {}) g", from + 249))
            .await
            .unwrap();
    }
    wait_for(RUN_TIMEOUT, "every row after the restart", || async {
        offset(&outflow.state_dir(), "events")["events"] == 10_000
    })
    .await;
    assert!(run.stderr().contains("reconnect"), "outflow reconnected: {}", run.stderr());
    tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM").assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), 10_000);
}

/// A fast shutdown waits for every walsender until its client has confirmed
/// all it was sent, and a Parquet sink makes rows durable only when its file
/// rolls (here after an hour). Asked for a reply by the server, outflow has
/// the sinks commit what they hold, so the restart takes seconds, not a roll
/// interval (found by the chaos run, where `pg_ctl restart` timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_fast_shutdown_is_not_held_up_by_a_parquet_file_waiting_to_roll() {
    let pg = OwnPg::start();
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await.unwrap();
    let url = pg.url();
    let outflow = Outflow::raw(|dir| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {url:?}\ntables = [\"public.t\"]\nslot = \"shutdown\"\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"lake\"\nkind = \"parquet\"\npath = {:?}\nroll_interval = \"1h\"\n",
            dir.join("state"),
            dir.join("lake")
        )
    });
    let lake = outflow.state_dir().with_file_name("lake").to_string_lossy().into_owned();
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    client.batch_execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g").await.unwrap();
    let end: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    wait_for(SHORT, "the walsender to send the rows", || async {
        let sent = "SELECT coalesce(bool_or(sent_lsn >= $1::text::pg_lsn), false) FROM pg_stat_replication";
        client.query_one(sent, &[&end]).await.is_ok_and(|r| r.get::<_, bool>(0))
    })
    .await;
    drop(client);
    // pg_ctl fails if the server has not stopped within 20 s.
    tokio::task::block_in_place(|| pg.restart_within(20));
    let ids = |lake: &Value| -> Vec<i64> {
        let rows = lake["tables"]["public.t"]["rows"].as_array().cloned().unwrap_or_default();
        let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        ids.sort();
        ids
    };
    assert_exactly_once_in_order(&ids(&read_lake(&lake, &[])), 100);
    wait_for(SHORT, "outflow to stream again", || async {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let active = "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'shutdown' AND active";
        client.query(active, &[]).await.is_ok_and(|r| r.len() == 1)
    })
    .await;
    tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM").assert_success();
    assert_exactly_once_in_order(&ids(&read_lake(&lake, &[])), 100);
}

/// A restart between the source's setup and its first START_REPLICATION —
/// here while the Kafka sink waits for a frozen broker — is retried like a
/// lost connection instead of ending the run (found by the chaos run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_while_the_sinks_start_is_retried() {
    let pg = OwnPg::start();
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await.unwrap();
    let (url, name) = (pg.url(), unique_name("starting"));
    let outflow = Outflow::raw(|dir| {
        format!(
            "name = {name:?}\n[source]\nkind = \"postgres\"\nurl = {url:?}\ntables = [\"public.t\"]\nslot = \"starting\"\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\n",
            dir.join("state"),
            brokers()
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    client.batch_execute("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g").await.unwrap();
    drop(client);

    signal_broker(libc::SIGSTOP);
    let resume = ContinueBroker;
    let mut run = outflow.spawn_run();
    wait_for(SHORT, "outflow's replication connection, not streaming yet", || async {
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let prepared = "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender') = 1 \
                        AND NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE active)";
        client.query_one(prepared, &[]).await.is_ok_and(|r| r.get::<_, bool>(0))
    })
    .await;
    tokio::task::block_in_place(|| pg.restart());
    drop(resume);
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    while offset(&outflow.state_dir(), "bus")["events"] != 100 {
        assert!(run.is_running(), "the run ended after the restart:\n{}", run.stderr());
        assert!(std::time::Instant::now() < deadline, "the rows were not committed after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM").assert_success();
    let mut ids: Vec<i64> = records(&format!("{name}.public.t"))
        .iter()
        .filter(|r| r["value"]["op"] == "c")
        .map(|r| r["value"]["after"]["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_exactly_once_in_order(&ids, 100);
}

#[tokio::test]
async fn a_mariadb_restart_mid_run_resumes_without_loss_or_duplicates() {
    let mut server = OwnMariaDb::start();
    server.wait_ready().await;
    let admin = server.root_url();
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&admin).unwrap()).await.unwrap();
    conn.query_drop("CREATE DATABASE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, payload VARCHAR(100))")
        .await
        .unwrap();
    let url = server.url("app");
    let outflow = Outflow::raw(|dir| {
        format!(
            "[source]\nkind = \"mysql\"\nurl = {url:?}\ntables = [\"app.t\"]\nserver_id = 4711\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = {:?}\nformat = \"debezium\"\n",
            dir.join("state"),
            dir.join("out.jsonl")
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    conn.query_drop("USE app").await.unwrap();
    conn.query_drop("INSERT INTO app.t SELECT seq, 'x' FROM seq_1_to_3000").await.unwrap();
    wait_for(SHORT, "the first rows to be committed", || async {
        offset(&outflow.state_dir(), "events")["events"] == 3000
    })
    .await;
    drop(conn);
    server.restart().await;
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await.unwrap();
    for i in 0..20 {
        let from = 3001 + i * 100;
        conn.query_drop(format!("INSERT INTO app.t SELECT seq, 'y' FROM seq_{from}_to_{}", from + 99)).await.unwrap();
    }
    wait_for(RUN_TIMEOUT, "every row after the restart", || async {
        offset(&outflow.state_dir(), "events")["events"] == 5000
    })
    .await;
    assert!(run.stderr().contains("reconnect"), "outflow reconnected: {}", run.stderr());
    tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM").assert_success();
    assert_exactly_once_in_order(&created_ids(&outflow.events()), 5000);
}

/// The MariaDB side of the same: a restart after the source's setup, while
/// the Kafka sink waits for a frozen broker, is retried (the binlog end is
/// read again on a new connection) instead of ending the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_restart_while_the_sinks_start_is_retried() {
    let mut server = OwnMariaDb::start();
    server.wait_ready().await;
    let admin = server.root_url();
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&admin).unwrap()).await.unwrap();
    conn.query_drop("CREATE DATABASE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, payload VARCHAR(100))")
        .await
        .unwrap();
    let (url, name) = (server.url("app"), unique_name("mystarting"));
    let outflow = Outflow::raw(|dir| {
        format!(
            "name = {name:?}\n[source]\nkind = \"mysql\"\nurl = {url:?}\ntables = [\"app.t\"]\nserver_id = 4712\n\
             [state]\ndir = {:?}\n[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\n",
            dir.join("state"),
            brokers()
        )
    });
    outflow.run_until_caught_up().await.assert_success();
    conn.query_drop("INSERT INTO app.t SELECT seq, 'x' FROM app.seq_1_to_100").await.unwrap();

    signal_broker(libc::SIGSTOP);
    let resume = ContinueBroker;
    let mut run = outflow.spawn_run();
    let deadline = std::time::Instant::now() + SHORT;
    loop {
        // outflow's catalog connection is open; no binlog dump yet.
        let (others, dumps): (i64, i64) = conn
            .query_first(
                "SELECT COALESCE(SUM(command <> 'Binlog Dump'), 0), COALESCE(SUM(command = 'Binlog Dump'), 0) \
                 FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND user = 'root'",
            )
            .await
            .unwrap()
            .unwrap();
        // (The previous run's dump thread may linger a moment.)
        if others >= 1 && dumps == 0 {
            break;
        }
        assert!(run.is_running(), "the run ended:\n{}", run.stderr());
        assert!(std::time::Instant::now() < deadline, "outflow did not connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(conn);
    server.restart().await;
    drop(resume);
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    while offset(&outflow.state_dir(), "bus")["events"] != 100 {
        assert!(run.is_running(), "the run ended after the restart:\n{}", run.stderr());
        assert!(std::time::Instant::now() < deadline, "the rows were not committed after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(STOP_WITHIN, run.sigterm_and_wait()).await.expect("exit after SIGTERM").assert_success();
    let mut ids: Vec<i64> = records(&format!("{name}.app.t"))
        .iter()
        .filter(|r| r["value"]["op"] == "c")
        .map(|r| r["value"]["after"]["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_exactly_once_in_order(&ids, 100);
}
