//! Per-name subscriptions, lag reports and connection state.

mod common;

use std::time::Duration;

use clacks_client::{Client, ConnectOptions, Event};
use clacks_server::testing::{TestServer, ADMIN};
use common::{event, within, WAIT};

fn opts(server: &TestServer) -> ConnectOptions {
    ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1).request_timeout(WAIT)
}

fn set(name: &str, value: &str) -> Event {
    Event::set(name, value)
}

#[tokio::test]
async fn a_subscription_gets_its_names_signals_and_unlistens_when_dropped() {
    let server = TestServer::start().await;
    let (c, mut events) = within(Client::connect(opts(&server))).await.unwrap();
    let (other, _) = within(Client::connect(opts(&server))).await.unwrap();
    let mut sub = within(c.subscribe("a")).await.unwrap();
    assert_eq!(sub.name(), "a");
    within(c.listen("b")).await.unwrap();
    within(c.flush()).await.unwrap();

    within(other.set("a", "1")).await.unwrap();
    within(other.notify("b")).await.unwrap();
    assert_eq!(within(sub.next()).await, Some(set("a", "1")));
    // Only the name nobody subscribed to reaches the event stream.
    assert_eq!(event(&mut events).await, Event::Notify { name: "b".into() });

    drop(sub);
    within(c.flush()).await.unwrap();
    within(other.set("a", "2")).await.unwrap();
    within(other.notify("b")).await.unwrap();
    assert_eq!(event(&mut events).await, Event::Notify { name: "b".into() });
    within(other.flush()).await.unwrap();
    within(c.flush()).await.unwrap();
    assert_eq!(events.try_next(), None, "UNLISTEN a was sent");
}

#[tokio::test]
async fn lag_is_reported_by_the_next_read() {
    let server = TestServer::start().await;
    let mut o = opts(&server);
    o.event_capacity = 2;
    let (c, _events) = within(Client::connect(o)).await.unwrap();
    let (other, _) = within(Client::connect(opts(&server))).await.unwrap();
    let mut sub = within(c.subscribe("a")).await.unwrap();
    for i in 1..=5 {
        within(other.set("a", &i.to_string())).await.unwrap();
    }
    within(other.flush()).await.unwrap();
    // Our FLUSHED comes after every signal the server sent us before it.
    within(c.flush()).await.unwrap();
    assert_eq!(within(sub.next()).await, Some(Event::Lagged(3)));
    assert_eq!(within(sub.next()).await, Some(set("a", "1")));
    assert_eq!(within(sub.next()).await, Some(set("a", "2")));
    assert_eq!(sub.try_next(), None);
}

#[tokio::test]
async fn connection_state_is_visible_and_subscriptions_are_restored() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut o = opts(&server);
    o.reconnect_min = Duration::from_millis(20);
    let (c, mut events) = within(Client::connect(o)).await.unwrap();
    let mut sub = within(c.subscribe("a")).await.unwrap();
    let mut state = c.connection_state();
    assert!(c.is_connected() && *state.borrow_and_update());
    let dir = server.shutdown().await;
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert!(!c.is_connected());
    within(state.changed()).await.unwrap();
    assert!(!*state.borrow_and_update());
    let server = TestServer::start_in(dir, &addr.to_string(), |_| {}).await;
    assert_eq!(event(&mut events).await, Event::Reconnected);
    assert!(c.is_connected());
    within(state.changed()).await.unwrap();
    assert!(*state.borrow_and_update());
    within(c.flush()).await.unwrap();
    let (other, _) = within(Client::connect(opts(&server))).await.unwrap();
    within(other.set("a", "again")).await.unwrap();
    assert_eq!(within(sub.next()).await, Some(set("a", "again")));
    // The last state is down, and then the stream ends with the client.
    within(c.disconnect()).await.unwrap();
    while within(state.changed()).await.is_ok() {}
    assert!(!*state.borrow() && !c.is_connected());
}

/// Log output, line by line, into a channel.
#[derive(Clone)]
struct LogLines(tokio::sync::mpsc::UnboundedSender<String>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_login_refused_on_reconnect_is_a_warning() {
    let (tx, mut log) = tokio::sync::mpsc::unbounded_channel();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || LogLines(tx.clone()))
        .finish();
    // The test runtime has one thread: the client's task logs through this subscriber too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::start().await;
    let mut o = opts(&server);
    o.reconnect_min = Duration::from_millis(20);
    let (c, mut events) = within(Client::connect(o)).await.unwrap();
    let server = server.restart(|c| c.password = "changed".into()).await;
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    loop {
        let line = within(log.recv()).await.expect("log closed");
        if line.contains("WARN") && line.contains("login failed") {
            break;
        }
    }
    assert!(!c.is_connected());
    drop(server);
}
