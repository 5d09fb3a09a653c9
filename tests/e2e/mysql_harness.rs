//! Building blocks for the MySQL/MariaDB scenarios: a throwaway database per
//! test on a server from `scripts/test-services.sh` ([`MyDb`]), and the real
//! `outflow` binary run with a `kind = "mysql"` config ([`MyOutflow`]).
//! Database names are unique per test; the binlog is shared, so each test
//! captures only its own database's tables and uses its own server_id.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use mysql_async::prelude::Queryable;
use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{env_var, Outcome};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct MyDb {
    pub base_url: String,
    pub name: String,
    pub conn: mysql_async::Conn,
}

impl MyDb {
    pub async fn create(env: &str, hint: &str) -> MyDb {
        let base_url = env_var(env);
        let name = format!("t_{hint}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&base_url).unwrap())
            .await
            .expect("connect to test mariadb");
        conn.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
        conn.query_drop(format!("USE {name}")).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4").await.unwrap();
        MyDb { base_url, name, conn }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.base_url, self.name)
    }

    pub async fn exec(&mut self, sql: &str) {
        self.conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// A unique replica id per test (tests run in parallel against one server).
pub fn server_id() -> u32 {
    1000 + std::process::id() % 1000 * 100 + NEXT.fetch_add(1, Ordering::SeqCst)
}

pub struct MyOutflow {
    pub dir: TempDir,
    pub url: String,
    pub tables: Vec<String>,
    pub server_id: u32,
    /// Extra TOML appended to the config (e.g. a `[snapshot]` section).
    pub extra: String,
    /// Extra keys of `[source]` (e.g. `exclude_tables = [...]`).
    pub source_extra: String,
    /// The pipeline's `name`, when not the default.
    pub name: Option<String>,
}

impl MyOutflow {
    pub fn new(db: &MyDb) -> MyOutflow {
        MyOutflow {
            dir: tempfile::tempdir().unwrap(),
            url: db.url(),
            tables: vec![format!("{}.*", db.name)],
            server_id: server_id(),
            extra: String::new(),
            source_extra: String::new(),
            name: None,
        }
    }

    /// Adds TOML to the generated config, e.g. `[snapshot]\nchunk_size = 100`.
    pub fn section(mut self, toml: &str) -> MyOutflow {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Starts a long-running `outflow run` (stderr to `run.stderr` in the temp dir).
    pub fn spawn_run(&self) -> tokio::process::Child {
        let stderr = std::fs::File::create(self.dir.path().join("run.stderr")).unwrap();
        self.command(&["run"]).stderr(stderr).spawn().expect("starting outflow")
    }

    /// SIGTERM, then the exit status (0 expected: drained and committed).
    pub async fn sigterm(&self, mut child: tokio::process::Child) {
        let pid = child.id().expect("outflow exited before SIGTERM") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(crate::harness::RUN_TIMEOUT, child.wait()).await.unwrap().unwrap();
        let stderr = std::fs::read_to_string(self.dir.path().join("run.stderr")).unwrap_or_default();
        assert!(status.success(), "outflow run failed after SIGTERM:\n{stderr}");
    }

    /// The sink's stored snapshot progress of `table` (`db.table`).
    pub fn snapshot_progress(&self, table: &str) -> Value {
        let text = std::fs::read_to_string(self.state_dir().join("sinks/events.json")).unwrap_or_default();
        let offset: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        offset["snapshot"][table].clone()
    }

    pub fn out_path(&self) -> PathBuf {
        self.dir.path().join("out.jsonl")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn write_config(&self) -> PathBuf {
        let path = self.dir.path().join("outflow.toml");
        let tables: Vec<String> = self.tables.iter().map(|t| format!("{t:?}")).collect();
        let name = self.name.as_ref().map(|n| format!("name = {n:?}\n")).unwrap_or_default();
        let text = format!(
            "{name}[source]\nkind = \"mysql\"\nurl = {:?}\ntables = [{}]\nserver_id = {}\n{}\n[state]\ndir = {:?}\n[[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = {:?}\n{}",
            self.url,
            tables.join(", "),
            self.server_id,
            self.source_extra,
            self.state_dir(),
            self.out_path(),
            self.extra
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let config = self.write_config();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_outflow"));
        cmd.args(args).arg("-c").arg(config).kill_on_drop(true);
        cmd
    }

    pub async fn exec(&self, args: &[&str]) -> Outcome {
        let out = tokio::time::timeout(crate::harness::RUN_TIMEOUT, self.command(args).output())
            .await
            .expect("outflow timed out")
            .expect("running outflow");
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn run_until_caught_up(&self) -> Outcome {
        self.exec(&["run", "--until-caught-up"]).await
    }

    /// The change events written so far (Debezium envelopes).
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.out_path()).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).expect("jsonl line")).collect()
    }
}

/// A clean user-facing failure: non-zero exit, no panic, an `error: ` line
/// followed by a `hint: ` line (log lines such as warnings may precede it).
/// Returns the error line.
#[track_caller]
pub fn clean_error(out: &Outcome) -> String {
    assert!(matches!(out.code, Some(c) if c != 0), "expected a non-zero exit; stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "outflow panicked:\n{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error: ` line; stderr:\n{}", out.stderr));
    assert!(
        lines.get(i + 1).is_some_and(|l| l.starts_with("hint: ")),
        "no `hint: ` after the error; stderr:\n{}",
        out.stderr
    );
    lines[i].to_string()
}

/// Three times: start `outflow run`, insert 1500 rows `(id, REPEAT('x', 200))`
/// into table `t` in statements of 50, and kill -9 the process after a random
/// 50-800 ms. Returns how many rows were written (ids 1 to that).
pub async fn mysql_kill_9_while_writing(db: &mut MyDb, outflow: &crate::harness::Outflow) -> i64 {
    use rand::Rng;
    let mut written = 0i64;
    for _ in 0..3 {
        let mut run = outflow.spawn_run();
        for _ in 0..30 {
            let rows: Vec<String> = (written + 1..=written + 50).map(|i| format!("({i}, REPEAT('x', 200))")).collect();
            db.exec(&format!("INSERT INTO t VALUES {}", rows.join(", "))).await;
            written += 50;
        }
        tokio::time::sleep(std::time::Duration::from_millis(rand::rng().random_range(50..800))).await;
        run.kill9().await;
    }
    written
}
