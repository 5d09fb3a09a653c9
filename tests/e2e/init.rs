//! `outflow init URL`: against a real PostgreSQL and a real MariaDB, the
//! config it writes passes `check`, is accepted by `outflow run
//! --until-caught-up` and replicates the chosen tables' rows (read back from
//! the JSONL file); `--tables` restricts the capture; a table without a key
//! is reported and left out; an existing file is kept unless `--force`; the
//! URL's password is never written, only `${OUTFLOW_SOURCE_PASSWORD}`.

use std::path::Path;
use std::process::Stdio;

use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::harness::{changes, ops, read_jsonl, Outcome, TestDb, RUN_TIMEOUT};
use crate::mysql_harness::MyDb;

/// `outflow ARGS...` in `dir`, with `env` and without any password from
/// the test's own environment.
async fn outflow(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_outflow"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("PGPASSWORD")
        .env_remove("OUTFLOW_SOURCE_PASSWORD")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("outflow {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("running outflow");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The written config, parsed, and its `[source] tables`.
fn written(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let tables = config["source"]["tables"].as_array().expect("[source] tables").iter();
    (text.clone(), tables.map(|t| t.as_str().expect("a table name").to_string()).collect())
}

/// The `id`s of the `after` images of `table`'s events with `op`.
fn ids(events: &[Value], table: &str, op: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = changes(events, table)
        .into_iter()
        .filter(|e| e["op"] == op)
        .map(|e| e["after"]["id"].as_i64().unwrap_or_else(|| panic!("no after.id in {e}")))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn init_on_postgres_writes_a_config_that_replicates_the_keyed_tables() {
    let db = TestDb::create("init").await;
    db.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text);
         INSERT INTO orders SELECT g, 'c' || g FROM generate_series(1, 40) g;
         CREATE TABLE items (id int PRIMARY KEY);
         INSERT INTO items VALUES (1), (2), (3);
         CREATE TABLE audit_log (at timestamptz DEFAULT now(), note text);
         INSERT INTO audit_log (note) VALUES ('x');",
    )
    .await;
    // The test server trusts the superuser, so any password logs in: this
    // one only has to stay out of the written file.
    let password = format!("pw-{:08x}", rand::random::<u32>());
    let url = db.url_as("postgres", &password, "");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outflow.toml");
    let env = [("OUTFLOW_SOURCE_PASSWORD", password.as_str())];

    let out = outflow(dir.path(), &["init", &url], &[]).await;
    out.assert_success();
    assert!(out.stdout.contains("all checks passed"), "{}", out.stdout);
    let report = &out.stderr;
    assert!(report.contains("✓ wal_level = logical"), "{report}");
    assert!(report.contains("public.orders") && report.contains("key (id)"), "{report}");
    let keyless = report.lines().find(|l| l.contains("public.audit_log")).unwrap_or_else(|| panic!("{report}"));
    assert!(keyless.contains("NO PRIMARY KEY") && keyless.ends_with("left out"), "{report}");
    assert!(report.contains("ALTER TABLE public.audit_log REPLICA IDENTITY FULL"), "{report}");
    assert!(report.contains("OUTFLOW_SOURCE_PASSWORD"), "{report}");
    let (text, tables) = written(&config);
    assert_eq!(tables, ["public.items", "public.orders"]);
    assert!(!text.contains(&password), "the password was written:\n{text}");
    assert!(text.contains("postgres:${OUTFLOW_SOURCE_PASSWORD}@"), "{text}");

    // Without the variable, run refuses with the fix; with it, it replicates.
    let out = outflow(dir.path(), &["run", "--until-caught-up"], &[]).await;
    assert!(out.assert_clean_error().contains("OUTFLOW_SOURCE_PASSWORD"), "{}", out.stderr);
    outflow(dir.path(), &["run", "--until-caught-up"], &env).await.assert_success();
    db.execute("INSERT INTO orders VALUES (41, 'late'); INSERT INTO audit_log (note) VALUES ('y');").await;
    outflow(dir.path(), &["run", "--until-caught-up"], &env).await.assert_success();
    let events = read_jsonl(&dir.path().join("events.jsonl"));
    assert_eq!(ids(&events, "orders", "r"), (1..=40).collect::<Vec<_>>());
    assert_eq!(ids(&events, "orders", "c"), [41]);
    assert_eq!(ids(&events, "items", "r"), [1, 2, 3]);
    assert!(changes(&events, "audit_log").is_empty(), "a left-out table was captured");

    // An existing file is kept; --force replaces it; --tables restricts.
    let before = std::fs::read(&config).unwrap();
    let out = outflow(dir.path(), &["init", &url, "--tables", "public.items"], &[]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.assert_clean_error().contains("outflow.toml already exists"), "{}", out.stderr);
    assert_eq!(std::fs::read(&config).unwrap(), before, "the existing config was changed");

    let other = tempfile::tempdir().unwrap();
    let restricted = other.path().join("items.toml");
    let name = format!("items_{}", db.name());
    let args = ["init", &url, "--tables", "items", "--name", &name, "-o", "items.toml"];
    outflow(other.path(), &args, &[]).await.assert_success();
    let (_, tables) = written(&restricted);
    assert_eq!(tables, ["public.items"]);
    outflow(other.path(), &["run", "-c", "items.toml", "--until-caught-up"], &env).await.assert_success();
    let events = read_jsonl(&other.path().join("events.jsonl"));
    assert_eq!(ids(&events, "items", "r"), [1, 2, 3]);
    assert!(changes(&events, "orders").is_empty(), "--tables did not restrict: {events:?}");

    // (A new name: the old pipeline's publication lists both tables.)
    let name = format!("again_{}", db.name());
    let out = outflow(dir.path(), &["init", &url, "--tables", "public.orders", "--name", &name, "--force"], &[]).await;
    out.assert_success();
    assert_eq!(written(&config).1, ["public.orders"]);
    db.cleanup().await;
}

#[tokio::test]
async fn init_on_postgres_reports_a_listed_keyless_table_and_bad_input() {
    let db = TestDb::create("init_keyless").await;
    db.execute("CREATE TABLE log (note text)").await;
    let dir = tempfile::tempdir().unwrap();

    // No table with a key: nothing is written, the report says why.
    let out = outflow(dir.path(), &["init", &db.url()], &[]).await;
    assert!(out.stderr.contains("public.log") && out.stderr.contains("NO PRIMARY KEY"), "{}", out.stderr);
    let error = out.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(error.contains("has a primary key"), "{}", out.stderr);
    assert!(!dir.path().join("outflow.toml").exists());

    // Listed anyway: written, and `check` fails with the fix.
    let out = outflow(dir.path(), &["init", &db.url(), "--tables", "public.log"], &[]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("✗ public.log: rows are identifiable"), "{}", out.stdout);
    assert!(out.stderr.contains("error: outflow.toml was written, but 1 check(s) failed"), "{}", out.stderr);
    assert_eq!(written(&dir.path().join("outflow.toml")).1, ["public.log"]);

    let out = outflow(dir.path(), &["init", &db.url(), "--tables", "public.nope", "-o", "x.toml"], &[]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("error: table public.nope does not exist in database"), "{}", out.stderr);
    let out = outflow(dir.path(), &["init", "postgres://postgres@127.0.0.1:1/x", "-o", "x.toml"], &[]).await;
    assert!(out.assert_clean_error().contains("cannot connect to postgres at 127.0.0.1:1: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("refused") && out.stderr.contains("hint: check the URL's host and port"),
        "{}",
        out.stderr
    );
    let out = outflow(dir.path(), &["init", "mariadb://root@127.0.0.1:1/x", "-o", "x.toml"], &[]).await;
    assert!(out.assert_clean_error().contains("cannot connect to mysql at 127.0.0.1:1: "), "{}", out.stderr);
    let out = outflow(dir.path(), &["init", "redis://127.0.0.1:6379", "-o", "x.toml"], &[]).await;
    assert!(out.assert_clean_error().contains("needs a postgres:// or mysql:// URL"), "{}", out.stderr);
    assert!(!dir.path().join("x.toml").exists());
    db.cleanup().await;
}

#[tokio::test]
async fn init_on_mariadb_writes_a_config_that_replicates_the_keyed_tables() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "init").await;
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY, note TEXT)").await;
    db.exec("INSERT INTO orders VALUES (1, 'a'), (2, 'b'), (3, 'c')").await;
    db.exec("CREATE TABLE log (note TEXT)").await;
    db.exec("INSERT INTO log VALUES ('x')").await;
    // A user with exactly the grants outflow needs, and a password.
    let user = format!("init_{}", db.name.trim_start_matches("t_init_"));
    let password = format!("pw-{:08x}", rand::random::<u32>());
    db.exec(&format!("CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")).await;
    db.exec(&format!("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'")).await;
    db.exec(&format!("GRANT SELECT ON {}.* TO '{user}'@'127.0.0.1'", db.name)).await;
    let server = db.base_url.rsplit('@').next().expect("host:port in OUTFLOW_TEST_MYSQL_URL");
    let url = format!("mariadb://{user}:{password}@{server}/{}", db.name);
    let dir = tempfile::tempdir().unwrap();
    let env = [("OUTFLOW_SOURCE_PASSWORD", password.as_str())];

    let out = outflow(dir.path(), &["init", &url], &[]).await;
    out.assert_success();
    let report = &out.stderr;
    assert!(report.contains("MariaDB") && report.contains("✓ binlog_format = ROW"), "{report}");
    let keyless =
        report.lines().find(|l| l.contains(&format!("{}.log", db.name))).unwrap_or_else(|| panic!("{report}"));
    assert!(keyless.contains("NO PRIMARY KEY") && keyless.ends_with("left out"), "{report}");
    assert!(report.contains("ADD PRIMARY KEY"), "{report}");
    let (text, tables) = written(&dir.path().join("outflow.toml"));
    assert_eq!(tables, [format!("{}.orders", db.name)]);
    assert!(!text.contains(&password), "the password was written:\n{text}");
    assert!(text.contains(&format!("mysql://{user}:${{OUTFLOW_SOURCE_PASSWORD}}@")), "{text}");

    outflow(dir.path(), &["run", "--until-caught-up"], &env).await.assert_success();
    db.exec("INSERT INTO orders VALUES (4, 'd')").await;
    db.exec("INSERT INTO log VALUES ('y')").await;
    outflow(dir.path(), &["run", "--until-caught-up"], &env).await.assert_success();
    let events = read_jsonl(&dir.path().join("events.jsonl"));
    assert_eq!(ids(&events, "orders", "r"), [1, 2, 3]);
    assert_eq!(ids(&events, "orders", "c"), [4]);
    assert!(changes(&events, "log").is_empty(), "a left-out table was captured: {:?}", ops(&changes(&events, "log")));

    // The keyless table listed anyway: reported, and `check` names the fix.
    let args = ["init", &url, "--tables", &format!("{}.log", db.name), "-o", "log.toml"];
    let out = outflow(dir.path(), &args, &[]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("listed by --tables"), "{}", out.stderr);
    assert!(out.stdout.contains("ALTER TABLE") && out.stdout.contains("ADD PRIMARY KEY"), "{}", out.stdout);
    db.conn.query_drop(format!("DROP USER '{user}'@'127.0.0.1'")).await.unwrap();
}
