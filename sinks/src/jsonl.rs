//! `kind = "jsonl"`: one JSON event per line, to a file or to stdout.
//!
//! Exactly-once for files: `flush` fsyncs the file and returns its length as
//! the checkpoint, which the pipeline stores atomically with the sink's
//! offset. On start the file is truncated back to the committed length, so
//! lines written after the last commit (and possibly torn by a crash) are
//! removed and replayed. Stdout, pipes and devices cannot be taken back:
//! at-least-once.
//!
//! `outflow check` probes that the file's directory is writable.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use outflow_model::StreamItem;
use serde::Deserialize;
use serde_json::json;

use crate::format::debezium::{Debezium, DebeziumProperties};
use crate::format::envelope::EventWriter;
use crate::format::values::{ValueModes, ValueStyle};
use crate::format::Format;
use crate::preflight::{writable_dir, Probe};
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    pub name: String,
    /// File to append to, or "-" for stdout.
    pub path: PathBuf,
    #[serde(default)]
    pub format: Format,
    /// Shown in place of a TOASTed value the source did not send.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
    /// Debezium connector and transform properties, verbatim
    /// (`format::debezium`); lines have no keys or topics, so
    /// `message.key.columns` and topic routes are refused.
    #[serde(default)]
    pub debezium: DebeziumProperties,    /// Records with their schemas (Kafka Connect's JSON converter with
    /// `schemas.enable=true`, keys and values): the same as setting both
    /// `*.converter.schemas.enable` in `[sink.debezium]`.
    #[serde(default)]
    pub schemas: bool,
}

fn default_placeholder() -> String {
    "__debezium_unavailable_value".into()
}

enum Output {
    /// Stdout, a pipe or a device: written through, never truncated.
    Stream(Box<dyn Write + Send>),
    File {
        file: File,
        len: u64,
        path: PathBuf,
    },
}

pub struct JsonlSink {
    writer: EventWriter,
    out: Output,
    line: Vec<u8>,
    /// Bytes written by this instance.
    bytes: u64,
}

impl JsonlConfig {
    /// Opens the output; with a checkpoint, first cuts the file back to the
    /// length committed with the sink's offset.
    pub fn build(&self, ctx: SinkContext, checkpoint: Option<&Checkpoint>) -> Result<JsonlSink, SinkError> {
        let debezium = self.check()?;
        let style = ValueStyle { modes: debezium.values, ..ValueStyle::new(self.unavailable_value_placeholder.clone()) };
        let writer =
            EventWriter::new(self.format, style, ctx).unwrapped(debezium.unwrap).with_schemas(debezium.schemas.value);
        let is_stream =
            self.path.as_os_str() == "-" || std::fs::metadata(&self.path).is_ok_and(|m| !m.file_type().is_file());
        let out = if self.path.as_os_str() == "-" {
            Output::Stream(Box::new(io::stdout()))
        } else if is_stream {
            let f = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(|e| SinkError::io(format!("cannot open {}", self.path.display()), e))?;
            Output::Stream(Box::new(f))
        } else {
            open_file(&self.path, checkpoint)?
        };
        Ok(JsonlSink { writer, out, line: Vec::with_capacity(4096), bytes: 0 })
    }
}

impl JsonlConfig {
    /// `[sink.debezium]`, checked for a sink of lines.
    fn check(&self) -> Result<Debezium, SinkError> {
        let bad = |what: String| SinkError::Data(format!("sink {:?}: [sink.debezium] {what}", self.name));
        let debezium = Debezium::parse(&self.debezium, self.schemas).map_err(bad)?;
        if !debezium.key_columns.is_empty() {
            return Err(bad("`message.key.columns` sets record keys; jsonl lines have none (use it on a kafka sink)".into()));
        }
        if debezium.schema_changes {
            return Err(bad(
                "schema change records go to a schema change topic; jsonl lines have none (use it on a kafka sink)".into(),
            ));
        }
        if debezium.heartbeat.is_some() {
            return Err(bad("heartbeat records go to a heartbeat topic; jsonl lines have none (use it on a kafka sink)".into()));
        }
        if !debezium.routes.is_empty() {
            return Err(bad("ByLogicalTableRouter routes topics; jsonl lines have none (use it on a kafka sink)".into()));
        }
        if debezium.avro.is_some() {
            return Err(bad(
                "io.confluent.connect.avro.AvroConverter writes binary records for a schema registry; jsonl lines are JSON (use it on a kafka sink)"
                    .into(),
            ));
        }
        let converted = debezium.unwrap.is_some() || debezium.values != ValueModes::default() || debezium.schemas.any();
        if converted && self.format != Format::Debezium {
            return Err(bad(
                "transforms, schemas and converter settings apply to Debezium records: set `format = \"debezium\"` (the default)"
                    .into(),
            ));
        }
        Ok(debezium)
    }
}

#[async_trait]
impl SinkFactory for JsonlConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        self.check().map(drop)
    }

    async fn build(&self, ctx: SinkContext, checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(JsonlConfig::build(self, ctx, checkpoint)?))
    }

    async fn preflight(&self) -> Vec<Probe> {
        if self.path.as_os_str() == "-" {
            return vec![Probe::pass(format!("sink {:?}: stdout", self.name))];
        }
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let what = format!("sink {:?}: {} is writable", self.name, dir.display());
        vec![match writable_dir(dir) {
            Ok(()) => Probe::pass(what),
            Err(why) => Probe::fail(
                format!("{what} ({why})"),
                format!("create {} and make it writable for this user", dir.display()),
            ),
        }]
    }
}

fn open_file(path: &PathBuf, checkpoint: Option<&Checkpoint>) -> Result<Output, SinkError> {
    let shown = path.display().to_string();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| SinkError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(false)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(|e| SinkError::io(format!("cannot open {shown}"), e))?;
    let actual = file.metadata().map_err(|e| SinkError::io(format!("cannot stat {shown}"), e))?.len();
    let committed = match checkpoint {
        None | Some(Checkpoint::Null) => actual,
        Some(c) => c
            .get("len")
            .and_then(|l| l.as_u64())
            .ok_or_else(|| SinkError::Checkpoint(format!("expected {{\"len\": N}}, found {c}")))?,
    };
    if actual < committed {
        return Err(SinkError::Checkpoint(format!(
            "{shown} is {actual} bytes but {committed} bytes were committed: the file was truncated or replaced outside outflow; \
             restore it, or reset this sink's offset to write it anew"
        )));
    }
    if actual > committed {
        tracing::info!(path = %shown, bytes = actual - committed, "removing uncommitted tail of jsonl output");
        file.set_len(committed).map_err(|e| SinkError::io(format!("cannot truncate {shown}"), e))?;
        file.sync_all().map_err(|e| SinkError::io(format!("cannot fsync {shown}"), e))?;
    }
    file.seek(SeekFrom::Start(committed)).map_err(|e| SinkError::io(format!("cannot seek {shown}"), e))?;
    Ok(Output::File { file, len: committed, path: path.clone() })
}

impl Sink for JsonlSink {
    /// Renders the whole batch into one buffer and writes it with one call.
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.line.clear();
        self.writer.start_batch();
        for item in items {
            match item {
                StreamItem::Change(ev) => self.writer.write_lines(&mut self.line, ev),
                StreamItem::Message(m) => self.writer.write_message(&mut self.line, m),
                _ => {}
            }
        }
        match &mut self.out {
            Output::Stream(s) => s.write_all(&self.line).map_err(|e| SinkError::io("cannot write output", e))?,
            Output::File { file, len, path } => {
                file.write_all(&self.line).map_err(|e| SinkError::io(format!("cannot write {}", path.display()), e))?;
                *len += self.line.len() as u64;
            }
        }
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        match &mut self.out {
            Output::Stream(s) => {
                s.flush().map_err(|e| SinkError::io("cannot flush output", e))?;
                Ok(Checkpoint::Null)
            }
            Output::File { file, len, path } => {
                let shown = path.display();
                file.sync_data().map_err(|e| SinkError::io(format!("cannot fsync {shown}"), e))?;
                Ok(json!({ "len": *len }))
            }
        }
    }

    fn exactly_once(&self) -> bool {
        matches!(self.out, Output::File { .. })
    }
}
