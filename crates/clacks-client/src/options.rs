use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::ClientError;

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

/// Everything needed to connect; build with [`ConnectOptions::tls`], [`ConnectOptions::unix`],
/// [`ConnectOptions::from_url`], [`ConnectOptions::from_env`] or
/// [`ConnectOptions::from_data_dir`]. Its `Debug` output never shows the password.
#[derive(Clone)]
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
    /// First reconnect delay; doubles up to `reconnect_max`, with jitter, until a connection
    /// has stayed up for `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Commands issued while disconnected are queued up to this many, then refused with
    /// [`crate::ClientError::QueueFull`]. 0 refuses at once.
    pub offline_queue: usize,
    /// Events buffered for a slow reader before they are dropped (counted in
    /// [`crate::Event::Lagged`]).
    pub event_capacity: usize,
    /// Longest command line sent (the server's `maxlinelength`, 2 MiB by default); a longer
    /// one fails with [`crate::ClientError::LineTooLong`] without being sent.
    pub max_line_length: usize,
    /// Whether writes wait for the server's verdict (see [`crate::Client::confirmed`]).
    pub confirm_writes: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("target", &self.target)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("client_name", &self.client_name)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("offline_queue", &self.offline_queue)
            .field("event_capacity", &self.event_capacity)
            .field("max_line_length", &self.max_line_length)
            .field("confirm_writes", &self.confirm_writes)
            .finish()
    }
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
            max_line_length: 2 * 1024 * 1024,
            confirm_writes: false,
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

    /// Makes every write wait for the server's verdict (see [`crate::Client::confirmed`]).
    pub fn confirm_writes(mut self, on: bool) -> Self {
        self.confirm_writes = on;
        self
    }
}

impl ConnectOptions {
    /// Connects like the zero-config `clacksd` expects: the Unix socket `clacks.sock` and the
    /// generated `credentials` file (`username=…`, `password=…`) of its data directory.
    pub fn from_data_dir(dir: impl AsRef<Path>) -> Result<Self, ClientError> {
        let dir = dir.as_ref();
        let path = dir.join("credentials");
        let text = std::fs::read_to_string(&path).map_err(|e| ClientError::Credentials {
            path: path.clone(),
            source: Arc::new(e),
        })?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        match (field("username"), field("password")) {
            (Some(user), Some(password)) => Ok(Self::unix(dir.join("clacks.sock"), user, password)),
            _ => Err(ClientError::InvalidArgument(format!(
                "{}: needs username=… and password=… lines",
                path.display()
            ))),
        }
    }

    /// Options from a URL: `clackss://USER:PASSWORD@HOST[:PORT]` (TLS, port 49888 by default)
    /// or `clacks+unix://[USER:PASSWORD@]/PATH/TO/SOCKET`. User and password are
    /// percent-decoded. Query parameters: `ca_file=PATH` or `pin=PATH` (TLS certificate
    /// checks, see [`TlsVerify`]), `client_name=NAME`, `timeout=SECONDS` (request timeout).
    pub fn from_url(url: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::InvalidArgument(format!("URL {}: {why}", redact(url)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (user, password) = (
            percent_decode(user).map_err(bad)?,
            percent_decode(password).map_err(bad)?,
        );
        let mut opts = match scheme {
            "clackss" => {
                if !path.is_empty() && path != "/" {
                    return Err(bad("a TLS URL has no path"));
                }
                let (host, port) = split_port(host).map_err(bad)?;
                if host.is_empty() {
                    return Err(bad("no host"));
                }
                Self::tls(host, port.unwrap_or(49888), &user, &password)
            }
            "clacks+unix" => {
                if !host.is_empty() {
                    return Err(bad("a Unix socket URL has no host (clacks+unix:///path)"));
                }
                if path.is_empty() {
                    return Err(bad("no socket path"));
                }
                Self::unix(percent_decode(path).map_err(bad)?, &user, &password)
            }
            "clacks" => return Err(bad("TCP is always TLS: use clackss://")),
            _ => return Err(bad("the scheme is clackss:// or clacks+unix://")),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).map_err(bad)?;
            opts = match name {
                "ca_file" | "pin" if !matches!(opts.target, Target::Tls { .. }) => {
                    return Err(bad("ca_file and pin need a TLS URL"))
                }
                "ca_file" => opts.verify(TlsVerify::CaFile(value.into())),
                "pin" => opts.verify(TlsVerify::Pinned(value.into())),
                "client_name" => opts.client_name(&value),
                "timeout" => match value.parse::<f64>() {
                    Ok(t) if t > 0.0 && t <= 86_400.0 => {
                        opts.request_timeout(Duration::from_secs_f64(t))
                    }
                    _ => return Err(bad("timeout is seconds, over 0 and at most 86400")),
                },
                _ => return Err(bad(&format!("unknown parameter {name:?}"))),
            };
        }
        Ok(opts)
    }

    /// Options from the environment: `CLACKS_URL` (see [`ConnectOptions::from_url`]); else
    /// `CLACKS_SOCKET` or `CLACKS_HOST` (with `CLACKS_PORT`, default 49888) with `CLACKS_USER`
    /// and `CLACKS_PASSWORD`, and `CLACKS_CA_FILE` or `CLACKS_PIN` for TLS; else the data
    /// directory `CLACKS_DATA_DIR` (default `./clacks-data`) of a zero-config `clacksd`.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`ConnectOptions::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ClientError> {
        if let Some(url) = var("CLACKS_URL") {
            return Self::from_url(&url);
        }
        let user = var("CLACKS_USER");
        let password = var("CLACKS_PASSWORD");
        let credentials = || match (&user, &password) {
            (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
            _ => Err(ClientError::InvalidArgument(
                "CLACKS_USER and CLACKS_PASSWORD are needed with CLACKS_SOCKET or CLACKS_HOST"
                    .into(),
            )),
        };
        let opts = if let Some(socket) = var("CLACKS_SOCKET") {
            let (u, p) = credentials()?;
            Self::unix(socket, &u, &p)
        } else if let Some(host) = var("CLACKS_HOST") {
            let (u, p) = credentials()?;
            let port = match var("CLACKS_PORT") {
                None => 49888,
                Some(port) => port.parse().map_err(|_| {
                    ClientError::InvalidArgument(format!("CLACKS_PORT {port:?} is not a port"))
                })?,
            };
            Self::tls(&host, port, &u, &p)
        } else {
            let dir = var("CLACKS_DATA_DIR").unwrap_or_else(|| "./clacks-data".into());
            let mut opts = Self::from_data_dir(dir)?;
            if let (Some(u), Some(p)) = (user, password) {
                (opts.username, opts.password) = (u, p);
            }
            opts
        };
        let verify = match (var("CLACKS_CA_FILE"), var("CLACKS_PIN")) {
            (None, None) => return Ok(opts),
            (Some(_), Some(_)) => {
                return Err(ClientError::InvalidArgument(
                    "CLACKS_CA_FILE and CLACKS_PIN exclude each other".into(),
                ))
            }
            (Some(ca), None) => TlsVerify::CaFile(ca.into()),
            (None, Some(pin)) => TlsVerify::Pinned(pin.into()),
        };
        if !matches!(opts.target, Target::Tls { .. }) {
            return Err(ClientError::InvalidArgument(
                "CLACKS_CA_FILE and CLACKS_PIN need a TLS server (CLACKS_HOST)".into(),
            ));
        }
        Ok(opts.verify(verify))
    }
}

/// `url` with its password hidden, for error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{}", &rest[userinfo.len() + 1..])
        }
        _ => url.to_string(),
    }
}

/// `host[:port]`, `[v6]` or `[v6]:port`.
fn split_port(host: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (name, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
        (name, after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| "the port is not a number from 0 to 65535")
        })
        .transpose()?;
    Ok((name, port))
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("a % escape is cut off")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad % escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad % escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a % escape is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = ConnectOptions::from_url("clackss://ad%40min:p%3Ass@example.org:4000?pin=/c.pem")
            .unwrap();
        assert_eq!(
            (o.username.as_str(), o.password.as_str()),
            ("ad@min", "p:ss")
        );
        assert_eq!(
            o.target,
            Target::Tls {
                host: "example.org".into(),
                port: 4000,
                verify: TlsVerify::Pinned("/c.pem".into())
            }
        );
        let o = ConnectOptions::from_url("clackss://u:p@[::1]").unwrap();
        assert!(matches!(o.target, Target::Tls { ref host, port: 49888, .. } if host == "::1"));
        let o = ConnectOptions::from_url("clacks+unix://u:p@/run/clacks.sock?timeout=2.5").unwrap();
        assert_eq!(o.target, Target::Unix("/run/clacks.sock".into()));
        assert_eq!(o.request_timeout, Duration::from_millis(2500));
        for bad in [
            "clacks://u:p@host",
            "clackss://u:secret@",
            "clacks+unix://host/x",
            "clacks+unix:///x?pin=/c.pem",
            "clackss://u:secret@h:99999",
            "clackss://u:secret@h?colour=red",
            "clackss://u:secret@h?timeout=0",
            "clackss://u:%zz@h",
        ] {
            let err = ConnectOptions::from_url(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
            assert!(err.starts_with("invalid argument: URL"), "{err}");
        }
    }

    #[test]
    fn environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let o = ConnectOptions::from_vars(env(&[
            ("CLACKS_HOST", "h"),
            ("CLACKS_PORT", "1234"),
            ("CLACKS_USER", "u"),
            ("CLACKS_PASSWORD", "p"),
            ("CLACKS_CA_FILE", "/ca.pem"),
        ]))
        .unwrap();
        assert_eq!(
            o.target,
            Target::Tls {
                host: "h".into(),
                port: 1234,
                verify: TlsVerify::CaFile("/ca.pem".into())
            }
        );
        let url = ConnectOptions::from_vars(env(&[
            ("CLACKS_URL", "clacks+unix:///s"),
            ("CLACKS_HOST", "ignored"),
        ]))
        .unwrap();
        assert_eq!(url.target, Target::Unix("/s".into()));
        assert!(ConnectOptions::from_vars(env(&[("CLACKS_SOCKET", "/s")])).is_err());
        let pinned_unix = ConnectOptions::from_vars(env(&[
            ("CLACKS_SOCKET", "/s"),
            ("CLACKS_USER", "u"),
            ("CLACKS_PASSWORD", "p"),
            ("CLACKS_PIN", "/c.pem"),
        ]));
        assert!(matches!(pinned_unix, Err(ClientError::InvalidArgument(_))));
        let missing = ConnectOptions::from_vars(env(&[("CLACKS_DATA_DIR", "/nonexistent")]));
        match missing {
            Err(e @ ClientError::Credentials { .. }) => {
                assert!(e.to_string().contains("/nonexistent/credentials"), "{e}");
                assert!(std::error::Error::source(&e).is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let o = ConnectOptions::unix("/s", "user", "hunter2");
        let shown = format!("{o:?}");
        assert!(
            shown.contains("user") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
