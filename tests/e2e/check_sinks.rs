//! `outflow check` for the sinks: every configured sink gets a ✓ or ✗
//! line from its own preflight, each ✗ with its fix, and a failing sink
//! fails `check` (exit code 1) while the source is fine. Scenarios: an
//! unreachable Kafka broker next to a reachable one, JSONL and Parquet
//! directories on a read-only file system, an unreachable NATS server, and
//! a PostgreSQL apply-sink target whose user may not create anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Outcome, Outflow, TestDb};

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A ready PostgreSQL source (one keyed table) and `sinks` (TOML of the
/// `[[sink]]` tables; `{dir}` is the test's temp directory).
async fn setup(name: &str, sinks: &str) -> (TestDb, Outflow) {
    let db = TestDb::create(name).await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let (url, slot) = (db.url(), db.name().to_string());
    let sinks = sinks.to_string();
    let outflow = Outflow::raw(move |dir: &Path| {
        format!(
            "[source]\nkind = \"postgres\"\nurl = {}\ntables = [\"public.t\"]\nslot = {}\n\n[state]\ndir = {}\n\n{}",
            toml_str(&url),
            toml_str(&slot),
            toml_str(&dir.join("state").to_string_lossy()),
            sinks.replace("{dir}", &dir.to_string_lossy()),
        )
    });
    (db, outflow)
}

async fn check(outflow: &Outflow) -> Outcome {
    outflow.exec(&["check", "-c", &outflow.config_path().to_string_lossy()]).await
}

/// The `fix:` line printed under the ✗ line that starts with `what`.
fn fix_of<'a>(stdout: &'a str, what: &str) -> &'a str {
    let mut lines = stdout.lines();
    lines.by_ref().find(|l| l.starts_with(&format!("✗ {what}"))).unwrap_or_else(|| panic!("no ✗ {what}:\n{stdout}"));
    let fix = lines.next().unwrap_or_default().trim();
    assert!(fix.starts_with("fix: "), "no fix under ✗ {what}:\n{stdout}");
    fix
}

/// Asserts the source checks passed: only sink lines fail.
fn source_passed(stdout: &str) {
    assert!(stdout.contains("✓ wal_level = logical"), "{stdout}");
    assert!(stdout.contains("✓ public.t: SELECT granted"), "{stdout}");
}

#[tokio::test]
async fn check_names_the_fix_for_an_unreachable_kafka_broker() {
    let sinks = format!(
        "[[sink]]\nname = \"down\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\n\n\
         [[sink]]\nname = \"up\"\nkind = \"kafka\"\nbrokers = {}\n",
        toml_str(&crate::kafka::brokers())
    );
    let (db, outflow) = setup("check_kafka", &sinks).await;
    let out = check(&outflow).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    source_passed(&out.stdout);
    let fix = fix_of(&out.stdout, "sink \"down\": kafka brokers 127.0.0.1:1 are reachable");
    assert!(fix.contains("`brokers`") && fix.contains("sasl"), "{fix}");
    assert!(out.stdout.contains("✓ sink \"up\": kafka brokers"), "{}", out.stdout);
    assert!(out.stderr.contains("1 check(s) failed"), "{}", out.stderr);
    db.cleanup().await;
}

#[tokio::test]
async fn check_names_the_fix_for_an_unreachable_nats_server() {
    let sinks = "[[sink]]\nname = \"bus\"\nkind = \"nats\"\nurl = \"nats://u:secret@127.0.0.1:1\"\n";
    let (db, outflow) = setup("check_nats", sinks).await;
    let out = check(&outflow).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    source_passed(&out.stdout);
    let fix = fix_of(&out.stdout, "sink \"bus\": nats at nats://u:***@127.0.0.1:1 accepts the sink's credentials");
    assert!(fix.contains("`url`"), "{fix}");
    assert!(!out.stdout.contains("secret"), "{}", out.stdout);
    db.cleanup().await;
}

/// A read-only tmpfs on a fresh directory (the tests run as root, which
/// ignores permission bits), unmounted when dropped.
struct ReadOnly {
    dir: PathBuf,
}

impl ReadOnly {
    fn mount(dir: &Path) -> ReadOnly {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a read-only tmpfs on {} failed (these tests need root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        ReadOnly { dir: dir.to_path_buf() }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[tokio::test]
async fn check_names_the_fix_for_unwritable_jsonl_and_parquet_directories() {
    let sinks = "[[sink]]\nname = \"lines\"\nkind = \"jsonl\"\npath = \"{dir}/ro/events.jsonl\"\n\n\
                 [[sink]]\nname = \"files\"\nkind = \"parquet\"\npath = \"{dir}/ro/lake\"\n\n\
                 [[sink]]\nname = \"fine\"\nkind = \"parquet\"\npath = \"{dir}/rw/lake\"\n";
    let (db, outflow) = setup("check_dirs", sinks).await;
    let ro = outflow.config_path().parent().unwrap().join("ro");
    let _mounted = ReadOnly::mount(&ro);
    let out = check(&outflow).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    source_passed(&out.stdout);
    let fix = fix_of(&out.stdout, &format!("sink \"lines\": {} is writable", ro.display()));
    assert_eq!(fix, format!("fix: create {} and make it writable for this user", ro.display()));
    let lake = ro.join("lake");
    let fix = fix_of(&out.stdout, &format!("sink \"files\": {} is writable", lake.display()));
    assert_eq!(fix, format!("fix: create {} and make it writable for this user", lake.display()));
    assert!(out.stdout.contains("✓ sink \"fine\":"), "{}", out.stdout);
    assert!(!ro.join("lake").exists() && !ro.parent().unwrap().join("rw").exists(), "check created a directory");
    assert!(out.stderr.contains("2 check(s) failed"), "{}", out.stderr);
    db.cleanup().await;
}

#[tokio::test]
async fn check_names_the_grant_a_postgres_target_user_without_create_needs() {
    let target = TestDb::create("check_target").await;
    let role = format!("check_nocreate_{}", std::process::id());
    target.execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw';")).await;
    target.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC; CREATE SCHEMA mine").await;
    let sinks = format!(
        "[[sink]]\nname = \"replica\"\nkind = \"postgres\"\nurl = {}\nschema = \"mine\"\n\n\
         [[sink]]\nname = \"owner\"\nkind = \"postgres\"\nurl = {}\n",
        toml_str(&target.url_as(&role, "pw", "")),
        toml_str(&target.url()),
    );
    let (db, outflow) = setup("check_pg_sink", &sinks).await;
    let out = check(&outflow).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    source_passed(&out.stdout);
    assert!(out.stdout.contains("✓ sink \"replica\": connect to the postgres target"), "{}", out.stdout);
    let fix = fix_of(&out.stdout, &format!("sink \"replica\": \"{role}\" may create schema \"outflow\""));
    assert!(fix.contains(&format!("GRANT CREATE ON DATABASE \"{}\" TO \"{role}\";", target.name())), "{fix}");
    let fix = fix_of(&out.stdout, &format!("sink \"replica\": \"{role}\" may create tables in schema \"mine\""));
    assert!(fix.contains(&format!("GRANT USAGE, CREATE ON SCHEMA \"mine\" TO \"{role}\";")), "{fix}");
    assert!(out.stdout.contains("✓ sink \"owner\": connect to the postgres target"), "{}", out.stdout);
    assert!(out.stdout.contains("may create schema \"outflow\""), "{}", out.stdout);
    assert!(!out.stdout.contains(":pw@") && !out.stdout.contains("'pw'"), "the password is not shown");
    assert!(out.stderr.contains("2 check(s) failed"), "{}", out.stderr);
    db.cleanup().await;
    target.cleanup().await;
    let admin = crate::harness::env_var("OUTFLOW_TEST_PG_URL");
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await.unwrap();
}
