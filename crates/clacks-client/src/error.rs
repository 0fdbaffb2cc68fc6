use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

/// Everything a client call can fail with. Match on the variant, or on the coarser
/// [`ClientError::kind`]; [`ClientError::is_timeout`] and [`ClientError::is_disconnect`] answer
/// the usual questions.
#[derive(Debug, Error, Clone)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached (connect, read or write failed).
    #[error("connection failed: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// The TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// A credentials file could not be read.
    #[error("cannot read the credentials file {}: {source}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The server refused the user name or password.
    #[error("login failed: wrong user name or password")]
    AuthFailed,
    /// The peer does not speak Clacks.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer within the request timeout. The command is never sent after this.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection was lost after the command was (partly) sent and before its answer: it
    /// may or may not have run. It is not sent again.
    #[error("outcome unknown: the connection was lost after `{command}` was sent ({reason})")]
    OutcomeUnknown {
        /// The command.
        command: String,
        /// Why the connection was lost.
        reason: String,
    },
    /// The server refused the command for lack of permission.
    #[error("permission denied ({0})")]
    PermissionDenied(String),
    /// The server did not know the command.
    #[error("unknown command: {0}")]
    UnknownCommand(String),
    /// The server refused the command for another reason (`out_of_memory …`, `line_too_long`).
    #[error("refused by the server: {command}: {reason}")]
    Refused {
        /// The command.
        command: String,
        /// What the server said.
        reason: String,
    },
    /// A name or value that cannot be sent (line breaks, `=` in a name, empty name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The command's line is longer than the server accepts (see
    /// [`crate::ConnectOptions::max_line_length`]); it was not sent.
    #[error("command of {len} bytes is over the line limit of {limit} bytes")]
    LineTooLong {
        /// The line's length without its line end.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Disconnected and the queue for commands issued while disconnected is full.
    #[error("not connected and the offline queue is full ({0} commands)")]
    QueueFull(usize),
    /// The client was closed with `disconnect`.
    #[error("client closed")]
    Closed,
    /// A cached value could not be decoded.
    #[error("cannot decode value: {0}")]
    Decode(String),
}

/// What kind of failure a [`ClientError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Connecting, TLS, or the connection was lost ([`ClientError::Io`], [`ClientError::Tls`],
    /// [`ClientError::QueueFull`]).
    Connection,
    /// The login was refused.
    Auth,
    /// No answer in time.
    Timeout,
    /// The connection was lost while the command was under way.
    OutcomeUnknown,
    /// The server refused the command (permission, unknown command, limits).
    Refused,
    /// The call's arguments or the client's configuration (invalid names, lines over the limit,
    /// unreadable credentials).
    Usage,
    /// The server said something unexpected, or a value could not be decoded.
    Protocol,
    /// The client was closed.
    Closed,
}

impl ClientError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use ClientError as E;
        match self {
            E::Io(_) | E::Tls(_) | E::QueueFull(_) => ErrorKind::Connection,
            E::AuthFailed => ErrorKind::Auth,
            E::Timeout(_) => ErrorKind::Timeout,
            E::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            E::PermissionDenied(_) | E::UnknownCommand(_) | E::Refused { .. } => ErrorKind::Refused,
            E::InvalidArgument(_) | E::LineTooLong { .. } | E::Credentials { .. } => {
                ErrorKind::Usage
            }
            E::Protocol(_) | E::Decode(_) => ErrorKind::Protocol,
            E::Closed => ErrorKind::Closed,
        }
    }

    /// Whether the call gave up waiting for an answer.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }

    /// Whether the connection failed or was lost (the command may not have reached the server,
    /// or its outcome is unknown).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            ClientError::Io(_) | ClientError::OutcomeUnknown { .. }
        )
    }

    /// Whether the server refused the command.
    pub fn is_refused(&self) -> bool {
        self.kind() == ErrorKind::Refused
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(Arc::new(e))
    }
}
