//! The one way a change leaves this server.
//!
//! Every change to the cache (and every signal) that other servers must hear about, whichever
//! protocol or peer it came from, is described once as a [`Mutation`] and handed to [`publish`],
//! which feeds the journal, the interclacks peers and the monitors. (The persistence save needs
//! no feed: the cache counts its own changes, including those of expiry, in its generation,
//! which the save loop watches. The work queues journal their own changes.)
//!
//! A cache change travels with the time it was made at its origin, so every server orders it by
//! that time (see `docs/interclacks.md`): a written record as `KEYSYNC`, an increment as
//! `KEYINCREMENT` to our own servers and as `INCREMENT` to v36 peers, which cannot read it.

use bytes::{Bytes, BytesMut};
use clacks_proto::Request;
use clacks_store::number::format_float;
use clacks_store::{Entry, Increment};

use crate::state::{ConnId, State};

/// A change that ran here.
pub(crate) enum Mutation<'a> {
    /// A signal: the line as it was received, run again by each peer. Monitors saw it already,
    /// as every command line.
    Command(&'a Bytes),
    /// A line for every peer, encoded (with its CR LF): the signal of a `SETANDSTORE`.
    Line(Bytes),
    /// `CLEARCACHE` up to `time`: peers get it with its time.
    Clear { time: f64 },
    /// A record changed in a way only this server keeps (memcached `touch`): journaled only.
    Touched { key: &'a [u8] },
    /// memcached `flush_all` (local to this server): journaled only.
    Flushed { at: f64, now: f64 },
    /// The record of `key` was written (a value or a tombstone): peers get it with its times.
    /// Monitors see it (as `DEBUG memcached=STORE …`/`REMOVE …`) when `memcached` made it.
    Record { key: &'a [u8], memcached: bool },
    /// `key` was incremented: here by a command, or by a peer's increment (`taken`: its result
    /// replaced the value here, so v36 peers get the record rather than the step).
    Increment {
        key: &'a [u8],
        inc: &'a Increment,
        taken: bool,
    },
}

/// Monitors see the memcached listener's changes from this source: `DEBUG memcached=STORE …`.
const MEMCACHED_SOURCE: &[u8] = b"memcached";

/// Hands a change that came from connection `origin` to everyone who follows changes: every
/// interclacks link except `origin`, and the monitors (for changes not made by a Clacks command).
pub(crate) fn publish(state: &State, origin: ConnId, mutation: Mutation<'_>) {
    if let Some(journal) = &state.journal {
        match &mutation {
            Mutation::Command(_) | Mutation::Line(_) => {}
            Mutation::Record { key, .. }
            | Mutation::Increment { key, .. }
            | Mutation::Touched { key } => {
                if let Some(entry) = state.cache.get(key) {
                    journal.write(key, entry);
                }
            }
            Mutation::Clear { time } => journal.clear(*time),
            Mutation::Flushed { at, now } => journal.flush(*at, *now),
        }
    }
    let monitors = matches!(
        mutation,
        Mutation::Record {
            memcached: true,
            ..
        }
    ) && state.conns.has_monitors();
    let to_links = state.links.any_except(origin);
    if !to_links && !monitors {
        return;
    }
    match mutation {
        Mutation::Command(line) => publish(state, origin, Mutation::Line(with_crlf(line))),
        Mutation::Line(line) => state
            .links
            .send(&state.conns, origin, |_| Some(line.clone())),
        Mutation::Clear { time } => {
            let time = Some(Bytes::from(format_float(time)));
            let line = Request::ClearCache { time }.to_bytes();
            publish(state, origin, Mutation::Line(line));
        }
        Mutation::Touched { .. } | Mutation::Flushed { .. } => {}
        Mutation::Record { key, .. } => {
            let Some(entry) = state.cache.get(key) else {
                return;
            };
            if monitors {
                let line = plain_write(key, entry);
                let text = &line[..line.len() - clacks_proto::CRLF.len()];
                state.conns.debug(MEMCACHED_SOURCE, text);
            }
            if !to_links {
                return;
            }
            let ours = record_line(key, entry, true);
            let v36 = if key.contains(&b' ') {
                record_line(key, entry, false)
            } else {
                ours.clone()
            };
            state.links.send(&state.conns, origin, |origin_times| {
                Some(if origin_times { &ours } else { &v36 }.clone())
            });
        }
        Mutation::Increment { key, inc, taken } => {
            let ours = increment_line(key, inc);
            let v36 = if taken {
                state
                    .cache
                    .get(key)
                    .map(|entry| record_line(key, entry, false))
            } else {
                Some(step_line(key, inc))
            };
            state.links.send(&state.conns, origin, |origin_times| {
                if origin_times {
                    Some(ours.clone())
                } else {
                    v36.clone()
                }
            });
        }
    }
}

/// A record as a `KEYSYNC` with its times, or, for a key that a `KEYSYNC` cannot carry, as the
/// `STORE`/`REMOVE` that wrote it: an empty key, one with `=`, and for a v36 peer (not
/// `origin_times`) one with a space, which v36 does not parse.
fn record_line(key: &[u8], e: &Entry, origin_times: bool) -> Bytes {
    if !keysync_carries(key, origin_times) {
        return plain_write(key, e);
    }
    let mut out = BytesMut::new();
    keysync(Bytes::copy_from_slice(key), e).encode(&mut out);
    out.freeze()
}

/// Whether a `KEYSYNC` can carry `key` to a peer (`origin_times`: one of ours; else v36).
pub(crate) fn keysync_carries(key: &[u8], origin_times: bool) -> bool {
    let carried = |&b: &u8| b != b'=' && (origin_times || b != b' ');
    !key.is_empty() && key.iter().all(carried)
}

/// The `KEYSYNC` request for a record (the v36 form: `U` and the access time for a value, `D`,
/// `0` and `REMOVED` for a tombstone).
pub(crate) fn keysync(key: Bytes, e: &Entry) -> Request {
    let (accesstime, mode, value) = if e.deleted {
        (
            Bytes::from_static(b"0"),
            b"D",
            Bytes::from_static(b"REMOVED"),
        )
    } else {
        (
            Bytes::from(format_float(e.accesstime)),
            b"U",
            e.data.clone(),
        )
    };
    Request::KeySync {
        cachetime: Bytes::from(format_float(e.cachetime)),
        accesstime,
        mode: Bytes::from_static(mode),
        key,
        value,
    }
}

/// `STORE key=value` or `REMOVE key` for a record.
fn plain_write(key: &[u8], e: &Entry) -> Bytes {
    let key = Bytes::copy_from_slice(key);
    let request = if e.deleted {
        Request::Remove { key }
    } else {
        Request::Store {
            key,
            value: e.data.clone(),
        }
    };
    request.to_bytes()
}

/// `KEYINCREMENT` for our own peers.
fn increment_line(key: &[u8], inc: &Increment) -> Bytes {
    Request::KeyIncrement {
        cachetime: Bytes::from(format_float(inc.time)),
        base: Bytes::from(format_float(inc.base)),
        step: Bytes::from(inc.step.to_perl_string()),
        result: inc.result.clone(),
        key: Bytes::copy_from_slice(key),
    }
    .to_bytes()
}

/// `INCREMENT key=step` for v36 peers (a decrement as a negative step; v36 splits the step off
/// at the last `=`, so any key survives).
fn step_line(key: &[u8], inc: &Increment) -> Bytes {
    Request::Increment {
        key: Bytes::copy_from_slice(key),
        step: Some(Bytes::from(inc.step.to_perl_string())),
    }
    .to_bytes()
}

/// A line without its CR LF, with one.
pub(crate) fn with_crlf(line: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(line.len() + 2);
    out.extend_from_slice(line);
    out.extend_from_slice(clacks_proto::CRLF);
    out.freeze()
}
