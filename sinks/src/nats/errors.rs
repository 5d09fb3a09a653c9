//! Which NATS failures are definite (stop the run with a one-line error and
//! its fix) and which are worth retrying on a new connection (a lost or
//! refused connection, a timed-out ack, a stream out of space for now).

use std::time::{Duration, Instant};

use async_nats::jetstream::ErrorCode;
use async_nats::ConnectErrorKind;

use super::config::redact;
use crate::SinkError;
pub use crate::text::one_line;

/// How long the pause between attempts may grow.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a wait on the server says so in the log.
const WAIT_LOG: Duration = Duration::from_secs(10);

/// Why an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt on a new connection: what went wrong.
    Retry(String),
    /// Retrying will not help: stop the run.
    Definite(SinkError),
}

impl From<SinkError> for Failure {
    fn from(e: SinkError) -> Self {
        Failure::Definite(e)
    }
}

/// The hint for refused credentials.
pub const CREDENTIALS_HINT: &str = "set the user and password (nats://user:password@host:port, or `user` and \
     `password`), the `token` or the `creds` file to ones the server accepts";

/// A failed connection attempt.
pub fn connect(e: &async_nats::ConnectError, url: &str) -> Failure {
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            Failure::Definite(SinkError::fatal(
                format!("nats at {} refused the sink's credentials ({})", redact(url), one_line(&e.to_string())),
                CREDENTIALS_HINT,
            ))
        }
        // A refused certificate comes as an I/O error from the handshake.
        _ if e.kind() == ConnectErrorKind::Tls || e.to_string().contains("invalid peer certificate") => Failure::Definite(SinkError::fatal(
            format!("nats at {}: TLS failed ({})", redact(url), one_line(&e.to_string())),
            "check `tls_ca_file` (the CA that signed the server's certificate, which must name the url's host), or use nats:// for a server without TLS",
        )),
        _ => Failure::Retry(format!("cannot connect: {}", one_line(&e.to_string()))),
    }
}

/// A JetStream API error (`err_code`) that retrying may get past: the
/// stream or the server is out of space or busy for now.
pub fn transient_code(code: ErrorCode) -> bool {
    [
        ErrorCode::STORAGE_RESOURCES_EXCEEDED,
        ErrorCode::MEMORY_RESOURCES_EXCEEDED,
        ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
        ErrorCode::INSUFFICIENT_RESOURCES,
        ErrorCode::STREAM_STORE_FAILED,
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::CLUSTER_NO_PEERS,
        ErrorCode::RAFT_GENERAL,
    ]
    .contains(&code)
}

/// The definite error for JetStream being off on the server.
pub fn jetstream_off(url: &str) -> SinkError {
    SinkError::fatal(
        format!("nats at {} has JetStream off", redact(url)),
        "start nats-server with -js (or a `jetstream {}` block in its config), or point `url` at one that has it",
    )
}


/// The pause between attempts, growing to [`MAX_BACKOFF`], and a log line
/// now and then while it lasts.
pub struct Backoff {
    pause: Duration,
    logged: Option<Instant>,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { pause: Duration::from_millis(100), logged: None }
    }

    /// Logs `what` and `why` (at most every [`WAIT_LOG`]) and sleeps.
    pub async fn wait(&mut self, sink: &str, url: &str, what: &str, why: &str) {
        if self.logged.is_none_or(|l| l.elapsed() >= WAIT_LOG) {
            tracing::warn!(sink, url = %redact(url), error = %why,
                "{what}; retrying (nothing after the last acknowledged message is acknowledged to the source)");
            self.logged = Some(Instant::now());
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(MAX_BACKOFF);
    }
}
