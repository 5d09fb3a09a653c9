//! The admin HTTP server of `outflow run` (`[admin] listen`), on the run's
//! own tokio runtime:
//!
//! - `/healthz`: 200 `ok` while the process is up.
//! - `/readyz`: 200 while streaming, no sink failed, not reconnecting, and
//!   every sink's lag under `ready_max_lag`; else 503 with the reason in one
//!   line (see `src/health.rs`).
//! - `/status`: the JSON of `outflow status --json` (`src/status.rs`).
//! - `/metrics`: Prometheus text format (`src/metrics.rs`).
//! - `/`: the web console, and the `/api/*` reads it uses
//!   (`src/console/`).
//! - `/api/...`: signals (`src/signal/api.rs`), actions behind `[admin] token`.
//!
//! The listener is bound before the run connects anywhere, so a taken port
//! stops the run at once with a clear error. With `tls_cert` and `tls_key`
//! it serves HTTPS only (rustls; each handshake at most 10 s, one at a
//! time: an admin endpoint, not a web server).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::{AdminConfig, Config};
use crate::console::Console;
use crate::error::{Error, Result};
use crate::health::health;
use crate::metrics::{metrics, CONTENT_TYPE};

struct Shared {
    config: Config,
    ready_max_lag: Duration,
}

/// The running server; dropping it stops it (and the console's sampler).
pub struct AdminServer {
    task: tokio::task::JoinHandle<()>,
    _console: Console,
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
    let console = Console::start(config);
    // Every route, one group a line.
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(prometheus))
        .with_state(shared)
        .merge(console.router())
        .merge(crate::signal::api::router(
            admin.token.clone(),
            config.sinks.iter().map(|s| s.name().to_string()).collect(),
        ));
    let tls = tls_acceptor(admin)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %addr, scheme, "admin server: console at {scheme}://{addr}/, /healthz /readyz /status /metrics");
    let task = tokio::spawn(async move {
        let served = match tls {
            Some(acceptor) => axum::serve(TlsListener { tcp: listener, acceptor }, app).await,
            None => axum::serve(listener, app).await,
        };
        if let Err(e) = served {
            tracing::warn!(error = %e, "admin server stopped");
        }
    });
    Ok(AdminServer { task, _console: console })
}

/// The TLS acceptor of `[admin] tls_cert`/`tls_key`, or None for plain HTTP.
pub fn tls_acceptor(admin: &AdminConfig) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let (cert, key) = match (&admin.tls_cert, &admin.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(Error::config(
                "[admin] needs both tls_cert and tls_key for HTTPS",
                "set both (PEM files: the certificate chain and its private key), or neither for plain HTTP",
            ))
        }
    };
    let unreadable = |path: &std::path::Path, what: &str, e: String| {
        Error::config(
            format!("[admin] {what} {}: {e}", path.display()),
            format!("point [admin] {what} at a readable PEM file"),
        )
    };
    let pem =
        |path: &std::path::Path, what: &str| std::fs::read(path).map_err(|e| unreadable(path, what, e.to_string()));
    let chain: Vec<_> = rustls_pemfile::certs(&mut pem(cert, "tls_cert")?.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| unreadable(cert, "tls_cert", e.to_string()))?;
    if chain.is_empty() {
        return Err(unreadable(cert, "tls_cert", "no certificate in it".into()));
    }
    let key_der = rustls_pemfile::private_key(&mut pem(key, "tls_key")?.as_slice())
        .map_err(|e| unreadable(key, "tls_key", e.to_string()))?
        .ok_or_else(|| unreadable(key, "tls_key", "no private key in it".into()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key_der))
        .map_err(|e| unreadable(cert, "tls_cert", format!("does not go with tls_key: {e}")))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Accepts TCP connections and completes their TLS handshake.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "admin server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "admin server: TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "admin server: TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
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
