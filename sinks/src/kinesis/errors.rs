//! What a failed Kinesis call means: a definite error (stop the run with
//! one line and its fix), a refusal that left nothing behind (retry with
//! backoff), or an ambiguous failure (the records may have landed: look
//! before resending).

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::SinkError;
pub use crate::text::one_line;

#[derive(Debug)]
pub enum Failure {
    /// Stop the run.
    Fatal(SinkError),
    /// Kinesis refused the whole call (throttled, busy): nothing landed.
    Retry(String),
    /// No answer, or a server error: some records may have landed.
    Ambiguous(String),
}

/// Classifies `e`, from a call on `stream`.
pub fn classify<E>(e: &SdkError<E, HttpResponse>, stream: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = one_line(&DisplayErrorContext(e).to_string());
    let SdkError::ServiceError(service) = e else {
        return match e {
            SdkError::ConstructionFailure(_) => Failure::Fatal(SinkError::fatal(
                format!("cannot make a Kinesis request for stream {stream:?}: {text}"),
                "check the sink's `region` and `endpoint` and that AWS credentials are set \
                 (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role)",
            )),
            _ => Failure::Ambiguous(text),
        };
    };
    let status = service.raw().status().as_u16();
    let code = e.code().unwrap_or("");
    let message = e.message().unwrap_or(&text).to_string();
    match code {
        "ResourceNotFoundException" => Failure::Fatal(missing_stream(stream)),
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSNotFoundException"
        | "KMSInvalidStateException"
        | "KMSOptInRequired" => Failure::Fatal(SinkError::fatal(
            format!("kinesis refused access to stream {stream:?} ({code}: {message})"),
            "give the sink's AWS credentials kinesis:PutRecords, GetRecords, GetShardIterator, ListShards (and CreateStream with create_stream) on the stream, and its KMS key if encrypted",
        )),
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "LimitExceededException"
        | "KMSThrottlingException"
        | "ResourceInUseException"
        | "RequestLimitExceeded" => Failure::Retry(format!("{code}: {message}")),
        _ if status >= 500 => Failure::Ambiguous(format!("{code} (HTTP {status}): {message}")),
        _ => Failure::Fatal(SinkError::fatal(
            format!("kinesis refused a request on stream {stream:?} ({code}, HTTP {status}): {message}"),
            "check the sink's settings (stream, region, endpoint)",
        )),
    }
}

/// The stream is missing and the sink may not create it.
pub fn missing_stream(stream: &str) -> SinkError {
    SinkError::fatal(
        format!("kinesis stream {stream:?} does not exist"),
        "create it (aws kinesis create-stream), fix the sink's `stream`/`region`, or set `create_stream = true`",
    )
}

