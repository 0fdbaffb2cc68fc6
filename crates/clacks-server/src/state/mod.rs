//! State shared by all connections, split by subsystem: the cache, the connection table,
//! subscriptions and interclacks links are separate parts of [`State`] that a command borrows as
//! it needs (a new subsystem is a new field and touches none of the others).
//!
//! All of it lives behind one `std::sync::Mutex` that is never held across an `.await`: a batch of
//! commands takes it once, which is what makes a batch cheap. Delivering a line to a connection
//! means pushing an already-encoded `Bytes` into its [`Outbox`]; a fan-out encodes once and clones
//! the handle.

mod conns;
pub(crate) mod queues;
pub(crate) mod registry;
mod subs;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use clacks_proto::{Reply, Request};
use clacks_store::{Cache, Cleaned, Clock};
use tokio_util::sync::CancellationToken;

pub(crate) use conns::{ConnId, Conns, Peer, NO_CONN};
pub(crate) use queues::Queues;
pub(crate) use subs::Subscriptions;

use crate::auth::{Credentials, Perms};
use crate::interclacks::routes::Routes;
use crate::interclacks::Links;
use crate::journal::Journal;
use crate::outbox::Outbox;
use crate::stats::Stats;
use crate::Config;

/// The mutable shared state.
pub(crate) struct State {
    pub(crate) cache: Cache,
    pub(crate) conns: Conns,
    pub(crate) subs: Subscriptions,
    pub(crate) links: Links,
    pub(crate) queues: Queues,
    /// Which queue commands go to our master, and for whom.
    pub(crate) routes: Routes,
    /// The service registry.
    pub(crate) registry: registry::Registry,
    /// Where changes are journaled (`<journal>`).
    pub(crate) journal: Option<Journal>,
}

impl State {
    /// Adds a connection; returns its id and CID.
    pub(crate) fn register(
        &mut self,
        shared: &Shared,
        peer: &Peer,
        outbox: Arc<Outbox>,
    ) -> (ConnId, Bytes) {
        let id = shared.next_serial();
        let cid = self.conns.register(id, shared.now(), peer, outbox);
        (id, cid)
    }

    /// Removes a connection from every part of the state: messages leased to it (or to the
    /// clients of a slave behind it) go back to their queues, and may go to receives waiting
    /// elsewhere at once; our master forgets its clients; if it was our master's link, our
    /// clients' receives there have ended.
    pub(crate) fn unregister(&mut self, id: ConnId, note: Option<&str>) {
        self.subs.remove_conn(id);
        self.links.remove(id);
        let mut notes = Vec::new();
        self.queues
            .remove_conn(id, tokio::time::Instant::now(), &mut notes);
        self.send_notes(notes);
        let before = self.registry.len();
        let changed = self.registry.remove_conn(id);
        self.withdrawn(before, &changed);
        if self.routes.is_master(id) {
            for (owner, answers) in self.routes.master_lost() {
                for answer in &answers {
                    self.send_note(owner, answer);
                }
            }
        } else {
            for tag in self.routes.drop_conn(id) {
                self.drop_upstream(tag);
            }
        }
        self.conns.remove(id, note);
    }

    /// A client of a slave behind a link is gone: as for a connection that closed.
    pub(crate) fn owner_gone(&mut self, owner: queues::Owner) {
        let mut notes = Vec::new();
        self.queues
            .remove_owner(owner, tokio::time::Instant::now(), &mut notes);
        self.send_notes(notes);
        let before = self.registry.len();
        let changed = self.registry.remove_owner(owner);
        self.withdrawn(before, &changed);
        if let Some(tag) = self.routes.drop_owner(owner) {
            self.drop_upstream(tag);
        }
    }

    /// Instances went with their owner (the registry held `before`): counted, and the change
    /// of each service announced.
    fn withdrawn(&self, before: usize, services: &[Bytes]) {
        let gone = before - self.registry.len();
        Stats::add(&self.conns.stats().registry_withdrawn, gone as u64);
        for service in services {
            self.announce_service(service);
        }
    }

    /// `SET Registry::<service>=<instances>` to the service's listeners here and on every peer.
    pub(crate) fn announce_service(&self, service: &[u8]) {
        let name = Bytes::from([&b"Registry::"[..], service].concat());
        let value = Bytes::from(self.registry.count(service).to_string());
        let line = Request::Set {
            name: name.clone(),
            value,
        }
        .to_bytes();
        self.subs.fanout(&self.conns, NO_CONN, &name, &line);
        crate::mutation::publish(self, NO_CONN, crate::mutation::Mutation::Line(line));
    }

    /// Tells our master that the client it knows as `tag` is gone.
    fn drop_upstream(&self, tag: u64) {
        if let Some((link, _)) = self.routes.master_link() {
            self.conns.deliver(link, &Request::QDrop { tag }.to_bytes());
        }
    }

    /// Sends the lines queue changes caused to their owners.
    pub(crate) fn send_notes(&self, notes: Vec<queues::Note>) {
        for (owner, reply) in notes {
            self.send_note(owner, &reply);
        }
    }

    /// Sends `reply` to `owner`: to its connection, or, for a client of a slave, to the link as
    /// `QREPLY <tag> <line>`.
    pub(crate) fn send_note(&self, owner: queues::Owner, reply: &Reply) {
        if owner.tag == 0 {
            self.conns.deliver(owner.conn, &reply.to_bytes());
        } else {
            let mut line = reply.to_bytes();
            line.truncate(line.len() - clacks_proto::CRLF.len());
            self.send_line(owner, line);
        }
    }

    /// Sends a line (without CR LF) that came for `owner` from our master.
    pub(crate) fn send_line(&self, owner: queues::Owner, line: Bytes) {
        let out = if owner.tag == 0 {
            crate::mutation::with_crlf(&line)
        } else {
            Request::QReply {
                tag: owner.tag,
                line,
            }
            .to_bytes()
        };
        self.conns.deliver(owner.conn, &out);
    }

    /// Ends the queue waits and leases whose time has come; returns when the next one is due.
    pub(crate) fn fire_queue_timers(&mut self) -> Option<tokio::time::Instant> {
        let mut notes = Vec::new();
        let next = self.queues.fire(tokio::time::Instant::now(), &mut notes);
        self.send_notes(notes);
        next
    }
}

/// Everything connections share; cheap to clone through `Arc`.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stats: Arc<Stats>,
    state: Mutex<State>,
    credentials: Credentials,
    serial: AtomicU64,
    /// Cancelled to stop the whole server (signal, `OVERHEAD S`).
    pub(crate) shutdown: CancellationToken,
    /// `CLACKS …` greeting plus `OVERHEAD M Authentication required`, encoded once.
    pub(crate) greeting: Bytes,
    /// The main user's login token, sent to interclacks peers.
    pub(crate) main_token: Bytes,
    /// Follows the sync lock (see [`Links`]), so waiting connections wake up when it ends.
    pub(crate) sync_lock: tokio::sync::watch::Sender<bool>,
    /// When the server started.
    pub(crate) started: std::time::Instant,
    /// The journal (also in [`State`], for the changes made under the lock).
    pub(crate) journal: Option<Journal>,
    /// How long batches of commands take (sampled).
    pub(crate) latency: crate::stats::Latency,
    /// Whether the connection to our master is open (a slave only).
    pub(crate) master_up: AtomicBool,
    /// When our master last synced us.
    pub(crate) last_sync: Mutex<Option<std::time::Instant>>,
    /// This server's name in the registry (`node=`): its host name.
    pub(crate) node: Bytes,
    /// When (seconds after `started`, plus one) a throttled warning was last logged; 0 never.
    last_warning: AtomicU64,
}

/// Throttled warnings (about many connections at once) are logged at most this often.
const WARNING_EVERY_SECS: u64 = 10;

/// Server name and version in the greeting.
pub(crate) const SERVER_INFO: &str = concat!("clacksd ", env!("CARGO_PKG_VERSION"));

impl Shared {
    /// The shared state around a loaded `cache`, with the counters the journal (if any) keeps
    /// already.
    pub(crate) fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        cache: Cache,
        stats: Arc<Stats>,
        journal: Option<Journal>,
    ) -> Self {
        let credentials = Credentials::from_config(&config);
        let main_token = Bytes::copy_from_slice(credentials.main_token());
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
        let mut queues = Queues::new(config.queues.clone(), stats.clone());
        if let Some(j) = &journal {
            queues.set_journal(j.clone());
        }
        let registry = registry::Registry::new(config.registry.clone());
        Shared {
            config,
            clock,
            stats: stats.clone(),
            state: Mutex::new(State {
                cache,
                conns: Conns::new(stats),
                subs: Subscriptions::default(),
                links: Links::default(),
                queues,
                routes: Routes::default(),
                registry,
                journal: journal.clone(),
            }),
            journal,
            latency: crate::stats::Latency::default(),
            master_up: AtomicBool::new(false),
            last_sync: Mutex::new(None),
            credentials,
            serial: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            greeting: greeting.freeze(),
            main_token,
            sync_lock: tokio::sync::watch::Sender::new(false),
            started: std::time::Instant::now(),
            node: Bytes::from(
                gethostname::gethostname()
                    .to_string_lossy()
                    .replace([' ', ';', '='], "_"),
            ),
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

    /// The time, on the tick grid of cache times (see [`clacks_store::TICK`]).
    pub(crate) fn now(&self) -> f64 {
        clacks_store::on_grid(self.clock.now())
    }

    fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The permissions of a login token, if it is one.
    pub(crate) fn authenticate(&self, token: &[u8]) -> Option<Perms> {
        self.credentials.authenticate(token)
    }

    /// Runs one cache cleanup pass and tells monitors what was purged; forgets idle queues.
    pub(crate) fn cleanup(&self) {
        let now = self.now();
        let mut state = self.lock();
        state.queues.drop_idle(tokio::time::Instant::now());
        let cleaned = state.cache.cleanup(
            now,
            self.config.deleted_cache_time.as_secs_f64(),
            self.config.stale_cache_time.as_secs_f64(),
        );
        for c in cleaned {
            let text = match c {
                Cleaned::Deleted(k) => [&b"CLEANDELETED="[..], &k].concat(),
                Cleaned::Stale(k) => [&b"CLEANSTALE="[..], &k].concat(),
                Cleaned::Expired(k) => [&b"CLEANEXPIRED="[..], &k].concat(),
            };
            state.conns.debug(b"SERVERCACHE", &text);
        }
    }
}
