//! The web console of `outflow run` (`src/console/`) in a real browser:
//! headless Chromium driven by playwright-core (`tests/browser/console.test.mjs`,
//! set up by `scripts/browser-env.sh`, whose path `scripts/test.sh` puts in
//! `OUTFLOW_TEST_BROWSER`; without it the test says so and does nothing).
//!
//! The pipeline's only sink writes JSONL to stdout, which the test reads at
//! a set pace: the sink cannot go faster, so the snapshot of `big` is
//! visibly in progress (and lagging) while the browser looks, whatever the
//! machine's speed; a writer keeps streaming changes into `live`. Then the
//! pace is lifted and the page's snapshot action with a filter must bring
//! exactly the matching rows as `r` events; pause and resume from the page
//! follow. Screenshots are kept in `<target dir>/artifacts/console/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::harness::{wait_for, Outflow, TestDb, SHORT};

/// In the source URL as its password (the test server trusts every login):
/// the console must never show it.
const SECRET: &str = "ConsoleSecret-5150";
const TOKEN: &str = "console-test-token-8086";
const ROWS: i64 = 30_000;

/// The node_modules directory of scripts/browser-env.sh, if set up.
fn browser_modules() -> Option<String> {
    std::env::var("OUTFLOW_TEST_BROWSER").ok().filter(|v| !v.is_empty())
}

/// `<target dir>/artifacts/console`, next to the binary's profile directory.
fn artifacts_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_outflow"));
    bin.ancestors().nth(2).expect("the binary is in <target>/<profile>/").join("artifacts").join("console")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port").local_addr().unwrap().port()
}

/// `GET path` over HTTP/1.0: the body of a 200 answer, or None.
async fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1)? == "200").then(|| body.to_string())
}

async fn status(port: u16) -> Option<Value> {
    serde_json::from_str(&get(port, "/status").await?).ok()
}

/// The snapshot entry of `table` in `/status`.
fn snapshot_of<'a>(status: &'a Value, table: &str) -> Option<&'a Value> {
    status["snapshot"].as_array()?.iter().find(|t| t["table"] == table)
}

/// Runs the browser script for one phase; returns its JSON result.
async fn browse(modules: &str, args: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.test.mjs");
    let run = Command::new("node")
        .arg(&script)
        .arg(args.to_string())
        .env("OUTFLOW_TEST_BROWSER", modules)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("the browser script did not finish within 180 s ({args})"))
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script failed ({args}); screenshots in {}:\n{stderr}\n{stdout}",
        artifacts_dir().display()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the browser script printed no result ({e}):\n{stdout}"))
}

/// The stdout sink's output, read 16 KiB per 50 ms while throttled.
struct Pipe {
    out: Arc<Mutex<Vec<u8>>>,
    throttled: Arc<AtomicBool>,
}

impl Pipe {
    fn start(mut stdout: tokio::process::ChildStdout) -> Pipe {
        let out = Arc::new(Mutex::new(Vec::new()));
        let throttled = Arc::new(AtomicBool::new(true));
        let (sink, pace) = (out.clone(), throttled.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = stdout.read(&mut buf).await {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
                if pace.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Pipe { out, throttled }
    }

    fn unthrottle(&self) {
        self.throttled.store(false, Ordering::SeqCst);
    }

    /// The complete lines so far, parsed.
    fn events(&self) -> Vec<Value> {
        let out = self.out.lock().unwrap();
        let complete = out.rsplitn(2, |b| *b == b'\n').nth(1).unwrap_or_default();
        complete
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("a JSON line on the sink's stdout"))
            .collect()
    }
}

/// The `id`s of the `r` events of `public.big` among `events`.
fn read_ids(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["op"] == "r" && e["source"]["table"] == "big")
        .map(|e| e["after"]["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn console_shows_a_running_snapshot_and_its_actions_work() {
    let Some(modules) = browser_modules() else {
        eprintln!(
            "skipping console::console_shows_a_running_snapshot_and_its_actions_work: OUTFLOW_TEST_BROWSER is \
             not set (scripts/test.sh sets it from scripts/browser-env.sh)"
        );
        return;
    };
    let db = TestDb::create("console").await;
    db.execute(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, payload text);
         INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, {ROWS}) g;
         ANALYZE big;
         CREATE TABLE live (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());"
    ))
    .await;
    let port = free_port();
    let admin = format!("[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"${{OUTFLOW_ADMIN_TOKEN}}\"");
    let outflow = Outflow::new(&db, &["public.big", "public.live"])
        .source_url(db.url_as("postgres", SECRET, ""))
        .section("[snapshot]\nchunk_size = 200\nparallelism = 1")
        .section(&admin);
    // Any retained WAL is over 1 byte: the retention warning shows. The one
    // sink writes to stdout, read by the test at its own pace.
    let text = outflow.config_text().replace("[source]\n", "[source]\nwal_warn_bytes = 1\n");
    let sinks_at = text.find("[[sink]]").expect("a sink section");
    let text = format!(
        "{}[[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = \"-\"\nformat = \"debezium\"\n",
        &text[..sinks_at]
    );
    std::fs::write(outflow.config_path(), &text).unwrap();
    let stderr_path = outflow.state_dir().with_extension("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .args(["run", "-c", &outflow.config_path().to_string_lossy()])
        .env("OUTFLOW_ADMIN_TOKEN", TOKEN)
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the outflow binary");
    let pipe = Pipe::start(child.stdout.take().unwrap());
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    // A writer streams changes into `live` while the snapshot runs.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (client, writing) = (db.connect().await, writing.clone());
        tokio::spawn(async move {
            while writing.load(Ordering::SeqCst) {
                client.batch_execute("INSERT INTO live DEFAULT VALUES").await.expect("the writer's insert");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    wait_for(SHORT, "the snapshot of public.big under way in /status", || async {
        status(port).await.is_some_and(|s| {
            snapshot_of(&s, "public.big").is_some_and(|t| t["status"] == "running" && t["rows"].as_u64() > Some(0))
        })
    })
    .await;
    let artifacts = artifacts_dir();
    let url = format!("http://127.0.0.1:{port}/");
    let viewed = browse(&modules, json!({"phase": "view", "url": url, "artifacts": artifacts, "secret": SECRET})).await;
    eprintln!("console seen: {viewed}");
    assert_eq!(viewed["table"], "public.big", "{viewed}");
    assert_eq!(viewed["estimate"], ROWS, "ANALYZE's estimate is the table's size: {viewed}");
    assert!(artifacts.join("console-snapshot.png").is_file(), "a screenshot in {}", artifacts.display());
    let now = status(port).await.expect("/status answers");
    assert_ne!(snapshot_of(&now, "public.big").unwrap()["status"], "done", "the throttled snapshot is still running");

    // The pace lifted: the snapshot completes, every row once.
    pipe.unthrottle();
    wait_for(SHORT, "all of public.big in the sink", || async { read_ids(&pipe.events()).len() as i64 >= ROWS }).await;
    let mut ids = read_ids(&pipe.events());
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as i64, ROWS, "each row of big once");

    // The page's snapshot action, with the token and a filter: exactly the
    // matching rows come again as reads.
    let before = pipe.events().len();
    let acted = browse(
        &modules,
        json!({"phase": "action", "url": url, "artifacts": artifacts, "secret": SECRET,
               "token": TOKEN, "tables": ["public.big"], "filter": "id % 1000 = 7", "sink": "events"}),
    )
    .await;
    let id = acted["id"].as_str().expect("a signal id").to_string();
    let expected: Vec<i64> = (0..ROWS / 1000).map(|k| k * 1000 + 7).collect();
    wait_for(SHORT, &format!("signal {id} done in /api/signals"), || async {
        let signals: Value =
            get(port, "/api/signals").await.and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default();
        signals["signals"].as_array().is_some_and(|l| l.iter().any(|s| s["id"] == id.as_str() && s["status"] == "done"))
    })
    .await;
    wait_for(SHORT, "the filtered snapshot's rows", || async {
        read_ids(&pipe.events()[before..]).len() >= expected.len()
    })
    .await;
    let mut again = read_ids(&pipe.events()[before..]);
    again.sort_unstable();
    assert_eq!(again, expected, "exactly the rows matching the filter, once each");

    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(matches!(child.try_wait(), Ok(None)), "outflow stopped:\n{}", stderr());
    let pid = child.id().expect("outflow is running") as libc::pid_t;
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exit = tokio::time::timeout(SHORT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("outflow did not exit within {SHORT:?} of SIGTERM:\n{}", stderr()))
        .unwrap();
    assert!(exit.success(), "{exit:?}:\n{}", stderr());
    db.cleanup().await;
}
