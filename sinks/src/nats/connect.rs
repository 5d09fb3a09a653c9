//! One connection to NATS and what the sink asks JetStream on it: the
//! stream (created or given the sink's subjects when allowed), its size
//! limit, and the last message of a subject.
//!
//! **outflow reconnects, the client does not.** async-nats reconnects by
//! itself after a lost connection and then sends the publishes still queued
//! in the client, while those that were in the lost socket's buffer are
//! gone: later changes would land before earlier ones (and a crash before
//! they are resent would leave a gap that the tail read then skips). So the
//! client is allowed one connection only: its auth callback refuses every
//! connection after the first (and `max_reconnects` stops it right after),
//! which ends the client and fails its pending acks at once. The sink then
//! opens a new connection itself and republishes, in order, everything not
//! acknowledged. Every connection therefore sends the unacknowledged
//! messages in source order from the oldest, so JetStream stores each
//! subject's messages as a gap-free prefix of the source order, whatever
//! was lost, and duplicates are dropped by their `Nats-Msg-Id`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::{Config as StreamConfig, LastRawMessageErrorKind, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{Auth, AuthError, Client, ConnectOptions, Event, ServerError};
use outflow_model::Position;

use super::config::{filter_matches, redact, Checked, Credentials, NatsConfig};
use super::errors::{self, one_line, Failure};
use super::message::stored_position;
use crate::SinkError;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a JetStream API request or a publish ack may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An open connection and its JetStream context.
#[derive(Clone)]
pub struct Conn {
    pub client: Client,
    pub js: Context,
    /// The last error the server sent on this connection (a permissions
    /// violation arrives this way, not as a failed publish).
    pub server_error: Arc<Mutex<Option<String>>>,
}

/// What the sink knows of its stream.
#[derive(Debug, Clone)]
pub struct StreamShape {
    pub subjects: Vec<String>,
    /// The stream's `max_msg_size`, when it has one.
    pub max_msg_size: Option<usize>,
}

/// Opens one connection (no reconnects: see the module doc).
pub async fn open(cfg: &NatsConfig, checked: &Checked, pipeline: &str, max_in_flight: usize) -> Result<Conn, Failure> {
    let auth = Arc::new(load_auth(cfg, &checked.credentials)?);
    let used = Arc::new(AtomicBool::new(false));
    let server_error = Arc::new(Mutex::new(None));
    let seen = server_error.clone();
    let options = ConnectOptions::with_auth_callback(move |nonce: Vec<u8>| {
        let first = !used.swap(true, Ordering::SeqCst);
        let auth = auth.clone();
        async move {
            if !first {
                return Err(AuthError::new("this connection was lost; outflow opens a new one itself"));
            }
            auth.sign(&nonce)
        }
    })
    .event_callback(move |event| {
        let seen = seen.clone();
        async move {
            if let Event::ServerError(ServerError::Other(e)) = event {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
    })
    .name(format!("outflow {pipeline}/{}", cfg.name))
    .connection_timeout(CONNECT_TIMEOUT)
    .request_timeout(Some(REQUEST_TIMEOUT))
    .max_reconnects(1)
    .client_capacity(max_in_flight + 64)
    .ignore_discovered_servers();
    let options = match &cfg.tls_ca_file {
        Some(ca) => options.require_tls(true).add_root_certificates(ca.clone()),
        None => options,
    };
    let client = options.connect(checked.server.as_str()).await.map_err(|e| errors::connect(&e, &cfg.url))?;
    if !client.server_info().jetstream {
        return Err(Failure::Definite(errors::jetstream_off(&cfg.url)));
    }
    let js = jetstream::context::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .max_ack_inflight(max_in_flight + 1)
        .build(client.clone());
    Ok(Conn { client, js, server_error })
}

/// The credentials to present, read once per connection (a creds file may
/// be rotated).
enum SignedAuth {
    Plain(Auth),
    Creds { jwt: String, seed: String },
}

impl SignedAuth {
    fn sign(&self, nonce: &[u8]) -> Result<Auth, AuthError> {
        match self {
            SignedAuth::Plain(auth) => Ok(auth.clone()),
            SignedAuth::Creds { jwt, seed } => {
                let key = nkeys::KeyPair::from_seed(seed).map_err(|e| AuthError::new(format!("bad nkey seed: {e}")))?;
                let signature = key.sign(nonce).map_err(|e| AuthError::new(format!("cannot sign: {e}")))?;
                let mut auth = Auth::new();
                auth.jwt = Some(jwt.clone());
                auth.signature = Some(signature);
                Ok(auth)
            }
        }
    }
}

fn load_auth(cfg: &NatsConfig, credentials: &Credentials) -> Result<SignedAuth, Failure> {
    let mut auth = Auth::new();
    match credentials {
        Credentials::None => {}
        Credentials::UserPassword { user, password } => {
            auth.username = Some(user.clone());
            auth.password = Some(password.clone());
        }
        Credentials::Token(token) => auth.token = Some(token.clone()),
        Credentials::CredsFile(path) => {
            let bad = |why: String| {
                Failure::Definite(SinkError::fatal(
                    format!("sink {:?}: cannot use the creds file {}: {why}", cfg.name, path.display()),
                    "set `creds` to a NATS credentials file (user JWT and nkey seed, as `nsc generate creds` writes it)",
                ))
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let (jwt, seed) = parse_creds(&text).ok_or_else(|| bad("no user JWT and nkey seed in it".into()))?;
            nkeys::KeyPair::from_seed(&seed).map_err(|e| bad(format!("its nkey seed is not valid ({e})")))?;
            return Ok(SignedAuth::Creds { jwt, seed });
        }
    }
    Ok(SignedAuth::Plain(auth))
}

/// The user JWT and nkey seed of a credentials file: the first line after
/// `-----BEGIN NATS USER JWT-----` and after `-----BEGIN USER NKEY SEED-----`.
pub fn parse_creds(text: &str) -> Option<(String, String)> {
    let after = |marker: &str| {
        let mut lines = text.lines().map(str::trim).skip_while(|l| !(l.starts_with("---") && l.contains(marker)));
        lines.next()?;
        lines.find(|l| !l.is_empty()).map(str::to_string)
    };
    let (jwt, seed) = (after("BEGIN NATS USER JWT")?, after("BEGIN USER NKEY SEED")?);
    (!jwt.starts_with("---") && !seed.starts_with("---")).then_some((jwt, seed))
}

/// The stream's shape; it is created (with `filter` as its subjects) when
/// missing and `create_stream` allows, unless it `existed` before (then it
/// vanished: a definite error).
pub async fn ensure_stream(conn: &Conn, cfg: &NatsConfig, filter: &str, existed: bool) -> Result<StreamShape, Failure> {
    let info = match conn.js.get_stream(&cfg.stream).await {
        Ok(mut stream) => stream.info().await.map_err(|e| Failure::Retry(format!("stream info: {e}")))?.clone(),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                if existed {
                    return Err(Failure::Definite(stream_vanished(cfg)));
                }
                if !cfg.create_stream {
                    return Err(Failure::Definite(SinkError::fatal(
                        format!("sink {:?}: nats at {} has no stream {:?}", cfg.name, redact(&cfg.url), cfg.stream),
                        format!(
                            "create it (nats stream add {} --subjects '{filter}'), or set `create_stream = true`",
                            cfg.stream
                        ),
                    )));
                }
                let config = StreamConfig {
                    name: cfg.stream.clone(),
                    subjects: vec![filter.to_string()],
                    storage: StorageType::File,
                    description: Some("change events written by outflow".into()),
                    ..Default::default()
                };
                let info = conn.js.create_stream(config).await.map_err(|e| stream_refused(cfg, "create", filter, e))?;
                tracing::info!(sink = %cfg.name, stream = %cfg.stream, subjects = filter, "created the JetStream stream");
                info.cached_info().clone()
            }
            GetStreamErrorKind::JetStream(err)
                if [ErrorCode::JETSTREAM_NOT_ENABLED, ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT]
                    .contains(&err.error_code()) =>
            {
                return Err(Failure::Definite(errors::jetstream_off(&cfg.url)))
            }
            _ => return Err(Failure::Retry(format!("cannot look up stream {}: {}", cfg.stream, one_line(&e.to_string())))),
        },
    };
    Ok(shape(&info.config))
}

fn shape(config: &StreamConfig) -> StreamShape {
    StreamShape {
        subjects: config.subjects.clone(),
        max_msg_size: usize::try_from(config.max_message_size).ok().filter(|&n| n > 0),
    }
}

/// Makes sure the stream captures `subject`: when none of its subjects
/// matches, `filter` is added to them (`create_stream = true`) or the run
/// stops with the fix.
pub async fn capture(
    conn: &Conn,
    cfg: &NatsConfig,
    shape: &mut StreamShape,
    subject: &str,
    filter: &str,
) -> Result<(), Failure> {
    if shape.subjects.iter().any(|f| filter_matches(f, subject)) {
        return Ok(());
    }
    if !cfg.create_stream {
        return Err(Failure::Definite(SinkError::fatal(
            format!(
                "nats: stream {:?} does not capture subject {subject:?} (its subjects: {})",
                cfg.stream,
                shape.subjects.join(", ")
            ),
            format!(
                "add '{filter}' to its subjects (nats stream edit {}), change `subject`, or set `create_stream = true`",
                cfg.stream
            ),
        )));
    }
    let mut stream = conn
        .js
        .get_stream(&cfg.stream)
        .await
        .map_err(|e| Failure::Retry(format!("cannot look up stream {}: {}", cfg.stream, one_line(&e.to_string()))))?;
    let mut config = stream.info().await.map_err(|e| Failure::Retry(format!("stream info: {e}")))?.config.clone();
    if !config.subjects.iter().any(|f| filter_matches(f, subject)) {
        config.subjects.push(filter.to_string());
        conn.js.update_stream(&config).await.map_err(|e| stream_refused(cfg, "update", filter, e))?;
        tracing::info!(sink = %cfg.name, stream = %cfg.stream, subjects = filter, "added the sink's subjects to the stream");
    }
    *shape = self::shape(&config);
    Ok(())
}

/// A refused stream create or update: definite when JetStream said why.
fn stream_refused(cfg: &NatsConfig, what: &str, filter: &str, e: CreateStreamError) -> Failure {
    match e.kind() {
        CreateStreamErrorKind::JetStream(err) if !errors::transient_code(err.error_code()) => {
            let hint = if err.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP {
                format!("another stream already captures '{filter}': set `stream` to that stream, or change `subject`")
            } else {
                format!("{what} stream {} with subjects '{filter}' yourself (nats stream add/edit), or fix `stream`", cfg.stream)
            };
            Failure::Definite(SinkError::fatal(
                format!("nats: JetStream refused to {what} stream {:?}: {}", cfg.stream, one_line(&err.to_string())),
                hint,
            ))
        }
        CreateStreamErrorKind::JetStreamUnavailable => Failure::Definite(errors::jetstream_off(&cfg.url)),
        _ => Failure::Retry(format!("cannot {what} stream {}: {}", cfg.stream, one_line(&e.to_string()))),
    }
}

/// The position in the last message of `subject` in the stream (None when
/// the subject has no message, or its last one carries no position).
pub async fn last_position(conn: &Conn, cfg: &NatsConfig, subject: &str) -> Result<Option<Position>, Failure> {
    let stream = conn
        .js
        .get_stream_no_info(&cfg.stream)
        .await
        .map_err(|e| Failure::Retry(format!("stream {}: {}", cfg.stream, one_line(&e.to_string()))))?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => {
            let position = stored_position(&message.headers);
            if position.is_none() {
                tracing::warn!(sink = %cfg.name, subject, sequence = message.sequence,
                    "the subject's last message has no outflow position; nothing is skipped for it");
            }
            Ok(position)
        }
        Err(e) => match e.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(None),
            LastRawMessageErrorKind::JetStream(err) if err.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Err(Failure::Definite(stream_vanished(cfg)))
            }
            _ => Err(Failure::Retry(format!(
                "cannot read the last message of {subject}: {}",
                one_line(&e.to_string())
            ))),
        },
    }
}

/// The stream was there and is gone: what it held is lost on the NATS side,
/// so outflow does not silently start a new one.
pub fn stream_vanished(cfg: &NatsConfig) -> SinkError {
    SinkError::fatal(
        format!("nats: stream {:?} disappeared while outflow was writing to it", cfg.stream),
        "restore or recreate the stream, then run again (a new stream starts from the sink's stored offset)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_files_give_their_jwt_and_seed() {
        let text = "-----BEGIN NATS USER JWT-----\neyJhbGciOi.abc.def\n------END NATS USER JWT------\n\n\
                    ************************* IMPORTANT *************************\n\
                    NKEY Seed printed below can be used to sign and prove identity.\n\n\
                    -----BEGIN USER NKEY SEED-----\nSUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM\n\
                    ------END USER NKEY SEED------\n";
        let (jwt, seed) = parse_creds(text).unwrap();
        assert_eq!(jwt, "eyJhbGciOi.abc.def");
        assert!(seed.starts_with("SUAIO3"));
        assert_eq!(parse_creds("nothing here"), None);
        assert_eq!(parse_creds("-----BEGIN NATS USER JWT-----\n------END NATS USER JWT------\n"), None);
    }

    #[test]
    fn creds_sign_the_nonce_with_the_seed() {
        let key = nkeys::KeyPair::new_user();
        let auth = SignedAuth::Creds { jwt: "jwt".into(), seed: key.seed().unwrap() };
        let signed = auth.sign(b"nonce").unwrap();
        assert_eq!(signed.jwt.as_deref(), Some("jwt"));
        assert!(key.verify(b"nonce", &signed.signature.unwrap()).is_ok());
    }
}
