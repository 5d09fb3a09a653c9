//! The MySQL/MariaDB type corpus through the Parquet sink, read back with
//! pyarrow: each column's Arrow type and row 1's values, checked by hand
//! against `tests/golden/mysql_types.sql`.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::{env_var, RUN_TIMEOUT};
use crate::mysql_harness::{server_id, MyDb};

fn read_lake(root: &str) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readers/parquet_read.py");
    let out = std::process::Command::new(env_var("OUTFLOW_TEST_PYTHON")).arg(&script).arg(root).output().unwrap();
    assert!(out.status.success(), "pyarrow reader failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

async fn run(dir: &std::path::Path, config: &str) {
    let path = dir.join("outflow.toml");
    std::fs::write(&path, config).unwrap();
    let out = tokio::time::timeout(
        RUN_TIMEOUT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_outflow"))
            .args(["run", "--until-caught-up", "-c"])
            .arg(&path)
            .output(),
    )
    .await
    .expect("outflow timed out")
    .unwrap();
    assert!(out.status.success(), "outflow failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn parquet_mysql_types_arrive_with_their_arrow_types_and_values() {
    let mut db = MyDb::create("OUTFLOW_TEST_MYSQL_URL", "pq_types").await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let config = format!(
        "[source]\nkind = \"mysql\"\nurl = {:?}\ntables = [\"{}.types\"]\nserver_id = {}\n[state]\ndir = {:?}\n\
         [[sink]]\nname = \"lake\"\nkind = \"parquet\"\npath = {:?}\n",
        db.url(),
        db.name,
        server_id(),
        dir.path().join("state"),
        lake
    );
    let sql = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mysql_types.sql"))
        .unwrap();
    let split = sql.find("\nSET sql_mode").expect("the golden SQL sets sql_mode before its rows");
    db.exec(&sql[..split]).await;
    run(dir.path(), &config).await;
    for statement in sql[split..].split(";\n").map(str::trim).filter(|s| !s.is_empty() && !s.starts_with("--")) {
        db.exec(statement).await;
    }
    run(dir.path(), &config).await;

    let lake = read_lake(&lake.to_string_lossy());
    let table = &lake["tables"][format!("{}.types", db.name)];
    let types: std::collections::BTreeMap<String, String> = table["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].as_str().unwrap().to_string()))
        .collect();
    // Checked by hand against the column definitions in mysql_types.sql.
    for (column, arrow) in [
        ("ti", "int8"),
        ("tiu", "uint8"),
        ("si", "int16"),
        ("siu", "uint16"),
        ("mi", "int32"),
        ("miu", "uint32"),
        ("i", "int32"),
        ("iu", "uint32"),
        ("bi", "int64"),
        ("biu", "uint64"),
        ("f", "float"),
        ("d", "double"),
        ("y", "int16"),
        ("dt", "date32[day]"),
        ("tm", "duration[us]"),
        ("tm6", "duration[us]"),
        ("dtm6", "timestamp[us]"),
        ("ts6", "timestamp[us, tz=UTC]"),
        ("dec1", "decimal128(30, 10)"),
        ("dec0", "decimal128(5, 0)"),
        ("tm3", "duration[us]"),
        ("dtm", "timestamp[us]"),
        ("ts", "timestamp[us, tz=UTC]"),
        ("ts3", "timestamp[us, tz=UTC]"),
        ("b1", "bool"),
        ("b12", "string"),
        ("bo", "int8"),
        ("c", "string"),
        ("vc", "string"),
        ("tx", "string"),
        ("l1", "string"),
        ("bn", "binary"),
        ("vb", "binary"),
        ("bl", "binary"),
        ("js", "string"),
        ("g", "binary"),
        ("e", "string"),
        ("st", "string"),
    ] {
        assert_eq!(types.get(column).map(String::as_str), Some(arrow), "column {column}");
    }
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    let row = rows.iter().find(|r| r["id"] == json!(1)).expect("row 1");
    let expected = json!({
        "ti": -128, "tiu": 255, "si": -32768, "siu": 65535, "mi": -8388608, "miu": 16777215,
        "i": -2147483648i64, "iu": 4294967295u64, "bi": i64::MIN, "biu": u64::MAX,
        "dec1": "-12345678901234567890.0123456789", "dec0": "99999", "f": 1.5, "d": -2.25e300,
        "e": "medium", "st": "a,c", "y": 2024,
        "dt": 19724,                        // 2024-01-02
        "tm": -3_020_399_000_000i64,         // -838:59:59
        "tm3": 45_296_789_000i64,            // 12:34:56.789
        "tm6": -3_723_000_004i64,            // -01:02:03.000004
        "dtm": 1_704_164_645_000_000i64,     // 2024-01-02 03:04:05
        "dtm3": 1_704_164_645_123_000i64,
        "dtm6": -1,                          // 1969-12-31 23:59:59.999999
        "ts6": 2_147_483_647_999_999i64,     // 2038-01-19 03:14:07.999999 UTC
        "c": "ab", "vc": "héllo ☃ 😀", "tx": "long text", "l1": "café",
        "bn": "00010203", "vb": "ff00", "bl": "deadbeef",
        "b1": true, "b12": "101010101010", "bo": 1,
        "ts": 1_704_164_645_000_000i64,     // 2024-01-02 03:04:05 UTC
        "ts3": 1_704_164_645_120_000i64,
        "js": "{\"a\": [1, 2.5, \"x\"], \"b\": null}",
        // SRID 0 (4 bytes LE), then WKB: little-endian POINT(1 2).
        "g": "000000000101000000000000000000f03f0000000000000040",
    });
    for (column, want) in expected.as_object().unwrap() {
        assert_eq!(&row[column], want, "row 1 column {column}");
    }
    // Zero dates are null, YEAR 0 is 1900 (as Debezium reads it).
    let zero = rows.iter().find(|r| r["id"] == json!(2)).expect("row 2");
    assert_eq!((&zero["dt"], &zero["dtm"], &zero["y"]), (&Value::Null, &Value::Null, &json!(1900)));
    // MariaDB's JSON is a LONGTEXT alias: the binlog says `text`, so no JSON tag.
    let js = table["schema"].as_array().unwrap().iter().find(|f| f["name"] == "js").unwrap();
    assert_eq!(js["metadata"]["outflow.source_type"], "text", "{js}");
}
