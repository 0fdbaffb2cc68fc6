//! Command execution: one file per command family, like the codec's.
//!
//! | family | file | commands |
//! | --- | --- | --- |
//! | cache | [`cache`] | `STORE` `RETRIEVE` `REMOVE` `INCREMENT` `DECREMENT` `KEYLIST` `CLEARCACHE` |
//! | signals | [`signals`] | `NOTIFY` `SET` `SETANDSTORE` `LISTEN` `UNLISTEN` |
//! | admin | [`admin`] | `OVERHEAD` `MONITOR` `UNMONITOR` `CLIENTLIST` `CLIENTDISCONNECT` `STATS` `PING` `NOPING` `QUIT` `TIMEOUT` `FLUSH` |
//! | keysync | [`keysync`] | `KEYSYNC` `KEYINCREMENT` |
//! | queue | [`queue`] | `QSEND` `QRECV` `QACK` `QNACK` `QCANCEL` `QSTAT` `QLIST` `QPURGE` `QDELETE` `QTEMP` |
//! | registry | [`registry`] | `REGISTER` `UNREGISTER` `RESOLVE` `SERVICES` |
//! | routed | [`routed`] | `QFWD` `QREPLY` `QDROP`: queue and registry commands run at the root |
//!
//! [`execute`] checks the permission from [`permission`] (one table for every verb) and hands the
//! request to its function. Both are exhaustive matches: a new `Request` variant does not compile
//! until it has a permission and a function. What leaves the server afterwards (replication to
//! peers) follows [`crate::interclacks::forward`]: a signal's line is passed on by
//! [`crate::session`], a cache change by the command that made it.

mod admin;
mod cache;
mod keysync;
mod queue;
mod registry;
mod routed;
mod signals;

use bytes::Bytes;
use clacks_proto::Request;

use crate::auth::Need;
use crate::session::{ClientError, Flow, Session};
use crate::state::State;
use crate::stats::Stats;

/// At most this much of a client's text goes into a log line.
const LOGGED_TEXT_MAX: usize = 256;

/// A name, key or text from a client as a log field: its first [`LOGGED_TEXT_MAX`] bytes.
pub(super) fn logged(text: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&text[..text.len().min(LOGGED_TEXT_MAX)])
}

/// The permission a command needs, checked before it runs; `None` for commands anyone logged in
/// may send, and for `OVERHEAD` and `TIMEOUT`, whose needs depend on their flags and on the
/// connection (checked in [`admin`]).
pub(crate) fn permission(request: &Request) -> Option<Need> {
    match request {
        Request::Store { .. }
        | Request::Remove { .. }
        | Request::Increment { .. }
        | Request::Decrement { .. }
        | Request::Notify { .. }
        | Request::Set { .. }
        | Request::SetAndStore { .. }
        | Request::QSend { .. }
        | Request::QRecv { .. }
        | Request::QAck { .. }
        | Request::QNack { .. }
        | Request::QCancel { .. }
        | Request::QTemp
        | Request::Register { .. }
        | Request::Unregister { .. } => Some(Need::Write),
        Request::Retrieve { .. }
        | Request::KeyList
        | Request::Listen { .. }
        | Request::Unlisten { .. }
        | Request::QStat { .. }
        | Request::QList
        | Request::Resolve { .. }
        | Request::Services => Some(Need::Read),
        Request::ClearCache { .. }
        | Request::Monitor
        | Request::Unmonitor
        | Request::ClientList
        | Request::ClientDisconnect { .. }
        | Request::Stats
        | Request::QPurge { .. }
        | Request::QDelete { .. } => Some(Need::Manage),
        Request::KeySync { .. }
        | Request::KeyIncrement { .. }
        | Request::QForward { .. }
        | Request::QReply { .. }
        | Request::QDrop { .. } => Some(Need::Interclacks),
        Request::Clacks { .. }
        | Request::Overhead { .. }
        | Request::OverheadWithoutValue
        | Request::Quit
        | Request::Timeout
        | Request::Ping
        | Request::NoPing
        | Request::Flush { .. }
        | Request::Unknown { .. } => None,
    }
}

/// `s`, with the cache command it is about to run counted (`cache_commands`).
fn counted(s: &mut Session) -> &mut Session {
    Stats::bump(&s.shared.stats.cache_commands);
    s
}

/// Runs one request of a logged-in connection; `line` is the line it was parsed from.
pub(crate) fn execute(
    s: &mut Session,
    state: &mut State,
    request: Request,
    line: &Bytes,
    now: f64,
) -> Flow {
    if let Some(need) = permission(&request) {
        if !s.allowed(need) {
            return Flow::Continue;
        }
    }
    match request {
        Request::Store { key, value } => cache::store(counted(s), state, key, value, now),
        Request::Retrieve { key } => cache::retrieve(counted(s), state, key, now),
        Request::Remove { key } => cache::remove(counted(s), state, key, now),
        Request::Increment { key, step } => cache::add(counted(s), state, key, step, false, now),
        Request::Decrement { key, step } => cache::add(counted(s), state, key, step, true, now),
        Request::KeyList => cache::keylist(counted(s), state, now),
        Request::ClearCache { time } => cache::clear(counted(s), state, time, now),
        Request::Notify { name } => signals::notify(s, state, name),
        Request::Set { name, value } => signals::set(s, state, name, value),
        Request::SetAndStore { name, value } => {
            signals::set_and_store(counted(s), state, name, value, now)
        }
        Request::Listen { name } => signals::listen(s, state, &name),
        Request::Unlisten { name } => signals::unlisten(s, state, &name),
        Request::KeySync {
            cachetime,
            accesstime,
            mode,
            key,
            value,
        } => keysync::keysync(s, state, [cachetime, accesstime, mode], key, value, now),
        Request::KeyIncrement {
            cachetime,
            base,
            step,
            result,
            key,
        } => keysync::key_increment(s, state, [cachetime, base, step, result], key, now),
        Request::QSend { .. }
        | Request::QRecv { .. }
        | Request::QAck { .. }
        | Request::QNack { .. }
        | Request::QCancel { .. }
        | Request::QStat { .. }
        | Request::QList
        | Request::QPurge { .. }
        | Request::QDelete { .. }
        | Request::QTemp => {
            let ctx = routed::Ctx::here(s);
            queue::run(s, state, ctx, line, request)
        }
        Request::Register { .. }
        | Request::Unregister { .. }
        | Request::Resolve { .. }
        | Request::Services => {
            let ctx = routed::Ctx::here(s);
            registry::run(s, state, ctx, line, request)
        }
        Request::QForward { tag, hops, line } => routed::from_slave(s, state, tag, hops, line),
        Request::QReply { tag, line } => routed::from_master(s, state, tag, line),
        Request::QDrop { tag } => routed::dropped(s, state, tag),
        Request::Overhead { flags, value } => admin::overhead(s, state, flags, value, now),
        Request::Monitor => admin::monitor(s, state, true),
        Request::Unmonitor => admin::monitor(s, state, false),
        Request::ClientList => admin::client_list(s, state),
        Request::ClientDisconnect { cid } => admin::client_disconnect(s, state, &cid),
        Request::Stats => admin::stats(s, state),
        Request::Ping => admin::ping(s, state, now),
        Request::NoPing => admin::no_ping(s, state),
        Request::Quit => admin::quit(s),
        Request::Timeout => admin::timeout(s, line),
        Request::Flush { id } => {
            let ctx = routed::Ctx::here(s);
            routed::flush(state, ctx, line, &id).unwrap_or_else(|| admin::flush(s, id))
        }
        // Handled before login (`CLACKS`), ignored (`OVERHEAD` without a value).
        Request::Clacks { .. } | Request::OverheadWithoutValue => Flow::Continue,
        Request::Unknown { .. } => unknown(s, line),
    }
}

/// A line that is no command.
fn unknown(s: &mut Session, line: &Bytes) -> Flow {
    s.error(ClientError::UnknownCommand(line));
    Flow::Continue
}
