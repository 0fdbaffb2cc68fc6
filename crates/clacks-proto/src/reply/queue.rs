//! Work-queue replies: QMESSAGE, QEMPTY, QSTATS, the QLIST list (QLISTSTART, QUEUE, QLISTEND)
//! and QTEMPNAME.

use bytes::{Bytes, BytesMut};

use super::Reply;
use crate::words::{after, exact, put_line, split_first, take_word};

pub(super) const QMESSAGE: &[u8] = b"QMESSAGE ";
pub(super) const QEMPTY: &[u8] = b"QEMPTY ";
pub(super) const QSTATS: &[u8] = b"QSTATS ";
pub(super) const QLISTSTART: &[u8] = b"QLISTSTART";
pub(super) const QUEUE: &[u8] = b"QUEUE ";
pub(super) const QLISTEND: &[u8] = b"QLISTEND";
pub(super) const QTEMPNAME: &[u8] = b"QTEMPNAME ";

/// `QMESSAGE <queue> <id>=<value>`.
#[inline]
pub(super) fn parse_message(line: &Bytes) -> Option<Reply> {
    let (queue, rest) = take_word(&after(line, QMESSAGE)?)?;
    let (id, value) = split_first(&rest, b'=', 1)?;
    Some(Reply::QMessage { queue, id, value })
}

#[inline]
pub(super) fn parse_empty(line: &Bytes) -> Option<Reply> {
    let queue = after(line, QEMPTY)?;
    Some(Reply::QEmpty { queue })
}

/// `<queue> <fields>`, the rest of a `QSTATS` or `QUEUE` line.
fn queue_and_fields(line: &Bytes, verb: &[u8]) -> Option<(Bytes, Bytes)> {
    let rest = after(line, verb)?;
    Some(take_word(&rest).unwrap_or((rest, Bytes::new())))
}

#[inline]
pub(super) fn parse_stats(line: &Bytes) -> Option<Reply> {
    let (queue, fields) = queue_and_fields(line, QSTATS)?;
    Some(Reply::QStats { queue, fields })
}

#[inline]
pub(super) fn parse_list_start(line: &Bytes) -> Option<Reply> {
    exact(line, QLISTSTART, || Reply::QListStart)
}

#[inline]
pub(super) fn parse_queue(line: &Bytes) -> Option<Reply> {
    let (queue, fields) = queue_and_fields(line, QUEUE)?;
    Some(Reply::Queue { queue, fields })
}

#[inline]
pub(super) fn parse_list_end(line: &Bytes) -> Option<Reply> {
    exact(line, QLISTEND, || Reply::QListEnd)
}

#[inline]
pub(super) fn parse_temp_name(line: &Bytes) -> Option<Reply> {
    let queue = after(line, QTEMPNAME)?;
    Some(Reply::QTempName { queue })
}

pub(super) fn encode_message(out: &mut BytesMut, queue: &[u8], id: &[u8], value: &[u8]) {
    put_line(out, &[QMESSAGE, queue, b" ", id, b"=", value]);
}

/// A verb, a queue name and, when there are any, its fields after a space.
pub(super) fn encode_fields(out: &mut BytesMut, verb: &[u8], queue: &[u8], fields: &[u8]) {
    if fields.is_empty() {
        put_line(out, &[verb, queue]);
    } else {
        put_line(out, &[verb, queue, b" ", fields]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{assert_encodes, assert_parses};
    use super::*;
    use crate::words::b;

    #[test]
    fn table() {
        assert_parses(vec![
            (
                "QMESSAGE jobs 17=a=b c",
                Reply::QMessage {
                    queue: b("jobs"),
                    id: b("17"),
                    value: b("a=b c"),
                },
            ),
            (
                "QMESSAGE jobs 17",
                Reply::Other {
                    line: b("QMESSAGE jobs 17"),
                },
            ),
            ("QEMPTY jobs", Reply::QEmpty { queue: b("jobs") }),
            (
                "QSTATS jobs messages=1;bytes=3",
                Reply::QStats {
                    queue: b("jobs"),
                    fields: b("messages=1;bytes=3"),
                },
            ),
            ("QLISTSTART", Reply::QListStart),
            (
                "QUEUE jobs messages=0",
                Reply::Queue {
                    queue: b("jobs"),
                    fields: b("messages=0"),
                },
            ),
            ("QLISTEND", Reply::QListEnd),
            (
                "QTEMPNAME Temp::7",
                Reply::QTempName {
                    queue: b("Temp::7"),
                },
            ),
            ("QUIT", Reply::Quit),
        ]);
    }

    #[test]
    fn encodes() {
        assert_encodes(vec![
            (
                Reply::QMessage {
                    queue: b("jobs"),
                    id: b("3"),
                    value: b("x=y"),
                },
                "QMESSAGE jobs 3=x=y\r\n",
            ),
            (
                Reply::QStats {
                    queue: b("jobs"),
                    fields: b("messages=0"),
                },
                "QSTATS jobs messages=0\r\n",
            ),
            (
                Reply::Queue {
                    queue: b("jobs"),
                    fields: b(""),
                },
                "QUEUE jobs\r\n",
            ),
            (
                Reply::QTempName {
                    queue: b("Temp::1"),
                },
                "QTEMPNAME Temp::1\r\n",
            ),
        ]);
    }
}
