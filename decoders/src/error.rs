//! The one error type of the decoders: the input bytes or text were not what
//! the protocol promises. Always a definite error: retrying the same input
//! gives the same answer, so callers report it and stop without acknowledging.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The message ended before a field it announces.
    #[error("truncated {what}: needed {needed} more bytes")]
    Truncated { what: &'static str, needed: usize },
    /// A tag, kind byte or enum value the protocol does not define.
    #[error("unknown {what} {value:#x}")]
    UnknownTag { what: &'static str, value: u32 },
    /// A field that is present but malformed (bad UTF-8, bad number, ...).
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// The stream refers to state we never received (e.g. an Insert for a
    /// relation id without a preceding Relation message).
    #[error("protocol state: {0}")]
    State(String),
}

impl DecodeError {
    pub fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        DecodeError::Invalid { what, detail: detail.into() }
    }
}

impl From<outflow_model::PositionError> for DecodeError {
    fn from(e: outflow_model::PositionError) -> Self {
        DecodeError::Invalid { what: e.what, detail: e.detail }
    }
}
