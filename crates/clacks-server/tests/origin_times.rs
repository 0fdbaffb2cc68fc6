//! Changes carry the time they were made at their origin: a write delayed on a link loses to a
//! later write made elsewhere, increments made at the same time on both sides add up, a store and
//! an increment of one key end the same everywhere, and v36 peers get what they can read.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use clacks_server::config::Master;
use common::relay::Relay;
use common::{eventually, links, token, Client, Connect, TestServer, Transport, ADMIN};

/// A root and a slave linked through a relay the test can hold (a link whose lines are delayed
/// in transit, as under a partition shorter than the ping timeout).
async fn held_pair() -> (TestServer, TestServer, Relay) {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let slave = TestServer::start_with(|c| {
        c.master = Some(Master::Unix(relay.path.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(500);
    })
    .await;
    links(&root, 1).await;
    links(&slave, 1).await;
    (root, slave, relay)
}

/// Sends `lines` and waits until the server has run them.
async fn run(c: &mut Client, lines: &[&str]) {
    for line in lines {
        c.send(line).await;
    }
    assert_eq!(c.until_flushed("ran").await, Vec::<String>::new());
}

/// Lets the link flow again and waits until everything sent before has crossed both ways.
async fn release(relay: &Relay, root: &TestServer, slave: &TestServer) {
    relay.held.store(false, Ordering::SeqCst);
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut sc = slave.login(Transport::Unix, ADMIN).await;
    run(&mut rc, &["STORE marker_down=1"]).await;
    run(&mut sc, &["STORE marker_up=1"]).await;
    eventually(slave, "marker_down", Some("1")).await;
    eventually(root, "marker_up", Some("1")).await;
}

/// Both servers hold `want` under `key`.
async fn everywhere(servers: [&TestServer; 2], key: &str, want: &str) {
    for server in servers {
        eventually(server, key, Some(want)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_write_loses_to_a_later_write_made_elsewhere() {
    let (root, slave, relay) = held_pair().await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut sc = slave.login(Transport::Unix, ADMIN).await;

    relay.held.store(true, Ordering::SeqCst);
    run(&mut sc, &["STORE k=slave-old", "REMOVE gone"]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    run(&mut rc, &["STORE k=root-new", "STORE gone=back"]).await;
    release(&relay, &root, &slave).await;

    // Run again with the receiver's clock, the slave's older lines would have won on the root.
    everywhere([&root, &slave], "k", "root-new").await;
    everywhere([&root, &slave], "gone", "back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_made_at_once_on_both_sides_add_up() {
    let (root, slave, relay) = held_pair().await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut sc = slave.login(Transport::Unix, ADMIN).await;
    run(&mut rc, &["STORE c=5"]).await;
    eventually(&slave, "c", Some("5")).await;

    relay.held.store(true, Ordering::SeqCst);
    run(
        &mut sc,
        &["INCREMENT c", "INCREMENT c=10", "INCREMENT fresh"],
    )
    .await;
    run(
        &mut rc,
        &["INCREMENT c", "DECREMENT c=3", "INCREMENT fresh=2"],
    )
    .await;
    release(&relay, &root, &slave).await;

    everywhere([&root, &slave], "c", "14").await;
    everywhere([&root, &slave], "fresh", "3").await;
    // And they go on adding up once the link flows.
    run(&mut sc, &["INCREMENT c"]).await;
    run(&mut rc, &["INCREMENT c"]).await;
    everywhere([&root, &slave], "c", "16").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_and_an_increment_made_at_once_end_the_same_everywhere() {
    let (root, slave, relay) = held_pair().await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut sc = slave.login(Transport::Unix, ADMIN).await;
    run(&mut rc, &["STORE early=1", "STORE late=1"]).await;
    eventually(&slave, "late", Some("1")).await;

    relay.held.store(true, Ordering::SeqCst);
    // `early`: the increment is older than the store, which wins; `late`: the other way round.
    run(&mut sc, &["INCREMENT early"]).await;
    run(&mut rc, &["STORE late=100"]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    run(&mut rc, &["STORE early=100"]).await;
    run(&mut sc, &["INCREMENT late=5"]).await;
    release(&relay, &root, &slave).await;

    everywhere([&root, &slave], "early", "100").await;
    everywhere([&root, &slave], "late", "6").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_reaches_only_what_was_written_before_it() {
    let (root, slave, relay) = held_pair().await;
    let mut rc = root.login(Transport::Unix, ADMIN).await;
    let mut sc = slave.login(Transport::Unix, ADMIN).await;
    run(&mut sc, &["STORE old=1"]).await;
    eventually(&root, "old", Some("1")).await;

    relay.held.store(true, Ordering::SeqCst);
    // Written before the clear, but it reaches the root only after it: the root does not take
    // it back.
    run(&mut sc, &["STORE early=1"]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    run(&mut rc, &["CLEARCACHE"]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    run(&mut sc, &["STORE after=1"]).await;
    release(&relay, &root, &slave).await;

    for server in [&root, &slave] {
        eventually(server, "after", Some("1")).await;
        eventually(server, "old", None).await;
        eventually(server, "early", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_made_while_the_link_is_down_reaches_the_other_side_in_the_sync() {
    for cleared_on_root in [true, false] {
        let (root, slave, relay) = held_pair().await;
        let mut rc = root.login(Transport::Unix, ADMIN).await;
        let mut sc = slave.login(Transport::Unix, ADMIN).await;
        run(&mut rc, &["STORE old=1"]).await;
        eventually(&slave, "old", Some("1")).await;

        relay.cut();
        links(&slave, 0).await;
        let (clearer, other) = if cleared_on_root {
            (&mut rc, &mut sc)
        } else {
            (&mut sc, &mut rc)
        };
        run(clearer, &["CLEARCACHE"]).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        run(other, &["STORE after=1"]).await;
        relay.restore();
        links(&slave, 1).await;
        release(&relay, &root, &slave).await;

        for server in [&root, &slave] {
            eventually(server, "old", None).await;
            eventually(server, "after", Some("1")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_in_turn_across_a_skewed_chain_end_with_the_last() {
    let root = TestServer::start().await;
    let skewed = |master: &TestServer, offset: f64| {
        let master = Master::Unix(master.socket.clone());
        TestServer::start_with(move |c| {
            c.master = Some(master);
            c.time_offset = offset;
        })
    };
    let middle = skewed(&root, 5.0).await;
    let leaf = skewed(&middle, -3.0).await;
    links(&root, 1).await;
    links(&leaf, 1).await;
    let servers = [&root, &middle, &leaf];
    let mut clients = Vec::new();
    for server in servers {
        clients.push(server.login(Transport::Unix, ADMIN).await);
    }
    // Each write is made after the one before has reached every server.
    for (turn, writer) in [2, 0, 1, 2, 0].into_iter().enumerate() {
        let value = format!("turn{turn}");
        run(&mut clients[writer], &[&format!("STORE k={value}")]).await;
        for server in servers {
            eventually(server, "k", Some(&value)).await;
        }
    }
}

/// A peer that logs in as an interclacks slave, naming itself with `info`, and has read the
/// sync.
async fn peer(server: &TestServer, info: &str) -> Client {
    let mut peer = server.connect(Transport::Unix).await;
    peer.expect_prefix("CLACKS ").await;
    peer.expect_prefix("OVERHEAD M ").await;
    peer.send(&format!("CLACKS {info} in interclacks client mode"))
        .await;
    peer.send(&format!("OVERHEAD A {}", token(ADMIN.0, ADMIN.1)))
        .await;
    peer.send("OVERHEAD I 1").await;
    while peer.line().await.expect("closed during the sync") != "PING" {}
    links(server, 1).await;
    peer
}

/// The fields of a `KEYSYNC` line after its two times.
fn keysync_rest(line: &str) -> String {
    let mut words = line.splitn(4, ' ');
    assert_eq!(words.next(), Some("KEYSYNC"), "{line}");
    for _ in 0..2 {
        let time: f64 = words.next().unwrap().parse().unwrap();
        assert!(time == 0.0 || time > 1e9, "{line}");
    }
    words.next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v36_peer_gets_records_with_their_times_and_increments_as_steps() {
    let server = TestServer::start().await;
    let mut v36 = peer(&server, "PageCamel 36").await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    run(
        &mut c,
        &[
            "STORE k=v=w",
            "REMOVE k",
            "SETANDSTORE s=on",
            "INCREMENT n",
            "DECREMENT n=2",
            "STORE a b=spaced key",
            "NOTIFY hello",
        ],
    )
    .await;
    let got = v36.until_flushed("v36").await;
    let rest: Vec<String> = got
        .iter()
        .map(|l| {
            if l.starts_with("KEYSYNC ") {
                keysync_rest(l)
            } else {
                l.clone()
            }
        })
        .collect();
    assert_eq!(
        rest,
        [
            "U k=v=w",
            "D k=REMOVED",
            "U s=on",
            "SET s=on",
            "INCREMENT n=1",
            "INCREMENT n=-2",
            "STORE a b=spaced key",
            "NOTIFY hello",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_peers_get_increments_with_their_times_and_base() {
    let server = TestServer::start().await;
    let mut ours = peer(&server, "clacksd 9 origin-times").await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    run(
        &mut c,
        &[
            "STORE a b=spaced key",
            "STORE n=5",
            "INCREMENT n",
            "DECREMENT n key=2",
        ],
    )
    .await;
    // Our own peers read keys with spaces in a KEYSYNC.
    let stored = keysync_rest(&ours.line().await.unwrap());
    assert_eq!(stored, "U a b=spaced key");
    let stored = keysync_rest(&ours.line().await.unwrap());
    assert_eq!(stored, "U n=5");
    let line = ours.line().await.unwrap();
    let words: Vec<&str> = line.splitn(6, ' ').collect();
    assert_eq!(words[0], "KEYINCREMENT");
    let (time, base): (f64, f64) = (words[1].parse().unwrap(), words[2].parse().unwrap());
    assert!(time >= base && base > 1e9, "{line}");
    assert_eq!(words[3..], ["1", "6", "n"]);
    let line = ours.line().await.unwrap();
    assert!(line.ends_with(" 0 -2 -2 n key"), "{line}");

    // And they apply ours: on the same base a step adds up; a newer one on another base is
    // taken; an older one on another base changes nothing.
    let base = words[2];
    ours.send(&format!("KEYINCREMENT {time} {base} 10 16 n"))
        .await;
    ours.send("KEYINCREMENT 1000 999 1 42 n key").await;
    ours.send("KEYINCREMENT 9999999999 9999999998 1 42 new")
        .await;
    eventually(&server, "n", Some("16")).await;
    eventually(&server, "n key", Some("-2")).await;
    eventually(&server, "new", Some("42")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_a_v36_peer_goes_back_to_it_with_the_time_it_got_here() {
    let server = TestServer::start().await;
    let mut v36 = peer(&server, "PageCamel 36").await;
    v36.send("STORE k=from v36").await;
    v36.send("INCREMENT n").await;
    v36.send("DECREMENT n").await;
    v36.send("NOTIFY hello").await;
    // A key a KEYSYNC cannot carry to v36 would come back as the command itself, which v36
    // passes on to its other peers: the write would circle for ever.
    v36.send("STORE a b=c").await;
    v36.send("REMOVE a b").await;
    // Only the record comes back: an increment adds up anyway, a signal is not sent back.
    let got = v36.until_flushed("echo").await;
    let rest: Vec<String> = got.iter().map(|l| keysync_rest(l)).collect();
    assert_eq!(rest, ["U k=from v36"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_with_times_no_clock_shows_are_dropped() {
    let server = TestServer::start().await;
    let mut ours = peer(&server, "clacksd 1 origin-times").await;
    for line in [
        "KEYSYNC nan 0 U a=1",
        "KEYSYNC inf 0 U b=1",
        "KEYSYNC 1e300 0 U c=1",
        "KEYSYNC 1000 -inf U d=1",
        "KEYINCREMENT inf 0 1 1 e",
        "KEYINCREMENT 1000 nan 1 1 f",
        "OVERHEAD T inf",
        "KEYSYNC 1000 1000 U ok=1",
    ] {
        ours.send(line).await;
    }
    eventually(&server, "ok", Some("1")).await;
    for key in ["a", "b", "c", "d", "e", "f"] {
        eventually(&server, key, None).await;
    }
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("STATS").await;
    let stats = c.until_flushed("stats").await;
    assert!(
        stats.contains(&"STAT link_bad_times=6".to_string()),
        "{stats:?}"
    );
}
