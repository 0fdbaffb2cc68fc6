//! Leased messages: acknowledged (`QACK`), given back (`QNACK`, a lease that ran out, a
//! receiver gone), or moved to the dead-letter queue after `maxdeliveries` hand-outs.

use bytes::Bytes;
use tokio::time::Instant;

use super::{Lease, Message, Note, Owner, Queues, Refusal, DEAD_SUFFIX, TEMP_PREFIX};
use crate::journal::record::QueueChange;
use crate::stats::Stats;

impl Queues {
    /// The lease `id` of `conn` on queue `name`, taken off the queue, and the queue's name as
    /// it holds it.
    fn take_lease(
        &mut self,
        conn: Owner,
        name: &[u8],
        id: &[u8],
    ) -> Result<(Bytes, Lease), Refusal> {
        let id: u64 = std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.parse().ok())
            .ok_or(Refusal::UnknownMessage)?;
        let (held, q) = self
            .queues
            .get_key_value(name)
            .ok_or(Refusal::UnknownMessage)?;
        if q.leased.get(&id).is_none_or(|lease| lease.conn != conn) {
            return Err(Refusal::UnknownMessage);
        }
        let held = held.clone();
        let lease = self.queue_mut(&held).leased.remove(&id).expect("present");
        self.timers.remove(Some(lease.timer));
        Ok((held, lease))
    }

    /// `QACK`: done with a leased message.
    pub(crate) fn ack(&mut self, conn: Owner, name: &[u8], id: &[u8]) -> Result<(), Refusal> {
        let (name, lease) = self.take_lease(conn, name, id)?;
        if let Some(j) = self.journal(&name) {
            j.queue_change(QueueChange::Gone, &name, lease.message.seq);
        }
        let len = lease.message.value.len();
        let q = self.queue_mut(&name);
        q.counters.acked += 1;
        q.bytes -= len;
        self.total_bytes -= len;
        self.generation += 1;
        Stats::bump(&self.stats.queue_acked);
        Ok(())
    }

    /// `QNACK`: a leased message goes back now.
    pub(crate) fn nack(
        &mut self,
        conn: Owner,
        name: &[u8],
        id: &[u8],
        now: Instant,
        notes: &mut Vec<Note>,
    ) -> Result<(), Refusal> {
        let (name, lease) = self.take_lease(conn, name, id)?;
        self.give_back(&name, lease.message, now, notes);
        self.settle(&name, now, notes);
        Ok(())
    }

    /// A message that was handed out under a lease and not acknowledged goes back to the head
    /// of its queue (the caller then hands it to a waiting receive), or, handed out
    /// `maxdeliveries` times already, to `<queue>::dead`.
    pub(super) fn give_back(
        &mut self,
        name: &Bytes,
        message: Message,
        now: Instant,
        notes: &mut Vec<Note>,
    ) {
        self.generation += 1;
        let len = message.value.len();
        // Dead-letter queues and temporary queues (whose `::dead` no one could read) have none.
        let dead = message.deliveries >= self.config.max_deliveries
            && !name.ends_with(DEAD_SUFFIX)
            && !name.starts_with(TEMP_PREFIX);
        if let Some(j) = self.journal(name) {
            let change = if dead {
                QueueChange::Gone
            } else {
                QueueChange::Returned(u32::try_from(message.deliveries).unwrap_or(u32::MAX))
            };
            j.queue_change(change, name, message.seq);
        }
        let q = self.queue_mut(name);
        if !dead {
            q.counters.redelivered += 1;
            q.ready.push_front(message);
            Stats::bump(&self.stats.queue_redelivered);
            return;
        }
        q.counters.dead += 1;
        q.bytes -= len;
        self.total_bytes -= len;
        Stats::bump(&self.stats.queue_dead_lettered);
        let dead_name = Bytes::from([&name[..], DEAD_SUFFIX].concat());
        tracing::warn!(
            queue = %String::from_utf8_lossy(name),
            deliveries = message.deliveries,
            "message handed out too often without an ack moved to the dead-letter queue"
        );
        // The dead-letter queue takes it under its own limits (and may refuse it).
        if let Err(refusal) = self.send(&dead_name, &message.value, now, notes) {
            tracing::warn!(
                queue = %String::from_utf8_lossy(&dead_name),
                reason = refusal.token(),
                "dead-letter queue refused a message; it is lost"
            );
        }
    }
}
