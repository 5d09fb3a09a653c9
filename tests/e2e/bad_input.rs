//! User mistakes and hostile conditions: each must end in a non-zero exit
//! with stderr starting `error: <what failed>` (optionally a `hint:` line),
//! naming the culprit, and never a panic. Also: state the user did not
//! expect us to touch stays untouched.

use std::path::{Path, PathBuf};

use crate::harness::{changes, wait_for, Outflow, TestDb, SHORT};

#[tokio::test]
async fn unknown_config_key_is_a_usage_error_naming_the_key_and_the_nearest_valid_one() {
    // No server is contacted: config errors come before any connection.
    let db = TestDb::create("unknown_key").await;
    let base = Outflow::new(&db, &["public.t"]);
    let valid = base.config_text();

    for (typo, meant) in [("tabels", "tables"), ("fromat", "format")] {
        let key_line = format!("\n{meant} = ");
        assert!(valid.contains(&key_line), "generated config lacks `{meant}`:\n{valid}");
        let broken = valid.replacen(&key_line, &format!("\n{typo} = "), 1);
        let outflow = Outflow::new(&db, &["public.t"]).raw_config(broken);

        let out = outflow.run_until_caught_up().await;
        let error = out.assert_clean_error();
        assert_eq!(out.code, Some(2), "a config error exits 2; stderr:\n{}", out.stderr);
        assert!(error.contains(typo), "the error should name `{typo}`: {error}");
        assert!(out.stderr.contains(meant), "stderr should suggest `{meant}`:\n{}", out.stderr);
    }
}

#[tokio::test]
async fn wrong_password_fails_with_one_authentication_error() {
    let db = TestDb::create("wrong_password").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]).source_url(db.url_as("outflow_scram", "not-the-password", ""));

    let out = outflow.run_until_caught_up().await;
    let error = out.assert_clean_error();
    assert!(error.contains("authentication"), "the error should say authentication failed: {error}");
    assert!(!error.contains("not-the-password"), "the error must not print the password: {error}");
}

#[tokio::test]
async fn server_without_logical_wal_level_is_refused_with_the_fix() {
    let db = TestDb::create_on("OUTFLOW_TEST_PG_REPLICA_WAL_URL", "replica_wal").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]);

    let out = outflow.run_until_caught_up().await;
    out.assert_clean_error();
    assert!(out.stderr.contains("wal_level"), "stderr should name wal_level:\n{}", out.stderr);
    assert!(out.stderr.contains("logical"), "stderr should say it must be logical:\n{}", out.stderr);
}

#[tokio::test]
async fn unknown_table_is_named_in_the_error() {
    let db = TestDb::create("unknown_table").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t", "public.no_such_table"]);

    let out = outflow.run_until_caught_up().await;
    let error = out.assert_clean_error();
    assert!(error.contains("no_such_table"), "the error should name the missing table: {error}");
}

#[tokio::test]
async fn corrupt_state_file_is_reported_by_name_and_left_unchanged() {
    let db = TestDb::create("corrupt_state").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    outflow.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (1)").await;
    outflow.run_until_caught_up().await.assert_success();

    let files = state_files(&outflow.state_dir());
    assert!(!files.is_empty(), "a successful run left no files in {}", outflow.state_dir().display());
    let garbage: &[u8] = b"\x00\xff{{ this is not outflow state \xfe\n";
    for (n, file) in files.into_iter().enumerate() {
        let original = std::fs::read(&file).unwrap();
        std::fs::write(&file, garbage).unwrap();
        // A pending change, so that files read only while streaming (the
        // schema history) are read too.
        db.execute(&format!("INSERT INTO t VALUES ({})", n + 2)).await;

        let out = outflow.run_until_caught_up().await;
        let error = out.assert_clean_error().to_string();
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(error.contains(name.as_ref()), "the error should name {}: {error}", file.display());
        assert_eq!(std::fs::read(&file).unwrap(), garbage, "{} was modified by the failed run", file.display());

        std::fs::write(&file, original).unwrap();
    }
    // With the files restored, outflow works again.
    outflow.run_until_caught_up().await.assert_success();
}

#[tokio::test]
async fn second_run_on_the_same_state_dir_is_refused_and_the_first_keeps_running() {
    let db = TestDb::create("second_run").await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    // Create the slot first: while CREATE_REPLICATION_SLOT waits for a
    // consistent point (behind other tests' open transactions) the slot
    // already looks active, and rows written meanwhile are not streamed.
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let mut first = outflow.spawn_run();
    db.wait_for_slot_streaming().await;

    let second = outflow.run_until_caught_up().await;
    let error = second.assert_clean_error().to_lowercase();
    assert!(
        error.contains("lock") || error.contains("another"),
        "the error should say another run holds the state dir: {error}"
    );
    assert!(first.is_running(), "the first run stopped; its stderr:\n{}", first.stderr());

    // And the first run still works: it delivers a new row and stops cleanly.
    db.execute("INSERT INTO t VALUES (1)").await;
    wait_for(SHORT, "the first run to deliver the row", || async {
        !changes(&outflow.events_so_far(), "t").is_empty()
    })
    .await;
    first.sigterm_and_wait().await.assert_success();
}

/// Every regular file under `dir` except lock files.
fn state_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.file_name().unwrap().to_string_lossy().to_lowercase().contains("lock") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
