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
    /// The server refused a work-queue command (`OVERHEAD E queue_full <queue>`, …).
    #[error("refused by the server: {command}: {message}")]
    QueueRefused {
        /// The command (`QSEND jobs`, `QACK jobs 17`).
        command: String,
        /// The queue the refusal names.
        queue: String,
        /// Why.
        reason: QueueRefusal,
        /// What the server said.
        message: String,
    },
    /// The server refused a service-registry command (`OVERHEAD E bad_endpoint <service>`, …).
    #[error("refused by the server: {command}: {message}")]
    RegistryRefused {
        /// The command (`REGISTER web`, `UNREGISTER web 7`).
        command: String,
        /// The service the refusal names.
        service: String,
        /// Why.
        reason: RegistryRefusal,
        /// What the server said.
        message: String,
    },
    /// The command belonged to a connection that has been lost since, and was not sent: the
    /// acknowledgement of a message leased on that connection (the lease ended with it and the
    /// message went back to its queue), or a receive on its temporary queue (gone with it).
    #[error("`{command}` was not sent: the connection it belonged to was lost")]
    ConnectionLost {
        /// The command.
        command: String,
    },
    /// The worker that served a request answered with an error (see
    /// `Client::request`, feature `json`).
    #[error("request to {queue} failed: {message}")]
    RequestFailed {
        /// The queue the request was sent to.
        queue: String,
        /// The worker's error.
        message: String,
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

/// Why the server refused a work-queue command: the token of its `OVERHEAD E` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueRefusal {
    /// `queue_full`: the queue (or all queues together) has no room and its policy is `reject`.
    QueueFull,
    /// `message_too_large`: over the queue's `maxmessagesize`.
    MessageTooLarge,
    /// `bad_name`: not a queue name (empty, or with a space or `=`).
    BadName,
    /// `unknown_message`: no message with that id is leased to this connection (the lease ran
    /// out, or it was acknowledged already).
    UnknownMessage,
    /// `unknown_queue`: a temporary queue that does not exist (any more).
    UnknownQueue,
    /// `too_many_queues`: the server holds `maxqueues` queues.
    TooManyQueues,
    /// `too_many_waits`: this connection has `maxwaits` receives waiting.
    TooManyWaits,
    /// `bad_argument`: a timeout or lease the server does not take.
    BadArgument,
    /// `queue_unavailable`: the server that holds the queue cannot be reached.
    QueueUnavailable,
}

impl QueueRefusal {
    /// The refusal a token names.
    pub(crate) fn from_token(token: &str) -> Option<QueueRefusal> {
        use QueueRefusal as R;
        Some(match token {
            "queue_full" => R::QueueFull,
            "message_too_large" => R::MessageTooLarge,
            "bad_name" => R::BadName,
            "unknown_message" => R::UnknownMessage,
            "unknown_queue" => R::UnknownQueue,
            "too_many_queues" => R::TooManyQueues,
            "too_many_waits" => R::TooManyWaits,
            "bad_argument" => R::BadArgument,
            "queue_unavailable" => R::QueueUnavailable,
            _ => return None,
        })
    }
}

/// Why the server refused a service-registry command: the token of its `OVERHEAD E` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryRefusal {
    /// `bad_name`: not a service name (empty, or with a space or `=`).
    BadName,
    /// `bad_endpoint`: an endpoint of no known form (`queue:<name>`, `unix:<path>`,
    /// `tcp:<host>:<port>`, `tls:<host>:<port>`, `<scheme>://…`).
    BadEndpoint,
    /// `unknown_instance`: no instance with that id registered by this connection.
    UnknownInstance,
    /// `too_many_instances`: over the server's `maxinstances` or `maxperconnection`.
    TooManyInstances,
    /// `registry_unavailable`: a slave whose link to its master is down.
    RegistryUnavailable,
}

impl RegistryRefusal {
    /// The refusal a token names.
    pub(crate) fn from_token(token: &str) -> Option<RegistryRefusal> {
        use RegistryRefusal as R;
        Some(match token {
            "bad_name" => R::BadName,
            "bad_endpoint" => R::BadEndpoint,
            "unknown_instance" => R::UnknownInstance,
            "too_many_instances" => R::TooManyInstances,
            "registry_unavailable" => R::RegistryUnavailable,
            _ => return None,
        })
    }
}

/// What kind of failure a [`ClientError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Connecting, TLS, or the connection was lost ([`ClientError::Io`], [`ClientError::Tls`],
    /// [`ClientError::QueueFull`], [`ClientError::ConnectionLost`]).
    Connection,
    /// The login was refused.
    Auth,
    /// No answer in time.
    Timeout,
    /// The connection was lost while the command was under way.
    OutcomeUnknown,
    /// The server refused the command (permission, unknown command, limits, queue and registry
    /// refusals).
    Refused,
    /// The call's arguments or the client's configuration (invalid names, lines over the limit,
    /// unreadable credentials).
    Usage,
    /// The server said something unexpected, or a value could not be decoded.
    Protocol,
    /// The client was closed.
    Closed,
    /// The worker that served a request answered with an error.
    Worker,
}

impl ClientError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use ClientError as E;
        match self {
            E::Io(_) | E::Tls(_) | E::QueueFull(_) | E::ConnectionLost { .. } => {
                ErrorKind::Connection
            }
            E::AuthFailed => ErrorKind::Auth,
            E::Timeout(_) => ErrorKind::Timeout,
            E::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            E::PermissionDenied(_)
            | E::UnknownCommand(_)
            | E::Refused { .. }
            | E::QueueRefused { .. }
            | E::RegistryRefused { .. } => ErrorKind::Refused,
            E::InvalidArgument(_) | E::LineTooLong { .. } | E::Credentials { .. } => {
                ErrorKind::Usage
            }
            E::Protocol(_) | E::Decode(_) => ErrorKind::Protocol,
            E::Closed => ErrorKind::Closed,
            E::RequestFailed { .. } => ErrorKind::Worker,
        }
    }

    /// Why the server refused a work-queue command, if it did.
    pub fn queue_refusal(&self) -> Option<QueueRefusal> {
        match self {
            ClientError::QueueRefused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Why the server refused a service-registry command, if it did.
    pub fn registry_refusal(&self) -> Option<RegistryRefusal> {
        match self {
            ClientError::RegistryRefused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Whether the call gave up waiting for an answer.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }

    /// Whether the connection failed or was lost (the command may not have reached the server,
    /// or its outcome is unknown, or it belonged to the lost connection).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            ClientError::Io(_)
                | ClientError::OutcomeUnknown { .. }
                | ClientError::ConnectionLost { .. }
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
