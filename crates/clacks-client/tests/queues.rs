//! Work queues through the client: typed calls against an in-process clacksd, and the
//! matching of receives' answers against a scripted server.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use clacks_client::{
    Client, ClientError, ConnectOptions, ErrorKind, Event, Events, Overflow, QueueRefusal,
};
use clacks_server::testing::{TestServer, ADMIN, RO};
use common::{event, within, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;

async fn connect(server: &TestServer, name: &str) -> (Client, Events) {
    let o = ConnectOptions::unix(&server.socket, ADMIN.0, ADMIN.1)
        .client_name(name)
        .request_timeout(WAIT);
    within(Client::connect(o)).await.unwrap()
}

/// Waits until `check` holds for the queue's figures (another connection's doing).
async fn until_stats(c: &Client, queue: &str, check: impl Fn(&clacks_client::QueueStats) -> bool) {
    within(async {
        loop {
            let stats = c.stat(queue).await.unwrap();
            if check(&stats) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn send_and_receive_in_order() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, "q").await;
    within(c.send("jobs", "first a=b")).await.unwrap();
    within(c.send("jobs", &b"\x00\xff bytes"[..]))
        .await
        .unwrap();
    let stats = within(c.stat("jobs")).await.unwrap();
    assert_eq!((stats.messages, stats.sent, stats.bytes), (2, 2, 17));
    assert_eq!(stats.overflow, Overflow::Reject);

    let first = within(c.recv("jobs", None)).await.unwrap().unwrap();
    assert_eq!(
        (first.queue.as_str(), first.text()),
        ("jobs", "first a=b".into())
    );
    let second = within(c.recv("jobs", Some(SECOND))).await.unwrap().unwrap();
    assert_eq!(&second.value[..], b"\x00\xff bytes");
    assert!(second.id > first.id);
    // Nothing ready: an empty answer at once, and after a wait.
    assert_eq!(
        within(c.recv("jobs", Some(Duration::ZERO))).await.unwrap(),
        None
    );
    let started = tokio::time::Instant::now();
    let waited = within(c.recv("jobs", Some(Duration::from_millis(200)))).await;
    assert_eq!(waited.unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let stats = within(c.stat("jobs")).await.unwrap();
    assert_eq!((stats.messages, stats.received, stats.leased), (0, 2, 0));
    let all = within(c.list()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "jobs");
    assert_eq!(all[0].1.sent, 2);
}

#[tokio::test]
async fn a_waiting_receive_is_answered_after_later_commands() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, "consumer").await;
    let (other, _) = connect(&server, "producer").await;
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("jobs", None).await })
    };
    // Later commands of the same client are answered while the receive waits.
    until_stats(&c, "jobs", |s| s.waiting == 1).await;
    within(c.store("k", "v")).await.unwrap();
    assert_eq!(within(c.retrieve("k")).await.unwrap().as_deref(), Some("v"));
    within(other.send("jobs", "hello")).await.unwrap();
    let got = within(waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(got.text(), "hello");
}

#[tokio::test]
async fn receives_on_one_queue_are_served_in_order_and_time_out_on_their_own() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, "consumer").await;
    let (other, _) = connect(&server, "producer").await;
    let recv = |timeout| {
        let c = c.clone();
        tokio::spawn(async move { c.recv("jobs", timeout).await })
    };
    let first = recv(None);
    until_stats(&c, "jobs", |s| s.waiting == 1).await;
    let second = recv(None);
    // A short wait behind the long one ends on time, and a poll at once.
    let short = recv(Some(Duration::from_millis(200)));
    assert_eq!(within(short).await.unwrap().unwrap(), None);
    assert_eq!(
        within(c.recv("jobs", Some(Duration::ZERO))).await.unwrap(),
        None
    );
    within(other.send("jobs", "1")).await.unwrap();
    within(other.send("jobs", "2")).await.unwrap();
    let first = within(first).await.unwrap().unwrap().unwrap();
    let second = within(second).await.unwrap().unwrap().unwrap();
    assert_eq!((first.text(), second.text()), ("1".into(), "2".into()));
    let stats = within(c.stat("jobs")).await.unwrap();
    assert_eq!((stats.waiting, stats.messages), (0, 0));
}

#[tokio::test]
async fn a_receive_that_gave_up_does_not_swallow_a_later_message() {
    let server = TestServer::start().await;
    let (c, mut events) = connect(&server, "consumer").await;
    let (other, _) = connect(&server, "producer").await;
    for leased in [false, true] {
        let gave_up = {
            let c = c.clone();
            tokio::spawn(async move {
                match leased {
                    true => c.recv_leased("jobs", None, SECOND).await.map(|_| ()),
                    false => c.recv("jobs", None).await.map(|_| ()),
                }
            })
        };
        until_stats(&c, "jobs", |s| s.waiting == 1).await;
        gave_up.abort();
        // The client cancels the receive in the server.
        until_stats(&c, "jobs", |s| s.waiting == 0).await;
        within(other.send("jobs", "later")).await.unwrap();
        let got = within(c.recv("jobs", Some(WAIT))).await.unwrap().unwrap();
        assert_eq!(got.text(), "later");
    }
    // A call that times out while its receive waits in the client is never sent.
    let blocker = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("jobs", None).await })
    };
    until_stats(&c, "jobs", |s| s.waiting == 1).await;
    let dropped = tokio::time::timeout(Duration::from_millis(50), c.recv("jobs", None)).await;
    assert!(dropped.is_err());
    within(other.send("jobs", "one")).await.unwrap();
    assert_eq!(
        within(blocker).await.unwrap().unwrap().unwrap().text(),
        "one"
    );
    within(other.send("jobs", "two")).await.unwrap();
    within(c.flush()).await.unwrap();
    let stats = within(c.stat("jobs")).await.unwrap();
    assert_eq!((stats.messages, stats.waiting), (1, 0), "{stats:?}");
    assert!(events
        .try_next()
        .is_none_or(|e| matches!(e, Event::ServerInfo(_))));
}

#[tokio::test]
async fn leased_jobs_are_acknowledged_or_given_back() {
    let server = TestServer::start().await;
    let (c, _) = connect(&server, "worker").await;
    within(c.send("jobs", "work")).await.unwrap();
    let job = within(c.recv_leased("jobs", None, Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.queue(), job.text()), ("jobs", "work".into()));
    assert_eq!(within(c.stat("jobs")).await.unwrap().leased, 1);
    within(job.nack()).await.unwrap();
    let again = within(c.recv_leased("jobs", Some(SECOND), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    // Every hand-out has its own id.
    assert_ne!(again.id(), job.id());
    within(again.ack()).await.unwrap();
    let stats = within(c.stat("jobs")).await.unwrap();
    assert_eq!(
        (stats.messages, stats.leased, stats.acked, stats.redelivered),
        (0, 0, 1, 1)
    );
    // Acknowledged already: the server knows no such lease.
    let err = within(again.ack()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::QueueRefused { reason: QueueRefusal::UnknownMessage, ref queue, ref command, .. }
            if queue == "jobs" && *command == format!("QACK jobs {}", again.id())),
        "{err:?}"
    );
    assert!(err.is_refused());
    let err = within(job.nack()).await.unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::UnknownMessage));
    // A lease that runs out gives the message back, here to another worker, under a new id:
    // the old job's ack ends nothing.
    within(c.send("jobs", "slow")).await.unwrap();
    let slow = within(c.recv_leased("jobs", None, Duration::from_millis(100)))
        .await
        .unwrap()
        .unwrap();
    let (other, _) = connect(&server, "other").await;
    let back = within(other.recv_leased("jobs", Some(WAIT), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.text(), slow.text());
    assert_ne!(back.id(), slow.id());
    let err = within(slow.ack()).await.unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::UnknownMessage));
    within(back.ack()).await.unwrap();
    assert!(matches!(
        c.recv_leased("jobs", None, Duration::ZERO).await,
        Err(ClientError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn send_until_waits_for_room_until_its_deadline() {
    let server = TestServer::start_with(|c| c.queues.limits.max_messages = 1).await;
    let (c, _events) = connect(&server, "producer").await;
    within(c.send("jobs", "1")).await.unwrap();
    // Nobody makes room: refused as full once the deadline has passed.
    let start = std::time::Instant::now();
    let deadline = start + Duration::from_millis(300);
    let err = within(c.send_until("jobs", "2", deadline))
        .await
        .unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::QueueFull));
    assert!(start.elapsed() >= Duration::from_millis(300));
    let refused = within(c.stat("jobs")).await.unwrap().rejected;
    assert!(refused >= 2, "tried once only: {refused}");
    // A worker makes room meanwhile: the message goes in, once.
    let (worker, _) = connect(&server, "worker").await;
    let deadline = std::time::Instant::now() + WAIT;
    let sending = tokio::spawn(async move { c.send_until("jobs", "2", deadline).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = within(worker.recv("jobs", Some(Duration::ZERO)))
        .await
        .unwrap();
    assert_eq!(first.unwrap().text(), "1");
    within(sending).await.unwrap().unwrap();
    let second = within(worker.recv("jobs", Some(Duration::ZERO)))
        .await
        .unwrap();
    assert_eq!(second.unwrap().text(), "2");
    let stats = within(worker.stat("jobs")).await.unwrap();
    assert_eq!(stats.sent, 2);
    assert!(stats.rejected > refused, "not tried again: {stats:?}");
}

#[tokio::test]
async fn refusals_are_typed_errors_of_their_call() {
    let server = TestServer::start_with(|c| {
        c.queues.limits.max_messages = 2;
        c.queues.limits.max_message_size = 8;
    })
    .await;
    let (c, mut events) = connect(&server, "producer").await;
    within(c.send("jobs", "1")).await.unwrap();
    within(c.send("jobs", "2")).await.unwrap();
    let err = within(c.send("jobs", "3")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::QueueRefused { reason: QueueRefusal::QueueFull, ref queue, ref command, .. }
            if queue == "jobs" && command == "QSEND jobs"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("queue_full jobs"), "{err}");
    let err = within(c.send("other", "123456789")).await.unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::MessageTooLarge));
    // A temporary queue that does not exist.
    let err = within(c.send("Temp::999.gone", "x")).await.unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::UnknownQueue));
    // Names the server would refuse are refused before sending.
    for bad in ["a b", "a=b", ""] {
        let err = within(c.send(bad, "x")).await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidArgument(_)), "{err:?}");
    }
    // Receives too: a read-only user may not receive.
    let o = ConnectOptions::unix(&server.socket, RO.0, RO.1).request_timeout(WAIT);
    let (ro, _) = within(Client::connect(o)).await.unwrap();
    let err = within(ro.recv("jobs", None)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::PermissionDenied(ref c) if c == "QRECV jobs"),
        "{err:?}"
    );
    let err = within(ro.send("jobs", "x")).await.unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
    // Another connection's temporary queue.
    let temp = within(c.temp_queue()).await.unwrap();
    assert!(temp.starts_with("Temp::"), "{temp}");
    let (other, _) = connect(&server, "other").await;
    let err = within(other.recv(&temp, Some(Duration::ZERO)))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::PermissionDenied(_)), "{err:?}");
    within(other.send(&temp, "for c")).await.unwrap();
    let got = within(c.recv(&temp, Some(Duration::ZERO))).await.unwrap();
    assert_eq!(got.unwrap().text(), "for c");
    // The refusals were the calls' errors, nothing was left for the event stream, and the
    // queue still has its two messages.
    within(c.flush()).await.unwrap();
    assert!(events
        .try_next()
        .is_none_or(|e| matches!(e, Event::ServerInfo(_))));
    assert_eq!(within(c.stat("jobs")).await.unwrap().messages, 2);
}

/// Cuts the connection named `name` from the server's side.
async fn kick(server: &TestServer, name: &str) {
    let (admin, _) = connect(server, "admin").await;
    let clients = within(admin.clientlist()).await.unwrap();
    let victim = clients
        .iter()
        .find(|e| &e.clientinfo[..] == name.as_bytes())
        .expect("the connection");
    let cid = String::from_utf8_lossy(&victim.cid).into_owned();
    within(admin.client_disconnect(&cid)).await.unwrap();
}

#[tokio::test]
async fn after_a_reconnect_receives_fail_and_old_leases_cannot_be_acknowledged() {
    let server = TestServer::start().await;
    let (c, mut events) = connect(&server, "worker").await;
    within(c.send("jobs", "leased")).await.unwrap();
    let old = within(c.recv_leased("jobs", None, Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap();
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("other", None).await })
    };
    until_stats(&c, "other", |s| s.waiting == 1).await;
    kick(&server, "worker").await;
    assert!(matches!(
        event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert_eq!(event(&mut events).await, Event::Reconnected);
    let err = within(waiting).await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::OutcomeUnknown { ref command, .. } if command == "QRECV other"),
        "{err:?}"
    );
    // Not sent again.
    within(c.flush()).await.unwrap();
    assert_eq!(within(c.stat("other")).await.unwrap().waiting, 0);
    // The lease ended with the connection: the message is back (with a new id), and the old
    // job is not even sent.
    let new = within(c.recv_leased("jobs", Some(WAIT), Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new.id(), old.id());
    let err = within(old.ack()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionLost { ref command } if *command == format!("QACK jobs {}", old.id())),
        "{err:?}"
    );
    assert!(err.is_disconnect());
    assert_eq!(within(c.stat("jobs")).await.unwrap().leased, 1);
    within(new.ack()).await.unwrap();
    assert_eq!(within(c.stat("jobs")).await.unwrap().acked, 1);
}

#[tokio::test]
async fn a_raw_receive_answers_as_an_event() {
    let server = TestServer::start().await;
    let (c, mut events) = connect(&server, "raw").await;
    let (other, _) = connect(&server, "producer").await;
    assert_eq!(
        within(c.raw("QRECV jobs 0")).await.unwrap(),
        vec!["QEMPTY jobs"]
    );
    within(c.send_raw("QRECV jobs")).await.unwrap();
    until_stats(&c, "jobs", |s| s.waiting == 1).await;
    within(other.send("jobs", "unasked")).await.unwrap();
    match event(&mut events).await {
        Event::QueueMessage { queue, value, .. } => {
            assert_eq!((queue.as_str(), &value[..]), ("jobs", &b"unasked"[..]))
        }
        other => panic!("{other:?}"),
    }
}

/// A scripted server on a Unix socket: logs anyone in, then lets the test read the client's
/// lines and answer them.
struct Script {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Script {
    async fn start(dir: &std::path::Path) -> (PathBuf, tokio::task::JoinHandle<Script>) {
        let path = dir.join("script.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let accept = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (reader, mut writer) = stream.into_split();
            writer
                .write_all(b"CLACKS script\r\nOVERHEAD O Welcome!\r\n")
                .await
                .unwrap();
            Script {
                lines: BufReader::new(reader).lines(),
                writer,
            }
        });
        (path, accept)
    }

    /// The client's next line that is not part of the login or a PING.
    async fn next(&mut self) -> String {
        loop {
            let line = within(self.lines.next_line())
                .await
                .unwrap()
                .expect("a line");
            let line = line.trim_end_matches('\r').to_string();
            if !(line.starts_with("CLACKS ") || line.starts_with("OVERHEAD A ") || line == "PING") {
                return line;
            }
        }
    }

    async fn say(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads `QRECV …` and its `FLUSH`, answers the barrier; returns the QRECV line.
    async fn receive(&mut self) -> String {
        let recv = self.next().await;
        assert!(recv.starts_with("QRECV "), "{recv}");
        let flush = self.next().await;
        let id = flush.strip_prefix("FLUSH ").expect("a FLUSH barrier");
        self.say(&format!("FLUSHED {id}")).await;
        recv
    }
}

/// The race a cancel cannot close: the server handed a message to a receive just before the
/// client's QCANCEL arrived. A leased one goes back at once; an unleased one is an event.
#[tokio::test]
async fn a_message_for_a_receive_that_gave_up_is_given_back_or_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (path, accept) = Script::start(dir.path()).await;
    let o = ConnectOptions::unix(&path, "u", "p").request_timeout(WAIT);
    let (c, mut events) = within(Client::connect(o)).await.unwrap();
    let mut server = within(accept).await.unwrap();

    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.recv_leased("q", None, Duration::from_secs(30)).await })
    };
    assert_eq!(server.receive().await, "QRECV q 31536000 30");
    call.abort();
    assert_eq!(server.next().await, "QCANCEL q");
    server.say("QMESSAGE q 7=late").await;
    assert_eq!(server.next().await, "QNACK q 7");

    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("q", None).await })
    };
    assert_eq!(server.receive().await, "QRECV q");
    call.abort();
    assert_eq!(server.next().await, "QCANCEL q");
    server.say("QMESSAGE q 8=unleased").await;
    assert_eq!(
        event(&mut events).await,
        Event::QueueMessage {
            queue: "q".into(),
            id: "8".into(),
            value: bytes::Bytes::from_static(b"unleased")
        }
    );

    // The queue's place on the wire is free again: the next receive goes out and gets its
    // answer, even one that comes before its barrier's.
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("q", Some(Duration::from_secs(5))).await })
    };
    let recv = server.next().await;
    assert_eq!(recv, "QRECV q 5");
    let flush = server.next().await;
    server.say("QMESSAGE q 9=next").await;
    server.say(&flush.replace("FLUSH", "FLUSHED")).await;
    let got = within(call).await.unwrap().unwrap().unwrap();
    assert_eq!((got.id, got.text()), (9, "next".into()));

    // A refusal before the barrier is the receive's error; a later command's is its own.
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("q", None).await })
    };
    let recv = server.next().await;
    assert_eq!(recv, "QRECV q");
    let flush = server.next().await;
    server.say("OVERHEAD E too_many_waits q").await;
    server.say(&flush.replace("FLUSH", "FLUSHED")).await;
    let err = within(call).await.unwrap().unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::TooManyWaits));
}

/// A slave of `root` (its `Local::` queues at most 4 bytes a message), and a client of it.
async fn slave_of(root: &TestServer) -> (TestServer, Client) {
    let master = clacks_server::config::Master::Unix(root.socket.clone());
    let slave = TestServer::start_with(move |c| {
        c.master = Some(master);
        c.queues.limits.max_message_size = 4;
    })
    .await;
    let (c, _) = connect(&slave, "behind a slave").await;
    // Linked once a command for the root's queues is not refused.
    within(async {
        while c.stat("jobs").await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    (slave, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_slave_each_refusal_goes_to_the_call_on_its_queue() {
    let root = TestServer::start_with(|c| c.queues.limits.max_messages = 1).await;
    let (_slave, c) = slave_of(&root).await;
    within(c.send("jobs", "fills it")).await.unwrap();
    // The first runs at the root, the second on the slave, whose refusal comes back first.
    let (root_side, slave_side) =
        within(async { tokio::join!(c.send("jobs", "no room"), c.send("Local::q", "too long")) })
            .await;
    assert_eq!(
        root_side.unwrap_err().queue_refusal(),
        Some(QueueRefusal::QueueFull)
    );
    assert_eq!(
        slave_side.unwrap_err().queue_refusal(),
        Some(QueueRefusal::MessageTooLarge)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_waiting_at_the_root_ends_when_the_slave_loses_it() {
    let root = TestServer::start().await;
    let (_slave, c) = slave_of(&root).await;
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.recv("jobs", None).await })
    };
    until_stats(&c, "jobs", |s| s.waiting == 1).await;
    root.shutdown().await;
    let err = within(waiting).await.unwrap().unwrap_err();
    assert_eq!(err.queue_refusal(), Some(QueueRefusal::QueueUnavailable));
    // The queue's place on the wire is free again: a local queue still works.
    within(c.send("Local::q", "ok")).await.unwrap();
    let got = within(c.recv("Local::q", Some(SECOND))).await.unwrap();
    assert_eq!(got.unwrap().text(), "ok");
}
