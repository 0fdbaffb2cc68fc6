//! The connection and the server: `OVERHEAD`, `MONITOR`/`UNMONITOR`, `CLIENTLIST`,
//! `CLIENTDISCONNECT`, `STATS`, `PING`/`NOPING`, `QUIT`, `TIMEOUT`, `FLUSH`.

use std::time::Duration;

use bytes::Bytes;
use clacks_proto::{Flags, Reply};
use clacks_store::number::numify;

use super::logged;
use crate::auth::Need;
use crate::interclacks::{self, Link};
use crate::outbox::CloseReason;
use crate::session::{Flow, Session};
use crate::state::State;

/// `OVERHEAD <flags> <value>` after login (A was handled before), in the reference's order:
/// T, C, S, E, then G re-emission.
pub(super) fn overhead(
    s: &mut Session,
    state: &mut State,
    flags: Flags,
    value: Bytes,
    now: f64,
) -> Flow {
    if flags.contains(Flags::TIMESTAMP) {
        interclacks::clock::peer_clock(s, state, &value, now);
        return Flow::Continue;
    }
    // Forwarded control flags act on every server of the tree with interclacks rights: only
    // the main user may send them. Refused, the line has no effect here or anywhere.
    if flags.contains(Flags::FORWARD)
        && flags.intersects(Flags::CONTROL)
        && !s.allowed(Need::Interclacks)
    {
        return Flow::Continue;
    }
    let truthy = !(value.is_empty() || &value[..] == b"0");
    if flags.contains(Flags::LOCK) && s.link.kind == Link::ToMaster {
        if s.allowed(Need::Interclacks) {
            interclacks::sync::lock_from_master(s, state, truthy);
        }
        return Flow::Continue;
    }
    if flags.contains(Flags::CLOSE_ALL) && truthy {
        if !s.allowed(Need::Manage) {
            return Flow::Continue;
        }
        tracing::info!(by = %s.cid_str(), "closing all connections (OVERHEAD C)");
        s.flush_out();
        if flags.contains(Flags::FORWARD) {
            let close_tree = Bytes::from_static(b"\r\nOVERHEAD GC 1\r\n");
            for id in state.links.ids() {
                state.conns.deliver(id, &close_tree);
            }
        }
        state.conns.kick_all();
        return Flow::Stop;
    }
    if flags.contains(Flags::SHUTDOWN) {
        if !s.allowed(Need::Manage) {
            return Flow::Continue;
        }
        let secs = numify(&value).to_f64();
        if secs > 0.0 {
            tracing::info!(by = %s.cid_str(), secs, "shutdown requested (OVERHEAD S)");
            let token = s.shared.shutdown.clone();
            let delay = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                token.cancel();
            });
        }
    }
    if flags.contains(Flags::ERROR) && s.may_log() {
        tracing::warn!(
            cid = %s.cid_str(),
            message = %logged(&value),
            bytes = value.len(),
            "error message from peer"
        );
    }
    if flags.contains(Flags::INTERCLACKS) {
        if !s.allowed(Need::Interclacks) {
            return Flow::Continue;
        }
        if truthy {
            interclacks::sync::slave_linked(s, state);
        } else {
            state.links.unlink(&mut state.conns, s.id);
            s.link.kind = Link::None;
            s.outbox.set_cap(s.shared.config.max_out_buffer);
        }
    }
    if flags.contains(Flags::FORWARD) {
        if !s.allowed(Need::Write) {
            return Flow::Continue;
        }
        let mut out_flags = flags.without(Flags::RETURN_TO_SENDER);
        if flags.contains(Flags::INTERCLACKS) {
            out_flags = out_flags.without(Flags::FORWARD);
        }
        let line = Reply::Overhead {
            flags: out_flags,
            value,
        }
        .to_bytes();
        let except = (!flags.contains(Flags::RETURN_TO_SENDER)).then_some(s.id);
        s.flush_out();
        state.conns.broadcast(except, &line);
    }
    Flow::Continue
}

pub(super) fn monitor(s: &mut Session, state: &mut State, on: bool) -> Flow {
    s.monitoring = on;
    state.conns.set_monitor(s.id, on);
    Flow::Continue
}

pub(super) fn client_list(s: &mut Session, state: &mut State) -> Flow {
    Reply::ClientListStart.encode(&mut s.out);
    for entry in state.conns.client_entries() {
        Reply::Client(Box::new(entry)).encode(&mut s.out);
    }
    Reply::ClientListEnd.encode(&mut s.out);
    Flow::Continue
}

pub(super) fn client_disconnect(s: &mut Session, state: &mut State, cid: &Bytes) -> Flow {
    s.flush_out();
    if let Some(target) = state.conns.find_cid(cid).and_then(|id| state.conns.get(id)) {
        if s.may_log() {
            tracing::info!(by = %s.cid_str(), target = %logged(cid), "client disconnected by request");
        }
        target
            .outbox
            .push_last(Reply::Quit.to_bytes(), CloseReason::Kicked);
    }
    if s.outbox.is_closing() {
        return Flow::Stop;
    }
    Flow::Continue
}

pub(super) fn stats(s: &mut Session, state: &mut State) -> Flow {
    let mut stats = s.shared.stats.snapshot();
    stats.push(("cache_entries", state.cache.len() as u64));
    let memory = state.cache.memory();
    stats.extend([
        ("memory_used", memory.used as u64),
        ("memory_limit", memory.limit as u64),
        ("evictions", memory.evictions),
        ("writes_refused_memory", memory.refused),
        ("registry_instances", state.registry.len() as u64),
    ]);
    if let Some(journal) = &state.journal {
        let age_ms = (journal.unsynced_age() * 1000.0) as u64;
        stats.push(("journal_unsynced_age_ms", age_ms));
    }
    let out = &mut s.out;
    Reply::StatsStart.encode(out);
    for (name, value) in stats {
        Reply::Stat {
            name: Bytes::from_static(name.as_bytes()),
            value: Bytes::from(value.to_string()),
        }
        .encode(out);
    }
    // The registrations of each connection that has any (a link: those of its slave's clients).
    for (conn, n) in state.registry.per_conn() {
        let Some(entry) = state.conns.get(conn) else {
            continue;
        };
        Reply::Stat {
            name: Bytes::from([&b"registrations:"[..], &entry.cid].concat()),
            value: Bytes::from(n.to_string()),
        }
        .encode(out);
    }
    Reply::StatsEnd.encode(out);
    Flow::Continue
}

pub(super) fn ping(s: &mut Session, state: &mut State, now: f64) -> Flow {
    s.ping();
    if let Some(entry) = state.conns.get_mut(s.id) {
        entry.lastping = now;
    }
    Flow::Continue
}

pub(super) fn no_ping(s: &mut Session, state: &mut State) -> Flow {
    s.last_ping = None;
    if let Some(entry) = state.conns.get_mut(s.id) {
        entry.lastping = 0.0;
    }
    Flow::Continue
}

pub(super) fn quit(s: &mut Session) -> Flow {
    s.close_self(CloseReason::Quit);
    Flow::Stop
}

/// `TIMEOUT` from a peer ends its link; from anyone else it is no command.
pub(super) fn timeout(s: &mut Session, line: &Bytes) -> Flow {
    if s.link.is_link() && s.allowed(Need::Interclacks) {
        tracing::warn!(cid = %s.cid_str(), "peer says our link timed out; dropping it");
        s.close_self(CloseReason::Timeout);
        return Flow::Stop;
    }
    super::unknown(s, line)
}

pub(super) fn flush(s: &mut Session, id: Bytes) -> Flow {
    s.reply(Reply::Flushed { id });
    Flow::Continue
}
