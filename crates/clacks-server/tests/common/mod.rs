//! Shared test helpers: an in-process server on an OS-assigned port and a Unix socket in a temp
//! dir, and a line client over TLS or the socket. Every wait sits under a timeout.
#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

pub mod relay;

pub use clacks_server::testing::{base_config, token, TestServer, ADMIN, RO, RW};

pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Tls,
    Unix,
}

/// Raw line connections to a test server.
pub trait Connect {
    async fn connect(&self, transport: Transport) -> Client;
    async fn login(&self, transport: Transport, user: (&str, &str)) -> Client;
}

impl Connect for TestServer {
    async fn connect(&self, transport: Transport) -> Client {
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
                let name = ServerName::try_from("localhost").unwrap();
                let s = tokio::time::timeout(WAIT, tls_connector(&self.cert).connect(name, tcp))
                    .await
                    .unwrap()
                    .unwrap();
                Client::new(s)
            }
        }
    }

    /// Connects, reads the greeting, names itself and logs in; `OVERHEAD O Welcome!` consumed.
    async fn login(&self, transport: Transport, user: (&str, &str)) -> Client {
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

/// A TLS connector trusting exactly the test server's certificate.
pub fn tls_connector(cert: &std::path::Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
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

    /// The next non-empty line as raw bytes (without CR LF); `None` at EOF.
    pub async fn line_bytes(&mut self) -> Option<Vec<u8>> {
        loop {
            let mut buf = Vec::new();
            let n = tokio::time::timeout(WAIT, self.io.read_until(b'\n', &mut buf))
                .await
                .expect("no line within the time limit")
                .ok()?;
            if n == 0 {
                return None;
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if !buf.is_empty() {
                return Some(buf);
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

/// The value of `key` (`None` when not retrievable).
pub async fn value(c: &mut Client, key: &str) -> Option<String> {
    c.send(&format!("RETRIEVE {key}")).await;
    let line = c.line().await.unwrap();
    line.strip_prefix(&format!("RETRIEVED {key}="))
        .map(str::to_string)
}

/// Waits until `key` has `want` on `server` (replication is asynchronous).
pub async fn eventually(server: &TestServer, key: &str, want: Option<&str>) {
    let mut c = server.login(Transport::Unix, ADMIN).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = value(&mut c, key).await;
        if got.as_deref() == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} on {:?}: {got:?}, want {want:?}",
            server.socket
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many interclacks links the server of `c` lists.
pub async fn link_count(c: &mut Client) -> usize {
    c.send("CLIENTLIST").await;
    c.until_flushed("l")
        .await
        .iter()
        .filter(|l| l.contains("INTERCLACKS=1;"))
        .count()
}

/// Waits until `server` lists `n` interclacks links.
pub async fn links(server: &TestServer, n: usize) {
    let mut c = server.login(Transport::Unix, ADMIN).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = link_count(&mut c).await;
        if got == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} links, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `server`, a slave, forwards queue and registry commands to its master: from
/// when its link is synced (until then they are refused as unavailable).
pub async fn routed(server: &TestServer) {
    let mut c = server.login(Transport::Unix, ADMIN).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        c.send("QSTAT Routed::probe").await;
        let line = c.line().await.expect("connection closed");
        if line.starts_with("QSTATS ") {
            return;
        }
        assert!(line.contains("queue_unavailable"), "{line}");
        assert!(tokio::time::Instant::now() < deadline, "{line}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(id, value)` of a `QMESSAGE <queue> <id>=<value>` line.
pub fn message(line: &str, queue: &str) -> (String, String) {
    let rest = line
        .strip_prefix(&format!("QMESSAGE {queue} "))
        .unwrap_or_else(|| panic!("not a message of {queue}: {line}"));
    let (id, value) = rest.split_once('=').unwrap();
    (id.to_string(), value.to_string())
}
