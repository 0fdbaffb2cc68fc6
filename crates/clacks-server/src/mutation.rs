//! The one way a change leaves this server.
//!
//! Every change to the cache (and every signal) that other servers must hear about, whichever
//! protocol or peer it came from, is described once as a [`Mutation`] and handed to [`publish`],
//! which feeds the interclacks peers and the monitors. (Persistence needs no feed: the cache counts
//! its own changes, including those of expiry, in its generation, which the save loop watches.)

use bytes::{Bytes, BytesMut};
use clacks_proto::Request;

use crate::interclacks::{replicate, with_crlf};
use crate::state::{ConnId, State};

/// A change that ran here.
pub(crate) enum Mutation<'a> {
    /// A Clacks command line (a signal or a cache write), passed on exactly as it was received:
    /// each peer runs it again. Monitors saw it already, as every command line.
    Command(&'a Bytes),
    /// A value now stored under a key (memcached writes, sent as `STORE`).
    Stored { key: &'a [u8], value: Bytes },
    /// A key removed (memcached writes, sent as `REMOVE`).
    Removed { key: &'a [u8] },
}

/// Monitors see the memcached listener's changes from this source: `DEBUG memcached=STORE …`.
const MEMCACHED_SOURCE: &[u8] = b"memcached";

/// Hands a change that came from connection `origin` to everyone who follows changes: every
/// interclacks link except `origin`, and the monitors (for changes not made by a Clacks command).
pub(crate) fn publish(state: &State, origin: ConnId, mutation: Mutation<'_>) {
    let to_links = state.links.any_except(origin);
    let (key, value) = match mutation {
        Mutation::Command(line) => {
            if to_links {
                replicate(state, origin, &with_crlf(line));
            }
            return;
        }
        Mutation::Stored { key, value } => (key, Some(value)),
        Mutation::Removed { key } => (key, None),
    };
    if !to_links && !state.conns.has_monitors() {
        return;
    }
    let key = Bytes::copy_from_slice(key);
    let request = match value {
        Some(value) => Request::Store { key, value },
        None => Request::Remove { key },
    };
    let mut line = BytesMut::new();
    request.encode(&mut line);
    let line = line.freeze();
    if state.conns.has_monitors() {
        let text = &line[..line.len() - clacks_proto::CRLF.len()];
        state.conns.debug(MEMCACHED_SOURCE, text);
    }
    if to_links {
        replicate(state, origin, &line);
    }
}
