//! The `[[sink]] kind = "nats"` settings and their checks, the credentials
//! they name, and how the `subject` template becomes NATS subjects (one per
//! table) and the stream's subject filter (the template with the per-table
//! tokens turned into `*`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::format::routing::NameTemplate;
use crate::format::Format;
use crate::SinkError;
pub use crate::text::redact;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub name: String,
    /// `nats://[user:password@|token@]host:port` (or `tls://`).
    pub url: String,
    /// User and password (instead of putting them in the url).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// An authentication token (instead of `token@` in the url).
    #[serde(default)]
    pub token: Option<String>,
    /// A NATS credentials file (user JWT and nkey seed, as `nsc` writes it).
    #[serde(default)]
    pub creds: Option<PathBuf>,
    /// With `tls://`: the PEM CA file the server's certificate must chain
    /// to (default: the system's trusted roots).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Subject of each table's changes: `{name}` (the pipeline's name),
    /// `{db}`, `{schema}` and `{table}` are replaced.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The JetStream stream that captures the subjects.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Create the stream when it is missing, and add the sink's subjects to
    /// it when it does not capture them.
    #[serde(default = "default_true")]
    pub create_stream: bool,
    /// Message body format: `debezium` (envelope) or `json` (the row flat).
    #[serde(default)]
    pub format: Format,
    /// Publishes awaiting their acks before `write` waits for the oldest
    /// (bounds memory and holds the source while the server is slow).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
}

fn default_subject() -> String {
    "{name}.{schema}.{table}".into()
}

fn default_stream() -> String {
    "OUTFLOW".into()
}

fn default_true() -> bool {
    true
}

fn default_in_flight() -> usize {
    1000
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

/// How the sink authenticates (secrets are never printed).
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// The path of a credentials file (read when connecting).
    CredsFile(PathBuf),
}

/// What `validate` checked: the server address without credentials, how to
/// authenticate, and the parsed subject template.
#[derive(Clone)]
pub struct Checked {
    /// `scheme://host:port` (no user info).
    pub server: String,
    pub credentials: Credentials,
    pub template: NameTemplate,
}

impl NatsConfig {
    /// The settings checks `build()` makes, without connecting.
    pub fn validate(&self) -> Result<(), SinkError> {
        self.check().map(|_| ())
    }

    pub(crate) fn check(&self) -> Result<Checked, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: {what}", self.name));
        let url = url::Url::parse(&self.url).map_err(|e| {
            bad(format!("`url = {:?}` is not a NATS URL ({e}); use nats://[user:password@]host:port", redact(&self.url)))
        })?;
        if !matches!(url.scheme(), "nats" | "tls") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad(format!(
                "`url = {:?}` is not a NATS URL; use nats://[user:password@]host:port (or tls://)",
                redact(&self.url)
            )));
        }
        if let Some(path) = &self.tls_ca_file {
            if url.scheme() != "tls" {
                return Err(bad("`tls_ca_file` is set but the url is not tls://; use tls://host:port".into()));
            }
            if !path.is_file() {
                return Err(bad(format!("`tls_ca_file = {path:?}` is not a file; give the PEM file of the server's CA")));
            }
        }
        let server = format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or_default(), url.port().unwrap_or(4222));
        let in_url = match (url.username(), url.password()) {
            ("", None) => Credentials::None,
            (user, Some(password)) => Credentials::UserPassword {
                user: percent_decode(user),
                password: percent_decode(password),
            },
            (token, None) => Credentials::Token(percent_decode(token)),
        };
        let keys = match (&self.user, &self.password, &self.token, &self.creds) {
            (None, None, None, None) => Credentials::None,
            (Some(user), Some(password), None, None) => {
                Credentials::UserPassword { user: user.clone(), password: password.clone() }
            }
            (None, None, Some(token), None) => Credentials::Token(token.clone()),
            (None, None, None, Some(path)) => Credentials::CredsFile(path.clone()),
            (Some(_), None, None, None) | (None, Some(_), None, None) => {
                return Err(bad("`user` and `password` go together; set both or neither".into()))
            }
            _ => {
                return Err(bad(
                    "set one way to authenticate: `user` and `password`, `token` or `creds`, not several".into(),
                ))
            }
        };
        let credentials = match (in_url, keys) {
            (c, Credentials::None) | (Credentials::None, c) => c,
            _ => {
                return Err(bad(
                    "credentials are both in `url` and in `user`/`password`/`token`/`creds`; keep one".into(),
                ))
            }
        };
        if self.max_in_flight == 0 {
            return Err(bad("`max_in_flight` must be at least 1".into()));
        }
        if self.stream.is_empty() || self.stream.chars().any(|c| c.is_whitespace() || ".*>/\\".contains(c)) {
            return Err(bad(format!(
                "`stream = {:?}` is not a JetStream stream name (no spaces, `.`, `*`, `>`, `/` or `\\`)",
                self.stream
            )));
        }
        let template = NameTemplate::parse(&self.subject, "subject")
            .map_err(|e| bad(format!("`subject = {:?}`: {e}", self.subject)))?;
        check_subject_template(&self.subject).map_err(|e| bad(format!("`subject = {:?}`: {e}", self.subject)))?;
        Ok(Checked { server, credentials, template })
    }
}

/// The literal parts of a subject template must make a publishable subject:
/// no wildcards or spaces, no empty tokens.
fn check_subject_template(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_whitespace() || c == '*' || c == '>') {
        return Err("a subject to publish to has no spaces and no `*` or `>` wildcards".into());
    }
    if s.split('.').any(str::is_empty) {
        return Err("a subject has no empty tokens (no leading, trailing or double `.`)".into());
    }
    Ok(())
}

/// Appends a placeholder's value as one subject token: `.`, wildcards,
/// spaces and control characters become `_` (an empty value is `_`).
pub fn push_subject_token(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('_');
    }
    out.extend(s.chars().map(|c| if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() { '_' } else { c }));
}

/// The stream's subject filter for this pipeline: the template rendered
/// with the pipeline's name and database, and every token holding
/// `{schema}` or `{table}` replaced by `*`.
pub fn subject_filter(template: &str, pipeline: &str, db: &str) -> String {
    let (mut name, mut database) = (String::new(), String::new());
    push_subject_token(&mut name, pipeline);
    push_subject_token(&mut database, db);
    let tokens: Vec<String> = template
        .split('.')
        .map(|token| {
            if token.contains("{schema}") || token.contains("{table}") {
                "*".to_string()
            } else {
                token.replace("{name}", &name).replace("{db}", &database)
            }
        })
        .collect();
    tokens.join(".")
}

/// Whether the subject filter `filter` (with `*` and `>` wildcards)
/// matches the literal `subject`.
pub fn filter_matches(filter: &str, subject: &str) -> bool {
    let mut want = filter.split('.');
    let mut have = subject.split('.');
    loop {
        match (want.next(), have.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(w), Some(h)) if w == h => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The URL's user info as written (`%40` for `@`, ...) decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}


#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> Result<NatsConfig, serde_json::Error> {
        let mut v = serde_json::json!({"name": "n", "url": "nats://127.0.0.1:4222"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v)
    }

    #[test]
    fn defaults_validate_and_render() {
        let c = config(serde_json::json!({})).unwrap();
        let checked = c.check().unwrap();
        assert_eq!(checked.server, "nats://127.0.0.1:4222");
        assert!(matches!(checked.credentials, Credentials::None));
        assert_eq!(c.stream, "OUTFLOW");
        assert!(c.create_stream);
        let subject = checked.template.render("app", "db", "public", "my.table *", push_subject_token);
        assert_eq!(subject, "app.public.my_table__");
        assert_eq!(subject_filter(&c.subject, "app", "db"), "app.*.*");
        assert!(filter_matches("app.*.*", &subject));
    }

    #[test]
    fn credentials_come_from_the_url_or_the_keys() {
        let creds = |extra| config(extra).unwrap().check().map(|c| c.credentials);
        let url = |u: &str| serde_json::json!({"url": u});
        assert!(matches!(creds(url("nats://u:p%40ss@h:1")), Ok(Credentials::UserPassword { user, password })
            if user == "u" && password == "p@ss"));
        assert!(matches!(creds(url("nats://s3cret@h")), Ok(Credentials::Token(t)) if t == "s3cret"));
        assert_eq!(config(url("nats://u:p@h:1")).unwrap().check().unwrap().server, "nats://h:1");
        assert!(matches!(creds(serde_json::json!({"user": "u", "password": "p"})),
            Ok(Credentials::UserPassword { .. })));
        assert!(matches!(creds(serde_json::json!({"creds": "/x.creds"})), Ok(Credentials::CredsFile(_))));
        let err = |extra| creds(extra).err().unwrap().to_string();
        assert!(err(serde_json::json!({"user": "u"})).contains("go together"));
        assert!(err(serde_json::json!({"token": "t", "creds": "/x"})).contains("not several"));
        assert!(err(serde_json::json!({"url": "nats://t@h", "token": "t"})).contains("keep one"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let err = |extra| config(extra).unwrap().validate().unwrap_err().to_string();
        assert!(err(serde_json::json!({"url": "http://h:1"})).contains("is not a NATS URL"));
        assert!(err(serde_json::json!({"url": "nats://u:secret@"})).contains("nats://u:***@"));
        assert!(err(serde_json::json!({"subject": "{nope}"})).contains("unknown placeholder {nope}"));
        assert!(err(serde_json::json!({"subject": "a.>"})).contains("wildcards"));
        assert!(err(serde_json::json!({"subject": "a..{table}"})).contains("empty tokens"));
        assert!(err(serde_json::json!({"stream": "a.b"})).contains("`stream = \"a.b\"`"));
        assert!(err(serde_json::json!({"max_in_flight": 0})).contains("`max_in_flight`"));
        assert!(config(serde_json::json!({"topic": "x"})).is_err());
    }

    #[test]
    fn subject_filters_keep_literal_tokens_and_wildcard_the_per_table_ones() {
        assert_eq!(subject_filter("cdc.{db}.{schema}_{table}", "p", "shop"), "cdc.shop.*");
        assert_eq!(subject_filter("{name}-x.{table}", "a.b", "d"), "a_b-x.*");
        assert!(filter_matches("a.>", "a.b.c") && !filter_matches("a.>", "a"));
        assert!(!filter_matches("a.*", "a.b.c") && !filter_matches("a.b", "a.c"));
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("nats://u:secret@h:1"), "nats://u:***@h:1");
        assert_eq!(redact("nats://secret@h:1"), "nats://***@h:1");
        assert_eq!(redact("nats://h:1"), "nats://h:1");
    }
}
