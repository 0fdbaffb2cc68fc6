//! Changes from interclacks peers, with the times they were made at their origin:
//! `KEYSYNC <cachetime> <accesstime> <mode> <key>=<value>` (a cache record, merged so that per key
//! the newest write wins) and `KEYINCREMENT <cachetime> <base> <step> <result> <key>` (an
//! increment, from our own servers only). Each is passed on to the other links only when it
//! changed something here, with its times in our clock.

use bytes::Bytes;
use clacks_store::number::numify;
use clacks_store::{Entry, Increment, Merged};

use super::logged;
use crate::mutation::{publish, Mutation};
use crate::session::{ClientError, Flow, Session};
use crate::state::State;
use crate::stats::Stats;

pub(super) fn keysync(
    s: &mut Session,
    state: &mut State,
    [cachetime, accesstime, mode]: [Bytes; 3],
    key: Bytes,
    value: Bytes,
    now: f64,
) -> Flow {
    s.ping();
    let (Some(ctime), Some(atime)) = (s.peer_time(&cachetime), s.peer_time(&accesstime)) else {
        return bad_time(s, &key);
    };
    let deleted = &mode[..] == b"D";
    let data = if deleted { Bytes::new() } else { value };
    let remote = Entry::new(data, ctime, atime, deleted);
    if let Some(seen) = s.link.sync_seen.as_mut() {
        seen.insert(Bytes::copy_from_slice(&key), remote.clone());
    }
    let slack = crate::interclacks::clock::slack(s);
    match state.cache.merge(key.clone(), remote, slack, now) {
        Ok(true) => {
            let memcached = false;
            publish(
                state,
                s.id,
                Mutation::Record {
                    key: &key,
                    memcached,
                },
            );
        }
        Ok(false) => {}
        Err(_) => s.error(ClientError::OutOfMemory(&key)),
    }
    Flow::Continue
}

pub(super) fn key_increment(
    s: &mut Session,
    state: &mut State,
    [cachetime, base, step, result]: [Bytes; 4],
    key: Bytes,
    now: f64,
) -> Flow {
    s.ping();
    let (Some(time), Some(base)) = (s.peer_time(&cachetime), s.peer_time(&base)) else {
        return bad_time(s, &key);
    };
    let inc = Increment {
        time,
        base,
        step: numify(&step),
        result,
    };
    match state.cache.merge_increment(key.clone(), &inc, now) {
        Ok(Merged::Unchanged) => {}
        Ok(merged) => {
            let taken = merged == Merged::Taken;
            publish(
                state,
                s.id,
                Mutation::Increment {
                    key: &key,
                    inc: &inc,
                    taken,
                },
            );
        }
        Err(_) => s.error(ClientError::OutOfMemory(&key)),
    }
    Flow::Continue
}

/// A change whose time no clock shows (not finite, or thousands of years off): dropped, and
/// logged, as no record can be ordered by it.
fn bad_time(s: &mut Session, key: &[u8]) -> Flow {
    Stats::bump(&s.shared.stats.link_bad_times);
    if s.may_log() {
        tracing::warn!(cid = %s.cid_str(), key = %logged(key), "interclacks change with an unusable time dropped");
    }
    Flow::Continue
}
