use thiserror::Error;

/// Errors of the codec. Only framing can fail: every complete line parses to some
/// [`crate::Request`] (unknown lines become [`crate::Request::Unknown`]).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// A line grew past the configured maximum before its LF arrived.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The configured limit in bytes.
        limit: usize,
    },
}
