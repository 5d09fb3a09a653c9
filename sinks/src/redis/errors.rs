//! Which Redis errors are definite (stop the run with a one-line error and
//! its fix) and which are worth retrying (a lost or refused connection).

use redis::{ErrorKind, RedisError};

use super::config::redact;
use crate::SinkError;
use crate::text::one_line;

/// Whether `e` means the connection is gone or not there yet: retry.
pub fn retryable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
        || matches!(e.code(), Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN"))
}

/// A refused certificate: retrying cannot help.
fn is_tls_failure(e: &RedisError) -> bool {
    let text = e.to_string();
    text.contains("invalid peer certificate") || text.contains("InvalidCertificate")
}

/// The definite error `e` stands for, with its fix; None when retrying may
/// help.
pub fn definite(e: &RedisError, url: &str) -> Option<SinkError> {
    let url = redact(url);
    if is_tls_failure(e) {
        return Some(SinkError::fatal(
            format!("redis at {url}: the TLS handshake failed: {}", one_line(&e.to_string())),
            "check the sink's rediss:// host and `tls_ca_file` (the CA that signed the server's certificate, which must name that host)",
        ));
    }
    if retryable(e) {
        return None;
    }
    let code = e.code().unwrap_or("");
    let detail = e.detail().unwrap_or("");
    Some(if e.kind() == ErrorKind::AuthenticationFailed || matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM") {
        SinkError::fatal(
            format!("redis at {url} refused the credentials: {}", one_line(&e.to_string())),
            "set the user and password in the sink's url (redis://user:password@host:port/db) to ones Redis accepts",
        )
    } else if code == "WRONGTYPE" {
        SinkError::fatal(
            format!("redis at {url}: a stream key holds another type ({detail})"),
            "delete or rename that key, or change the sink's `stream` template",
        )
    } else if code == "OOM" {
        SinkError::fatal(
            format!("redis at {url} is out of memory ({detail})"),
            "raise Redis's maxmemory, let consumers trim the streams, or set `maxlen` on the sink",
        )
    } else {
        SinkError::Data(format!("redis at {url}: {}", one_line(&e.to_string())))
    })
}

