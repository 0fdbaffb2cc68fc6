//! Listeners: binding, the accept loops, the connection limit, and handing each accepted stream
//! to the code of its protocol.
//!
//! A listener is a (protocol, socket) pair; a new kind of listener is one [`Protocol`] variant
//! with its entries in [`Protocol::serve`] and [`Protocol::refusal`].

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clacks_proto::{Flags, Reply};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::{Peer, Shared};
use crate::stats::Stats;
use crate::transport::Transport;
use crate::{Config, ServerError};

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Clacks: TLS over TCP, plain over a Unix socket.
    Clacks,
    /// The memcached text protocol (plain TCP or Unix socket).
    Memcached,
    /// HTTP: metrics, health checks, the dashboard (plain TCP).
    Http,
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Socket {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix socket listener and its path (removed at shutdown).
    Unix(UnixListener, PathBuf),
}

/// Bound listening sockets, each with its protocol, handed to [`Server::run`](crate::Server::run)
/// (so tests can bind port 0 themselves).
#[derive(Debug, Default)]
pub struct Listeners(pub Vec<(Protocol, Socket)>);

impl Listeners {
    /// Adds a listener.
    pub fn with(mut self, protocol: Protocol, socket: Socket) -> Listeners {
        self.0.push((protocol, socket));
        self
    }

    /// Binds every `<ip>` × `<port>` and every `<socket>` of `config`, and those of its
    /// `<memcached>` section. A stale socket file is replaced; `socketchmod` and
    /// `socketcommands` are applied to each socket.
    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let mut out = Listeners::default();
        let mut sections = vec![(Protocol::Clacks, &config.ips, config.port, &config.sockets)];
        if let Some(m) = &config.memcached {
            sections.push((Protocol::Memcached, &m.ips, m.port, &m.sockets));
        }
        let no_sockets = Vec::new();
        if let Some(h) = &config.http {
            sections.push((Protocol::Http, &h.ips, Some(h.port), &no_sockets));
        }
        for (protocol, ips, port, sockets) in sections {
            for l in bind_tcp(ips, port).await? {
                out.0.push((protocol, Socket::Tcp(l)));
            }
            for path in sockets {
                let l = bind_unix(path, config)?;
                out.0.push((protocol, Socket::Unix(l, path.clone())));
            }
        }
        Ok(out)
    }
}

async fn bind_tcp(ips: &[String], port: Option<u16>) -> Result<Vec<TcpListener>, ServerError> {
    let mut out = Vec::new();
    let Some(port) = port else {
        return Ok(out);
    };
    for ip in ips {
        let addr = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        let l = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        out.push(l);
    }
    Ok(out)
}

fn bind_unix(path: &Path, config: &Config) -> Result<UnixListener, ServerError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            // Another server may still answer there: never take its socket away.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServerError::Bind {
                    addr: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "another server answers on this socket",
                    ),
                });
            }
            tracing::info!(path = %path.display(), "removing stale socket file");
            let _ = std::fs::remove_file(path);
        }
    }
    let l = UnixListener::bind(path).map_err(|source| ServerError::Bind {
        addr: path.display().to_string(),
        source,
    })?;
    if let Some(mode) = config.socketchmod {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ServerError::io(path, e))?;
    }
    for cmd in &config.socketcommands {
        tracing::info!(command = %cmd, "running socket command");
        match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::warn!(command = %cmd, status = %s, "socket command failed"),
            Err(e) => tracing::warn!(command = %cmd, error = %e, "socket command failed"),
        }
    }
    Ok(l)
}

impl Protocol {
    /// Serves an accepted stream of this protocol until it closes.
    fn serve<S: Transport>(
        self,
        accepting: &Accepting,
        stream: S,
        peer: Peer,
        slot: OwnedSemaphorePermit,
    ) {
        let shared = accepting.shared.clone();
        match self {
            Protocol::Clacks => {
                let conn = crate::conn::serve(shared, stream, &peer, &accepting.conns, Some(slot));
                accepting.tracker.spawn(conn);
            }
            Protocol::Memcached => {
                let who = match peer {
                    Peer::Tcp(addr) => addr.to_string(),
                    _ => "unixdomainsocket".to_string(),
                };
                let conn =
                    crate::memcache::serve(shared, stream, who, accepting.conns.clone(), slot);
                accepting.tracker.spawn(conn);
            }
            Protocol::Http => {
                let conn = crate::http::serve(shared, stream, accepting.conns.clone(), slot);
                accepting.tracker.spawn(conn);
            }
        }
    }

    /// What a connection over `maxconnections` is told before it is closed.
    fn refusal(self) -> Bytes {
        match self {
            Protocol::Clacks => Reply::Overhead {
                flags: Flags::ERROR,
                value: "too_many_connections".into(),
            }
            .to_bytes(),
            // memcached's own text for this case.
            Protocol::Memcached => Bytes::from_static(b"ERROR Too many open connections\r\n"),
            Protocol::Http => Bytes::from_static(crate::http::REFUSAL),
        }
    }
}

/// A socket file this server listens on, as it was when serving started.
pub(crate) struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file.
    id: Option<(u64, u64)>,
}

impl SocketFile {
    fn new(path: PathBuf) -> SocketFile {
        let id = file_id(&path);
        SocketFile { path, id }
    }

    /// Removes the file if it is still the one this server listens on (another server may have
    /// replaced it since).
    pub(crate) fn remove(&self) {
        if self.id.is_some() && file_id(&self.path) == self.id {
            let _ = std::fs::remove_file(&self.path);
        } else {
            tracing::info!(path = %self.path.display(), "socket file replaced by another; left as it is");
        }
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Starts the accept loop of each listener; returns the Unix socket files (removed at shutdown).
/// Clacks over TCP needs `tls`: without it that listener is not served.
pub(crate) fn start(
    listeners: Listeners,
    tls: Option<&TlsAcceptor>,
    accepting: &Accepting,
) -> Vec<SocketFile> {
    let mut socket_files = Vec::new();
    for (protocol, socket) in listeners.0 {
        match socket {
            Socket::Tcp(l) => {
                let tls = match protocol {
                    Protocol::Clacks => match tls {
                        Some(tls) => Some(tls.clone()),
                        None => {
                            tracing::error!(
                                "a TCP listener needs a TLS certificate; not serving it"
                            );
                            continue;
                        }
                    },
                    Protocol::Memcached | Protocol::Http => None,
                };
                if let Ok(addr) = l.local_addr() {
                    tracing::info!(%addr, ?protocol, tls = tls.is_some(), "listening on TCP");
                }
                accepting
                    .tracker
                    .spawn(accept_tcp(l, protocol, tls, accepting.clone()));
            }
            Socket::Unix(l, path) => {
                tracing::info!(path = %path.display(), ?protocol, "listening on Unix socket");
                socket_files.push(SocketFile::new(path));
                accepting
                    .tracker
                    .spawn(accept_unix(l, protocol, accepting.clone()));
            }
        }
    }
    socket_files
}

/// What the accept loops share.
#[derive(Clone)]
pub(crate) struct Accepting {
    pub(crate) shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    pub(crate) tracker: TaskTracker,
    /// Parent of every connection's cancellation token.
    pub(crate) conns: CancellationToken,
    /// Stops accepting.
    pub(crate) stop: CancellationToken,
}

impl Accepting {
    pub(crate) fn new(shared: Arc<Shared>, tracker: TaskTracker) -> Accepting {
        Accepting {
            limit: Arc::new(Semaphore::new(shared.config.max_connections)),
            stop: shared.shutdown.clone(),
            shared,
            tracker,
            conns: CancellationToken::new(),
        }
    }

    /// The next accepted connection, or `None` once the server stops. Accept errors (such as
    /// running out of file descriptors) are logged and retried after a pause.
    async fn next<T, F, Fut>(&self, mut accept: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::io::Result<T>>,
    {
        loop {
            let accepted = tokio::select! {
                () = self.stop.cancelled() => return None,
                a = accept() => a,
            };
            match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A connection slot, if one is free under `maxconnections`.
    fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.limit.clone().try_acquire_owned().ok()
    }

    /// Serves an accepted stream in its own task, holding `slot`; without a slot (over
    /// `maxconnections`) the peer is told why and closed. The task runs exactly the connection's
    /// future, so an idle connection costs no more than that future.
    fn serve<S: Transport>(
        &self,
        protocol: Protocol,
        stream: S,
        peer: Peer,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        match slot {
            Some(slot) => protocol.serve(self, stream, peer, slot),
            None => {
                let shared = self.shared.clone();
                self.tracker
                    .spawn(async move { reject(&shared, stream, protocol).await });
            }
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    protocol: Protocol,
    tls: Option<TlsAcceptor>,
    accepting: Accepting,
) {
    while let Some((tcp, addr)) = accepting.next(|| listener.accept()).await {
        let _ = tcp.set_nodelay(true);
        // The slot is taken before the handshake, so handshakes count towards the limit too.
        let slot = accepting.slot();
        let Some(tls) = tls.clone() else {
            accepting.serve(protocol, tcp, Peer::Tcp(addr), slot);
            continue;
        };
        let conn = accepting.clone();
        accepting.tracker.spawn(async move {
            let timeout = conn.shared.config.tls_handshake_timeout;
            let failure = match tokio::time::timeout(timeout, tls.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    conn.serve(protocol, stream, Peer::Tcp(addr), slot);
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_string(),
            };
            Stats::bump(&conn.shared.stats.tls_handshake_failures);
            tracing::info!(peer = %addr, error = %failure, "TLS handshake failed");
        });
    }
}

async fn accept_unix(listener: UnixListener, protocol: Protocol, accepting: Accepting) {
    while let Some((stream, _)) = accepting.next(|| listener.accept()).await {
        accepting.serve(protocol, stream, Peer::Unix, accepting.slot());
    }
}

/// Tells a connection over `maxconnections` why it is refused, then closes it.
async fn reject<S: AsyncWrite + Unpin>(shared: &Shared, mut stream: S, protocol: Protocol) {
    Stats::bump(&shared.stats.connections_rejected);
    tracing::warn!(
        limit = shared.config.max_connections,
        ?protocol,
        "connection refused: too many connections"
    );
    let line = protocol.refusal();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    })
    .await;
}
