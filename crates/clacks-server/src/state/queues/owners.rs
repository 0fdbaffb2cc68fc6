//! What the queues keep per owner (a connection here, or a client behind a slave): its waiting
//! receives, its leases and its temporary queues, and how they end.

use bytes::Bytes;
use clacks_proto::Reply;
use tokio::time::Instant;

use super::{ConnId, Note, Owner, Queue, Queues, Refusal, TEMP_PREFIX};
use crate::stats::Stats;

impl Queues {
    /// `QCANCEL`: `conn`'s waiting receives on `name` end (each gets `QEMPTY`).
    pub(crate) fn cancel(&mut self, conn: Owner, name: &Bytes, notes: &mut Vec<Note>) {
        let Some(q) = self.queues.get_mut(name) else {
            return;
        };
        let mut ended = 0;
        q.waits.retain(|(_, w)| {
            if w.conn != conn {
                return true;
            }
            self.timers.remove(w.timer);
            notes.push((
                conn,
                Reply::QEmpty {
                    queue: name.clone(),
                },
            ));
            ended += 1;
            false
        });
        if let Some(u) = self.conns.get_mut(&conn) {
            u.waits -= ended;
        }
    }

    /// A timed-out wait ends with `QEMPTY`.
    pub(super) fn end_wait(&mut self, name: &Bytes, wait_id: u64, notes: &mut Vec<Note>) {
        let Some(q) = self.queues.get_mut(name) else {
            return;
        };
        let Some(i) = q.waits.iter().position(|(id, _)| *id == wait_id) else {
            return;
        };
        let (_, wait) = q.waits.remove(i).expect("present");
        self.wait_ended(name, wait.conn, notes);
    }

    /// A wait of `conn` on queue `name` ended without a message: `QEMPTY`.
    pub(super) fn wait_ended(&mut self, name: &Bytes, conn: Owner, notes: &mut Vec<Note>) {
        if let Some(u) = self.conns.get_mut(&conn) {
            u.waits -= 1;
        }
        notes.push((
            conn,
            Reply::QEmpty {
                queue: name.clone(),
            },
        ));
    }

    /// `QTEMP`: a new queue only `conn` receives from, gone when `conn` ends.
    pub(crate) fn temp(&mut self, conn: Owner) -> Result<Bytes, Refusal> {
        if self.queues.len() >= self.config.max_queues {
            Stats::bump(&self.stats.queue_limit_refusals);
            return Err(Refusal::TooManyQueues);
        }
        let serial = self.next_serial();
        let name = Bytes::from(format!(
            "{}{serial}.{:08x}",
            String::from_utf8_lossy(TEMP_PREFIX),
            rand::random::<u32>()
        ));
        let limits = self.config.limits_for(&name);
        self.queues
            .insert(name.clone(), Queue::new(limits, Some(conn), Instant::now()));
        self.conns.entry(conn).or_default().temps.push(name.clone());
        Ok(name)
    }

    /// A connection ended: so did every owner it stood for (itself, and the clients of a slave
    /// behind a link).
    pub(crate) fn remove_conn(&mut self, conn: ConnId, now: Instant, notes: &mut Vec<Note>) {
        let owners: Vec<Owner> = self
            .conns
            .range(Owner::all_of(conn))
            .map(|(o, _)| *o)
            .collect();
        for owner in owners {
            self.remove_owner(owner, now, notes);
        }
        // Notes for what ended have nowhere to go.
        notes.retain(|(to, _)| to.conn != conn);
    }

    /// An owner ended: its waits end, the messages leased to it go back to their queues (to
    /// other waiting receives at once), its temporary queues go.
    pub(crate) fn remove_owner(&mut self, conn: Owner, now: Instant, notes: &mut Vec<Note>) {
        let Some(used) = self.conns.remove(&conn) else {
            return;
        };
        for name in &used.temps {
            let mut ignored = Vec::new();
            self.delete(name, &mut ignored);
        }
        let mut names: Vec<Bytes> = used.queues.into_iter().collect();
        names.sort_unstable();
        for name in names {
            let Some(q) = self.queues.get_mut(&name) else {
                continue;
            };
            let timers = &mut self.timers;
            q.waits.retain(|(_, w)| {
                let keep = w.conn != conn;
                if !keep {
                    timers.remove(w.timer);
                }
                keep
            });
            let mut ids: Vec<u64> = q
                .leased
                .iter()
                .filter(|(_, l)| l.conn == conn)
                .map(|(id, _)| *id)
                .collect();
            // Back in the order they were sent: the newest first, each to the head.
            ids.sort_unstable_by(|a, b| b.cmp(a));
            for id in ids {
                let q = self.queue_mut(&name);
                let lease = q.leased.remove(&id).expect("present");
                self.timers.remove(Some(lease.timer));
                self.give_back(&name, lease.message, now, notes);
            }
            self.settle(&name, now, notes);
        }
        notes.retain(|(to, _)| *to != conn);
    }
}
