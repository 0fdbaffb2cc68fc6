//! Signals: `NOTIFY`, `SET`, `SETANDSTORE` (a `SET` that is also stored), `LISTEN`, `UNLISTEN`.

use bytes::Bytes;
use clacks_proto::{Reply, Request};

use crate::mutation::{publish, Mutation};
use crate::session::{ClientError, Flow, Session};
use crate::state::State;

pub(super) fn notify(s: &mut Session, state: &mut State, name: Bytes) -> Flow {
    let line = Reply::Notify { name: name.clone() }.to_bytes();
    state.subs.fanout(&state.conns, s.id, &name, &line);
    Flow::Continue
}

pub(super) fn set(s: &mut Session, state: &mut State, name: Bytes, value: Bytes) -> Flow {
    let line = Reply::Set {
        name: name.clone(),
        value,
    }
    .to_bytes();
    state.subs.fanout(&state.conns, s.id, &name, &line);
    Flow::Continue
}

pub(super) fn set_and_store(
    s: &mut Session,
    state: &mut State,
    name: Bytes,
    value: Bytes,
    now: f64,
) -> Flow {
    let line = Reply::Set {
        name: name.clone(),
        value: value.clone(),
    }
    .to_bytes();
    // Refused for memory: neither stored nor signalled (nor replicated). Peers get the record
    // with its time, then the signal.
    match state.cache.store(name.clone(), value.clone(), now) {
        Ok(()) => {
            state.subs.fanout(&state.conns, s.id, &name, &line);
            super::cache::written(s, state, &name);
            if state.links.any_except(s.id) {
                let set = Request::Set { name, value }.to_bytes();
                publish(state, s.id, Mutation::Line(set));
            }
        }
        Err(_) => s.error(ClientError::OutOfMemory(&name)),
    }
    Flow::Continue
}

pub(super) fn listen(s: &mut Session, state: &mut State, name: &Bytes) -> Flow {
    state.subs.subscribe(&state.conns, s.id, name);
    Flow::Continue
}

pub(super) fn unlisten(s: &mut Session, state: &mut State, name: &Bytes) -> Flow {
    state.subs.unsubscribe(s.id, name);
    Flow::Continue
}
