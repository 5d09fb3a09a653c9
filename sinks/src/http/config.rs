//! The `[[sink]] kind = "http"` settings and their checks (no I/O).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::format::Format;
use crate::settings::{ByteSize, Interval};
use crate::SinkError;
pub use crate::text::redact;

/// Headers outflow sets on every request itself; `headers` may not set them.
pub const OWN_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    super::request::SIGNATURE,
    super::request::PIPELINE,
    super::request::COUNT,
    super::request::FIRST,
    super::request::LAST,
    super::request::TABLE,
    super::request::OP,
    super::request::KEY,
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub name: String,
    /// Where the events are POSTed: `http://` or `https://`.
    pub url: String,
    /// Key of the HMAC-SHA256 signature of each body (header
    /// `X-Outflow-Signature: sha256=<hex>`); best from the environment:
    /// `secret = "${WEBHOOK_SECRET}"`. No signature without it.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra headers sent with every request (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// `batch`: a JSON array of up to `batch_size` records per request;
    /// `single`: one record (a JSON object) per request.
    #[serde(default)]
    pub mode: Mode,
    /// Records per request at most (mode `batch`).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Body bytes per request at most (mode `batch`); a record larger
    /// than this goes alone.
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: ByteSize,
    /// Record format: `debezium` (envelope) or `json` (the row flat).
    #[serde(default)]
    pub format: Format,
    /// Whole-request timeout (connect, send, answer).
    #[serde(default = "default_timeout")]
    pub timeout: Interval,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Interval,
    /// Longest pause between retries (they double from 100 ms up to this);
    /// a `Retry-After` answer is honoured instead.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Interval,
    /// PEM file of the CA(s) that signed the receiver's certificate; it
    /// replaces the system's roots. Without it, the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
}

/// How events are grouped into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Batch,
    Single,
}

/// A setting that must not be shown (the HMAC key, header values such as
/// `Authorization`): its `Debug` prints `***`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

pub const DEFAULT_BATCH_SIZE: usize = 500;

fn default_max_batch_bytes() -> ByteSize {
    ByteSize(1_000_000)
}

fn default_timeout() -> Interval {
    Interval(Duration::from_secs(30))
}

fn default_connect_timeout() -> Interval {
    Interval(Duration::from_secs(10))
}

fn default_max_backoff() -> Interval {
    Interval(Duration::from_secs(10))
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

/// The checked settings `build` uses.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: reqwest::Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub batch_size: usize,
    pub max_batch_bytes: usize,
}

impl HttpConfig {
    /// The settings checks `build()` makes, without connecting.
    pub fn validate(&self) -> Result<(), SinkError> {
        self.check().map(|_| ())
    }

    pub(crate) fn check(&self) -> Result<Checked, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: {what}", self.name));
        let url = reqwest::Url::parse(&self.url).map_err(|e| {
            bad(format!("`url = {:?}` is not a URL ({e}); write e.g. https://host/path", redact(&self.url)))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad(format!("`url = {:?}` is not an http:// or https:// URL with a host", redact(&self.url))));
        }
        if self.secret.as_ref().is_some_and(|s| s.0.is_empty()) {
            return Err(bad(
                "`secret` is empty (is its environment variable set to nothing?); set it or remove the setting".into(),
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let h = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad(format!("`headers`: {name:?} is not a valid HTTP header name")))?;
            if OWN_HEADERS.contains(&h.as_str()) {
                return Err(bad(format!("`headers`: {name:?} is set by outflow itself; remove it from `headers`")));
            }
            let mut v = HeaderValue::from_str(&value.0).map_err(|_| {
                bad(format!("`headers`: the value of {name:?} is not a valid header value (control characters?)"))
            })?;
            v.set_sensitive(true);
            headers.push((h, v));
        }
        let batch_size = match (self.mode, self.batch_size) {
            (Mode::Single, Some(n)) if n != 1 => {
                return Err(bad(format!("`batch_size = {n}` with `mode = \"single\"`; remove one of them")))
            }
            (Mode::Single, _) => 1,
            (Mode::Batch, Some(0)) => return Err(bad("`batch_size` must be at least 1".into())),
            (Mode::Batch, n) => n.unwrap_or(DEFAULT_BATCH_SIZE),
        };
        if self.max_batch_bytes.0 < 2 {
            return Err(bad("`max_batch_bytes` must be at least 2 (an empty JSON array)".into()));
        }
        if self.timeout.0.is_zero() || self.connect_timeout.0.is_zero() {
            return Err(bad("`timeout` and `connect_timeout` must be more than 0".into()));
        }
        if self.max_backoff.0 < Duration::from_millis(100) {
            return Err(bad("`max_backoff` must be at least 100ms".into()));
        }
        if let Some(path) = &self.ca_file {
            if !std::path::Path::new(path).is_file() {
                return Err(bad(format!("`ca_file = {path:?}` is not a file; give the PEM file of the receiver's CA")));
            }
        }
        let max_batch_bytes = usize::try_from(self.max_batch_bytes.0).unwrap_or(usize::MAX);
        Ok(Checked { url, headers, batch_size, max_batch_bytes })
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Result<HttpConfig, serde_json::Error> {
        let mut v = serde_json::json!({"name": "hook", "url": "https://receiver.example/cdc"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v)
    }

    #[test]
    fn defaults_validate() {
        let c = config(serde_json::json!({})).unwrap();
        let checked = c.check().unwrap();
        assert_eq!(checked.batch_size, 500);
        assert_eq!(checked.max_batch_bytes, 1_000_000);
        assert_eq!(c.mode, Mode::Batch);
        let single = config(serde_json::json!({"mode": "single"})).unwrap().check().unwrap();
        assert_eq!(single.batch_size, 1);
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = |extra| config(extra).unwrap().validate().unwrap_err().to_string();
        assert!(err(serde_json::json!({"url": "ftp://x/y"})).contains("not an http:// or https:// URL"));
        assert!(err(serde_json::json!({"url": "nope"})).contains("is not a URL"));
        assert!(err(serde_json::json!({"secret": ""})).contains("`secret` is empty"));
        assert!(err(serde_json::json!({"batch_size": 0})).contains("`batch_size` must be at least 1"));
        assert!(err(serde_json::json!({"mode": "single", "batch_size": 10})).contains("with `mode = \"single\"`"));
        assert!(err(serde_json::json!({"headers": {"Idempotency-Key": "x"}})).contains("set by outflow itself"));
        assert!(err(serde_json::json!({"headers": {"bad name": "x"}})).contains("not a valid HTTP header name"));
        assert!(err(serde_json::json!({"headers": {"X-A": "a\nb"}})).contains("not a valid header value"));
        assert!(err(serde_json::json!({"ca_file": "/nonexistent/ca.pem"})).contains("`ca_file"));
        assert!(config(serde_json::json!({"topic": "x"})).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_urls_are_redacted() {
        let c = config(serde_json::json!({"secret": "s3cret", "headers": {"Authorization": "Bearer t0ken"}})).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("t0ken"), "{shown}");
        assert_eq!(redact("https://u:pw@h/x"), "https://u:***@h/x");
        assert_eq!(redact("https://h/x"), "https://h/x");
    }
}
