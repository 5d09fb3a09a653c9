//! `kind = "http"`: change events POSTed to a webhook, in batches (a JSON
//! array of the configured format's records, the Debezium envelope by
//! default) or one per request (`mode = "single"`: the record itself).
//! At-least-once, with an idempotency key per request that lets a receiver
//! which remembers keys turn it into exactly-once.
//!
//! Requests ([`request`]): `Idempotency-Key: <first>..<last>` (the outflow
//! positions of the batch's first and last events), `X-Outflow-Signature:
//! sha256=<hex HMAC-SHA256 of the body>` with a `secret`, the configured
//! `headers`, and position/count headers. Transaction boundaries, logical
//! decoding messages and schema changes carry no record.
//!
//! Batches: a batch closes when it holds `batch_size` records, when the
//! next record would take its body past `max_batch_bytes` (a larger record
//! goes alone), and when the pipeline flushes (every commit interval, at a
//! transaction's end). Nothing else — no timer — so the batches formed
//! from a given position are the same on every run, and a restart, which
//! resumes right after the last flushed batch, forms the batches it
//! replays the way they were formed before: same events, same key. The
//! one exception is the batch a flush closed when a crash came before its
//! offset was stored (while it was in flight, or between the receiver's
//! 2xx and the state file's fsync): the replay, cutting as before up to
//! it, starts a batch at that batch's first position too, but does not
//! close it where that flush did, so it runs on to the next cut — a
//! request with the same first position and a later last one, whose
//! records begin with the earlier request's. A receiver that
//! must drop every duplicate dedups on keys and on first positions
//! (`X-Outflow-First-Position`); both cases are tested
//! (`tests/e2e/http.rs`).
//!
//! Delivery ([`deliver`]): one request in flight at a time, so the
//! receiver sees events in source order; while it is out the sink renders
//! the next batch. `write` waits for the previous request before sending a
//! full batch, `flush` sends the open batch and waits for every answer:
//! memory stays at two batches, and a slow or failing receiver holds the
//! source. Timeouts, dropped connections, 408, 429 and 5xx are retried
//! forever with backoff (honouring `Retry-After`); any other 4xx stops the
//! run with its status and the start of its body, nothing past the batch
//! acknowledged.
//!
//! reqwest (hyper) is the client: rustls with the platform's roots, or
//! only those of `ca_file`; no redirects; connections kept alive.

mod config;
mod deliver;
mod factory;
mod request;

use std::time::Duration;

use outflow_model::{ChangeEvent, Op, StreamItem};
use reqwest::header::HeaderValue;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

pub use config::{HttpConfig, Mode};
use deliver::Target;
use request::Batch;

use crate::format::envelope::EventWriter;
use crate::format::routing::write_key;
use crate::format::values::ValueStyle;
use crate::{Checkpoint, Sink, SinkContext, SinkError};

pub struct HttpSink {
    target: Target,
    runtime: Handle,
    writer: EventWriter,
    style: ValueStyle,
    batch: Batch,
    batch_size: usize,
    max_batch_bytes: usize,
    secret: Option<Vec<u8>>,
    pipeline: HeaderValue,
    /// The request out (at most one, for order).
    inflight: Option<JoinHandle<Result<(), SinkError>>>,
    record: Vec<u8>,
    key: Vec<u8>,
    /// Body bytes handed to the receiver by this instance.
    bytes: u64,
}

impl HttpConfig {
    /// The client for this sink's settings (no I/O).
    pub(crate) fn client(&self) -> Result<reqwest::Client, SinkError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("outflow/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout.0)
            .connect_timeout(self.connect_timeout.0)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true);
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| SinkError::io(format!("reading `ca_file` {path}"), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SinkError::fatal(format!("`ca_file` {path} holds no PEM certificate ({e})"), "give a PEM CA bundle")
            })?;
            builder = builder.tls_certs_only(certs);
        }
        builder.build().map_err(|e| {
            SinkError::fatal(format!("cannot set up the HTTP client of sink {:?}: {e}", self.name), "check `ca_file`")
        })
    }

    /// The sink, on the pipeline's runtime. Nothing is sent before the
    /// first batch (`outflow check` probes the receiver).
    pub fn open(&self, ctx: SinkContext, runtime: Handle) -> Result<HttpSink, SinkError> {
        let checked = self.check()?;
        let client = self.client()?;
        let style = ValueStyle::new(self.unavailable_value_placeholder.clone());
        let pipeline = HeaderValue::from_str(&ctx.pipeline).unwrap_or_else(|_| HeaderValue::from_static("outflow"));
        Ok(HttpSink {
            target: Target {
                sink: self.name.clone(),
                client,
                url: checked.url,
                max_backoff: self.max_backoff.0,
                headers: checked.headers.into_iter().collect(),
            },
            runtime,
            writer: EventWriter::new(self.format, style.clone(), ctx),
            style,
            batch: Batch::new(self.mode == Mode::Single),
            batch_size: checked.batch_size,
            max_batch_bytes: checked.max_batch_bytes,
            secret: self.secret.as_ref().map(|s| s.0.as_bytes().to_vec()),
            pipeline,
            inflight: None,
            record: Vec::with_capacity(4096),
            key: Vec::with_capacity(256),
            bytes: 0,
        })
    }
}

impl HttpSink {
    fn write_change(&mut self, ev: &ChangeEvent) -> Result<(), SinkError> {
        self.record.clear();
        self.writer.write_change(&mut self.record, ev);
        self.record.pop(); // the line's newline
        self.key.clear();
        if ev.op == Op::Truncate || !write_key(&mut self.key, ev, &self.style) {
            self.key.clear();
            self.key.extend_from_slice(b"null");
        }
        if !self.batch.is_empty() && self.batch.size_with(&self.record) > self.max_batch_bytes {
            self.send_batch()?;
        }
        self.batch.push(ev, &self.record, &self.key);
        if self.batch.len() >= self.batch_size {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Waits for the request out, then sends the open batch (if any).
    fn send_batch(&mut self) -> Result<(), SinkError> {
        self.wait_inflight()?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let request = self.batch.take(&self.pipeline, self.secret.as_deref());
        self.bytes += request.body.len() as u64;
        let target = self.target.clone();
        self.inflight = Some(self.runtime.spawn(async move { target.deliver(&request).await }));
        Ok(())
    }

    fn wait_inflight(&mut self) -> Result<(), SinkError> {
        let Some(task) = self.inflight.take() else { return Ok(()) };
        self.runtime.block_on(task).map_err(|e| SinkError::Data(format!("the http sink's request task failed: {e}")))?
    }
}

impl Sink for HttpSink {
    fn write(&mut self, items: &[StreamItem]) -> Result<(), SinkError> {
        self.writer.start_batch();
        for item in items {
            if let StreamItem::Change(ev) = item {
                self.write_change(ev)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Checkpoint, SinkError> {
        self.send_batch()?;
        self.wait_inflight()?;
        Ok(Checkpoint::Null)
    }

    fn exactly_once(&self) -> bool {
        false
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // A request still out after a failure elsewhere: stop retrying it.
        if let Some(task) = self.inflight.take() {
            task.abort();
        }
    }
}
