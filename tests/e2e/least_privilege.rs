//! Least privilege: outflow runs as a user with exactly the grants the book
//! lists (docs/src/security.md, "Least privilege"), nothing more. PostgreSQL: a role with `REPLICATION`,
//! `SELECT` on the captured table and `EXECUTE` on
//! `pg_logical_emit_message` (snapshot watermarks), the publication created
//! by a DBA. MariaDB: `REPLICATION SLAVE`, `BINLOG MONITOR` and `SELECT` on
//! the database. Each must snapshot, stream, pass `check` and show `status`.

use crate::harness::{changes, Outflow, TestDb};
use crate::mysql_harness::{MyDb, MyOutflow};

/// The book's PostgreSQL grants (docs/src/sources/postgres.md), as SQL a DBA runs.
fn pg_grants(role: &str) -> String {
    format!(
        "CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'lp-pw';\n\
         GRANT SELECT ON public.items TO {role};\n\
         GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO {role};"
    )
}

/// The book's MariaDB grants (docs/src/sources/mysql.md).
fn mariadb_grants(user: &str, db: &str) -> String {
    format!(
        "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'lp-pw';\n\
         GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1';\n\
         GRANT SELECT ON {db}.* TO '{user}'@'127.0.0.1';"
    )
}

#[tokio::test]
async fn postgres_with_only_the_listed_grants() {
    let db = TestDb::create("least_priv").await;
    let role = format!("lp_{}", std::process::id());
    db.execute(&format!("DROP ROLE IF EXISTS {role}")).await;
    db.execute("CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'a'), (2, 'b');")
        .await;
    db.execute("CREATE PUBLICATION outflow FOR TABLE public.items").await;
    db.execute(&pg_grants(&role)).await;
    let outflow = Outflow::new(&db, &["public.items"]).source_url(db.url_as(&role, "lp-pw", ""));
    let check = outflow.exec(&["check", "-c", &outflow.config_path().to_string_lossy()]).await;
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    outflow.run_until_caught_up().await.assert_success();
    db.execute(
        "INSERT INTO items VALUES (3, 'c'); UPDATE items SET note = 'z' WHERE id = 1; DELETE FROM items WHERE id = 2;",
    )
    .await;
    outflow.run_until_caught_up().await.assert_success();
    let events = outflow.events();
    let ops: Vec<&str> = changes(&events, "items").iter().map(|e| e["op"].as_str().unwrap_or("?")).collect();
    assert_eq!(ops, ["r", "r", "c", "u", "d"], "{events:#?}");
    let status = outflow.exec(&["status", "-c", &outflow.config_path().to_string_lossy()]).await;
    status.assert_success();
    assert!(status.stdout.contains("events"), "{}", status.stdout);
    db.execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
    db.cleanup().await;
}

#[tokio::test]
async fn mariadb_with_only_the_listed_grants() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "least_priv").await;
    let user = format!("lp_{}", std::process::id());
    db.exec(&format!("DROP USER IF EXISTS '{user}'@'127.0.0.1'")).await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(20))").await;
    db.exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
    for statement in mariadb_grants(&user, &db.name).lines() {
        db.exec(statement).await;
    }
    let mut outflow = MyOutflow::new(&db);
    outflow.url = db.url().replacen("mysql://root@", &format!("mysql://{user}:lp-pw@"), 1);
    let check = outflow.exec(&["check"]).await;
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    outflow.run_until_caught_up().await.assert_success();
    db.exec("INSERT INTO items VALUES (3, 'c')").await;
    db.exec("UPDATE items SET note = 'z' WHERE id = 1").await;
    db.exec("DELETE FROM items WHERE id = 2").await;
    outflow.run_until_caught_up().await.assert_success();
    let ops: Vec<String> = outflow.events().iter().map(|e| e["op"].as_str().unwrap_or("?").to_string()).collect();
    assert_eq!(ops, ["r", "r", "c", "u", "d"], "{:#?}", outflow.events());
    let status = outflow.exec(&["status"]).await;
    status.assert_success();
    db.exec(&format!("DROP USER '{user}'@'127.0.0.1'")).await;
}
