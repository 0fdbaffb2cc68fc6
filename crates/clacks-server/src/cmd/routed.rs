//! Commands that run where their subject lives: at the root of the tree (work queues, the
//! service registry), unless they name a `Local::` queue or this server has no master that takes
//! them (see [`crate::interclacks::routes`]). A slave forwards such a command to its master as
//! `QFWD <tag> <hops> <line>` for the client the tag names there, and hands the answers
//! (`QREPLY`) back; `QDROP` says the client is gone.

use bytes::Bytes;
use clacks_proto::{Flags, Reply, Request};

use super::logged;
use crate::interclacks::routes::{Pending, Route, MAX_HOPS};
use crate::session::{ClientError, Flow, Session};
use crate::state::queues::{Note, Owner};
use crate::state::{ConnId, State};
use crate::stats::Stats;

/// Whom a command runs for, and through how many servers it came.
#[derive(Clone, Copy)]
pub(super) struct Ctx {
    pub(super) owner: Owner,
    pub(super) hops: u8,
}

impl Ctx {
    /// A command of this connection's own.
    pub(super) fn here(s: &Session) -> Ctx {
        Ctx {
            owner: Owner::here(s.id),
            hops: 0,
        }
    }
}

/// Sends `reply` to `owner`: into this connection's replies, or to the owner's connection (for
/// a client behind a link, as `QREPLY <tag> <line>`).
pub(super) fn answer(s: &mut Session, state: &State, owner: Owner, reply: Reply) {
    if owner == Owner::here(s.id) {
        s.reply(reply);
    } else {
        state.send_note(owner, &reply);
    }
}

/// Sends the lines a change caused.
pub(super) fn answer_all(s: &mut Session, state: &State, notes: Vec<Note>) {
    for (owner, reply) in notes {
        answer(s, state, owner, reply);
    }
}

/// Sends an error to the owner of a command: into this connection's replies (counted as every
/// error is), or to a client behind a link.
pub(super) fn error(s: &mut Session, state: &State, ctx: Ctx, err: ClientError<'_>) {
    if ctx.owner == Owner::here(s.id) {
        return s.error(err);
    }
    if matches!(err, ClientError::PermissionDenied) {
        Stats::bump(&s.shared.stats.permission_denied);
    }
    let reply = Reply::Overhead {
        flags: Flags::ERROR,
        value: err.text(),
    };
    answer(s, state, ctx.owner, reply);
}

/// Runs `line` at our master when it holds `name` (`true`: forwarded, or refused with
/// `unavailable` because the link is down); `waits_for`: the answer the command gets, if any.
pub(super) fn forwarded(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    unavailable: &'static str,
    name: &[u8],
    line: &Bytes,
    waits_for: Option<Pending>,
) -> bool {
    let has_master = s.shared.config.master.is_some();
    let link = match state.routes.route(has_master, name) {
        Route::Here => return false,
        Route::Up(link) if ctx.hops < MAX_HOPS => link,
        Route::Up(_) | Route::Unavailable => {
            // The same answer as when the link goes while the command is on its way.
            match waits_for {
                Some(pending) => answer(s, state, ctx.owner, pending.unanswered()),
                None => error(s, state, ctx, ClientError::Refused(unavailable, &[name])),
            }
            return true;
        }
    };
    up(state, link, ctx, line, waits_for);
    true
}

/// Sends `line` up the link to our master for `ctx`.
fn up(state: &mut State, link: ConnId, ctx: Ctx, line: &Bytes, waits_for: Option<Pending>) {
    let tag = state.routes.tag_for(ctx.owner, waits_for);
    let up = Request::QForward {
        tag,
        hops: ctx.hops + 1,
        line: line.clone(),
    };
    state.conns.deliver(link, &up.to_bytes());
}

/// `FLUSH` of an owner that forwarded commands goes the same way, so that it is answered
/// after them; `None` when it is answered here.
pub(super) fn flush(state: &mut State, ctx: Ctx, line: &Bytes, id: &Bytes) -> Option<Flow> {
    let (link, _) = state.routes.forwarding(ctx.owner)?;
    if ctx.hops >= MAX_HOPS {
        return None;
    }
    up(state, link, ctx, line, Some(Pending::Flush(id.clone())));
    Some(Flow::Continue)
}

/// `QFWD <tag> <hops> <line>` from a slave: runs a queue or registry command (or `FLUSH`) for
/// its client.
pub(super) fn from_slave(
    s: &mut Session,
    state: &mut State,
    tag: u64,
    hops: u8,
    line: Bytes,
) -> Flow {
    let ctx = Ctx {
        owner: Owner { conn: s.id, tag },
        hops,
    };
    match Request::parse(line.clone()) {
        Request::Flush { id } => {
            if flush(state, ctx, &line, &id).is_none() {
                answer(s, state, ctx.owner, Reply::Flushed { id });
            }
            Flow::Continue
        }
        request if super::queue::handles(&request) => {
            super::queue::run(s, state, ctx, &line, request)
        }
        request if super::registry::handles(&request) => {
            super::registry::run(s, state, ctx, &line, request)
        }
        _ => {
            if s.may_log() {
                tracing::warn!(cid = %s.cid_str(), line = %logged(&line), "QFWD of a line that is no queue or registry command ignored");
            }
            Flow::Continue
        }
    }
}

/// `QREPLY <tag> <line>` from our master: an answer for one of our clients (or for a client of
/// a slave of ours). From any other link it is ignored.
pub(super) fn from_master(s: &Session, state: &mut State, tag: u64, line: Bytes) -> Flow {
    if !state.routes.is_master(s.id) {
        return Flow::Continue;
    }
    if let Some(owner) = state.routes.answered(tag, &line) {
        state.send_line(owner, line);
    }
    Flow::Continue
}

/// `QDROP <tag>` from a slave: that client is gone.
pub(super) fn dropped(s: &mut Session, state: &mut State, tag: u64) -> Flow {
    state.owner_gone(Owner { conn: s.id, tag });
    Flow::Continue
}
