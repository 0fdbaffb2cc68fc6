//! The service registry: several instances of a service, entries gone with their connection
//! (QUIT, a dropped connection, the ping timeout), the change signal a plain listener sees,
//! permissions, and a tree where an instance registered on one slave resolves on another.

mod common;

use std::time::Duration;

use clacks_server::config::Master;
use common::relay::Relay;
use common::{links, routed, Client, Connect, TestServer, Transport, ADMIN, RO};

/// The `INSTANCE` lines of `RESOLVE service`.
async fn resolve(c: &mut Client, service: &str) -> Vec<String> {
    c.send(&format!("RESOLVE {service}")).await;
    c.expect(&format!("RESOLVESTART {service}")).await;
    let mut out = Vec::new();
    loop {
        let line = c.line().await.unwrap();
        if line == format!("RESOLVEEND {service}") {
            return out;
        }
        let prefix = format!("INSTANCE {service} ");
        out.push(
            line.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line}"))
                .to_string(),
        );
    }
}

/// The value of `key` in `k=v;…` fields.
fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    fields
        .split(';')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// `REGISTER`s and returns the id.
async fn register(c: &mut Client, line: &str) -> String {
    c.send(line).await;
    let reply = c.expect_prefix("REGISTERED ").await;
    reply.rsplit(' ').next().unwrap().to_string()
}

/// Waits until `service` has `n` instances, as seen from `c`.
async fn instances(c: &mut Client, service: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let got = resolve(c, service).await;
        if got.len() == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn several_instances_resolve_and_go_with_their_connection() {
    let server = TestServer::start().await;
    let mut watcher = server.login(Transport::Unix, ADMIN).await;
    watcher.send("LISTEN Registry::web").await;
    watcher.expect_nothing().await;
    let mut a = server.login(Transport::Unix, ADMIN).await;
    let mut b = server.login(Transport::Tls, ADMIN).await;
    let first = register(&mut a, "REGISTER web tcp:10.0.0.1:80 zone=a;node=forged").await;
    watcher.expect("SET Registry::web=1").await;
    let second = register(&mut b, "REGISTER web unix:/run/web.sock").await;
    watcher.expect("SET Registry::web=2").await;
    // The same endpoint again from the same connection: the same instance, new metadata.
    let again = register(&mut a, "REGISTER web tcp:10.0.0.1:80 status=draining").await;
    assert_eq!(again, first);
    watcher.expect("SET Registry::web=2").await;

    let got = resolve(&mut watcher, "web").await;
    assert_eq!(got.len(), 2);
    assert_eq!(field(&got[0], "id"), Some(first.as_str()));
    assert_eq!(field(&got[0], "endpoint"), Some("tcp:10.0.0.1:80"));
    assert_eq!(field(&got[0], "status"), Some("draining"));
    assert_ne!(field(&got[0], "node"), Some("forged"));
    assert!(field(&got[0], "since").unwrap().parse::<f64>().unwrap() > 1e9);
    assert_eq!(field(&got[1], "id"), Some(second.as_str()));
    assert_eq!(field(&got[1], "status"), Some("up"));
    watcher.send("SERVICES").await;
    watcher.expect("SERVICESSTART").await;
    watcher.expect("SERVICE web instances=2;draining=1").await;
    watcher.expect("SERVICESEND").await;

    // Only its owner unregisters an instance.
    b.send(&format!("UNREGISTER web {first}")).await;
    b.expect(&format!("OVERHEAD E unknown_instance web {first}"))
        .await;
    // QUIT, and a dropped connection, take the instances with them.
    a.send("QUIT").await;
    watcher.expect("SET Registry::web=1").await;
    drop(b);
    watcher.expect("SET Registry::web=0").await;
    assert!(resolve(&mut watcher, "web").await.is_empty());
    assert_eq!(server.stat("registry_withdrawn"), 2);
}

#[tokio::test]
async fn an_instance_goes_at_the_ping_timeout() {
    let server = TestServer::start_with(|c| c.ping_timeout = Duration::from_secs(1)).await;
    let mut watcher = server.login(Transport::Unix, ADMIN).await;
    watcher.send("NOPING").await;
    watcher.send("LISTEN Registry::db").await;
    let mut silent = server.login(Transport::Unix, ADMIN).await;
    register(&mut silent, "REGISTER db tcp:db:5432").await;
    watcher.expect("SET Registry::db=1").await;
    // It sends no PING: cut after the timeout, and its instance with it.
    watcher.expect("SET Registry::db=0").await;
    silent.expect_prefix("TIMEOUT").await;
}

#[tokio::test]
async fn errors_limits_permissions_and_stats() {
    let server = TestServer::start_with(|c| c.registry.max_per_connection = 2).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for (line, error) in [
        ("REGISTER a=b tcp:h:1", "OVERHEAD E bad_name a=b"),
        ("REGISTER web tcp:h", "OVERHEAD E bad_endpoint web"),
        ("REGISTER web nowhere", "OVERHEAD E bad_endpoint web"),
        ("UNREGISTER web 99", "OVERHEAD E unknown_instance web 99"),
    ] {
        c.send(line).await;
        c.expect(error).await;
    }
    let id = register(&mut c, "REGISTER web queue:jobs").await;
    register(&mut c, "REGISTER web https://example.org/x").await;
    c.send("REGISTER web tls:h:443").await;
    c.expect("OVERHEAD E too_many_instances web").await;
    c.send("STATS").await;
    let stats = c.until_flushed("s").await;
    assert!(
        stats.contains(&"STAT registry_instances=2".to_string()),
        "{stats:?}"
    );
    assert!(
        stats.contains(&"STAT registry_refusals=1".to_string()),
        "{stats:?}"
    );
    assert!(
        stats
            .iter()
            .any(|l| l.starts_with("STAT registrations:") && l.ends_with("=2")),
        "{stats:?}"
    );
    c.send(&format!("UNREGISTER web {id}")).await;
    c.expect_nothing().await;
    assert_eq!(resolve(&mut c, "web").await.len(), 1);

    let mut ro = server.login(Transport::Unix, RO).await;
    assert_eq!(resolve(&mut ro, "web").await.len(), 1);
    for line in ["REGISTER x tcp:h:1", "UNREGISTER web 1"] {
        ro.send(line).await;
        ro.expect("OVERHEAD E permission_denied").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_on_one_slave_resolves_on_another_until_its_link_is_cut() {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let a = TestServer::start_with(|c| {
        c.master = Some(Master::Unix(relay.path.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(300);
    })
    .await;
    let b = {
        let master = Master::Unix(root.socket.clone());
        TestServer::start_with(move |c| c.master = Some(master)).await
    };
    links(&a, 1).await;
    links(&b, 1).await;
    links(&root, 2).await;
    routed(&a).await;
    routed(&b).await;
    let mut watcher = b.login(Transport::Unix, ADMIN).await;
    watcher.send("LISTEN Registry::web").await;
    watcher.expect_nothing().await;
    let mut instance = a.login(Transport::Unix, ADMIN).await;
    let id = register(&mut instance, "REGISTER web tcp:10.0.0.7:8080").await;
    watcher.expect("SET Registry::web=1").await;
    let got = resolve(&mut watcher, "web").await;
    assert_eq!(got.len(), 1);
    assert_eq!(field(&got[0], "id"), Some(id.as_str()));
    // Its node is the server its client is connected to (here every server has one name).
    assert!(field(&got[0], "node").is_some_and(|n| !n.is_empty()));

    // The slave's link goes: the root withdraws its instances and says so everywhere.
    relay.cut();
    watcher.expect("SET Registry::web=0").await;
    instances(&mut watcher, "web", 0).await;
    // The slave refuses registry commands while it has no master.
    links(&a, 0).await;
    instance.send("RESOLVE web").await;
    instance.expect("OVERHEAD E registry_unavailable web").await;
    relay.restore();
    links(&a, 1).await;
}
