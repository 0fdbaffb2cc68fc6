//! Work queues: named FIFO queues of opaque messages, each message handed to exactly one
//! receive (see `docs/queues.md`).
//!
//! Everything here is synchronous and runs under the state lock. What a change means for
//! connections (a message for a waiting receive, `QEMPTY` for one that ended) is returned as
//! [`Note`]s, which the caller sends: into its own replies when the note is for the connection
//! running the command, otherwise into that connection's outbox. Deadlines (receive timeouts,
//! leases) are kept in one ordered map; [`Queues::fire`] ends those that passed and says when the
//! next one is due, and adding an earlier one wakes the timer task through [`Queues::wake`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clacks_proto::Reply;
use foldhash::fast::RandomState;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ConnId;
use crate::config::{Overflow, QueueConfig, QueueLimits};
use crate::journal::record::QueueChange;
use crate::journal::Journal;
use crate::stats::Stats;

mod leases;
mod owners;
mod report;
mod timers;

use timers::{Timer, TimerKey, Timers};

/// Names of temporary queues (`QTEMP`) start with this; no other queue may.
pub(crate) const TEMP_PREFIX: &[u8] = b"Temp::";
/// A message handed out `maxdeliveries` times without an ack moves to its queue's name + this.
pub(crate) const DEAD_SUFFIX: &[u8] = b"::dead";

/// Why a queue command was refused; each is one `OVERHEAD E` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Empty, or with a space or `=` (`bad_name`).
    BadName,
    /// Over the queue's `maxmessagesize` (`message_too_large`).
    TooLarge,
    /// The queue (or all queues together) is full and its policy is `reject` (`queue_full`).
    Full,
    /// A new queue over `maxqueues` (`too_many_queues`).
    TooManyQueues,
    /// A waiting receive over `maxwaits` of this connection (`too_many_waits`).
    TooManyWaits,
    /// No message leased to this connection has that id (`unknown_message`).
    UnknownMessage,
    /// A temporary queue that does not exist (`unknown_queue`).
    UnknownQueue,
    /// Another connection's temporary queue (`permission_denied`).
    NotOwner,
    /// The queue is held by our master, and the link to it is down (`queue_unavailable`).
    Unavailable,
    /// A timeout or lease that is no number of seconds from 0 to a year (`bad_argument`).
    BadArgument,
}

impl Refusal {
    /// The error token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Refusal::BadName => "bad_name",
            Refusal::TooLarge => "message_too_large",
            Refusal::Full => "queue_full",
            Refusal::TooManyQueues => "too_many_queues",
            Refusal::TooManyWaits => "too_many_waits",
            Refusal::UnknownMessage => "unknown_message",
            Refusal::UnknownQueue => "unknown_queue",
            Refusal::NotOwner => "permission_denied",
            Refusal::Unavailable => "queue_unavailable",
            Refusal::BadArgument => "bad_argument",
        }
    }
}

/// Who receives, holds leases and owns temporary queues: a connection here (`tag` 0), or a
/// client of a slave, which that slave's link forwards for under `tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Owner {
    pub(crate) conn: ConnId,
    pub(crate) tag: u64,
}

impl Owner {
    /// A connection of this server.
    pub(crate) fn here(conn: ConnId) -> Owner {
        Owner { conn, tag: 0 }
    }

    /// Every owner a connection stands for, as a range of the owner order.
    pub(crate) fn all_of(conn: ConnId) -> std::ops::RangeInclusive<Owner> {
        Owner::here(conn)..=Owner {
            conn,
            tag: u64::MAX,
        }
    }
}

/// A line for an owner, caused by a queue change.
pub(crate) type Note = (Owner, Reply);

/// A queue's messages as saved: its name, and each message's sequence number (0: none yet),
/// deliveries and value, in order.
pub(crate) type Saved = (Bytes, Vec<(u64, usize, Bytes)>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    sent: u64,
    received: u64,
    acked: u64,
    redelivered: u64,
    rejected: u64,
    dropped: u64,
    dead: u64,
}

/// A message and how often it was handed out.
#[derive(Debug, Clone)]
struct Message {
    /// Names it in the journal, for its whole life (across restarts).
    seq: u64,
    /// New at every hand-out.
    id: u64,
    value: Bytes,
    deliveries: usize,
}

/// A receive waiting for a message.
#[derive(Debug)]
struct Wait {
    conn: Owner,
    /// Zero: no lease.
    lease: Duration,
    /// Its timeout, if it has one.
    timer: Option<TimerKey>,
}

/// A message handed out under a lease.
#[derive(Debug)]
struct Lease {
    message: Message,
    conn: Owner,
    timer: TimerKey,
}

#[derive(Debug)]
struct Queue {
    limits: QueueLimits,
    ready: VecDeque<Message>,
    /// Bytes of ready and leased messages.
    bytes: usize,
    leased: HashMap<u64, Lease, RandomState>,
    waits: VecDeque<(u64, Wait)>,
    /// The owner a temporary queue belongs to.
    owner: Option<Owner>,
    counters: Counters,
    /// When a command last named it.
    used: Instant,
}

impl Queue {
    fn new(limits: QueueLimits, owner: Option<Owner>, now: Instant) -> Queue {
        Queue {
            limits,
            ready: VecDeque::new(),
            bytes: 0,
            leased: HashMap::default(),
            waits: VecDeque::new(),
            owner,
            counters: Counters::default(),
            used: now,
        }
    }

    /// Whether it holds nothing and no one waits on it.
    fn is_idle(&self) -> bool {
        self.owner.is_none() && self.held() == 0 && self.waits.is_empty()
    }

    fn held(&self) -> usize {
        self.ready.len() + self.leased.len()
    }
}

/// What one owner has here, so that its end can undo it.
#[derive(Debug, Default)]
struct ConnUse {
    waits: usize,
    /// Queues where it waits or holds leases (some may be gone).
    queues: HashSet<Bytes, RandomState>,
    /// Its temporary queues.
    temps: Vec<Bytes>,
}

/// Every queue, with its waits and leases.
pub(crate) struct Queues {
    config: QueueConfig,
    stats: Arc<Stats>,
    queues: HashMap<Bytes, Queue, RandomState>,
    /// By owner, in connection order, so that a connection's owners are one range.
    conns: BTreeMap<Owner, ConnUse>,
    timers: Timers,
    /// Message ids, wait ids and timer sequence numbers.
    serial: u64,
    total_bytes: usize,
    /// Moves at every change of what the queues hold (for the persistence loop).
    generation: u64,
    /// The last message sequence number given.
    last_seq: u64,
    /// Where changes of what the queues hold are journaled.
    journal: Option<Journal>,
}

/// A name a queue may have: not empty, no space, no `=`.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && !name.iter().any(|&b| b == b' ' || b == b'=')
}

impl Queues {
    pub(crate) fn new(config: QueueConfig, stats: Arc<Stats>) -> Queues {
        Queues {
            config,
            stats,
            queues: HashMap::default(),
            conns: BTreeMap::new(),
            timers: Timers {
                map: BTreeMap::new(),
                wake: Arc::new(Notify::new()),
            },
            serial: 0,
            total_bytes: 0,
            generation: 0,
            last_seq: 0,
            journal: None,
        }
    }

    /// Journals every later change of what the queues hold.
    pub(crate) fn set_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// The journal, for a change of queue `name` (temporary queues are not kept).
    fn journal(&self, name: &[u8]) -> Option<&Journal> {
        self.journal
            .as_ref()
            .filter(|_| !name.starts_with(TEMP_PREFIX))
    }

    /// Counter of changes to what the queues hold.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Notified when a deadline earlier than all others was added.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.timers.wake.clone()
    }

    /// A new message id, wait id or timer number.
    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// The queue called `name`, created if it may be: its name as the queue holds it, which is
    /// what anything kept is to refer to it by (the name in a command points into the input
    /// buffer, which it would keep alive).
    fn open(&mut self, name: &[u8], now: Instant) -> Result<Bytes, Refusal> {
        if let Some((held, _)) = self.queues.get_key_value(name) {
            let held = held.clone();
            self.queue_mut(&held).used = now;
            return Ok(held);
        }
        if !valid_name(name) {
            return Err(Refusal::BadName);
        }
        if name.starts_with(TEMP_PREFIX) {
            return Err(Refusal::UnknownQueue);
        }
        if self.queues.len() >= self.config.max_queues {
            Stats::bump(&self.stats.queue_limit_refusals);
            return Err(Refusal::TooManyQueues);
        }
        let held = Bytes::copy_from_slice(name);
        let limits = self.config.limits_for(name);
        self.queues
            .insert(held.clone(), Queue::new(limits, None, now));
        Ok(held)
    }

    /// `QSEND`: appends `value` (a copy: it points into the input buffer), or hands it straight
    /// to the first waiting receive.
    pub(crate) fn send(
        &mut self,
        name: &[u8],
        value: &[u8],
        now: Instant,
        notes: &mut Vec<Note>,
    ) -> Result<(), Refusal> {
        let room = self.config.max_total_bytes.saturating_sub(self.total_bytes);
        let stats = self.stats.clone();
        let len = value.len();
        // Too large: refused before a queue is made for it.
        if len > self.config.limits_for(name).max_message_size {
            if let Some(q) = self.queues.get_mut(name) {
                q.counters.rejected += 1;
            }
            Stats::bump(&stats.queue_rejected);
            return Err(Refusal::TooLarge);
        }
        let name = &self.open(name, now)?;
        let journal = self
            .journal
            .as_ref()
            .filter(|_| !name.starts_with(TEMP_PREFIX));
        let q = self.queues.get_mut(name).expect("queue present");
        // Room: a receive waiting without a lease takes the message at once (it is not kept);
        // otherwise it must fit, for `drop_oldest` after the oldest ready messages were dropped.
        let limits = q.limits;
        let has_room = |held: usize, bytes: usize, freed: usize| {
            held < limits.max_messages && bytes + len <= limits.max_bytes && len <= room + freed
        };
        let (mut held, mut bytes, mut freed, mut drop) = (q.held(), q.bytes, 0, 0);
        let taken_at_once = q.waits.front().is_some_and(|(_, w)| w.lease.is_zero());
        if !taken_at_once {
            while !has_room(held, bytes, freed) {
                if limits.overflow == Overflow::Reject || drop == q.ready.len() {
                    q.counters.rejected += 1;
                    Stats::bump(&stats.queue_rejected);
                    return Err(Refusal::Full);
                }
                let size = q.ready[drop].value.len();
                (held, bytes, freed, drop) = (held - 1, bytes - size, freed + size, drop + 1);
            }
            if drop > 0 {
                let dropped = q.ready.drain(..drop);
                if let Some(j) = journal {
                    for m in dropped {
                        j.queue_change(QueueChange::Gone, name, m.seq);
                    }
                }
                q.bytes -= freed;
                q.counters.dropped += drop as u64;
                Stats::add(&stats.queue_dropped, drop as u64);
            }
        }
        q.counters.sent += 1;
        q.bytes += len;
        self.total_bytes = self.total_bytes + len - freed;
        Stats::bump(&stats.queue_sent);
        self.last_seq += 1;
        let message = Message {
            seq: self.last_seq,
            id: 0,
            value: Bytes::copy_from_slice(value),
            deliveries: 0,
        };
        if let Some(j) = journal {
            j.queue_add(name, message.seq, 0, value);
        }
        let q = self.queue_mut(name);
        q.ready.push_back(message);
        self.generation += 1;
        self.settle(name, now, notes);
        Ok(())
    }

    fn queue_mut(&mut self, name: &Bytes) -> &mut Queue {
        self.queues.get_mut(name).expect("queue present")
    }

    /// Hands ready messages to waiting receives, in order, while there are both.
    fn settle(&mut self, name: &Bytes, now: Instant, notes: &mut Vec<Note>) {
        loop {
            let q = self.queue_mut(name);
            if q.ready.is_empty() || q.waits.is_empty() {
                return;
            }
            let message = q.ready.pop_front().expect("not empty");
            let (_, wait) = q.waits.pop_front().expect("not empty");
            self.timers.remove(wait.timer);
            if let Some(u) = self.conns.get_mut(&wait.conn) {
                u.waits -= 1;
            }
            self.deliver(name, message, wait.conn, wait.lease, now, notes);
        }
    }

    /// Hands `message` (counted in its queue's bytes) to `conn`, under a lease if `lease` is not
    /// zero (then it is kept until acknowledged), otherwise for good.
    fn deliver(
        &mut self,
        name: &Bytes,
        mut message: Message,
        conn: Owner,
        lease: Duration,
        now: Instant,
        notes: &mut Vec<Note>,
    ) {
        // Each hand-out has an id of its own: an ack for an earlier hand-out of the message (a
        // lease that ran out) cannot end this one.
        message.id = self.next_serial();
        message.deliveries += 1;
        notes.push((
            conn,
            Reply::QMessage {
                queue: name.clone(),
                id: Bytes::copy_from_slice(itoa::Buffer::new().format(message.id).as_bytes()),
                value: message.value.clone(),
            },
        ));
        Stats::bump(&self.stats.queue_received);
        self.generation += 1;
        let seq = self.next_serial();
        if let Some(j) = self.journal(name) {
            let change = if lease.is_zero() {
                QueueChange::Gone
            } else {
                QueueChange::Leased(u32::try_from(message.deliveries).unwrap_or(u32::MAX))
            };
            j.queue_change(change, name, message.seq);
        }
        let q = self.queues.get_mut(name).expect("queue present");
        q.counters.received += 1;
        if lease.is_zero() {
            q.bytes -= message.value.len();
            self.total_bytes -= message.value.len();
            return;
        }
        let id = message.id;
        let queue = name.clone();
        let timer = self
            .timers
            .add(now + lease, seq, Timer::Lease { queue, id });
        q.leased.insert(
            id,
            Lease {
                message,
                conn,
                timer,
            },
        );
        let used = self.conns.entry(conn).or_default();
        used.queues.insert(name.clone());
    }

    /// `QRECV`: the first ready message, or a wait for one (`timeout` `None`: until the
    /// connection ends; zero: `QEMPTY` at once).
    pub(crate) fn recv(
        &mut self,
        conn: Owner,
        name: &[u8],
        timeout: Option<Duration>,
        lease: Duration,
        now: Instant,
        notes: &mut Vec<Note>,
    ) -> Result<(), Refusal> {
        let poll = timeout.is_some_and(|t| t.is_zero());
        if poll && !self.queues.contains_key(name) {
            // Nothing to take, and no queue made for asking.
            if !valid_name(name) {
                return Err(Refusal::BadName);
            }
            if name.starts_with(TEMP_PREFIX) {
                return Err(Refusal::UnknownQueue);
            }
            let queue = Bytes::copy_from_slice(name);
            notes.push((conn, Reply::QEmpty { queue }));
            return Ok(());
        }
        let max_waits = self.config.max_waits;
        let waits = self.conns.get(&conn).map_or(0, |u| u.waits);
        let wait_id = self.next_serial();
        let name = &self.open(name, now)?;
        let q = self.queue_mut(name);
        if q.owner.is_some_and(|owner| owner != conn) {
            return Err(Refusal::NotOwner);
        }
        if !q.ready.is_empty() {
            let message = q.ready.pop_front().expect("not empty");
            self.deliver(name, message, conn, lease, now, notes);
            return Ok(());
        }
        if timeout.is_some_and(|t| t.is_zero()) {
            notes.push((
                conn,
                Reply::QEmpty {
                    queue: name.clone(),
                },
            ));
            return Ok(());
        }
        if waits >= max_waits {
            Stats::bump(&self.stats.queue_limit_refusals);
            return Err(Refusal::TooManyWaits);
        }
        let timer = timeout.map(|t| {
            let queue = name.clone();
            let wait = wait_id;
            self.timers
                .add(now + t, wait_id, Timer::Wait { queue, wait })
        });
        let wait = Wait { conn, lease, timer };
        self.queue_mut(name).waits.push_back((wait_id, wait));
        let used = self.conns.entry(conn).or_default();
        used.waits += 1;
        used.queues.insert(name.clone());
        Ok(())
    }

    /// Ends the waits and leases whose time has come; returns when the next one is due.
    pub(crate) fn fire(&mut self, now: Instant, notes: &mut Vec<Note>) -> Option<Instant> {
        while let Some(entry) = self.timers.map.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            match entry.remove() {
                Timer::Wait { queue, wait } => self.end_wait(&queue, wait, notes),
                Timer::Lease { queue, id } => {
                    let lease = self
                        .queues
                        .get_mut(&queue)
                        .and_then(|q| q.leased.remove(&id));
                    if let Some(lease) = lease {
                        self.give_back(&queue, lease.message, now, notes);
                        self.settle(&queue, now, notes);
                    }
                }
            }
        }
        None
    }

    /// Forgets the queues that are empty, with no one waiting, and were not named by a command
    /// for `queues/idletime`; returns how many.
    pub(crate) fn drop_idle(&mut self, now: Instant) -> usize {
        let idle = self.config.idle_time;
        let before = self.queues.len();
        self.queues
            .retain(|_, q| !q.is_idle() || now.saturating_duration_since(q.used) < idle);
        let dropped = before - self.queues.len();
        Stats::add(&self.stats.queues_dropped_idle, dropped as u64);
        dropped
    }

    /// `QPURGE`: drops a queue's ready messages; returns how many.
    pub(crate) fn purge(&mut self, name: &Bytes) -> usize {
        let Some(q) = self.queues.get_mut(name) else {
            return 0;
        };
        let freed: usize = q.ready.iter().map(|m| m.value.len()).sum();
        let n = q.ready.len();
        if let Some(j) = self
            .journal
            .as_ref()
            .filter(|_| !name.starts_with(TEMP_PREFIX))
        {
            for m in &q.ready {
                j.queue_change(QueueChange::Gone, name, m.seq);
            }
        }
        q.ready.clear();
        q.bytes -= freed;
        self.total_bytes -= freed;
        self.generation += 1;
        n
    }

    /// `QDELETE`: the queue goes, with its messages (leased ones too); its waits end.
    pub(crate) fn delete(&mut self, name: &Bytes, notes: &mut Vec<Note>) -> bool {
        let Some(q) = self.queues.remove(name) else {
            return false;
        };
        if let Some(j) = self.journal(name) {
            j.queue_emptied(name);
        }
        self.total_bytes -= q.bytes;
        self.generation += 1;
        for (_, wait) in q.waits {
            self.timers.remove(wait.timer);
            self.wait_ended(name, wait.conn, notes);
        }
        for lease in q.leased.into_values() {
            self.timers.remove(Some(lease.timer));
        }
        true
    }
}

#[cfg(test)]
mod tests;
