//! Avro records on the Kafka sink, read the way a Confluent consumer reads
//! them: the real binary writes to the test broker with a schema registry,
//! and `tests/readers/kafka_avro_read.py` decodes every record with
//! confluent-kafka's own `AvroDeserializer` and `SchemaRegistryClient`.
//!
//! The registry is `tests/readers/schema_registry.py`, a test
//! implementation of Confluent's REST contract (no compatibility checks):
//! Confluent's registry is a Java service that cannot run here.
//!
//! Scenarios: the same changes through a JSON sink and an Avro sink of one
//! pipeline decode to the same keys and values (snapshot, inserts, updates,
//! deletes with tombstones, precise decimals, a column added mid-stream
//! registering a second value schema); a registry refusing the sink's
//! credentials fails `outflow check` and stops the sink with one error line
//! naming the settings, and the `[sink.debezium]` converter form with basic
//! auth then works; a registry refusing a new schema version (409) stops
//! the sink naming the subject; MariaDB's records decode like PostgreSQL's;
//! kill -9 during a busy run leaves every change exactly once (recovery
//! reads headers, never an Avro value); a registry that is down holds the
//! source (slot unmoved, warnings logged) until it answers.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::{env_var, kill_9_while_writing, wait_for, Outflow, TestDb};
use crate::kafka::{assert_exactly_once, brokers, records, unique_name};
use crate::outage::confirmed_flush_lsn;

/// A running `schema_registry.py`, killed on drop.
struct TestRegistry {
    child: Child,
    url: String,
}

impl TestRegistry {
    fn start(auth: Option<(&str, &str)>) -> TestRegistry {
        TestRegistry::start_with(auth, &[])
    }

    fn start_with(auth: Option<(&str, &str)>, args: &[&str]) -> TestRegistry {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/schema_registry.py");
        let mut cmd = Command::new(env_var("OUTFLOW_TEST_PYTHON"));
        cmd.arg(script).args(args).stdout(Stdio::piped()).stderr(Stdio::null());
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd.spawn().expect("starting the test schema registry");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("registry's port line");
        let port = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("registry said {line:?}"));
        TestRegistry { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// `GET path` on the registry (with `auth` as basic auth).
    fn get(&self, path: &str, auth: Option<(&str, &str)>) -> Value {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", &format!("{}{path}", self.url)]);
        if let Some((user, password)) = auth {
            cmd.args(["-u", &format!("{user}:{password}")]);
        }
        let out = cmd.output().expect("curl");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("registry GET {path}: {e}"))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every record of `topics`, decoded by Confluent's Avro deserializer
/// (`registry` may carry `user:password@`).
fn avro_records(registry: &str, topics: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/kafka_avro_read.py");
    let out = Command::new(env_var("OUTFLOW_TEST_PYTHON"))
        .arg(&script)
        .arg(registry)
        .arg(brokers())
        .args(topics)
        .output()
        .expect("running the avro reader");
    assert!(out.status.success(), "avro reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

/// A record as compared across the two sinks: key, value without the
/// envelope's processing times (each sink stamps its own), and position.
fn comparable(r: &Value) -> Value {
    let mut value = r["value"].clone();
    if let Some(v) = value.as_object_mut() {
        for ts in ["ts_ms", "ts_us", "ts_ns"] {
            v.remove(ts);
        }
    }
    serde_json::json!({
        "key": r["key"],
        "value": value,
        "position": r["headers"]["outflow.position"],
        "seq": r["headers"]["outflow.seq"],
    })
}

/// A JSON sink and an Avro sink (topics `<prefix>.json.<table>` and
/// `<prefix>.avro.<table>`) with the same `[sink.debezium]` settings.
fn json_and_avro_sinks(registry: &TestRegistry, prefix: &str, debezium: &str) -> String {
    format!(
        "[[sink]]\nname = \"json\"\nkind = \"kafka\"\nbrokers = {b:?}\ntopic = \"{prefix}.json.{{table}}\"\n\
         [sink.debezium]\n{debezium}\n\
         [[sink]]\nname = \"avro\"\nkind = \"kafka\"\nbrokers = {b:?}\ntopic = \"{prefix}.avro.{{table}}\"\n\
         format = \"avro\"\nschema_registry = {r:?}\n[sink.debezium]\n{debezium}\n",
        b = brokers(),
        r = registry.url
    )
}

/// The Avro topic's records, decoded, after checking they equal the JSON
/// topic's (`adjust` first edits the JSON records' comparable form).
fn assert_same_records(
    registry: &TestRegistry,
    json_topic: &str,
    avro_topic: &str,
    adjust: impl Fn(&mut Value),
) -> Vec<Value> {
    let json = records(json_topic);
    let decoded = avro_records(&registry.url, &[avro_topic]);
    let avro = decoded["topics"][avro_topic]["records"].as_array().cloned().unwrap_or_default();
    let mut want: Vec<Value> = json.iter().map(comparable).collect();
    want.iter_mut().for_each(adjust);
    let got: Vec<Value> = avro.iter().map(comparable).collect();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(g, w, "record {i}: the avro record (left) decodes differently from the json record (right)");
    }
    assert_eq!(got.len(), want.len(), "as many avro records as json records");
    avro
}

#[tokio::test]
async fn avro_records_decode_to_the_json_records_of_the_same_changes_across_a_schema_change() {
    let registry = TestRegistry::start(None);
    let db = TestDb::create("avro_same").await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, price numeric(10,2), qty smallint NOT NULL, \
         note text, day date, at timestamp, data bytea)",
    )
    .await;
    db.execute("INSERT INTO items VALUES (1, 12.34, 1, 'snap', '2024-02-29', '2024-02-29 12:34:56.789012', '\\x00ff')")
        .await;
    let name = unique_name("avro");
    let sinks = json_and_avro_sinks(&registry, &name, "\"decimal.handling.mode\" = \"precise\"");
    let outflow = Outflow::new(&db, &["public.items"]).name(&name).section(&sinks);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;

    db.execute("INSERT INTO items VALUES (2, -98765432.10, 2, NULL, NULL, NULL, NULL), (3, 0, 3, 'x', NULL, NULL, '')")
        .await;
    db.execute("UPDATE items SET price = price * 2, note = 'updated' WHERE id = 1").await;
    db.execute("DELETE FROM items WHERE id = 3").await;
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("ALTER TABLE items ADD COLUMN extra text").await;
    db.execute("INSERT INTO items (id, price, qty, extra) VALUES (4, 0.01, 4, 'new column')").await;
    db.execute("UPDATE items SET extra = 'set' WHERE id = 2").await;
    db.execute("DELETE FROM items WHERE id = 1").await;
    outflow.run_until_caught_up().await.assert_success();

    let (json_topic, avro_topic) = (format!("{name}.json.items"), format!("{name}.avro.items"));
    // A delete's old row holds the key only (REPLICA IDENTITY DEFAULT): both
    // show the NOT NULL `qty` as Debezium's converters write it, 0.
    let avro = assert_same_records(&registry, &json_topic, &avro_topic, |w| {
        if w["value"]["op"] == "d" {
            assert_eq!(w["value"]["before"]["qty"], 0, "{w}");
        }
    });
    assert_eq!(avro.len(), 10, "records: {avro:#?}");
    let ops: Vec<&str> = avro.iter().map(|r| r["value"]["op"].as_str().unwrap_or("tombstone")).collect();
    assert_eq!(ops, ["r", "c", "c", "u", "d", "tombstone", "c", "u", "d", "tombstone"]);

    // The column added mid-stream registered a second value schema; the key's is unchanged.
    let subject = |s: &str| registry.get(&format!("/subjects/{avro_topic}-{s}/versions"), None);
    assert_eq!(subject("value"), serde_json::json!([1, 2]));
    assert_eq!(subject("key"), serde_json::json!([1]));
    let value_ids: Vec<i64> = avro.iter().filter_map(|r| r["value_schema_id"].as_i64()).collect();
    let key_ids: std::collections::BTreeSet<i64> = avro.iter().filter_map(|r| r["key_schema_id"].as_i64()).collect();
    assert_eq!(key_ids.len(), 1, "one key schema: {key_ids:?}");
    let first = value_ids[0];
    let changed = value_ids.iter().position(|&id| id != first).expect("a second value schema id");
    assert!(value_ids[changed..].iter().all(|&id| id != first), "ids go back: {value_ids:?}");
    assert_eq!(avro[6]["value"]["after"]["extra"], "new column", "{:#}", avro[6]);
    let latest = registry.get(&format!("/subjects/{avro_topic}-value/versions/latest"), None);
    let schema: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["name"], "Envelope");
    assert_eq!(schema["connect.name"], format!("{name}.public.items.Envelope"));
    db.cleanup().await;
}

#[tokio::test]
async fn a_registry_refusing_the_credentials_stops_the_sink_with_the_settings_to_fix() {
    let registry = TestRegistry::start(Some(("cdc", "s3cret")));
    let db = TestDb::create("avro_auth").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    let name = unique_name("avroauth");
    let refused = format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\nformat = \"avro\"\nschema_registry = {:?}\n",
        brokers(),
        registry.url
    );
    let outflow = Outflow::new(&db, &["public.t"]).name(&name).section(&refused);
    // `outflow check` asks the registry with the sink's (missing) credentials.
    let check = outflow.exec(&["check", "-c", &outflow.config_path().to_string_lossy()]).await;
    assert_eq!(check.code, Some(1), "{}\n{}", check.stdout, check.stderr);
    let what = format!(
        "✗ sink \"bus\": schema registry {} is reachable and accepts the sink's credentials: HTTP 401",
        registry.url
    );
    let mut lines = check.stdout.lines().skip_while(|l| !l.starts_with(&what));
    assert!(lines.next().is_some(), "no {what:?}:\n{}", check.stdout);
    let fix = lines.next().unwrap_or_default();
    assert!(fix.trim().starts_with("fix: ") && fix.contains("schema_registry_user"), "{fix}\n{}", check.stdout);
    assert!(check.stdout.contains("✓ sink \"bus\": kafka brokers"), "{}", check.stdout);

    outflow.run_until_caught_up().await.assert_success(); // nothing to write yet
    db.wait_for_slot_idle().await;
    let before = confirmed_flush_lsn(&db).await;
    db.execute("INSERT INTO t VALUES (1, 'one')").await;

    let out = outflow.run_until_caught_up().await;
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{}", out.stderr);
    let error = errors[0];
    assert!(error.contains("HTTP 401") && error.contains(&format!("{name}.public.t-")), "{error}");
    assert!(out.stderr.contains("schema_registry_user"), "the hint names the settings:\n{}", out.stderr);
    assert_eq!(confirmed_flush_lsn(&db).await, before, "the slot moved past the unwritten record");

    // Debezium's converter properties, with the credentials.
    let converter = "io.confluent.connect.avro.AvroConverter";
    let debezium = format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\ntransaction_topic = true\n[sink.debezium]\n\
         \"key.converter\" = {converter:?}\n\"value.converter\" = {converter:?}\n\
         \"key.converter.schema.registry.url\" = {url:?}\n\"value.converter.schema.registry.url\" = {url:?}\n\
         \"value.converter.basic.auth.credentials.source\" = \"USER_INFO\"\n\
         \"value.converter.basic.auth.user.info\" = \"cdc:s3cret\"\n",
        brokers(),
        url = registry.url
    );
    // The same state: the run goes on from where the refused one stopped.
    let text = outflow.config_text().replace(&refused, &debezium);
    let outflow = outflow.raw_config(text);
    outflow.run_until_caught_up().await.assert_success();
    let topic = format!("{name}.public.t");
    let authed = registry.url.replacen("http://", "http://cdc:s3cret@", 1);
    let decoded = avro_records(&authed, &[&topic]);
    let recs = decoded["topics"][&topic]["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(recs.len(), 1, "{decoded:#}");
    assert_eq!(recs[0]["key"], serde_json::json!({"id": 1}));
    assert_eq!(recs[0]["value"]["after"], serde_json::json!({"id": 1, "v": "one"}));
    // The transaction topic's BEGIN and END, with Debezium's transaction schemas.
    let tx_topic = format!("{name}.transaction");
    let decoded = avro_records(&authed, &[&tx_topic]);
    let tx = decoded["topics"][&tx_topic]["records"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<&str> = tx.iter().filter_map(|r| r["value"]["status"].as_str()).collect();
    assert_eq!(statuses, ["BEGIN", "END"], "{decoded:#}");
    assert_eq!(tx[1]["value"]["event_count"], 1);
    assert_eq!(tx[1]["value"]["data_collections"][0]["data_collection"], "public.t");
    assert_eq!(tx[0]["key"]["id"], tx[1]["key"]["id"]);
    let subjects = registry.get("/subjects", Some(("cdc", "s3cret")));
    let want: Vec<String> =
        [&topic, &tx_topic].iter().flat_map(|t| [format!("{t}-key"), format!("{t}-value")]).collect();
    assert_eq!(subjects, serde_json::json!(want));
    db.cleanup().await;
}

#[tokio::test]
async fn a_schema_the_registry_refuses_as_incompatible_stops_the_sink_naming_the_subject() {
    let registry = TestRegistry::start_with(None, &["--refuse-new-versions"]);
    let db = TestDb::create("avro_409").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    let name = unique_name("avro409");
    let sink = format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\nformat = \"avro\"\nschema_registry = {:?}\n",
        brokers(),
        registry.url
    );
    let outflow = Outflow::new(&db, &["public.t"]).name(&name).section(&sink);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    db.execute("INSERT INTO t VALUES (1, 'one')").await;
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let before = confirmed_flush_lsn(&db).await;
    db.execute("ALTER TABLE t ADD COLUMN w int").await;
    db.execute("INSERT INTO t VALUES (2, 'two', 2)").await;

    let out = outflow.run_until_caught_up().await;
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{}", out.stderr);
    assert!(
        errors[0].contains(&format!("subject {name}.public.t-value")) && errors[0].contains("incompatible"),
        "{}",
        errors[0]
    );
    assert!(out.stderr.contains("compatibility"), "the hint says what to change:\n{}", out.stderr);
    assert_eq!(confirmed_flush_lsn(&db).await, before, "the slot moved past the unwritten record");
    let topic = format!("{name}.public.t");
    let decoded = avro_records(&registry.url, &[&topic]);
    assert_eq!(decoded["topics"][&topic]["records"].as_array().map(Vec::len), Some(1), "{decoded:#}");
    db.cleanup().await;
}

/// MariaDB: the binlog's rows (full before images, BIGINT UNSIGNED as a
/// Decimal of precision 20) decode to the JSON records too.
#[tokio::test]
async fn mariadb_avro_records_decode_to_the_json_records_of_the_same_changes() {
    use crate::mysql_harness::{MyDb, MyOutflow};

    let registry = TestRegistry::start(None);
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "avro").await;
    db.exec(
        "CREATE TABLE items (id INT PRIMARY KEY, price DECIMAL(10,2), qty SMALLINT NOT NULL, \
         note VARCHAR(20), day DATE, n BIGINT UNSIGNED, data VARBINARY(8))",
    )
    .await;
    let modes = "\"decimal.handling.mode\" = \"precise\"\n\"bigint.unsigned.handling.mode\" = \"precise\"";
    let name = unique_name("mavro");
    let outflow = MyOutflow::new(&db).section(&json_and_avro_sinks(&registry, &name, modes));
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();
    db.exec(
        "INSERT INTO items VALUES (1, 12.34, 1, 'one', '2024-02-29', 18446744073709551615, x'00ff'), \
             (2, -0.5, 2, NULL, NULL, NULL, NULL)",
    )
    .await;
    db.exec("UPDATE items SET price = 99999999.99, note = 'upd' WHERE id = 2").await;
    db.exec("DELETE FROM items WHERE id = 1").await;
    db.exec("ALTER TABLE items ADD COLUMN extra VARCHAR(10)").await;
    db.exec("INSERT INTO items (id, qty, extra) VALUES (3, 3, 'new')").await;
    outflow.exec(&["run", "--until-caught-up"]).await.assert_success();

    let (json_topic, avro_topic) = (format!("{name}.json.items"), format!("{name}.avro.items"));
    let avro = assert_same_records(&registry, &json_topic, &avro_topic, |_| {});
    let ops: Vec<&str> = avro.iter().map(|r| r["value"]["op"].as_str().unwrap_or("tombstone")).collect();
    assert_eq!(ops, ["c", "c", "u", "d", "tombstone", "c"]);
    assert_eq!(avro[3]["value"]["before"]["qty"], 1, "binlog deletes carry the whole row");
    let versions = registry.get(&format!("/subjects/{avro_topic}-value/versions"), None);
    assert_eq!(versions, serde_json::json!([1, 2]));
}

/// Kill -9 during a busy run (and a lost offset file): recovery reads the
/// partitions' tails by their headers only, so Avro records come out
/// exactly once too.
#[tokio::test]
async fn kill_9_during_a_busy_avro_run_leaves_every_change_exactly_once() {
    let registry = TestRegistry::start(None);
    let db = TestDb::create("avro_kill9").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, payload text)").await;
    let name = unique_name("avrokill9");
    let sink = format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\npartitions = 3\nformat = \"avro\"\nschema_registry = {:?}\n",
        brokers(),
        registry.url
    );
    let outflow = Outflow::new(&db, &["public.t"]).name(&name).section(&sink);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let written = kill_9_while_writing(&db, &outflow, 3, 2000, 200..1500).await;
    std::fs::remove_file(outflow.state_dir().join("sinks/bus.json")).expect("removing the sink's offset file");
    outflow.run_until_caught_up().await.assert_success();

    let topic = format!("{name}.public.t");
    let decoded = avro_records(&registry.url, &[&topic]);
    let mut per_partition: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for r in decoded["topics"][&topic]["records"].as_array().into_iter().flatten() {
        if r["value"]["op"] == "c" {
            per_partition
                .entry(r["partition"].as_i64().unwrap())
                .or_default()
                .push(r["value"]["after"]["id"].as_i64().unwrap());
        }
    }
    assert_exactly_once(&per_partition, written);
    db.cleanup().await;
}

/// The registry down when the first record needs its schema: the sink
/// waits (retrying with backoff, the slot held) and delivers once the
/// registry is up.
#[tokio::test]
async fn an_unreachable_registry_holds_the_source_until_it_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let db = TestDb::create("avro_down").await;
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    let name = unique_name("avrodown");
    let sink = format!(
        "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = {:?}\nformat = \"avro\"\nschema_registry = \"http://127.0.0.1:{port}\"\n",
        brokers()
    );
    let outflow = Outflow::new(&db, &["public.t"]).name(&name).section(&sink);
    outflow.run_until_caught_up().await.assert_success();
    db.wait_for_slot_idle().await;
    let before = confirmed_flush_lsn(&db).await;
    let mut run = outflow.spawn_run();
    db.wait_for_slot_streaming().await;
    db.execute("INSERT INTO t VALUES (1, 'one')").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(run.is_running(), "outflow gave up on the registry: {}", run.stderr());
    assert_eq!(confirmed_flush_lsn(&db).await, before, "the slot moved while the record was not written");

    let registry = TestRegistry::start_with(None, &["--port", &port.to_string()]);
    let topic = format!("{name}.public.t");
    wait_for(std::time::Duration::from_secs(60), "the record once the registry answers", || {
        let (url, topic) = (registry.url.clone(), topic.clone());
        async move {
            let decoded = avro_records(&url, &[&topic]);
            decoded["topics"][&topic]["records"].as_array().is_some_and(|r| r.len() == 1)
        }
    })
    .await;
    let out = run.sigterm_and_wait().await;
    out.assert_success();
    assert!(out.stderr.contains("schema registry is not answering; retrying"), "no retry warning:\n{}", out.stderr);
    db.cleanup().await;
}
