//! Outages and shutdowns through the real binary: a network cut in the
//! middle of a large transaction (a TCP proxy between outflow and the test
//! server, PostgreSQL and MariaDB), and SIGTERM during a snapshot and during
//! busy streaming, and a real restart of a PostgreSQL server of the test's
//! own (`pg_ctl restart`) and of a MariaDB of its own. Each ends with every
//! change exactly once in the JSONL sink.

use std::process::Stdio;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rand::Rng;
use serde_json::Value;

use crate::durability::{assert_exactly_once_in_order, created_ids};
use crate::harness::{changes, env_var, wait_for, write_rows, Outflow, TestDb, RUN_TIMEOUT, SHORT};
use crate::mysql_harness::{MyDb, MyOutflow};
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

/// A PostgreSQL server of one test's own (initdb into a temp directory, a
/// free loopback port, `wal_level=logical`), so the test can restart it
/// without disturbing the shared servers. Stopped on drop.
struct OwnPg {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPg {
    fn pg(&self, tool: &str, args: &[&str]) {
        let out = pg_tool(tool).args(args).stdin(Stdio::null()).output().expect("running a PostgreSQL tool");
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn start() -> OwnPg {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let out = std::process::Command::new("chown").arg("postgres").arg(dir.path()).output().unwrap();
            assert!(out.status.success(), "chown: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = OwnPg { dir, port };
        pg.pg("initdb", &["-D", &pg.data(), "-A", "trust", "-U", "postgres"]);
        pg.pg_ctl("start");
        pg
    }

    fn pg_ctl(&self, action: &str) {
        let log = self.dir.path().join("server.log").to_string_lossy().into_owned();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c wal_level=logical -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-t", "60", "-m", "fast", "-o", &opts, action]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let _ = pg_tool("pg_ctl").args(["-D", &self.data(), "-m", "immediate", "stop"]).stdin(Stdio::null()).output();
    }
}

/// A PostgreSQL tool from `OUTFLOW_TEST_PG_BIN`, run as `postgres` when we
/// are root (PostgreSQL refuses to run as root).
fn pg_tool(tool: &str) -> std::process::Command {
    let bin = format!("{}/{tool}", env_var("OUTFLOW_TEST_PG_BIN"));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", &bin]);
        c
    } else {
        std::process::Command::new(bin)
    }
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
    pg.pg_ctl("restart");
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

/// A MariaDB server of one test's own (binlog as outflow needs it), so the
/// test can restart it. Killed on drop.
struct OwnMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<std::process::Child>,
}

impl OwnMariaDb {
    fn start() -> OwnMariaDb {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .output()
            .expect("running mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut db = OwnMariaDb { dir, port, server: None };
        db.launch();
        db
    }

    fn launch(&mut self) {
        let d = self.dir.path();
        let child = std::process::Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1", "--server-id=7", "--skip-name-resolve"])
            .args(["--innodb-buffer-pool-size=32M", "--default-time-zone=+00:00", "--log-bin=mysql-bin"])
            .args(["--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL"])
            .args(["--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--port={}", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mariadbd");
        self.server = Some(child);
    }

    /// Stops the server (a clean shutdown) and starts it again on the same data.
    async fn restart(&mut self) {
        let out = std::process::Command::new("mariadb-admin")
            .args(["--no-defaults", "-uroot", "shutdown"])
            .arg(format!("--socket={}", self.dir.path().join("mysqld.sock").display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "shutdown: {}", String::from_utf8_lossy(&out.stderr));
        if let Some(mut c) = self.server.take() {
            let _ = c.wait();
        }
        self.launch();
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let url = self.root_url();
        wait_for(SHORT, "mariadbd to accept connections", || {
            let url = url.clone();
            async move { mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await.is_ok() }
        })
        .await;
    }

    fn root_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}?prefer_socket=false", self.port)
    }
}

impl Drop for OwnMariaDb {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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
    let url = format!("mysql://root@127.0.0.1:{}/app?prefer_socket=false", server.port);
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
