//! Work queues: `QSEND`, `QRECV`, `QACK`, `QNACK`, `QCANCEL`, `QSTAT`, `QLIST`, `QPURGE`,
//! `QDELETE`, `QTEMP` (the queues themselves are [`crate::state::queues`]).
//!
//! A change can answer other connections (a message for a receive waiting elsewhere, `QEMPTY`
//! for a receive that ended): those lines go to their outboxes; lines for this connection go
//! into its replies, in order.

use std::time::Duration;

use bytes::Bytes;
use clacks_proto::Reply;
use tokio::time::Instant;

use crate::session::{ClientError, Flow, Session};
use crate::state::queues::{valid_name, Note, Refusal};
use crate::state::State;

/// The longest receive timeout or lease, in seconds (a year).
const MAX_SECONDS: f64 = 365.0 * 86_400.0;

/// Sends the lines a queue change caused.
fn answer(s: &mut Session, state: &State, notes: Vec<Note>) {
    for (conn, reply) in notes {
        if conn == s.id {
            s.reply(reply);
        } else {
            state.conns.deliver(conn, &reply.to_bytes());
        }
    }
}

/// `OVERHEAD E <token> <queue>[ <id>]`, logged (within the connection's log budget) when a
/// limit refused it.
fn refused(s: &mut Session, refusal: Refusal, queue: &[u8], id: Option<&[u8]>) {
    let limit = matches!(
        refusal,
        Refusal::Full | Refusal::TooLarge | Refusal::TooManyQueues | Refusal::TooManyWaits
    );
    if limit && s.may_log() {
        tracing::warn!(
            cid = %s.cid_str(),
            queue = %String::from_utf8_lossy(queue),
            reason = refusal.token(),
            "queue command refused by a limit"
        );
    }
    match (refusal, id) {
        (Refusal::NotOwner, _) => s.error(ClientError::PermissionDenied),
        (_, Some(id)) => s.error(ClientError::Refused(refusal.token(), &[queue, id])),
        (_, None) => s.error(ClientError::Refused(refusal.token(), &[queue])),
    }
}

/// A timeout or lease: seconds, decimals allowed, from 0 to a year.
fn seconds(text: &[u8]) -> Option<Duration> {
    let secs: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    (secs.is_finite() && (0.0..=MAX_SECONDS).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// A queue name the server can hold, else `bad_name` (and `None`).
fn named(s: &mut Session, queue: &[u8]) -> Option<()> {
    if valid_name(queue) {
        return Some(());
    }
    refused(s, Refusal::BadName, queue, None);
    None
}

pub(super) fn send(s: &mut Session, state: &mut State, queue: Bytes, value: Bytes) -> Flow {
    let mut notes = Vec::new();
    let sent = state.queues.send(&queue, value, Instant::now(), &mut notes);
    answer(s, state, notes);
    if let Err(refusal) = sent {
        refused(s, refusal, &queue, None);
    }
    Flow::Continue
}

pub(super) fn recv(
    s: &mut Session,
    state: &mut State,
    queue: Bytes,
    timeout: Option<Bytes>,
    lease: Option<Bytes>,
) -> Flow {
    let read = |text: Option<Bytes>| match text {
        None => Ok(None),
        Some(t) => seconds(&t).map(Some).ok_or(t),
    };
    let (timeout, lease) = match (read(timeout), read(lease)) {
        (Ok(timeout), Ok(lease)) => (timeout, lease.unwrap_or_default()),
        (Err(bad), _) | (_, Err(bad)) => {
            s.error(ClientError::Refused("bad_argument", &[&queue, &bad]));
            return Flow::Continue;
        }
    };
    let mut notes = Vec::new();
    let now = Instant::now();
    let received = state
        .queues
        .recv(s.id, &queue, timeout, lease, now, &mut notes);
    answer(s, state, notes);
    if let Err(refusal) = received {
        refused(s, refusal, &queue, None);
    }
    Flow::Continue
}

pub(super) fn ack(s: &mut Session, state: &mut State, queue: Bytes, id: Bytes) -> Flow {
    if let Err(refusal) = state.queues.ack(s.id, &queue, &id) {
        refused(s, refusal, &queue, Some(&id));
    }
    Flow::Continue
}

pub(super) fn nack(s: &mut Session, state: &mut State, queue: Bytes, id: Bytes) -> Flow {
    let mut notes = Vec::new();
    let given_back = state
        .queues
        .nack(s.id, &queue, &id, Instant::now(), &mut notes);
    answer(s, state, notes);
    if let Err(refusal) = given_back {
        refused(s, refusal, &queue, Some(&id));
    }
    Flow::Continue
}

pub(super) fn cancel(s: &mut Session, state: &mut State, queue: Bytes) -> Flow {
    let mut notes = Vec::new();
    state.queues.cancel(s.id, &queue, &mut notes);
    answer(s, state, notes);
    Flow::Continue
}

pub(super) fn stat(s: &mut Session, state: &mut State, queue: Bytes) -> Flow {
    if named(s, &queue).is_some() {
        let fields = state.queues.stat(&queue);
        s.reply(Reply::QStats { queue, fields });
    }
    Flow::Continue
}

pub(super) fn list(s: &mut Session, state: &mut State) -> Flow {
    s.reply(Reply::QListStart);
    for (queue, fields) in state.queues.list() {
        s.reply(Reply::Queue { queue, fields });
    }
    s.reply(Reply::QListEnd);
    Flow::Continue
}

pub(super) fn purge(s: &mut Session, state: &mut State, queue: Bytes) -> Flow {
    if named(s, &queue).is_some() {
        let purged = state.queues.purge(&queue);
        tracing::info!(cid = %s.cid_str(), queue = %String::from_utf8_lossy(&queue), purged, "queue purged");
    }
    Flow::Continue
}

pub(super) fn delete(s: &mut Session, state: &mut State, queue: Bytes) -> Flow {
    if named(s, &queue).is_some() {
        let mut notes = Vec::new();
        if state.queues.delete(&queue, &mut notes) {
            tracing::info!(cid = %s.cid_str(), queue = %String::from_utf8_lossy(&queue), "queue deleted");
        }
        answer(s, state, notes);
    }
    Flow::Continue
}

pub(super) fn temp(s: &mut Session, state: &mut State) -> Flow {
    match state.queues.temp(s.id) {
        Ok(queue) => s.reply(Reply::QTempName { queue }),
        Err(refusal) => refused(s, refusal, b"QTEMP", None),
    }
    Flow::Continue
}
