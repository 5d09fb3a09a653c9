//! The HTTP sink's factory: `validate` (the settings alone), `build` (the
//! client; nothing is sent before the first batch) and `preflight`
//! (`outflow check`: POSTs an empty batch — body `[]`, `X-Outflow-Count:
//! 0`, signed, no `Idempotency-Key` — and wants a 2xx, which proves the
//! address, TLS and the receiver's acceptance of the headers and
//! signature).

use async_trait::async_trait;
use reqwest::header::HeaderValue;

use super::config::redact;
use super::deliver::Target;
use super::request::{signature, Request, COUNT, SIGNATURE};
use super::HttpConfig;
use crate::preflight::Probe;
use crate::sink::open_blocking;
use crate::{Checkpoint, Sink, SinkContext, SinkError, SinkFactory};

#[async_trait]
impl SinkFactory for HttpConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), SinkError> {
        HttpConfig::validate(self)
    }

    async fn build(&self, ctx: SinkContext, _checkpoint: Option<&Checkpoint>) -> Result<Box<dyn Sink>, SinkError> {
        let config = self.clone();
        open_blocking("http", move |runtime| config.open(ctx, runtime)).await
    }

    async fn preflight(&self) -> Vec<Probe> {
        let what = format!("sink {:?}: the receiver at {} takes an empty batch", self.name, redact(&self.url));
        let (checked, client) = match self.check().and_then(|c| self.client().map(|client| (c, client))) {
            Ok(v) => v,
            Err(e) => return vec![Probe::fail(format!("{what}: {e}"), "fix the sink's settings")],
        };
        let target = Target {
            sink: self.name.clone(),
            client,
            url: checked.url,
            max_backoff: self.max_backoff.0,
            headers: checked.headers.into_iter().collect(),
        };
        let body = bytes::Bytes::from_static(b"[]");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(COUNT, HeaderValue::from(0));
        if let Some(secret) = &self.secret {
            headers.insert(SIGNATURE, signature(secret.0.as_bytes(), &body));
        }
        let request = Request { body, headers, count: 0, key: String::new() };
        vec![match target.try_once(&request).await {
            Ok(()) => Probe::pass(what),
            Err((message, hint)) => Probe::fail(format!("{what}: {message}"), hint),
        }]
    }
}
