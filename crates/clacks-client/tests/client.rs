//! The client library against an in-process clacksd, over TLS and a Unix socket.

use std::collections::BTreeMap;
use std::time::Duration;

use clacks_client::{Cache, Client, ClientError, ConnectOptions, Event, Events, TlsVerify};
use clacks_server::testing::{TestServer, ADMIN, RO};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Via {
    Unix,
    TlsAnyCert,
    TlsPinned,
    TlsCa,
}

fn opts(server: &TestServer, via: Via, user: (&str, &str)) -> ConnectOptions {
    let tls = || ConnectOptions::tls("localhost", server.addr.port(), user.0, user.1);
    let o = match via {
        Via::Unix => ConnectOptions::unix(&server.socket, user.0, user.1),
        Via::TlsAnyCert => tls(),
        Via::TlsPinned => tls().verify(TlsVerify::Pinned(server.cert.clone())),
        Via::TlsCa => tls().verify(TlsVerify::CaFile(server.cert.clone())),
    };
    o.client_name("rust-test").request_timeout(WAIT)
}

async fn connect(server: &TestServer, via: Via) -> (Client, Events) {
    tokio::time::timeout(WAIT, Client::connect(opts(server, via, ADMIN)))
        .await
        .expect("connect timed out")
        .expect("connect failed")
}

/// The next event that is not the greeting.
async fn event(events: &mut Events) -> Event {
    loop {
        match tokio::time::timeout(WAIT, events.next()).await {
            Ok(Some(Event::ServerInfo(_))) => continue,
            Ok(Some(e)) => return e,
            Ok(None) => panic!("event stream closed"),
            Err(_) => panic!("no event within {WAIT:?}"),
        }
    }
}

async fn every_call(via: Via) {
    let server = TestServer::start().await;
    let (c, mut events) = connect(&server, via).await;
    let (other, _) = connect(&server, Via::Unix).await;
    assert!(c.server_info().unwrap().starts_with("clacksd "));

    c.store("k", "hello world").await.unwrap();
    assert_eq!(
        c.retrieve("k").await.unwrap().as_deref(),
        Some("hello world")
    );
    assert_eq!(c.retrieve("missing").await.unwrap(), None);
    c.increment("n", None).await.unwrap();
    c.increment("n", Some(5.0)).await.unwrap();
    c.decrement("n", Some(2.0)).await.unwrap();
    c.decrement("n", None).await.unwrap();
    assert_eq!(c.retrieve("n").await.unwrap().as_deref(), Some("3"));
    c.increment("f", Some(2.75)).await.unwrap();
    assert_eq!(c.retrieve("f").await.unwrap().as_deref(), Some("2.75"));
    c.remove("k").await.unwrap();
    assert_eq!(c.retrieve("k").await.unwrap(), None);
    assert_eq!(c.keylist().await.unwrap(), vec!["f", "k", "n"]);
    c.set_and_store("sas", "v").await.unwrap();
    assert_eq!(c.retrieve("sas").await.unwrap().as_deref(), Some("v"));
    c.clear_cache().await.unwrap();
    assert!(c.keylist().await.unwrap().is_empty());

    let clients = c.clientlist().await.unwrap();
    assert_eq!(clients.len(), 2);
    assert!(clients.iter().any(|e| &e.clientinfo[..] == b"rust-test"));
    let stats = c.stats().await.unwrap();
    assert!(stats.iter().any(|(k, _)| k == "commands"));

    c.ping().await.unwrap();
    c.disable_ping().await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(
        c.raw("RETRIEVE nothing").await.unwrap(),
        vec!["NOTRETRIEVED nothing"]
    );
    assert_eq!(
        c.raw("BOGUS").await.unwrap(),
        vec!["OVERHEAD E unknown_command BOGUS"]
    );

    // Signals: no echo to the sender, events to the listener.
    c.listen("chan").await.unwrap();
    c.listen("evt").await.unwrap();
    c.flush().await.unwrap();
    other.set("chan", "hello").await.unwrap();
    other.notify("evt").await.unwrap();
    c.set("chan", "from me").await.unwrap();
    assert_eq!(event(&mut events).await, Event::set("chan", "hello"));
    assert_eq!(
        event(&mut events).await,
        Event::Notify { name: "evt".into() }
    );
    c.unlisten("chan").await.unwrap();
    c.flush().await.unwrap();
    other.set("chan", "unheard").await.unwrap();
    other.notify("evt").await.unwrap();
    assert_eq!(
        event(&mut events).await,
        Event::Notify { name: "evt".into() }
    );

    // Informal messages and monitor lines.
    other.send_raw("OVERHEAD GM hello all").await.unwrap();
    assert_eq!(
        event(&mut events).await,
        Event::Informal("hello all".into())
    );
    c.monitor(true).await.unwrap();
    other.store("m", "1").await.unwrap();
    loop {
        if let Event::Debug { text, .. } = event(&mut events).await {
            if text == "STORE m=1" {
                break;
            }
        }
    }
    c.monitor(false).await.unwrap();

    // Invalid arguments never reach the wire.
    assert!(matches!(
        c.store("a=b", "x").await,
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(
        c.set("a", "x\ny").await,
        Err(ClientError::InvalidArgument(_))
    ));
    c.disconnect().await.unwrap();
    assert!(matches!(c.retrieve("x").await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn every_call_over_unix() {
    every_call(Via::Unix).await;
}

#[tokio::test]
async fn every_call_over_tls_accepting_any_certificate() {
    every_call(Via::TlsAnyCert).await;
}

#[tokio::test]
async fn every_call_over_tls_with_pinned_certificate() {
    every_call(Via::TlsPinned).await;
}

#[tokio::test]
async fn every_call_over_tls_verified_against_a_ca_file() {
    every_call(Via::TlsCa).await;
}

#[tokio::test]
async fn a_wrong_pinned_certificate_is_refused() {
    let server = TestServer::start().await;
    let stranger = TestServer::start().await;
    let o = opts(&server, Via::TlsAnyCert, ADMIN).verify(TlsVerify::Pinned(stranger.cert.clone()));
    assert!(matches!(Client::connect(o).await, Err(ClientError::Tls(_))));
}

#[tokio::test]
async fn wrong_password_and_missing_server_are_typed_errors() {
    let server = TestServer::start().await;
    let err = Client::connect(opts(&server, Via::Unix, ("admin", "nope")))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::AuthFailed), "{err:?}");
    let err = Client::connect(ConnectOptions::unix(
        server.dir.path().join("none.sock"),
        "a",
        "b",
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn replies_are_matched_exactly() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, Via::Unix).await;
    c.store("foo", "short").await.unwrap();
    c.store("foobar", "long").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let key = if i % 2 == 0 { "foobar" } else { "foo" };
            (key, c.retrieve(key).await.unwrap())
        }));
    }
    for t in tasks {
        let (key, value) = t.await.unwrap();
        let want = if key == "foo" { "short" } else { "long" };
        assert_eq!(value.as_deref(), Some(want), "{key}");
    }
}

#[tokio::test]
async fn permission_errors_fail_the_request_or_become_events() {
    let server = TestServer::start().await;
    let (ro, mut events) = Client::connect(opts(&server, Via::Unix, RO)).await.unwrap();
    ro.store("k", "v").await.unwrap();
    assert_eq!(
        event(&mut events).await,
        Event::ErrorMessage {
            message: "permission_denied".into(),
            command: Some("STORE k".into())
        }
    );
    let err = ro.clientlist().await.unwrap_err();
    assert!(
        matches!(err, ClientError::PermissionDenied(ref c) if c == "CLIENTLIST"),
        "{err:?}"
    );
    assert_eq!(ro.retrieve("k").await.unwrap(), None);
}

#[tokio::test]
async fn reconnects_restores_listens_and_delivers_queued_commands() {
    let server = TestServer::start().await;
    let (c, mut events) = connect(&server, Via::TlsAnyCert).await;
    c.listen("chan").await.unwrap();
    c.flush().await.unwrap();

    let dir_server = server.restart_later();
    // While the server is down, commands queue up.
    match event(&mut events).await {
        Event::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let queued = {
        let c = c.clone();
        tokio::spawn(async move {
            c.store("queued", "delivered").await.unwrap();
            c.retrieve("queued").await.unwrap()
        })
    };
    let server = tokio::time::timeout(WAIT, dir_server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event(&mut events).await, Event::Reconnected);
    assert_eq!(
        tokio::time::timeout(WAIT, queued)
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("delivered")
    );
    let (other, _) = connect(&server, Via::Unix).await;
    other.set("chan", "after restart").await.unwrap();
    assert_eq!(
        event(&mut events).await,
        Event::set("chan", "after restart")
    );
}

/// Restarting a test server takes it down first; this runs the restart in the background.
trait RestartLater {
    fn restart_later(self) -> tokio::task::JoinHandle<TestServer>;
}

impl RestartLater for TestServer {
    fn restart_later(self) -> tokio::task::JoinHandle<TestServer> {
        tokio::spawn(async move {
            let addr = self.addr;
            let dir = self.shutdown().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            TestServer::start_in(dir, &addr.to_string(), |_| {}).await
        })
    }
}

#[tokio::test]
async fn commands_fail_when_the_offline_queue_is_full() {
    let server = TestServer::start().await;
    let mut o = opts(&server, Via::Unix, ADMIN);
    o.offline_queue = 0;
    o.reconnect_min = Duration::from_secs(5);
    let (c, mut events) = Client::connect(o).await.unwrap();
    let _dir = server.shutdown().await;
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert!(matches!(
        c.store("k", "v").await,
        Err(ClientError::QueueFull(0))
    ));
}

#[tokio::test]
async fn requests_time_out() {
    // A "server" that accepts and greets but never answers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mute.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"CLACKS mute\r\nOVERHEAD O Welcome!\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let o = ConnectOptions::unix(&path, "a", "b").request_timeout(Duration::from_millis(200));
    let (c, _) = Client::connect(o).await.unwrap();
    assert!(matches!(
        c.retrieve("x").await,
        Err(ClientError::Timeout(_))
    ));
}

#[tokio::test]
async fn cache_values_round_trip_between_encodings() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, Via::Unix).await;
    let cache = Cache::new(c.clone());
    let text = "line one\nline two\r\nline = three";
    cache.set("multi line", text).await.unwrap();
    assert_eq!(
        cache.get("multi line").await.unwrap().as_deref(),
        Some(text)
    );
    // Stored under the sanitised key, encoded.
    let raw = c.retrieve("multi___line").await.unwrap().unwrap();
    assert!(raw.starts_with("PAGECAMELCLACKSB64:"), "{raw}");

    let mut nested: BTreeMap<String, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
    nested
        .entry("outer".into())
        .or_default()
        .insert("inner".into(), vec![1, 2, 3]);
    cache.set_data("map", &nested).await.unwrap();
    assert_eq!(cache.get_data("map").await.unwrap(), Some(nested));
    assert!(c
        .retrieve("map")
        .await
        .unwrap()
        .unwrap()
        .starts_with("PAGECAMELCLACKSYAMLB64: "));

    cache.incr("count", None).await.unwrap();
    cache.incr("count", Some(4.0)).await.unwrap();
    cache.decr("count", None).await.unwrap();
    assert_eq!(cache.get("count").await.unwrap().as_deref(), Some("4"));
    cache.delete("count").await.unwrap();
    assert_eq!(cache.get("count").await.unwrap(), None);
    assert!(cache.set("x", "PAGECAMELCLACKSB64:abc").await.is_err());
}

#[test]
fn blocking_facade() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start());
    let opts = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1);
    let a = clacks_client::blocking::Client::connect(opts.clone()).unwrap();
    let b = clacks_client::blocking::Client::connect(opts).unwrap();
    a.store("k", "v").unwrap();
    // Stored once the server answered a's next round trip.
    a.flush().unwrap();
    assert_eq!(b.retrieve("k").unwrap().as_deref(), Some("v"));
    a.listen("chan").unwrap();
    a.flush().unwrap();
    b.set("chan", "x").unwrap();
    let mut got = None;
    while let Some(e) = a.next_event(WAIT) {
        if let Event::Set { value, .. } = e {
            got = Some(value);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some("x"));
    a.disconnect().unwrap();
    drop(server);
}

#[tokio::test]
async fn from_data_dir_reads_the_zero_config_credentials() {
    let server = TestServer::start().await;
    std::fs::write(
        server.dir.path().join("credentials"),
        format!("username={}\npassword={}\n", ADMIN.0, ADMIN.1),
    )
    .unwrap();
    let (c, _) = Client::connect(ConnectOptions::from_data_dir(server.dir.path()).unwrap())
        .await
        .unwrap();
    c.flush().await.unwrap();
}
