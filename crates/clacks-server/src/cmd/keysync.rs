//! `KEYSYNC <cachetime> <accesstime> <mode> <key>=<value>`: a cache record from an interclacks
//! peer, merged so that per key the newest write wins; passed on to the other links only when it
//! changed something here.

use bytes::Bytes;
use clacks_store::number::numify;
use clacks_store::Entry;

use crate::mutation::{publish, Mutation};
use crate::session::{ClientError, Flow, Session};
use crate::state::State;

pub(super) fn keysync(
    s: &mut Session,
    state: &mut State,
    [cachetime, accesstime, mode]: [Bytes; 3],
    key: Bytes,
    value: Bytes,
    line: &Bytes,
    now: f64,
) -> Flow {
    s.ping();
    let ctime = numify(&cachetime).to_f64() + s.time_offset;
    let atime = numify(&accesstime).to_f64();
    let atime = if atime != 0.0 {
        atime + s.time_offset
    } else {
        0.0
    };
    let deleted = &mode[..] == b"D";
    let data = if deleted { Bytes::new() } else { value };
    let remote = Entry::new(data, ctime, atime, deleted);
    if let Some(seen) = s.link.sync_seen.as_mut() {
        seen.insert(Bytes::copy_from_slice(&key), remote.clone());
    }
    match state.cache.merge(key.clone(), remote, now) {
        Ok(true) => publish(state, s.id, Mutation::Command(line)),
        Ok(false) => {}
        Err(_) => s.error(ClientError::OutOfMemory(&key)),
    }
    Flow::Continue
}
