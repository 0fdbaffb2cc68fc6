//! The cache: `STORE`, `RETRIEVE`, `REMOVE`, `INCREMENT`/`DECREMENT`, `KEYLIST`, `CLEARCACHE`.

use bytes::Bytes;
use clacks_proto::Reply;
use clacks_store::Increment;

use crate::mutation::{keysync_carries, publish, Mutation};
use crate::session::{ClientError, Flow, Session};
use crate::state::{State, NO_CONN};

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

/// Hands the record a command wrote to the peers. A write from a v36 peer, which sends its
/// writes without their time, goes back to that peer too, with the time it got here: v36 takes
/// it if it is newer than its own copy, so both sides settle on one time and one value.
pub(super) fn written(s: &Session, state: &State, key: &[u8]) {
    let memcached = false;
    // A write a v36 peer sent as a command goes back to it as a `KEYSYNC` with the time it got
    // here, so both settle on one value. Not for a key only a `STORE`/`REMOVE` can carry: v36
    // would pass that command on to its other peers, and the write would circle for ever.
    let echo = s.link.is_link() && !s.link.origin_times && keysync_carries(key, false);
    let origin = if echo { NO_CONN } else { s.id };
    publish(state, origin, Mutation::Record { key, memcached });
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
                time: added.time,
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

/// `CLEARCACHE`: forgets every record, or, from a `clacksd` peer, those written up to the time
/// the clear was made at its origin. Peers get `CLEARCACHE <time>` with that time, or for a clear
/// made here, the later of now and the newest record it forgot (v36 ignores the time and clears
/// everything, as it always does).
pub(super) fn clear(s: &Session, state: &mut State, time: Option<Bytes>, now: f64) -> Flow {
    // A time from one of our peers (v36 and clients send none; an unreadable one clears all).
    let until = match time {
        Some(time) if s.link.is_link() && s.link.origin_times => {
            s.peer_time(&time).filter(|t| *t != 0.0)
        }
        _ => None,
    };
    // A clear that was made here already goes no further.
    let Some(time) = state.cache.clear(until, now) else {
        return Flow::Continue;
    };
    publish(state, s.id, Mutation::Clear { time });
    Flow::Continue
}
