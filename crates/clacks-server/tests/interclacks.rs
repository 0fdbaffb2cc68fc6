//! Interclacks trees of in-process servers: replication, signals, resync, partitions, skew.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use clacks_server::config::Master;
use common::relay::Relay;
use common::{eventually, links, Client, Connect, TestServer, Transport, ADMIN, RO, WAIT};
use tokio::net::UnixListener;

/// A slave of `master` (over its Unix socket, or TLS).
async fn slave_of(master: &TestServer, tls: bool) -> TestServer {
    let m = if tls {
        Master::Tcp {
            ip: "127.0.0.1".into(),
            port: master.addr.port(),
        }
    } else {
        Master::Unix(master.socket.clone())
    };
    slave_via(m, |_| {}).await
}

async fn slave_via(master: Master, tweak: impl FnOnce(&mut clacks_server::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.master = Some(master);
        c.interclacks_reconnect_timeout = Duration::from_millis(500);
        tweak(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_level_tree_replicates_everything_everywhere() {
    let root = TestServer::start().await;
    let a = slave_of(&root, false).await;
    let b = slave_of(&root, true).await;
    let g = slave_of(&a, false).await;
    links(&root, 2).await;
    links(&a, 2).await;
    links(&b, 1).await;
    links(&g, 1).await;
    let nodes = [&root, &a, &b, &g];

    // Cache commands at any node reach every node.
    for (i, n) in nodes.iter().enumerate() {
        let mut c = n.login(Transport::Unix, ADMIN).await;
        c.send(&format!("STORE key{i}=from node {i}")).await;
        c.send("INCREMENT counter").await;
        c.expect_nothing().await;
    }
    for n in nodes {
        for i in 0..4 {
            eventually(n, &format!("key{i}"), Some(&format!("from node {i}"))).await;
        }
        eventually(n, "counter", Some("4")).await;
    }
    let mut gc = g.login(Transport::Unix, ADMIN).await;
    gc.send("REMOVE key0").await;
    gc.send("SETANDSTORE sas=v").await;
    gc.expect_nothing().await;
    for n in nodes {
        eventually(n, "key0", None).await;
        eventually(n, "sas", Some("v")).await;
    }

    // Signals from any node reach listeners at every other node, never the sender.
    let mut listeners = Vec::new();
    for n in nodes {
        let mut l = n.login(Transport::Unix, ADMIN).await;
        l.send("LISTEN chan").await;
        l.expect_nothing().await;
        listeners.push(l);
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut sender = n.login(Transport::Tls, ADMIN).await;
        sender.send("LISTEN chan").await;
        sender.send(&format!("SET chan=hello from {i}")).await;
        sender.send("NOTIFY chan").await;
        sender.expect_nothing().await;
        for l in listeners.iter_mut() {
            l.expect(&format!("SET chan=hello from {i}")).await;
            l.expect("NOTIFY chan").await;
        }
    }
    for l in listeners.iter_mut() {
        l.expect_nothing().await;
    }

    // OVERHEAD G travels the whole tree once; CLEARCACHE too.
    gc.send("OVERHEAD GNU tree wide").await;
    gc.expect("OVERHEAD GN tree wide").await;
    for l in listeners.iter_mut() {
        l.expect("OVERHEAD GN tree wide").await;
        l.expect_nothing().await;
    }
    // REMOVE at every node reaches every node.
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let mut c = n.login(Transport::Unix, ADMIN).await;
        c.send(&format!("REMOVE key{i}")).await;
        c.expect_nothing().await;
    }
    for n in nodes {
        for i in 0..4 {
            eventually(n, &format!("key{i}"), None).await;
        }
    }
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    rc.send("CLEARCACHE").await;
    rc.expect_nothing().await;
    for n in nodes {
        eventually(n, "counter", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commands_are_not_replicated() {
    let root = TestServer::start().await;
    let a = slave_of(&root, false).await;
    links(&root, 1).await;
    let mut ro = a.login(Transport::Unix, RO).await;
    ro.send("STORE secret=x").await;
    ro.expect("OVERHEAD E permission_denied").await;
    let mut admin = a.login(Transport::Unix, ADMIN).await;
    admin.send("STORE marker=1").await;
    admin.expect_nothing().await;
    eventually(&root, "marker", Some("1")).await;
    eventually(&root, "secret", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_slave_gets_the_data_and_a_restarted_master_gets_it_back() {
    let root = TestServer::start().await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    rc.send("STORE early=before the slave").await;
    rc.send("STORE gone=x").await;
    rc.send("REMOVE gone").await;
    rc.expect_nothing().await;
    drop(rc);
    let a = slave_of(&root, false).await;
    eventually(&a, "early", Some("before the slave")).await;
    let mut ac = a.login(Transport::Unix, ADMIN).await;
    ac.send("KEYLIST").await;
    assert_eq!(
        ac.until_flushed("k").await,
        ["KEYLISTSTART", "KEY early", "KEY gone", "KEYLISTEND"]
    );

    // The master restarts empty (no persistence); the slave reconnects and gives it the data.
    let root = root.restart(|_| {}).await;
    eventually(&root, "early", Some("before the slave")).await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    rc.send("KEYLIST").await;
    assert_eq!(
        rc.until_flushed("k").await,
        ["KEYLISTSTART", "KEY early", "KEY gone", "KEYLISTEND"]
    );
}

async fn partition_heals(stop_reading: bool) {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let a = slave_via(Master::Unix(relay.path.clone()), |c| {
        c.interclacks_ping_timeout = Duration::from_secs(3);
    })
    .await;
    links(&root, 1).await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut ac = a.login(Transport::Unix, ADMIN).await;
    for k in ["both", "del_on_slave", "del_on_master", "old_on_master"] {
        rc.send(&format!("STORE {k}=original")).await;
    }
    rc.expect_nothing().await;
    eventually(&a, "old_on_master", Some("original")).await;

    if stop_reading {
        // The master's messages stop reaching the slave: the slave's link times out.
        relay.paused.store(true, Ordering::SeqCst);
        relay.cut.store(true, Ordering::SeqCst);
        links(&a, 0).await;
    } else {
        relay.cut();
        links(&a, 0).await;
    }
    // Both sides keep writing while apart; later writes must win, deletes included.
    rc.send("STORE both=master first").await;
    rc.send("STORE old_on_master=master, older").await;
    rc.send("REMOVE del_on_master").await;
    rc.send("STORE only_master=m").await;
    rc.expect_nothing().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    ac.send("STORE both=slave later").await;
    ac.send("STORE old_on_master=slave, newer").await;
    ac.send("REMOVE del_on_slave").await;
    ac.send("STORE only_slave=s").await;
    ac.expect_nothing().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    rc.send("STORE del_on_slave=master, but older than the delete?")
        .await;
    rc.expect_nothing().await;

    relay.restore();
    for node in [&root, &a] {
        eventually(node, "both", Some("slave later")).await;
        eventually(node, "old_on_master", Some("slave, newer")).await;
        eventually(node, "del_on_master", None).await;
        eventually(node, "only_master", Some("m")).await;
        eventually(node, "only_slave", Some("s")).await;
        // The master's STORE came after the slave's REMOVE: the newer write wins.
        eventually(
            node,
            "del_on_slave",
            Some("master, but older than the delete?"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_link_heals_to_the_newest_values() {
    partition_heals(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_stops_reading_is_dropped_and_heals() {
    partition_heals(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_with_five_seconds_of_clock_skew_converge() {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let a = slave_via(Master::Unix(relay.path.clone()), |c| c.time_offset = 5.0).await;
    links(&root, 1).await;
    relay.cut();
    links(&a, 0).await;
    let mut ac = a.login(Transport::Unix, ADMIN).await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    // First on the fast-clock slave, then (later in real time) on the master.
    ac.send("STORE k=first").await;
    ac.expect_nothing().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    rc.send("STORE k=second").await;
    rc.expect_nothing().await;
    relay.restore();
    links(&root, 1).await;
    eventually(&a, "k", Some("second")).await;
    eventually(&root, "k", Some("second")).await;
}

/// Counts the KEYSYNC lines a server receives, as its monitor sees them.
async fn keysync_counter(server: &TestServer) -> tokio::task::JoinHandle<usize> {
    let mut m = server.login(Transport::Unix, ADMIN).await;
    m.send("MONITOR").await;
    m.until_flushed("m").await;
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok(Some(line)) = m.line_within(Duration::from_millis(1500)).await {
            if line.starts_with("DEBUG ") && line.contains("=KEYSYNC ") {
                n += 1;
            }
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_unchanged_data_sends_no_keysync_wave() {
    const KEYS: usize = 50;
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    // Skewed clocks: records cross links with corrected times, and come back exactly.
    let a = slave_via(Master::Unix(relay.path.clone()), |c| c.time_offset = 5.0).await;
    let b = slave_of(&root, false).await;
    let g = slave_via(Master::Unix(a.socket.clone()), |c| c.time_offset = -3.0).await;
    links(&root, 2).await;
    links(&g, 1).await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut gc = g.login(Transport::Unix, ADMIN).await;
    for i in 0..KEYS {
        let c = if i % 2 == 0 { &mut rc } else { &mut gc };
        c.send(&format!("STORE k{i}=v{i}")).await;
    }
    rc.send("REMOVE k0").await;
    rc.expect_nothing().await;
    gc.expect_nothing().await;
    for n in [&root, &a, &b, &g] {
        for i in [KEYS - 2, KEYS - 1] {
            eventually(n, &format!("k{i}"), Some(&format!("v{i}"))).await;
        }
    }

    relay.cut();
    links(&a, 1).await;
    let at_root = keysync_counter(&root).await;
    let at_a = keysync_counter(&a).await;
    let at_b = keysync_counter(&b).await;
    let at_g = keysync_counter(&g).await;
    relay.restore();
    links(&root, 2).await;
    links(&a, 2).await;
    // Bound: the master's dump to the reconnecting slave (one line per record), nothing back,
    // nothing anywhere else.
    assert_eq!(at_a.await.unwrap(), KEYS);
    assert_eq!(at_root.await.unwrap(), 0);
    assert_eq!(at_b.await.unwrap(), 0);
    assert_eq!(at_g.await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_kept_alive_and_listed() {
    let root =
        TestServer::start_with(|c| c.interclacks_ping_timeout = Duration::from_secs(3)).await;
    let a = slave_via(Master::Unix(root.socket.clone()), |c| {
        c.interclacks_ping_timeout = Duration::from_secs(3)
    })
    .await;
    links(&root, 1).await;
    // Longer than the link timeout: PINGs every second keep it up.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut c = root.login(Transport::Unix, ADMIN).await;
    c.send("CLIENTLIST").await;
    let list = c.until_flushed("l").await;
    let link = list
        .iter()
        .find(|l| l.contains("INTERCLACKS=1;"))
        .expect("link listed");
    assert!(link.contains("in interclacks client mode"), "{link}");
    assert!(!link.contains("LASTINTERCLACKSPING=0;"), "{link}");
    let mut ac = a.login(Transport::Unix, ADMIN).await;
    ac.send("CLIENTLIST").await;
    let list = ac.until_flushed("l").await;
    assert!(
        list.iter()
            .any(|l| l.starts_with("CLIENT CID=unixdomainsocket:interclacksmaster;HOST=;PORT=;")),
        "{list:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_master_syncs_other_commands_wait_and_then_run_in_order() {
    // A hand-driven master speaking the v36 master side of the handshake.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake-master.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let slave = slave_via(Master::Unix(path), |_| {}).await;
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut master = Client::new(stream);
    master
        .expect(concat!(
            "CLACKS clacksd ",
            env!("CARGO_PKG_VERSION"),
            " origin-times queues in interclacks client mode"
        ))
        .await;
    let token = clacks_server::testing::token(ADMIN.0, ADMIN.1);
    master.expect(&format!("OVERHEAD A {token}")).await;
    master.expect("OVERHEAD I 1").await;
    master.send("CLACKS PageCamel 36").await;
    master.send("OVERHEAD M Authentication required").await;
    master.send(&format!("OVERHEAD A {token}")).await;
    master.expect("OVERHEAD O Welcome!").await;
    let mut local = slave.login(Transport::Unix, ADMIN).await;
    local.send("STORE mine=local").await;
    local.expect_nothing().await;
    // Nothing is forwarded before the sync: the write goes in the answer, with its time.
    master.expect_nothing().await;

    master.send("OVERHEAD L 1").await;
    master.send("OVERHEAD T 1000").await;
    master.send("FLUSH locked").await;
    master.expect("FLUSHED locked").await;
    // Locked: the local client's commands are read but wait.
    local.send("STORE x=from client").await;
    local.send("RETRIEVE x").await;
    assert_eq!(local.line_within(Duration::from_millis(300)).await, Err(()));
    master.send("KEYSYNC 900 900 U x=from master").await;
    master.send("KEYSYNC 900 900 U mine=older on master").await;
    master.send("OVERHEAD L 0").await;
    // Released: they run in order after the sync, and the slave answers with what differs.
    local.expect("RETRIEVED x=from client").await;
    let clock = master.expect_prefix("OVERHEAD T ").await;
    assert!(clock.len() > "OVERHEAD T ".len());
    let answer = master.expect_prefix("KEYSYNC ").await;
    assert!(answer.ends_with(" U mine=local"), "{answer}");
    // A v36 master gets the write as a KEYSYNC with the time it was made.
    let forwarded = master.expect_prefix("KEYSYNC ").await;
    assert!(forwarded.ends_with(" U x=from client"), "{forwarded}");
    master.send("FLUSH end").await;
    master.expect("FLUSHED end").await;
}

/// Two servers pushing at each other over their link (each writing while the other writes) keep
/// reading, so neither waits for a stall timeout: a write after the burst arrives at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_both_ways_over_a_link_does_not_deadlock() {
    let root = TestServer::start().await;
    let slave = slave_of(&root, false).await;
    links(&root, 1).await;
    links(&slave, 1).await;
    let mut a = root.login(Transport::Unix, ADMIN).await;
    let mut b = slave.login(Transport::Unix, ADMIN).await;
    let payload = "x".repeat(100);
    let burst: String = (0..20_000)
        .map(|i| format!("SET burst={i}:{payload}\r\n"))
        .collect();
    tokio::join!(a.send_raw(burst.as_bytes()), b.send_raw(burst.as_bytes()));
    a.send("STORE after=root").await;
    b.send("STORE after2=slave").await;
    eventually(&slave, "after", Some("root")).await;
    eventually(&root, "after2", Some("slave")).await;
}

/// Input a link runs while its write is pending gets its replies once, after what was being
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_input_run_during_a_pending_write_go_out_once() {
    let root = TestServer::start().await;
    let mut peer = root.login(Transport::Unix, ADMIN).await;
    peer.send("OVERHEAD I 1").await;
    links(&root, 1).await;
    // Megabytes of large signals (written piece by piece, not copied) for the link, which does
    // not read yet: the root's write to it is pending.
    let mut sender = root.login(Transport::Unix, ADMIN).await;
    let payload = "x".repeat(70_000);
    let burst: String = (0..40)
        .map(|i| format!("SET s={i}:{payload}\r\n"))
        .collect();
    sender.send_raw(burst.as_bytes()).await;
    sender.send("FLUSH s").await;
    sender.expect("FLUSHED s").await;
    peer.send("FLUSH once").await;
    let mut flushed = 0;
    let mut signals = 0;
    loop {
        let line = peer.line().await.expect("link closed");
        if line.starts_with("SET s=") {
            signals += 1;
        }
        if line == "FLUSHED once" {
            flushed += 1;
            // Anything written twice would follow right after.
            peer.send("FLUSH end").await;
        }
        if line == "FLUSHED end" {
            break;
        }
    }
    assert_eq!(flushed, 1);
    assert_eq!(signals, 40);
}

/// A slave that links up again while its master is held forwards nothing on the new link until
/// the sync: its write made meanwhile travels in the sync with the time it was made, so a later
/// write on the master wins everywhere (it used to be replayed on the master with the master's
/// later clock, and win there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_made_before_the_sync_keeps_its_time() {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let slave = slave_via(Master::Unix(relay.path.clone()), |_| {}).await;
    links(&root, 1).await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut sc = slave.login(Transport::Unix, ADMIN).await;

    // The master stops answering; the slave links up again through the held relay.
    relay.held.store(true, Ordering::SeqCst);
    relay.cut();
    links(&root, 0).await;
    relay.cut.store(false, Ordering::SeqCst);
    links(&slave, 1).await;

    sc.send("STORE k=slave-old").await;
    sc.send("FLUSH a").await;
    sc.expect("FLUSHED a").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    rc.send("STORE k=root-new").await;
    rc.send("FLUSH b").await;
    rc.expect("FLUSHED b").await;

    relay.held.store(false, Ordering::SeqCst);
    links(&root, 1).await;
    // Markers written after the release: once each has crossed, so has everything before it.
    rc.send("STORE from_root=1").await;
    eventually(&slave, "from_root", Some("1")).await;
    sc.send("STORE from_slave=1").await;
    eventually(&root, "from_slave", Some("1")).await;
    eventually(&root, "k", Some("root-new")).await;
    eventually(&slave, "k", Some("root-new")).await;
}
