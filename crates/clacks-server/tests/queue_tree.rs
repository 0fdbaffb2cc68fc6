//! Work queues across a tree: the root holds them, slaves forward their clients' commands and
//! relay the answers; `Local::` queues stay where they are used; a link that goes down makes
//! the root's queues unavailable at once; a v36 peer never sees a queue command.

mod common;

use std::time::Duration;

use clacks_server::config::Master;
use common::relay::Relay;
use common::{links, message, routed, token, Client, Connect, TestServer, Transport, ADMIN};

async fn slave_of(master: &TestServer) -> TestServer {
    let master = Master::Unix(master.socket.clone());
    let server = TestServer::start_with(move |c| c.master = Some(master)).await;
    links(&server, 1).await;
    routed(&server).await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_one_slave_gets_what_a_client_on_another_sent() {
    let root = TestServer::start().await;
    let a = slave_of(&root).await;
    let b = slave_of(&root).await;
    links(&root, 2).await;
    let mut worker = a.login(Transport::Unix, ADMIN).await;
    let mut client = b.login(Transport::Unix, ADMIN).await;

    worker.send("QRECV jobs 10").await;
    worker.expect_nothing().await;
    client.send("QSEND jobs=hello=world").await;
    client.expect_nothing().await;
    assert_eq!(
        message(&worker.line().await.unwrap(), "jobs").1,
        "hello=world"
    );

    // The figures are the root's, wherever they are asked.
    let mut admin = root.login(Transport::Unix, ADMIN).await;
    client.send("QSEND jobs=second").await;
    client.expect_nothing().await;
    for c in [&mut client, &mut worker, &mut admin] {
        c.send("QSTAT jobs").await;
        let stats = c.expect_prefix("QSTATS jobs ").await;
        assert!(
            stats.contains("messages=1;") && stats.contains(";sent=2;"),
            "{stats}"
        );
    }
    worker.send("QLIST").await;
    worker.expect("QLISTSTART").await;
    worker.expect_prefix("QUEUE jobs ").await;
    worker.expect("QLISTEND").await;

    // A leased message comes back when its worker, behind a slave, goes away.
    worker.send("QRECV jobs 0 30").await;
    assert_eq!(message(&worker.line().await.unwrap(), "jobs").1, "second");
    client.send("QRECV jobs 10").await;
    client.expect_nothing().await;
    drop(worker);
    assert_eq!(message(&client.line().await.unwrap(), "jobs").1, "second");

    // Errors of forwarded commands come back to their client, before a FLUSH sent after them.
    client.send("QACK jobs 12345").await;
    client.send("QSEND bad name=x").await;
    assert_eq!(
        client.until_flushed("f").await,
        [
            "OVERHEAD E unknown_message jobs 12345",
            "OVERHEAD E bad_name bad name"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_replies_cross_the_tree_through_a_middle_server() {
    let root = TestServer::start().await;
    let middle = slave_of(&root).await;
    let leaf = slave_of(&middle).await;
    let mut caller = leaf.login(Transport::Unix, ADMIN).await;
    let mut worker = root.login(Transport::Unix, ADMIN).await;

    caller.send("QTEMP").await;
    let reply_to = caller.expect_prefix("QTEMPNAME Temp::").await["QTEMPNAME ".len()..].to_string();
    caller
        .send(&format!("QSEND service=please answer to {reply_to}"))
        .await;
    caller.send(&format!("QRECV {reply_to} 10")).await;
    caller.expect_nothing().await;
    worker.send("QRECV service 10 30").await;
    let (id, request) = message(&worker.line().await.unwrap(), "service");
    assert_eq!(request, format!("please answer to {reply_to}"));
    worker.send(&format!("QSEND {reply_to}=done")).await;
    worker.send(&format!("QACK service {id}")).await;
    worker.expect_nothing().await;
    assert_eq!(message(&caller.line().await.unwrap(), &reply_to).1, "done");
    // Only the caller may receive from its reply queue, and it goes with the caller.
    worker.send(&format!("QRECV {reply_to} 0")).await;
    worker.expect("OVERHEAD E permission_denied").await;
    drop(caller);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        worker.send(&format!("QSEND {reply_to}=late")).await;
        let got = worker.until_flushed("late").await;
        if got == [format!("OVERHEAD E unknown_queue {reply_to}")] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_queues_stay_and_the_root_queues_are_unavailable_while_the_link_is_down() {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let slave = TestServer::start_with(|c| {
        c.master = Some(Master::Unix(relay.path.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(300);
    })
    .await;
    links(&slave, 1).await;
    routed(&slave).await;
    let mut c = slave.login(Transport::Unix, ADMIN).await;
    let mut r = root.login(Transport::Unix, ADMIN).await;
    c.send("QSEND Local::mine=here").await;
    r.send("QRECV Local::mine 0").await;
    r.expect("QEMPTY Local::mine").await;
    c.send("QRECV Local::mine 0").await;
    assert_eq!(message(&c.line().await.unwrap(), "Local::mine").1, "here");

    c.send("QRECV jobs").await;
    c.expect_nothing().await;
    relay.cut();
    links(&slave, 0).await;
    // The receive that waited at the root has ended; new commands are refused at once.
    c.expect("OVERHEAD E queue_unavailable jobs").await;
    c.send("QSEND jobs=x").await;
    c.expect("OVERHEAD E queue_unavailable jobs").await;
    c.send("QSEND Local::mine=still").await;
    c.expect_nothing().await;
    relay.restore();
    links(&slave, 1).await;
    routed(&slave).await;
    c.send("QSEND jobs=back").await;
    c.expect_nothing().await;
    r.send("QRECV jobs 0").await;
    assert_eq!(message(&r.line().await.unwrap(), "jobs").1, "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v36_slave_in_the_tree_shares_the_cache_and_signals_but_never_sees_a_queue_command() {
    // One tree: a root, two clacksd slaves and a v36 slave (scripted as Net::Clacks v36 speaks
    // on its link). A worker on one clacksd slave gets what a client on the other sent, while
    // the cache replicates to and from the v36 slave.
    let root = TestServer::start().await;
    let a = slave_of(&root).await;
    let b = slave_of(&root).await;
    let mut v36 = root.connect(Transport::Unix).await;
    v36.expect_prefix("CLACKS ").await;
    v36.expect_prefix("OVERHEAD M ").await;
    v36.send("CLACKS PageCamel 36 in interclacks client mode")
        .await;
    v36.send(&format!("OVERHEAD A {}", token(ADMIN.0, ADMIN.1)))
        .await;
    v36.send("OVERHEAD I 1").await;
    while v36.line().await.expect("closed during the sync") != "PING" {}
    links(&root, 3).await;

    let mut worker = b.login(Transport::Unix, ADMIN).await;
    let mut client = a.login(Transport::Unix, ADMIN).await;
    worker.send("QRECV jobs 10").await;
    worker.expect_nothing().await;
    client.send("QSEND jobs=1").await;
    client.send("STORE k=v").await;
    client.send("NOTIFY event").await;
    client.expect_nothing().await;
    worker.expect_prefix("QMESSAGE jobs ").await;
    let seen = until_quiet(&mut v36).await;
    assert!(
        seen.iter()
            .any(|l| l.starts_with("KEYSYNC ") && l.ends_with(" U k=v")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l == "NOTIFY event"), "{seen:?}");
    assert!(!seen.iter().any(|l| l.starts_with('Q')), "{seen:?}");
    // A write on the v36 slave reaches both clacksd slaves.
    v36.send("STORE from36=x").await;
    for slave in [&a, &b] {
        let mut c = slave.login(Transport::Unix, ADMIN).await;
        tokio::time::timeout(common::WAIT, async {
            loop {
                c.send("RETRIEVE from36").await;
                if c.line().await.unwrap() == "RETRIEVED from36=x" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the v36 slave's write reached the clacksd slave");
    }
}

/// Lines until none came for a while.
async fn until_quiet(c: &mut Client) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(Some(line)) = c.line_within(Duration::from_millis(300)).await {
        seen.push(line);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_flight_when_the_link_goes_are_all_answered() {
    let root = TestServer::start().await;
    let relay = Relay::start(root.socket.clone()).await;
    let slave = TestServer::start_with(|c| {
        c.master = Some(Master::Unix(relay.path.clone()));
        c.interclacks_reconnect_timeout = Duration::from_millis(300);
    })
    .await;
    links(&slave, 1).await;
    routed(&slave).await;
    let mut c = slave.login(Transport::Unix, ADMIN).await;
    c.send("QSEND jobs=1").await;
    c.expect_nothing().await;
    // Held in transit, then the link goes: every command still waiting for its answer gets one,
    // in order.
    relay.held.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = slave.stat("commands");
    for line in ["QSTAT jobs", "QRECV other", "QTEMP", "QLIST", "FLUSH f"] {
        c.send(line).await;
    }
    // All of them forwarded before the cut.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while slave.stat("commands") < before + 5 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    relay.cut();
    links(&slave, 0).await;
    for want in [
        "OVERHEAD E queue_unavailable jobs",
        "OVERHEAD E queue_unavailable other",
        "OVERHEAD E queue_unavailable QTEMP",
        "OVERHEAD E queue_unavailable QLIST",
        "FLUSHED f",
    ] {
        c.expect(want).await;
    }
    relay.held.store(false, std::sync::atomic::Ordering::SeqCst);
    relay.restore();
    links(&slave, 1).await;
    routed(&slave).await;
    c.send("QSTAT jobs").await;
    c.expect_prefix("QSTATS jobs messages=1;").await;
}
