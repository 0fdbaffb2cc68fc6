//! The journal under `kill -9`: 20 writers on their own connections STORE, INCREMENT, REMOVE
//! and QSEND, each batch ending with a `FLUSH`; the server (a real `clacksd`, saving every half
//! second, so journal files are rotated meanwhile) is killed with SIGKILL at a random moment
//! and restarted, round after round. After each restart:
//!
//! - with `<fsync>always`, every acknowledged change is there: each writer's counter is at least
//!   the sum of its acknowledged increments and at most that plus the batch it had under way,
//!   its last acknowledged STORE (or the one under way) holds, its acknowledged REMOVE holds,
//!   and every message acknowledged to it is in its queue; messages taken from a queue (at most
//!   once, then acknowledged by a FLUSH) never come back;
//! - with `<fsync>everysec`, the same is counted, not asserted, and printed.
//!
//! One line per mode: `journal fsync=<mode> kills=<n> acked_batches=<n> lost_batches=<n>`.
//! 20 kills with `always`, 5 with `everysec`; `CLACKS_FAULTS_LONG=1` doubles the writing time.

#[allow(dead_code)] // The fault harness: these tests use its nodes and client only.
mod faults {
    pub(crate) mod client;
    pub(crate) mod node;
}

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faults::client::Client;
use faults::node::{Node, Spec};

const WRITERS: usize = 20;

/// What one writer had acknowledged, and what it had under way when the server died.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// Acknowledged increments of `c.<w>`.
    count: u64,
    /// Increments in the batch under way (0 when none).
    count_pending: u64,
    /// The last acknowledged value of `s.<w>`, and the one under way.
    stored: Option<u64>,
    stored_pending: Option<u64>,
    /// Whether `r.<w>` was last acknowledged as removed (`Some(true)`), or stored.
    removed: Option<bool>,
    removed_pending: Option<bool>,
    /// Messages of `q.<w>` acknowledged to the sender and not taken yet; the one under way.
    queued: BTreeSet<u64>,
    queued_pending: Option<u64>,
    /// Messages taken from the queue (and acknowledged): never to be seen again.
    taken: BTreeSet<u64>,
    /// The next number for a STORE or a message.
    serial: u64,
    /// Batches acknowledged.
    batches: u64,
}

/// Writes batches until the connection fails (the server was killed).
fn write(socket: &std::path::Path, w: usize, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let Ok(mut client) = Client::connect(socket, &format!("w{w}"), Duration::from_secs(5)) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let (n, remove) = {
            let mut l = ledger.lock().unwrap();
            l.serial += 1;
            let n = l.serial;
            l.count_pending = 3;
            l.stored_pending = Some(n);
            l.removed_pending = Some(n % 2 == 0);
            l.queued_pending = Some(n);
            (n, n % 2 == 0)
        };
        let mut lines = vec![
            format!("STORE s.{w}={n}"),
            format!("INCREMENT c.{w}"),
            format!("INCREMENT c.{w}=2"),
            format!("QSEND q.{w}={n}"),
        ];
        lines.push(if remove {
            format!("REMOVE r.{w}")
        } else {
            format!("STORE r.{w}=here")
        });
        if client.write(&lines).is_err() {
            return;
        }
        let mut l = ledger.lock().unwrap();
        l.batches += 1;
        l.count += 3;
        l.count_pending = 0;
        l.stored = l.stored_pending.take();
        l.removed = l.removed_pending.take();
        l.queued.insert(n);
        l.queued_pending = None;
    }
}

/// Takes every message of `queue` (without a lease, then FLUSH); their values.
fn drain(client: &mut Client, queue: &str) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        client.send(&format!("QRECV {queue} 0\r\n")).unwrap();
        let line = client.line().unwrap();
        if line.starts_with("QEMPTY") {
            break;
        }
        let value = line.rsplit_once('=').expect("QMESSAGE").1;
        got.push(value.parse().expect("a number"));
    }
    client.flush().unwrap();
    got
}

/// Checks (or, for `everysec`, counts) what a writer finds after a restart against its ledger,
/// and makes the found state the ledger's. Returns the acknowledged batches lost.
fn check(client: &mut Client, w: usize, l: &mut Ledger, strict: bool) -> u64 {
    let mut lost = 0;
    let mut fail = |what: String| {
        assert!(!strict, "writer {w}: {what}");
        lost += 1;
    };
    let count: u64 = client
        .retrieve(&format!("c.{w}"))
        .unwrap()
        .map_or(0, |v| v.parse().unwrap());
    if count < l.count || count > l.count + l.count_pending {
        fail(format!(
            "counter {count}, acknowledged {} (+{} under way)",
            l.count, l.count_pending
        ));
    }
    l.count = count;
    let stored = client
        .retrieve(&format!("s.{w}"))
        .unwrap()
        .map(|v| v.parse::<u64>().unwrap());
    if l.stored.is_some() && stored != l.stored && stored != l.stored_pending {
        fail(format!(
            "s.{w} is {stored:?}, acknowledged {:?} (under way {:?})",
            l.stored, l.stored_pending
        ));
    }
    let removed = client.retrieve(&format!("r.{w}")).unwrap().is_none();
    if l.removed.is_some_and(|r| r != removed) && l.removed_pending != Some(removed) {
        fail(format!(
            "r.{w} removed={removed}, acknowledged {:?}",
            l.removed
        ));
    }
    let got: BTreeSet<u64> = drain(client, &format!("q.{w}")).into_iter().collect();
    let missing: Vec<&u64> = l.queued.difference(&got).collect();
    if !missing.is_empty() {
        fail(format!("acknowledged messages lost: {missing:?}"));
    }
    let back: Vec<&u64> = got.intersection(&l.taken).collect();
    assert!(
        back.is_empty(),
        "writer {w}: taken messages came back: {back:?}"
    );
    l.taken.extend(got);
    l.queued.clear();
    (
        l.count_pending,
        l.stored_pending,
        l.removed_pending,
        l.queued_pending,
    ) = (0, None, None, None);
    lost
}

/// Runs `kills` rounds of writing and SIGKILL with `<fsync>fsync`; returns the batches lost.
fn crash_rounds(fsync: &'static str, kills: usize) -> (u64, u64) {
    let long = std::env::var("CLACKS_FAULTS_LONG").is_ok_and(|v| v == "1");
    let base = tempfile::tempdir().unwrap();
    let mut node = Node::start(base.path(), "j", Spec::new().journaled(fsync));
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let mut lost = 0;
    for _ in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = ledgers
            .iter()
            .enumerate()
            .map(|(w, ledger)| {
                let (socket, ledger, stop) = (node.socket.clone(), ledger.clone(), stop.clone());
                std::thread::spawn(move || write(&socket, w, &ledger, &stop))
            })
            .collect();
        let ms = 100 + rand::random::<u64>() % 400;
        std::thread::sleep(Duration::from_millis(if long { ms * 2 } else { ms }));
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        node.restart();
        let mut client = node.client("check");
        for (w, ledger) in ledgers.iter().enumerate() {
            let mut l = ledger.lock().unwrap();
            lost += check(&mut client, w, &mut l, fsync == "always");
        }
    }
    let acked = ledgers.iter().map(|l| l.lock().unwrap().batches).sum();
    println!("journal fsync={fsync} kills={kills} acked_batches={acked} lost_batches={lost}");
    (acked, lost)
}

#[test]
fn nothing_acknowledged_is_lost_with_fsync_always() {
    let (acked, lost) = crash_rounds("always", 20);
    assert!(acked > 0, "no batch was written");
    assert_eq!(lost, 0);
}

#[test]
fn everysec_loses_at_most_about_a_second() {
    let (acked, _lost) = crash_rounds("everysec", 5);
    assert!(acked > 0, "no batch was written");
}
