//! Authentication and ping timeouts, with paused time over in-memory streams (no real waiting).

mod common;

use std::time::Duration;

use clacks_server::Server;
use common::{base_config, Client, ADMIN};

/// A server connection over an in-memory pipe.
fn connect(server: &Server) -> Client {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let s = server.clone();
    tokio::spawn(async move { s.serve_stream(theirs).await });
    Client::new(ours)
}

async fn login(server: &Server) -> Client {
    let mut c = connect(server);
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    c.send(&format!("OVERHEAD A {}", common::token(ADMIN.0, ADMIN.1)))
        .await;
    c.expect("OVERHEAD O Welcome!").await;
    c
}

const LONG: Duration = Duration::from_secs(100_000);

/// Paused time moves in whole timer steps: `waited` is `secs` (and less than a second more).
fn assert_about_secs(waited: Duration, secs: u64) {
    assert!(
        waited >= Duration::from_secs(secs) && waited < Duration::from_secs(secs + 1),
        "{waited:?}"
    );
}

/// Reads until the server closes; every line but the last must be the idle keepalive `NOP`.
async fn last_line_before_close(c: &mut Client) -> Option<String> {
    let mut last = None;
    while let Ok(Some(line)) = c.line_within(LONG).await {
        if let Some(prev) = last.replace(line) {
            assert_eq!(prev, "NOP");
        }
    }
    last
}

/// The next line that is not the idle keepalive.
async fn not_nop(c: &mut Client) -> String {
    loop {
        let line = c.line_within(LONG).await.unwrap().unwrap();
        if line != "NOP" {
            return line;
        }
    }
}

/// Round-trips a FLUSH; anything before it must be `NOP`.
async fn only_nops(c: &mut Client) {
    for line in c.until_flushed("f").await {
        assert_eq!(line, "NOP");
    }
}

#[tokio::test(start_paused = true)]
async fn unauthenticated_connection_is_closed_after_authtimeout() {
    let server = Server::new(base_config()).unwrap();
    let start = tokio::time::Instant::now();
    let mut c = connect(&server);
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    assert_eq!(
        c.line_within(LONG).await,
        Ok(None),
        "closed without a message"
    );
    assert_about_secs(start.elapsed(), 15);
}

#[tokio::test(start_paused = true)]
async fn ping_timeout_sends_timeout_and_closes() {
    let server = Server::new(base_config()).unwrap();
    let mut c = login(&server).await;
    tokio::time::advance(Duration::from_secs(100)).await;
    c.send("PING").await;
    only_nops(&mut c).await;
    let pinged = tokio::time::Instant::now();
    assert_eq!(
        last_line_before_close(&mut c).await.as_deref(),
        Some("TIMEOUT")
    );
    assert_about_secs(pinged.elapsed(), 180);
}

#[tokio::test(start_paused = true)]
async fn noping_disables_the_ping_timeout_until_the_next_ping() {
    let server = Server::new(base_config()).unwrap();
    let mut c = login(&server).await;
    c.send("NOPING").await;
    c.expect_nothing().await;
    // Only the idle keepalive arrives, every 60 s.
    let start = tokio::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(c.line_within(LONG).await, Ok(Some("NOP".to_string())));
    }
    assert!(start.elapsed() >= Duration::from_secs(300));
    c.send("PING").await;
    only_nops(&mut c).await;
    let pinged = tokio::time::Instant::now();
    assert_eq!(
        last_line_before_close(&mut c).await.as_deref(),
        Some("TIMEOUT")
    );
    assert!(pinged.elapsed() >= Duration::from_secs(180));
}

#[tokio::test(start_paused = true)]
async fn overhead_s_shuts_the_server_down_after_the_delay() {
    let server = Server::new(base_config()).unwrap();
    let token = server.shutdown_token();
    let mut c = login(&server).await;
    c.send("OVERHEAD S 30").await;
    c.expect_nothing().await;
    let start = tokio::time::Instant::now();
    tokio::time::timeout(LONG, token.cancelled()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(29),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn cleanup_purges_old_tombstones_and_stale_entries_and_tells_monitors() {
    use clacks_store::ManualClock;
    use std::sync::Arc;

    let clock = ManualClock::new(1_800_000_000.0);
    let server = Server::with_clock(base_config(), Arc::new(clock.clone())).unwrap();
    let stop = server.shutdown_token();
    let running = tokio::spawn(
        server
            .clone()
            .run(Default::default(), std::future::pending()),
    );
    let mut c = login(&server).await;
    c.send("STORE live=1").await;
    c.send("STORE gone=1").await;
    c.send("REMOVE gone").await;
    c.send("MONITOR").await;
    let before = c.until_flushed("f").await;
    assert!(before.last().unwrap().ends_with("=MONITOR"), "{before:?}");
    assert!(c.line().await.unwrap().ends_with("=FLUSH f"));
    clock.advance(3601.0);
    assert_eq!(not_nop(&mut c).await, "DEBUG SERVERCACHE=CLEANDELETED=gone");
    clock.advance(86_400.0);
    assert_eq!(not_nop(&mut c).await, "DEBUG SERVERCACHE=CLEANSTALE=live");
    stop.cancel();
    tokio::time::timeout(LONG, running).await.unwrap().unwrap();
}
