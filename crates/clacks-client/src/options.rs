use std::path::PathBuf;
use std::time::Duration;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// TLS over TCP.
    Tls {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// How the server certificate is checked.
        verify: TlsVerify,
    },
    /// A Unix domain socket (plain text).
    Unix(PathBuf),
}

/// How a TLS client checks the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsVerify {
    /// Accept any certificate, like the Perl client does (the connection is encrypted but the
    /// server is not authenticated).
    #[default]
    None,
    /// Require a certificate chain signed by a CA in this PEM file, for the host name.
    CaFile(PathBuf),
    /// Require exactly the certificate in this PEM file (pinning; the name is not checked).
    Pinned(PathBuf),
}

/// Everything needed to connect; build with [`ConnectOptions::tls`] or [`ConnectOptions::unix`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where to connect.
    pub target: Target,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Sent as `CLACKS <client_name>`, shown in CLIENTLIST.
    pub client_name: String,
    /// How long a request waits for its answer.
    pub request_timeout: Duration,
    /// How long connecting and logging in may take.
    pub connect_timeout: Duration,
    /// Interval of keepalive PINGs (the server drops clients silent for 180 s).
    pub ping_interval: Duration,
    /// First reconnect delay; doubles up to `reconnect_max`, with jitter.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Commands issued while disconnected are queued up to this many, then refused with
    /// [`crate::ClientError::QueueFull`]. 0 refuses at once.
    pub offline_queue: usize,
    /// Events buffered for a slow reader before they are dropped (counted in
    /// [`crate::Event::Lagged`]).
    pub event_capacity: usize,
}

impl ConnectOptions {
    fn new(target: Target, username: &str, password: &str) -> Self {
        ConnectOptions {
            target,
            username: username.to_string(),
            password: password.to_string(),
            client_name: format!("clacks-client/{}", env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(60),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            offline_queue: 10_000,
            event_capacity: 4096,
        }
    }

    /// TLS to `host:port`, accepting any certificate (see [`TlsVerify`]).
    pub fn tls(host: &str, port: u16, username: &str, password: &str) -> Self {
        Self::new(
            Target::Tls {
                host: host.to_string(),
                port,
                verify: TlsVerify::None,
            },
            username,
            password,
        )
    }

    /// A Unix domain socket.
    pub fn unix(path: impl Into<PathBuf>, username: &str, password: &str) -> Self {
        Self::new(Target::Unix(path.into()), username, password)
    }

    /// Sets the client name.
    pub fn client_name(mut self, name: &str) -> Self {
        self.client_name = name.to_string();
        self
    }

    /// Sets how a TLS target's certificate is checked (no effect on Unix sockets).
    pub fn verify(mut self, how: TlsVerify) -> Self {
        if let Target::Tls { verify, .. } = &mut self.target {
            *verify = how;
        }
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
}

impl ConnectOptions {
    /// Connects like the zero-config `clacksd` expects: the Unix socket `clacks.sock` and the
    /// generated `credentials` file (`username=…`, `password=…`) of its data directory.
    pub fn from_data_dir(dir: impl AsRef<std::path::Path>) -> Result<Self, crate::ClientError> {
        let dir = dir.as_ref();
        let path = dir.join("credentials");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| crate::ClientError::Io(format!("{}: {e}", path.display())))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        match (field("username"), field("password")) {
            (Some(user), Some(password)) => Ok(Self::unix(dir.join("clacks.sock"), user, password)),
            _ => Err(crate::ClientError::InvalidArgument(format!(
                "{}: needs username=… and password=… lines",
                path.display()
            ))),
        }
    }
}
