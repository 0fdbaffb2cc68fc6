//! The KEYSYNC request: one cache record sent over an interclacks link.

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, put_line, split_assign, take_word};

pub(crate) const KEYSYNC: &[u8] = b"KEYSYNC ";

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
        ]);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&["KEYSYNC 1 2 D k=REMOVED", "KEYSYNC 1.5 2.5 U k=v=w"]);
    }
}
