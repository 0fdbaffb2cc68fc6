//! The cache: `STORE`, `RETRIEVE`, `REMOVE`, `INCREMENT`/`DECREMENT`, `KEYLIST`, `CLEARCACHE`.

use bytes::Bytes;
use clacks_proto::Reply;
use clacks_store::Increment;

use crate::mutation::{publish, Mutation};
use crate::session::{ClientError, Flow, Session};
use crate::state::State;

pub(super) fn store(
    s: &mut Session,
    state: &mut State,
    key: Bytes,
    value: Bytes,
    now: f64,
) -> Flow {
    match state.cache.store(key.clone(), value, now) {
        Ok(()) => written(s, state, &key),
        Err(_) => s.error(ClientError::OutOfMemory(&key)),
    }
    Flow::Continue
}

/// Hands the record a command wrote to the peers.
pub(super) fn written(s: &Session, state: &State, key: &[u8]) {
    let memcached = false;
    publish(state, s.id, Mutation::Record { key, memcached });
}

pub(super) fn retrieve(s: &mut Session, state: &mut State, key: Bytes, now: f64) -> Flow {
    match state.cache.retrieve(&key, now) {
        Some(value) => s.reply_value(Reply::Retrieved { key, value }),
        None => s.reply(Reply::NotRetrieved { key }),
    }
    Flow::Continue
}

pub(super) fn remove(s: &mut Session, state: &mut State, key: Bytes, now: f64) -> Flow {
    match state.cache.remove(key.clone(), now) {
        Ok(()) => written(s, state, &key),
        Err(_) => s.error(ClientError::OutOfMemory(&key)),
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
    match state.cache.add(key.clone(), step.as_deref(), down, now) {
        Ok(added) => {
            let inc = Increment {
                time: now,
                base: added.base,
                step: added.step,
                result: added.value,
            };
            let (key, taken) = (&key[..], false);
            publish(
                state,
                s.id,
                Mutation::Increment {
                    key,
                    inc: &inc,
                    taken,
                },
            );
        }
        Err(_) => s.error(ClientError::OutOfMemory(&key)),
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
