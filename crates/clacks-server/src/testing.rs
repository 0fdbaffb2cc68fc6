//! An in-process server for tests (feature `test-util`): TLS on an OS-assigned loopback port and
//! a Unix socket in a temporary directory, stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::User;
use crate::{Config, Listeners, Protocol, Server, Socket};

/// The main user of test servers.
pub const ADMIN: (&str, &str) = ("admin", "adminpass");
/// A read/write user.
pub const RW: (&str, &str) = ("rwuser", "rwpass");
/// A read-only user.
pub const RO: (&str, &str) = ("rouser", "ropass");

/// The login token of `user`/`password`.
pub fn token(user: &str, password: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!("{}:{}", b(user), b(password))
}

/// The config test servers start from: [`ADMIN`] plus the [`RW`] and [`RO`] users.
pub fn base_config() -> Config {
    let mut c = Config::with_user(ADMIN.0, ADMIN.1);
    let user = |(name, password): (&str, &str), write| User {
        username: name.into(),
        password: password.into(),
        read: true,
        write,
        manage: false,
    };
    c.users = vec![user(RW, true), user(RO, false)];
    c
}

/// A running in-process server.
pub struct TestServer {
    /// Its temporary directory (certificate, socket, persistence).
    pub dir: tempfile::TempDir,
    /// The TLS address.
    pub addr: SocketAddr,
    /// The Unix socket.
    pub socket: PathBuf,
    /// The self-signed certificate (PEM file).
    pub cert: PathBuf,
    /// The memcached protocol TCP address.
    pub memcached: SocketAddr,
    /// The memcached protocol Unix socket.
    pub memcached_socket: PathBuf,
    /// The HTTP listener (metrics, health checks, the dashboard).
    pub http: SocketAddr,
    /// The server.
    pub server: Server,
    stop: CancellationToken,
    /// The task running [`Server::run`].
    pub handle: Option<JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestServer {
    /// Starts a server with [`base_config`].
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server; `tweak` may change the config first.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, "127.0.0.1:0", tweak).await
    }

    /// Starts a server in `dir` (reusing a certificate there) on the TCP address `bind`.
    pub async fn start_in(
        dir: tempfile::TempDir,
        bind: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        if !cert.exists() {
            let (c, k) = crate::tls::self_signed().expect("certificate");
            std::fs::write(&cert, c).expect("write cert");
            std::fs::write(&key, k).expect("write key");
        }
        let socket = dir.path().join("clacks.sock");
        let _ = std::fs::remove_file(&socket);
        let memcached_socket = dir.path().join("memcached.sock");
        let _ = std::fs::remove_file(&memcached_socket);
        let mut config = base_config();
        config.tls_cert = Some(cert.clone());
        config.tls_key = Some(key);
        config.memcached = Some(crate::Memcached {
            ips: Vec::new(),
            port: None,
            sockets: vec![memcached_socket.clone()],
            max_item_size: crate::Memcached::DEFAULT_MAX_ITEM_SIZE,
        });
        tweak(&mut config);
        let tcp = TcpListener::bind(bind).await.expect("bind TCP");
        let addr = tcp.local_addr().expect("local addr");
        let unix = UnixListener::bind(&socket).expect("bind socket");
        let mc_tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind TCP");
        let memcached = mc_tcp.local_addr().expect("local addr");
        let mc_unix = UnixListener::bind(&memcached_socket).expect("bind socket");
        let http_tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind TCP");
        let http = http_tcp.local_addr().expect("local addr");
        let listeners = Listeners::default()
            .with(Protocol::Clacks, Socket::Tcp(tcp))
            .with(Protocol::Clacks, Socket::Unix(unix, socket.clone()))
            .with(Protocol::Memcached, Socket::Tcp(mc_tcp))
            .with(
                Protocol::Memcached,
                Socket::Unix(mc_unix, memcached_socket.clone()),
            )
            .with(Protocol::Http, Socket::Tcp(http_tcp));
        let server = Server::new(config).expect("server");
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(
            server
                .clone()
                .run(listeners, async move { s.cancelled().await }),
        );
        TestServer {
            dir,
            addr,
            socket,
            cert,
            memcached,
            memcached_socket,
            http,
            server,
            stop,
            handle: Some(handle),
        }
    }

    /// The value of the server's counter `name` (as `STATS` shows it).
    pub fn stat(&self, name: &str) -> u64 {
        self.server
            .stats()
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    /// Stops the server and waits until it has finished; returns its directory.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), h).await;
        }
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// Stops the server and starts a new one in the same directory on the same address.
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let addr = self.addr;
        let dir = self.shutdown().await;
        Self::start_in(dir, &addr.to_string(), tweak).await
    }
}

/// The copies of the file `name` in `dir` that were moved aside as damaged (`<name>.bad-<time>`).
pub fn kept_aside(dir: &std::path::Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}.bad-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
}
