//! Bad input, part 1: malformed config values. One test per input; each
//! breaks one value of a config that just worked, and the run must stop
//! before touching anything: exit code 2, `error:` naming the value (with
//! its line for TOML-level mistakes) and a `hint:`, the state directory and
//! the sink's file byte-identical, the slot not moved, the pending change
//! not consumed (the next good run delivers it).

use crate::harness::{changes, Outflow, TestDb};
use crate::intact::{Error, Image};

/// Replaces the first line starting with `prefix` by `line`.
fn set_line(config: &str, prefix: &str, line: &str) -> String {
    let mut done = false;
    let out: Vec<String> = config
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with(prefix) {
                done = true;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(done, "no line starts with {prefix:?} in:\n{config}");
    out.join("\n") + "\n"
}

/// Sets the port of the `[source]` url.
fn with_port(config: &str, port: &str) -> String {
    let line = config.lines().find(|l| l.starts_with("url = ")).expect("a url line");
    let host_end = line.find('@').expect("user@host in the url");
    let colon = host_end + line[host_end..].find(':').expect("host:port");
    let slash = colon + line[colon..].find('/').expect("/dbname");
    set_line(config, "url = ", &format!("{}:{port}{}", &line[..colon], &line[slash..]))
}

/// Puts `key = value` into the `[source]` table.
fn source_key(config: &str, key_line: &str) -> String {
    config.replacen("[source]\n", &format!("[source]\n{key_line}\n"), 1)
}

/// Replaces the `[[sink]]` (the last table of the generated config).
fn with_sink(config: &str, sink: &str) -> String {
    let at = config.find("[[sink]]").expect("a [[sink]] in the generated config");
    format!("{}{sink}\n", &config[..at])
}

async fn confirmed_flush_lsn(db: &TestDb) -> Option<String> {
    db.query(&format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'", db.name()))
        .await
        .first()
        .and_then(|r| r.get(0))
}

async fn bad_config(name: &str, edit: fn(&str) -> String, words: &[&str]) {
    let db = TestDb::create(name).await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY)").await;
    let good = Outflow::new(&db, &["public.t"]);
    good.run_until_caught_up().await.assert_success();
    db.execute("INSERT INTO t VALUES (1)").await;
    db.wait_for_slot_idle().await;
    let roots = [good.state_dir(), good.out_path()];
    let roots: Vec<&std::path::Path> = roots.iter().map(|p| p.as_path()).collect();
    let before = Image::take(&roots);
    assert!(before.files() >= 2, "the good run left no state: {before:?}");
    let lsn = confirmed_flush_lsn(&db).await;

    let valid = good.config_text();
    let broken = edit(&valid);
    assert_ne!(broken, valid, "the edit changed nothing");
    let bad = good.raw_config(broken);
    let out = bad.run_until_caught_up().await;
    Error::of(&out, 2).names(words);
    // `check` refuses the same config the same way.
    let check = bad.exec(&["check", "-c", &bad.config_path().to_string_lossy()]).await;
    Error::of(&check, 2).names(words);

    before.assert_unchanged(&Image::take(&roots));
    assert_eq!(confirmed_flush_lsn(&db).await, lsn, "the slot moved");
    let good = bad.raw_config(valid);
    good.run_until_caught_up().await.assert_success();
    assert_eq!(changes(&good.events(), "t").len(), 1, "the pending insert, once");
    db.cleanup().await;
}

macro_rules! bad_config {
    ($($name:ident: $edit:expr => $words:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            bad_config(stringify!($name), $edit, &$words).await;
        }
    )*};
}

bad_config! {
    config_chunk_size_of_the_wrong_type:
        |c| format!("{c}[snapshot]\nchunk_size = \"lots\"\n") => ["line", "chunk_size = \"lots\"", "expected u64"];
    config_negative_chunk_size:
        |c| format!("{c}[snapshot]\nchunk_size = -5\n") => ["chunk_size = -5"];
    config_zero_chunk_size:
        |c| format!("{c}[snapshot]\nchunk_size = 0\n") => ["chunk_size"];
    config_zero_parallelism:
        |c| format!("{c}[snapshot]\nparallelism = 0\n") => ["parallelism"];
    config_unknown_snapshot_mode:
        |c| format!("{c}[snapshot]\nmode = \"sometimes\"\n") => ["sometimes", "initial_only"];
    config_unknown_source_kind:
        |c| set_line(c, "kind = \"postgres\"", "kind = \"oracle\"") => ["oracle", "mysql"];
    config_unknown_sink_kind:
        |c| set_line(c, "kind = \"jsonl\"", "kind = \"s3\"") => ["s3", "parquet"];
    config_unknown_sink_format:
        |c| set_line(c, "format = ", "format = \"xml\"") => ["xml", "debezium"];
    config_tables_not_a_list:
        |c| set_line(c, "tables = ", "tables = \"public.t\"") => ["tables", "expected a sequence"];
    config_table_without_a_schema:
        |c| set_line(c, "tables = ", "tables = [\"t\"]") => ["\"t\"", "schema.table"];
    config_missing_url:
        |c| set_line(c, "url = ", "") => ["missing field `url`"];
    config_url_that_is_not_a_url:
        |c| set_line(c, "url = ", "url = \"not a url\"") => ["[source] url"];
    config_url_with_a_port_out_of_range:
        |c| with_port(c, "99999") => ["[source] url"];
    config_unknown_sslmode:
        |c| { let l = c.lines().find(|l| l.starts_with("url = ")).unwrap().trim_end_matches('"').to_string();
              set_line(c, "url = ", &format!("{l}?sslmode=always\"")) } => ["sslmode", "always"];
    config_mysql_url_for_a_postgres_source:
        |c| set_line(c, "url = ", "url = \"mysql://root@127.0.0.1:56436/app\"") => ["[source] url"];
    config_missing_environment_variable:
        |c| set_line(c, "url = ", "url = \"postgres://u:${OUTFLOW_TEST_SURELY_UNSET}@127.0.0.1/db\"") => ["OUTFLOW_TEST_SURELY_UNSET"];
    config_server_id_on_a_postgres_source:
        |c| source_key(c, "server_id = 7") => ["server_id"];
    config_negative_wal_warn_bytes:
        |c| source_key(c, "wal_warn_bytes = -1") => ["wal_warn_bytes", "negative"];
    config_wal_warn_bytes_not_a_size:
        |c| source_key(c, "wal_warn_bytes = \"lots\"") => ["wal_warn_bytes", "not a size"];
    config_admin_listen_not_an_address:
        |c| format!("{c}[admin]\nlisten = \"localhost\"\n") => ["listen", "localhost"];
    config_admin_ready_max_lag_not_a_duration:
        |c| format!("{c}[admin]\nlisten = \"127.0.0.1:0\"\nready_max_lag = \"soon\"\n") => ["ready_max_lag", "soon"];
    config_two_sinks_with_one_name:
        |c| { let at = c.find("[[sink]]").unwrap(); format!("{c}{}", &c[at..]) } => ["\"events\""];
    config_sink_name_with_a_path:
        |c| set_line(c, "name = \"events\"", "name = \"../events\"") => ["../events"];
    config_kafka_zero_partitions:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\npartitions = 0") => ["partitions = 0"];
    config_kafka_acks_weakened_under_exactly_once:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\n[sink.producer]\nacks = \"1\"") => ["acks"];
    config_kafka_avro_without_a_registry:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\nformat = \"avro\"") => ["schema_registry", "format = \"avro\""];
    config_kafka_registry_misspelled:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\nformat = \"avro\"\nschema_registry_url = \"http://r:8081\"") => ["schema_registry_url"];
    config_kafka_avro_converter_without_its_url:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\n[sink.debezium]\n\"key.converter\" = \"io.confluent.connect.avro.AvroConverter\"\n\"value.converter\" = \"io.confluent.connect.avro.AvroConverter\"") => ["schema.registry.url"];
    config_debezium_avro_converter_on_a_jsonl_sink:
        |c| format!("{c}[sink.debezium]\n\"key.converter\" = \"io.confluent.connect.avro.AvroConverter\"\n\"value.converter\" = \"io.confluent.connect.avro.AvroConverter\"\n\"value.converter.schema.registry.url\" = \"http://r:8081\"\n") => ["AvroConverter", "kafka sink"];
    config_parquet_unknown_compression:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"parquet\"\npath = \"lake\"\ncompression = \"lz5\"") => ["lz5", "zstd"];
    config_parquet_negative_roll_bytes:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"parquet\"\npath = \"lake\"\nroll_bytes = -1") => ["roll_bytes", "negative"];
    config_parquet_roll_interval_not_a_duration:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"parquet\"\npath = \"lake\"\nroll_interval = \"1 fortnight\"") => ["roll_interval", "fortnight"];
    config_parquet_roll_interval_overflowing:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"parquet\"\npath = \"lake\"\nroll_interval = \"1000000000000000000m\"") => ["roll_interval", "not a duration"];
    config_parquet_compression_level_out_of_range:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"parquet\"\npath = \"lake\"\ncompression_level = 99") => ["compression_level = 99"];
    config_postgres_sink_zero_batch_rows:
        |c| with_sink(c, "[[sink]]\nname = \"events\"\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1:1/x\"\nbatch_rows = 0") => ["batch_rows"];
    config_debezium_unsupported_key:
        |c| format!("{c}[sink.debezium]\n\"snapshot.mode\" = \"never\"\n") => ["snapshot.mode", "supported keys", "tombstones.on.delete"];
    config_debezium_unsupported_value:
        |c| format!("{c}[sink.debezium]\n\"decimal.handling.mode\" = \"exact\"\n") => ["exact", "supported: precise, string, double"];
    config_debezium_schemas_switch_not_a_boolean:
        |c| format!("{c}[sink.debezium]\n\"value.converter.schemas.enable\" = \"yes\"\n") => ["value.converter.schemas.enable", "true or false"];
    config_debezium_schemas_switched_off_under_sink_schemas:
        |c| format!("{c}schemas = true\n[sink.debezium]\n\"key.converter.schemas.enable\" = \"false\"\n") => ["key.converter.schemas.enable", "contradicts"];
    config_debezium_schemas_on_the_flat_format:
        |c| set_line(c, "format = \"debezium\"", "format = \"json\"\nschemas = true") => ["schemas", "format = \"debezium\""];
    config_debezium_unknown_transform:
        |c| format!("{c}[sink.debezium]\ntransforms = \"f\"\n\"transforms.f.type\" = \"io.debezium.transforms.Filter\"\n") => ["io.debezium.transforms.Filter", "ExtractNewRecordState"];
    config_debezium_route_on_a_jsonl_sink:
        |c| format!("{c}[sink.debezium]\ntransforms = \"r\"\n\"transforms.r.type\" = \"io.debezium.transforms.ByLogicalTableRouter\"\n\"transforms.r.topic.regex\" = \"x\"\n\"transforms.r.topic.replacement\" = \"y\"\n") => ["ByLogicalTableRouter", "kafka sink"];
    config_debezium_heartbeat_on_a_jsonl_sink:
        |c| format!("{c}[sink.debezium]\n\"heartbeat.interval.ms\" = \"1000\"\n") => ["heartbeat records", "kafka sink"];
    config_debezium_heartbeat_with_avro:
        |c| with_sink(c, "[[sink]]\nname = \"bus\"\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\nformat = \"avro\"\nschema_registry = \"http://127.0.0.1:1\"\n[sink.debezium]\n\"heartbeat.interval.ms\" = \"1000\"") => ["heartbeat records", "JSON converter only"];
    config_debezium_heartbeat_interval_not_a_number:
        |c| format!("{c}[sink.debezium]\n\"heartbeat.interval.ms\" = \"10s\"\n") => ["heartbeat.interval.ms", "not a number of milliseconds"];
    config_not_toml:
        |c| format!("{c}[snapshot\nmode = \"never\"\n") => ["line"];
}
