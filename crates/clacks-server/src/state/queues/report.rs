//! What the queues show and save: the figures of `QSTATS` and `QLIST`, and the messages a
//! persistence save writes and a start puts back.

use bytes::Bytes;
use tokio::time::Instant;

use super::{valid_name, Counters, Message, Queue, Queues, Saved, TEMP_PREFIX};
use crate::config::{Overflow, QueueLimits};

/// The figures of one queue, as `QSTATS` and `QLIST` show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Figures {
    messages: usize,
    bytes: usize,
    waiting: usize,
    leased: usize,
    counters: Counters,
}

impl Queue {
    fn figures(&self) -> Figures {
        let leased_bytes: usize = self.leased.values().map(|l| l.message.value.len()).sum();
        Figures {
            messages: self.ready.len(),
            bytes: self.bytes - leased_bytes,
            waiting: self.waits.len(),
            leased: self.leased.len(),
            counters: self.counters,
        }
    }
}

impl Queues {
    /// The messages of every queue but temporary ones, in order, leased ones first (they were
    /// sent before the ready ones): what a restart gets back.
    pub(crate) fn snapshot(&self) -> Vec<Saved> {
        let mut names: Vec<&Bytes> = self.queues.keys().collect();
        names.sort_unstable();
        names
            .into_iter()
            .filter_map(|name| {
                let q = &self.queues[name];
                if q.owner.is_some() || q.held() == 0 {
                    return None;
                }
                let mut leased: Vec<&Message> = q.leased.values().map(|l| &l.message).collect();
                leased.sort_unstable_by_key(|m| m.id);
                let messages = leased
                    .into_iter()
                    .chain(&q.ready)
                    .map(|m| (m.seq, m.deliveries, m.value.clone()))
                    .collect();
                Some((name.clone(), messages))
            })
            .collect()
    }

    /// Puts saved messages back (at start), with new ids, whatever the limits say now; a
    /// message without a sequence number (saved before they existed) gets one.
    pub(crate) fn restore(&mut self, saved: Vec<Saved>) {
        let last = saved
            .iter()
            .flat_map(|(_, messages)| messages.iter().map(|m| m.0))
            .max()
            .unwrap_or(0);
        self.last_seq = self.last_seq.max(last);
        for (name, messages) in saved {
            if !valid_name(&name) || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let limits = self.config.limits_for(&name);
            let q = self
                .queues
                .entry(name)
                .or_insert_with(|| Queue::new(limits, None, Instant::now()));
            for (seq, deliveries, value) in messages {
                q.bytes += value.len();
                self.total_bytes += value.len();
                let seq = if seq == 0 {
                    self.last_seq += 1;
                    self.last_seq
                } else {
                    seq
                };
                q.ready.push_back(Message {
                    seq,
                    id: 0,
                    value,
                    deliveries,
                });
            }
        }
    }

    /// The figures of queue `name` (zeros for one that does not exist) and its limits.
    pub(crate) fn stat(&self, name: &[u8]) -> Bytes {
        let limits = self.config.limits_for(name);
        match self.queues.get(name) {
            Some(q) => fields(&q.figures(), &q.limits),
            None => fields(&Figures::default(), &limits),
        }
    }

    /// Every queue with its figures, names in byte order.
    pub(crate) fn list(&self) -> Vec<(Bytes, Bytes)> {
        let mut names: Vec<&Bytes> = self.queues.keys().collect();
        names.sort_unstable();
        names
            .into_iter()
            .map(|name| {
                let q = &self.queues[name];
                (name.clone(), fields(&q.figures(), &q.limits))
            })
            .collect()
    }
}

/// The `k=v;…` fields of `QSTATS` and `QUEUE` lines.
fn fields(f: &Figures, limits: &QueueLimits) -> Bytes {
    let c = &f.counters;
    let overflow = match limits.overflow {
        Overflow::Reject => "reject",
        Overflow::DropOldest => "drop_oldest",
    };
    Bytes::from(format!(
        "messages={};bytes={};waiting={};leased={};sent={};received={};acked={};\
         redelivered={};rejected={};dropped={};dead={};max_messages={};max_bytes={};\
         max_message_size={};overflow={overflow}",
        f.messages,
        f.bytes,
        f.waiting,
        f.leased,
        c.sent,
        c.received,
        c.acked,
        c.redelivered,
        c.rejected,
        c.dropped,
        c.dead,
        limits.max_messages,
        limits.max_bytes,
        limits.max_message_size,
    ))
}
