//! Connection and server administration requests: CLACKS, OVERHEAD (with and without a value),
//! MONITOR, UNMONITOR, QUIT, TIMEOUT, PING, NOPING, CLIENTLIST, CLIENTDISCONNECT, FLUSH, STATS,
//! and the encoding of unknown lines.

use bytes::{Bytes, BytesMut};

use super::Request;
use crate::words::{after, nonempty, put_line, take_word, word};
use crate::Flags;

pub(crate) const CLACKS: &[u8] = b"CLACKS ";
pub(crate) const OVERHEAD: &[u8] = b"OVERHEAD ";
pub(crate) const MONITOR: &[u8] = b"MONITOR";
pub(crate) const UNMONITOR: &[u8] = b"UNMONITOR";
pub(crate) const QUIT: &[u8] = b"QUIT";
pub(crate) const TIMEOUT: &[u8] = b"TIMEOUT";
pub(crate) const PING: &[u8] = b"PING";
pub(crate) const NOPING: &[u8] = b"NOPING";
pub(crate) const CLIENTLIST: &[u8] = b"CLIENTLIST";
pub(crate) const CLIENTDISCONNECT: &[u8] = b"CLIENTDISCONNECT ";
pub(crate) const FLUSH: &[u8] = b"FLUSH ";
pub(crate) const STATS: &[u8] = b"STATS";

#[inline]
pub(super) fn parse_clacks(line: &Bytes) -> Option<Request> {
    let info = nonempty(after(line, CLACKS)?)?;
    Some(Request::Clacks { info })
}

#[inline]
pub(super) fn parse_overhead(line: &Bytes) -> Option<Request> {
    let rest = after(line, OVERHEAD)?;
    Some(match take_word(&rest) {
        Some((flags, value)) if !value.is_empty() => Request::Overhead {
            flags: Flags::parse(&flags),
            value,
        },
        _ => Request::OverheadWithoutValue,
    })
}

#[inline]
pub(super) fn parse_monitor(line: &Bytes) -> Option<Request> {
    word(line, MONITOR, || Request::Monitor)
}

#[inline]
pub(super) fn parse_unmonitor(line: &Bytes) -> Option<Request> {
    word(line, UNMONITOR, || Request::Unmonitor)
}

#[inline]
pub(super) fn parse_quit(line: &Bytes) -> Option<Request> {
    word(line, QUIT, || Request::Quit)
}

#[inline]
pub(super) fn parse_timeout(line: &Bytes) -> Option<Request> {
    word(line, TIMEOUT, || Request::Timeout)
}

#[inline]
pub(super) fn parse_ping(line: &Bytes) -> Option<Request> {
    word(line, PING, || Request::Ping)
}

#[inline]
pub(super) fn parse_no_ping(line: &Bytes) -> Option<Request> {
    word(line, NOPING, || Request::NoPing)
}

#[inline]
pub(super) fn parse_client_list(line: &Bytes) -> Option<Request> {
    word(line, CLIENTLIST, || Request::ClientList)
}

#[inline]
pub(super) fn parse_client_disconnect(line: &Bytes) -> Option<Request> {
    let cid = nonempty(after(line, CLIENTDISCONNECT)?)?;
    Some(Request::ClientDisconnect { cid })
}

#[inline]
pub(super) fn parse_flush(line: &Bytes) -> Option<Request> {
    let id = nonempty(after(line, FLUSH)?)?;
    Some(Request::Flush { id })
}

#[inline]
pub(super) fn parse_stats(line: &Bytes) -> Option<Request> {
    word(line, STATS, || Request::Stats)
}

#[inline]
pub(crate) fn encode_clacks(out: &mut BytesMut, info: &[u8]) {
    put_line(out, &[CLACKS, info]);
}

#[inline]
pub(crate) fn encode_overhead(out: &mut BytesMut, flags: Flags, value: &[u8]) {
    put_line(out, &[OVERHEAD, &flags.to_word(), b" ", value]);
}

#[inline]
pub(super) fn encode_client_disconnect(out: &mut BytesMut, cid: &[u8]) {
    put_line(out, &[CLIENTDISCONNECT, cid]);
}

#[inline]
pub(super) fn encode_flush(out: &mut BytesMut, id: &[u8]) {
    put_line(out, &[FLUSH, id]);
}

/// Writes a line as it came (an unknown request, or any other reply).
#[inline]
pub(crate) fn encode_unknown(out: &mut BytesMut, line: &[u8]) {
    put_line(out, &[line]);
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
                "CLACKS my client",
                Request::Clacks {
                    info: b("my client"),
                },
            ),
            ("CLACKS", Request::Unknown { line: b("CLACKS") }),
            (
                "OVERHEAD A x:y",
                Request::Overhead {
                    flags: Flags::AUTH,
                    value: b("x:y"),
                },
            ),
            (
                "OVERHEAD GNU Terry Pratchett",
                Request::Overhead {
                    flags: Flags::FORWARD | Flags::NO_LOGGING | Flags::RETURN_TO_SENDER,
                    value: b("Terry Pratchett"),
                },
            ),
            ("OVERHEAD X", Request::OverheadWithoutValue),
            (
                "OVERHEAD",
                Request::Unknown {
                    line: b("OVERHEAD"),
                },
            ),
            ("MONITOR", Request::Monitor),
            ("UNMONITOR", Request::Unmonitor),
            ("QUIT now", Request::Quit),
            ("TIMEOUT", Request::Timeout),
            ("PINGPONG", Request::Ping),
            ("NOPING", Request::NoPing),
            ("CLIENTLIST", Request::ClientList),
            (
                "CLIENTDISCONNECT a:1:2",
                Request::ClientDisconnect { cid: b("a:1:2") },
            ),
            ("FLUSH f1", Request::Flush { id: b("f1") }),
            ("FLUSH", Request::Unknown { line: b("FLUSH") }),
            ("NOP", Request::Unknown { line: b("NOP") }),
        ]);
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        assert_round_trips(&[
            "FLUSH x",
            "CLACKS my client",
            "OVERHEAD GNU Terry Pratchett",
            "OVERHEAD Z",
            "CLIENTDISCONNECT a:1:2",
            "STATS",
            "NOP",
        ]);
    }
}
