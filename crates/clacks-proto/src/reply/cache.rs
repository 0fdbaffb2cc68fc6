//! Cache replies: RETRIEVED, NOTRETRIEVED and the KEYLIST list (KEYLISTSTART, KEY, KEYLISTEND).

use bytes::{BufMut, Bytes, BytesMut};

use super::Reply;
use crate::words::{after, exact, put_line, split_eq};

pub(super) const RETRIEVED: &[u8] = b"RETRIEVED ";
pub(super) const NOTRETRIEVED: &[u8] = b"NOTRETRIEVED ";
pub(super) const KEYLISTSTART: &[u8] = b"KEYLISTSTART";
pub(super) const KEY: &[u8] = b"KEY ";
pub(super) const KEYLISTEND: &[u8] = b"KEYLISTEND";

#[inline]
pub(super) fn parse_retrieved(line: &Bytes) -> Option<Reply> {
    let (key, value) = split_eq(&after(line, RETRIEVED)?)?;
    Some(Reply::Retrieved { key, value })
}

#[inline]
pub(super) fn parse_not_retrieved(line: &Bytes) -> Option<Reply> {
    let key = after(line, NOTRETRIEVED)?;
    Some(Reply::NotRetrieved { key })
}

#[inline]
pub(super) fn parse_key_list_start(line: &Bytes) -> Option<Reply> {
    exact(line, KEYLISTSTART, || Reply::KeyListStart)
}

#[inline]
pub(super) fn parse_key(line: &Bytes) -> Option<Reply> {
    let key = after(line, KEY)?;
    Some(Reply::Key { key })
}

#[inline]
pub(super) fn parse_key_list_end(line: &Bytes) -> Option<Reply> {
    exact(line, KEYLISTEND, || Reply::KeyListEnd)
}

/// Writes `RETRIEVED <key>=`, the line up to its value.
#[inline]
pub(super) fn encode_retrieved_head(out: &mut BytesMut, key: &[u8]) {
    for p in [RETRIEVED, key, b"="] {
        out.put_slice(p);
    }
}

#[inline]
pub(super) fn encode_retrieved(out: &mut BytesMut, key: &[u8], value: &[u8]) {
    encode_retrieved_head(out, key);
    put_line(out, &[value]);
}

#[inline]
pub(super) fn encode_not_retrieved(out: &mut BytesMut, key: &[u8]) {
    put_line(out, &[NOTRETRIEVED, key]);
}

#[inline]
pub(super) fn encode_key(out: &mut BytesMut, key: &[u8]) {
    put_line(out, &[KEY, key]);
}

#[cfg(test)]
mod tests {
    use super::super::{assert_encodes, assert_parses};
    use super::*;
    use crate::words::b;

    #[test]
    fn encodings() {
        assert_encodes(vec![
            (
                Reply::Retrieved {
                    key: b("k"),
                    value: b("a=b"),
                },
                "RETRIEVED k=a=b\r\n",
            ),
            (Reply::NotRetrieved { key: b("k") }, "NOTRETRIEVED k\r\n"),
            (Reply::KeyListStart, "KEYLISTSTART\r\n"),
            (Reply::Key { key: b("a b") }, "KEY a b\r\n"),
            (Reply::KeyListEnd, "KEYLISTEND\r\n"),
        ]);
    }

    #[test]
    fn table() {
        assert_parses(vec![
            (
                "RETRIEVED k=a=b",
                Reply::Retrieved {
                    key: b("k"),
                    value: b("a=b"),
                },
            ),
            (
                "RETRIEVED =v",
                Reply::Retrieved {
                    key: b(""),
                    value: b("v"),
                },
            ),
            (
                "RETRIEVED k",
                Reply::Other {
                    line: b("RETRIEVED k"),
                },
            ),
            ("NOTRETRIEVED k", Reply::NotRetrieved { key: b("k") }),
            ("KEYLISTSTART", Reply::KeyListStart),
            (
                "KEYLISTSTART x",
                Reply::Other {
                    line: b("KEYLISTSTART x"),
                },
            ),
            ("KEY a b", Reply::Key { key: b("a b") }),
            ("KEYLISTEND", Reply::KeyListEnd),
        ]);
    }
}
