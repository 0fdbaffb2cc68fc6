//! The workload and what it must leave behind: a ledger of acknowledged writes, writer threads
//! (one per writing node), the contest (turn-taking writes of the same keys from several nodes),
//! a probe that measures client round trips, and the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Client, KeySet};
use super::node::Node;

/// How a thread reaches a node: its name and socket.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) socket: PathBuf,
}

impl Target {
    pub(crate) fn of(node: &Node) -> Target {
        Target {
            name: node.name.clone(),
            socket: node.socket.clone(),
        }
    }

    fn connect(&self, who: &str) -> Option<Client> {
        Client::connect(&self.socket, who, Duration::from_secs(2)).ok()
    }
}

/// What is known about the writes to one key by the one writer of that key.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyHistory {
    /// The last acknowledged write (`Some(None)`: a REMOVE), `None` if none was.
    acked: Option<Option<String>>,
    /// Writes sent after it whose outcome is unknown (the connection broke before `FLUSHED`).
    unknown: Vec<Option<String>>,
}

impl KeyHistory {
    /// Whether a node holding `value` (`None`: absent or a tombstone) keeps every acknowledged
    /// write: it holds the last acknowledged value or one sent after it.
    fn allows(&self, value: &Option<String>) -> bool {
        let acked_ok = match &self.acked {
            Some(v) => v == value,
            None => value.is_none(),
        };
        acked_ok || self.unknown.contains(value)
    }

    fn describe(&self) -> String {
        let acked = match &self.acked {
            None => "none".to_string(),
            Some(v) => show(v),
        };
        if self.unknown.is_empty() {
            format!("last acknowledged {acked}")
        } else {
            let unknown: Vec<String> = self.unknown.iter().map(show).collect();
            format!(
                "last acknowledged {acked}, unknown outcome after it {}",
                unknown.join(", ")
            )
        }
    }
}

/// A value for the report: quoted, or `removed` for a tombstone or missing key.
pub(crate) fn show(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "removed".into(),
    }
}

/// A node's view of a key for the report: its value, `tombstone`, or `absent` (not listed).
fn show_view(view: &Option<Option<String>>) -> String {
    match view {
        None => "absent".into(),
        Some(None) => "tombstone".into(),
        Some(Some(v)) => format!("{v:?}"),
    }
}

/// What each writer knows it wrote: per key the last acknowledged value, per counter the
/// increments acknowledged and sent.
#[derive(Default, Debug)]
pub(crate) struct Ledger {
    pub(crate) keys: BTreeMap<String, KeyHistory>,
    /// counter → (acknowledged, sent)
    pub(crate) counters: BTreeMap<String, (u64, u64)>,
}

/// A write of a batch: `STORE key=value`, `REMOVE key` or `INCREMENT counter`.
enum Op {
    Put(String, Option<String>),
    Incr(String),
    /// Counted by nobody (the shared counter: only agreement is checked).
    Untracked(String),
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Put(k, Some(v)) => format!("STORE {k}={v}"),
            Op::Put(k, None) => format!("REMOVE {k}"),
            Op::Incr(k) | Op::Untracked(k) => format!("INCREMENT {k}"),
        }
    }
}

impl Ledger {
    fn sent(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put(k, v) => self
                    .keys
                    .entry(k.clone())
                    .or_default()
                    .unknown
                    .push(v.clone()),
                Op::Incr(k) => self.counters.entry(k.clone()).or_default().1 += 1,
                Op::Untracked(_) => {}
            }
        }
    }

    fn acked(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let h = self.keys.entry(k.clone()).or_default();
                    h.acked = Some(v.clone());
                    h.unknown.clear();
                }
                Op::Incr(k) => self.counters.entry(k.clone()).or_default().0 += 1,
                Op::Untracked(_) => {}
            }
        }
    }

    /// Runs `ops` in one batch on `client`: acknowledged or of unknown outcome.
    fn run(&mut self, client: &mut Option<Client>, target: &Target, ops: &[Op]) -> bool {
        if client.is_none() {
            *client = target.connect("writer");
        }
        let Some(c) = client.as_mut() else {
            return false;
        };
        self.sent(ops);
        let lines: Vec<String> = ops.iter().map(Op::line).collect();
        if c.write(&lines).is_ok() {
            self.acked(ops);
            true
        } else {
            *client = None;
            false
        }
    }

    fn merge(&mut self, other: Ledger) {
        self.keys.extend(other.keys);
        self.counters.extend(other.counters);
    }
}

/// Start/stop/pause switches shared with a worker thread.
#[derive(Default)]
struct Switches {
    stop: AtomicBool,
    pause: AtomicBool,
    /// Set by the thread while it is paused (no write of its own in flight).
    idle: AtomicBool,
}

/// A thread writing on one node: its own keys `w.<node>.<i>` (values `<node>:<seq>`, every fifth
/// write a REMOVE), its counter `n.<node>`, and the shared counter `shared`, one acknowledged
/// batch at a time.
pub(crate) struct Writer {
    pub(crate) node: String,
    switches: Arc<Switches>,
    handle: Option<JoinHandle<Ledger>>,
}

impl Writer {
    pub(crate) fn start(target: Target, keys: usize) -> Writer {
        let switches = Arc::new(Switches::default());
        let s = switches.clone();
        let node = target.name.clone();
        let handle = std::thread::spawn(move || {
            let mut ledger = Ledger::default();
            let mut client = None;
            let mut seq = 0u64;
            while !s.stop.load(Ordering::SeqCst) {
                if s.pause.load(Ordering::SeqCst) {
                    client = None;
                    s.idle.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                s.idle.store(false, Ordering::SeqCst);
                seq += 1;
                let key = format!("w.{}.{:03}", target.name, seq as usize % keys);
                let value = (seq % 5 != 0).then(|| format!("{}:{seq}", target.name));
                let ops = [
                    Op::Put(key, value),
                    Op::Incr(format!("n.{}", target.name)),
                    Op::Untracked("shared".into()),
                ];
                if !ledger.run(&mut client, &target, &ops) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_millis(8));
            }
            ledger
        });
        Writer {
            node,
            switches,
            handle: Some(handle),
        }
    }

    /// Stops writing and waits until no write of this writer is in flight.
    pub(crate) fn pause(&self) {
        self.switches.idle.store(false, Ordering::SeqCst);
        self.switches.pause.store(true, Ordering::SeqCst);
        let started = Instant::now();
        while !self.switches.idle.load(Ordering::SeqCst) {
            assert!(started.elapsed() < Duration::from_secs(30), "writer stuck");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub(crate) fn resume(&self) {
        self.switches.pause.store(false, Ordering::SeqCst);
    }

    /// Stops the thread; its ledger.
    pub(crate) fn finish(&mut self) -> Ledger {
        self.switches.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// Contested keys `x.<j>`: the participating nodes take turns; in each turn one node writes
/// every contested key (the last one is removed every third turn) and waits for the
/// acknowledgement, then ≥ 100 ms pass before the next turn on the next node. So the last
/// acknowledged turn must win everywhere.
pub(crate) struct Contest {
    participants: Arc<Mutex<Vec<Target>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Ledger>>,
}

/// Contested keys per turn.
const CONTESTED: usize = 4;

impl Contest {
    pub(crate) fn start(participants: Vec<Target>) -> Contest {
        let participants = Arc::new(Mutex::new(participants));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (participants.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut ledger = Ledger::default();
            let mut clients: BTreeMap<String, Option<Client>> = BTreeMap::new();
            let mut turn = 0usize;
            while !s.load(Ordering::SeqCst) {
                {
                    // The lock is held for the whole turn: a change of participants waits until
                    // no contested write is in flight.
                    let p = p.lock().unwrap();
                    if !p.is_empty() {
                        turn += 1;
                        let target = &p[turn % p.len()];
                        let value = format!("t{turn}@{}", target.name);
                        let ops: Vec<Op> = (0..CONTESTED)
                            .map(|j| {
                                // The last contested key is removed every third turn.
                                let removed = j == CONTESTED - 1 && turn % 3 == 0;
                                Op::Put(format!("x.{j}"), (!removed).then(|| value.clone()))
                            })
                            .collect();
                        let client = clients.entry(target.name.clone()).or_default();
                        ledger.run(client, target, &ops);
                    }
                }
                std::thread::sleep(Duration::from_millis(120));
            }
            ledger
        });
        Contest {
            participants,
            stop,
            handle: Some(handle),
        }
    }

    /// Takes `name` out of the turns; returns once no contested write is in flight.
    pub(crate) fn exclude(&self, name: &str) {
        self.participants.lock().unwrap().retain(|t| t.name != name);
    }

    pub(crate) fn include(&self, target: Target) {
        self.participants.lock().unwrap().push(target);
    }

    pub(crate) fn finish(&mut self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// A client doing `PING` + `FLUSH` round trips every 15 ms on one node; the longest time one took
/// (a broken connection is reconnected, and the time until an answer counts).
pub(crate) struct Probe {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Duration>>,
}

impl Probe {
    pub(crate) fn start(target: Target) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            let mut client: Option<Client> = None;
            while !s.load(Ordering::SeqCst) {
                let sent = Instant::now();
                loop {
                    if client.is_none() {
                        client = target.connect("probe");
                    }
                    let answered = client
                        .as_mut()
                        .is_some_and(|c| c.send("PING\r\n").is_ok() && c.flush().is_ok());
                    if answered || s.load(Ordering::SeqCst) {
                        break;
                    }
                    client = None;
                    std::thread::sleep(Duration::from_millis(10));
                }
                longest = longest.max(sent.elapsed());
                std::thread::sleep(Duration::from_millis(15));
            }
            longest
        });
        Probe {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops; the longest round trip seen.
    pub(crate) fn finish(&mut self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what` after `wait`.
pub(crate) fn poll<T>(wait: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < wait, "timed out after {wait:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `key` has `value` on the node at `target` (a failed read counts as no).
pub(crate) fn has(target: &Target, key: &str, value: &str) -> bool {
    target
        .connect("check")
        .and_then(|mut c| c.retrieve(key).ok())
        .is_some_and(|v| v.as_deref() == Some(value))
}

/// Waits until the tree is linked and synced: a marker written on every node is readable on
/// every node (a slave's writes cross only after its sync, so this also waits for the syncs).
pub(crate) fn wait_linked(targets: &[Target], wait: Duration) {
    let generation = super::node::unique();
    let key = |t: &Target| format!("link.{}", t.name);
    for t in targets {
        let mut c = t.connect("marker").expect("marker client");
        c.store(&key(t), &generation.to_string()).unwrap();
    }
    let keys: Vec<String> = targets.iter().map(key).collect();
    let want = Some(generation.to_string());
    for t in targets {
        poll(
            wait,
            &format!("markers of every node on {}", t.name),
            || {
                let mut c = t.connect("marker")?;
                let values = c.retrieve_many(&keys).ok()?;
                values.iter().all(|v| *v == want).then_some(())
            },
        );
    }
}

/// Waits until everything written on `from` before now is on `to`: a marker written on `from`
/// arrives there (lines travel in order).
pub(crate) fn wait_replicated(from: &Target, to: &Target, wait: Duration) {
    let value = super::node::unique().to_string();
    let key = format!("mark.{}", from.name);
    let mut c = from.connect("marker").expect("marker client");
    c.store(&key, &value).unwrap();
    poll(
        wait,
        &format!("a write on {} reaching {}", from.name, to.name),
        || has(to, &key, &value).then_some(()),
    );
}

/// Every node's key set (`None` for a node that could not be read).
pub(crate) fn key_sets(targets: &[Target]) -> Vec<Option<KeySet>> {
    targets
        .iter()
        .map(|t| {
            let mut c = t.connect("keyset")?;
            c.set_wait(Duration::from_secs(10)).ok()?;
            c.key_set().ok()
        })
        .collect()
}

/// Divergent keys: key → each node's view (`None`: not listed, `Some(None)`: a tombstone).
pub(crate) type Divergent = BTreeMap<String, Vec<(String, Option<Option<String>>)>>;

/// Keys whose value is not the same on every node, with each node's view.
pub(crate) fn divergent(targets: &[Target], sets: &[KeySet]) -> Divergent {
    let all: BTreeSet<&String> = sets.iter().flat_map(|s| s.keys()).collect();
    let mut out = BTreeMap::new();
    for key in all {
        let views: Vec<Option<Option<String>>> = sets.iter().map(|s| s.get(key).cloned()).collect();
        if views.iter().any(|v| *v != views[0]) {
            let named = targets.iter().map(|t| t.name.clone()).zip(views).collect();
            out.insert(key.clone(), named);
        }
    }
    out
}

/// How long the nodes' key sets must stay equal to count as converged.
const SETTLED: Duration = Duration::from_millis(500);

/// Polls every node's key set until they are all equal and stay so for [`SETTLED`] (or `wait`
/// passed: a sync still under way could change them again); the last sets read and when they
/// were first all equal.
pub(crate) fn converge(targets: &[Target], wait: Duration) -> (Vec<KeySet>, Option<Instant>) {
    let started = Instant::now();
    let mut equal_since: Option<(Instant, Vec<KeySet>)> = None;
    loop {
        let sets = key_sets(targets);
        if sets.iter().all(Option::is_some) {
            let sets: Vec<KeySet> = sets.into_iter().map(Option::unwrap).collect();
            if divergent(targets, &sets).is_empty() {
                let since = match equal_since.take() {
                    Some((since, before)) if before == sets => since,
                    _ => Instant::now(),
                };
                if since.elapsed() >= SETTLED || started.elapsed() > wait {
                    return (sets, Some(since));
                }
                equal_since = Some((since, sets));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            equal_since = None;
            if started.elapsed() > wait {
                return (sets, None);
            }
        } else {
            let unread: Vec<&str> = targets
                .iter()
                .zip(&sets)
                .filter(|(_, s)| s.is_none())
                .map(|(t, _)| t.name.as_str())
                .collect();
            assert!(
                started.elapsed() < wait,
                "cannot read the key sets of {unread:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The acknowledged writes that some node does not hold: per key (with what was acknowledged),
/// what each such node holds instead.
pub(crate) fn lost_writes(
    targets: &[Target],
    sets: &[KeySet],
    ledger: &Ledger,
) -> BTreeMap<String, Vec<String>> {
    let mut lost: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (target, set) in targets.iter().zip(sets) {
        for (key, history) in &ledger.keys {
            let value = set.get(key).cloned().flatten();
            if !history.allows(&value) {
                let nodes = lost.entry(format!("{key} ({})", history.describe()));
                nodes
                    .or_default()
                    .push(format!("{} holds {}", target.name, show(&value)));
            }
        }
        for (counter, (acked, sent)) in &ledger.counters {
            let value = set.get(counter).cloned().flatten();
            let n: Option<u64> = match &value {
                None => Some(0),
                Some(v) => v.parse().ok(),
            };
            if !n.is_some_and(|n| (*acked..=*sent).contains(&n)) {
                let nodes = lost.entry(format!(
                    "{counter} ({acked} increments acknowledged, {sent} sent)"
                ));
                nodes
                    .or_default()
                    .push(format!("{} holds {}", target.name, show(&value)));
            }
        }
    }
    lost
}

/// A running workload: writers on some nodes, the contest among some nodes.
pub(crate) struct Workload {
    writers: Vec<Writer>,
    contest: Contest,
}

impl Workload {
    pub(crate) fn start(writers: &[Target], contest: &[Target], keys: usize) -> Workload {
        Workload {
            writers: writers
                .iter()
                .map(|t| Writer::start(t.clone(), keys))
                .collect(),
            contest: Contest::start(contest.to_vec()),
        }
    }

    /// Stops writing on `node` (its writer and its contest turns) and returns once nothing of
    /// it is in flight.
    pub(crate) fn quiesce(&self, node: &str) {
        for w in self.writers.iter().filter(|w| w.node == node) {
            w.pause();
        }
        self.contest.exclude(node);
    }

    /// Lets `target` write again.
    pub(crate) fn resume(&self, target: &Target, contested: bool) {
        for w in self.writers.iter().filter(|w| w.node == target.name) {
            w.resume();
        }
        if contested {
            self.contest.include(target.clone());
        }
    }

    /// Stops every writer; what they acknowledged.
    pub(crate) fn finish(&mut self) -> Ledger {
        let mut ledger = self.contest.finish();
        for w in &mut self.writers {
            ledger.merge(w.finish());
        }
        ledger
    }
}

/// What a scenario measured, printed as one line and checked.
pub(crate) struct Outcome {
    pub(crate) divergent: Divergent,
    /// key (and what was acknowledged) → what each node that lost it holds instead
    pub(crate) lost: BTreeMap<String, Vec<String>>,
    pub(crate) resync: Duration,
}

/// Polls the nodes until they agree (from `healed`), checks the ledger, prints the scenario
/// line and the details of every divergent key and lost write.
pub(crate) fn settle(
    name: &str,
    targets: &[Target],
    ledger: &Ledger,
    healed: Instant,
    probe: &mut Probe,
    wait: Duration,
) -> Outcome {
    let (sets, equal_at) = converge(targets, wait);
    let longest_pause = probe.finish();
    let resync = equal_at.unwrap_or_else(Instant::now) - healed;
    let divergent = divergent(targets, &sets);
    let lost = lost_writes(targets, &sets, ledger);
    println!(
        "scenario={name} divergent_keys={} lost_acked_writes={} resync_ms={} longest_client_pause_ms={}",
        divergent.len(),
        lost.len(),
        resync.as_millis(),
        longest_pause.as_millis()
    );
    for (key, views) in &divergent {
        let views: Vec<String> = views
            .iter()
            .map(|(node, v)| format!("{node}={}", show_view(v)))
            .collect();
        println!("  {name}: divergent {key}: {}", views.join(" "));
    }
    for (key, nodes) in &lost {
        println!(
            "  {name}: lost acknowledged write: {key}: {}",
            nodes.join(", ")
        );
    }
    let keys: usize = sets.first().map_or(0, BTreeMap::len);
    println!(
        "  {name}: {} nodes, {keys} keys, {} writer keys and {} counters checked",
        targets.len(),
        ledger.keys.len(),
        ledger.counters.len()
    );
    Outcome {
        divergent,
        lost,
        resync,
    }
}
