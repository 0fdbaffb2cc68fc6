//! Work queues on one server: FIFO order, competing receivers, receive timeouts, leases and
//! their redelivery, dead letters, overflow policies, limits, stats, temporary queues.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use clacks_server::{Overflow, QueueLimits};
use common::{message, Client, Connect, TestServer, Transport, ADMIN, WAIT};
use tokio::time::Instant;

/// The `k=v;…` fields of a `QSTATS` line.
fn fields(line: &str) -> HashMap<String, String> {
    let rest = line.splitn(3, ' ').nth(2).unwrap_or("");
    rest.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The figures of `queue`.
async fn stat(c: &mut Client, queue: &str) -> HashMap<String, String> {
    c.send(&format!("QSTAT {queue}")).await;
    fields(&c.expect_prefix(&format!("QSTATS {queue} ")).await)
}

/// Asserts the named figures of `queue`.
async fn assert_figures(c: &mut Client, queue: &str, want: &[(&str, u64)]) {
    let got = stat(c, queue).await;
    for (name, value) in want {
        assert_eq!(got[*name], value.to_string(), "{name} of {queue}: {got:?}");
    }
}

async fn recv_now(c: &mut Client, queue: &str) -> Option<(String, String)> {
    c.send(&format!("QRECV {queue} 0")).await;
    let line = c.line().await.unwrap();
    if line == format!("QEMPTY {queue}") {
        return None;
    }
    Some(message(&line, queue))
}

#[tokio::test]
async fn a_queue_hands_out_its_messages_in_order_each_once() {
    let server = TestServer::start().await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for i in 0..100 {
        c.send(&format!("QSEND jobs=job {i}=with an equals sign"))
            .await;
    }
    c.send("QSEND other=x").await;
    let mut ids = HashSet::new();
    for i in 0..100 {
        let (id, value) = recv_now(&mut c, "jobs").await.unwrap();
        assert_eq!(value, format!("job {i}=with an equals sign"));
        assert!(ids.insert(id));
    }
    assert_eq!(recv_now(&mut c, "jobs").await, None);
    assert_eq!(recv_now(&mut c, "other").await.unwrap().1, "x");
    assert_figures(
        &mut c,
        "jobs",
        &[
            ("messages", 0),
            ("sent", 100),
            ("received", 100),
            ("leased", 0),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_receivers_get_every_message_exactly_once() {
    const MESSAGES: usize = 100_000;
    const RECEIVERS: usize = 4;
    const OUTSTANDING: usize = 16;
    let server = TestServer::start().await;
    let mut producer = server.login(Transport::Unix, ADMIN).await;
    let mut tasks = Vec::new();
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..RECEIVERS {
        let mut c = server.login(Transport::Unix, ADMIN).await;
        let counted = counted.clone();
        tasks.push(tokio::spawn(async move {
            // Receives with a short timeout, renewed until every message was counted.
            let mut got = Vec::new();
            for _ in 0..OUTSTANDING {
                c.send("QRECV work 0.2").await;
            }
            let mut outstanding = OUTSTANDING;
            loop {
                let line = c.line().await.unwrap();
                outstanding -= 1;
                if line != "QEMPTY work" {
                    got.push(message(&line, "work").1);
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                if counted.load(std::sync::atomic::Ordering::SeqCst) < MESSAGES {
                    c.send("QRECV work 0.2").await;
                    outstanding += 1;
                } else if outstanding == 0 {
                    return got;
                }
            }
        }));
    }
    let mut batch = String::new();
    for i in 0..MESSAGES {
        batch += &format!("QSEND work={i}\r\n");
        if batch.len() > 60_000 {
            producer.send_raw(batch.as_bytes()).await;
            batch.clear();
        }
    }
    producer.send_raw(batch.as_bytes()).await;
    let mut seen = HashSet::new();
    let mut per_receiver = Vec::new();
    for task in tasks {
        let got = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("every message received in time")
            .unwrap();
        per_receiver.push(got.len());
        for value in got {
            assert!(seen.insert(value.clone()), "{value} received twice");
        }
    }
    assert_eq!(seen.len(), MESSAGES);
    assert!(
        per_receiver.iter().all(|&n| n > 0),
        "every receiver got work: {per_receiver:?}"
    );
    assert_figures(
        &mut producer,
        "work",
        &[
            ("sent", MESSAGES as u64),
            ("received", MESSAGES as u64),
            ("messages", 0),
        ],
    )
    .await;
}

#[tokio::test]
async fn receive_timeouts() {
    let server = TestServer::start().await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    let started = Instant::now();
    c.send("QRECV q 0").await;
    c.expect("QEMPTY q").await;
    assert!(started.elapsed() < Duration::from_millis(100));
    let started = Instant::now();
    c.send("QRECV q 0.5").await;
    c.expect("QEMPTY q").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took <= Duration::from_millis(600),
        "{took:?}"
    );
    // A message sent while a receive waits goes to it at once.
    let mut other = server.login(Transport::Unix, ADMIN).await;
    c.send("QRECV q 10").await;
    c.expect_nothing().await;
    assert_figures(&mut other, "q", &[("waiting", 1)]).await;
    other.send("QSEND q=now").await;
    assert_eq!(message(&c.line().await.unwrap(), "q").1, "now");
    // Answers to waiting receives may come after answers to later commands.
    c.send("QRECV q").await;
    c.send("STORE k=v").await;
    c.send("RETRIEVE k").await;
    c.expect("RETRIEVED k=v").await;
    other.send("QSEND q=later").await;
    assert_eq!(message(&c.line().await.unwrap(), "q").1, "later");
}

#[tokio::test]
async fn receives_are_served_in_the_order_they_waited() {
    let server = TestServer::start().await;
    let mut first = server.login(Transport::Unix, ADMIN).await;
    let mut second = server.login(Transport::Unix, ADMIN).await;
    let mut sender = server.login(Transport::Unix, ADMIN).await;
    first.send("QRECV q").await;
    first.expect_nothing().await;
    second.send("QRECV q").await;
    second.expect_nothing().await;
    sender.send("QSEND q=1").await;
    sender.send("QSEND q=2").await;
    assert_eq!(message(&first.line().await.unwrap(), "q").1, "1");
    assert_eq!(message(&second.line().await.unwrap(), "q").1, "2");
    // QCANCEL ends only this connection's waits on that queue.
    first.send("QRECV q").await;
    first.send("QRECV r").await;
    second.send("QRECV q").await;
    first.send("QCANCEL q").await;
    first.expect("QEMPTY q").await;
    sender.send("QSEND q=3").await;
    assert_eq!(message(&second.line().await.unwrap(), "q").1, "3");
    sender.send("QSEND r=4").await;
    assert_eq!(message(&first.line().await.unwrap(), "r").1, "4");
}

#[tokio::test]
async fn a_leased_message_comes_back_after_its_lease_and_after_its_worker_is_gone() {
    let server = TestServer::start().await;
    let mut a = server.login(Transport::Unix, ADMIN).await;
    let mut b = server.login(Transport::Unix, ADMIN).await;
    a.send("QSEND q=job").await;
    a.send("QRECV q 0 0.3").await;
    let (id, value) = message(&a.line().await.unwrap(), "q");
    assert_eq!(value, "job");
    // Leased: nobody else gets it meanwhile.
    assert_eq!(recv_now(&mut b, "q").await, None);
    assert_figures(&mut b, "q", &[("messages", 0), ("leased", 1), ("bytes", 0)]).await;
    // After the lease it comes back, to a receive that waits for it, with a new id: the old
    // one ends nothing, whoever sends it.
    b.send("QRECV q 5 10").await;
    let (again, value) = message(&b.line().await.unwrap(), "q");
    assert_eq!(value, "job");
    assert_ne!(again, id);
    for c in [&mut a, &mut b] {
        c.send(&format!("QACK q {id}")).await;
        c.expect(&format!("OVERHEAD E unknown_message q {id}"))
            .await;
    }
    b.send(&format!("QACK q {again}")).await;
    b.expect_nothing().await;
    assert_figures(
        &mut b,
        "q",
        &[
            ("leased", 0),
            ("acked", 1),
            ("redelivered", 1),
            ("received", 2),
        ],
    )
    .await;

    // A worker that disconnects gives its leased messages back, in order.
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for job in ["1", "2"] {
        b.send(&format!("QSEND q={job}")).await;
    }
    b.expect_nothing().await;
    c.send("QRECV q 0 30").await;
    c.send("QRECV q 0 30").await;
    c.expect_prefix("QMESSAGE q ").await;
    c.expect_prefix("QMESSAGE q ").await;
    b.send("QRECV q 5").await;
    b.expect_nothing().await;
    drop(c);
    assert_eq!(message(&b.line().await.unwrap(), "q").1, "1");
    assert_eq!(recv_now(&mut b, "q").await.unwrap().1, "2");

    // QNACK gives it back at once; an unknown id is refused.
    b.send("QSEND q=3").await;
    b.send("QRECV q 0 30").await;
    let (id, _) = message(&b.line().await.unwrap(), "q");
    b.send(&format!("QNACK q {id}")).await;
    b.send("QNACK q 999999").await;
    b.expect("OVERHEAD E unknown_message q 999999").await;
    b.send("QACK q x").await;
    b.expect("OVERHEAD E unknown_message q x").await;
    assert_eq!(recv_now(&mut b, "q").await.unwrap().1, "3");
}

#[tokio::test]
async fn a_message_handed_out_too_often_moves_to_the_dead_letter_queue() {
    let server = TestServer::start_with(|c| c.queues.max_deliveries = 2).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("QSEND q=poison").await;
    c.send("QSEND q=fine").await;
    for _ in 0..2 {
        c.send("QRECV q 0 30").await;
        let (id, value) = message(&c.line().await.unwrap(), "q");
        assert_eq!(value, "poison");
        c.send(&format!("QNACK q {id}")).await;
    }
    assert_eq!(recv_now(&mut c, "q").await.unwrap().1, "fine");
    assert_eq!(recv_now(&mut c, "q::dead").await.unwrap().1, "poison");
    assert_figures(
        &mut c,
        "q",
        &[
            ("dead", 1),
            ("redelivered", 1),
            ("messages", 0),
            ("bytes", 0),
        ],
    )
    .await;
    assert_figures(&mut c, "q::dead", &[("sent", 1), ("received", 1)]).await;
}

#[tokio::test]
async fn overflow_policies_and_limits() {
    let server = TestServer::start_with(|c| {
        let small = QueueLimits {
            max_messages: 3,
            max_bytes: 1024,
            max_message_size: 10,
            overflow: Overflow::Reject,
        };
        c.queues.limits = small;
        c.queues.prefixes.push((
            "Telemetry::".into(),
            QueueLimits {
                overflow: Overflow::DropOldest,
                ..small
            },
        ));
        c.queues.max_waits = 2;
        c.queues.max_queues = 4;
    })
    .await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for i in 1..=5 {
        c.send(&format!("QSEND jobs={i}")).await;
        c.send(&format!("QSEND Telemetry::t={i}")).await;
    }
    c.expect("OVERHEAD E queue_full jobs").await;
    c.expect("OVERHEAD E queue_full jobs").await;
    c.send("QSEND jobs=01234567890").await;
    c.expect("OVERHEAD E message_too_large jobs").await;
    assert_figures(
        &mut c,
        "jobs",
        &[("messages", 3), ("bytes", 3), ("sent", 3), ("rejected", 3)],
    )
    .await;
    assert_figures(
        &mut c,
        "Telemetry::t",
        &[
            ("messages", 3),
            ("sent", 5),
            ("dropped", 2),
            ("rejected", 0),
        ],
    )
    .await;
    assert_eq!(
        stat(&mut c, "Telemetry::t").await["overflow"],
        "drop_oldest"
    );
    for want in ["3", "4", "5"] {
        assert_eq!(recv_now(&mut c, "Telemetry::t").await.unwrap().1, want);
    }
    // Waits per connection and queues on the server are bounded too.
    c.send("QRECV a").await;
    c.send("QRECV a").await;
    c.send("QRECV a").await;
    c.expect("OVERHEAD E too_many_waits a").await;
    c.send("QSEND b=1").await;
    c.send("QSEND c=1").await;
    c.expect("OVERHEAD E too_many_queues c").await;
    let stats = server.stat("queue_rejected");
    assert_eq!(stats, 3);
    assert_eq!(server.stat("queue_dropped"), 2);
}

#[tokio::test]
async fn names_arguments_and_listing() {
    let server = TestServer::start().await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for (line, error) in [
        ("QSEND a b=1", "OVERHEAD E bad_name a b"),
        ("QSTAT a b", "OVERHEAD E bad_name a b"),
        ("QPURGE a=b", "OVERHEAD E bad_name a=b"),
        ("QRECV q x", "OVERHEAD E bad_argument q x"),
        ("QRECV q 1 -1", "OVERHEAD E bad_argument q -1"),
        ("QRECV q nan", "OVERHEAD E bad_argument q nan"),
        ("QRECV q 1e30", "OVERHEAD E bad_argument q 1e30"),
        ("QRECV Temp::1.x 0", "OVERHEAD E unknown_queue Temp::1.x"),
        ("QSEND Temp::1.x=v", "OVERHEAD E unknown_queue Temp::1.x"),
    ] {
        c.send(line).await;
        c.expect(error).await;
    }
    c.send("QSEND b=22").await;
    c.send("QSEND a=1").await;
    c.send("QLIST").await;
    c.expect("QLISTSTART").await;
    let a = c.expect_prefix("QUEUE a ").await;
    assert_eq!(fields(&a)["messages"], "1");
    let b = c.expect_prefix("QUEUE b ").await;
    assert_eq!(fields(&b)["bytes"], "2");
    c.expect("QLISTEND").await;
    // Every field the protocol names, in its order.
    let names: Vec<String> = b
        .splitn(3, ' ')
        .nth(2)
        .unwrap()
        .split(';')
        .map(|kv| kv.split_once('=').unwrap().0.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "messages",
            "bytes",
            "waiting",
            "leased",
            "sent",
            "received",
            "acked",
            "redelivered",
            "rejected",
            "dropped",
            "dead",
            "max_messages",
            "max_bytes",
            "max_message_size",
            "overflow"
        ]
    );
    // QPURGE drops the messages, QDELETE the queue and its waits.
    c.send("QPURGE b").await;
    assert_figures(&mut c, "b", &[("messages", 0), ("bytes", 0), ("sent", 1)]).await;
    let mut waiter = server.login(Transport::Unix, ADMIN).await;
    waiter.send("QRECV a 30").await;
    waiter.send("QRECV z 30").await;
    waiter.expect_prefix("QMESSAGE a ").await;
    waiter.expect_nothing().await;
    c.send("QDELETE z").await;
    waiter.expect("QEMPTY z").await;
    c.send("QLIST").await;
    c.expect("QLISTSTART").await;
    c.expect_prefix("QUEUE a ").await;
    c.expect_prefix("QUEUE b ").await;
    c.expect("QLISTEND").await;
}

#[tokio::test]
async fn a_temporary_queue_belongs_to_its_connection() {
    let server = TestServer::start().await;
    let mut owner = server.login(Transport::Unix, ADMIN).await;
    let mut other = server.login(Transport::Unix, ADMIN).await;
    owner.send("QTEMP").await;
    let name = owner
        .expect_prefix("QTEMPNAME Temp::")
        .await
        .strip_prefix("QTEMPNAME ")
        .unwrap()
        .to_string();
    owner.send(&format!("QRECV {name} 5")).await;
    other.send(&format!("QSEND {name}=reply")).await;
    assert_eq!(message(&owner.line().await.unwrap(), &name).1, "reply");
    other.send(&format!("QRECV {name} 0")).await;
    other.expect("OVERHEAD E permission_denied").await;
    drop(owner);
    // Gone with its connection: a late reply is refused, not kept.
    let deadline = Instant::now() + WAIT;
    loop {
        other.send(&format!("QSEND {name}=late")).await;
        let reply = other.until_flushed("sent").await;
        if reply == [format!("OVERHEAD E unknown_queue {name}")] {
            break;
        }
        assert!(Instant::now() < deadline, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn monitors_see_queue_commands() {
    let server = TestServer::start().await;
    let mut monitor = server.login(Transport::Unix, ADMIN).await;
    monitor.send("MONITOR").await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("QSEND q=1").await;
    c.send("QRECV q 0").await;
    c.expect_prefix("QMESSAGE q ").await;
    for want in ["=QSEND q=1", "=QRECV q 0"] {
        loop {
            let line = monitor.expect_prefix("DEBUG ").await;
            if line.ends_with(want) {
                break;
            }
        }
    }
}

#[tokio::test]
async fn queue_contents_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let persisted = |dir: &tempfile::TempDir| {
        let file = dir.path().join("cache.dat");
        move |c: &mut clacks_server::Config| c.persistence_file = Some(file)
    };
    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for value in ["first", "second=with equals", "third"] {
        c.send(&format!("QSEND jobs={value}")).await;
    }
    c.send("QSEND other=x").await;
    c.send("STORE k=v").await;
    // Leased when the server stops: back as the head of its queue after the restart.
    c.send("QRECV jobs 0 60").await;
    assert_eq!(message(&c.line().await.unwrap(), "jobs").1, "first");
    c.send("QTEMP").await;
    let temp = c.expect_prefix("QTEMPNAME ").await;
    c.send(&format!("QSEND {}=reply", &temp["QTEMPNAME ".len()..]))
        .await;
    c.expect_nothing().await;
    let dir = server.shutdown().await;
    let file = std::fs::read(dir.path().join("cache.dat.queues")).unwrap();
    assert!(file.starts_with(b"clacksd-queues 2\n") && file.ends_with(b"end\n"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("cache.dat.queues"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let setup = persisted(&dir);
    let server = TestServer::start_in(dir, "127.0.0.1:0", setup).await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    for want in ["first", "second=with equals", "third"] {
        assert_eq!(recv_now(&mut c, "jobs").await.unwrap().1, want);
    }
    assert_eq!(recv_now(&mut c, "other").await.unwrap().1, "x");
    c.send("RETRIEVE k").await;
    c.expect("RETRIEVED k=v").await;
    // Temporary queues end with their connection, and so with the server.
    c.send("QLIST").await;
    c.expect("QLISTSTART").await;
    c.expect_prefix("QUEUE jobs ").await;
    c.expect_prefix("QUEUE other ").await;
    c.expect("QLISTEND").await;
}

#[tokio::test]
async fn a_damaged_queue_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cache.dat.queues"),
        b"clacksd-queues 1\njobs 0 5\nab",
    )
    .unwrap();
    let mut config = common::base_config();
    config.sockets = vec![dir.path().join("clacks.sock")];
    config.persistence_file = Some(dir.path().join("cache.dat"));
    let err = clacks_server::Server::new(config).unwrap_err().to_string();
    assert!(err.contains("cache.dat.queues: at byte 26"), "{err}");
    assert!(err.contains("<persistanceonerror>moveaside"), "{err}");
}

#[tokio::test]
async fn a_message_kept_for_a_leased_receive_counts_against_the_limits() {
    let server = TestServer::start_with(|c| {
        c.queues.limits.max_messages = 1;
    })
    .await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    let mut worker = server.login(Transport::Unix, ADMIN).await;
    // Leased hand-outs are kept until acknowledged: the second does not fit.
    for _ in 0..2 {
        worker.send("QRECV q 30 60").await;
    }
    worker.expect_nothing().await;
    c.send("QSEND q=1").await;
    c.send("QSEND q=2").await;
    c.expect("OVERHEAD E queue_full q").await;
    worker.expect_prefix("QMESSAGE q ").await;
    // Without a lease nothing is kept: any number go straight through.
    let mut plain = server.login(Transport::Unix, ADMIN).await;
    for _ in 0..3 {
        plain.send("QRECV r 30").await;
    }
    plain.expect_nothing().await;
    for i in 0..3 {
        c.send(&format!("QSEND r={i}")).await;
    }
    c.expect_nothing().await;
    for _ in 0..3 {
        plain.expect_prefix("QMESSAGE r ").await;
    }
}

#[tokio::test]
async fn asking_makes_no_queue_and_empty_queues_are_forgotten() {
    let server = TestServer::start_with(|c| {
        c.queues.idle_time = Duration::from_millis(300);
        c.cache_clean_interval = Duration::from_millis(100);
    })
    .await;
    let mut c = server.login(Transport::Unix, ADMIN).await;
    c.send("QRECV polled 0").await;
    c.expect("QEMPTY polled").await;
    c.send("QSTAT asked").await;
    c.expect_prefix("QSTATS asked messages=0;").await;
    c.send("QSEND full=x").await;
    c.send("QSEND drained=x").await;
    assert_eq!(recv_now(&mut c, "drained").await.unwrap().1, "x");
    c.send("QLIST").await;
    c.expect("QLISTSTART").await;
    c.expect_prefix("QUEUE drained ").await;
    c.expect_prefix("QUEUE full ").await;
    c.expect("QLISTEND").await;
    // The empty one goes once idle; the one holding a message stays.
    let deadline = Instant::now() + WAIT;
    loop {
        c.send("QLIST").await;
        let mut names = Vec::new();
        loop {
            let line = c.line().await.unwrap();
            if line == "QLISTEND" {
                break;
            }
            if let Some(rest) = line.strip_prefix("QUEUE ") {
                names.push(rest.split(' ').next().unwrap().to_string());
            }
        }
        if names == ["full"] {
            break;
        }
        assert!(Instant::now() < deadline, "{names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.stat("queues_dropped_idle") >= 1);
}
