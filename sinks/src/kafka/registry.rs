//! Avro records for the Kafka sink: a Confluent Schema Registry client and
//! the per-table cache of registered schemas.
//!
//! Subjects follow Confluent's default `TopicNameStrategy`: `<topic>-key`
//! and `<topic>-value`. A record's Connect schema (`format::schema`) is
//! turned into Avro (`format::avro`) and registered once per table schema
//! version (`POST /subjects/{subject}/versions`, which answers the existing
//! id for a schema the subject already has); the id is cached per
//! (subject, schema text) too, so a new table version with an unchanged
//! record schema costs no request. Record bodies are the JSON the sink
//! renders anyway, transcoded to Avro, behind the wire format's magic byte
//! and schema id.
//!
//! Registry answers: unreachable, timeouts and 5xx are retried with backoff
//! while the sink (and so the source) waits; 401/403 stop the sink with the
//! setting to fix; 409 (the subject's compatibility rule refuses the new
//! schema) stops it naming the subject. Nothing past the record being
//! written is acknowledged in either case.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outflow_model::{ChangeEvent, Dialect, TableId, TableSchema};
use reqwest::StatusCode;
use serde_json::{json, Value as Json};
use tokio::runtime::Handle;

use crate::format::avro::{self, AvroSchema};
use super::TableRoute;
use crate::format::schema::{self, Schema};
use crate::format::schema_change;
use crate::{Probe, SinkError};

/// The sink's Avro steps: each replaces a rendered JSON record by its
/// Avro record (nothing to do without Avro).
impl super::KafkaSink {
    /// With Avro, replaces the JSON key of `ev` by its Avro record.
    pub(super) fn avro_key(&mut self, key: &mut Vec<u8>, ev: &ChangeEvent, route: &TableRoute) -> Result<(), SinkError> {
        if self.avro.is_none() {
            return Ok(());
        }
        let columns = self.key_columns(&ev.table)?;
        let extra = route.key_field.as_ref().map(|(f, _)| f.as_str());
        let modes = self.style.modes;
        let avro = self.avro.as_mut().expect("checked above");
        avro.table_record(
            &ev.table,
            Part::Key,
            || format!("{}-key", route.topic),
            || schema::key(&ev.table, &route.struct_name, columns.as_deref(), extra, &modes),
            key,
        )
    }

    /// With Avro, replaces the JSON value of `ev` (the envelope, or the
    /// unwrap transform's row) by its Avro record.
    pub(super) fn avro_value(&mut self, value: &mut Vec<u8>, ev: &ChangeEvent, route: &TableRoute) -> Result<(), SinkError> {
        let Some(avro) = self.avro.as_mut() else { return Ok(()) };
        let (modes, dialect) = (self.style.modes, self.ctx.dialect);
        let (unwrap, pipeline) = (&self.debezium.unwrap, &self.ctx.pipeline);
        avro.table_record(
            &ev.table,
            Part::Value,
            || format!("{}-value", route.topic),
            || match unwrap {
                Some(unwrap) => {
                    schema::unwrapped(&ev.table, &schema::table_name(pipeline, &ev.table.id), dialect, unwrap, &modes)
                }
                None => schema::envelope(&ev.table, &route.struct_name, dialect, &modes),
            },
            value,
        )
    }

    /// With Avro, replaces the JSON record of a record that belongs to no
    /// table by its Avro record.
    pub(super) fn avro_fixed(&mut self, record: &mut Vec<u8>, kind: Fixed, topic: &str) -> Result<(), SinkError> {
        let Some(avro) = self.avro.as_mut() else { return Ok(()) };
        let dialect = self.ctx.dialect;
        let (suffix, build): (&str, fn(Dialect) -> Schema) = match kind {
            Fixed::MessageKey => ("key", |_| schema::message_key()),
            Fixed::MessageValue => ("value", schema::message_value),
            Fixed::TransactionKey => ("key", |_| schema::transaction_key()),
            Fixed::TransactionValue => ("value", |_| schema::transaction_value()),
            Fixed::SchemaChangeKey => ("key", schema_change::key_schema),
            Fixed::SchemaChangeValue => ("value", schema_change::value_schema),
        };
        avro.fixed_record(kind, || format!("{topic}-{suffix}"), || build(dialect), record)
    }
}

/// How long `outflow check` waits for the registry.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait on the registry says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Confluent's content type for registry requests.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where the registry is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    pub url: String,
    /// Basic auth (user, password).
    pub auth: Option<(String, String)>,
    pub ca_file: Option<String>,
}

impl RegistrySettings {
    pub(crate) fn validate(&self) -> Result<(), String> {
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(format!("schema registry URL {:?} is not an http(s) URL; give e.g. http://host:8081", self.url)),
        }
        if let Some(path) = &self.ca_file {
            if !std::path::Path::new(path).is_file() {
                return Err(format!(
                    "`schema_registry_ca_file = {path:?}` is not a file; give the PEM file of the registry's CA"
                ));
            }
        }
        Ok(())
    }
}

/// A schema registered for one record kind: its Connect schema (which
/// guides transcoding) and the id of its Avro form.
struct Registered {
    connect: Schema,
    id: u32,
}

/// A table's registered key and value schemas (by [`Part`]).
type TableSchemas = [Option<Arc<Registered>>; 2];

/// Which of a table's records.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    Key = 0,
    Value = 1,
}

/// The records that belong to no table.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fixed {
    MessageKey,
    MessageValue,
    TransactionKey,
    TransactionValue,
    SchemaChangeKey,
    SchemaChangeValue,
}

/// Encodes records as Avro, registering their schemas as needed.
pub(crate) struct AvroRecords {
    client: Client,
    /// Per table: its schema version and registered key and value schemas.
    tables: HashMap<TableId, (u32, TableSchemas)>,
    fixed: HashMap<Fixed, Arc<Registered>>,
    /// Ids by (subject, Avro schema text).
    ids: HashMap<(String, String), u32>,
    json: Vec<u8>,
}

impl AvroRecords {
    pub(crate) fn new(settings: &RegistrySettings, sink: &str, runtime: Handle) -> Result<AvroRecords, SinkError> {
        Ok(AvroRecords {
            client: Client::new(settings, sink, runtime)?,
            tables: HashMap::new(),
            fixed: HashMap::new(),
            ids: HashMap::new(),
            json: Vec::new(),
        })
    }

    /// Replaces the JSON record `record` (no schema) of `table` by its Avro
    /// record; `build` makes its Connect schema the first time this table
    /// version is seen, registered under `subject`.
    pub(crate) fn table_record(
        &mut self,
        table: &TableSchema,
        part: Part,
        subject: impl FnOnce() -> String,
        build: impl FnOnce() -> Schema,
        record: &mut Vec<u8>,
    ) -> Result<(), SinkError> {
        let cached = self.tables.get(&table.id).filter(|(v, _)| *v == table.version).and_then(|(_, p)| p[part as usize].clone());
        let registered = match cached {
            Some(r) => r,
            None => {
                let r = Arc::new(self.register(&subject(), build())?);
                let entry = self.tables.entry(table.id.clone()).or_insert_with(|| (table.version, [None, None]));
                if entry.0 != table.version {
                    *entry = (table.version, [None, None]);
                }
                entry.1[part as usize] = Some(r.clone());
                r
            }
        };
        self.encode(&registered, record)
    }

    /// [`Self::table_record`] for a record that belongs to no table.
    pub(crate) fn fixed_record(
        &mut self,
        kind: Fixed,
        subject: impl FnOnce() -> String,
        build: impl FnOnce() -> Schema,
        record: &mut Vec<u8>,
    ) -> Result<(), SinkError> {
        let registered = match self.fixed.get(&kind) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(self.register(&subject(), build())?);
                self.fixed.insert(kind, r.clone());
                r
            }
        };
        self.encode(&registered, record)
    }

    fn register(&mut self, subject: &str, connect: Schema) -> Result<Registered, SinkError> {
        let avro = AvroSchema::of(&connect).map_err(|e| {
            SinkError::Data(format!("subject {subject}: {e}; column names must be valid Avro names ([A-Za-z_][A-Za-z0-9_]*)"))
        })?;
        let key = (subject.to_string(), avro.text);
        let id = match self.ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.client.register(subject, &key.1)?;
                tracing::info!(sink = %self.client.sink, subject, id, "schema registered");
                self.ids.insert(key, id);
                id
            }
        };
        Ok(Registered { connect, id })
    }

    fn encode(&mut self, registered: &Registered, record: &mut Vec<u8>) -> Result<(), SinkError> {
        std::mem::swap(&mut self.json, record);
        record.clear();
        avro::wire_header(record, registered.id);
        avro::encode(&registered.connect, &self.json, record)
            .map_err(|e| SinkError::Data(format!("cannot write an avro record (schema id {}): {e}", registered.id)))
    }
}

/// The registry's REST API, on the pipeline's runtime (the sink's thread
/// blocks on it).
struct Client {
    sink: String,
    base: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
    runtime: Handle,
}

/// One answer, judged.
enum Answer {
    Id(u32),
    Retry(String),
    Fail(SinkError),
}

/// The HTTP client for `settings` (no I/O).
fn http_client(settings: &RegistrySettings, sink: &str) -> Result<reqwest::Client, SinkError> {
    let mut builder = reqwest::Client::builder()
            .user_agent(concat!("outflow/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| SinkError::io(format!("reading `schema_registry_ca_file` {path}"), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SinkError::fatal(format!("`schema_registry_ca_file` {path} holds no PEM certificate ({e})"), "give a PEM CA bundle")
            })?;
            builder = builder.tls_certs_only(certs);
        }
    builder.build().map_err(|e| {
        SinkError::fatal(
            format!("cannot set up the schema registry client of sink {sink:?}: {e}"),
            "check `schema_registry_ca_file`",
        )
    })
}

/// `outflow check`: the registry answers `GET /subjects` with the sink's
/// credentials within [`PROBE_TIMEOUT`].
pub(crate) async fn probe(sink: &str, settings: &RegistrySettings) -> Probe {
    let what = format!("sink {sink:?}: schema registry {} is reachable and accepts the sink's credentials", settings.url);
    let http = match http_client(settings, sink) {
        Ok(h) => h,
        Err(e) => return Probe::fail(format!("{what}: {e}"), "check `schema_registry_ca_file`"),
    };
    let mut request = http.get(format!("{}/subjects", settings.url.trim_end_matches('/'))).timeout(PROBE_TIMEOUT);
    if let Some((user, password)) = &settings.auth {
        request = request.basic_auth(user, Some(password));
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Probe::pass(what),
        Ok(r) if matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Probe::fail(
            format!("{what}: HTTP {}", r.status().as_u16()),
            "set `schema_registry_user` and `schema_registry_password` (or [sink.debezium] \
             `*.converter.basic.auth.user.info`) to a user allowed to register schemas",
        ),
        Ok(r) => Probe::fail(
            format!("{what}: HTTP {}", r.status().as_u16()),
            "check `schema_registry`: the registry's base URL (e.g. http://host:8081)",
        ),
        Err(e) => Probe::fail(
            format!("{what}: {e}"),
            "check `schema_registry` (reachable from this host) and, for https, `schema_registry_ca_file`",
        ),
    }
}

impl Client {
    fn new(settings: &RegistrySettings, sink: &str, runtime: Handle) -> Result<Client, SinkError> {
        let http = http_client(settings, sink)?;
        Ok(Client {
            sink: sink.to_string(),
            base: settings.url.trim_end_matches('/').to_string(),
            http,
            auth: settings.auth.clone(),
            runtime,
        })
    }

    /// `POST /subjects/{subject}/versions`: the schema's id, retrying while
    /// the registry is unreachable or failing.
    fn register(&self, subject: &str, schema: &str) -> Result<u32, SinkError> {
        let url = format!("{}/subjects/{}/versions", self.base, percent_encode(subject));
        let body = json!({ "schema": schema }).to_string();
        let mut backoff = Duration::from_millis(200);
        let mut logged: Option<Instant> = None;
        loop {
            match self.runtime.block_on(self.attempt(&url, &body, subject)) {
                Answer::Id(id) => return Ok(id),
                Answer::Fail(e) => return Err(e),
                Answer::Retry(why) => {
                    if logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
                        tracing::warn!(sink = %self.sink, registry = %self.base, subject, error = %why,
                            "schema registry is not answering; retrying (nothing after the last delivered record is acknowledged to the source)");
                        logged = Some(Instant::now());
                    }
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt(&self, url: &str, body: &str, subject: &str) -> Answer {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .body(body.to_string());
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::Retry(e.to_string()),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return Answer::Retry(format!("HTTP {status}, body unreadable: {e}")),
        };
        let answer: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        let message = answer["message"].as_str().map_or_else(|| text.chars().take(200).collect(), str::to_string);
        match status {
            s if s.is_success() => match answer["id"].as_u64().and_then(|id| u32::try_from(id).ok()) {
                Some(id) => Answer::Id(id),
                None => Answer::Fail(SinkError::Data(format!(
                    "schema registry {} answered subject {subject} without a schema id: {}",
                    self.base,
                    text.chars().take(200).collect::<String>()
                ))),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Answer::Fail(SinkError::fatal(
                format!(
                    "schema registry {} refused to register subject {subject} (HTTP {}{}): {message}",
                    self.base,
                    status.as_u16(),
                    if self.auth.is_some() { ", credentials given" } else { ", no credentials given" }
                ),
                "set `schema_registry_user` and `schema_registry_password` (or [sink.debezium] \
                 `*.converter.basic.auth.user.info`) to a user allowed to register schemas",
            )),
            StatusCode::CONFLICT => Answer::Fail(SinkError::fatal(
                format!("schema registry {} refused the new schema of subject {subject} as incompatible: {message}", self.base),
                format!(
                    "relax the subject's compatibility (PUT {}/config/{subject} {{\"compatibility\": \"NONE\"}}) or \
                     delete the subject, then run again",
                    self.base
                ),
            )),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT => {
                Answer::Retry(format!("HTTP {}: {message}", s.as_u16()))
            }
            s => Answer::Fail(SinkError::Data(format!(
                "schema registry {} refused the schema of subject {subject} (HTTP {}): {message}",
                self.base,
                s.as_u16()
            ))),
        }
    }
}

/// A subject as one URL path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
