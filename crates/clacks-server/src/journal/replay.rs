//! Replaying the journal over the loaded snapshot, in the order the changes were made.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use clacks_store::Cache;

use super::record::Record;
use crate::state::queues::Saved;

/// One queue's messages while replaying: by position (the head moves down, the tail up) and by
/// sequence number.
#[derive(Default)]
struct Replayed {
    order: BTreeMap<i64, u64>,
    messages: HashMap<u64, (i64, usize, Bytes)>,
    head: i64,
    tail: i64,
}

impl Replayed {
    fn push_back(&mut self, seq: u64, deliveries: usize, value: Bytes) {
        self.remove(seq);
        self.tail += 1;
        self.order.insert(self.tail, seq);
        self.messages.insert(seq, (self.tail, deliveries, value));
    }

    fn remove(&mut self, seq: u64) -> Option<(usize, Bytes)> {
        let (at, deliveries, value) = self.messages.remove(&seq)?;
        self.order.remove(&at);
        Some((deliveries, value))
    }
}

/// Applies `records` to the loaded `cache` and queue messages; returns how many were applied.
pub(crate) fn apply(records: Vec<Record>, cache: &mut Cache, saved: &mut Vec<Saved>) -> usize {
    let mut queues: BTreeMap<Bytes, Replayed> = BTreeMap::new();
    for (name, messages) in saved.drain(..) {
        let q = queues.entry(name).or_default();
        for (seq, deliveries, value) in messages {
            q.push_back(seq, deliveries, value);
        }
    }
    let n = records.len();
    for record in records {
        match record {
            Record::Write { key, entry } => cache.replay(key, entry),
            Record::Clear { time } => {
                cache.clear(Some(time), time);
            }
            Record::Flush { at, now } => cache.mc_flush(at, now),
            Record::QueueAdd {
                queue,
                seq,
                deliveries,
                value,
            } => queues
                .entry(queue)
                .or_default()
                .push_back(seq, deliveries as usize, value),
            Record::QueueGone { queue, seq } => {
                if let Some(q) = queues.get_mut(&queue) {
                    q.remove(seq);
                }
            }
            Record::QueueLeased {
                queue,
                seq,
                deliveries,
            } => {
                if let Some(m) = queues
                    .get_mut(&queue)
                    .and_then(|q| q.messages.get_mut(&seq))
                {
                    m.1 = deliveries as usize;
                }
            }
            Record::QueueReturn {
                queue,
                seq,
                deliveries,
            } => {
                if let Some(q) = queues.get_mut(&queue) {
                    if let Some((_, value)) = q.remove(seq) {
                        q.head -= 1;
                        q.order.insert(q.head, seq);
                        q.messages.insert(seq, (q.head, deliveries as usize, value));
                    }
                }
            }
            Record::QueueEmptied { queue } => {
                queues.remove(&queue);
            }
        }
    }
    for (name, mut q) in queues {
        let messages: Vec<(u64, usize, Bytes)> = std::mem::take(&mut q.order)
            .into_values()
            .filter_map(|seq| {
                let (_, deliveries, value) = q.messages.remove(&seq)?;
                Some((seq, deliveries, value))
            })
            .collect();
        if !messages.is_empty() {
            saved.push((name, messages));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use clacks_store::Entry;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn changes_apply_in_order_over_the_snapshot() {
        let mut cache = Cache::from_entries([
            (b("a"), Entry::new(b("old"), 1.0, 1.0, false)),
            (b("b"), Entry::new(b("gone soon"), 1.0, 1.0, false)),
        ]);
        let mut saved: Vec<Saved> = vec![(b("jobs"), vec![(1, 0, b("one")), (2, 0, b("two"))])];
        let records = vec![
            Record::Write {
                key: b("a"),
                entry: Entry::new(b("new"), 2.0, 2.0, false),
            },
            Record::Write {
                key: b("b"),
                entry: Entry::new(Bytes::new(), 2.0, 0.0, true),
            },
            Record::QueueAdd {
                queue: b("jobs"),
                seq: 3,
                deliveries: 0,
                value: b("three"),
            },
            Record::QueueGone {
                queue: b("jobs"),
                seq: 1,
            },
            Record::QueueLeased {
                queue: b("jobs"),
                seq: 3,
                deliveries: 1,
            },
            Record::QueueReturn {
                queue: b("jobs"),
                seq: 3,
                deliveries: 1,
            },
            Record::QueueAdd {
                queue: b("other"),
                seq: 4,
                deliveries: 0,
                value: b("x"),
            },
            Record::QueueEmptied { queue: b("other") },
            // Replayed again (the snapshot had it already): no change.
            Record::QueueGone {
                queue: b("jobs"),
                seq: 1,
            },
        ];
        assert_eq!(apply(records, &mut cache, &mut saved), 9);
        assert_eq!(cache.get(b"a").unwrap().data, b("new"));
        assert!(cache.get(b"b").unwrap().deleted);
        assert_eq!(
            saved,
            vec![(b("jobs"), vec![(3, 1, b("three")), (2, 0, b("two"))])]
        );
    }
}
