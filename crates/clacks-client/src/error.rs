use thiserror::Error;

/// Everything a client call can fail with.
#[derive(Debug, Error, Clone)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached (connect, read or write failed).
    #[error("connection failed: {0}")]
    Io(String),
    /// The TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the user name or password.
    #[error("login failed: wrong user name or password")]
    AuthFailed,
    /// The peer does not speak Clacks.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer within the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The server refused the command for lack of permission.
    #[error("permission denied ({0})")]
    PermissionDenied(String),
    /// The server did not know the command.
    #[error("unknown command: {0}")]
    UnknownCommand(String),
    /// A name or value that cannot be sent (line breaks, `=` in a name, empty name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
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
