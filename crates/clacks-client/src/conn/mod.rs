//! The connection task: owns the socket, writes queued commands, matches replies to requests in
//! order, turns everything else into events, keeps the connection alive and reconnects.
//!
//! This module holds the commands a handle sends and the state the task keeps across
//! connections (LISTENs, subscriptions, the queue). The task's life (login, backoff, the offline
//! queue) is in `reconnect`, one connection in `serve`, the commands on the wire in `inflight`,
//! what the server's lines mean for them in `reply`, work-queue receives in `queue`, and service
//! registrations in `registry`.

mod inflight;
mod queue;
mod reconnect;
mod registry;
mod reply;
mod serve;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::{ClientEntry, LineDecoder, Request};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::event::Feed;
use crate::transport::Stream;
use crate::{ClientError, ConnectOptions, Event};

/// What a request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Nothing: done once written.
    Written,
    /// `RETRIEVED <key>=…` or `NOTRETRIEVED <key>`.
    Retrieve(Bytes),
    /// `KEYLISTSTART` … `KEYLISTEND`.
    KeyList,
    /// `CLIENTLISTSTART` … `CLIENTLISTEND`.
    ClientList,
    /// `STATSSTART` … `STATSEND`.
    Stats,
    /// `FLUSHED <id>`.
    Flushed(Bytes),
    /// Every line up to `FLUSHED <id>` (a raw command followed by a barrier).
    Raw(Bytes),
    /// `FLUSHED <id>` after a write (a confirmed write): the server's refusal, if any, comes
    /// before it.
    Confirm(Bytes),
    /// A receive, `QRECV` and a `FLUSH` barrier: its refusal, if any, comes before the
    /// `FLUSHED`; its answer (`QMESSAGE`/`QEMPTY`) before or any time after it.
    Recv(RecvSpec),
    /// `QSTATS <queue> …`.
    QStat(Bytes),
    /// `QLISTSTART` … `QLISTEND`.
    QList,
    /// `QTEMPNAME <queue>`.
    QTemp,
    /// `REGISTERED <service> <id>`.
    Register(RegSpec),
    /// `RESOLVESTART <service>` … `RESOLVEEND <service>`.
    Resolve(Bytes),
    /// `SERVICESSTART` … `SERVICESEND`.
    Services,
}

/// A registration as the connection task keeps it, to make again after a reconnect (see
/// `crate::registry`).
#[derive(Debug, Clone)]
pub(crate) struct RegSpec {
    /// Names the registration in the task (see `Task::registrations`).
    pub(crate) key: u64,
    pub(crate) service: Bytes,
    pub(crate) endpoint: Bytes,
    pub(crate) meta: Option<Bytes>,
    /// Its id on the current connection and that connection's epoch; `None` while it is not
    /// registered there (between a lost connection and the `REGISTERED` on the next one).
    pub(crate) live: Arc<Mutex<Option<(u64, u64)>>>,
}

impl RegSpec {
    pub(crate) fn line(&self) -> Bytes {
        let mut line = BytesMut::new();
        Request::Register {
            service: self.service.clone(),
            endpoint: self.endpoint.clone(),
            meta: self.meta.clone(),
        }
        .encode(&mut line);
        line.freeze()
    }

    pub(crate) fn set_live(&self, live: Option<(u64, u64)>) {
        if let Ok(mut slot) = self.live.lock() {
            *slot = live;
        }
    }
}

impl PartialEq for RegSpec {
    fn eq(&self, other: &RegSpec) -> bool {
        self.key == other.key && Arc::ptr_eq(&self.live, &other.live)
    }
}

impl Eq for RegSpec {}

/// A receive as the call asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecvSpec {
    pub(crate) queue: Bytes,
    /// How long the call waits for a message; `None`: until one comes.
    pub(crate) timeout: Option<Duration>,
    /// The lease; zero: none.
    pub(crate) lease: Duration,
    /// When the call's timeout ends: a receive that waited in the client goes out with what is
    /// left of it.
    pub(crate) deadline: Option<Instant>,
    /// The id of its `FLUSH` barrier, which also names its slot (see `InFlight::recvs`).
    pub(crate) barrier: Bytes,
}

/// The longest timeout or lease the server takes, in seconds (a year): also the timeout of a
/// leased receive that waits until a message comes (the line has no lease without a timeout).
pub(crate) const MAX_SECONDS: u64 = 365 * 86_400;

impl RecvSpec {
    /// `QRECV <queue>[ <timeout>[ <lease>]]` waiting `timeout`, then `FLUSH <barrier>`.
    pub(crate) fn line(&self, timeout: Option<Duration>) -> Bytes {
        let leased = !self.lease.is_zero();
        let timeout = match timeout {
            None if leased => Some(Duration::from_secs(MAX_SECONDS)),
            t => t,
        };
        let mut line = BytesMut::new();
        Request::QRecv {
            queue: self.queue.clone(),
            timeout: timeout.map(seconds),
            lease: leased.then(|| seconds(self.lease)),
        }
        .encode(&mut line);
        Request::Flush {
            id: self.barrier.clone(),
        }
        .encode(&mut line);
        line.freeze()
    }
}

/// Seconds as the queue verbs take them, rounded up to the millisecond: `2`, `0.25`.
pub(crate) fn seconds(d: Duration) -> Bytes {
    let ms = d.as_nanos().div_ceil(1_000_000);
    let text = if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        let frac = format!("{:03}", ms % 1000);
        format!("{}.{}", ms / 1000, frac.trim_end_matches('0'))
    };
    Bytes::from(text)
}

/// A message handed to a receive.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) queue: Bytes,
    pub(crate) id: Bytes,
    pub(crate) value: Bytes,
    /// The connection it came on (a lease is bound to it).
    pub(crate) epoch: u64,
}

/// What a request got.
#[derive(Debug)]
pub(crate) enum Response {
    Done,
    Value(Option<Bytes>),
    Keys(Vec<Bytes>),
    Clients(Vec<ClientEntry>),
    Stats(Vec<(String, String)>),
    Lines(Vec<String>),
    /// A receive's answer: a message, or none (`QEMPTY`).
    Message(Option<Delivery>),
    /// The fields of a `QSTATS` line.
    QueueStats(Bytes),
    /// Every `QUEUE <queue> <fields>` of a `QLIST`.
    Queues(Vec<(Bytes, Bytes)>),
    /// A temporary queue and the connection it belongs to.
    TempQueue {
        name: Bytes,
        epoch: u64,
    },
    /// A registration's id.
    Registered(u64),
    /// The fields of every `INSTANCE` of a `RESOLVE`.
    Instances(Vec<Bytes>),
    /// Every `SERVICE <service> <fields>` of `SERVICES`.
    Services(Vec<(Bytes, Bytes)>),
}

/// Connection state a command changes, restored after a reconnect.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    None,
    Listen(String),
    Unlisten(String),
    Monitor(bool),
    Ping(bool),
}

pub(crate) type Responder = oneshot::Sender<Result<Response, ClientError>>;

/// One command from a handle.
pub(crate) struct Command {
    pub(crate) line: Bytes,
    pub(crate) expect: Expect,
    /// For error messages: the command as the user would recognise it.
    pub(crate) label: String,
    /// Whether the server may answer it with `OVERHEAD E …`.
    pub(crate) can_fail: bool,
    pub(crate) change: Change,
    /// Sent only on this connection (see `Task::epoch`): an acknowledgement of a message
    /// leased on it, a receive on its temporary queue. On a later one it fails with
    /// [`ClientError::ConnectionLost`] unsent.
    pub(crate) epoch: Option<u64>,
    pub(crate) done: Option<Responder>,
}

impl Command {
    pub(crate) fn internal(request: Request, expect: Expect) -> Command {
        let mut line = BytesMut::new();
        request.encode(&mut line);
        Command {
            line: line.freeze(),
            expect,
            label: String::new(),
            can_fail: false,
            change: Change::None,
            epoch: None,
            done: None,
        }
    }

    fn finish(self, result: Result<Response, ClientError>) {
        if let Some(done) = self.done {
            let _ = done.send(result);
        }
    }
}

pub(crate) enum Control {
    Cmd(Command),
    /// Signals of `name` go to `feed` from now on (the handle sends the LISTEN).
    Subscribe {
        name: String,
        id: u64,
        feed: Feed,
    },
    /// A [`crate::Subscription`] was dropped.
    Unsubscribe {
        name: String,
        id: u64,
    },
    /// A receive on `queue` gave up or ran out of time: see `Task::reap`.
    Reap {
        queue: Bytes,
    },
    /// A [`crate::Registration`] was dropped: withdrawn now if it is registered on this
    /// connection, and not made again after a reconnect.
    Deregister {
        key: u64,
    },
    Close(oneshot::Sender<()>),
}

/// Why a connection ended.
enum Exit {
    Lost(String),
    Closed,
}

struct Conn {
    reader: ReadHalf<Box<dyn Stream>>,
    writer: WriteHalf<Box<dyn Stream>>,
    rbuf: BytesMut,
    decoder: LineDecoder,
}

pub(crate) struct Task {
    opts: ConnectOptions,
    rx: mpsc::Receiver<Control>,
    events: Feed,
    server_info: Arc<Mutex<Option<String>>>,
    connected: watch::Sender<bool>,
    listens: BTreeSet<String>,
    /// Subscriptions by name, each with its id.
    subs: HashMap<String, Vec<(u64, Feed)>>,
    monitor: bool,
    ping: bool,
    queue: VecDeque<Command>,
    closing: Option<Option<oneshot::Sender<()>>>,
    barrier: u64,
    /// Counts connections: leases and temporary queues belong to one of them.
    epoch: u64,
    /// The current `epoch`, for the handles.
    epoch_shared: Arc<AtomicU64>,
    /// Registrations whose guard lives, made again after a reconnect.
    registrations: HashMap<u64, RegSpec>,
}

impl Task {
    pub(crate) fn new(
        opts: ConnectOptions,
        rx: mpsc::Receiver<Control>,
        events: Feed,
        server_info: Arc<Mutex<Option<String>>>,
        connected: watch::Sender<bool>,
        epoch_shared: Arc<AtomicU64>,
    ) -> Task {
        Task {
            opts,
            rx,
            events,
            server_info,
            connected,
            listens: BTreeSet::new(),
            subs: HashMap::new(),
            monitor: false,
            ping: true,
            queue: VecDeque::new(),
            closing: None,
            barrier: 0,
            epoch: 0,
            epoch_shared,
            registrations: HashMap::new(),
        }
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// A signal of `name`: to its subscriptions, else to the event stream.
    fn signal(&mut self, name: String, event: Event) {
        let Some(subs) = self.subs.get_mut(&name) else {
            self.emit(event);
            return;
        };
        subs.retain(|(_, feed)| !feed.is_closed());
        for (_, feed) in subs.iter() {
            feed.push(event.clone());
        }
        if subs.is_empty() {
            self.subs.remove(&name);
            self.unlisten_unused(name);
        }
    }

    /// A [`crate::Subscription`] was made (its handle sends the LISTEN).
    fn subscribe(&mut self, name: String, id: u64, feed: Feed) {
        self.subs.entry(name).or_default().push((id, feed));
    }

    /// A [`crate::Subscription`] was dropped.
    fn unsubscribe(&mut self, name: String, id: u64) {
        let Some(subs) = self.subs.get_mut(&name) else {
            return;
        };
        subs.retain(|(i, _)| *i != id);
        if subs.is_empty() {
            self.subs.remove(&name);
            self.unlisten_unused(name);
        }
    }

    /// Stops listening to `name` unless [`crate::Client::listen`] asked for it.
    fn unlisten_unused(&mut self, name: String) {
        if !self.listens.contains(&name) {
            let name = Bytes::from(name);
            let unlisten = Command::internal(Request::Unlisten { name }, Expect::Written);
            self.queue.push_back(unlisten);
        }
    }

    fn fail_queue(&mut self, err: ClientError) {
        for cmd in self.queue.drain(..) {
            cmd.finish(Err(err.clone()));
        }
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::None => {}
            Change::Listen(name) => {
                self.listens.insert(name.clone());
            }
            Change::Unlisten(name) => {
                self.listens.remove(name);
            }
            Change::Monitor(on) => self.monitor = *on,
            Change::Ping(on) => self.ping = *on,
        }
    }
}
