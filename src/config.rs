//! `outflow.toml`: parsing, `${VAR}` expansion from the environment, and
//! validation. Unknown keys are errors with the nearest valid key suggested.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outflow_sinks::settings::Interval;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::transform::{TransformConfig, Transforms};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Logical name of this pipeline: Debezium's `topic.prefix` and `source.name`.
    #[serde(default = "default_name")]
    pub name: String,
    pub source: SourceConfig,
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkEntry>,
    /// `[[transform]]`: column exclusions and masks (see `src/transform/`).
    #[serde(default, rename = "transform")]
    pub transforms: Vec<TransformConfig>,
    /// `[admin]`: the HTTP server for health checks, metrics and status.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The file as parsed, after `${VAR}` expansion: the console shows it
    /// with its secrets masked (`src/console/mask.rs`).
    #[serde(skip)]
    pub toml: toml::Table,
}

fn default_name() -> String {
    "outflow".into()
}

pub use crate::SourceConfig;

/// Declares the registered sources (invoked once, in `src/lib.rs`), one
/// line each: `module: Variant(config type)`. It declares each source's
/// module (its folder) and `SourceConfig`, whose `kind` is the variant's
/// lowercase name.
macro_rules! sources {
    ($($(#[$doc:meta])* $module:ident: $variant:ident($config:ty),)*) => {
        $($(#[$doc])* pub mod $module;)*

        /// `[source]`: which database to read, by `kind`. Each kind's settings
        /// and behaviour live in its own folder, behind
        /// [`SourceFactory`](crate::source::SourceFactory).
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        pub enum SourceConfig {
            $($(#[$doc])* $variant($config),)*
        }

        impl SourceConfig {
            /// The source kind's own handling of this config.
            pub fn factory(&self) -> &dyn $crate::source::SourceFactory {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }

            pub fn factory_mut(&mut self) -> &mut dyn $crate::source::SourceFactory {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }
        }
    };
}
pub(crate) use sources;

/// `[snapshot]`: how existing rows are read (see `src/snapshot/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Rows per chunk.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u64,
    /// Tables read at once, each on its own connection.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            mode: SnapshotMode::default(),
            chunk_size: default_chunk_size(),
            parallelism: default_parallelism(),
        }
    }
}

fn default_chunk_size() -> u64 {
    10_000
}

fn default_parallelism() -> usize {
    2
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot the tables never snapshotted, then stream.
    #[default]
    Initial,
    /// Only stream.
    Never,
    /// Snapshot, then exit.
    InitialOnly,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { dir: default_state_dir() }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./outflow-state")
}

/// `[admin]`: where `outflow run` serves `/healthz`, `/readyz`, `/status`
/// and `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:port`, e.g. "127.0.0.1:9187" (or "0.0.0.0:9187" for every interface).
    pub listen: String,
    /// `/readyz` fails when a sink's oldest undelivered change was committed
    /// longer ago than this (default 60s).
    #[serde(default = "default_ready_max_lag")]
    pub ready_max_lag: Interval,
    /// HTTPS: the server certificate chain (PEM) and its private key (PEM);
    /// both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The bearer token the actions (`POST /api/...`) need, best from the
    /// environment (`token = "${OUTFLOW_ADMIN_TOKEN}"`); unset: actions off.
    pub token: Option<String>,
}

fn default_ready_max_lag() -> Interval {
    Interval(Duration::from_secs(60))
}

impl AdminConfig {
    /// The listen address, checked by `Config::validate`.
    pub fn addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|_| {
            Error::config(
                format!("[admin] listen = {:?} is not an IP address and port", self.listen),
                "write e.g. listen = \"127.0.0.1:9187\" (\"0.0.0.0:9187\" listens on every interface)",
            )
        })
    }
}

/// One `[[sink]]`'s kind and settings; the kinds are listed once, in
/// the sinks crate's registry.
pub use outflow_sinks::SinkConfig;

/// One `[[sink]]`: its kind's settings, and the named transforms that apply
/// to it alone (`transforms = ["mask-pii"]`), which outflow reads before the
/// kind's settings so that no sink kind has to know about them.
#[derive(Debug, Clone)]
pub struct SinkEntry {
    pub config: SinkConfig,
    pub transforms: Vec<String>,
}

impl std::ops::Deref for SinkEntry {
    type Target = SinkConfig;

    fn deref(&self) -> &SinkConfig {
        &self.config
    }
}

impl<'de> Deserialize<'de> for SinkEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let transforms = match table.remove("transforms") {
            None => Vec::new(),
            Some(list) => Vec::<String>::deserialize(list)
                .map_err(|e| D::Error::custom(format!("transforms: {}", e.message().trim())))?,
        };
        // The kind's own errors keep their message (the line is found from it).
        let config = SinkConfig::deserialize(toml::Value::Table(table)).map_err(|e| D::Error::custom(e.message()))?;
        Ok(SinkEntry { config, transforms })
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                format!("cannot read config file {}: {e}", path.display()),
                "pass the path of your outflow.toml with -c",
            )
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let expanded = expand_env(text)?;
        let mut config: Config = toml::from_str(&expanded).map_err(|e| {
            misplaced_source_key(&expanded, &e).unwrap_or_else(|| config_error(origin, text, &expanded, &e))
        })?;
        config.validate()?;
        config.toml = toml::from_str(&expanded).unwrap_or_default();
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let source = self.source.factory();
        if source.tables().is_empty() {
            return Err(Error::config(
                "[source] tables is empty",
                "list the tables to capture, e.g. tables = [\"public.orders\"]",
            ));
        }
        source.table_filter()?;
        source.signal_table_id()?;
        // Checked now (e.g. the URL parsed), so a malformed value is a config
        // error before anything is created (state directory, slot, publication).
        source.validate()?;
        if let Some(admin) = &self.admin {
            admin.addr()?;
            crate::admin::tls_acceptor(admin)?;
        }
        if self.snapshot.chunk_size == 0 || self.snapshot.parallelism == 0 {
            return Err(Error::config(
                "[snapshot] chunk_size and parallelism must be at least 1",
                "e.g. chunk_size = 10000, parallelism = 2",
            ));
        }
        if self.sinks.is_empty() {
            return Err(Error::config(
                "no [[sink]] is configured",
                "add a [[sink]] with name, kind = \"jsonl\" and path",
            ));
        }
        let mut names: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(
                format!("two [[sink]] entries are named {:?}", w[0]),
                "give every sink a unique name: its offsets are stored under it",
            ));
        }
        for sink in &self.sinks {
            // What each sink would refuse in `build()`, checked before the
            // source is touched, as a config error.
            sink.factory().validate().map_err(|e| {
                Error::config(e.to_string(), format!("fix the [[sink]] named {:?} in the config", sink.name()))
            })?;
        }
        self.validate_transforms()?;
        for name in names {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(Error::config(
                    format!("sink name {name:?} is not allowed"),
                    "use letters, digits, '-' and '_' only",
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_transforms(&self) -> Result<()> {
        for (index, transform) in self.transforms.iter().enumerate() {
            transform.validate(index)?;
        }
        let mut named: Vec<&str> = self.transforms.iter().filter_map(|t| t.name.as_deref()).collect();
        named.sort();
        if let Some(w) = named.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(
                format!("two [[transform]] entries are named {:?}", w[0]),
                "give every named transform a unique name",
            ));
        }
        for sink in &self.sinks {
            if let Some(unknown) = sink.transforms.iter().find(|t| !named.contains(&t.as_str())) {
                return Err(Error::config(
                    format!(
                        "[[sink]] {:?} lists transform {unknown:?}, but no [[transform]] has that name",
                        sink.name()
                    ),
                    match named.is_empty() {
                        true => "add a [[transform]] with name = \"...\" and list that name".to_string(),
                        false => format!("named transforms: {}", named.join(", ")),
                    },
                ));
            }
        }
        Ok(())
    }

    /// Whether a sink lists `transform` (it is then not applied to the others).
    fn sink_specific(&self, transform: &TransformConfig) -> bool {
        transform.name.as_ref().is_some_and(|n| self.sinks.iter().any(|s| s.transforms.contains(n)))
    }

    /// The transforms every sink gets, applied once in the stream driver.
    pub fn global_transforms(&self) -> Result<Transforms> {
        self.global_transforms_except(&[])
    }

    /// The global transforms but those named in `tried` (which `tail
    /// --transform` applies itself, in its order).
    pub fn global_transforms_except(&self, tried: &[String]) -> Result<Transforms> {
        Transforms::new(&self.transforms, |t| {
            !self.sink_specific(t) && !t.name.as_ref().is_some_and(|n| tried.contains(n))
        })
    }

    /// The transforms only `sink` gets, in the order it lists them.
    pub fn sink_transforms(&self, sink: &SinkEntry) -> Result<Transforms> {
        self.named_transforms(&sink.transforms)
    }

    /// The transforms named `names`, in that order (`tail --transform`).
    pub fn named_transforms(&self, names: &[String]) -> Result<Transforms> {
        let mut ordered = Vec::new();
        for name in names {
            let Some(found) = self.transforms.iter().find(|t| t.name.as_ref() == Some(name)) else {
                return Err(Error::config(
                    format!("no [[transform]] is named {name:?}"),
                    "give the [[transform]] a name = \"...\" and use that name",
                ));
            };
            ordered.push(found.clone());
        }
        Transforms::new(&ordered, |_| true)
    }
}

/// Replaces `${VAR}` with the environment variable's value.
fn expand_env(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(Error::config("unterminated ${ in config", "write variables as ${NAME}"));
        };
        let var = &after[..end];
        let value = std::env::var(var).map_err(|_| {
            Error::config(
                format!("config refers to ${{{var}}} but the environment variable {var} is not set"),
                format!("export {var}=... before running outflow"),
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An unknown key in `[source]` that another source kind has (`server_id`
/// with `kind = "postgres"`): says so, instead of suggesting a look-alike.
/// The kinds and their keys are asked of serde, so nothing here lists them.
fn misplaced_source_key(expanded: &str, e: &toml::de::Error) -> Option<Error> {
    let key = unknown_field(e.message())?;
    let document: toml::Table = toml::from_str(expanded).ok()?;
    let source = document.get("source")?.as_table()?;
    let this = source.get("kind")?.as_str()?;
    source.get(key)?;
    let probe = |kind: &str| {
        let table: toml::Table =
            [("kind".to_string(), kind.into()), (key.to_string(), true.into())].into_iter().collect();
        SourceConfig::deserialize(toml::Value::Table(table)).err().map(|e| e.message().to_string())
    };
    let unknown_here = |kind: &str| probe(kind).is_some_and(|m| m.starts_with("unknown field"));
    if !unknown_here(this) {
        return None;
    }
    // "unknown variant `?`, expected `postgres` or `mysql`"
    let kinds = probe("?")?;
    let other = kinds.split('`').skip(3).step_by(2).find(|k| *k != this && !unknown_here(k))?;
    Some(Error::config(
        format!("[source] {key} is a {other} setting, but kind = {this:?}"),
        format!("remove {key}, or set kind = {other:?}"),
    ))
}

/// Turns a toml/serde error into one line naming the line it is about (as
/// written, before `${VAR}` expansion, so no secret is shown), suggesting the
/// nearest key for unknown fields.
fn config_error(origin: &str, written: &str, expanded: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim().replace('\n', " ");
    let hint = unknown_field_hint(&message)
        .unwrap_or_else(|| "see the configuration reference in docs/src/configuration.md".to_string());
    // Expansion happens inside lines, so line numbers agree in both texts.
    let line_of = |at: usize| expanded.as_bytes()[..at.min(expanded.len())].iter().filter(|b| **b == b'\n').count();
    let place = e
        .span()
        .map(|span| {
            let (first, last) = (line_of(span.start), line_of(span.end));
            // A value inside `[source]` or a `[[sink]]` is reported for the
            // whole table (its `kind` picks the type, which loses the
            // place): take the table's line that holds the unknown key, or
            // the value the message quotes, when only one does.
            let holds = |n: usize, line: &dyn Fn(&str) -> bool| written.lines().nth(n).is_some_and(line);
            let lines: Vec<usize> = match unknown_field(&message) {
                Some(key) => (first..=last).filter(|&n| holds(n, &|l| sets_key(l, key))).collect(),
                None => quoted_value(&message)
                    .map(|v| (first..=last).filter(|&n| holds(n, &|l| assigns(l, &v))).collect())
                    .unwrap_or_default(),
            };
            if lines.len() == 1 {
                lines[0]
            } else {
                first
            }
        })
        .and_then(|line| written.lines().nth(line).map(|text| (line + 1, text.trim())))
        .map(|(number, text)| {
            let text: String = text.chars().take(80).collect();
            format!(", line {number} `{text}`")
        })
        .unwrap_or_default();
    Error::config(format!("invalid config {origin}{place}: {message}"), hint)
}

/// The value a serde message quotes: `"1 fortnight" is not ...`, `invalid
/// type: string "x"`, `invalid value: integer `-5``, `-1 is negative`.
fn quoted_value(message: &str) -> Option<String> {
    if let Some((_, rest)) = message.split_once('"') {
        return rest.split_once('"').map(|(v, _)| format!("\"{v}\""));
    }
    if let Some((_, rest)) = message.split_once("integer `") {
        return rest.split_once('`').map(|(v, _)| v.to_string());
    }
    message.split_once(" is negative").map(|(v, _)| v.to_string())
}

/// The key of serde's "unknown field `key`, expected ...".
fn unknown_field(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Whether `line` is `key = ...`.
fn sets_key(line: &str, key: &str) -> bool {
    line.split_once('=').is_some_and(|(k, _)| k.trim() == key)
}

/// Whether `line` is `key = value` with exactly `value`.
fn assigns(line: &str, value: &str) -> bool {
    line.split_once('=').is_some_and(|(_, v)| v.split('#').next().unwrap_or("").trim() == value)
}

/// serde says "unknown field `slott`, expected one of `kind`, `url`, ...":
/// pick the expected key closest to the unknown one.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates.iter().map(|c| (strsim::damerau_levenshtein(unknown, c), *c)).min()?;
    Some(format!("did you mean `{}`? valid keys here: {}", best.1, candidates.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [source]
        kind = "postgres"
        url = "postgres://u@127.0.0.1/db"
        tables = ["public.orders"]
        [[sink]]
        name = "events"
        kind = "jsonl"
        path = "out.jsonl"
    "#;

    fn pg(c: &Config) -> &crate::pg::config::PgConfig {
        match &c.source {
            SourceConfig::Postgres(p) => p,
            other => panic!("not postgres: {other:?}"),
        }
    }

    fn mysql(c: &Config) -> &crate::mysql::config::MysqlConfig {
        match &c.source {
            SourceConfig::Mysql(m) => m,
            other => panic!("not mysql: {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL, "test").unwrap();
        assert_eq!(c.name, "outflow");
        assert_eq!(pg(&c).slot, "outflow");
        assert_eq!(c.state.dir, PathBuf::from("./outflow-state"));
        assert_eq!(c.sinks[0].name(), "events");
    }

    #[test]
    fn iceberg_sink_config_has_defaults_and_the_append_and_upsert_modes() {
        let iceberg = "kind = \"iceberg\"\n catalog = \"lake/catalog.db\"\n warehouse = \"lake/wh\"";
        let text = MINIMAL.replace("kind = \"jsonl\"\n        path = \"out.jsonl\"", iceberg);
        let c = Config::parse(&text, "test").unwrap();
        assert_eq!(c.sinks[0].kind(), "iceberg");
        let SinkConfig::Iceberg(ice) = &c.sinks[0].config else { panic!("{:?}", c.sinks[0]) };
        assert_eq!(ice.mode, outflow_sinks::iceberg::Mode::Append);
        assert_eq!(ice.catalog_name, "outflow");
        assert_eq!(ice.commit_interval.0, std::time::Duration::from_secs(60));
        let upsert = text.replace("catalog =", "mode = \"upsert\"\n catalog =");
        let SinkConfig::Iceberg(ice) = &Config::parse(&upsert, "test").unwrap().sinks[0].config else { panic!() };
        assert_eq!(ice.mode, outflow_sinks::iceberg::Mode::Upsert);
        let merge = text.replace("catalog =", "mode = \"merge\"\n catalog =");
        let err = Config::parse(&merge, "test").unwrap_err().to_string();
        assert!(err.contains("unknown variant `merge`, expected `append` or `upsert`"), "{err}");
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        let text = MINIMAL.replace("tables =", "slott = \"x\"\n tables =");
        let err = Config::parse(&text, "test").unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("unknown field `slott`"), "{shown}");
        assert!(shown.contains("line 5 `slott = \"x\"`"), "{shown}");
        assert!(err.hint().unwrap().contains("did you mean `slot`"), "{:?}", err.hint());
    }

    #[test]
    fn env_vars_expand_and_missing_ones_are_named() {
        std::env::set_var("OUTFLOW_TEST_CFG_PW", "s3cret");
        assert_eq!(expand_env("a ${OUTFLOW_TEST_CFG_PW} b").unwrap(), "a s3cret b");
        let err = expand_env("${OUTFLOW_SURELY_UNSET_VAR}").unwrap_err();
        assert!(err.to_string().contains("OUTFLOW_SURELY_UNSET_VAR"));
    }

    #[test]
    fn mysql_server_id_defaults_and_is_validated() {
        let text = MINIMAL.replace("\"postgres\"", "\"mysql\"").replace("postgres://", "mysql://");
        let c = Config::parse(&text, "test").unwrap();
        assert_eq!(mysql(&c).server_id, None);
        let with_id = text.replace("tables =", "server_id = 77\n tables =");
        assert_eq!(mysql(&Config::parse(&with_id, "test").unwrap()).server_id, Some(77));
        assert!(Config::parse(&text.replace("tables =", "server_id = 0\n tables ="), "test").is_err());
        let err = Config::parse(&MINIMAL.replace("tables =", "server_id = 7\n tables ="), "test").unwrap_err();
        assert_eq!(err.message, "[source] server_id is a mysql setting, but kind = \"postgres\"");
        assert_eq!(err.hint().unwrap(), "remove server_id, or set kind = \"mysql\"");
    }

    #[test]
    fn admin_section_is_optional_and_checked() {
        let c = Config::parse(MINIMAL, "test").unwrap();
        assert!(c.admin.is_none());
        assert_eq!(pg(&c).wal_warn_bytes(), 1 << 30);

        let text = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:9187\"\n");
        let admin = Config::parse(&text, "test").unwrap().admin.unwrap();
        assert_eq!(admin.addr().unwrap(), "127.0.0.1:9187".parse().unwrap());
        assert_eq!(admin.ready_max_lag.0, Duration::from_secs(60));

        let text = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:1\"\nready_max_lag = \"5m\"\n");
        assert_eq!(Config::parse(&text, "test").unwrap().admin.unwrap().ready_max_lag.0, Duration::from_secs(300));

        let err = Config::parse(&format!("{MINIMAL}\n[admin]\nlisten = \"localhost\"\n"), "test").unwrap_err();
        assert!(err.message.contains("not an IP address and port"), "{}", err.message);
        assert!(Config::parse(&format!("{MINIMAL}\n[admin]\nready_max_lag = \"1s\"\n"), "test").is_err());
        let bad_lag = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:1\"\nready_max_lag = \"soon\"\n");
        assert!(Config::parse(&bad_lag, "test").is_err());
        // Minutes and hours past u64 seconds: an error, not an overflow.
        for huge in ["1000000000000000000m", "10000000000000000h"] {
            let text = format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:1\"\nready_max_lag = \"{huge}\"\n");
            assert!(Config::parse(&text, "test").unwrap_err().message.contains("not a duration"));
        }

        let err =
            Config::parse(&format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n"), "test").unwrap_err();
        assert!(err.hint().unwrap().contains("did you mean `listen`"), "{:?}", err.hint());
    }

    #[test]
    fn wal_warn_bytes_takes_sizes_and_is_postgres_only() {
        let text = MINIMAL.replace("tables =", "wal_warn_bytes = \"512MiB\"\n tables =");
        assert_eq!(pg(&Config::parse(&text, "test").unwrap()).wal_warn_bytes(), 512 << 20);
        let text = MINIMAL.replace("tables =", "wal_warn_bytes = 1000\n tables =");
        assert_eq!(pg(&Config::parse(&text, "test").unwrap()).wal_warn_bytes(), 1000);
        assert!(Config::parse(&MINIMAL.replace("tables =", "wal_warn_bytes = \"lots\"\n tables ="), "test").is_err());
        let mysql = MINIMAL.replace("\"postgres\"", "\"mysql\"").replace("tables =", "wal_warn_bytes = 5\n tables =");
        let err = Config::parse(&mysql, "test").unwrap_err();
        assert_eq!(err.message, "[source] wal_warn_bytes is a postgres setting, but kind = \"mysql\"");
    }

    #[test]
    fn value_errors_name_their_line_as_written() {
        std::env::set_var("OUTFLOW_TEST_CFG_SECRET", "hunter2");
        let text = MINIMAL.replace("postgres://u@", "postgres://u:${OUTFLOW_TEST_CFG_SECRET}@")
            + "[snapshot]\nchunk_size = \"lots\"\n";
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert!(err.message.contains("line 11 `chunk_size = \"lots\"`"), "{}", err.message);
        // A value of a sink (an internally tagged table) is found by its text.
        let text = format!("{MINIMAL}roll_bytes = -1\n").replace("\"jsonl\"", "\"parquet\"");
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert!(err.message.contains("`roll_bytes = -1`: -1 is negative"), "{}", err.message);
        // The line is shown as written: no expanded secret.
        let text = MINIMAL
            .replace("postgres://u@", "postgres://u:${OUTFLOW_TEST_CFG_SECRET}@")
            .replace("tables = [\"public.orders\"]", "tables = 5");
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[test]
    fn transforms_apply_globally_unless_a_sink_names_them() {
        let text = format!(
            "{MINIMAL}transforms = [\"pii\"]\n\
             [[sink]]\nname = \"raw\"\nkind = \"jsonl\"\npath = \"raw.jsonl\"\n\
             [[transform]]\nname = \"pii\"\nexclude_columns = [\"ssn\"]\n\
             [[transform]]\ntables = [\"public.*\"]\nredact_columns = {{ notes = 3 }}\n"
        );
        let c = Config::parse(&text, "test").unwrap();
        assert_eq!(c.sinks[0].transforms, ["pii"]);
        assert!(c.sinks[1].transforms.is_empty());
        let users = outflow_model::TableId::new("public", "users");
        assert!(c.global_transforms().unwrap().excluded_columns(&users).is_empty());
        assert_eq!(c.sink_transforms(&c.sinks[0]).unwrap().excluded_columns(&users), ["ssn"]);
        assert!(c.sink_transforms(&c.sinks[1]).unwrap().is_empty());

        // A sink's own keys are still checked, with the line found.
        let err =
            Config::parse(&format!("{MINIMAL}transforms = [\"pii\"]\nflush = 1\n[[transform]]\nname = \"pii\"\n"), "t")
                .unwrap_err();
        assert!(err.message.contains("line 11 `flush = 1`: unknown field `flush`"), "{}", err.message);
        let err = Config::parse(&format!("{MINIMAL}transforms = \"pii\"\n"), "t").unwrap_err();
        assert!(
            err.message.contains("transforms: invalid type: string \"pii\", expected a sequence"),
            "{}",
            err.message
        );
        let err = Config::parse(&format!("{MINIMAL}[[transform]]\nname = \"a\"\n[[transform]]\nname = \"a\"\n"), "t")
            .unwrap_err();
        assert_eq!(err.message, "two [[transform]] entries are named \"a\"");
    }

    #[test]
    fn exclude_tables_and_regexes_are_checked() {
        let text = MINIMAL.replace("tables =", "exclude_tables = [\"re:^public\\\\.tmp_\\\\d+$\"]\n tables =");
        let c = Config::parse(&text, "test").unwrap();
        let filter = c.source.factory().table_filter().unwrap();
        assert!(filter.matches("public", "orders"));
        let err =
            Config::parse(&MINIMAL.replace("tables =", "exclude_tables = [\"re:(\"]\n tables ="), "t").unwrap_err();
        assert!(
            err.message.starts_with("[source] tables or exclude_tables: \"re:(\" is not a valid regular expression"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_table_names_are_rejected() {
        let text = MINIMAL.replace("public.orders", "orders");
        assert!(Config::parse(&text, "test").is_err());
    }
}
