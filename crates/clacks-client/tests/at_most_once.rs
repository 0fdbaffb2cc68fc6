//! Commands are sent at most once: lost connections, timeouts, lines over the limit, refusals
//! and reconnect backoff.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clacks_client::{Client, ClientError, ConnectOptions, ErrorKind, Event, Events};
use clacks_server::testing::{TestServer, ADMIN, RO};
use common::{event, within, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A proxy on a Unix socket in front of `upstream`. The first connection is cut (both ways)
/// right after the client sent bytes containing `cut_after`, once they were passed on; later
/// connections pass everything.
async fn cutting_proxy(dir: &Path, upstream: PathBuf, cut_after: &'static [u8]) -> PathBuf {
    let path = dir.join("proxy.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = UnixStream::connect(&upstream).await else {
                continue;
            };
            let cut = armed.swap(false, Ordering::SeqCst);
            tokio::spawn(relay(client, server, cut.then_some(cut_after)));
        }
    });
    path
}

async fn relay(client: UnixStream, server: UnixStream, cut_after: Option<&'static [u8]>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    });
    let mut buf = vec![0; 64 * 1024];
    let mut seen = Vec::new();
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sw.write_all(&buf[..n]).await.is_err() {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if cut_after.is_some_and(|p| seen.windows(p.len()).any(|w| w == p)) {
            break;
        }
    }
    // Dropping both halves of both streams cuts the connection; nothing more goes back.
    down.abort();
}

async fn counter(server: &TestServer) -> Option<String> {
    let (c, _) = within(Client::connect(ConnectOptions::unix(
        &server.socket,
        ADMIN.0,
        ADMIN.1,
    )))
    .await
    .unwrap();
    within(c.retrieve("c")).await.unwrap()
}

/// A client connected through a proxy that cuts the connection right after `INCREMENT c`.
async fn cut_after_increment() -> (TestServer, tempfile::TempDir, Client, Events) {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = cutting_proxy(dir.path(), server.socket.clone(), b"INCREMENT c").await;
    let o = ConnectOptions::unix(&proxy, ADMIN.0, ADMIN.1).request_timeout(WAIT);
    let (c, events) = within(Client::connect(o)).await.unwrap();
    (server, dir, c, events)
}

/// After the cut: the client reconnects, and the counter moved at most once.
async fn moved_at_most_once(server: &TestServer, c: &Client, events: &mut Events) {
    assert!(matches!(event(events).await, Event::Disconnected { .. }));
    assert_eq!(event(events).await, Event::Reconnected);
    within(c.flush()).await.unwrap();
    let value = counter(server).await;
    assert!(
        value.is_none() || value.as_deref() == Some("1"),
        "moved more than once: {value:?}"
    );
}

#[tokio::test]
async fn a_command_cut_off_after_it_was_written_is_not_sent_again() {
    let (server, _dir, c, mut events) = cut_after_increment().await;
    let err = within(c.confirmed().increment("c", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::OutcomeUnknown { ref command, .. } if command == "INCREMENT c"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown);
    assert!(err.is_disconnect() && !err.is_timeout());
    assert!(err.to_string().contains("outcome unknown"), "{err}");
    moved_at_most_once(&server, &c, &mut events).await;
}

#[tokio::test]
async fn a_raw_line_cut_off_after_it_was_written_is_not_sent_again() {
    let (server, _dir, c, mut events) = cut_after_increment().await;
    // Fire and forget: done once written; the cut comes after.
    within(c.send_raw("INCREMENT c")).await.unwrap();
    moved_at_most_once(&server, &c, &mut events).await;
}

#[tokio::test]
async fn a_call_that_timed_out_while_offline_is_never_sent() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1)
        .request_timeout(Duration::from_millis(200));
    let (c, mut events) = within(Client::connect(o)).await.unwrap();
    let dir = server.shutdown().await;
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    let err = c.increment("c", None).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // A dropped call is not sent either.
    let dropped = tokio::time::timeout(Duration::from_millis(50), c.increment("c", None)).await;
    assert!(dropped.is_err());

    let server = TestServer::start_in(dir, &addr.to_string(), |_| {}).await;
    assert_eq!(event(&mut events).await, Event::Reconnected);
    within(c.flush()).await.unwrap();
    assert_eq!(counter(&server).await, None);
}

#[tokio::test]
async fn lines_over_the_limit_are_refused_before_sending() {
    let server = TestServer::start().await;
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1).request_timeout(WAIT);
    let (c, mut events) = within(Client::connect(o)).await.unwrap();
    let big = "v".repeat(3 * 1024 * 1024);
    let err = c.store("k", &big).await.unwrap_err();
    assert!(
        matches!(err, ClientError::LineTooLong { limit, .. } if limit == 2 * 1024 * 1024),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Usage);
    within(c.store("k", "small")).await.unwrap();
    assert_eq!(
        within(c.retrieve("k")).await.unwrap().as_deref(),
        Some("small")
    );
    assert!(
        events
            .try_next()
            .is_none_or(|e| matches!(e, Event::ServerInfo(_))),
        "the connection stayed up"
    );
}

#[tokio::test]
async fn confirmed_writes_return_the_servers_refusal() {
    let server = TestServer::start().await;
    let o = ConnectOptions::unix(&server.socket, RO.0, RO.1).request_timeout(WAIT);
    let (ro, mut events) = within(Client::connect(o)).await.unwrap();
    let err = within(ro.confirmed().store("k", "v")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::PermissionDenied(ref c) if c == "STORE k"),
        "{err:?}"
    );
    assert!(err.is_refused());
    // Reads are allowed; a confirmed write that is allowed returns Ok.
    within(ro.confirmed().listen("chan")).await.unwrap();
    let err = within(ro.confirmed().monitor(true)).await.unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
    // Nothing was left over for the event stream.
    within(ro.flush()).await.unwrap();
    assert!(events
        .try_next()
        .is_none_or(|e| matches!(e, Event::ServerInfo(_))));

    // The server's own line limit: refused with its reason, not as an unknown command.
    let mut o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1)
        .request_timeout(WAIT)
        .confirm_writes(true);
    o.max_line_length = 8 * 1024 * 1024;
    let (admin, _) = within(Client::connect(o)).await.unwrap();
    let err = within(admin.store("k", &"v".repeat(3 * 1024 * 1024)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Refused { ref reason, .. } if reason.starts_with("line_too_long")),
        "{err:?}"
    );
}

#[tokio::test]
async fn reconnect_backoff_grows_while_connections_do_not_last() {
    // A "server" that logs anyone in and hangs up at once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flaky.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"CLACKS flaky\r\n").await;
            let _ = s.read(&mut [0; 1024]).await;
            let _ = s.write_all(b"OVERHEAD O Welcome!\r\n").await;
        }
    });
    let mut o = ConnectOptions::unix(&path, "a", "b");
    o.reconnect_min = Duration::from_millis(10);
    o.reconnect_max = Duration::from_secs(5);
    let (_c, _events) = within(Client::connect(o)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Doubling from 10 ms (with jitter down to half): at most about 10 attempts in 1.5 s;
    // starting over at each login would make over a hundred.
    let n = accepted.load(Ordering::SeqCst);
    assert!(n <= 12, "{n} connections in 1.5 s");
}
