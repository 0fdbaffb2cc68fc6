//! Work-queue requests: QSEND, QRECV, QACK, QNACK, QCANCEL, QSTAT, QLIST, QPURGE, QDELETE, QTEMP,
//! and between `clacksd` servers QFWD, QREPLY and QDROP (a queue command forwarded towards the
//! root for a client, its answers, the end of that client).
//!
//! A queue name is one word (the server refuses names with a space or `=`, see
//! `docs/protocol.md`); timeouts, leases and message ids stay text here and are read by the
//! server, which answers a malformed one with an error.

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, nonempty, put_line, split_assign, take_word, word};

pub(crate) const QSEND: &[u8] = b"QSEND ";
pub(crate) const QRECV: &[u8] = b"QRECV ";
pub(crate) const QACK: &[u8] = b"QACK ";
pub(crate) const QNACK: &[u8] = b"QNACK ";
pub(crate) const QCANCEL: &[u8] = b"QCANCEL ";
pub(crate) const QSTAT: &[u8] = b"QSTAT ";
pub(crate) const QLIST: &[u8] = b"QLIST";
pub(crate) const QPURGE: &[u8] = b"QPURGE ";
pub(crate) const QDELETE: &[u8] = b"QDELETE ";
pub(crate) const QTEMP: &[u8] = b"QTEMP";
pub(crate) const QFWD: &[u8] = b"QFWD ";
pub(crate) const QREPLY: &[u8] = b"QREPLY ";
pub(crate) const QDROP: &[u8] = b"QDROP ";

/// The words of `rest` separated by single spaces: `None` if one is empty or there are more
/// than `N`.
fn words<const N: usize>(rest: &Bytes) -> Option<(usize, [Bytes; N])> {
    let mut out: [Bytes; N] = std::array::from_fn(|_| Bytes::new());
    let mut n = 0;
    let mut start = 0;
    for end in (0..=rest.len()).filter(|&i| i == rest.len() || rest[i] == b' ') {
        if end == start || n == N {
            return None;
        }
        out[n] = rest.slice(start..end);
        n += 1;
        start = end + 1;
    }
    Some((n, out))
}

#[inline]
pub(super) fn parse_send(line: &Bytes) -> Option<Request> {
    let (queue, value) = split_assign(&after(line, QSEND)?)?;
    Some(Request::QSend { queue, value })
}

#[inline]
pub(super) fn parse_recv(line: &Bytes) -> Option<Request> {
    let (n, [queue, timeout, lease]) = words::<3>(&after(line, QRECV)?)?;
    Some(Request::QRecv {
        queue,
        timeout: (n > 1).then_some(timeout),
        lease: (n > 2).then_some(lease),
    })
}

/// `<queue> <id>`, the arguments of `QACK` and `QNACK`.
fn queue_and_id(line: &Bytes, verb: &[u8]) -> Option<(Bytes, Bytes)> {
    match words::<2>(&after(line, verb)?)? {
        (2, [queue, id]) => Some((queue, id)),
        _ => None,
    }
}

#[inline]
pub(super) fn parse_ack(line: &Bytes) -> Option<Request> {
    let (queue, id) = queue_and_id(line, QACK)?;
    Some(Request::QAck { queue, id })
}

#[inline]
pub(super) fn parse_nack(line: &Bytes) -> Option<Request> {
    let (queue, id) = queue_and_id(line, QNACK)?;
    Some(Request::QNack { queue, id })
}

#[inline]
pub(super) fn parse_cancel(line: &Bytes) -> Option<Request> {
    let queue = nonempty(after(line, QCANCEL)?)?;
    Some(Request::QCancel { queue })
}

#[inline]
pub(super) fn parse_stat(line: &Bytes) -> Option<Request> {
    let queue = nonempty(after(line, QSTAT)?)?;
    Some(Request::QStat { queue })
}

/// `QLIST` (anything after it ignored, as after `KEYLIST`).
#[inline]
pub(super) fn parse_list(line: &Bytes) -> Option<Request> {
    word(line, QLIST, || Request::QList)
}

#[inline]
pub(super) fn parse_purge(line: &Bytes) -> Option<Request> {
    let queue = nonempty(after(line, QPURGE)?)?;
    Some(Request::QPurge { queue })
}

#[inline]
pub(super) fn parse_delete(line: &Bytes) -> Option<Request> {
    let queue = nonempty(after(line, QDELETE)?)?;
    Some(Request::QDelete { queue })
}

/// `QTEMP` (anything after it ignored).
#[inline]
pub(super) fn parse_temp(line: &Bytes) -> Option<Request> {
    word(line, QTEMP, || Request::QTemp)
}

/// A decimal number in a word.
fn number<T: std::str::FromStr>(word: &[u8]) -> Option<T> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// `QFWD <tag> <hops> <line>`.
#[inline]
pub(super) fn parse_forward(line: &Bytes) -> Option<Request> {
    let (tag, rest) = take_word(&after(line, QFWD)?)?;
    let (hops, line) = take_word(&rest)?;
    Some(Request::QForward {
        tag: number(&tag)?,
        hops: number(&hops)?,
        line: nonempty(line)?,
    })
}

/// `QREPLY <tag> <line>`.
#[inline]
pub(super) fn parse_reply(line: &Bytes) -> Option<Request> {
    let (tag, line) = take_word(&after(line, QREPLY)?)?;
    Some(Request::QReply {
        tag: number(&tag)?,
        line: nonempty(line)?,
    })
}

/// `QDROP <tag>`.
#[inline]
pub(super) fn parse_drop(line: &Bytes) -> Option<Request> {
    let tag = number(&after(line, QDROP)?)?;
    Some(Request::QDrop { tag })
}

pub(super) fn encode_forward(out: &mut BytesMut, tag: u64, hops: u8, line: &[u8]) {
    let (tag, hops) = (tag.to_string(), hops.to_string());
    put_line(
        out,
        &[QFWD, tag.as_bytes(), b" ", hops.as_bytes(), b" ", line],
    );
}

pub(super) fn encode_reply(out: &mut BytesMut, tag: u64, line: &[u8]) {
    put_line(out, &[QREPLY, tag.to_string().as_bytes(), b" ", line]);
}

pub(super) fn encode_drop(out: &mut BytesMut, tag: u64) {
    put_line(out, &[QDROP, tag.to_string().as_bytes()]);
}

pub(super) fn encode_send(out: &mut BytesMut, queue: &[u8], value: &[u8]) {
    put_line(out, &[QSEND, queue, b"=", value]);
}

pub(super) fn encode_recv(
    out: &mut BytesMut,
    queue: &[u8],
    timeout: Option<&Bytes>,
    lease: Option<&Bytes>,
) {
    match (timeout, lease) {
        (Some(t), Some(l)) => put_line(out, &[QRECV, queue, b" ", t, b" ", l]),
        (Some(t), None) => put_line(out, &[QRECV, queue, b" ", t]),
        _ => put_line(out, &[QRECV, queue]),
    }
}

/// A verb followed by its argument words.
pub(super) fn encode_words(out: &mut BytesMut, verb: &[u8], args: &[&[u8]]) {
    let mut parts = Vec::with_capacity(2 * args.len());
    parts.push(verb);
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            parts.push(b" ");
        }
        parts.push(arg);
    }
    put_line(out, &parts);
}

#[cfg(test)]
mod tests {
    use super::super::{assert_parses, assert_round_trips};
    use super::*;
    use crate::words::b;

    #[test]
    fn table() {
        let unknown = |line: &str| (line.to_string(), Request::Unknown { line: b(line) });
        let cases = vec![
            (
                "QSEND jobs=a=b c".into(),
                Request::QSend {
                    queue: b("jobs"),
                    value: b("a=b c"),
                },
            ),
            (
                "QSEND jobs=".into(),
                Request::QSend {
                    queue: b("jobs"),
                    value: b(""),
                },
            ),
            unknown("QSEND =x"),
            unknown("QSEND jobs"),
            (
                "QRECV jobs".into(),
                Request::QRecv {
                    queue: b("jobs"),
                    timeout: None,
                    lease: None,
                },
            ),
            (
                "QRECV jobs 0.5".into(),
                Request::QRecv {
                    queue: b("jobs"),
                    timeout: Some(b("0.5")),
                    lease: None,
                },
            ),
            (
                "QRECV jobs 0 30".into(),
                Request::QRecv {
                    queue: b("jobs"),
                    timeout: Some(b("0")),
                    lease: Some(b("30")),
                },
            ),
            unknown("QRECV "),
            unknown("QRECV jobs  1"),
            unknown("QRECV jobs 1 2 3"),
            unknown("QRECV jobs "),
            (
                "QACK jobs 17".into(),
                Request::QAck {
                    queue: b("jobs"),
                    id: b("17"),
                },
            ),
            (
                "QNACK jobs x".into(),
                Request::QNack {
                    queue: b("jobs"),
                    id: b("x"),
                },
            ),
            unknown("QACK jobs"),
            unknown("QNACK jobs 1 2"),
            ("QCANCEL jobs".into(), Request::QCancel { queue: b("jobs") }),
            ("QSTAT a b".into(), Request::QStat { queue: b("a b") }),
            unknown("QSTAT "),
            ("QLIST".into(), Request::QList),
            ("QLISTALL".into(), Request::QList),
            ("QPURGE jobs".into(), Request::QPurge { queue: b("jobs") }),
            ("QDELETE jobs".into(), Request::QDelete { queue: b("jobs") }),
            ("QTEMP".into(), Request::QTemp),
            (
                "QFWD 7 1 QSEND a=b c".into(),
                Request::QForward {
                    tag: 7,
                    hops: 1,
                    line: b("QSEND a=b c"),
                },
            ),
            unknown("QFWD x 1 QTEMP"),
            unknown("QFWD 7 999 QTEMP"),
            unknown("QFWD 7 1 "),
            (
                "QREPLY 7 QEMPTY a".into(),
                Request::QReply {
                    tag: 7,
                    line: b("QEMPTY a"),
                },
            ),
            unknown("QREPLY 7"),
            ("QDROP 7".into(), Request::QDrop { tag: 7 }),
            unknown("QDROP -1"),
        ];
        let cases = cases.iter().map(|(l, r)| (l.as_str(), r.clone())).collect();
        assert_parses(cases);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&[
            "QSEND jobs=a=b c",
            "QRECV jobs",
            "QRECV jobs 0.5",
            "QRECV jobs 0 30",
            "QACK jobs 17",
            "QNACK jobs 17",
            "QCANCEL jobs",
            "QSTAT jobs",
            "QLIST",
            "QPURGE jobs",
            "QDELETE jobs",
            "QTEMP",
            "QFWD 7 1 QSEND a=b c",
            "QREPLY 7 QEMPTY a",
            "QDROP 7",
        ]);
    }
}
