//! State shared by all connections: the cache, the connection table, subscriptions, monitors.
//!
//! Everything here is synchronous and lives behind one `std::sync::Mutex` that is never held
//! across an `.await`. Delivering a line to a connection means pushing an already-encoded
//! `Bytes` into its [`Outbox`]; a fan-out encodes once and clones the handle.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use bytes::Bytes;
use clacks_proto::{ClientEntry, Reply};
use clacks_store::number::format_float;
use clacks_store::{Cache, Clock};
use foldhash::fast::RandomState;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::outbox::{CloseReason, Outbox};
use crate::stats::Stats;
use crate::Config;

/// Connection number, unique for the life of the process.
pub(crate) type ConnId = u64;

/// No connection (connection numbers start at 1): the origin of changes made over memcached.
pub(crate) const NO_CONN: ConnId = 0;

/// What a user may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Perms {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) manage: bool,
    pub(crate) interclacks: bool,
}

struct Credential {
    /// `base64(user):base64(password)`, the form clients send.
    token: Vec<u8>,
    /// `base64(user:password)`, the form the protocol text shows.
    alt_token: Vec<u8>,
    perms: Perms,
}

fn credential(user: &str, password: &str, perms: Perms) -> Credential {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    Credential {
        token: format!("{}:{}", b64(user), b64(password)).into_bytes(),
        alt_token: b64(&format!("{user}:{password}")).into_bytes(),
        perms,
    }
}

/// One connection as others see it (CLIENTLIST, fan-out, monitors).
pub(crate) struct ConnEntry {
    pub(crate) cid: Bytes,
    host: Bytes,
    port: Bytes,
    pub(crate) clientinfo: Bytes,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) monitor: bool,
    /// Wall-clock time of the last PING, 0 after NOPING.
    pub(crate) lastping: f64,
    listening: HashSet<Bytes, RandomState>,
    /// Whether this is an interclacks link (either direction).
    interclacks: bool,
    /// Wall-clock time of the last PING we sent on the link.
    pub(crate) lastinterclacksping: f64,
}

/// The mutable shared state.
pub(crate) struct State {
    pub(crate) cache: Cache,
    /// Boxed: the table's slots stay small, which matters with many idle connections.
    conns: HashMap<ConnId, Box<ConnEntry>, RandomState>,
    /// Listeners of each name, with their outboxes: a signal reaches them without a lookup.
    subs: HashMap<Bytes, Vec<(ConnId, Arc<Outbox>)>, RandomState>,
    monitors: Vec<ConnId>,
    /// Interclacks links: where replicated commands go.
    links: Vec<ConnId>,
    /// Set while our master syncs us (`OVERHEAD L 1` … `L 0`); other connections wait.
    pub(crate) sync_locked: bool,
    stats: Arc<Stats>,
}

/// Everything connections share; cheap to clone through `Arc`.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stats: Arc<Stats>,
    state: Mutex<State>,
    credentials: Vec<Credential>,
    serial: AtomicU64,
    /// Cancelled to stop the whole server (signal, `OVERHEAD S`).
    pub(crate) shutdown: CancellationToken,
    /// `CLACKS …` greeting plus `OVERHEAD M Authentication required`, encoded once.
    pub(crate) greeting: Bytes,
    /// The main user's login token, sent to interclacks peers.
    pub(crate) main_token: Bytes,
    /// Follows `State::sync_locked`, so waiting connections wake up when the sync lock ends.
    pub(crate) sync_lock: tokio::sync::watch::Sender<bool>,
    /// When the server started.
    pub(crate) started: std::time::Instant,
    /// When (seconds after `started`, plus one) a throttled warning was last logged; 0 never.
    last_warning: AtomicU64,
}

/// Throttled warnings (about many connections at once) are logged at most this often.
const WARNING_EVERY_SECS: u64 = 10;

/// Server name and version in the greeting.
pub(crate) const SERVER_INFO: &str = concat!("clacksd ", env!("CARGO_PKG_VERSION"));

impl Shared {
    pub(crate) fn new(config: Config, clock: Arc<dyn Clock>, cache: Cache) -> Self {
        let mut credentials = vec![credential(
            &config.username,
            &config.password,
            Perms {
                read: true,
                write: true,
                manage: true,
                interclacks: true,
            },
        )];
        for u in &config.users {
            credentials.push(credential(
                &u.username,
                &u.password,
                Perms {
                    read: u.read,
                    write: u.write,
                    manage: u.manage,
                    interclacks: false,
                },
            ));
        }
        let main_token = Bytes::from(credentials[0].token.clone());
        let mut greeting = bytes::BytesMut::new();
        Reply::Clacks {
            info: Bytes::from(SERVER_INFO),
        }
        .encode(&mut greeting);
        Reply::Overhead {
            flags: clacks_proto::Flags::INFORMAL,
            value: Bytes::from_static(b"Authentication required"),
        }
        .encode(&mut greeting);
        let stats = Arc::new(Stats::default());
        Shared {
            config,
            clock,
            stats: stats.clone(),
            state: Mutex::new(State {
                cache,
                conns: HashMap::default(),
                subs: HashMap::default(),
                monitors: Vec::new(),
                links: Vec::new(),
                sync_locked: false,
                stats,
            }),
            credentials,
            serial: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            greeting: greeting.freeze(),
            main_token,
            sync_lock: tokio::sync::watch::Sender::new(false),
            started: std::time::Instant::now(),
            last_warning: AtomicU64::new(0),
        }
    }

    /// Runs `log` unless a throttled warning was logged less than ten seconds ago (for limits
    /// that many connections hit at once).
    pub(crate) fn warn_throttled(&self, log: impl FnOnce()) {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now >= last + WARNING_EVERY_SECS)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log();
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> f64 {
        self.clock.now()
    }

    pub(crate) fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Checks a login token against every user, in constant time per candidate.
    pub(crate) fn authenticate(&self, token: &[u8]) -> Option<Perms> {
        let mut found = None;
        for c in &self.credentials {
            let hit = c.token.ct_eq(token) | c.alt_token.ct_eq(token);
            if bool::from(hit) && found.is_none() {
                found = Some(c.perms);
            }
        }
        found
    }
}

/// Where a connection comes from, for its CID.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    Tcp(std::net::SocketAddr),
    Unix,
    /// Our link to our master, with the fixed CID the reference uses.
    Master {
        cid: String,
        host: String,
        port: String,
    },
}

impl State {
    /// Adds a connection; returns its id and CID. Monitors see `DEBUG CONNECTED=<cid>`.
    pub(crate) fn register(
        &mut self,
        shared: &Shared,
        peer: &Peer,
        outbox: Arc<Outbox>,
    ) -> (ConnId, Bytes) {
        let serial = shared.next_serial();
        let now = shared.now();
        // The CID is `<host>:<port>`; host and port are slices of it, not copies.
        let (host, port, cid) = match peer {
            Peer::Tcp(addr) => {
                let host = addr.ip().to_string();
                let cid = Bytes::from(format!("{host}:{}:{serial}", addr.port()));
                (cid.slice(..host.len()), cid.slice(host.len() + 1..), cid)
            }
            Peer::Unix => {
                const HOST: &str = "unixdomainsocket";
                let cid = Bytes::from(format!("{HOST}:{}:{serial}", format_float(now)));
                (
                    Bytes::from_static(HOST.as_bytes()),
                    cid.slice(HOST.len() + 1..),
                    cid,
                )
            }
            Peer::Master { cid, host, port } => (
                Bytes::from(host.clone()),
                Bytes::from(port.clone()),
                Bytes::from(cid.clone()),
            ),
        };
        self.debug(b"CONNECTED", &cid);
        self.conns.insert(
            serial,
            Box::new(ConnEntry {
                cid: cid.clone(),
                host,
                port,
                clientinfo: Bytes::from_static(b"UNKNOWN"),
                outbox,
                monitor: false,
                lastping: now,
                listening: HashSet::default(),
                interclacks: false,
                lastinterclacksping: 0.0,
            }),
        );
        (serial, cid)
    }

    /// Removes a connection and its subscriptions; monitors see `DEBUG DISCONNECTED=…`.
    pub(crate) fn unregister(&mut self, id: ConnId, note: Option<&str>) {
        let Some(entry) = self.conns.remove(&id) else {
            return;
        };
        for name in &entry.listening {
            self.unsubscribe_name(id, name);
        }
        self.monitors.retain(|m| *m != id);
        self.links.retain(|l| *l != id);
        let discarded = entry.outbox.discard();
        let text = match note {
            Some(note) => format!(
                "{} ({note}; {discarded} bytes discarded from outbuffer)",
                String::from_utf8_lossy(&entry.cid)
            ),
            None => format!(
                "{} ({discarded} bytes discarded from outbuffer)",
                String::from_utf8_lossy(&entry.cid)
            ),
        };
        self.debug(b"DISCONNECTED", text.as_bytes());
    }

    pub(crate) fn conn(&self, id: ConnId) -> Option<&ConnEntry> {
        self.conns.get(&id).map(|e| &**e)
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut ConnEntry> {
        self.conns.get_mut(&id).map(|e| &mut **e)
    }

    /// Pushes `line` to connection `id`, counting and logging a slow-consumer cut.
    pub(crate) fn deliver(&self, id: ConnId, line: &Bytes) {
        if let Some(entry) = self.conns.get(&id) {
            self.push_counted(id, &entry.outbox, line.clone());
        }
    }

    fn push_counted(&self, id: ConnId, outbox: &Outbox, line: Bytes) {
        if outbox.push(line) {
            return;
        }
        Stats::bump(&self.stats.slow_consumers);
        let Some(entry) = self.conns.get(&id) else {
            return;
        };
        let cid = String::from_utf8_lossy(&entry.cid);
        if entry.interclacks {
            // What the link loses: its queue, and the line that did not fit.
            let (lines, bytes) = outbox.queued_lines();
            let lines = lines as u64 + 1;
            self.stats
                .link_lines_dropped
                .fetch_add(lines, Ordering::Relaxed);
            tracing::warn!(
                %cid,
                lines_dropped = lines,
                bytes_dropped = bytes,
                limit = outbox.cap(),
                "interclacks link cut: output over interclacksmaxoutbuffer; the peer resyncs when it reconnects"
            );
        } else {
            tracing::warn!(%cid, "slow consumer cut off: output buffer over its limit");
        }
    }

    /// Sends `DEBUG <source>=<text>` to every monitor.
    pub(crate) fn debug(&self, source: &[u8], text: &[u8]) {
        if self.monitors.is_empty() {
            return;
        }
        let line = Reply::Debug {
            source: Bytes::copy_from_slice(source),
            text: Bytes::copy_from_slice(text),
        }
        .to_bytes();
        for id in &self.monitors {
            self.deliver(*id, &line);
        }
    }

    pub(crate) fn set_monitor(&mut self, id: ConnId, on: bool) {
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.monitor = on;
        }
        self.monitors.retain(|m| *m != id);
        if on {
            self.monitors.push(id);
        }
    }

    pub(crate) fn subscribe(&mut self, id: ConnId, name: Bytes) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        // Own the bytes: `name` is a slice of a read buffer.
        let name = Bytes::copy_from_slice(&name);
        if entry.listening.insert(name.clone()) {
            let outbox = entry.outbox.clone();
            self.subs.entry(name).or_default().push((id, outbox));
        }
    }

    pub(crate) fn unsubscribe(&mut self, id: ConnId, name: &Bytes) {
        if let Some(entry) = self.conns.get_mut(&id) {
            if entry.listening.remove(name) {
                self.unsubscribe_name(id, name);
            }
        }
    }

    fn unsubscribe_name(&mut self, id: ConnId, name: &Bytes) {
        if let Some(ids) = self.subs.get_mut(name) {
            ids.retain(|(i, _)| *i != id);
            if ids.is_empty() {
                self.subs.remove(name);
            }
        }
    }

    /// Delivers an encoded signal to every listener of `name` except `sender`.
    pub(crate) fn fanout(&self, sender: ConnId, name: &[u8], line: &Bytes) {
        let Some(ids) = self.subs.get(name) else {
            return;
        };
        let mut delivered = 0;
        for (id, outbox) in ids.iter().filter(|(i, _)| *i != sender) {
            self.push_counted(*id, outbox, line.clone());
            delivered += 1;
        }
        self.stats
            .messages_delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }

    /// Pushes `line` to every connection (except `except`).
    pub(crate) fn broadcast(&self, except: Option<ConnId>, line: &Bytes) {
        for (id, entry) in &self.conns {
            if Some(*id) != except {
                self.push_counted(*id, &entry.outbox, line.clone());
            }
        }
    }

    /// Marks a connection as an interclacks link (or not).
    pub(crate) fn set_link(&mut self, id: ConnId, on: bool) {
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.interclacks = on;
        }
        self.links.retain(|l| *l != id);
        if on {
            self.links.push(id);
        }
    }

    /// Relays a command line (with its CR LF) to every interclacks link except `origin`.
    pub(crate) fn forward(&self, origin: ConnId, line: &Bytes) {
        for id in self.links.iter().filter(|l| **l != origin) {
            self.deliver(*id, line);
        }
    }

    /// Every interclacks link.
    pub(crate) fn links(&self) -> &[ConnId] {
        &self.links
    }

    /// Sets or releases the sync lock and wakes connections waiting for it.
    pub(crate) fn set_sync_lock(&mut self, shared: &Shared, on: bool) {
        self.sync_locked = on;
        shared.sync_lock.send_replace(on);
    }

    /// Sends `QUIT` to every connection and closes each after what it has queued.
    pub(crate) fn kick_all(&self) {
        let quit = Reply::Quit.to_bytes();
        for entry in self.conns.values() {
            entry.outbox.push_last(quit.clone(), CloseReason::Kicked);
        }
    }

    /// The id of the connection with CID `cid`.
    pub(crate) fn find_cid(&self, cid: &[u8]) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, e)| &e.cid[..] == cid)
            .map(|(id, _)| *id)
    }

    /// CLIENTLIST entries, sorted by CID.
    pub(crate) fn client_entries(&self) -> Vec<ClientEntry> {
        let mut out: Vec<ClientEntry> = self
            .conns
            .values()
            .map(|e| ClientEntry {
                cid: e.cid.clone(),
                host: e.host.clone(),
                port: e.port.clone(),
                clientinfo: e.clientinfo.clone(),
                outbuffer_length: e.outbox.len(),
                inbuffer_length: e.outbox.input_len(),
                interclacks: e.interclacks,
                monitor: e.monitor,
                lastping: Bytes::from(format_float(e.lastping)),
                lastinterclacksping: Bytes::from(format_float(e.lastinterclacksping)),
                writefailtime: Bytes::from_static(b"0"),
            })
            .collect();
        out.sort_by(|a, b| a.cid.cmp(&b.cid));
        out
    }
}
