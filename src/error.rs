//! The error users see: one lowercase line saying what failed, optionally a
//! hint saying what to do, and a class that decides the exit code and whether
//! the pipeline retries.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad config or usage: exit code 2.
    Config,
    /// Cannot go on without a person (privilege, server setting, bad data,
    /// corrupt state): exit code 1, no retry.
    Fatal,
    /// Connection lost, server restarting: retried with backoff.
    Transient,
}

#[derive(Debug)]
pub struct Error {
    pub class: ErrorClass,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { class: ErrorClass::Config, message: message.into(), hint: Some(hint.into()) }
    }

    pub fn fatal(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error { class: ErrorClass::Fatal, message: message.into(), hint: Some(hint.into()) }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Error { class: ErrorClass::Transient, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn exit_code(&self) -> i32 {
        match self.class {
            ErrorClass::Config => 2,
            ErrorClass::Fatal | ErrorClass::Transient => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A PostgreSQL connection setting that cannot work (URL, TLS): a config error.
impl From<outflow_pgconn::ConnError> for Error {
    fn from(e: outflow_pgconn::ConnError) -> Self {
        Error::config(e.message, e.hint)
    }
}

impl From<outflow_sinks::SinkError> for Error {
    fn from(e: outflow_sinks::SinkError) -> Self {
        if let outflow_sinks::SinkError::Fatal { message, hint } = e {
            return Error::fatal(message, hint);
        }
        Error::fatal(format!("sink: {e}"), "check the sink's path and permissions")
    }
}
