//! The deadlines of waits and leases, in one ordered map.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

pub(super) type TimerKey = (Instant, u64);

#[derive(Debug)]
pub(super) enum Timer {
    Wait { queue: Bytes, wait: u64 },
    Lease { queue: Bytes, id: u64 },
}

/// The deadlines of waits and leases, in order.
#[derive(Debug)]
pub(super) struct Timers {
    pub(super) map: BTreeMap<TimerKey, Timer>,
    pub(super) wake: Arc<Notify>,
}

impl Timers {
    pub(super) fn add(&mut self, at: Instant, seq: u64, timer: Timer) -> TimerKey {
        let key = (at, seq);
        let earliest = self
            .map
            .first_key_value()
            .is_none_or(|(first, _)| key < *first);
        self.map.insert(key, timer);
        if earliest {
            self.wake.notify_one();
        }
        key
    }

    pub(super) fn remove(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            self.map.remove(&key);
        }
    }
}
