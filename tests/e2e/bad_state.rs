//! Bad input, part 2: the state directory. A truncated or empty state file,
//! a state directory of another database or another cluster: each stops the
//! run with exit code 1, an `error:` naming the file or the mismatch and a
//! `hint:`, and leaves the state directory, the sink's file and the slot as
//! they were (and creates nothing on the server). Put right, the next run
//! delivers the pending change once.

use crate::harness::{changes, Outflow, TestDb};
use crate::intact::{Error, Image};

async fn confirmed_flush_lsn(db: &TestDb, slot: &str) -> Option<String> {
    db.query(&format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"))
        .await
        .first()
        .and_then(|r| r.get(0))
}

/// A pipeline that ran once (table `t`, one row delivered) and has one
/// more row pending.
async fn ran_once(name: &str) -> (TestDb, Outflow) {
    let db = TestDb::create(name).await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let outflow = Outflow::new(&db, &["public.t"]);
    outflow.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (1)").await;
    outflow.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (2)").await;
    db.wait_for_slot_idle().await;
    (db, outflow)
}

fn image(outflow: &Outflow) -> Image {
    Image::take(&[&outflow.state_dir(), &outflow.out_path()])
}

/// Damages `file` (relative to the state directory) with `damage`, runs,
/// expects a refusal naming the file, then restores it and expects the
/// pending row once.
async fn damaged_file(name: &str, file: &str, damage: fn(&[u8]) -> Vec<u8>, words: &[&str]) {
    let (db, outflow) = ran_once(name).await;
    let path = outflow.state_dir().join(file);
    let original = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::write(&path, damage(&original)).unwrap();
    let before = image(&outflow);
    let lsn = confirmed_flush_lsn(&db, db.name()).await;

    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&[&path.display().to_string(), "corrupt"]).names(words);
    assert!(error.hint.contains("restore it from a backup"), "{}", error.hint);
    before.assert_unchanged(&image(&outflow));
    assert_eq!(confirmed_flush_lsn(&db, db.name()).await, lsn, "the slot moved");

    std::fs::write(&path, original).unwrap();
    outflow.run_until_caught_up().await.assert_success();
    let ids: Vec<_> = changes(&outflow.events(), "t").iter().map(|e| e["after"]["id"].clone()).collect();
    assert_eq!(ids, [1, 2], "each row once");
    db.cleanup().await;
}

fn half(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

fn empty(_: &[u8]) -> Vec<u8> {
    Vec::new()
}

#[tokio::test]
async fn state_truncated_sink_offset_file() {
    damaged_file("st_trunc_sink", "sinks/events.json", half, &["EOF"]).await;
}

#[tokio::test]
async fn state_empty_sink_offset_file() {
    damaged_file("st_empty_sink", "sinks/events.json", empty, &["empty"]).await;
}

#[tokio::test]
async fn state_truncated_source_file() {
    damaged_file("st_trunc_source", "source.json", half, &["EOF"]).await;
}

#[tokio::test]
async fn state_empty_source_file() {
    damaged_file("st_empty_source", "source.json", empty, &["empty"]).await;
}

#[tokio::test]
async fn state_truncated_schema_history() {
    damaged_file("st_trunc_schema", "schemas/public.t.json", half, &["EOF"]).await;
}

#[tokio::test]
async fn state_sink_offset_with_a_position_that_is_no_position() {
    fn bad_position(bytes: &[u8]) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v["position"] = "lsn:0/XYZ".into();
        serde_json::to_vec(&v).unwrap()
    }
    damaged_file("st_bad_position", "sinks/events.json", bad_position, &["0/XYZ"]).await;
}

/// The state directory of database A, used for database B on the same
/// server: refused before B gets a publication or a slot.
#[tokio::test]
async fn state_dir_of_another_database_is_refused_before_anything_is_created() {
    let (db_a, outflow) = ran_once("st_other_db_a").await;
    let db_b = TestDb::create("st_other_db_b").await;
    db_b.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let text = outflow.config_text().replace(&db_a.url(), &db_b.url());
    assert_ne!(text, outflow.config_text());
    let outflow = outflow.raw_config(text);
    let before = image(&outflow);
    let lsn = confirmed_flush_lsn(&db_a, db_a.name()).await;

    let out = outflow.run_until_caught_up().await;
    let error = Error::of(&out, 1);
    error.names(&["belongs to another source", db_a.name(), db_b.name()]);
    assert!(error.hint.contains("[state] dir"), "{}", error.hint);
    before.assert_unchanged(&image(&outflow));
    assert_eq!(confirmed_flush_lsn(&db_a, db_a.name()).await, lsn, "A's slot moved");
    let slots =
        db_b.query("SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database()").await;
    assert!(
        slots.is_empty(),
        "a slot was created in B: {:?}",
        slots.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    );
    assert!(db_b.query("SELECT 1 FROM pg_publication").await.is_empty(), "a publication was created in B");
    db_b.cleanup().await;
    db_a.cleanup().await;
}

/// A state directory copied from another cluster (its `source.json` holds
/// another system identifier) is refused, whatever it says otherwise.
#[tokio::test]
async fn state_dir_of_another_cluster_is_refused() {
    let (db, outflow) = ran_once("st_other_cluster").await;
    let path = outflow.state_dir().join("source.json");
    let mut identity: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let ours = identity["system_identifier"].as_str().unwrap().to_string();
    identity["system_identifier"] = "7000000000000000001".into();
    std::fs::write(&path, serde_json::to_vec_pretty(&identity).unwrap()).unwrap();
    let before = image(&outflow);
    let lsn = confirmed_flush_lsn(&db, db.name()).await;

    let out = outflow.run_until_caught_up().await;
    Error::of(&out, 1).names(&["belongs to another source", "7000000000000000001", &ours]);
    before.assert_unchanged(&image(&outflow));
    assert_eq!(confirmed_flush_lsn(&db, db.name()).await, lsn, "the slot moved");
    db.cleanup().await;
}
