//! The `outflow.toml` that `outflow init` writes: every setting preceded by
//! a comment saying what it does, the source from the inspected URL (its
//! password as `${OUTFLOW_SOURCE_PASSWORD}`), the chosen tables, the state
//! directory next to the config, one sink (a JSONL file unless `--sink`
//! names another kind, whose destination is then a local placeholder to
//! edit), and a commented-out `[admin]` section for the console.
//!
//! No comment may contain a dollar sign followed by a brace: the config's
//! `${VAR}` expansion reads comments too.

use std::path::Path;

use super::url::{Kind, SourceUrl, PASSWORD_VAR};

/// The sink kinds `--sink` offers (those of the sinks registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    Jsonl,
    Kafka,
    Parquet,
    Postgres,
    Iceberg,
    Redis,
    Http,
    Nats,
    Rabbitmq,
    Kinesis,
}

/// What the config is made of.
pub struct Plan<'a> {
    pub name: &'a str,
    pub source: &'a SourceUrl,
    /// `[source] tables`.
    pub tables: &'a [String],
    /// Tables init left out, for a comment.
    pub left_out: &'a [String],
    /// PostgreSQL: slot and publication name; MySQL: the replica id.
    pub slot: &'a str,
    pub server_id: u32,
    /// The directory of the config file (absolute).
    pub dir: &'a Path,
    pub sink: SinkKind,
    /// Where the inspection was made, for the heading.
    pub location: &'a str,
}

pub fn config(plan: &Plan) -> String {
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    let source = plan.source;
    line(&format!("# Written by `outflow init` for {} at {}.", source.kind.config_name(), plan.location));
    line("# Check it with `outflow check -c <this file>`, then start with `outflow run -c <this file>`.");
    line("");
    line("# The pipeline's name (Debezium's topic.prefix): part of topic and stream names.");
    line(&format!("name = {}", toml_str(plan.name)));
    line("");
    line("[source]");
    match source.kind {
        Kind::Postgres => line("# Read changes with PostgreSQL's logical replication (pgoutput)."),
        Kind::Mysql => line("# Read changes from the MySQL/MariaDB binary log, as a replica does."),
    }
    line(&format!("kind = {}", toml_str(source.kind.config_name())));
    match source.password {
        Some(_) => {
            line("# The database. The password is not written here: outflow reads it from the");
            line(&format!("# environment variable {PASSWORD_VAR} (export it, percent-encoded as in a URL)."));
        }
        None => line("# The database to read."),
    }
    line(&format!("url = {}", toml_str(&source.written)));
    line("# The captured tables, as schema.table (globs such as \"public.*\" and \"re:<regex>\" work too).");
    if !plan.left_out.is_empty() {
        line(&format!("# Left out by `outflow init` (see its report): {}.", plan.left_out.join(", ")));
    }
    line("tables = [");
    for table in plan.tables {
        line(&format!("    {},", toml_str(table)));
    }
    line("]");
    match source.kind {
        Kind::Postgres => {
            line("# The replication slot, created by the first `outflow run`. It holds WAL on the server until");
            line(&format!(
                "# outflow has read it: drop it with SELECT pg_drop_replication_slot('{}'); when you remove the pipeline.",
                plan.slot
            ));
            line(&format!("slot = {}", toml_str(plan.slot)));
            line("# The publication listing the captured tables, created by the first `outflow run`.");
            line(&format!("publication = {}", toml_str(plan.slot)));
        }
        Kind::Mysql => {
            line("# The replica id outflow registers with; no other server or replica of this server may use it.");
            line(&format!("server_id = {}", plan.server_id));
        }
    }
    line("");
    line("[snapshot]");
    line("# \"initial\": copy the tables' existing rows first, then stream their changes;");
    line("# \"never\": changes from now on only; \"initial_only\": copy the rows, then exit.");
    line("mode = \"initial\"");
    line("");
    line("[state]");
    line("# Each sink's position and the snapshot progress (a directory next to this file).");
    line(&format!("dir = {}", toml_str(&plan.dir.join("outflow-state").to_string_lossy())));
    line("");
    line("[[sink]]");
    line("# The sink's name: its position is stored under it.");
    line("name = \"events\"");
    sink(plan, &mut line);
    line("");
    line("# The admin HTTP server of `outflow run`: the web console at /, /healthz, /readyz, /status and");
    line("# /metrics. Uncomment both lines to turn it on (loopback only; \"0.0.0.0:9187\" for every interface).");
    line("# [admin]");
    line("# listen = \"127.0.0.1:9187\"");
    out
}

/// The `[[sink]]` lines after its name.
fn sink(plan: &Plan, line: &mut impl FnMut(&str)) {
    let path = |name: &str| toml_str(&plan.dir.join(name).to_string_lossy());
    let edit = "# The destination: a local placeholder, change it to yours.";
    let lines: Vec<String> = match plan.sink {
        SinkKind::Jsonl => vec![
            "# One line of JSON per change (Debezium's envelope), appended to a file (\"-\": stdout).".into(),
            "kind = \"jsonl\"".into(),
            "# The file, next to this config.".into(),
            format!("path = {}", path("events.jsonl")),
        ],
        SinkKind::Kafka => vec![
            "# Kafka (or Redpanda): one topic per table, named {name}.{schema}.{table}, Debezium's records.".into(),
            "kind = \"kafka\"".into(),
            format!("{edit} (host:port, comma-separated)"),
            "brokers = \"localhost:9092\"".into(),
        ],
        SinkKind::Parquet => vec![
            "# Parquet files, a directory per table (or s3://bucket/prefix and other object stores).".into(),
            "kind = \"parquet\"".into(),
            "# The directory, next to this config.".into(),
            format!("path = {}", path("parquet")),
        ],
        SinkKind::Postgres => vec![
            "# Applies the changes to tables of another PostgreSQL database (created when missing).".into(),
            "kind = \"postgres\"".into(),
            edit.into(),
            "url = \"postgres://postgres@localhost:5432/target\"".into(),
        ],
        SinkKind::Iceberg => vec![
            "# Apache Iceberg tables (a change log per table), in a SQLite catalog pyiceberg can read.".into(),
            "kind = \"iceberg\"".into(),
            "# The catalog file, next to this config.".into(),
            format!("catalog = {}", path("iceberg-catalog.db")),
            "# Where data and metadata files go (a directory, or s3://bucket/prefix).".into(),
            format!("warehouse = {}", path("iceberg-warehouse")),
        ],
        SinkKind::Redis => vec![
            "# Redis Streams: one stream per table, named {name}.{schema}.{table}.".into(),
            "kind = \"redis\"".into(),
            format!("{edit} (rediss:// for TLS)"),
            "url = \"redis://127.0.0.1:6379\"".into(),
        ],
        SinkKind::Http => vec![
            "# POSTs batches of changes (JSON arrays of Debezium's records) to a URL, retrying until accepted.".into(),
            "kind = \"http\"".into(),
            edit.into(),
            "url = \"http://127.0.0.1:8080/events\"".into(),
        ],
        SinkKind::Nats => vec![
            "# NATS JetStream: subjects {name}.{schema}.{table} in the stream OUTFLOW (created when missing).".into(),
            "kind = \"nats\"".into(),
            format!("{edit} (tls:// for TLS)"),
            "url = \"nats://127.0.0.1:4222\"".into(),
        ],
        SinkKind::Rabbitmq => vec![
            "# RabbitMQ: publishes to an exchange (declared when missing) with publisher confirms.".into(),
            "kind = \"rabbitmq\"".into(),
            format!("{edit} (amqp://user:password@host:port/vhost; %2f is the vhost /)"),
            "url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"".into(),
            "# The exchange; messages are routed by {schema}.{table}.".into(),
            "exchange = \"outflow\"".into(),
        ],
        SinkKind::Kinesis => vec![
            "# Amazon Kinesis Data Streams (credentials and region from the AWS environment or profile).".into(),
            "kind = \"kinesis\"".into(),
            "# The data stream every change goes to (created when missing).".into(),
            format!("stream = {}", toml_str(plan.name)),
        ],
    };
    for l in &lines {
        line(l);
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;
    use crate::config::Config;

    fn plan_config(url: &str, sink: SinkKind) -> (SourceUrl, String) {
        let source = SourceUrl::parse(url).unwrap();
        let tables = ["public.orders".to_string(), "public.\"odd\"".to_string()];
        let text = config(&Plan {
            name: "shop",
            source: &source,
            tables: &tables,
            left_out: &["public.log".to_string()],
            slot: "shop",
            server_id: 123456,
            dir: Path::new("/srv/outflow"),
            sink,
            location: "db:5432/shop",
        });
        (source, text)
    }

    #[test]
    fn every_sink_kind_gives_a_valid_config_with_every_line_commented() {
        for sink in SinkKind::value_variants() {
            for url in ["postgres://cdc:secret@db:5432/shop", "mariadb://cdc:secret@db:3306/shop"] {
                let (source, text) = plan_config(url, *sink);
                assert!(!text.contains("secret"), "{text}");
                let config = Config::parse(&source.with_password(&text), "test")
                    .unwrap_or_else(|e| panic!("{sink:?} {url}: {} ({:?})\n{text}", e.message, e.hint));
                assert_eq!(config.name, "shop");
                assert_eq!(config.sinks.len(), 1);
                let mut previous = "";
                for l in text.lines() {
                    let setting = !l.is_empty() && !l.starts_with('#') && !l.starts_with('[') && !l.starts_with(' ');
                    let continued = l == "]" || l.starts_with("    ");
                    assert!(
                        !setting || continued || previous.starts_with('#'),
                        "{sink:?}: {l:?} has no comment above it:\n{text}"
                    );
                    if !continued {
                        previous = l;
                    }
                }
            }
        }
    }

    #[test]
    fn the_state_and_the_jsonl_file_are_next_to_the_config() {
        let (_, text) = plan_config("postgres://cdc@db/shop", SinkKind::Jsonl);
        let config = Config::parse(&text, "test").unwrap();
        assert_eq!(config.state.dir, Path::new("/srv/outflow/outflow-state"));
        assert!(text.contains("path = \"/srv/outflow/events.jsonl\""), "{text}");
        assert!(text.contains("# Left out by `outflow init` (see its report): public.log."), "{text}");
    }
}
