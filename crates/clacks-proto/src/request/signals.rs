//! Signal requests: NOTIFY, SET, SETANDSTORE, LISTEN, UNLISTEN.

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, put_line, split_assign};

pub(crate) const NOTIFY: &[u8] = b"NOTIFY ";
pub(crate) const SET: &[u8] = b"SET ";
pub(crate) const SETANDSTORE: &[u8] = b"SETANDSTORE ";
pub(crate) const LISTEN: &[u8] = b"LISTEN ";
pub(crate) const UNLISTEN: &[u8] = b"UNLISTEN ";

#[inline]
pub(super) fn parse_notify(line: &Bytes) -> Option<Request> {
    let name = after(line, NOTIFY)?;
    Some(Request::Notify { name })
}

#[inline]
pub(super) fn parse_set(line: &Bytes) -> Option<Request> {
    let (name, value) = split_assign(&after(line, SET)?)?;
    Some(Request::Set { name, value })
}

#[inline]
pub(super) fn parse_set_and_store(line: &Bytes) -> Option<Request> {
    let (name, value) = split_assign(&after(line, SETANDSTORE)?)?;
    Some(Request::SetAndStore { name, value })
}

#[inline]
pub(super) fn parse_listen(line: &Bytes) -> Option<Request> {
    let name = after(line, LISTEN)?;
    Some(Request::Listen { name })
}

#[inline]
pub(super) fn parse_unlisten(line: &Bytes) -> Option<Request> {
    let name = after(line, UNLISTEN)?;
    Some(Request::Unlisten { name })
}

#[inline]
pub(crate) fn encode_notify(out: &mut BytesMut, name: &[u8]) {
    put_line(out, &[NOTIFY, name]);
}

#[inline]
pub(crate) fn encode_set(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    put_line(out, &[SET, name, b"=", value]);
}

#[inline]
pub(super) fn encode_set_and_store(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    put_line(out, &[SETANDSTORE, name, b"=", value]);
}

#[inline]
pub(super) fn encode_listen(out: &mut BytesMut, name: &[u8]) {
    put_line(out, &[LISTEN, name]);
}

#[inline]
pub(super) fn encode_unlisten(out: &mut BytesMut, name: &[u8]) {
    put_line(out, &[UNLISTEN, name]);
}

#[cfg(test)]
mod tests {
    use super::super::{assert_parses, assert_round_trips};
    use super::*;
    use crate::words::b;

    #[test]
    fn table() {
        assert_parses(vec![
            ("NOTIFY ev", Request::Notify { name: b("ev") }),
            ("NOTIFY ", Request::Notify { name: b("") }),
            (
                "SET a=b=c",
                Request::Set {
                    name: b("a"),
                    value: b("b=c"),
                },
            ),
            (
                "SET a=",
                Request::Set {
                    name: b("a"),
                    value: b(""),
                },
            ),
            (
                "SET =x=y",
                Request::Set {
                    name: b("=x"),
                    value: b("y"),
                },
            ),
            ("SET x", Request::Unknown { line: b("SET x") }),
            (
                "SETANDSTORE k=1",
                Request::SetAndStore {
                    name: b("k"),
                    value: b("1"),
                },
            ),
            ("LISTEN ", Request::Listen { name: b("") }),
            ("UNLISTEN x", Request::Unlisten { name: b("x") }),
        ]);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&[
            "SET a=b",
            "SET =x=y",
            "SETANDSTORE k=1",
            "NOTIFY ",
            "LISTEN ev",
            "UNLISTEN x",
        ]);
    }
}
