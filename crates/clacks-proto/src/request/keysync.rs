//! The interclacks record requests: `KEYSYNC` (one cache record, as v36 sends it) and
//! `KEYINCREMENT` (an increment with its origin time, only between our own servers).

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, put_line, split_assign, take_word};

pub(crate) const KEYSYNC: &[u8] = b"KEYSYNC ";
pub(crate) const KEYINCREMENT: &[u8] = b"KEYINCREMENT ";

#[inline]
pub(super) fn parse(line: &Bytes) -> Option<Request> {
    let rest = after(line, KEYSYNC)?;
    let (cachetime, rest) = take_word(&rest)?;
    let (accesstime, rest) = take_word(&rest)?;
    let (mode, rest) = take_word(&rest)?;
    let (key, value) = split_assign(&rest)?;
    Some(Request::KeySync {
        cachetime,
        accesstime,
        mode,
        key,
        value,
    })
}

/// `KEYINCREMENT <cachetime> <base> <step> <result> <key>`: the key runs to the end of the line,
/// so any key an `INCREMENT` accepts fits.
#[inline]
pub(super) fn parse_increment(line: &Bytes) -> Option<Request> {
    let rest = after(line, KEYINCREMENT)?;
    let (cachetime, rest) = take_word(&rest)?;
    let (base, rest) = take_word(&rest)?;
    let (step, rest) = take_word(&rest)?;
    let (result, key) = take_word(&rest)?;
    if key.is_empty() {
        return None;
    }
    Some(Request::KeyIncrement {
        cachetime,
        base,
        step,
        result,
        key,
    })
}

#[inline]
pub(super) fn encode_increment(
    out: &mut BytesMut,
    [cachetime, base, step, result]: [&[u8]; 4],
    key: &[u8],
) {
    put_line(
        out,
        &[
            KEYINCREMENT,
            cachetime,
            b" ",
            base,
            b" ",
            step,
            b" ",
            result,
            b" ",
            key,
        ],
    );
}

#[inline]
pub(super) fn encode(
    out: &mut BytesMut,
    cachetime: &[u8],
    accesstime: &[u8],
    mode: &[u8],
    key: &[u8],
    value: &[u8],
) {
    put_line(
        out,
        &[
            KEYSYNC, cachetime, b" ", accesstime, b" ", mode, b" ", key, b"=", value,
        ],
    );
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
                "KEYSYNC 1.5 2.5 U k=v=w",
                Request::KeySync {
                    cachetime: b("1.5"),
                    accesstime: b("2.5"),
                    mode: b("U"),
                    key: b("k"),
                    value: b("v=w"),
                },
            ),
            (
                "KEYSYNC 1 2 U",
                Request::Unknown {
                    line: b("KEYSYNC 1 2 U"),
                },
            ),
            (
                "KEYINCREMENT 10.5 9 -2 40 a key=x",
                Request::KeyIncrement {
                    cachetime: b("10.5"),
                    base: b("9"),
                    step: b("-2"),
                    result: b("40"),
                    key: b("a key=x"),
                },
            ),
            (
                "KEYINCREMENT 10.5 9 -2 40 ",
                Request::Unknown {
                    line: b("KEYINCREMENT 10.5 9 -2 40 "),
                },
            ),
        ]);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&[
            "KEYSYNC 1 2 D k=REMOVED",
            "KEYSYNC 1.5 2.5 U k=v=w",
            "KEYINCREMENT 10.5 9 -2 40 a key=x",
        ]);
    }
}
