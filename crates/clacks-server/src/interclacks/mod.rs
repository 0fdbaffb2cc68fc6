//! Interclacks: servers joined in a master/slave tree share signals and the cache.
//!
//! - this module: the links of this server ([`Links`], part of the shared state), the forwarding
//!   policy (which commands go on to peers, [`replicated`]) and the one [`replicate`];
//! - [`master`]: our own link to our master (connect, hello, reconnect with backoff);
//! - [`sync`]: the full sync when a slave links up, and our answer when our master has synced us.
//!
//! A link is an ordinary connection of the Clacks protocol (see `conn.rs`); its limits are its own
//! config elements: `interclacksmaxoutbuffer`, `interclackspingtimeout`,
//! `interclacksstalledwritetimeout` and `interclacksreconnecttimeout`.

pub(crate) mod master;
pub(crate) mod sync;

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::Request;
use clacks_store::Entry;
use tokio::time::Instant;

use crate::state::{ConnId, Conns, Shared, State};
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

/// A connection's side of a link (its session holds one).
pub(crate) struct LinkSide {
    pub(crate) kind: Link,
    /// When the next keepalive PING goes out.
    pub(crate) next_ping: Instant,
    /// During our master's sync: the records it sent, so we answer only with what differs.
    pub(crate) sync_seen: Option<HashMap<Bytes, Entry>>,
}

impl LinkSide {
    pub(crate) fn new(kind: Link, config: &Config) -> LinkSide {
        LinkSide {
            kind,
            next_ping: Instant::now() + ping_interval(config),
            sync_seen: None,
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
    ids: Vec<ConnId>,
    /// Set while our master syncs us (`OVERHEAD L 1` … `L 0`); other connections wait.
    sync_locked: bool,
}

impl Links {
    /// Marks a connection as a link (or not).
    pub(crate) fn set(&mut self, conns: &mut Conns, id: ConnId, on: bool) {
        conns.set_interclacks(id, on);
        self.remove(id);
        if on {
            self.ids.push(id);
        }
    }

    /// Forgets a connection that went away.
    pub(crate) fn remove(&mut self, id: ConnId) {
        self.ids.retain(|l| *l != id);
    }

    /// Every link.
    pub(crate) fn ids(&self) -> &[ConnId] {
        &self.ids
    }

    /// Whether there is a link other than `origin`.
    pub(crate) fn any_except(&self, origin: ConnId) -> bool {
        self.ids.iter().any(|l| *l != origin)
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

/// The forwarding policy: whether a command that ran here goes on to the peers (signals and
/// cache writes; a refused command never does, and `KEYSYNC` only when it changed something, which
/// `cmd::keysync` decides). Exhaustive, so a new command must be given an answer.
pub(crate) fn replicated(request: &Request) -> bool {
    match request {
        Request::Notify { .. }
        | Request::Set { .. }
        | Request::SetAndStore { .. }
        | Request::Store { .. }
        | Request::Remove { .. }
        | Request::Increment { .. }
        | Request::Decrement { .. }
        | Request::ClearCache => true,
        Request::KeySync { .. }
        | Request::Retrieve { .. }
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
        | Request::Unknown { .. } => false,
    }
}

/// Sends an encoded line (with its CR LF) to every link except `origin`.
pub(crate) fn replicate(state: &State, origin: ConnId, line: &Bytes) {
    for id in state.links.ids().iter().filter(|l| **l != origin) {
        state.conns.deliver(*id, line);
    }
}

/// A line without its CR LF, with one.
pub(crate) fn with_crlf(line: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(line.len() + 2);
    out.extend_from_slice(line);
    out.extend_from_slice(clacks_proto::CRLF);
    out.freeze()
}
