//! Which broker errors are definite (stop the run with one line and its
//! fix) and which are worth retrying (a lost, refused or timed-out
//! connection, a broker restarting), for both protocols: the stream
//! protocol's response codes and lapin's AMQP 0.9.1 errors.

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::ErrorKind;
use rabbitmq_stream_client::error::ClientError;
use rabbitmq_stream_client::types::ResponseCode;

use crate::SinkError;
pub use crate::text::one_line;

const CREDENTIALS_HINT: &str =
    "set the user and password in the sink's url (amqp://user:password@host:port/vhost) to ones RabbitMQ accepts";

/// The definite error a stream-protocol response code stands for (None:
/// retry). `what` says what was asked, `url` is the redacted URL.
pub fn stream_code(code: &ResponseCode, what: &str, url: &str) -> Option<SinkError> {
    Some(match code {
        ResponseCode::AuthenticationFailure
        | ResponseCode::AuthenticationFailureLoopback
        | ResponseCode::SaslError
        | ResponseCode::SaslMechanismNotSupported => {
            SinkError::fatal(format!("rabbitmq at {url} refused the credentials ({code:?})"), CREDENTIALS_HINT)
        }
        ResponseCode::VirtualHostAccessFailure => SinkError::fatal(
            format!("rabbitmq at {url}: the user may not open the url's virtual host"),
            "grant the user access to the vhost (rabbitmqctl set_permissions -p VHOST USER '.*' '.*' '.*') or fix the url's vhost",
        ),
        ResponseCode::AccessRefused => SinkError::fatal(
            format!("rabbitmq at {url} refused to {what}: access refused"),
            "grant the user configure and write permissions on the stream (rabbitmqctl set_permissions)",
        ),
        ResponseCode::StreamDoesNotExist => SinkError::fatal(
            format!("rabbitmq at {url}: cannot {what}: the stream does not exist"),
            "create it (rabbitmq-streams add_stream or a client) or set `create_stream = true`",
        ),
        ResponseCode::FrameTooLarge => SinkError::fatal(
            format!("rabbitmq at {url} refused to {what}: the frame is too large"),
            "raise the broker's stream.frame_max or keep rows smaller",
        ),
        ResponseCode::PrecoditionFailed => SinkError::fatal(
            format!("rabbitmq at {url} refused to {what}: precondition failed (a queue of another type has the stream's name?)"),
            "use a stream name no classic or quorum queue has",
        ),
        ResponseCode::StreamNotAvailable | ResponseCode::InternalError | ResponseCode::PublisherDoesNotExist => {
            return None
        }
        other => SinkError::Data(format!("rabbitmq at {url}: cannot {what}: {other:?}")),
    })
}

/// The definite error a stream client error stands for (None: retry).
pub fn stream_client(e: &ClientError, what: &str, url: &str) -> Option<SinkError> {
    match e {
        ClientError::RequestError(code) => stream_code(code, what, url),
        _ => None,
    }
}

/// The definite error a lapin error stands for (None: retry, e.g. a lost
/// connection or a broker shutting down).
pub fn amqp(e: &lapin::Error, url: &str, exchange: &str) -> Option<SinkError> {
    let ErrorKind::ProtocolError(err) = e.kind() else { return None };
    let text = err.get_message().to_string();
    Some(match err.kind() {
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) if text.contains("Login") || text.contains("login") => {
            SinkError::fatal(format!("rabbitmq at {url} refused the credentials"), CREDENTIALS_HINT)
        }
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
            SinkError::fatal(
                format!("rabbitmq at {url} refused access: {}", one_line(&text)),
                "grant the user access to the vhost and write (and configure) permissions on the exchange",
            )
        }
        AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => SinkError::fatal(
            format!("rabbitmq at {url}: exchange {exchange:?} does not exist ({})", one_line(&text)),
            "declare the exchange or set `create_exchange = true`",
        ),
        AMQPErrorKind::Soft(AMQPSoftError::CONTENTTOOLARGE) => too_large(url, &text),
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) if text.contains("larger than") => {
            too_large(url, &text)
        }
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => SinkError::fatal(
            format!("rabbitmq at {url}: {}", one_line(&text)),
            "the exchange exists with other settings: change `exchange_type` to its type or use another exchange",
        ),
        AMQPErrorKind::Hard(AMQPHardError::FRAMEERROR) => too_large(url, &text),
        _ => return None,
    })
}

fn too_large(url: &str, text: &str) -> SinkError {
    SinkError::fatal(
        format!("rabbitmq at {url} refused a record as too large: {}", one_line(text)),
        "raise the broker's max_message_size or keep rows smaller; nothing past the last confirmed message was acknowledged",
    )
}

