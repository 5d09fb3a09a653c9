//! The web console of `outflow run`, served by the admin server
//! (`src/admin.rs`) at `/`: one page whose HTML, CSS and JavaScript are in
//! this folder and compiled into the binary (no CDN, nothing fetched from
//! elsewhere; the page draws its charts itself). It reads:
//!
//! - `/status` every 2 s: source, sinks, snapshot progress, signals;
//! - `/api/history`: the last hour of events/s and lag per sink
//!   ([`history`]), loaded once, then appended to with `?since=`;
//! - `/api/snapshots`: each table's row estimate and rows read by this
//!   process (`src/progress.rs`), the denominators of the snapshot bars;
//! - `/api/log`: the recent warnings and errors ([`log`]);
//! - `/api/config`: the effective config with secrets masked ([`mask`]),
//!   as `{"config": <the tree as JSON>, "toml": "<the same as TOML text>"}`.
//!
//! Its actions POST to the signal routes (`/api/snapshot`, ...), which are
//! not defined here. Every GET route is read-only and needs no token, like
//! `/status`: the listener is loopback unless configured otherwise.

pub mod history;
pub mod log;
pub mod mask;

use std::sync::Arc;

use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::config::Config;
use history::History;
pub use log::log_layer;

const HTML: &str = include_str!("console.html");
const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// The page may load its own script and style only, and never be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes and its history sampler; dropping it stops the sampler.
pub struct Console {
    history: Arc<History>,
    config: Value,
    sampler: tokio::task::JoinHandle<()>,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

impl Console {
    /// Starts sampling the pipeline for the charts.
    pub fn start(config: &Config) -> Console {
        let history = History::new();
        let sampler = history.start(config);
        let masked = mask::masked(&config.toml);
        let text = toml::to_string(&masked).unwrap_or_default();
        let config = json!({"config": serde_json::to_value(&masked).unwrap_or(Value::Null), "toml": text});
        Console { history, config, sampler }
    }

    /// `GET /`, its assets and the `/api/*` reads.
    pub fn router(&self) -> Router {
        let history = self.history.clone();
        let config = self.config.clone();
        Router::new()
            .route("/", get(|| async { page(HTML, "text/html; charset=utf-8") }))
            .route("/console.css", get(|| async { page(CSS, "text/css; charset=utf-8") }))
            .route("/console.js", get(|| async { page(JS, "text/javascript; charset=utf-8") }))
            .route("/api/history", get(move |uri: Uri| async move { json_response(history.json(since(&uri))) }))
            .route("/api/log", get(|| async { json_response(log::recent()) }))
            .route("/api/config", get(move || async move { json_response(config) }))
            .route("/api/snapshots", get(|| async { json_response(snapshots()) }))
    }
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

fn json_response(value: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        format!("{value}\n"),
    )
        .into_response()
}

/// `?since=<seconds since the epoch>` of `/api/history`.
fn since(uri: &Uri) -> Option<f64> {
    uri.query()?.split('&').find_map(|pair| pair.strip_prefix("since=")?.parse().ok())
}

/// `/api/snapshots`: `{"tables": {"schema.table": {"estimate", "read", "finished"}}}`.
fn snapshots() -> Value {
    let tables: serde_json::Map<String, Value> = crate::progress::snapshot_tables()
        .into_iter()
        .map(|(name, t)| (name, json!({"estimate": t.estimate, "read": t.read, "finished": t.finished})))
        .collect();
    json!({ "tables": tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(HTML.contains(r#"<script src="/console.js""#), "the page loads its script");
        assert!(HTML.contains(r#"href="/console.css""#), "the page loads its style");
        for asset in [HTML, CSS, JS] {
            for outside in ["http://", "https://", "//cdn", "@import"] {
                assert!(!asset.contains(outside), "an asset refers to {outside}");
            }
        }
        assert_eq!(since(&"/api/history?since=1700000000.5".parse().unwrap()), Some(1_700_000_000.5));
        assert_eq!(since(&"/api/history".parse().unwrap()), None);
    }
}
