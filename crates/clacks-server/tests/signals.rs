//! LISTEN / NOTIFY / SET routing, MONITOR output, OVERHEAD forwarding, CLIENTDISCONNECT.

mod common;

use common::{Connect, TestServer, Transport, ADMIN, RW};

async fn routing(listener_t: Transport, sender_t: Transport) {
    let server = TestServer::start().await;
    let mut l1 = server.login(listener_t, ADMIN).await;
    let mut l2 = server.login(sender_t, RW).await;
    let mut p = server.login(sender_t, ADMIN).await;
    l1.send("LISTEN demo::chan").await;
    l1.send("LISTEN demo::evt").await;
    l1.send("LISTEN demo::chan").await;
    l2.send("LISTEN demo::chan").await;
    p.send("LISTEN demo::chan").await;
    for c in [&mut l1, &mut l2, &mut p] {
        c.expect_nothing().await;
    }
    p.send("SET demo::chan=hello from master").await;
    p.send("NOTIFY demo::evt").await;
    p.send("SETANDSTORE demo::chan=set and stored").await;
    p.send("SET demo::other=x").await;
    l1.expect("SET demo::chan=hello from master").await;
    l1.expect("NOTIFY demo::evt").await;
    l1.expect("SET demo::chan=set and stored").await;
    l2.expect("SET demo::chan=hello from master").await;
    l2.expect("SET demo::chan=set and stored").await;
    // Never echoed to the sender, although it listens.
    p.expect_nothing().await;
    l1.send("UNLISTEN demo::chan").await;
    l1.expect_nothing().await;
    p.send("SET demo::chan=after unlisten").await;
    l2.expect("SET demo::chan=after unlisten").await;
    l1.expect_nothing().await;
    l1.send("RETRIEVE demo::chan").await;
    l1.expect("RETRIEVED demo::chan=set and stored").await;
}

#[tokio::test]
async fn listen_notify_set_across_tls_and_unix() {
    routing(Transport::Tls, Transport::Unix).await;
    routing(Transport::Unix, Transport::Tls).await;
}

#[tokio::test]
async fn monitor_mirrors_lines_but_never_auth_tokens() {
    let server = TestServer::start().await;
    let mut m = server.login(Transport::Unix, ADMIN).await;
    m.send("MONITOR").await;
    let own = m.expect_prefix("DEBUG ").await;
    assert!(own.ends_with("=MONITOR"), "{own}");
    let mut c = server.connect(Transport::Tls).await;
    let connected = m.expect_prefix("DEBUG CONNECTED=127.0.0.1:").await;
    let cid = connected.trim_start_matches("DEBUG CONNECTED=").to_string();
    c.expect_prefix("CLACKS ").await;
    c.expect("OVERHEAD M Authentication required").await;
    c.send("CLACKS secret-client").await;
    c.send(&format!("OVERHEAD A {}", common::token(ADMIN.0, ADMIN.1)))
        .await;
    c.expect("OVERHEAD O Welcome!").await;
    c.send("STORE k=v").await;
    c.send("OVERHEAD NM not logged").await;
    c.send("PING").await;
    c.expect_nothing().await;
    m.expect(&format!("DEBUG {cid}=STORE k=v")).await;
    m.expect(&format!("DEBUG {cid}=PING")).await;
    m.expect(&format!("DEBUG {cid}=FLUSH quiet")).await;
    c.send("QUIT").await;
    c.expect_closed().await;
    m.expect(&format!("DEBUG {cid}=QUIT")).await;
    m.expect(&format!(
        "DEBUG DISCONNECTED={cid} (0 bytes discarded from outbuffer)"
    ))
    .await;
    let rest = m.until_flushed("end").await;
    assert!(rest.iter().all(|l| !l.contains("OVERHEAD A")), "{rest:?}");
    assert!(m.expect_prefix("DEBUG ").await.ends_with("=FLUSH end"));
    m.send("UNMONITOR").await;
    m.expect_nothing().await;
}

#[tokio::test]
async fn overhead_forwarding_reaches_everyone_once() {
    let server = TestServer::start().await;
    let mut a = server.login(Transport::Unix, ADMIN).await;
    let mut b = server.login(Transport::Tls, RW).await;
    let mut unauth = server.connect(Transport::Unix).await;
    unauth.expect_prefix("CLACKS ").await;
    unauth.expect("OVERHEAD M Authentication required").await;
    a.send("OVERHEAD GNU Terry Pratchett").await;
    a.expect("OVERHEAD GN Terry Pratchett").await;
    b.expect("OVERHEAD GN Terry Pratchett").await;
    unauth.expect("OVERHEAD GN Terry Pratchett").await;
    b.send("OVERHEAD GM hello").await;
    a.expect("OVERHEAD GM hello").await;
    b.expect_nothing().await;
}

#[tokio::test]
async fn clientdisconnect_kicks_exactly_that_client() {
    let server = TestServer::start().await;
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    let mut victim = server.login(Transport::Tls, RW).await;
    let mut bystander = server.login(Transport::Unix, RW).await;
    admin.send("CLIENTLIST").await;
    admin.expect("CLIENTLISTSTART").await;
    let mut cid = None;
    loop {
        let l = admin.line().await.unwrap();
        if l == "CLIENTLISTEND" {
            break;
        }
        if l.contains("CLIENTINFO=test-rwuser") && l.contains("HOST=127.0.0.1") {
            cid = Some(l["CLIENT CID=".len()..l.find(';').unwrap()].to_string());
        }
    }
    let cid = cid.expect("victim in the list");
    admin.send("CLIENTDISCONNECT no-such-client").await;
    admin.send(&format!("CLIENTDISCONNECT {cid}")).await;
    admin.expect_nothing().await;
    victim.expect("QUIT").await;
    victim.expect_closed().await;
    bystander.expect_nothing().await;
}

#[tokio::test]
async fn overhead_close_all_closes_every_connection() {
    let server = TestServer::start().await;
    let mut admin = server.login(Transport::Unix, ADMIN).await;
    let mut other = server.login(Transport::Tls, RW).await;
    admin.send("OVERHEAD C 1").await;
    admin.expect("QUIT").await;
    admin.expect_closed().await;
    other.expect("QUIT").await;
    other.expect_closed().await;
    // New connections are still served.
    let mut again = server.login(Transport::Unix, ADMIN).await;
    again.expect_nothing().await;
}
