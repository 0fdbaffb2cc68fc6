//! Connections and the three protocols: opening a stream, logging in, encoding requests and
//! counting complete replies in a read buffer.

use anyhow::{bail, Context as _};
use base64::Engine as _;
use bytes::BytesMut;
use clacks_client::{Stream, Target, TlsVerify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proto {
    /// The Clacks line protocol (clacksd, Net::Clacks).
    Clacks,
    /// Redis RESP.
    Redis,
    /// memcached text protocol.
    Memcached,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) proto: Proto,
    pub(crate) target: String,
    pub(crate) user: String,
    pub(crate) password: String,
}

pub(crate) type Conn = Box<dyn Stream>;

impl Endpoint {
    /// Opens a connection and, for Clacks, logs in. Returns the stream and the greeting info.
    pub(crate) async fn connect(&self) -> anyhow::Result<(Conn, BytesMut)> {
        let mut stream: Conn = if let Some(path) = self.target.strip_prefix("unix:") {
            Box::new(
                connect_unix(path)
                    .await
                    .with_context(|| self.target.clone())?,
            )
        } else if let Some(addr) = self.target.strip_prefix("tcp:") {
            let s = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| self.target.clone())?;
            s.set_nodelay(true)?;
            Box::new(s)
        } else if let Some(addr) = self.target.strip_prefix("tls:") {
            let (host, port) = addr.rsplit_once(':').context("tls:HOST:PORT")?;
            let target = Target::Tls {
                host: host.to_string(),
                port: port.parse().context("port")?,
                verify: TlsVerify::None,
            };
            clacks_client::connect_stream(&target).await?
        } else {
            bail!("target must be unix:PATH, tcp:HOST:PORT or tls:HOST:PORT");
        };
        let mut buf = BytesMut::with_capacity(64 * 1024);
        if self.proto == Proto::Clacks {
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            let hello = format!(
                "CLACKS clacks-bench\r\nOVERHEAD A {}:{}\r\n",
                b64(&self.user),
                b64(&self.password)
            );
            stream.write_all(hello.as_bytes()).await?;
            stream.flush().await?;
            loop {
                if let Some(pos) = find(&buf, b"OVERHEAD O ") {
                    let end = memchr::memchr(b'\n', &buf[pos..]).map(|e| pos + e + 1);
                    if let Some(end) = end {
                        let _ = buf.split_to(end);
                        break;
                    }
                }
                if find(&buf, b"OVERHEAD F ").is_some() {
                    bail!("login failed");
                }
                if stream.read_buf(&mut buf).await? == 0 {
                    bail!("closed during login");
                }
            }
        }
        Ok((stream, buf))
    }

    /// The server's name and version.
    pub(crate) async fn version(&self) -> anyhow::Result<String> {
        let (request, prefix): (&[u8], &[u8]) = match self.proto {
            Proto::Clacks => return greeting(&self.target).await,
            Proto::Redis => (b"INFO server\r\n", b"redis_version:"),
            Proto::Memcached => (b"version\r\n", b"VERSION "),
        };
        let (mut s, mut buf) = self.connect().await?;
        s.write_all(request).await?;
        loop {
            if let Some(pos) = find(&buf, prefix) {
                if let Some(end) = memchr::memchr(b'\r', &buf[pos..]) {
                    let v = &buf[pos + prefix.len()..pos + end];
                    let name = if self.proto == Proto::Redis {
                        "redis "
                    } else {
                        "memcached "
                    };
                    return Ok(format!("{name}{}", String::from_utf8_lossy(v)));
                }
            }
            if s.read_buf(&mut buf).await? == 0 {
                bail!("closed before the version");
            }
        }
    }
}

async fn greeting(target: &str) -> anyhow::Result<String> {
    let raw = Endpoint {
        proto: Proto::Memcached,
        target: target.to_string(),
        user: String::new(),
        password: String::new(),
    };
    let (mut s, mut buf) = raw.connect().await?;
    loop {
        if let Some(end) = memchr::memchr(b'\r', &buf) {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok(line.trim_start_matches("CLACKS ").to_string());
        }
        if s.read_buf(&mut buf).await? == 0 {
            bail!("closed before the greeting");
        }
    }
}

/// Connects to a Unix socket, retrying while the server's listen backlog is full.
async fn connect_unix(path: &str) -> std::io::Result<tokio::net::UnixStream> {
    let mut tries = 0;
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 200 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Appends a subscription request for `channel`.
pub(crate) fn subscribe(proto: Proto, channel: &str, out: &mut Vec<u8>) {
    match proto {
        Proto::Clacks => out.extend_from_slice(format!("LISTEN {channel}\r\n").as_bytes()),
        Proto::Redis => out.extend_from_slice(
            format!(
                "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
                channel.len()
            )
            .as_bytes(),
        ),
        Proto::Memcached => {}
    }
}

/// Appends a publish of `payload` on `channel`.
pub(crate) fn publish(proto: Proto, channel: &str, payload: &[u8], out: &mut Vec<u8>) {
    match proto {
        Proto::Clacks => {
            out.extend_from_slice(b"SET ");
            out.extend_from_slice(channel.as_bytes());
            out.push(b'=');
            out.extend_from_slice(payload);
            out.extend_from_slice(b"\r\n");
        }
        Proto::Redis => {
            out.extend_from_slice(
                format!(
                    "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n",
                    channel.len(),
                    payload.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(payload);
            out.extend_from_slice(b"\r\n");
        }
        Proto::Memcached => {}
    }
}

/// Appends a cache read of `key`.
pub(crate) fn get(proto: Proto, key: &str, out: &mut Vec<u8>) {
    match proto {
        Proto::Clacks => out.extend_from_slice(format!("RETRIEVE {key}\r\n").as_bytes()),
        Proto::Redis => out.extend_from_slice(
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
        ),
        Proto::Memcached => out.extend_from_slice(format!("get {key}\r\n").as_bytes()),
    }
}

/// Appends a cache write. Returns whether the server answers it.
pub(crate) fn set(proto: Proto, key: &str, value: &[u8], out: &mut Vec<u8>) -> bool {
    match proto {
        Proto::Clacks => {
            out.extend_from_slice(format!("STORE {key}=").as_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            false
        }
        Proto::Redis => {
            out.extend_from_slice(
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                    key.len(),
                    value.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            true
        }
        Proto::Memcached => {
            out.extend_from_slice(format!("set {key} 0 0 {}\r\n", value.len()).as_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            true
        }
    }
}

/// Appends a barrier that the server answers (Clacks `FLUSH`; others need none).
pub(crate) fn barrier(proto: Proto, out: &mut Vec<u8>) -> bool {
    if proto == Proto::Clacks {
        out.extend_from_slice(b"FLUSH b\r\n");
        return true;
    }
    false
}

/// Appends a Redis command: an array of bulk strings.
pub(crate) fn command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// What a RESP value is, by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespKind {
    /// `+…`
    Simple,
    /// `-…`
    Error,
    /// `:…`
    Integer,
    /// `$…` with data.
    Bulk,
    /// `*…` with elements.
    Array,
    /// `$-1` or `*-1`.
    Null,
}

/// The first complete RESP value in `buf`: its length in bytes and its kind, with the data of
/// every bulk string inside it appended to `bulks`, in order (as ranges of `buf`). `None` while
/// it is incomplete (then `bulks` may hold a part: clear it before the next try).
pub(crate) fn resp_value(
    buf: &[u8],
    bulks: &mut Vec<std::ops::Range<usize>>,
) -> Option<(usize, RespKind)> {
    let end = resp_walk(buf, 0, bulks)?;
    let kind = match buf[0] {
        b'+' => RespKind::Simple,
        b'-' => RespKind::Error,
        b':' => RespKind::Integer,
        b'$' | b'*' if buf[1] == b'-' => RespKind::Null,
        b'$' => RespKind::Bulk,
        _ => RespKind::Array,
    };
    Some((end, kind))
}

/// The end of the RESP value that starts at `pos`, or `None` if it is incomplete.
fn resp_walk(buf: &[u8], pos: usize, bulks: &mut Vec<std::ops::Range<usize>>) -> Option<usize> {
    let nl = pos + memchr::memchr(b'\n', buf.get(pos..)?)?;
    let head = buf[pos + 1..nl]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[pos + 1..nl]);
    let next = nl + 1;
    let count = || -> i64 {
        std::str::from_utf8(head)
            .ok()
            .and_then(|h| h.parse().ok())
            .unwrap_or(-1)
    };
    match buf[pos] {
        b'$' => {
            let Ok(len) = usize::try_from(count()) else {
                return Some(next);
            };
            if buf.len() < next + len + 2 {
                return None;
            }
            bulks.push(next..next + len);
            Some(next + len + 2)
        }
        b'*' => {
            let mut p = next;
            for _ in 0..count().max(0) {
                p = resp_walk(buf, p, bulks)?;
            }
            Some(p)
        }
        _ => Some(next),
    }
}

/// Removes complete replies from `buf`; returns how many. A reply is one line, except for a
/// memcached `VALUE` (until `END`) and a Redis bulk string (length line plus data).
pub(crate) fn take_replies(proto: Proto, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
        let line = &buf[pos..pos + nl];
        let mut end = pos + nl + 1;
        match proto {
            Proto::Memcached if line.starts_with(b"VALUE ") => {
                let Some(e) = find(&buf[end..], b"END\r\n") else {
                    break;
                };
                end += e + 5;
            }
            Proto::Redis if line.starts_with(b"$") && !line.starts_with(b"$-1") => {
                let len: usize = std::str::from_utf8(&line[1..])
                    .ok()
                    .and_then(|s| s.trim_end().parse().ok())
                    .unwrap_or(0);
                if buf.len() < end + len + 2 {
                    break;
                }
                end += len + 2;
            }
            _ => {}
        }
        pos = end;
        n += 1;
    }
    let _ = buf.split_to(pos);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_counted_whole() {
        let mut b =
            BytesMut::from(&b"VALUE k 0 3\r\nabc\r\nEND\r\nSTORED\r\nEND\r\nVALUE k 0 3\r\nab"[..]);
        assert_eq!(take_replies(Proto::Memcached, &mut b), 3);
        assert_eq!(&b[..], b"VALUE k 0 3\r\nab");
        let mut b = BytesMut::from(&b"$3\r\nabc\r\n$-1\r\n+OK\r\n$5\r\nab"[..]);
        assert_eq!(take_replies(Proto::Redis, &mut b), 3);
        let mut b = BytesMut::from(&b"RETRIEVED k=v\r\nNOTRETRIEVED x\r\nFLU"[..]);
        assert_eq!(take_replies(Proto::Clacks, &mut b), 2);
    }

    #[test]
    fn resp_values_are_walked_whole() {
        let mut bulks = Vec::new();
        let stream = b"*1\r\n*2\r\n$1\r\nq\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nd\r\n$4\r\nab\r\n\r\n:1\r\n";
        let (len, kind) = resp_value(stream, &mut bulks).unwrap();
        assert_eq!(kind, RespKind::Array);
        let parts: Vec<&[u8]> = bulks.iter().map(|r| &stream[r.clone()]).collect();
        assert_eq!(parts, [&b"q"[..], b"1-0", b"d", b"ab\r\n"]);
        assert_eq!(
            resp_value(&stream[len..], &mut bulks).unwrap(),
            (4, RespKind::Integer)
        );
        for cut in 0..len {
            bulks.clear();
            assert!(resp_value(&stream[..cut], &mut bulks).is_none(), "{cut}");
        }
        assert_eq!(
            resp_value(b"*-1\r\n", &mut bulks).unwrap(),
            (5, RespKind::Null)
        );
        assert_eq!(
            resp_value(b"$-1\r\n", &mut bulks).unwrap(),
            (5, RespKind::Null)
        );
        assert_eq!(
            resp_value(b"-ERR x\r\n", &mut bulks).unwrap(),
            (8, RespKind::Error)
        );
        let mut out = Vec::new();
        command(&[b"BRPOP", b"q", b"0"], &mut out);
        assert_eq!(out, b"*3\r\n$5\r\nBRPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
    }
}
