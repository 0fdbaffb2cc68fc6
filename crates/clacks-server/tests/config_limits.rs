//! Numeric config elements at their limits: a server configured at every maximum serves
//! connections (every deadline it computes fits). The `clacksd` binary's own checks of bad values
//! are tested in `crates/clacksd/tests/`.

mod common;

use clacks_server::config::table;
use clacks_server::Config;
use common::{Connect, TestServer, Transport, ADMIN};

/// Every numeric element at its largest allowed value, as the config file would say it.
fn maximal_config() -> Config {
    let mut xml = format!(
        "<clacks><username>{}</username><password>{}</password><socket>unused</socket>",
        ADMIN.0, ADMIN.1
    );
    for n in table::seconds() {
        xml += &format!("<{0}>{1}</{0}>", n.element, n.max.as_secs_f64());
    }
    for n in table::counts().filter(|n| !n.element.contains('/')) {
        xml += &format!("<{0}>{1}</{0}>", n.element, n.max);
    }
    let w = table::WORKER_THREADS;
    xml += &format!("<{0}>{1}</{0}>", w.element, w.max);
    xml += &format!(
        "<memcached><socket>unused</socket><maxitemsize>{}</maxitemsize></memcached></clacks>",
        table::MEMCACHED_MAX_ITEM_SIZE.max
    );
    let mut c = Config::from_xml(&xml, "h").unwrap();
    c.time_offset = table::TIME_OFFSET.max;
    c
}

#[tokio::test]
async fn a_server_at_every_maximum_serves_connections() {
    let max = maximal_config();
    assert_eq!(max.auth_timeout, table::AUTH_TIMEOUT.max);
    let server = TestServer::start_with(|c| {
        let base = std::mem::replace(c, max);
        c.users = base.users;
        c.tls_cert = base.tls_cert;
        c.tls_key = base.tls_key;
        c.sockets = base.sockets;
        let item = c.memcached.as_ref().map(|m| m.max_item_size);
        c.memcached = base.memcached;
        if let (Some(m), Some(item)) = (c.memcached.as_mut(), item) {
            m.max_item_size = item;
        }
    })
    .await;
    // Before login: the auth deadline.
    let mut idle = server.connect(Transport::Unix).await;
    idle.expect_prefix("CLACKS ").await;
    // After login, with PING: the ping deadline; then NOPING.
    let mut c = server.login(Transport::Tls, ADMIN).await;
    c.send("PING").await;
    c.send("STORE k=v").await;
    c.send("RETRIEVE k").await;
    c.expect("RETRIEVED k=v").await;
    c.send("NOPING").await;
    c.expect_nothing().await;
    // An interclacks link: its ping deadline and keepalive interval.
    let mut link = server.login(Transport::Unix, ADMIN).await;
    link.send("OVERHEAD I 1").await;
    link.expect_prefix("CLACKS ").await;
    link.send("PING").await;
    let _ = link.until_flushed("link").await;
    // Stalled-write and idle timers of the memcached listener.
    let mut mc = common::Client::new(
        tokio::net::UnixStream::connect(&server.memcached_socket)
            .await
            .unwrap(),
    );
    mc.send("get nothing").await;
    mc.expect("END").await;
    c.until_flushed("alive").await;
    idle.send("QUIT").await;
    server.shutdown().await;
}
