//! The memcached text protocol listener: byte-for-byte conformance with a real memcached, an
//! unchanged client library, the cache shared with Clacks, replication, limits.
//!
//! The tests that need a real memcached or pymemcache skip (with a message) where they are not
//! installed, unless `CLACKS_REQUIRE_PEERS` is set, as `.ci/run` does.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use clacks_server::config::Master;
use common::{Client, Connect, TestServer, Transport, ADMIN, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// A raw memcached protocol connection.
struct Mc {
    stream: Box<dyn common::Stream>,
    buf: Vec<u8>,
}

impl Mc {
    async fn unix(path: &Path) -> Mc {
        let s = tokio::time::timeout(WAIT, UnixStream::connect(path))
            .await
            .unwrap()
            .unwrap();
        Mc {
            stream: Box::new(s),
            buf: Vec::new(),
        }
    }

    async fn tcp(server: &TestServer) -> Mc {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(server.memcached))
            .await
            .unwrap()
            .unwrap();
        Mc {
            stream: Box::new(s),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    /// Reads until the input ends with `end` (or EOF, marked `<EOF>`); returns what came.
    async fn read_until(&mut self, end: impl Fn(&[u8]) -> Option<usize>) -> Vec<u8> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(n) = end(&self.buf) {
                    return self.buf.drain(..n).collect();
                }
                let mut chunk = vec![0u8; 1 << 16];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        let mut all: Vec<u8> = self.buf.drain(..).collect();
                        all.extend_from_slice(b"<EOF>");
                        return all;
                    }
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("no reply within the time limit")
    }

    /// Sends `request` followed by `version`, returns everything before the `VERSION` line.
    async fn step(&mut self, request: &[u8]) -> Vec<u8> {
        let mut bytes = request.to_vec();
        bytes.extend_from_slice(b"version\r\n");
        self.send(&bytes).await;
        let mut out = self.read_until(version_end).await;
        if let Some(i) = version_start(&out) {
            out.truncate(i);
        }
        out
    }

    /// One request and its reply (for requests answered with a single line or ending in `END`).
    async fn ask(&mut self, request: &[u8]) -> String {
        String::from_utf8_lossy(&self.step(request).await).into_owned()
    }
}

/// Where a complete trailing `VERSION …\r\n` line starts.
fn version_start(buf: &[u8]) -> Option<usize> {
    if !buf.ends_with(b"\r\n") {
        return None;
    }
    let body = &buf[..buf.len() - 2];
    let start = body
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(0, |i| i + 2);
    buf[start..].starts_with(b"VERSION ").then_some(start)
}

fn version_end(buf: &[u8]) -> Option<usize> {
    version_start(buf).map(|_| buf.len())
}

/// Whether tests must fail (rather than skip) when a peer program is missing.
fn peers_required() -> bool {
    std::env::var_os("CLACKS_REQUIRE_PEERS").is_some()
}

fn skip(what: &str) {
    assert!(
        !peers_required(),
        "{what} is required (CLACKS_REQUIRE_PEERS is set)"
    );
    eprintln!("SKIPPED: {what} is not installed (see .ci/run)");
}

/// A real memcached on a Unix socket in a temp dir, killed when dropped.
struct RealMemcached {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for RealMemcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealMemcached {
    async fn start() -> Option<RealMemcached> {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("memcached.sock");
        let mut cmd = Command::new("memcached");
        cmd.arg("-s")
            .arg(&socket)
            .args(["-t", "1", "-m", "64"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(_) => {
                skip("memcached");
                return None;
            }
        };
        let real = RealMemcached {
            child,
            socket,
            _dir: dir,
        };
        // Ready when its socket accepts a connection.
        tokio::time::timeout(WAIT, async {
            while UnixStream::connect(&real.socket).await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("memcached did not start");
        Some(real)
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Pauses both servers' clocks: the step after it needs time to pass (expiry).
const PAUSE: &[u8] = b"<pause>";

/// The conformance script: every step goes to both servers, replies must be equal.
fn script() -> Vec<Vec<u8>> {
    let mut s: Vec<Vec<u8>> = [
        // storage commands, get/gets, cas uniques
        &b"set k 3 0 3\r\nabc\r\n"[..],
        b"get k\r\n",
        b"gets k\r\n",
        b"append k 9 9 2\r\nde\r\n",
        b"prepend k 9 9 2\r\nxy\r\n",
        b"gets k\r\n",
        b"cas k 1 0 1 999\r\nz\r\n",
        b"cas k 1 0 1 3\r\nz\r\n",
        b"gets k\r\n",
        b"cas k 2 0 1 4 noreply\r\ny\r\n",
        b"cas k 2 0 1 4 noreply\r\ny\r\n",
        b"gets k\r\n",
        b"cas q 1 0 1 1\r\nz\r\n",
        b"append q 0 0 1\r\nz\r\n",
        b"prepend q 0 0 1\r\nz\r\n",
        b"replace zz 0 0 1\r\nz\r\n",
        b"add k 0 0 1\r\nz\r\n",
        b"add q 0 0 1\r\nz\r\n",
        b"replace q 7 0 1\r\ny\r\n",
        b"get k q zz k\r\n",
        b"gets k q\r\n",
        b"set k 0 0 1 noreply\r\nz\r\n",
        b"add k 0 0 1 noreply\r\nz\r\n",
        b"set k 0 0 1 garbage\r\nz\r\n",
        b"get k\r\n",
        // flags are unsigned 32-bit, truncated like memcached does
        b"set f 4294967295 0 1\r\nx\r\n",
        b"get f\r\n",
        b"set f 4294967297 0 1\r\nx\r\n",
        b"get f\r\n",
        b"set f 1\t 0 1\r\nx\r\n",
        b"get f\r\n",
        // delete
        b"delete zz\r\n",
        b"delete k noreply extra\r\n",
        b"delete k 5\r\n",
        b"delete k 0\r\n",
        b"delete k\r\n",
        b"set k 0 0 1\r\nz\r\n",
        b"delete k noreply\r\n",
        b"get k\r\n",
        // incr/decr
        b"set n 5 0 3\r\n100\r\n",
        b"decr n 1\r\n",
        b"gets n\r\n",
        b"incr n 18446744073709551615\r\n",
        b"decr n 1000\r\n",
        b"gets n\r\n",
        b"incr n 12345678901\r\n",
        b"gets n\r\n",
        b"incr n abc\r\n",
        b"incr n -1\r\n",
        b"incr n 99999999999999999999\r\n",
        b"incr zz 1\r\n",
        b"decr zz 1\r\n",
        b"incr n 1 noreply\r\n",
        b"incr n\r\n",
        b"incr n 1 2\r\n",
        b"incr n 5\tz\r\n",
        b"decr n +3\r\n",
        b"decr n -0\r\n",
        b"set s 0 0 2\r\n 5\r\n",
        b"incr s 1\r\n",
        b"set s 0 0 2\r\n-5\r\n",
        b"incr s 1\r\n",
        b"set s 0 0 0\r\n\r\n",
        b"incr s 1\r\n",
        b"get s\r\n",
        b"set s 0 0 5\r\n12abc\r\n",
        b"decr s 1\r\n",
        b"set s 0 0 21\r\n000000000000000000001\r\n",
        b"incr s 1\r\n",
        b"gets s\r\n",
        // touch, gat, gats, expiry
        b"touch n 10\r\n",
        b"touch zz 10\r\n",
        b"touch n 10 noreply\r\n",
        b"touch n\r\n",
        b"touch n abc\r\n",
        b"gat 0 n zz s\r\n",
        b"gats 100 n\r\n",
        b"gat n\r\n",
        b"gat abc n\r\n",
        b"gat 0\r\n",
        b"set e 0 -1 1\r\nx\r\n",
        b"get e\r\n",
        b"set e 0 1000000000 1\r\nx\r\n",
        b"get e\r\n",
        b"set e 0 4000000000 1\r\nx\r\n",
        b"get e\r\n",
        b"set e 0 4102444800 1\r\nx\r\n",
        b"get e\r\n",
        b"touch e -1\r\n",
        b"get e\r\n",
        b"set t 0 2 1\r\nt\r\n",
        b"set u 0 0 1\r\nu\r\n",
        b"gat 2 u\r\n",
        b"get t u\r\n",
        PAUSE,
        b"get t u\r\n",
        // values with line breaks and binary bytes
        b"set ml 0 0 9\r\nab\r\ncd\nef\r\n",
        b"gets ml\r\n",
        b"append ml 0 0 2\r\n\r\n\r\n",
        b"get ml\r\n",
        b"set bin 0 0 4\r\n\x00\x01\xff\x7f\r\n",
        b"get bin\r\n",
        b"set pf 0 0 21\r\nPAGECAMELCLACKSB64:xy\r\n",
        b"get pf\r\n",
        // keys
        b"set a 0 0 1\r\nx\r\n",
        b"get a a\r\n",
        b"  get   a  \r\n",
        b"get a\n",
        b"get a\x00b\r\n",
        // bad input
        b"set k 0 0 3\r\nabcdefgh\r\n",
        b"set k 0 0 -1\r\n",
        b"set k 0 0 abc\r\nabc\r\n",
        b"set g 0 0 abc noreply\r\nxy\r\n",
        b"set g 0 0 1 noreply\r\nxy\r\n",
        b"set g 0 0 4294967299\r\nabc\r\n",
        b"gets g\r\n",
        b"set f -1 0 1\r\nx\r\n",
        b"set k\r\n",
        b"set k 0 0 1 noreply extra\r\nz\r\n",
        b"cas k 0 0 1\r\nz\r\n",
        b"cas k 0 0 1 abc\r\nz\r\n",
        b"\r\n",
        b"\n",
        b"x\r\n",
        b"bogus\r\n",
        b"GET k\r\n",
        b"get\r\n",
        b"verbosity\r\n",
        b"verbosity 1\r\n",
        b"verbosity 1 noreply\r\n",
        b"verbosity x\r\n",
        b"verbosity x noreply\r\n",
        b"stats nosuchgroup\r\n",
        b"stats reset\r\n",
        // flush_all
        b"set p 0 0 1\r\np\r\n",
        b"flush_all 0\r\n",
        b"get p a\r\n",
        b"set p 0 0 1\r\np\r\n",
        b"flush_all abc\r\n",
        b"flush_all 0 0\r\n",
        b"flush_all noreply\r\n",
        b"flush_all -1\r\n",
        b"gets p\r\n",
        b"set p 0 0 1\r\np\r\n",
        b"gets p\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    // Key length: 250 is fine, 251 is not (and the data line is then read as a command).
    let (k250, k251) = ("y".repeat(250), "x".repeat(251));
    for step in [
        format!("set {k250} 0 0 1\r\nx\r\n"),
        format!("get {k250}\r\n"),
        format!("get a {k251} a\r\n"),
        format!("set {k251} 0 0 3\r\nabc\r\n"),
        format!("incr {k251} 1\r\n"),
        format!("touch {k251} 1\r\n"),
        format!("delete {k251}\r\n"),
    ] {
        s.push(step.into_bytes());
    }
    // Big items: 600 KB is stored, 2 MB is refused (and `set` drops the old value).
    let mut big = b"set big 0 0 600000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'b', 600_000));
    big.extend_from_slice(b"\r\n");
    s.push(big);
    s.push(b"gets big\r\n".to_vec());
    let mut huge = b"set big 0 0 2000000\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'h', 2_000_000));
    huge.extend_from_slice(b"\r\n");
    s.push(huge.clone());
    s.push(b"get big\r\n".to_vec());
    huge[..3].copy_from_slice(b"add");
    s.push(b"set big 0 0 1\r\nb\r\n".to_vec());
    s.push(huge);
    s.push(b"get big\r\n".to_vec());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_match_a_real_memcached_byte_for_byte() {
    let Some(real) = RealMemcached::start().await else {
        return;
    };
    let ours = TestServer::start().await;
    let mut theirs = Mc::unix(&real.socket).await;
    let mut mine = Mc::unix(&ours.memcached_socket).await;

    for (i, step) in script().iter().enumerate() {
        if step == PAUSE {
            // Items set with a 2 s lifetime must be gone after this (real time: memcached's
            // clock cannot be moved).
            tokio::time::sleep(Duration::from_millis(3200)).await;
            continue;
        }
        let want = theirs.step(step).await;
        let got = mine.step(step).await;
        assert!(
            want == got,
            "step {i}: {:?}\nmemcached: {:?}\nclacksd:   {:?}",
            String::from_utf8_lossy(&step[..step.len().min(80)]),
            String::from_utf8_lossy(&want[..want.len().min(300)]),
            String::from_utf8_lossy(&got[..got.len().min(300)]),
        );
    }

    // `stats`: the same shape, the values differ. Every counter tools read is there.
    let names = |reply: String| -> Vec<String> {
        let mut lines = reply.lines();
        let mut names = Vec::new();
        for l in lines.by_ref() {
            if l == "END" {
                break;
            }
            let mut parts = l.splitn(3, ' ');
            assert_eq!(parts.next(), Some("STAT"), "{l:?}");
            names.push(parts.next().unwrap().to_string());
            assert!(parts.next().is_some(), "{l:?}");
        }
        names
    };
    let theirs_names = names(theirs.ask(b"stats\r\n").await);
    let mine_names = names(mine.ask(b"stats\r\n").await);
    for n in &mine_names {
        assert!(theirs_names.contains(n), "memcached has no stat {n}");
    }
    for n in [
        "pid",
        "uptime",
        "time",
        "version",
        "curr_connections",
        "total_connections",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "curr_items",
        "bytes",
    ] {
        assert!(mine_names.iter().any(|m| m == n), "stat {n} missing");
    }

    // `version` only differs in its text; `quit` and an HTTP request close the connection.
    assert!(mine.ask(b"").await.is_empty());
    let mut closed = Vec::new();
    for mc in [&mut theirs, &mut mine] {
        mc.send(b"set q 0 0 1\r\nq\r\nget q\r\nquit\r\nget q\r\n")
            .await;
        closed.push(mc.read_until(|_| None).await);
    }
    assert_eq!(closed[0], b"STORED\r\nVALUE q 0 1\r\nq\r\nEND\r\n<EOF>");
    assert_eq!(closed[0], closed[1]);
    let mut theirs = Mc::unix(&real.socket).await;
    let mut mine = Mc::unix(&ours.memcached_socket).await;
    for mc in [&mut theirs, &mut mine] {
        mc.send(b"GET / HTTP/1.1\r\n").await;
        assert_eq!(mc.read_until(|_| None).await, b"<EOF>");
    }
}

/// The Python interpreter that has pymemcache, if any.
fn python_with_pymemcache() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import pymemcache"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

const PYMEMCACHE_SCRIPT: &str = r#"
import sys
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])), connect_timeout=5, timeout=5)
assert c.set("greeting", "hello") is True
assert c.get("greeting") == b"hello"
assert c.set("lines", b"one\r\ntwo\n") is True
assert c.get("lines") == b"one\r\ntwo\n"
assert c.add("greeting", "x", noreply=False) is False
assert c.replace("missing", "x", noreply=False) is False
assert c.append("greeting", " world", noreply=False) is True
assert c.prepend("greeting", "oh, ", noreply=False) is True
assert c.get("greeting") == b"oh, hello world"
assert c.get_many(["greeting", "nope", "lines"]) == {"greeting": b"oh, hello world", "lines": b"one\r\ntwo\n"}
assert c.set_many({"a": "1", "b": "2"}) == []
value, cas = c.gets("a")
assert value == b"1"
assert c.cas("a", "10", cas) is True
assert c.cas("a", "11", cas) is False
assert c.cas("nope", "1", 1) is None
assert c.incr("a", 5) == 15
assert c.decr("a", 20) == 0
assert c.incr("nope", 1) is None
assert c.touch("a", 100, noreply=False) is True
assert c.delete("a", noreply=False) is True
assert c.delete("a", noreply=False) is False
assert c.get("a") is None
assert c.gets_many(["b"])["b"][0] == b"2"
assert c.delete_many(["b", "greeting"]) is True
stats = c.stats()
assert stats[b"get_hits"] >= 4, stats
assert c.version()
assert c.flush_all(noreply=False) is True
assert c.get("lines") is None
c.quit()
print("pymemcache ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_client_library_works() {
    let Some(python) = python_with_pymemcache() else {
        skip("pymemcache (Debian python3-pymemcache)");
        return;
    };
    let server = TestServer::start().await;
    let port = server.memcached.port().to_string();
    let script = PYMEMCACHE_SCRIPT;
    let out = tokio::time::timeout(
        WAIT * 3,
        tokio::task::spawn_blocking(move || {
            Command::new(python)
                .args(["-c", script, &port])
                .output()
                .unwrap()
        }),
    )
    .await
    .expect("pymemcache script timed out")
    .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pymemcache ok");
}

async fn retrieve(c: &mut Client, key: &str) -> String {
    c.send(&format!("RETRIEVE {key}")).await;
    c.line().await.unwrap()
}

#[tokio::test]
async fn one_cache_for_both_protocols() {
    let server = TestServer::start().await;
    let mut mc = Mc::tcp(&server).await;
    let mut clacks = server.login(Transport::Unix, ADMIN).await;

    // memcached set → Clacks RETRIEVE; Clacks STORE → memcached get (flags 0).
    assert_eq!(
        mc.ask(b"set greeting 5 0 5\r\nhello\r\n").await,
        "STORED\r\n"
    );
    assert_eq!(
        retrieve(&mut clacks, "greeting").await,
        "RETRIEVED greeting=hello"
    );
    clacks.send("STORE plain=from clacks").await;
    assert_eq!(
        mc.ask(b"get plain greeting\r\n").await,
        "VALUE plain 0 11\r\nfrom clacks\r\nVALUE greeting 5 5\r\nhello\r\nEND\r\n"
    );

    // Line breaks: the ClacksCache encoding for Clacks clients, the bytes for memcached ones.
    assert_eq!(
        mc.ask(b"set ml 0 0 8\r\na\r\nb\nc d\r\n").await,
        "STORED\r\n"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode("a\r\nb\nc d");
    assert_eq!(
        retrieve(&mut clacks, "ml").await,
        format!("RETRIEVED ml=PAGECAMELCLACKSB64:{b64}")
    );
    let text = base64::engine::general_purpose::STANDARD.encode("x\ny");
    clacks
        .send(&format!("STORE fromperl=PAGECAMELCLACKSB64:{text}"))
        .await;
    assert_eq!(
        mc.ask(b"get fromperl\r\n").await,
        "VALUE fromperl 0 3\r\nx\ny\r\nEND\r\n"
    );

    // Numbers both ways.
    clacks.send("STORE counter=41").await;
    assert_eq!(mc.ask(b"incr counter 1\r\n").await, "42\r\n");
    clacks.send("INCREMENT counter=8").await;
    assert_eq!(
        mc.ask(b"get counter\r\n").await,
        "VALUE counter 0 2\r\n50\r\nEND\r\n"
    );

    // delete leaves a tombstone.
    assert_eq!(mc.ask(b"delete greeting\r\n").await, "DELETED\r\n");
    assert_eq!(
        retrieve(&mut clacks, "greeting").await,
        "NOTRETRIEVED greeting"
    );
    clacks.send("KEYLIST").await;
    let keys = clacks.until_flushed("k").await;
    assert!(keys.contains(&"KEY greeting".to_string()), "{keys:?}");
    clacks.send("REMOVE plain").await;
    assert_eq!(mc.ask(b"get plain\r\n").await, "END\r\n");

    // Expired memcached items are gone for Clacks too.
    assert_eq!(mc.ask(b"set old 0 -1 1\r\nx\r\n").await, "STORED\r\n");
    assert_eq!(retrieve(&mut clacks, "old").await, "NOTRETRIEVED old");

    // Keys a Clacks line cannot carry are refused, and their data is not read as commands.
    assert_eq!(
        mc.ask(b"set a=b 0 0 9\r\nflush_all\r\n").await,
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        mc.ask(b"set a\tb 0 0 1\r\nx\r\nget a=b\r\n").await,
        "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        mc.ask(b"get counter\r\n").await,
        "VALUE counter 0 2\r\n50\r\nEND\r\n"
    );
}

#[tokio::test]
async fn memcached_writes_replicate_through_interclacks() {
    let master = TestServer::start().await;
    let slave = TestServer::start_with(|c| {
        c.master = Some(Master::Unix(master.socket.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(500);
    })
    .await;
    let mut on_master = Mc::tcp(&master).await;
    let mut on_slave = Mc::tcp(&slave).await;

    // A write before the link exists arrives with the sync, later ones as they happen.
    assert_eq!(
        on_master.ask(b"set early 0 0 1\r\ne\r\n").await,
        "STORED\r\n"
    );
    eventually(
        &mut on_slave,
        b"get early\r\n",
        "VALUE early 0 1\r\ne\r\nEND\r\n",
    )
    .await;
    assert_eq!(
        on_slave.ask(b"set k 0 0 5\r\nvalue\r\n").await,
        "STORED\r\n"
    );
    eventually(
        &mut on_master,
        b"get k\r\n",
        "VALUE k 0 5\r\nvalue\r\nEND\r\n",
    )
    .await;
    let mut clacks = master.login(Transport::Unix, ADMIN).await;
    assert_eq!(retrieve(&mut clacks, "k").await, "RETRIEVED k=value");

    assert_eq!(on_slave.ask(b"set n 0 0 2\r\n10\r\n").await, "STORED\r\n");
    assert_eq!(on_slave.ask(b"incr n 5\r\n").await, "15\r\n");
    eventually(&mut on_master, b"get n\r\n", "VALUE n 0 2\r\n15\r\nEND\r\n").await;
    assert_eq!(
        on_master.ask(b"append n 0 0 1\r\n0\r\n").await,
        "STORED\r\n"
    );
    eventually(&mut on_slave, b"get n\r\n", "VALUE n 0 3\r\n150\r\nEND\r\n").await;

    assert_eq!(on_master.ask(b"delete k\r\n").await, "DELETED\r\n");
    eventually(&mut on_slave, b"get k\r\n", "END\r\n").await;

    // Multi-line values cross the link in their Clacks form and come out whole.
    assert_eq!(
        on_slave.ask(b"set ml 0 0 4\r\na\r\nb\r\n").await,
        "STORED\r\n"
    );
    eventually(
        &mut on_master,
        b"get ml\r\n",
        "VALUE ml 0 4\r\na\r\nb\r\nEND\r\n",
    )
    .await;
}

async fn eventually(mc: &mut Mc, request: &[u8], want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = mc.ask(request).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "got {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn clacks_stat(server: &TestServer, name: &str) -> u64 {
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    admin.send("STATS").await;
    let lines = admin.until_flushed("s").await;
    let prefix = format!("STAT {name}=");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn item_and_line_limits_are_counted() {
    let server = TestServer::start_with(|c| {
        c.max_line_length = 4096;
        if let Some(m) = c.memcached.as_mut() {
            m.max_item_size = 1000;
        }
    })
    .await;
    let mut mc = Mc::unix(&server.memcached_socket).await;
    let item = |cmd: &str, len: usize| {
        let mut req = format!("{cmd} k 0 0 {len}\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'x', len));
        req.extend_from_slice(b"\r\n");
        req
    };
    assert_eq!(
        mc.ask(&item("set", 1001)).await,
        "SERVER_ERROR object too large for cache\r\n"
    );
    assert_eq!(mc.ask(&item("set", 1000)).await, "STORED\r\n");
    assert_eq!(
        mc.ask(&item("append", 1)).await,
        "SERVER_ERROR out of memory storing object\r\n"
    );
    assert_eq!(mc.ask(b"set k 0 0 3\r\nabc\r\n").await, "STORED\r\n");

    // A line over maxlinelength closes only that connection.
    let mut long = Mc::unix(&server.memcached_socket).await;
    long.send(&[b'g'; 5000]).await;
    assert_eq!(
        long.read_until(|_| None).await,
        b"CLIENT_ERROR line too long (limit 4096 bytes)\r\n<EOF>"
    );
    assert_eq!(mc.ask(b"get k\r\n").await, "VALUE k 0 3\r\nabc\r\nEND\r\n");

    assert_eq!(clacks_stat(&server, "memcached_too_large").await, 2);
    assert_eq!(clacks_stat(&server, "lines_too_long").await, 1);
    assert!(clacks_stat(&server, "memcached_commands").await >= 5);
}

#[tokio::test]
async fn the_connection_limit_is_shared() {
    let server = TestServer::start_with(|c| c.max_connections = 2).await;
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    let mut mc = Mc::tcp(&server).await;
    assert_eq!(mc.ask(b"get k\r\n").await, "END\r\n");
    let mut refused = Mc::tcp(&server).await;
    assert_eq!(
        refused.read_until(|_| None).await,
        b"ERROR Too many open connections\r\n<EOF>"
    );
    let mut clacks = server.connect(Transport::Unix).await;
    clacks.expect("OVERHEAD E too_many_connections").await;
    admin.send("STATS").await;
    let stats = admin.until_flushed("s").await;
    for want in [
        "STAT connections_rejected=2",
        "STAT connections_current=2",
        "STAT memcached_connections=1",
    ] {
        assert!(stats.contains(&want.to_string()), "{want} not in {stats:?}");
    }
}

#[tokio::test]
async fn monitors_see_memcached_writes() {
    let server = TestServer::start().await;
    let mut mc = Mc::tcp(&server).await;
    let mut monitor = server.login(Transport::Unix, ADMIN).await;
    monitor.send("MONITOR").await;
    monitor.until_flushed("m").await;
    monitor.expect_prefix("DEBUG unixdomainsocket:").await; // its own FLUSH

    assert_eq!(mc.ask(b"set k 0 0 2\r\nhi\r\n").await, "STORED\r\n");
    monitor.expect("DEBUG memcached=STORE k=hi").await;
    assert_eq!(mc.ask(b"incr n 1\r\n").await, "NOT_FOUND\r\n");
    assert_eq!(mc.ask(b"delete k\r\n").await, "DELETED\r\n");
    monitor.expect("DEBUG memcached=REMOVE k").await;
    // A read, and a write that changed nothing, are not shown.
    assert_eq!(mc.ask(b"get k\r\n").await, "END\r\n");
    monitor.expect_nothing().await;
}
