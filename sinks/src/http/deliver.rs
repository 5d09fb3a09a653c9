//! Sending one request until the receiver takes it: what each answer means.
//!
//! - `2xx`: delivered.
//! - `408`, `429`, `5xx`, a timeout, a refused or dropped connection:
//!   retried forever, waiting 100 ms doubling up to `max_backoff`, or as
//!   long as the answer's `Retry-After` says (seconds or an HTTP date; at
//!   most 10 minutes). The sink's thread waits meanwhile, so the source is
//!   held and nothing past the request is acknowledged.
//! - any other `4xx`, and `3xx` (redirects are not followed: a POST would
//!   turn into a GET): a definite refusal, the run stops with the status
//!   and the start of the answer's body. So does a certificate rustls
//!   refuses (the fix is `ca_file` or the receiver's certificate).

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode, Url};

use super::config::redact;
use super::request::Request;
use crate::SinkError;
use crate::text::one_line;

/// How often a wait on the receiver says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is cut to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// The shortest wait between attempts.
const MIN_WAIT: Duration = Duration::from_millis(100);
/// How much of a refusal's body goes into the error.
const BODY_SHOWN: usize = 512;

/// Where and how requests go.
#[derive(Clone)]
pub struct Target {
    pub sink: String,
    pub client: Client,
    pub url: Url,
    pub max_backoff: Duration,
    /// The sink's `headers` (sent on every request).
    pub headers: HeaderMap,
}

/// What an attempt came to.
enum Answer {
    Delivered,
    Retry { why: String, after: Option<Duration> },
    Refused(SinkError),
}

impl Target {
    /// Sends `request` until it is delivered or definitely refused.
    pub async fn deliver(&self, request: &Request) -> Result<(), SinkError> {
        let mut backoff = MIN_WAIT;
        let mut logged: Option<Instant> = None;
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            let answer = match self.attempt(request).await {
                Ok(response) => self.judge(response).await,
                Err(e) => self.judge_error(e),
            };
            let (why, after) = match answer {
                Answer::Delivered => {
                    if attempts > 1 {
                        tracing::info!(sink = %self.sink, key = %request.key, attempts, "the receiver took the batch");
                    }
                    return Ok(());
                }
                Answer::Refused(e) => return Err(e),
                Answer::Retry { why, after } => (why, after),
            };
            // A `Retry-After: 0` must not make a busy loop.
            let wait = after.map_or(backoff, |a| a.max(MIN_WAIT));
            if logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
                tracing::warn!(sink = %self.sink, url = %redact(self.url.as_str()), key = %request.key,
                    events = request.count, error = %why, retry_in_ms = wait.as_millis() as u64,
                    "the receiver did not take the batch; retrying (nothing past it is acknowledged to the source)");
                logged = Some(Instant::now());
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// One attempt, for `outflow check`: Err has what failed and the fix.
    pub async fn try_once(&self, request: &Request) -> Result<(), (String, String)> {
        let answer = match self.attempt(request).await {
            Ok(response) => self.judge(response).await,
            Err(e) => self.judge_error(e),
        };
        match answer {
            Answer::Delivered => Ok(()),
            Answer::Refused(SinkError::Fatal { message, hint }) => Err((message, hint)),
            Answer::Refused(e) => Err((e.to_string(), "check the sink's settings".into())),
            Answer::Retry { why, .. } => Err((
                format!("the receiver at {} did not take a batch: {why}", redact(self.url.as_str())),
                "check `url` (a receiver reachable from this host) and that the receiver is up".into(),
            )),
        }
    }

    async fn attempt(&self, request: &Request) -> Result<Response, reqwest::Error> {
        self.client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .headers(request.headers.clone())
            .body(request.body.clone())
            .send()
            .await
    }

    async fn judge(&self, mut response: Response) -> Answer {
        let status = response.status();
        if status.is_success() {
            // Read a small answer to its end so that the connection is
            // reused; a large one is dropped with its connection.
            let mut read = 0;
            while read < 64 * 1024 {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            return Answer::Delivered;
        }
        let after = retry_after(response.headers(), SystemTime::now());
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = body_start(response).await;
        if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
        {
            return Answer::Retry { why: format!("answered {status}{}", shown(&body)), after };
        }
        let url = redact(self.url.as_str());
        let message = format!("the receiver at {url} refused a batch with {status}{}", shown(&body));
        let hint = match status.as_u16() {
            300..=399 => format!(
                "outflow does not follow redirects; set the sink's `url` to the final address{}",
                location.map(|l| format!(" ({l})")).unwrap_or_default()
            ),
            401 | 403 => "check the credentials the receiver expects (the sink's `headers`, e.g. Authorization, \
                          and its `secret`)"
                .into(),
            404 | 405 => "check the sink's `url` (a path that accepts POST)".into(),
            413 => "lower the sink's `batch_size` or `max_batch_bytes`, or raise the receiver's body limit".into(),
            _ => "fix what the receiver objects to, then run again: the batch is resent (nothing past it was \
                  acknowledged)"
                .into(),
        };
        Answer::Refused(SinkError::fatal(message, hint))
    }

    fn judge_error(&self, e: reqwest::Error) -> Answer {
        if e.is_builder() {
            return Answer::Refused(SinkError::fatal(
                format!("cannot build a request to {}: {}", redact(self.url.as_str()), one_line(&error_chain(&e))),
                "fix the sink's `url` and `headers`",
            ));
        }
        let why = if e.is_timeout() { "timed out".to_string() } else { one_line(&error_chain(&e)) };
        if e.is_connect() && why.contains("certificate") {
            // rustls refused the receiver's certificate: retrying will not help.
            return Answer::Refused(SinkError::fatal(
                format!(
                    "the receiver at {} has a certificate outflow does not trust: {why}",
                    redact(self.url.as_str())
                ),
                "give the CA that signed it in the sink's `ca_file` (PEM), or fix the receiver's certificate",
            ));
        }
        Answer::Retry { why, after: None }
    }
}

/// `: "<body start>"`, or nothing for an empty body.
fn shown(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body:?}")
    }
}

/// The start of the answer's body, on one line: at most [`BODY_SHOWN`]
/// characters, read no further than needed.
async fn body_start(mut response: Response) -> String {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while bytes.len() < BODY_SHOWN * 4 {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
    });
    let _ = read.await;
    let text = one_line(&String::from_utf8_lossy(&bytes));
    match text.char_indices().nth(BODY_SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `Retry-After` as a wait: delay-seconds or an HTTP date (RFC 9110 10.2.3).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}


/// The error and its causes (reqwest's own message is only the outermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(now + Duration::from_secs(7)).parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(now - Duration::from_secs(7)).parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }
}
