//! The admin HTTP server of `outflow run` (`[admin] listen`): `/healthz`,
//! `/readyz`, `/status` and `/metrics` against a real run. The metrics'
//! event counters must equal what the sink received, `/status` must be
//! `outflow status --json`, and `/readyz` must fail while the source
//! reconnects or a sink falls behind.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{changes, wait_for, write_rows, Outflow, TestDb, SHORT};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port").local_addr().unwrap().port()
}

fn admin_section(port: u16, ready_max_lag: &str) -> String {
    format!("[admin]\nlisten = \"127.0.0.1:{port}\"\nready_max_lag = \"{ready_max_lag}\"")
}

/// `GET path` over HTTP/1.0: (status code, body), or None if nothing answers.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8(response).expect("an HTTP response in UTF-8");
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Waits until `path` answers `status` with a body containing
/// `body_contains`; returns the body. Polls every 50 ms, so a state that
/// lasts a second is not missed.
async fn wait_for_status(port: u16, path: &str, status: u16, body_contains: &str) -> String {
    let deadline = Instant::now() + SHORT;
    loop {
        let response = get(port, path).await;
        if let Some((s, body)) = &response {
            if *s == status && body.contains(body_contains) {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {SHORT:?} waiting for {path} to answer {status} with {body_contains:?}; last answer: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks every sample line strictly (`name{labels} value`), then parses
/// the text with an independent Prometheus parser.
fn parse_metrics(text: &str) -> Scrape {
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name in {line:?}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        assert!(value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value), "bad value in {line:?}");
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("metrics parse as Prometheus text")
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
        |s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            other => panic!("{name} is not a single value: {other:?}"),
        },
    )
}

async fn metrics(port: u16) -> Scrape {
    let (status, body) = get(port, "/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

#[tokio::test]
async fn admin_endpoints_report_what_was_delivered() {
    let db = TestDb::create("admin").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY, payload text)").await;
    db.execute("INSERT INTO t SELECT g, 'before' FROM generate_series(1, 5) g").await;
    let port = free_port();
    let outflow = Outflow::new(&db, &["public.t"]).section(&admin_section(port, "30s"));
    // Any retained WAL is over 1 byte: the retention warning must show.
    let text = outflow.config_text().replace("[source]\n", "[source]\nwal_warn_bytes = 1\n");
    let outflow = outflow.raw_config(text);
    let mut run = outflow.spawn_run();

    wait_for_status(port, "/healthz", 200, "ok").await;
    db.wait_for_slot_streaming().await;
    // Changes after the snapshot, so none of its rows is superseded by one.
    wait_for(SHORT, "the snapshot's 5 reads in the sink", || async {
        changes(&outflow.events_so_far(), "t").len() == 5
    })
    .await;
    db.execute("INSERT INTO t SELECT g, 'new' FROM generate_series(6, 15) g").await;
    db.execute("UPDATE t SET payload = 'changed' WHERE id IN (1, 6, 7)").await;
    db.execute("DELETE FROM t WHERE id IN (2, 8)").await;
    wait_for(SHORT, "the 5 reads and 15 changes in the sink", || async {
        changes(&outflow.events_so_far(), "t").len() == 20
    })
    .await;
    assert!(run.is_running(), "{}", run.stderr());
    wait_for_status(port, "/readyz", 200, "ready").await;

    // The counters equal what the sink holds, per op.
    let events = outflow.events_so_far();
    let mut delivered: BTreeMap<String, f64> = BTreeMap::new();
    for e in changes(&events, "t") {
        *delivered.entry(e["op"].as_str().unwrap().to_string()).or_default() += 1.0;
    }
    let expected: BTreeMap<String, f64> =
        [("r", 5.0), ("c", 10.0), ("u", 3.0), ("d", 2.0)].iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(delivered, expected);
    let scrape = metrics(port).await;
    for (op, n) in &delivered {
        let labels = [("sink", "events"), ("table", "public.t"), ("op", op.as_str())];
        assert_eq!(sample(&scrape, "outflow_events_total", &labels), Some(*n), "op {op}");
    }
    assert_eq!(sample(&scrape, "outflow_snapshot_rows_total", &[("table", "public.t")]), Some(5.0));
    let file_len = std::fs::metadata(outflow.out_path()).unwrap().len() as f64;
    assert_eq!(sample(&scrape, "outflow_sink_bytes_total", &[("sink", "events")]), Some(file_len));
    assert_eq!(sample(&scrape, "outflow_reconnects_total", &[]), Some(0.0));

    // The durable LSN gauge reaches the last change once committed.
    let last_delete = events.last().unwrap()["source"]["lsn"].as_f64().unwrap();
    wait_for(SHORT, "the durable LSN gauge to pass the last delete", || async {
        sample(&metrics(port).await, "outflow_sink_durable_lsn", &[("sink", "events")])
            .is_some_and(|l| l >= last_delete)
    })
    .await;
    // Committed and caught up: no lag in seconds, lag in bytes known, a commit timed.
    wait_for(SHORT, "no lag in seconds", || async {
        sample(&metrics(port).await, "outflow_source_lag_seconds", &[("sink", "events")]) == Some(0.0)
    })
    .await;
    let scrape = metrics(port).await;
    assert!(sample(&scrape, "outflow_source_lag_bytes", &[("sink", "events")]).is_some());
    let commits = scrape.samples.iter().find(|s| s.metric == "outflow_sink_commit_seconds").expect("commit histogram");
    assert!(matches!(&commits.value, Sample::Histogram(b) if !b.is_empty()), "{:?}", commits.value);

    // WAL retention over wal_warn_bytes: metric, log line and status.
    wait_for(SHORT, "the WAL retention warning metric", || async {
        sample(&metrics(port).await, "outflow_wal_retention_warning", &[]) == Some(1.0)
    })
    .await;
    assert!(run.stderr().contains("retains more WAL than wal_warn_bytes"), "{}", run.stderr());

    // /status is `outflow status --json`: same source and sinks.
    let (status, body) = get(port, "/status").await.expect("/status answers");
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"));
    let printed = outflow.status_json().await;
    let names = |v: &Value| -> Vec<(Value, Value)> {
        v["sinks"].as_array().unwrap().iter().map(|s| (s["name"].clone(), s["kind"].clone())).collect()
    };
    assert_eq!(names(&served), names(&printed));
    assert_eq!(names(&served), vec![(Value::from("events"), Value::from("jsonl"))]);
    assert_eq!(served["source"]["slot_name"], printed["source"]["slot_name"]);
    assert_eq!(served["source"]["wal_warning"], Value::Bool(true), "{served}");
    assert_eq!(served["process"]["pid"], printed["process"]["pid"]);
    let sink = &served["sinks"][0];
    assert_eq!(sink["events"], 20);
    assert!(sink["last_commit_at"].is_string(), "{sink}");
    assert!(sink["lag_seconds"].is_u64(), "{sink}");

    // A lost replication connection: not ready while reconnecting, then ready again.
    db.execute(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}'",
        db.name()
    ))
    .await;
    wait_for_status(port, "/readyz", 503, "reconnecting").await;
    wait_for_status(port, "/readyz", 200, "ready").await;
    assert_eq!(sample(&metrics(port).await, "outflow_reconnects_total", &[]), Some(1.0));
    let errors = sample(&metrics(port).await, "outflow_errors_total", &[("class", "transient")]);
    assert!(errors.is_some_and(|n| n >= 1.0), "{errors:?}");

    run.sigterm_and_wait().await.assert_success();
    db.cleanup().await;
}

#[tokio::test]
async fn readyz_fails_while_a_sink_falls_behind() {
    let db = TestDb::create("admin_lag").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let port = free_port();
    // A second sink writes to stdout, a pipe this test does not read until
    // it wants the sink to catch up: once the pipe is full, the sink is stuck.
    let outflow = Outflow::new(&db, &["public.t"])
        .section("[snapshot]\nmode = \"never\"")
        .section(&admin_section(port, "2s"))
        .section("[[sink]]\nname = \"pipe\"\nkind = \"jsonl\"\npath = \"-\"");
    std::fs::write(outflow.config_path(), outflow.config_text()).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_outflow"))
        .args(["run", "-c", &outflow.config_path().to_string_lossy()])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the outflow binary");
    let mut stdout = child.stdout.take().unwrap();

    db.wait_for_slot_streaming().await;
    wait_for_status(port, "/readyz", 200, "ready").await;
    // About 400 kB of events: far more than a pipe holds.
    write_rows(&db, 1, 1000).await;
    let reason = wait_for_status(port, "/readyz", 503, "behind the source").await;
    assert!(reason.contains("\"pipe\""), "{reason}");
    assert_eq!(reason.lines().count(), 1, "{reason}");
    let lag = sample(&metrics(port).await, "outflow_source_lag_seconds", &[("sink", "pipe")]).unwrap();
    assert!(lag > 2.0, "{lag}");

    // Reading the pipe lets the sink catch up: ready again.
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink).await;
        sink
    });
    wait_for_status(port, "/readyz", 200, "ready").await;
    wait_for(SHORT, "the pipe sink's lag to drop to 0", || async {
        sample(&metrics(port).await, "outflow_source_lag_seconds", &[("sink", "pipe")]) == Some(0.0)
    })
    .await;

    let pid = child.id().expect("outflow is running") as libc::pid_t;
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status =
        tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exit after SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    let piped = reader.await.unwrap();
    let lines = piped.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    assert_eq!(lines, 1000, "the pipe sink delivered every row once");
    db.cleanup().await;
}

#[tokio::test]
async fn a_taken_admin_port_is_a_clear_error() {
    let db = TestDb::create("admin_port").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let outflow = Outflow::new(&db, &["public.t"]).section(&admin_section(port, "60s"));
    let out = outflow.run_until_caught_up().await;
    let error = out.assert_clean_error();
    assert!(error.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", out.stderr);
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    drop(taken);
    db.cleanup().await;
}

#[tokio::test]
async fn metrics_count_the_events_a_filter_drops_per_table() {
    let db = TestDb::create("admin_filter").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let port = free_port();
    // No snapshot: rows inserted while it started would arrive twice (as
    // creates and as reads, DBLog's at-least-once), and the counts with them.
    let outflow = Outflow::new(&db, &["public.t"])
        .section("[snapshot]\nmode = \"never\"")
        .section("[[transform]]\nname = \"even\"\nfilter = \"after.id % 2 == 0\"")
        .section(&admin_section(port, "30s"));
    let run = outflow.spawn_run();
    wait_for_status(port, "/healthz", 200, "ok").await;
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO t SELECT g FROM generate_series(1, 10) g").await;
    let deadline = Instant::now() + SHORT;
    while changes(&outflow.events_so_far(), "t").len() != 5 {
        let (stderr, events) = (run.stderr(), outflow.events_so_far());
        assert!(Instant::now() < deadline, "the 5 even rows never arrived; got {events:?}; stderr:\n{stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let labels = [("transform", "even"), ("table", "public.t"), ("reason", "filter")];
    wait_for(SHORT, "5 dropped events in /metrics", || async {
        sample(&metrics(port).await, "outflow_transform_dropped_events_total", &labels) == Some(5.0)
    })
    .await;
    run.sigterm_and_wait().await.assert_success();
    db.cleanup().await;
}

/// `GET path` over HTTPS, trusting only `ca`: (status code, body), or the
/// error (refused connection, failed handshake).
async fn get_tls(port: u16, path: &str, ca: &str) -> Result<(u16, String), String> {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).map_err(|e| e.to_string())?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await; // the server may close without close_notify
    let text = String::from_utf8(response).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    Ok((status, body.to_string()))
}

/// `[admin] tls_cert`/`tls_key`: HTTPS only, verified against the CA that
/// signed the certificate (the test servers' throwaway CA); plain HTTP gets
/// no answer, and a client trusting another CA is refused.
#[tokio::test]
async fn admin_tls_serves_https_with_the_configured_certificate() {
    let db = TestDb::create("admin_tls").await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY)").await;
    let ca = crate::harness::pg_ca_path();
    let dir = std::path::Path::new(&ca).parent().unwrap().to_path_buf();
    let port = free_port();
    let section = format!(
        "{}\ntls_cert = {:?}\ntls_key = {:?}",
        admin_section(port, "60s"),
        dir.join("server.crt"),
        dir.join("server.key")
    );
    let outflow = Outflow::new(&db, &["public.items"]).section(&section);
    let run = outflow.spawn_run();
    let deadline = Instant::now() + SHORT;
    let (status, body) = loop {
        match get_tls(port, "/healthz", &ca).await {
            Ok(answer) => break answer,
            Err(e) => assert!(Instant::now() < deadline, "no HTTPS answer within {SHORT:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, metrics) = get_tls(port, "/metrics", &ca).await.expect("metrics over HTTPS");
    assert_eq!(status, 200);
    parse_metrics(&metrics);
    assert_eq!(get(port, "/healthz").await, None, "plain HTTP gets no answer");
    let other_ca = crate::harness::env_var("OUTFLOW_TEST_MYSQL_CA");
    let refused = get_tls(port, "/healthz", &other_ca).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("certificate")), "{refused:?}");
    run.sigterm_and_wait().await.assert_success();
    db.cleanup().await;
}
