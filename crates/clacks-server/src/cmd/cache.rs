//! The cache: `STORE`, `RETRIEVE`, `REMOVE`, `INCREMENT`/`DECREMENT`, `KEYLIST`, `CLEARCACHE`.

use bytes::Bytes;
use clacks_proto::Reply;

use crate::session::{ClientError, Flow, Session};
use crate::state::State;

pub(super) fn store(
    s: &mut Session,
    state: &mut State,
    key: Bytes,
    value: Bytes,
    now: f64,
) -> Flow {
    if state.cache.store(key.clone(), value, now).is_err() {
        s.error(ClientError::OutOfMemory(&key));
    }
    Flow::Continue
}

pub(super) fn retrieve(s: &mut Session, state: &mut State, key: Bytes, now: f64) -> Flow {
    match state.cache.retrieve(&key, now) {
        Some(value) => s.reply_value(Reply::Retrieved { key, value }),
        None => s.reply(Reply::NotRetrieved { key }),
    }
    Flow::Continue
}

pub(super) fn remove(s: &mut Session, state: &mut State, key: Bytes, now: f64) -> Flow {
    if state.cache.remove(key.clone(), now).is_err() {
        s.error(ClientError::OutOfMemory(&key));
    }
    Flow::Continue
}

/// `INCREMENT` (or, with `down`, `DECREMENT`) by `step` (1 when absent).
pub(super) fn add(
    s: &mut Session,
    state: &mut State,
    key: Bytes,
    step: Option<Bytes>,
    down: bool,
    now: f64,
) -> Flow {
    if state
        .cache
        .add(key.clone(), step.as_deref(), down, now)
        .is_err()
    {
        s.error(ClientError::OutOfMemory(&key));
    }
    Flow::Continue
}

pub(super) fn keylist(s: &mut Session, state: &mut State, now: f64) -> Flow {
    Reply::KeyListStart.encode(&mut s.out);
    for key in state.cache.keys_sorted(now) {
        Reply::Key { key }.encode(&mut s.out);
    }
    Reply::KeyListEnd.encode(&mut s.out);
    Flow::Continue
}

pub(super) fn clear(state: &mut State) -> Flow {
    state.cache.clear();
    Flow::Continue
}
