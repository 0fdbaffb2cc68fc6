//! Shared test helpers: an in-process server on an OS-assigned port and a Unix socket in a temp
//! dir, and a line client over TLS or the socket. Every wait sits under a timeout.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use clacks_server::config::User;
use clacks_server::{Config, Listeners, Server};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(10);
pub const ADMIN: (&str, &str) = ("admin", "adminpass");
pub const RW: (&str, &str) = ("rwuser", "rwpass");
pub const RO: (&str, &str) = ("rouser", "ropass");

pub fn token(user: &str, password: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!("{}:{}", b(user), b(password))
}

/// The config every test server starts from: admin + rw + ro users.
pub fn base_config() -> Config {
    let mut c = Config::with_user(ADMIN.0, ADMIN.1);
    c.users = vec![
        User {
            username: RW.0.into(),
            password: RW.1.into(),
            read: true,
            write: true,
            manage: false,
        },
        User {
            username: RO.0.into(),
            password: RO.1.into(),
            read: true,
            write: false,
            manage: false,
        },
    ];
    c
}

#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Tls,
    Unix,
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub addr: std::net::SocketAddr,
    pub socket: PathBuf,
    pub cert: Vec<u8>,
    pub stop: CancellationToken,
    pub handle: Option<JoinHandle<()>>,
    pub server: Server,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server; `tweak` may change the config (the data dir is `config.sockets[0]`'s dir).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, tweak).await
    }

    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        if !cert_path.exists() {
            let (cert, key) = clacks_server::tls::self_signed().unwrap();
            std::fs::write(&cert_path, cert).unwrap();
            std::fs::write(&key_path, key).unwrap();
        }
        let socket = dir.path().join("clacks.sock");
        let mut config = base_config();
        config.tls_cert = Some(cert_path.clone());
        config.tls_key = Some(key_path);
        tweak(&mut config);
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let unix = UnixListener::bind(&socket).unwrap();
        let listeners = Listeners {
            tcp: vec![tcp],
            unix: vec![(unix, socket.clone())],
        };
        let server = Server::new(config).unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(
            server
                .clone()
                .run(listeners, async move { s.cancelled().await }),
        );
        TestServer {
            cert: std::fs::read(&cert_path).unwrap(),
            dir,
            addr,
            socket,
            stop,
            handle: Some(handle),
            server,
        }
    }

    /// Stops the server and waits until it has finished (persistence saved, sockets removed).
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(WAIT, h).await.unwrap().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn connect(&self, transport: Transport) -> Client {
        match transport {
            Transport::Unix => {
                let s = tokio::time::timeout(WAIT, UnixStream::connect(&self.socket))
                    .await
                    .unwrap()
                    .unwrap();
                Client::new(s)
            }
            Transport::Tls => {
                let tcp = tokio::time::timeout(WAIT, TcpStream::connect(self.addr))
                    .await
                    .unwrap()
                    .unwrap();
                let s = tokio::time::timeout(
                    WAIT,
                    self.tls_connector()
                        .connect(ServerName::try_from("localhost").unwrap(), tcp),
                )
                .await
                .unwrap()
                .unwrap();
                Client::new(s)
            }
        }
    }

    pub fn tls_connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&self.cert) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// Connects, reads the greeting, names itself and logs in; `OVERHEAD O Welcome!` consumed.
    pub async fn login(&self, transport: Transport, user: (&str, &str)) -> Client {
        let mut c = self.connect(transport).await;
        c.expect_prefix("CLACKS ").await;
        c.expect("OVERHEAD M Authentication required").await;
        c.send(&format!("CLACKS test-{}", user.0)).await;
        c.send(&format!("OVERHEAD A {}", token(user.0, user.1)))
            .await;
        c.expect("OVERHEAD O Welcome!").await;
        c
    }
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Client {
    io: BufReader<Box<dyn Stream>>,
}

impl Client {
    pub fn new(s: impl Stream + 'static) -> Client {
        Client {
            io: BufReader::new(Box::new(s)),
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, async {
            self.io.get_mut().write_all(bytes).await?;
            self.io.get_mut().flush().await
        })
        .await
        .expect("send timed out")
        .expect("send failed");
    }

    /// The next line (without CR LF), skipping empty lines; `None` at EOF.
    pub async fn line(&mut self) -> Option<String> {
        self.line_within(WAIT)
            .await
            .expect("no line within the time limit")
    }

    /// Like `line`, but `Err` when nothing arrives within `wait`.
    pub async fn line_within(&mut self, wait: Duration) -> Result<Option<String>, ()> {
        loop {
            let mut buf = Vec::new();
            let n = match tokio::time::timeout(wait, self.io.read_until(b'\n', &mut buf)).await {
                Err(_) => return Err(()),
                Ok(Err(_)) => return Ok(None),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                return Ok(None);
            }
            let s = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            if !s.is_empty() {
                return Ok(Some(s));
            }
        }
    }

    pub async fn expect(&mut self, want: &str) {
        assert_eq!(self.line().await.as_deref(), Some(want));
    }

    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let l = self.line().await.expect("connection closed");
        assert!(l.starts_with(prefix), "expected {prefix:?}..., got {l:?}");
        l
    }

    /// Sends FLUSH and returns every line before its FLUSHED.
    pub async fn until_flushed(&mut self, id: &str) -> Vec<String> {
        self.send(&format!("FLUSH {id}")).await;
        let want = format!("FLUSHED {id}");
        let mut out = Vec::new();
        loop {
            let l = self.line().await.expect("closed before FLUSHED");
            if l == want {
                return out;
            }
            out.push(l);
        }
    }

    /// Asserts that nothing but `FLUSHED` arrives: round-trips a FLUSH.
    pub async fn expect_nothing(&mut self) {
        assert_eq!(self.until_flushed("quiet").await, Vec::<String>::new());
    }

    /// Asserts the connection is closed (EOF), after optionally consuming lines.
    pub async fn expect_closed(&mut self) {
        assert_eq!(self.line().await, None);
    }
}
