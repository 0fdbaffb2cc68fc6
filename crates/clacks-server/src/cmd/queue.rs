//! Work queues: `QSEND`, `QRECV`, `QACK`, `QNACK`, `QCANCEL`, `QSTAT`, `QLIST`, `QPURGE`,
//! `QDELETE`, `QTEMP` (the queues themselves are [`crate::state::queues`]).
//!
//! Each command runs for an owner (see [`super::routed`]): this connection, or a client of a
//! slave that forwarded it; one for a queue our master holds is forwarded to it instead. A
//! change can answer other owners (a message for a receive waiting elsewhere, `QEMPTY` for a
//! receive that ended); lines for this connection go into its replies, in order.

use std::time::Duration;

use bytes::Bytes;
use clacks_proto::{Reply, Request};
use tokio::time::Instant;

use super::logged;
use super::routed::{answer, answer_all, error, forwarded, Ctx};
use crate::interclacks::routes::Pending;
use crate::session::{ClientError, Flow, Session};
use crate::state::queues::{valid_name, Refusal, TEMP_PREFIX};
use crate::state::State;

/// The longest receive timeout or lease, in seconds (a year).
const MAX_SECONDS: f64 = 365.0 * 86_400.0;

/// `OVERHEAD E <token> <queue>[ <id>]`, logged (within the connection's log budget) when a
/// limit refused it.
fn refuse(s: &mut Session, state: &State, ctx: Ctx, refusal: Refusal, about: &[&[u8]]) {
    let limit = matches!(
        refusal,
        Refusal::Full | Refusal::TooLarge | Refusal::TooManyQueues | Refusal::TooManyWaits
    );
    if limit && s.may_log() {
        let queue = about.first().map(|q| logged(q));
        tracing::warn!(cid = %s.cid_str(), queue = ?queue, reason = refusal.token(), "queue command refused by a limit");
    }
    let refused = if refusal == Refusal::NotOwner {
        ClientError::PermissionDenied
    } else {
        ClientError::Refused(refusal.token(), about)
    };
    error(s, state, ctx, refused);
}

/// A queue name the server can hold, else `bad_name` (and `false`).
fn named(s: &mut Session, state: &State, ctx: Ctx, queue: &[u8]) -> bool {
    if valid_name(queue) {
        return true;
    }
    refuse(s, state, ctx, Refusal::BadName, &[queue]);
    false
}

/// A timeout or lease: seconds, decimals allowed, from 0 to a year.
fn seconds(text: &[u8]) -> Option<Duration> {
    let secs: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    (secs.is_finite() && (0.0..=MAX_SECONDS).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

pub(super) fn send(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    queue: Bytes,
    value: Bytes,
) -> Flow {
    if upstream(s, state, ctx, &queue, line, None) {
        return Flow::Continue;
    }
    let mut notes = Vec::new();
    let sent = state
        .queues
        .send(&queue, &value, Instant::now(), &mut notes);
    answer_all(s, state, notes);
    if let Err(refusal) = sent {
        refuse(s, state, ctx, refusal, &[&queue]);
    }
    Flow::Continue
}

pub(super) fn recv(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    queue: Bytes,
    [timeout, lease]: [Option<Bytes>; 2],
) -> Flow {
    let read = |text: Option<Bytes>| match text {
        None => Ok(None),
        Some(t) => seconds(&t).map(Some).ok_or(t),
    };
    let (timeout, lease) = match (read(timeout), read(lease)) {
        (Ok(timeout), Ok(lease)) => (timeout, lease.unwrap_or_default()),
        (Err(bad), _) | (_, Err(bad)) => {
            refuse(s, state, ctx, Refusal::BadArgument, &[&queue, &bad]);
            return Flow::Continue;
        }
    };
    let waits_for = Some(Pending::Recv(Bytes::copy_from_slice(&queue)));
    if upstream(s, state, ctx, &queue, line, waits_for) {
        return Flow::Continue;
    }
    let mut notes = Vec::new();
    let now = Instant::now();
    let received = state
        .queues
        .recv(ctx.owner, &queue, timeout, lease, now, &mut notes);
    answer_all(s, state, notes);
    if let Err(refusal) = received {
        refuse(s, state, ctx, refusal, &[&queue]);
    }
    Flow::Continue
}

/// `QACK` (`nack` false) or `QNACK`.
pub(super) fn ack(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    [queue, id]: [Bytes; 2],
    nack: bool,
) -> Flow {
    if upstream(s, state, ctx, &queue, line, None) {
        return Flow::Continue;
    }
    let mut notes = Vec::new();
    let done = if nack {
        state
            .queues
            .nack(ctx.owner, &queue, &id, Instant::now(), &mut notes)
    } else {
        state.queues.ack(ctx.owner, &queue, &id)
    };
    answer_all(s, state, notes);
    if let Err(refusal) = done {
        refuse(s, state, ctx, refusal, &[&queue, &id]);
    }
    Flow::Continue
}

pub(super) fn cancel(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    queue: Bytes,
) -> Flow {
    if upstream(s, state, ctx, &queue, line, None) {
        return Flow::Continue;
    }
    let mut notes = Vec::new();
    state.queues.cancel(ctx.owner, &queue, &mut notes);
    answer_all(s, state, notes);
    Flow::Continue
}

pub(super) fn stat(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    queue: Bytes,
) -> Flow {
    let waits_for = Some(Pending::Stat(Bytes::copy_from_slice(&queue)));
    if named(s, state, ctx, &queue) && !upstream(s, state, ctx, &queue, line, waits_for) {
        let fields = state.queues.stat(&queue);
        answer(s, state, ctx.owner, Reply::QStats { queue, fields });
    }
    Flow::Continue
}

/// `QLIST`: the queues of the server that holds the root's queues (a slave's `Local::` queues
/// show with `QSTAT`).
pub(super) fn list(s: &mut Session, state: &mut State, ctx: Ctx, line: &Bytes) -> Flow {
    if upstream(s, state, ctx, b"", line, Some(Pending::List)) {
        return Flow::Continue;
    }
    answer(s, state, ctx.owner, Reply::QListStart);
    for (queue, fields) in state.queues.list() {
        answer(s, state, ctx.owner, Reply::Queue { queue, fields });
    }
    answer(s, state, ctx.owner, Reply::QListEnd);
    Flow::Continue
}

/// `QPURGE` (`delete` false) or `QDELETE`.
pub(super) fn purge(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    queue: Bytes,
    delete: bool,
) -> Flow {
    if !named(s, state, ctx, &queue) || upstream(s, state, ctx, &queue, line, None) {
        return Flow::Continue;
    }
    let name = logged(&queue).into_owned();
    if delete {
        let mut notes = Vec::new();
        if state.queues.delete(&queue, &mut notes) && s.may_log() {
            tracing::info!(cid = %s.cid_str(), queue = %name, "queue deleted");
        }
        answer_all(s, state, notes);
    } else {
        let purged = state.queues.purge(&queue);
        if s.may_log() {
            tracing::info!(cid = %s.cid_str(), queue = %name, purged, "queue purged");
        }
    }
    Flow::Continue
}

pub(super) fn temp(s: &mut Session, state: &mut State, ctx: Ctx, line: &Bytes) -> Flow {
    if upstream(s, state, ctx, TEMP_PREFIX, line, Some(Pending::Temp)) {
        return Flow::Continue;
    }
    match state.queues.temp(ctx.owner) {
        Ok(queue) => answer(s, state, ctx.owner, Reply::QTempName { queue }),
        Err(refusal) => refuse(s, state, ctx, refusal, &[b"QTEMP"]),
    }
    Flow::Continue
}

/// Whether the command went up to our master, which holds `queue` (or was answered
/// `queue_unavailable` for want of the link); see [`forwarded`].
fn upstream(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    queue: &[u8],
    line: &Bytes,
    waits_for: Option<Pending>,
) -> bool {
    forwarded(
        s,
        state,
        ctx,
        Refusal::Unavailable.token(),
        queue,
        line,
        waits_for,
    )
}

/// Whether `request` is a queue command.
pub(super) fn handles(request: &Request) -> bool {
    matches!(
        request,
        Request::QSend { .. }
            | Request::QRecv { .. }
            | Request::QAck { .. }
            | Request::QNack { .. }
            | Request::QCancel { .. }
            | Request::QStat { .. }
            | Request::QList
            | Request::QPurge { .. }
            | Request::QDelete { .. }
            | Request::QTemp
    )
}

/// Runs a queue command for `ctx` (see [`handles`]; other requests do nothing).
pub(super) fn run(
    s: &mut Session,
    state: &mut State,
    ctx: Ctx,
    line: &Bytes,
    request: Request,
) -> Flow {
    match request {
        Request::QSend { queue, value } => send(s, state, ctx, line, queue, value),
        Request::QRecv {
            queue,
            timeout,
            lease,
        } => recv(s, state, ctx, line, queue, [timeout, lease]),
        Request::QAck { queue, id } => ack(s, state, ctx, line, [queue, id], false),
        Request::QNack { queue, id } => ack(s, state, ctx, line, [queue, id], true),
        Request::QCancel { queue } => cancel(s, state, ctx, line, queue),
        Request::QStat { queue } => stat(s, state, ctx, line, queue),
        Request::QList => list(s, state, ctx, line),
        Request::QPurge { queue } => purge(s, state, ctx, line, queue, false),
        Request::QDelete { queue } => purge(s, state, ctx, line, queue, true),
        Request::QTemp => temp(s, state, ctx, line),
        _ => Flow::Continue,
    }
}
