//! Fault injection on interclacks trees of real `clacksd` processes.
//!
//! Every scenario starts a small tree of `clacksd` processes (each with its own config, Unix
//! socket, log and, where the scenario needs it, persistence file in a temporary directory), runs
//! a workload on some nodes while a fault is injected, heals the fault, stops the writers and
//! polls until every node holds the same key → value map (tombstones included). Then it checks
//! every acknowledged write and prints one line:
//!
//! ```text
//! scenario=<name> divergent_keys=<n> lost_acked_writes=<n> resync_ms=<n> longest_client_pause_ms=<n>
//! ```
//!
//! followed by the divergent keys (each node's view) and the lost writes, and asserts that both
//! counts are 0.
//!
//! The workload (see `faults/workload.rs`), designed so that the right final state is known
//! under last-writer-wins by origin time:
//! - per-writer keys `w.<node>.<i>`, written (and sometimes removed) only by that node's writer:
//!   everywhere the last acknowledged write must be found (or a later one whose outcome is
//!   unknown because its connection broke);
//! - contested keys `x.<j>`, written by several nodes taking turns (≥ 100 ms apart, each turn
//!   acknowledged before the next; `x.3` is removed every third turn): everywhere the last
//!   acknowledged turn must win, deletes included;
//! - per-node counters `n.<node>`, incremented only on that node: at least the acknowledged
//!   increments, at most those sent;
//! - the counter `shared`, incremented on every writing node during the faults: all nodes must
//!   only agree.
//!
//! A write is acknowledged when the `FLUSHED` of a `FLUSH` sent after it arrived. Before a node
//! is killed its writes stop and a marker written on it after them must have reached another
//! node, so a kill never takes acknowledged writes with it.
//!
//! The scenarios: a middle server paused with SIGSTOP within and past the link timeout; a leaf
//! and the root killed with SIGKILL and restarted from their persistence files; a TLS link
//! between two network namespaces cut for less and for more than the link timeout (skipped
//! with a message where namespaces cannot be made, unless `CLACKS_REQUIRE_PEERS` is set);
//! bursts of signals both ways over a link; the root of 20 slaves killed and restarted.
//!
//! The writers go on through the fault and stop at the heal (SIGCONT, link up, the restart of a
//! killed node; in the burst scenario they stop after it). `resync_ms` is the time from the heal
//! (the end of the burst) until every node holds the same map; `longest_client_pause_ms` the
//! longest `PING` + `FLUSH` round trip of a client polling every 15 ms over that time, on the
//! paused middle, the partitioned slave, a node next to the killed one (a slave of a killed
//! root, the master of a killed leaf), or the root during the burst. Readiness is always a
//! socket that answers, never a sleep; sleeps are the workload's and the faults' durations.
//!
//! The default run is short (`cargo test -p clacksd --test faults`; add `-- --nocapture` to see
//! the scenario lines of passing tests too); `CLACKS_FAULTS_LONG=1` runs longer, with more keys,
//! every fault repeated three times, 10 s pauses, bigger bursts and a storm of 50 slaves. The
//! namespace scenarios need root (or CAP_SYS_ADMIN) and `ip` from iproute2.

/// The harness: `faults/client.rs`, `faults/node.rs`, `faults/workload.rs`.
mod faults {
    pub(crate) mod client;
    pub(crate) mod node;
    pub(crate) mod workload;
}

use std::time::{Duration, Instant};

use faults::node::{Netns, Node, Spec, TlsListen, Upstream};
use faults::workload::{
    has, poll, settle, wait_linked, wait_replicated, Outcome, Probe, Target, Workload,
};

/// How long a tree may take to link up (or a write to cross it).
const LINK_WAIT: Duration = Duration::from_secs(30);

/// The size of a run: short by default, long with `CLACKS_FAULTS_LONG=1`.
struct Profile {
    /// Keys per writer.
    keys: usize,
    /// Writing before the first fault, and between repeated faults.
    writing: Duration,
    /// How often each fault is injected.
    rounds: usize,
    /// How long a killed node stays down.
    down: Duration,
    /// The pause past the link timeout (3 s).
    long_fault: Duration,
    /// Signals each way in the burst.
    burst: usize,
    /// Slaves in the restart storm.
    storm: usize,
    /// Deadline for equal key sets after the heal.
    converge: Duration,
}

fn profile() -> Profile {
    if std::env::var("CLACKS_FAULTS_LONG").is_ok_and(|v| v == "1") {
        Profile {
            keys: 64,
            writing: Duration::from_secs(8),
            rounds: 3,
            down: Duration::from_secs(6),
            long_fault: Duration::from_secs(10),
            burst: 100_000,
            storm: 50,
            converge: Duration::from_secs(60),
        }
    } else {
        Profile {
            keys: 16,
            writing: Duration::from_millis(1500),
            rounds: 1,
            down: Duration::from_secs(2),
            long_fault: Duration::from_secs(6),
            burst: 20_000,
            storm: 20,
            converge: Duration::from_secs(30),
        }
    }
}

fn targets(nodes: &[&Node]) -> Vec<Target> {
    nodes.iter().map(|n| Target::of(n)).collect()
}

/// The link CIDs of each node (a reconnected link has a new CID on the master's side).
fn links(nodes: &[&Node]) -> Vec<Vec<String>> {
    nodes
        .iter()
        .map(|n| n.client("links").link_cids().unwrap())
        .collect()
}

/// Asserts that the scenario left no divergent key and lost no acknowledged write; on failure
/// also shows the warnings the nodes logged.
fn assert_clean(name: &str, outcome: &Outcome, nodes: &[&Node]) {
    if outcome.divergent.is_empty() && outcome.lost.is_empty() {
        return;
    }
    for n in nodes {
        eprintln!("--- {name}: {} warnings:\n{}", n.name, n.log_tail(15));
    }
    assert!(
        outcome.divergent.is_empty(),
        "{name}: {} keys differ between nodes after {} ms: {:?}",
        outcome.divergent.len(),
        outcome.resync.as_millis(),
        outcome.divergent.keys().collect::<Vec<_>>()
    );
    assert!(
        outcome.lost.is_empty(),
        "{name}: acknowledged writes lost: {:?}",
        outcome.lost.keys().collect::<Vec<_>>()
    );
}

/// root — middle — two leaves; writers on the root and the leaves, which also take turns on the
/// contested keys; the middle is paused with SIGSTOP for `pause` (`within`: shorter than its
/// link timeout, so no link may be cut; else longer, so they must be) and continued.
fn pause_middle(name: &str, within: bool) {
    let p = profile();
    let dir = tempfile::tempdir().unwrap();
    let (ping_timeout, pause) = if within {
        // Links are pinged every 2 s: at most 2 + 2 s of silence, well under 6 s.
        (6.0, Duration::from_secs(2))
    } else {
        (3.0, p.long_fault)
    };
    let spec = || Spec::new().ping_timeout(ping_timeout);
    let root = Node::start(dir.path(), "root", spec());
    let mut middle = Node::start(dir.path(), "middle", spec().slave_of(&root));
    let leaf1 = Node::start(dir.path(), "leaf1", spec().slave_of(&middle));
    let leaf2 = Node::start(dir.path(), "leaf2", spec().slave_of(&middle));
    let all = targets(&[&root, &middle, &leaf1, &leaf2]);
    wait_linked(&all, LINK_WAIT);
    let before = links(&[&root, &middle]);
    let writing = targets(&[&root, &leaf1, &leaf2]);
    let mut work = Workload::start(&writing, &writing, p.keys);
    std::thread::sleep(p.writing);
    for round in 1..p.rounds {
        middle.pause();
        std::thread::sleep(pause);
        middle.resume();
        wait_linked(&all, LINK_WAIT);
        eprintln!("{name}: round {round} healed");
        std::thread::sleep(p.writing);
    }
    middle.pause();
    std::thread::sleep(pause);
    let ledger = work.finish();
    middle.resume();
    let healed = Instant::now();
    let mut probe = Probe::start(Target::of(&middle));
    let outcome = settle(name, &all, &ledger, healed, &mut probe, p.converge);
    let nodes = [&root, &middle, &leaf1, &leaf2];
    assert_clean(name, &outcome, &nodes);
    wait_linked(&all, LINK_WAIT);
    let after = links(&[&root, &middle]);
    if within {
        assert_eq!(before, after, "{name}: a link was cut within its timeout");
    } else {
        assert_ne!(before, after, "{name}: no link was cut past its timeout");
    }
}

#[test]
fn pause_middle_within_ping_timeout() {
    pause_middle("pause_middle_within_ping_timeout", true);
}

#[test]
fn pause_middle_past_ping_timeout() {
    pause_middle("pause_middle_past_ping_timeout", false);
}

/// A root with two leaves, all persistent, everyone writing and taking turns; the root or
/// `leaf1` is killed with SIGKILL (after its writes stopped and reached another node), stays
/// down while the others write, and is restarted from its persistence file.
fn kill_and_restart(name: &str, kill_root: bool) {
    let p = profile();
    let dir = tempfile::tempdir().unwrap();
    let spec = || Spec::new().persistent();
    let root = Node::start(dir.path(), "root", spec());
    let leaf1 = Node::start(dir.path(), "leaf1", spec().slave_of(&root));
    let leaf2 = Node::start(dir.path(), "leaf2", spec().slave_of(&root));
    let mut nodes = [root, leaf1, leaf2];
    let all = targets(&nodes.iter().collect::<Vec<_>>());
    wait_linked(&all, LINK_WAIT);
    let mut work = Workload::start(&all, &all, p.keys);
    // The victim, and a node that must hold its writes before it is killed.
    let (v, witness) = if kill_root { (0, 1) } else { (1, 0) };
    std::thread::sleep(p.writing);
    let mut ledger = None;
    for round in 1..=p.rounds {
        work.quiesce(&all[v].name);
        wait_replicated(&all[v], &all[witness], LINK_WAIT);
        nodes[v].kill9();
        std::thread::sleep(p.down);
        if round < p.rounds {
            nodes[v].restart();
            wait_linked(&all, LINK_WAIT);
            work.resume(&all[v], true);
            eprintln!("{name}: round {round} healed");
            std::thread::sleep(p.writing);
        } else {
            ledger = Some(work.finish());
        }
    }
    // The clock runs from the restart (the start and the sync included); a client of a node
    // that stayed up (the killed root's slave, or the killed leaf's master) is probed meanwhile.
    let mut probe = Probe::start(all[witness].clone());
    let healed = Instant::now();
    nodes[v].restart();
    let outcome = settle(name, &all, &ledger.unwrap(), healed, &mut probe, p.converge);
    assert_clean(name, &outcome, &nodes.iter().collect::<Vec<_>>());
}

#[test]
fn kill9_and_restart_a_leaf() {
    kill_and_restart("kill9_restart_leaf", false);
}

#[test]
fn kill9_and_restart_the_root() {
    kill_and_restart("kill9_restart_root", true);
}

fn require_peers() -> bool {
    std::env::var_os("CLACKS_REQUIRE_PEERS").is_some()
}

/// A master in one network namespace, its slave in another, linked with TLS over a veth pair
/// (the certificate pinned), and a leaf under the slave on a Unix socket. The veth pair goes
/// down for `cut` and comes up again; the master, the leaf (writers) and the slave take turns
/// on the contested keys throughout. Clients reach every node on its Unix socket.
fn partition(name: &str, cut: Duration, within: bool) {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) if !require_peers() => {
            println!("scenario={name} skipped: cannot make network namespaces here ({e})");
            return;
        }
        Err(e) => panic!("{name}: network namespaces are required (CLACKS_REQUIRE_PEERS): {e}"),
    };
    let p = profile();
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = clacks_server::tls::self_signed().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    // Only PINGs (and KEYSYNCs) count as life on a link, sent every 8/3 s here. In a 2 s cut a
    // PING sent at its start is retransmitted by TCP 3 s later: at most about 5.7 s without one,
    // under 8 s. A 10 s cut is longer than 8 s.
    let ping_timeout = 8.0;
    // The namespaces are this test's own, so no other listener can hold this port.
    let port = 49888;
    let mut master_spec = Spec::new().ping_timeout(ping_timeout);
    master_spec.netns = Some(ns.a.clone());
    master_spec.tls = Some(TlsListen {
        ip: ns.a_ip.clone(),
        port,
        cert: cert.clone(),
        key,
    });
    let master = Node::start(dir.path(), "master", master_spec);
    let mut slave_spec = Spec::new().ping_timeout(ping_timeout);
    slave_spec.netns = Some(ns.b.clone());
    slave_spec.master = Some(Upstream::Tls {
        ip: ns.a_ip.clone(),
        port,
        pin: cert,
    });
    let slave = Node::start(dir.path(), "slave", slave_spec);
    let leaf = Node::start(
        dir.path(),
        "leaf",
        Spec::new().ping_timeout(ping_timeout).slave_of(&slave),
    );
    let all = targets(&[&master, &slave, &leaf]);
    wait_linked(&all, LINK_WAIT);
    let before = links(&[&master]);
    let mut work = Workload::start(&targets(&[&master, &leaf]), &all, p.keys);
    std::thread::sleep(p.writing);
    for round in 1..p.rounds {
        ns.set_link(false);
        std::thread::sleep(cut);
        ns.set_link(true);
        wait_linked(&all, LINK_WAIT);
        eprintln!("{name}: round {round} healed");
        std::thread::sleep(p.writing);
    }
    ns.set_link(false);
    std::thread::sleep(cut);
    let ledger = work.finish();
    ns.set_link(true);
    let healed = Instant::now();
    let mut probe = Probe::start(Target::of(&slave));
    let outcome = settle(name, &all, &ledger, healed, &mut probe, p.converge);
    assert_clean(name, &outcome, &[&master, &slave, &leaf]);
    let after = links(&[&master]);
    if within {
        assert_eq!(before, after, "{name}: the link was cut within its timeout");
    } else {
        assert_ne!(
            before, after,
            "{name}: the link was not cut past its timeout"
        );
    }
}

#[test]
fn netns_tls_partition_within_ping_timeout() {
    partition("netns_tls_partition_2s", Duration::from_secs(2), true);
}

#[test]
fn netns_tls_partition_past_ping_timeout() {
    partition("netns_tls_partition_10s", Duration::from_secs(10), false);
}

/// Reads `LISTEN`ed signals on `node` until `want` arrived; how many did.
fn listener(node: &Node, channel: &str, want: usize) -> std::thread::JoinHandle<usize> {
    let mut c = node.client("listener");
    c.send(&format!("LISTEN {channel}\r\n")).unwrap();
    c.flush().unwrap();
    let notify = format!("NOTIFY {channel}");
    let set = format!("SET {channel}=");
    std::thread::spawn(move || {
        let mut got = 0;
        while got < want {
            match c.line() {
                Ok(l) if l == notify || l.starts_with(&set) => got += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    })
}

/// Sends `n` signals of about 100 bytes (`SET` and `NOTIFY` alternating) on `node` in one
/// write, then waits for them to have run.
fn burst(node: &Node, channel: &str, n: usize) -> std::thread::JoinHandle<()> {
    let mut c = node.client("burst");
    let mut text = String::with_capacity(n * 100);
    for i in 0..n {
        if i % 2 == 0 {
            text += &format!("SET {channel}={i:06}\r\n");
        } else {
            text += &format!("NOTIFY {channel}\r\n");
        }
    }
    std::thread::spawn(move || {
        c.set_wait(Duration::from_secs(120)).unwrap();
        c.send(&text).unwrap();
        c.flush().unwrap();
    })
}

/// A root and a slave, writers on both; each sends a burst of signals at the same moment,
/// which crosses the link both ways. The link keeps flowing (a STORE made after the burst is on
/// the other side within 5 s), nobody is cut, and every listener gets every signal.
#[test]
fn signal_bursts_both_ways() {
    let name = "signal_bursts_both_ways";
    let p = profile();
    let dir = tempfile::tempdir().unwrap();
    let root = Node::start(dir.path(), "root", Spec::new());
    let slave = Node::start(dir.path(), "slave", Spec::new().slave_of(&root));
    let all = targets(&[&root, &slave]);
    wait_linked(&all, LINK_WAIT);
    let before = links(&[&root, &slave]);
    let mut work = Workload::start(&all, &all, p.keys);
    std::thread::sleep(p.writing);
    // SET lines are 100 bytes, NOTIFY lines a few less.
    let channel = format!("burst.{}", "b".repeat(80));
    let listeners = [
        listener(&root, &channel, 2 * p.burst),
        listener(&slave, &channel, 2 * p.burst),
    ];
    let mut probe = Probe::start(Target::of(&root));
    let senders = [
        burst(&root, &channel, p.burst),
        burst(&slave, &channel, p.burst),
    ];
    for s in senders {
        s.join().unwrap();
    }
    let burst_end = Instant::now();
    for (from, to) in [(&root, &all[1]), (&slave, &all[0])] {
        let key = format!("after.{}", from.name);
        let mut c = from.client("after");
        c.store(&key, "1").unwrap();
        poll(
            Duration::from_secs(5),
            &format!(
                "{name}: a STORE on {} after the burst reaching {}",
                from.name, to.name
            ),
            || has(to, &key, "1").then_some(()),
        );
    }
    let flow = burst_end.elapsed();
    let ledger = work.finish();
    for (l, node) in listeners.into_iter().zip(["root", "slave"]) {
        let got = l.join().unwrap();
        assert_eq!(got, 2 * p.burst, "{name}: signals a listener on {node} got");
    }
    let outcome = settle(name, &all, &ledger, burst_end, &mut probe, p.converge);
    println!(
        "  {name}: {} signals each way; a STORE after the burst crossed both ways in {} ms",
        p.burst,
        flow.as_millis()
    );
    assert_clean(name, &outcome, &[&root, &slave]);
    for node in [&root, &slave] {
        let stats = node.client("stats").stats().unwrap();
        for counter in ["link_lines_dropped", "slow_consumers", "stalled_writes"] {
            assert_eq!(
                stats.get(counter),
                Some(&0),
                "{name}: {counter} on {}",
                node.name
            );
        }
    }
    assert_eq!(before, links(&[&root, &slave]), "{name}: a link was cut");
}

/// A persistent root with 20 slaves (writers on the root and two slaves, which take turns on
/// the contested keys). The root is killed with SIGKILL and restarted: all 20 slaves link again,
/// and a STORE on the root afterwards reaches all of them within 10 s.
#[test]
fn restart_storm_of_20_slaves() {
    let p = profile();
    let name = &format!("restart_storm_{}_slaves", p.storm);
    let dir = tempfile::tempdir().unwrap();
    let mut root = Node::start(dir.path(), "root", Spec::new().persistent());
    let slaves: Vec<Node> = (0..p.storm)
        .map(|i| Node::start(dir.path(), &format!("s{i:02}"), Spec::new().slave_of(&root)))
        .collect();
    let mut nodes: Vec<&Node> = vec![&root];
    nodes.extend(slaves.iter());
    let all = targets(&nodes);
    let slave_targets = all[1..].to_vec();
    wait_linked(&all, LINK_WAIT);
    let writing = all[..3].to_vec();
    let mut work = Workload::start(&writing, &writing, p.keys);
    let root_target = all[0].clone();
    std::thread::sleep(p.writing);
    let mut ledger = None;
    let mut probe = None;
    let mut restarted_last = None;
    for round in 1..=p.rounds {
        work.quiesce(&root_target.name);
        wait_replicated(&root_target, &slave_targets[0], LINK_WAIT);
        root.kill9();
        std::thread::sleep(Duration::from_secs(1));
        if round == p.rounds {
            ledger = Some(work.finish());
            // A client of a slave that does not write is probed from the restart on.
            probe = Some(Probe::start(slave_targets[2].clone()));
        }
        let restarted = Instant::now();
        restarted_last = Some(restarted);
        root.restart();
        let mut c = root.client("storm");
        poll(
            LINK_WAIT,
            &format!("{name}: {} links on the root", p.storm),
            || (c.link_cids().ok()?.len() == p.storm).then_some(()),
        );
        let linked = restarted.elapsed();
        let value = format!("round{round}");
        let stored = Instant::now();
        c.store("storm.after", &value).unwrap();
        poll(
            Duration::from_secs(10),
            &format!(
                "{name}: a STORE on the restarted root reaching all {} slaves",
                p.storm
            ),
            || {
                slave_targets
                    .iter()
                    .all(|t| has(t, "storm.after", &value))
                    .then_some(())
            },
        );
        println!(
            "  {name}: round {round}: {} slaves linked {} ms after the restart; a STORE reached all in {} ms",
            p.storm,
            linked.as_millis(),
            stored.elapsed().as_millis()
        );
        if round < p.rounds {
            wait_linked(&all, LINK_WAIT);
            work.resume(&root_target, true);
            std::thread::sleep(p.writing);
        }
    }
    let mut probe = probe.unwrap();
    let outcome = settle(
        name,
        &all,
        &ledger.unwrap(),
        restarted_last.unwrap(),
        &mut probe,
        p.converge,
    );
    let mut nodes: Vec<&Node> = vec![&root];
    nodes.extend(slaves.iter());
    assert_clean(name, &outcome, &nodes);
}
