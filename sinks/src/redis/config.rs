//! The `[[sink]] kind = "redis"` settings and their checks.

use serde::Deserialize;

use crate::format::routing::NameTemplate;
use crate::format::Format;
use crate::SinkError;
pub use crate::text::redact;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub name: String,
    /// `redis://[user:password@]host:port/db`, or `rediss://…` for TLS.
    pub url: String,
    /// With `rediss://`: the PEM CA file the server's certificate must
    /// chain to (default: the system's trusted roots). The host must match
    /// the certificate either way.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Stream of each table's changes: `{name}` (the pipeline's name),
    /// `{db}`, `{schema}` and `{table}` are replaced.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Trim each stream to about this many entries (`XADD MAXLEN ~`).
    #[serde(default)]
    pub maxlen: Option<u64>,
    /// Entry `value` format: `debezium` (envelope) or `json` (the row flat).
    #[serde(default)]
    pub format: Format,
    /// XADDs sent in one pipeline before `write` waits for their replies
    /// (bounds memory and holds the source while Redis is slow).
    #[serde(default = "default_pipeline")]
    pub pipeline: usize,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
}

fn default_stream() -> String {
    "{name}.{schema}.{table}".into()
}

fn default_pipeline() -> usize {
    1000
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

impl RedisConfig {
    /// The settings checks `build()` makes, without connecting.
    pub fn validate(&self) -> Result<(), SinkError> {
        self.check().map(|_| ())
    }

    /// The client for `url` (and `tls_ca_file`), without connecting.
    pub(crate) fn client(&self) -> Result<redis::Client, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: {what}", self.name));
        let not_a_url = |e: redis::RedisError| {
            bad(format!(
                "`url = {:?}` is not a Redis URL ({e}); use redis://[user:password@]host:port/db (rediss:// for TLS)",
                redact(&self.url)
            ))
        };
        match &self.tls_ca_file {
            None => redis::Client::open(self.url.as_str()).map_err(not_a_url),
            Some(_) if !self.url.starts_with("rediss://") => {
                Err(bad("`tls_ca_file` is set but the url is not rediss:// (TLS); use rediss://host:port/db".into()))
            }
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|e| {
                    bad(format!("`tls_ca_file = {:?}` cannot be read ({e}); give the PEM file of the server's CA", path))
                })?;
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
                redis::Client::build_with_tls(self.url.as_str(), certs).map_err(not_a_url)
            }
        }
    }

    pub(crate) fn check(&self) -> Result<NameTemplate, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: {what}", self.name));
        self.client()?;
        if self.maxlen == Some(0) {
            return Err(bad("`maxlen = 0` would empty every stream; set it to at least 1 or remove it".into()));
        }
        if self.pipeline == 0 {
            return Err(bad("`pipeline` must be at least 1".into()));
        }
        NameTemplate::parse(&self.stream, "stream name").map_err(|e| bad(format!("`stream = {:?}`: {e}", self.stream)))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_extra: serde_json::Value) -> Result<RedisConfig, serde_json::Error> {
        let mut v = serde_json::json!({"name": "r", "url": "redis://127.0.0.1:6379/0"});
        v.as_object_mut().unwrap().extend(toml_extra.as_object().unwrap().clone());
        serde_json::from_value(v)
    }

    #[test]
    fn defaults_validate_and_render() {
        let c = config(serde_json::json!({})).unwrap();
        let t = c.check().unwrap();
        assert_eq!(t.render("app", "db", "public", "users", String::push_str), "app.public.users");
        assert_eq!(c.maxlen, None);
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = |extra| config(extra).unwrap().validate().unwrap_err().to_string();
        assert!(err(serde_json::json!({"maxlen": 0})).contains("`maxlen = 0`"));
        assert!(err(serde_json::json!({"stream": "{nope}"})).contains("unknown placeholder {nope}"));
        assert!(err(serde_json::json!({"url": "http://x"})).contains("is not a Redis URL"));
        assert!(config(serde_json::json!({"topic": "x"})).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
    }
}
