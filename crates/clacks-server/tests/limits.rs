//! Limits: silent TLS peers, slow consumers, stalled writes, oversized lines, too many
//! connections.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Connect, TestServer, Transport, ADMIN, RW};
use tokio::net::TcpStream;

#[tokio::test]
async fn silent_tls_peer_does_not_block_anyone() {
    let server = TestServer::start().await;
    // Connects over TCP and never sends a ClientHello.
    let _silent: Vec<TcpStream> = futures_join(3, || TcpStream::connect(server.addr)).await;
    let mut c = server.login(Transport::Tls, ADMIN).await;
    c.send("STORE k=v").await;
    c.send("RETRIEVE k").await;
    c.expect("RETRIEVED k=v").await;
}

async fn futures_join<F, Fut>(n: usize, f: F) -> Vec<TcpStream>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<TcpStream>>,
{
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            tokio::time::timeout(common::WAIT, f())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn tls_handshake_timeout_closes_the_silent_peer() {
    let server =
        TestServer::start_with(|c| c.tls_handshake_timeout = Duration::from_millis(200)).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        common::WAIT,
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("server must close the silent peer")
    .unwrap_or(0);
    assert_eq!(n, 0);
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    admin.send("STATS").await;
    let stats = admin.until_flushed("s").await;
    assert!(
        stats.contains(&"STAT tls_handshake_failures=1".to_string()),
        "{stats:?}"
    );
}

async fn slow_consumer(t: Transport) {
    let server = TestServer::start_with(|c| c.max_out_buffer = 1024 * 1024).await;
    let mut monitor = server.login(Transport::Unix, ADMIN).await;
    let mut stuck = server.login(t, RW).await;
    let mut reader = server.login(t, RW).await;
    let mut sender = server.login(Transport::Unix, RW).await;
    stuck.send("LISTEN chan").await;
    reader.send("LISTEN chan").await;
    stuck.expect_nothing().await;
    reader.expect_nothing().await;
    monitor.send("MONITOR").await;
    monitor.expect_prefix("DEBUG ").await;
    let watching = tokio::spawn(async move {
        loop {
            let line = monitor.line().await.expect("monitor closed");
            if line.starts_with("DEBUG DISCONNECTED=") && line.contains("slow consumer") {
                return line;
            }
        }
    });

    // Send in chunks the reading listener keeps up with, until the stuck one (which never
    // reads, so kernel buffers fill first) is cut. The sender is never slowed down.
    let payload = "x".repeat(4000);
    let chunk = 50;
    let mut sent = 0;
    while server.server.stats().slow_consumers.load(Ordering::Relaxed) == 0 {
        assert!(sent < 40_000, "stuck listener never cut");
        let mut batch = String::new();
        for i in sent..sent + chunk {
            batch.push_str(&format!("SET chan={i}:{payload}\r\n"));
        }
        sender.send_raw(batch.as_bytes()).await;
        for i in sent..sent + chunk {
            reader.expect(&format!("SET chan={i}:{payload}")).await;
        }
        sent += chunk;
    }
    sender.send("SET chan=last").await;
    sender.expect_nothing().await;
    reader.expect("SET chan=last").await;

    // The cut connection leaves at once (it is not kept until a write deadline), although the
    // stuck listener has not read a byte yet.
    let line = tokio::time::timeout(common::WAIT, watching)
        .await
        .unwrap()
        .unwrap();
    assert!(line.contains("bytes discarded from outbuffer"), "{line}");
    // The stuck listener was cut: reading what it has ends in EOF before all messages.
    let mut received = 0;
    while stuck.line().await.is_some() {
        received += 1;
    }
    assert!(
        received < sent,
        "stuck listener got everything ({received} of {sent})"
    );

    assert_eq!(
        server.server.stats().slow_consumers.load(Ordering::Relaxed),
        1
    );
    // What it lost is counted (and logged with the count).
    assert!(server.stat("lines_dropped") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reading_listener_is_cut_and_others_keep_receiving_unix() {
    slow_consumer(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reading_listener_is_cut_and_others_keep_receiving_tls() {
    slow_consumer(Transport::Tls).await;
}

/// A listener that stops reading is closed once a write makes no progress for
/// `stalledwritetimeout`, even while its output stays under the slow-consumer cap.
async fn stalled_writer(t: Transport) {
    let server = TestServer::start_with(|c| {
        c.max_out_buffer = 256 * 1024 * 1024;
        c.stalled_write_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stuck = server.login(t, RW).await;
    let mut sender = server.login(Transport::Unix, RW).await;
    stuck.send("LISTEN chan").await;
    stuck.expect_nothing().await;
    let stats = server.server.stats();
    let payload = "x".repeat(4000);
    let mut sent = 0;
    while stats.stalled_writes.load(Ordering::Relaxed) == 0 {
        assert!(sent < 200_000, "stalled listener never closed");
        let batch: String = (0..50)
            .map(|i| format!("SET chan={}:{payload}\r\n", sent + i))
            .collect();
        sender.send_raw(batch.as_bytes()).await;
        sender.expect_nothing().await;
        sent += 50;
    }
    let mut received = 0;
    while stuck.line().await.is_some() {
        received += 1;
    }
    assert!(received < sent, "stalled listener got everything");
    assert_eq!(stats.slow_consumers.load(Ordering::Relaxed), 0);
    sender.send("RETRIEVE nothing").await;
    sender.expect("NOTRETRIEVED nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_writes_close_the_connection_unix() {
    stalled_writer(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_writes_close_the_connection_tls() {
    stalled_writer(Transport::Tls).await;
}

async fn oversized_line(t: Transport) {
    let server = TestServer::start_with(|c| c.max_line_length = 1024).await;
    let mut other = server.login(t, ADMIN).await;
    let mut c = server.login(t, ADMIN).await;
    c.send(&format!("STORE ok={}", "y".repeat(1000))).await;
    c.send_raw(format!("STORE big={}", "x".repeat(3000)).as_bytes())
        .await;
    c.expect("OVERHEAD E line_too_long (limit 1024 bytes)")
        .await;
    c.expect_closed().await;
    other.send("RETRIEVE big").await;
    other.expect("NOTRETRIEVED big").await;
    other.send("RETRIEVE ok").await;
    other.expect_prefix("RETRIEVED ok=yyy").await;
}

#[tokio::test]
async fn oversized_line_closes_only_that_connection_unix() {
    oversized_line(Transport::Unix).await;
}

#[tokio::test]
async fn oversized_line_closes_only_that_connection_tls() {
    oversized_line(Transport::Tls).await;
}

#[tokio::test]
async fn too_many_connections_are_refused_with_a_reason() {
    let server = TestServer::start_with(|c| c.max_connections = 2).await;
    let mut a = server.login(Transport::Unix, ADMIN).await;
    let b = server.login(Transport::Tls, ADMIN).await;
    for t in [Transport::Unix, Transport::Tls] {
        let mut refused = server.connect(t).await;
        refused.expect("OVERHEAD E too_many_connections").await;
        refused.expect_closed().await;
    }
    drop(b);
    // The slot is freed once the server notices the close.
    let mut ok = None;
    for _ in 0..100 {
        let mut c = server.connect(Transport::Unix).await;
        if c.line().await.is_some_and(|l| l.starts_with("CLACKS ")) {
            ok = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok.is_some(), "no slot freed");
    a.send("STATS").await;
    let stats = a.until_flushed("s").await;
    assert!(
        stats
            .iter()
            .any(|l| l.starts_with("STAT connections_rejected=")),
        "{stats:?}"
    );
}

/// A connection whose write is stuck is still held to its ping deadline (it used to wait for
/// `stalledwritetimeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ping_deadline_holds_while_a_write_is_pending() {
    let server = TestServer::start_with(|c| {
        c.ping_timeout = Duration::from_secs(1);
        c.stalled_write_timeout = Duration::from_secs(3600);
        c.max_out_buffer = 256 * 1024 * 1024;
    })
    .await;
    let mut stuck = server.login(Transport::Unix, RW).await;
    let mut sender = server.login(Transport::Unix, RW).await;
    stuck.send("LISTEN chan").await;
    stuck.send("FLUSH l").await;
    stuck.expect("FLUSHED l").await;
    let payload = "x".repeat(4000);
    let batch: String = (0..2_000)
        .map(|i| format!("SET chan={i}:{payload}\r\n"))
        .collect();
    sender.send_raw(batch.as_bytes()).await;
    tokio::time::timeout(common::WAIT, async {
        while server.stat("ping_timeouts") == 0 {
            sender.send("PING").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the stuck connection was not timed out");
    assert_eq!(server.stat("stalled_writes"), 0);
}
