//! `outflow check`: ✓ for a ready server, and each ✗ names its fix.

use crate::harness::{env_var, Outflow, TestDb};

#[tokio::test]
async fn check_passes_a_ready_server_and_names_the_fix_for_each_failure() {
    let db = TestDb::create("check").await;
    db.execute("CREATE TABLE keyed (id int PRIMARY KEY)").await;
    db.execute("CREATE TABLE keyless (v int)").await;

    let ready = Outflow::new(&db, &["public.keyed"]);
    let out = ready.exec(&["check", "-c", &ready.config_path().to_string_lossy()]).await;
    out.assert_success();
    assert!(out.stdout.contains("✓ wal_level = logical") && out.stdout.contains("all checks passed"), "{}", out.stdout);
    assert!(!out.stdout.contains('✗'), "{}", out.stdout);

    let keyless = Outflow::new(&db, &["public.keyless"]);
    let out = keyless.exec(&["check", "-c", &keyless.config_path().to_string_lossy()]).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stdout.contains("✗ public.keyless: rows are identifiable"), "{}", out.stdout);
    assert!(out.stdout.contains("REPLICA IDENTITY FULL"), "{}", out.stdout);

    let replica_url = env_var("OUTFLOW_TEST_PG_REPLICA_WAL_URL");
    let wrong_server = Outflow::new(&db, &["public.keyed"]).source_url(replica_url);
    let out = wrong_server.exec(&["check", "-c", &wrong_server.config_path().to_string_lossy()]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.contains("✗ wal_level = replica"), "{}", out.stdout);
    assert!(out.stdout.contains("ALTER SYSTEM SET wal_level = logical"), "{}", out.stdout);
    db.cleanup().await;
}
