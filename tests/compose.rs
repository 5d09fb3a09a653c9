//! docker-compose.yml cannot be run here (no Docker engine), so this checks
//! what can be checked without one: the compose file holds the settings the
//! README documents for each server, and the outflow config it mounts is one
//! outflow accepts.

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

#[test]
fn compose_file_has_the_documented_server_settings() {
    let compose = read("docker-compose.yml");
    for setting in [
        "wal_level=logical",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--log-bin=mysql-bin",
        "--gtid-strict-mode=ON",
        "./examples/outflow.compose.toml:/etc/outflow/outflow.toml",
        "9187:9187",
    ] {
        assert!(compose.contains(setting), "docker-compose.yml lacks {setting}");
    }
}

#[test]
fn compose_outflow_config_is_valid() {
    std::env::set_var("PGPASSWORD", "outflow");
    let config =
        outflow::config::Config::parse(&read("examples/outflow.compose.toml"), "examples/outflow.compose.toml")
            .unwrap_or_else(|e| panic!("{}: {:?}", e.message, e.hint));
    assert_eq!(config.name, "app");
    assert_eq!(config.sinks.len(), 2);
    let admin = config.admin.expect("an [admin] section");
    assert_eq!(admin.listen, "0.0.0.0:9187", "the admin port docker-compose.yml publishes");
}
