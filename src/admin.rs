//! The admin HTTP server of `outflow run` (`[admin] listen`), on the run's
//! own tokio runtime:
//!
//! - `/healthz`: 200 `ok` while the process is up.
//! - `/readyz`: 200 while streaming, no sink failed, not reconnecting, and
//!   every sink's lag under `ready_max_lag`; else 503 with the reason in one
//!   line (see `src/health.rs`).
//! - `/status`: the JSON of `outflow status --json` (`src/status.rs`).
//! - `/metrics`: Prometheus text format (`src/metrics.rs`).
//!
//! The listener is bound before the run connects anywhere, so a taken port
//! stops the run at once with a clear error.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::{AdminConfig, Config};
use crate::error::{Error, Result};
use crate::health::health;
use crate::metrics::{metrics, CONTENT_TYPE};

struct Shared {
    config: Config,
    ready_max_lag: Duration,
}

/// The running server; dropping it stops it.
pub struct AdminServer {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `[admin] listen` and serves until the returned value is dropped.
pub async fn start(admin: &AdminConfig, config: &Config) -> Result<AdminServer> {
    let addr = admin.addr()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::fatal(
            format!("cannot listen on {addr} ([admin] listen): {e}"),
            "another process (perhaps another outflow) uses that address: stop it, or set another [admin] listen",
        )
    })?;
    let shared = Arc::new(Shared { config: config.clone(), ready_max_lag: admin.ready_max_lag.0 });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(prometheus))
        .with_state(shared);
    tracing::info!(listen = %addr, "admin server: /healthz /readyz /status /metrics");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "admin server stopped");
        }
    });
    Ok(AdminServer { task })
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match health().readiness(shared.ready_max_lag) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    match crate::status::build(&shared.config).await {
        Ok(report) => ([(header::CONTENT_TYPE, "application/json")], format!("{report}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{}\n", e.message)).into_response(),
    }
}

async fn prometheus() -> Response {
    health().update_gauges();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics().encode()).into_response()
}
