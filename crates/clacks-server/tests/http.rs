//! The HTTP listener: `/metrics` (checked with `promtool` when it is installed, required with
//! `CLACKS_REQUIRE_PEERS`), `/healthz` and `/readyz` on a slave whose master is down and then up,
//! basic auth off loopback, the dashboard's page and events, and the page in headless Chromium.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use clacks_server::config::Master;
use clacks_server::HttpConfig;
use common::{Connect, TestServer, Transport, ADMIN, RO, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status code, headers (lower-case names) and body.
struct Got {
    status: u16,
    head: String,
    body: String,
}

/// `GET path` (with `auth` as basic credentials), read to the end of the response.
async fn get(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> Got {
    let mut s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some((u, p)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req += &format!("Authorization: Basic {token}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    Got {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn require_peers() -> bool {
    std::env::var_os("CLACKS_REQUIRE_PEERS").is_some()
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = TestServer::start().await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for line in [
        "STORE a=1",
        "QSEND jobs=x",
        "QSEND jobs=y",
        "QSEND odd\"name\\=z",
        "REGISTER web tcp:127.0.0.1:80",
        "FLUSH m",
    ] {
        c.send(line).await;
    }
    c.expect_prefix("REGISTERED web ").await;
    c.until_flushed("m").await;
    let got = get(server.http, "/metrics", None).await;
    assert_eq!(got.status, 200);
    assert!(got.head.contains("content-type: text/plain; version=0.0.4"));
    let m = &got.body;
    for want in [
        "# TYPE clacks_commands_total counter",
        "# TYPE clacks_connections_current gauge",
        "clacks_connections{listener=\"clacks\"} 1",
        "clacks_connections{listener=\"http\"} 1",
        "clacks_cache_entries 1",
        "clacks_queue_messages{queue=\"jobs\"} 2",
        "clacks_registry_instances{service=\"web\"} 1",
        "# TYPE clacks_command_batch_duration_seconds histogram",
        "clacks_command_batch_duration_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    // Every series has HELP and TYPE.
    for line in m.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| m.contains(&format!("# TYPE {b} histogram")))
            })
            .unwrap_or(name);
        assert!(m.contains(&format!("# HELP {base} ")), "{base}: no HELP");
    }
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) if !require_peers() => eprintln!("promtool not run ({e}); skipped"),
        Err(e) => panic!("promtool is required (CLACKS_REQUIRE_PEERS): {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_link_to_the_master() {
    let master_dir = tempfile::tempdir().unwrap();
    let master_socket = master_dir.path().join("clacks.sock");
    let slave = TestServer::start_with(|c| {
        c.master = Some(Master::Unix(master_socket.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(300);
    })
    .await;
    assert_eq!(get(slave.http, "/healthz", None).await.status, 200);
    let got = get(slave.http, "/readyz", None).await;
    assert_eq!(got.status, 503);
    assert!(
        got.body.contains("the link to the master is down"),
        "{}",
        got.body
    );
    let metrics = get(slave.http, "/metrics", None).await.body;
    assert!(metrics.contains("clacks_master_link_up 0"), "{metrics}");

    let _master = TestServer::start_in(master_dir, "127.0.0.1:0", |_| {}).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = get(slave.http, "/readyz", None).await;
        if got.status == 200 {
            assert_eq!(got.body, "ready\n");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", got.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = get(slave.http, "/metrics", None).await.body;
    assert!(metrics.contains("clacks_master_link_synced 1"), "{metrics}");
    assert!(
        metrics.contains("clacks_master_last_sync_age_seconds "),
        "{metrics}"
    );
    // A server without a master is ready at once.
    let plain = TestServer::start().await;
    assert_eq!(get(plain.http, "/readyz", None).await.status, 200);
}

#[tokio::test]
async fn off_loopback_every_request_needs_a_manage_user() {
    let server = TestServer::start_with(|c| {
        c.http = Some(HttpConfig {
            ips: vec!["0.0.0.0".into()],
            port: 49889,
        });
    })
    .await;
    let got = get(server.http, "/metrics", None).await;
    assert_eq!(got.status, 401);
    assert!(got
        .head
        .contains("www-authenticate: basic realm=\"clacksd\""));
    assert_eq!(get(server.http, "/healthz", Some(RO)).await.status, 401);
    assert_eq!(
        get(server.http, "/healthz", Some(("admin", "wrong")))
            .await
            .status,
        401
    );
    assert_eq!(get(server.http, "/metrics", Some(ADMIN)).await.status, 200);
    assert_eq!(get(server.http, "/nothing", Some(ADMIN)).await.status, 404);
}

#[tokio::test]
async fn the_dashboard_page_and_its_events() {
    let server = TestServer::start().await;
    let page = get(server.http, "/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.head.contains("content-type: text/html"));
    assert!(page.body.contains("new EventSource(\"events\")"));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "self-contained"
    );
    // The first event comes at once.
    let mut s = TcpStream::connect(server.http).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&buf).contains("\"cache_entries\"") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(text
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    assert!(text.contains("data: {\"uptime\":"), "{text}");
}

/// Chromium, if installed (required with `CLACKS_REQUIRE_PEERS`).
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok());
    if found.is_none() {
        assert!(
            !require_peers(),
            "chromium is required (CLACKS_REQUIRE_PEERS)"
        );
        eprintln!("chromium not installed; skipped");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_traffic_in_a_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let server = TestServer::start().await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for line in [
        "STORE a=1",
        "STORE b=2",
        "STORE c=3",
        "QSEND invoices=one",
        "REGISTER billing tcp:127.0.0.1:9",
        "FLUSH t",
    ] {
        c.send(line).await;
    }
    c.expect_prefix("REGISTERED billing ").await;
    c.until_flushed("t").await;
    // Two updates over the event stream, then the page closes it and Chromium dumps the DOM.
    let url = format!("http://{}/?events=2", server.http);
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"cache-entries\">3<"),
        "cache entries not shown:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("<td>invoices</td><td>1</td>"), "{dom}");
    assert!(dom.contains("<td>billing</td><td>1</td>"), "{dom}");
    assert!(dom.contains("class=\"ok\">live<"), "{dom}");
    // Two updates: the rates are figures, not dashes.
    assert!(!dom.contains("id=\"commands-rate\">–<"), "{dom}");
    assert!(!dom.contains("id=\"cache-rate\">–<"), "{dom}");
    assert!(!dom.contains("id=\"cache-total\">Clacks 0 "), "{dom}");
}
