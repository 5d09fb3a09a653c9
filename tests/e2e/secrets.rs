//! Secrets stay secret: with a recognisable password in the source URL, a
//! hash salt and the admin token from the environment, every command and
//! failure path is run, and every byte outflow wrote — stdout, stderr, the
//! state directory (signals' records included), the sink's output,
//! `/status`, `/metrics`, the console and its API (the config view, the
//! log, the signals) — is searched for them. Only the config file (where
//! the user wrote them) may hold them.

use std::path::Path;

use crate::harness::{wait_for, Outcome, Outflow, TestDb, SHORT};

const PASSWORD: &str = "scram-secret";
const SALT: &str = "SALT-xyzzy-4711";
const TOKEN: &str = "TOKEN-plugh-0815";

/// Panics naming the place when `text` holds a secret.
fn assert_clean(place: &str, text: &str) {
    for secret in [PASSWORD, SALT, TOKEN] {
        assert!(!text.contains(secret), "{place} holds the secret {secret:?}:\n{text}");
    }
}

fn assert_outcome_clean(what: &str, out: &Outcome) {
    assert_clean(&format!("{what} stdout"), &out.stdout);
    assert_clean(&format!("{what} stderr"), &out.stderr);
}

/// Every file under `dir` but the config file.
fn assert_files_clean(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_files_clean(&path);
        } else if path.file_name().is_some_and(|n| n != "outflow.toml") {
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert_clean(&path.display().to_string(), &String::from_utf8_lossy(&bytes));
        }
    }
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return String::new() };
    let _ = stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn secrets_never_appear_in_what_outflow_writes() {
    let db = TestDb::create("secrets").await;
    db.execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, email text); ALTER TABLE t OWNER TO outflow_scram; \
         GRANT CREATE ON DATABASE {} TO outflow_scram; INSERT INTO t VALUES (1, 'a@example.com')",
        crate::harness::quote_ident(db.name())
    ))
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let outflow = Outflow::new(&db, &["public.t"])
        .source_url(db.url_as("outflow_scram", PASSWORD, ""))
        .section("[[transform]]\nname = \"pii\"\nhash_columns = [\"email\"]\nhash_salt = \"${MASK_SALT}\"")
        .section(&format!("[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"${{ADMIN_TOKEN}}\""));
    outflow.with_env("MASK_SALT", SALT);
    outflow.with_env("ADMIN_TOKEN", TOKEN);
    let config = outflow.config_path().to_string_lossy().to_string();

    // The working paths.
    outflow.run_until_caught_up().await.assert_success();
    let run = outflow.spawn_run();
    wait_for(SHORT, "the admin server", || async { http_get(port, "/healthz").await.contains("200") }).await;
    db.execute("INSERT INTO t VALUES (2, 'b@example.com')").await;
    wait_for(SHORT, "the insert", || {
        let n = outflow.events_so_far().len();
        async move { n >= 2 }
    })
    .await;
    // Actions with the token, a wrong one, and a malformed one.
    let body = r#"{"tables": ["public.t"], "filter": "id > 1"}"#;
    for token in [TOKEN, "wrong", ""] {
        let (status, answer) = crate::signals::request(port, "POST", "/api/snapshot", Some(token), body).await;
        assert_clean(&format!("POST /api/snapshot answer ({status})"), &answer.to_string());
    }
    let (_, answer) = crate::signals::request(port, "POST", "/api/snapshot", Some(TOKEN), "{").await;
    assert_clean("a malformed action's answer", &answer.to_string());
    wait_for(SHORT, "the ad-hoc snapshot", || {
        let n = outflow.events_so_far().len();
        async move { n >= 3 }
    })
    .await;
    for path in [
        "/status",
        "/metrics",
        "/readyz",
        "/",
        "/api/config",
        "/api/log",
        "/api/history",
        "/api/snapshots",
        "/api/signals",
    ] {
        assert_clean(path, &http_get(port, path).await);
    }
    run.sigterm_and_wait().await.assert_success();
    for args in [
        vec!["status", "-c", &config],
        vec!["status", "--json", "-c", &config],
        vec!["offsets", "show", "-c", &config],
        vec!["check", "-c", &config],
        vec!["tail", "--until-caught-up", "-c", &config, "--transform", "pii"],
    ] {
        assert_outcome_clean(&args.join(" "), &outflow.exec(&args).await);
    }

    // The failure paths.
    let failures = [
        ("a table that does not exist", outflow.config_text().replace("\"public.t\"", "\"public.nope\"")),
        (
            "a server that does not answer",
            outflow.config_text().replace(&format!(":{}/", db.port()), &format!(":{}/", port + 1)),
        ),
        ("a wrong user", outflow.config_text().replace("outflow_scram:", "outflow_nobody:")),
        ("a config error", outflow.config_text().replace("[state]", "[state]\nbogus = 1")),
    ];
    for (what, text) in failures {
        let bad = Outflow::raw(|_| text.clone());
        bad.with_env("MASK_SALT", SALT);
        for args in [vec!["run", "--until-caught-up"], vec!["check"], vec!["status"]] {
            let mut args = args.clone();
            let path = bad.config_path().to_string_lossy().to_string();
            args.extend(["-c", &path]);
            assert_outcome_clean(&format!("{what}: {}", args.join(" ")), &bad.exec(&args).await);
        }
    }
    let bogus = outflow
        .exec(&["offsets", "set", "--sink", "events", "--position", "lsn:FF/0", "--dry-run", "-c", &config])
        .await;
    assert_outcome_clean("offsets set to a position the server has not reached", &bogus);

    assert_files_clean(outflow.config_path().parent().unwrap());
    db.cleanup().await;
}
