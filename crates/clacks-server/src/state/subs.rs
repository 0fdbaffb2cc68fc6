//! Subscriptions: who listens to which signal name.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::RandomState;

use super::conns::{ConnId, Conns};
use crate::outbox::Outbox;

/// Listeners by name (with their outboxes: a signal reaches them without a lookup), and the
/// names each connection listens to (only connections that listen have an entry).
#[derive(Default)]
pub(crate) struct Subscriptions {
    by_name: HashMap<Bytes, Vec<(ConnId, Arc<Outbox>)>, RandomState>,
    by_conn: HashMap<ConnId, HashSet<Bytes, RandomState>, RandomState>,
}

impl Subscriptions {
    /// `LISTEN name` by connection `id` (whose outbox is looked up in `conns`).
    pub(crate) fn subscribe(&mut self, conns: &Conns, id: ConnId, name: &Bytes) {
        let Some(entry) = conns.get(id) else {
            return;
        };
        // Own the bytes: `name` is a slice of a read buffer.
        let name = Bytes::copy_from_slice(name);
        if self.by_conn.entry(id).or_default().insert(name.clone()) {
            let outbox = entry.outbox.clone();
            self.by_name.entry(name).or_default().push((id, outbox));
        }
    }

    /// `UNLISTEN name` by connection `id`.
    pub(crate) fn unsubscribe(&mut self, id: ConnId, name: &Bytes) {
        let Some(names) = self.by_conn.get_mut(&id) else {
            return;
        };
        if names.remove(name) {
            if names.is_empty() {
                self.by_conn.remove(&id);
            }
            self.remove_listener(id, name);
        }
    }

    /// Drops every subscription of a connection that goes away.
    pub(crate) fn remove_conn(&mut self, id: ConnId) {
        for name in self.by_conn.remove(&id).unwrap_or_default() {
            self.remove_listener(id, &name);
        }
    }

    fn remove_listener(&mut self, id: ConnId, name: &Bytes) {
        if let Some(ids) = self.by_name.get_mut(name) {
            ids.retain(|(i, _)| *i != id);
            if ids.is_empty() {
                self.by_name.remove(name);
            }
        }
    }

    /// Delivers an encoded signal to every listener of `name` except `sender`.
    pub(crate) fn fanout(&self, conns: &Conns, sender: ConnId, name: &[u8], line: &Bytes) {
        let Some(ids) = self.by_name.get(name) else {
            return;
        };
        let mut delivered = 0;
        for (id, outbox) in ids.iter().filter(|(i, _)| *i != sender) {
            conns.push_counted(*id, outbox, line.clone());
            delivered += 1;
        }
        conns
            .stats()
            .messages_delivered
            .fetch_add(delivered, Ordering::Relaxed);
    }
}
