//! TLS to MariaDB (`ssl-mode`, `ssl-ca` in `[source] url`): the test
//! server offers TLS with a throwaway CA and a certificate for IP
//! 127.0.0.1 (scripts/mariadb-services.sh). outflow reads as a user the
//! server admits only over TLS (`REQUIRE SSL`), so every connection it
//! opens (catalog, snapshot, binlog stream) must be encrypted for the run to
//! succeed; a certificate from another CA, or one that does not name the
//! host, is refused with one error line and nothing written.

use crate::harness::env_var;
use crate::mysql_harness::{clean_error, MyDb, MyOutflow};

const USER: &str = "tls_only";
const PASSWORD: &str = "tls-only-pw";

/// A database with a few rows, and a user that may only connect over TLS.
async fn setup(hint: &str) -> MyDb {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", hint).await;
    db.exec(&format!("CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL")).await;
    db.exec(&format!("GRANT ALL ON *.* TO '{USER}'@'127.0.0.1'")).await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(20))").await;
    db.exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
    db
}

/// The url of `db` as the TLS-only user at `host`, with `query`.
fn tls_url(db: &MyDb, host: &str, query: &str) -> String {
    let port = env_var("OUTFLOW_TEST_MYSQL_URL").rsplit(':').next().unwrap().to_string();
    format!("mysql://{USER}:{PASSWORD}@{host}:{port}/{}?{query}", db.name)
}

async fn streams_over_tls(hint: &str, query: &str) {
    let mut db = setup(hint).await;
    let mut outflow = MyOutflow::new(&db);
    outflow.url = tls_url(&db, "127.0.0.1", query);
    outflow.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO items VALUES (3, 'c')").await;
    db.exec("UPDATE items SET note = 'z' WHERE id = 1").await;
    outflow.run_until_caught_up().await.assert_success();
    let ops: Vec<String> = outflow.events().iter().map(|e| e["op"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(ops, ["r", "r", "c", "u"], "{:#?}", outflow.events());
}

#[tokio::test]
async fn mariadb_tls_verify_identity_against_the_test_ca() {
    let query = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", env_var("OUTFLOW_TEST_MYSQL_CA"));
    streams_over_tls("tls_verify_identity", &query).await;
}

#[tokio::test]
async fn mariadb_tls_required_encrypts_without_checking() {
    streams_over_tls("tls_required", "ssl-mode=REQUIRED").await;
}

/// Refused: without TLS (the server's REQUIRE SSL), a certificate from
/// another CA (VERIFY_CA with PostgreSQL's test CA), a certificate that
/// does not name the host (`localhost` against a certificate for
/// 127.0.0.1). Each is one error line with the fix; no output, no state.
#[tokio::test]
async fn mariadb_tls_refusals_are_one_clean_error() {
    let db = setup("tls_refusals").await;
    let ca = env_var("OUTFLOW_TEST_MYSQL_CA");
    let cases = [
        (tls_url(&db, "127.0.0.1", "prefer_socket=false"), "access denied"),
        (
            tls_url(&db, "127.0.0.1", &format!("ssl-mode=VERIFY_CA&ssl-ca={}", env_var("OUTFLOW_TEST_PG_CA"))),
            "tls handshake",
        ),
        (
            tls_url(&db, "localhost", &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}&prefer_socket=false")),
            "tls handshake",
        ),
    ];
    for (url, expected) in cases {
        let mut outflow = MyOutflow::new(&db);
        outflow.url = url.clone();
        let out = outflow.run_until_caught_up().await;
        let error = clean_error(&out).to_lowercase();
        assert!(error.contains(expected), "{url}: {error}\n{}", out.stderr);
        if expected == "tls handshake" {
            assert!(out.stderr.contains("ssl-mode"), "the hint names the setting: {}", out.stderr);
        }
        assert!(!error.contains(PASSWORD), "the password stays out of errors: {error}");
        assert!(outflow.events().is_empty());
    }
}
