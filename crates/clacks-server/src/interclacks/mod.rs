//! Interclacks: servers joined in a master/slave tree share signals and the cache.
//!
//! - this module: the links of this server ([`Links`], part of the shared state), the forwarding
//!   policy (how each command reaches the peers, [`forward`]); what they are sent is built in
//!   [`crate::mutation`];
//! - [`master`]: our own link to our master (connect, hello, reconnect with backoff);
//! - [`sync`]: the full sync when a slave links up, and our answer when our master has synced us.
//!
//! A link is an ordinary connection of the Clacks protocol (see `conn.rs`); its limits are its own
//! config elements: `interclacksmaxoutbuffer`, `interclackspingtimeout`,
//! `interclacksstalledwritetimeout` and `interclacksreconnecttimeout`.

pub(crate) mod clock;
pub(crate) mod master;
pub(crate) mod routes;
pub(crate) mod sync;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use clacks_proto::Request;
use clacks_store::Entry;
use tokio::time::Instant;

use crate::state::{ConnId, Conns, Shared};
use crate::Config;

/// What kind of interclacks link a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// A client.
    None,
    /// A slave that connected to us and sent `OVERHEAD I 1`.
    Inbound,
    /// Our connection to our master.
    ToMaster,
}

/// The word a `clacksd` puts in its `CLACKS` line on a link: it sends and reads changes with
/// their origin times (`KEYINCREMENT`). A v36 server does neither.
pub(crate) const ORIGIN_TIMES: &str = "origin-times";

/// Whether a peer's `CLACKS` line has the word `word` (like [`ORIGIN_TIMES`]).
pub(crate) fn says(info: &[u8], word: &str) -> bool {
    info.split(|&b| b == b' ').any(|w| w == word.as_bytes())
}

/// What our side of a link says of itself in its `CLACKS` line, after the server's name.
pub(crate) fn words() -> String {
    format!("{ORIGIN_TIMES} {}", routes::QUEUES)
}

/// A connection's side of a link (its session holds one).
pub(crate) struct LinkSide {
    pub(crate) kind: Link,
    /// Whether the peer said it handles [`ORIGIN_TIMES`] (in its last `CLACKS` line before
    /// the link was in place).
    pub(crate) origin_times: bool,
    /// Whether the peer said it takes forwarded queue commands ([`routes::QUEUES`]).
    pub(crate) queues: bool,
    /// The link is in place (forwarding): a later `CLACKS` line changes nothing.
    pub(crate) settled: bool,
    /// When the next keepalive PING goes out.
    pub(crate) next_ping: Instant,
    /// During our master's sync: the records it sent, so we answer only with what differs.
    pub(crate) sync_seen: Option<HashMap<Bytes, Entry>>,
    /// The clock we sent our slave in its sync (see [`clock`]).
    pub(crate) sent_clock: Option<f64>,
    /// The clock our master sent us in our sync.
    pub(crate) peer_clock: Option<f64>,
    /// How much later a copy of a record from a v36 peer may come back and still count as the
    /// same write (see [`clock::RESYNC_SLACK`]).
    pub(crate) slack: f64,
}

impl LinkSide {
    pub(crate) fn new(kind: Link, config: &Config) -> LinkSide {
        LinkSide {
            kind,
            origin_times: false,
            queues: false,
            settled: false,
            next_ping: Instant::now() + ping_interval(config),
            sync_seen: None,
            sent_clock: None,
            peer_clock: None,
            slack: clock::RESYNC_SLACK,
        }
    }

    /// Whether this connection is an interclacks link.
    pub(crate) fn is_link(&self) -> bool {
        self.kind != Link::None
    }
}

/// PING interval on interclacks links: a third of the link timeout (at least one second).
pub(crate) fn ping_interval(config: &Config) -> Duration {
    (config.interclacks_ping_timeout / 3).max(Duration::from_secs(1))
}

/// The interclacks links of this server (part of the shared state).
#[derive(Default)]
pub(crate) struct Links {
    /// Each link, and whether its peer handles [`ORIGIN_TIMES`].
    ids: Vec<(ConnId, bool)>,
    /// Set while our master syncs us (`OVERHEAD L 1` … `L 0`); other connections wait.
    sync_locked: bool,
    /// The clock offset agreed with our master, kept across reconnects (see [`clock`]).
    pub(crate) master_offset: Option<f64>,
}

impl Links {
    /// Marks a connection as a link, whose peer handles [`ORIGIN_TIMES`] or not.
    pub(crate) fn add(&mut self, conns: &mut Conns, id: ConnId, origin_times: bool) {
        conns.set_interclacks(id, true);
        self.remove(id);
        self.ids.push((id, origin_times));
    }

    /// Makes a link an ordinary connection again (`OVERHEAD I 0`).
    pub(crate) fn unlink(&mut self, conns: &mut Conns, id: ConnId) {
        conns.set_interclacks(id, false);
        self.remove(id);
    }

    /// Forgets a connection that went away.
    pub(crate) fn remove(&mut self, id: ConnId) {
        self.ids.retain(|(l, _)| *l != id);
    }

    /// Every link.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.ids.iter().map(|(id, _)| *id)
    }

    /// Whether there is a link other than `origin`.
    pub(crate) fn any_except(&self, origin: ConnId) -> bool {
        self.ids.iter().any(|(l, _)| *l != origin)
    }

    /// Sends to every link except `origin` the line `line` makes for it (none for `None`), by
    /// whether its peer handles [`ORIGIN_TIMES`].
    pub(crate) fn send(&self, conns: &Conns, origin: ConnId, line: impl Fn(bool) -> Option<Bytes>) {
        for (id, origin_times) in self.ids.iter().filter(|(l, _)| *l != origin) {
            if let Some(line) = line(*origin_times) {
                conns.deliver(*id, &line);
            }
        }
    }

    /// Whether our master holds the sync lock.
    pub(crate) fn sync_locked(&self) -> bool {
        self.sync_locked
    }

    /// Sets or releases the sync lock and wakes connections waiting for it.
    pub(crate) fn set_sync_lock(&mut self, shared: &Shared, on: bool) {
        self.sync_locked = on;
        shared.sync_lock.send_replace(on);
    }
}

/// How a command that ran here reaches the peers (a refused command never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forward {
    /// Its line, run again by each peer: signals.
    Line,
    /// The change it made, with its time (see [`crate::mutation`]), which the command hands on
    /// itself: cache writes and `CLEARCACHE`, and `KEYSYNC`/`KEYINCREMENT` when they changed
    /// something.
    Change,
    /// Not at all.
    No,
}

/// The forwarding policy. Exhaustive, so a new command must be given an answer.
pub(crate) fn forward(request: &Request) -> Forward {
    match request {
        Request::Notify { .. } | Request::Set { .. } => Forward::Line,
        Request::SetAndStore { .. }
        | Request::ClearCache { .. }
        | Request::Store { .. }
        | Request::Remove { .. }
        | Request::Increment { .. }
        | Request::Decrement { .. }
        | Request::KeySync { .. }
        | Request::KeyIncrement { .. } => Forward::Change,
        Request::Retrieve { .. }
        | Request::KeyList
        | Request::Listen { .. }
        | Request::Unlisten { .. }
        | Request::Clacks { .. }
        | Request::Overhead { .. }
        | Request::OverheadWithoutValue
        | Request::Monitor
        | Request::Unmonitor
        | Request::Quit
        | Request::Timeout
        | Request::Ping
        | Request::NoPing
        | Request::ClientList
        | Request::ClientDisconnect { .. }
        | Request::Flush { .. }
        | Request::Stats
        // Work-queue and registry commands go to the server that holds their subject (see
        // `queues`), not to every peer.
        | Request::QForward { .. }
        | Request::QReply { .. }
        | Request::QDrop { .. }
        | Request::QSend { .. }
        | Request::QRecv { .. }
        | Request::QAck { .. }
        | Request::QNack { .. }
        | Request::QCancel { .. }
        | Request::QStat { .. }
        | Request::QList
        | Request::QPurge { .. }
        | Request::QDelete { .. }
        | Request::QTemp
        | Request::Register { .. }
        | Request::Unregister { .. }
        | Request::Resolve { .. }
        | Request::Services
        | Request::Unknown { .. } => Forward::No,
    }
}
