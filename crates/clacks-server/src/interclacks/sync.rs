//! The full sync between a master and a slave.
//!
//! When a slave links up (`OVERHEAD I 1`) its master sends its whole cache between `OVERHEAD L 1`
//! and `L 0`; meanwhile the slave runs nothing from its other connections. On `L 0` the slave
//! answers with the records the master does not have in the same version.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, Reply, Request};
use clacks_store::number::format_float;
use clacks_store::{newer, same_write, Cache, Entry};
use tokio::time::Instant;

use super::{ping_interval, Link};
use crate::mutation::keysync;
use crate::session::Session;
use crate::state::{State, SERVER_INFO};

/// `OVERHEAD I 1` from a slave: its connection becomes an interclacks link and gets our whole
/// cache, framed by our master-mode greeting, login, clock and sync lock.
pub(crate) fn slave_linked(s: &mut Session, state: &mut State) {
    tracing::info!(cid = %s.cid_str(), entries = state.cache.len(), "slave connected; sending full sync");
    state.links.add(&mut state.conns, s.id, s.link.origin_times);
    s.link.settled = true;
    s.link.kind = Link::Inbound;
    s.outbox.set_cap(s.shared.config.interclacks_max_out_buffer);
    s.ping();
    s.link.next_ping = Instant::now() + ping_interval(&s.shared.config);
    let mut out = BytesMut::new();
    Reply::Clacks {
        info: Bytes::from(format!(
            "{SERVER_INFO} {} in interclacks master mode",
            super::words()
        )),
    }
    .encode(&mut out);
    let overhead = |flags: Flags, value: Bytes, out: &mut BytesMut| {
        Reply::Overhead { flags, value }.encode(out)
    };
    overhead(
        Flags::INFORMAL,
        Bytes::from_static(b"Authentication required"),
        &mut out,
    );
    overhead(Flags::AUTH, s.shared.main_token.clone(), &mut out);
    overhead(Flags::LOCK, Bytes::from_static(b"1"), &mut out);
    let now = s.shared.now();
    s.link.sent_clock = Some(now);
    overhead(Flags::TIMESTAMP, Bytes::from(format_float(now)), &mut out);
    let cache = &state.cache;
    last_clear(s, cache, &mut out);
    keysync_lines(
        cache.iter().filter(|(_, e)| cache.current(e, now)),
        &mut out,
    );
    overhead(Flags::LOCK, Bytes::from_static(b"0"), &mut out);
    Reply::Ping.encode(&mut out);
    s.flush_out();
    s.outbox.push_force(out.freeze());
}

/// `OVERHEAD L 1` / `L 0` from our master. On release we send our clock and the records the
/// master does not have in the same version (unknown to it, or newer here and not the same
/// write), so an unchanged slave sends nothing back; only then does the link start forwarding
/// our changes.
pub(crate) fn lock_from_master(s: &mut Session, state: &mut State, on: bool) {
    if on {
        tracing::info!("sync lock on: master is sending its cache");
        state.links.set_sync_lock(&s.shared, true);
        s.link.sync_seen = Some(HashMap::new());
        return;
    }
    state.links.set_sync_lock(&s.shared, false);
    super::clock::synced_by_master(s);
    // Taken as the sync's: the records we answer with were compared as copies in it.
    let slack = super::clock::slack(s);
    let seen = s.link.sync_seen.take().unwrap_or_default();
    let mut out = BytesMut::new();
    let now = s.shared.now();
    Reply::Overhead {
        flags: Flags::TIMESTAMP,
        value: Bytes::from(super::clock::answer_clock(s, now)),
    }
    .encode(&mut out);
    let cache = &state.cache;
    last_clear(s, cache, &mut out);
    let ours = cache
        .iter()
        .filter(|(_, local)| cache.current(local, now))
        .filter(|(key, local)| match seen.get(*key) {
            None => true,
            Some(remote) => newer(local, remote) && !same_write(local, remote, slack),
        });
    let sent = keysync_lines(ours, &mut out);
    tracing::info!(
        received = seen.len(),
        sent,
        "sync lock off: sent our newer records"
    );
    s.flush_out();
    s.outbox.push_force(out.freeze());
    // From now on our changes go to the master as they happen. Those made before went in the
    // answer above, with the times they were made: forwarded as commands before the sync, they
    // would have run on the master with its (later) clock.
    state.links.add(&mut state.conns, s.id, s.link.origin_times);
    state.routes.master_linked(s.id, s.link.queues);
    *s.shared
        .last_sync
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());
    s.link.settled = true;
}

/// To a `clacksd` peer, the last clear made or seen here (`CLEARCACHE <time>`), before the
/// records: a peer that missed it while the link was down forgets what it forgot here, and
/// neither side takes the other's copies of such records.
fn last_clear(s: &Session, cache: &Cache, out: &mut BytesMut) {
    let until = cache.cleared_until();
    if s.link.origin_times && until > 0.0 {
        let time = Some(Bytes::from(format_float(until)));
        Request::ClearCache { time }.encode(out);
    }
}

/// Encodes one `KEYSYNC` per record, keys in byte order; returns how many.
fn keysync_lines<'a>(
    entries: impl Iterator<Item = (&'a Bytes, &'a Entry)>,
    out: &mut BytesMut,
) -> usize {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, e) in &entries {
        keysync((*key).clone(), e).encode(out);
    }
    entries.len()
}
