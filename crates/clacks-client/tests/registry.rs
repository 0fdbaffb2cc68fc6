//! The service registry: registrations and their guard, resolving, the Resolver's live list,
//! round robin and failover, and registering again after a reconnect.

mod common;

use std::time::Duration;

use clacks_client::{
    Client, ClientError, ConnectOptions, Event, Events, FailoverError, RegistryRefusal, Resolver,
};
use clacks_server::testing::{TestServer, ADMIN};
use common::{event, within, WAIT};

async fn connect(server: &TestServer, name: &str) -> (Client, Events) {
    let mut o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1)
        .client_name(name)
        .request_timeout(WAIT);
    o.reconnect_min = Duration::from_millis(20);
    within(Client::connect(o)).await.unwrap()
}

/// The endpoints of `service`, oldest first.
async fn endpoints(c: &Client, service: &str) -> Vec<String> {
    within(c.resolve(service))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.endpoint)
        .collect()
}

/// Waits (on the server's signals) until the resolver's endpoints are `want`.
async fn until(resolver: &mut Resolver, want: &[&str]) {
    within(async {
        loop {
            let got: Vec<&str> = resolver
                .instances()
                .iter()
                .map(|i| i.endpoint.as_str())
                .collect();
            if got == want {
                return;
            }
            resolver.changed().await.unwrap();
        }
    })
    .await
}

#[tokio::test]
async fn several_instances_register_resolve_and_refusals_are_typed() {
    let server = TestServer::start().await;
    let (a, _) = connect(&server, "a").await;
    let (b, _) = connect(&server, "b").await;
    let one = within(a.register("web", "tcp:10.0.0.1:80", &[("zone", "x")]))
        .await
        .unwrap();
    let two = within(b.register("web", "tcp:10.0.0.2:80", &[]))
        .await
        .unwrap();
    let _db = within(a.register("db", "unix:/run/db.sock", &[("status", "draining")]))
        .await
        .unwrap();
    assert_eq!((one.service(), one.endpoint()), ("web", "tcp:10.0.0.1:80"));
    assert_ne!(one.id(), two.id());

    let web = within(b.resolve("web")).await.unwrap();
    assert_eq!(web.len(), 2);
    assert_eq!(Some(web[0].id), one.id());
    assert_eq!(web[0].endpoint, "tcp:10.0.0.1:80");
    assert_eq!(web[0].meta("zone"), Some("x"));
    assert_eq!(web[0].status, "up");
    assert!(!web[0].node.is_empty() && web[0].since > 0.0);
    assert_eq!(web[1].endpoint, "tcp:10.0.0.2:80");
    assert!(within(a.resolve("nothing")).await.unwrap().is_empty());
    assert_eq!(
        within(a.services()).await.unwrap(),
        vec![("db".to_string(), 1, 1), ("web".to_string(), 2, 0)]
    );

    // Refusals are the calls' typed errors.
    let err = within(a.register("web", "nowhere", &[])).await.unwrap_err();
    assert_eq!(err.registry_refusal(), Some(RegistryRefusal::BadEndpoint));
    assert!(err.is_refused());
    let two_id = two.id().unwrap();
    let err = within(a.unregister("web", two_id)).await.unwrap_err();
    match err {
        ClientError::RegistryRefused {
            service, reason, ..
        } => {
            assert_eq!(service, "web");
            assert_eq!(reason, RegistryRefusal::UnknownInstance);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.register("a b", "tcp:h:1", &[]).await,
        Err(ClientError::InvalidArgument(_))
    ));

    // New metadata updates the same instance.
    within(one.set_meta(&[("status", "draining")]))
        .await
        .unwrap();
    assert_eq!(one.id(), Some(web[0].id));
    assert!(within(b.resolve("web")).await.unwrap()[0].is_draining());

    // Explicitly, through the guard and through the client.
    within(one.unregister()).await.unwrap();
    drop(two);
    let raw = within(b.raw("REGISTER web tcp:10.0.0.3:80")).await.unwrap();
    let id: u64 = raw[0].rsplit(' ').next().unwrap().parse().unwrap();
    within(b.unregister("web", id)).await.unwrap();
    within(b.flush()).await.unwrap();
    assert!(endpoints(&a, "web").await.is_empty());
}

#[tokio::test]
async fn a_dropped_guard_unregisters_once_and_a_lost_connection_takes_the_instance() {
    let server = TestServer::start().await;
    let (a, mut events) = connect(&server, "a").await;
    let (b, _) = connect(&server, "b").await;
    let reg = within(a.register("web", "tcp:h:1", &[])).await.unwrap();
    let kept = within(a.register("web", "tcp:h:2", &[])).await.unwrap();
    assert_eq!(endpoints(&b, "web").await, ["tcp:h:1", "tcp:h:2"]);
    drop(reg);
    within(a.flush()).await.unwrap();
    assert_eq!(endpoints(&b, "web").await, ["tcp:h:2"]);
    // Nothing was refused (never withdrawn twice).
    assert!(events
        .try_next()
        .is_none_or(|e| matches!(e, Event::ServerInfo(_))));

    a.disconnect().await.unwrap();
    within(b.flush()).await.unwrap();
    assert!(endpoints(&b, "web").await.is_empty());
    drop(kept); // the client is closed: nothing to send
}

#[tokio::test]
async fn the_resolver_follows_changes_rotates_and_skips_draining_instances() {
    let server = TestServer::start().await;
    let (a, _) = connect(&server, "a").await;
    let (b, _) = connect(&server, "b").await;
    let (watcher, _) = connect(&server, "watcher").await;
    let _one = within(a.register("web", "tcp:h:1", &[])).await.unwrap();
    let mut resolver = within(watcher.resolver("web")).await.unwrap();
    assert_eq!(resolver.service(), "web");
    until(&mut resolver, &["tcp:h:1"]).await;

    // A new instance, and a draining one, come with the signal.
    let _two = within(b.register("web", "tcp:h:2", &[])).await.unwrap();
    let _three = within(b.register("web", "tcp:h:3", &[("status", "draining")]))
        .await
        .unwrap();
    until(&mut resolver, &["tcp:h:1", "tcp:h:2", "tcp:h:3"]).await;
    let mut picked = Vec::new();
    for _ in 0..4 {
        let i = within(resolver.next()).await.unwrap().unwrap();
        picked.push(i.endpoint);
    }
    assert_eq!(picked, ["tcp:h:1", "tcp:h:2", "tcp:h:1", "tcp:h:2"]);

    // The instances of a lost connection go; `next` catches up by itself.
    b.disconnect().await.unwrap();
    until(&mut resolver, &["tcp:h:1"]).await;
    for _ in 0..2 {
        let i = within(resolver.next()).await.unwrap().unwrap();
        assert_eq!(i.endpoint, "tcp:h:1");
    }
    let _four = within(a.register("web", "tcp:h:4", &[])).await.unwrap();
    // Our FLUSHED comes after the signal the server sent us before it.
    within(a.flush()).await.unwrap();
    within(watcher.flush()).await.unwrap();
    let seen: Vec<String> = [
        within(resolver.next()).await.unwrap().unwrap(),
        within(resolver.next()).await.unwrap().unwrap(),
    ]
    .into_iter()
    .map(|i| i.endpoint)
    .collect();
    assert!(seen.contains(&"tcp:h:4".to_string()), "{seen:?}");

    // Draining instances only: nothing to hand out.
    let mut drained = within(watcher.resolver("batch")).await.unwrap();
    let _d = within(a.register("batch", "queue:batch", &[("status", "draining")]))
        .await
        .unwrap();
    within(a.flush()).await.unwrap();
    within(watcher.flush()).await.unwrap();
    assert_eq!(within(drained.next()).await.unwrap(), None);
    assert_eq!(drained.instances().len(), 1);
}

#[tokio::test]
async fn connect_with_moves_on_to_the_next_instance_when_connecting_fails() {
    let server = TestServer::start().await;
    let (a, _) = connect(&server, "a").await;
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.sock");
    let live = dir.path().join("live.sock");
    let listener = tokio::net::UnixListener::bind(&live).unwrap();
    let _dead = within(a.register("api", &format!("unix:{}", dead.display()), &[]))
        .await
        .unwrap();
    let _live = within(a.register("api", &format!("unix:{}", live.display()), &[]))
        .await
        .unwrap();
    let mut resolver = within(a.resolver("api")).await.unwrap();
    let dial = |i: clacks_client::Instance| async move {
        let path = i.endpoint.strip_prefix("unix:").unwrap().to_string();
        tokio::net::UnixStream::connect(path).await
    };
    // The dead one comes first, fails, and the live one is taken.
    let (instance, _stream) = within(resolver.connect_with(dial)).await.unwrap();
    assert_eq!(instance.endpoint, format!("unix:{}", live.display()));
    within(listener.accept()).await.unwrap();
    // The failed one is skipped from now on (until the list changes).
    let (again, _stream) = within(resolver.connect_with(dial)).await.unwrap();
    assert_eq!(again.id, instance.id);
    let next = within(resolver.next()).await.unwrap().unwrap();
    assert_eq!(next.id, instance.id);

    // Every instance down: each was tried once.
    drop(listener);
    std::fs::remove_file(&live).unwrap();
    match within(resolver.connect_with(dial)).await {
        Err(FailoverError::AllFailed { failures, .. }) => assert_eq!(failures.len(), 2),
        other => panic!("{other:?}"),
    }
    let mut none = within(a.resolver("nobody")).await.unwrap();
    assert!(matches!(
        within(none.connect_with(dial)).await,
        Err(FailoverError::NoInstance(s)) if s == "nobody"
    ));
}

#[tokio::test]
async fn a_registration_is_made_again_after_a_reconnect_and_withdrawn_when_dropped() {
    let server = TestServer::start().await;
    let (a, mut events) = connect(&server, "registrant").await;
    let (admin, _) = connect(&server, "admin").await;
    let reg = within(a.register("web", "tcp:h:1", &[("zone", "x")]))
        .await
        .unwrap();
    let first = reg.id().unwrap();
    let mut resolver = within(admin.resolver("web")).await.unwrap();

    let clients = within(admin.clientlist()).await.unwrap();
    let victim = clients
        .iter()
        .find(|e| &e.clientinfo[..] == b"registrant")
        .expect("the connection");
    let cid = String::from_utf8_lossy(&victim.cid).into_owned();
    within(admin.client_disconnect(&cid)).await.unwrap();
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert_eq!(event(&mut events).await, Event::Reconnected);

    // Back with a new id, the same endpoint and metadata.
    within(async {
        loop {
            let i = resolver.instances();
            if i.len() == 1 && i[0].id != first {
                assert_eq!(i[0].endpoint, "tcp:h:1");
                assert_eq!(i[0].meta("zone"), Some("x"));
                return;
            }
            resolver.changed().await.unwrap();
        }
    })
    .await;
    within(a.flush()).await.unwrap();
    let second = reg.id().unwrap();
    assert_ne!(second, first);
    assert_eq!(resolver.instances()[0].id, second);

    // New metadata, kept for later reconnects too.
    within(reg.set_meta(&[("status", "draining")]))
        .await
        .unwrap();
    assert!(within(admin.resolve("web")).await.unwrap()[0].is_draining());
    assert_eq!(reg.id(), Some(second));

    drop(reg);
    within(a.flush()).await.unwrap();
    assert!(endpoints(&admin, "web").await.is_empty());
}
