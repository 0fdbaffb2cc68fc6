//! Cache requests: STORE, RETRIEVE, REMOVE, INCREMENT, DECREMENT, KEYLIST, CLEARCACHE.

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, nonempty, put_line, split_assign, take_word, word};

pub(crate) const STORE: &[u8] = b"STORE ";
pub(crate) const RETRIEVE: &[u8] = b"RETRIEVE ";
pub(crate) const REMOVE: &[u8] = b"REMOVE ";
pub(crate) const INCREMENT: &[u8] = b"INCREMENT ";
pub(crate) const DECREMENT: &[u8] = b"DECREMENT ";
pub(crate) const KEYLIST: &[u8] = b"KEYLIST";
pub(crate) const CLEARCACHE: &[u8] = b"CLEARCACHE";

#[inline]
pub(super) fn parse_store(line: &Bytes) -> Option<Request> {
    let (key, value) = split_assign(&after(line, STORE)?)?;
    Some(Request::Store { key, value })
}

#[inline]
pub(super) fn parse_retrieve(line: &Bytes) -> Option<Request> {
    let key = nonempty(after(line, RETRIEVE)?)?;
    Some(Request::Retrieve { key })
}

#[inline]
pub(super) fn parse_remove(line: &Bytes) -> Option<Request> {
    let key = nonempty(after(line, REMOVE)?)?;
    Some(Request::Remove { key })
}

#[inline]
pub(super) fn parse_increment(line: &Bytes) -> Option<Request> {
    let (key, step) = split_step(nonempty(after(line, INCREMENT)?)?);
    Some(Request::Increment { key, step })
}

#[inline]
pub(super) fn parse_decrement(line: &Bytes) -> Option<Request> {
    let (key, step) = split_step(nonempty(after(line, DECREMENT)?)?);
    Some(Request::Decrement { key, step })
}

#[inline]
pub(super) fn parse_key_list(line: &Bytes) -> Option<Request> {
    word(line, KEYLIST, || Request::KeyList)
}

/// `CLEARCACHE` (anything after it ignored, as v36 does), or `CLEARCACHE <time>` from a
/// `clacksd` peer: the first word after a space is kept as the time.
#[inline]
pub(super) fn parse_clear_cache(line: &Bytes) -> Option<Request> {
    word(line, CLEARCACHE, || Request::ClearCache {
        time: after(line, b"CLEARCACHE ")
            .and_then(|rest| take_word(&rest).map_or(Some(rest), |(w, _)| Some(w)))
            .filter(|w| !w.is_empty()),
    })
}

#[inline]
pub(super) fn encode_clear_cache(out: &mut BytesMut, time: Option<&Bytes>) {
    match time {
        Some(time) => put_line(out, &[CLEARCACHE, b" ", time]),
        None => put_line(out, &[CLEARCACHE]),
    }
}

/// Splits `key=step` at the last `=` with a byte on each side (`(.+)\=(.+)`), or takes all as key.
fn split_step(rest: Bytes) -> (Bytes, Option<Bytes>) {
    if rest.len() >= 3 {
        if let Some(idx) = rest[1..rest.len() - 1].iter().rposition(|&b| b == b'=') {
            let idx = idx + 1;
            return (rest.slice(..idx), Some(rest.slice(idx + 1..)));
        }
    }
    (rest, None)
}

#[inline]
pub(super) fn encode_store(out: &mut BytesMut, key: &[u8], value: &[u8]) {
    put_line(out, &[STORE, key, b"=", value]);
}

#[inline]
pub(super) fn encode_retrieve(out: &mut BytesMut, key: &[u8]) {
    put_line(out, &[RETRIEVE, key]);
}

#[inline]
pub(super) fn encode_remove(out: &mut BytesMut, key: &[u8]) {
    put_line(out, &[REMOVE, key]);
}

/// `INCREMENT`/`DECREMENT` (`verb`) of `key`, with its step if any.
#[inline]
pub(super) fn encode_step(out: &mut BytesMut, verb: &[u8], key: &[u8], step: Option<&Bytes>) {
    match step {
        Some(step) => put_line(out, &[verb, key, b"=", step]),
        None => put_line(out, &[verb, key]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_parses, assert_round_trips};
    use super::*;
    use crate::words::b;

    #[test]
    fn table() {
        assert_parses(vec![
            (
                "STORE k=v v",
                Request::Store {
                    key: b("k"),
                    value: b("v v"),
                },
            ),
            (
                "STORE noequals",
                Request::Unknown {
                    line: b("STORE noequals"),
                },
            ),
            ("RETRIEVE a b", Request::Retrieve { key: b("a b") }),
            (
                "RETRIEVE",
                Request::Unknown {
                    line: b("RETRIEVE"),
                },
            ),
            (
                "RETRIEVE ",
                Request::Unknown {
                    line: b("RETRIEVE "),
                },
            ),
            (
                "retrieve x",
                Request::Unknown {
                    line: b("retrieve x"),
                },
            ),
            ("REMOVE k", Request::Remove { key: b("k") }),
            (
                "INCREMENT k",
                Request::Increment {
                    key: b("k"),
                    step: None,
                },
            ),
            (
                "INCREMENT k=5",
                Request::Increment {
                    key: b("k"),
                    step: Some(b("5")),
                },
            ),
            (
                "INCREMENT a=",
                Request::Increment {
                    key: b("a="),
                    step: None,
                },
            ),
            (
                "INCREMENT a=b=c",
                Request::Increment {
                    key: b("a=b"),
                    step: Some(b("c")),
                },
            ),
            (
                "INCREMENT a=b=",
                Request::Increment {
                    key: b("a"),
                    step: Some(b("b=")),
                },
            ),
            (
                "INCREMENT =5",
                Request::Increment {
                    key: b("=5"),
                    step: None,
                },
            ),
            (
                "DECREMENT k=2",
                Request::Decrement {
                    key: b("k"),
                    step: Some(b("2")),
                },
            ),
            ("KEYLISTJUNK", Request::KeyList),
            ("CLEARCACHE", Request::ClearCache { time: None }),
            ("CLEARCACHEJUNK", Request::ClearCache { time: None }),
            (
                "CLEARCACHE 17.5 more",
                Request::ClearCache {
                    time: Some(b("17.5")),
                },
            ),
        ]);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&[
            "INCREMENT k=5",
            "INCREMENT k",
            "DECREMENT k=2",
            "STORE k=v v",
            "RETRIEVE a b",
            "REMOVE k",
            "CLEARCACHE",
            "CLEARCACHE 17.5",
        ]);
    }
}
