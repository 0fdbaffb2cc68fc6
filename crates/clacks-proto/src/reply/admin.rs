//! Connection and server administration replies: CLACKS, OVERHEAD, the CLIENTLIST list
//! (CLIENTLISTSTART, CLIENT, CLIENTLISTEND), FLUSHED, DEBUG, the STATS list (STATSSTART, STAT,
//! STATSEND), PING, NOP, TIMEOUT, QUIT and any other line.

use bytes::{Bytes, BytesMut};

use super::Reply;
pub(super) use crate::request::admin::{
    encode_clacks, encode_overhead, encode_unknown as encode_other, CLACKS, OVERHEAD, PING, QUIT,
    TIMEOUT,
};
use crate::words::{after, exact, put_line, split_eq, split_first};
use crate::{Flags, CRLF};

pub(super) const CLIENTLISTSTART: &[u8] = b"CLIENTLISTSTART";
pub(super) const CLIENT: &[u8] = b"CLIENT ";
pub(super) const CLIENTLISTEND: &[u8] = b"CLIENTLISTEND";
pub(super) const FLUSHED: &[u8] = b"FLUSHED ";
pub(super) const DEBUG: &[u8] = b"DEBUG ";
pub(super) const STATSSTART: &[u8] = b"STATSSTART";
pub(super) const STAT: &[u8] = b"STAT ";
pub(super) const STATSEND: &[u8] = b"STATSEND";
pub(super) const NOP: &[u8] = b"NOP";

/// One `CLIENT …` line of a CLIENTLIST reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientEntry {
    /// Connection id.
    pub cid: Bytes,
    /// Peer host (`unixdomainsocket` for Unix sockets).
    pub host: Bytes,
    /// Peer port and serial.
    pub port: Bytes,
    /// What the peer said in its `CLACKS` line.
    pub clientinfo: Bytes,
    /// Bytes waiting to be written to it.
    pub outbuffer_length: usize,
    /// Bytes of its current partial input line.
    pub inbuffer_length: usize,
    /// Whether it is an interclacks link.
    pub interclacks: bool,
    /// Whether it is in MONITOR mode.
    pub monitor: bool,
    /// Time of its last PING (formatted seconds; `0` after NOPING).
    pub lastping: Bytes,
    /// Time of the last PING sent to it on an interclacks link (`0` otherwise).
    pub lastinterclacksping: Bytes,
    /// Since when writes to it have been stalled (`0` when they are not).
    pub writefailtime: Bytes,
}

#[inline]
pub(super) fn parse_clacks(line: &Bytes) -> Option<Reply> {
    let info = after(line, CLACKS)?;
    Some(Reply::Clacks { info })
}

#[inline]
pub(super) fn parse_overhead(line: &Bytes) -> Option<Reply> {
    let (flags, value) = split_first(&after(line, OVERHEAD)?, b' ', 0)?;
    Some(Reply::Overhead {
        flags: Flags::parse(&flags),
        value,
    })
}

#[inline]
pub(super) fn parse_client_list_start(line: &Bytes) -> Option<Reply> {
    exact(line, CLIENTLISTSTART, || Reply::ClientListStart)
}

#[inline]
pub(super) fn parse_client(line: &Bytes) -> Option<Reply> {
    let rest = after(line, CLIENT)?;
    Some(Reply::Client(Box::new(client_entry(&rest))))
}

#[inline]
pub(super) fn parse_client_list_end(line: &Bytes) -> Option<Reply> {
    exact(line, CLIENTLISTEND, || Reply::ClientListEnd)
}

#[inline]
pub(super) fn parse_flushed(line: &Bytes) -> Option<Reply> {
    let id = after(line, FLUSHED)?;
    Some(Reply::Flushed { id })
}

#[inline]
pub(super) fn parse_debug(line: &Bytes) -> Option<Reply> {
    let (source, text) = split_eq(&after(line, DEBUG)?)?;
    Some(Reply::Debug { source, text })
}

#[inline]
pub(super) fn parse_stats_start(line: &Bytes) -> Option<Reply> {
    exact(line, STATSSTART, || Reply::StatsStart)
}

#[inline]
pub(super) fn parse_stat(line: &Bytes) -> Option<Reply> {
    let (name, value) = split_eq(&after(line, STAT)?)?;
    Some(Reply::Stat { name, value })
}

#[inline]
pub(super) fn parse_stats_end(line: &Bytes) -> Option<Reply> {
    exact(line, STATSEND, || Reply::StatsEnd)
}

#[inline]
pub(super) fn parse_ping(line: &Bytes) -> Option<Reply> {
    exact(line, PING, || Reply::Ping)
}

#[inline]
pub(super) fn parse_nop(line: &Bytes) -> Option<Reply> {
    exact(line, NOP, || Reply::Nop)
}

#[inline]
pub(super) fn parse_timeout(line: &Bytes) -> Option<Reply> {
    exact(line, TIMEOUT, || Reply::Timeout)
}

#[inline]
pub(super) fn parse_quit(line: &Bytes) -> Option<Reply> {
    exact(line, QUIT, || Reply::Quit)
}

/// The fields of a `CLIENT` line (`NAME=value;` pairs); unknown names are skipped.
fn client_entry(rest: &Bytes) -> ClientEntry {
    let mut entry = ClientEntry::default();
    let mut start = 0;
    while start < rest.len() {
        let end = rest[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(rest.len(), |p| p + start);
        let field = rest.slice(start..end);
        start = end + 1;
        let Some((name, value)) = split_eq(&field) else {
            continue;
        };
        let number = || {
            std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        match &name[..] {
            b"CID" => entry.cid = value.clone(),
            b"HOST" => entry.host = value.clone(),
            b"PORT" => entry.port = value.clone(),
            b"CLIENTINFO" => entry.clientinfo = value.clone(),
            b"OUTBUFFER_LENGTH" => entry.outbuffer_length = number(),
            b"INBUFFER_LENGTH" => entry.inbuffer_length = number(),
            b"INTERCLACKS" => entry.interclacks = &value[..] == b"1",
            b"MONITOR" => entry.monitor = &value[..] == b"1",
            b"LASTPING" => entry.lastping = value.clone(),
            b"LASTINTERCLACKSPING" => entry.lastinterclacksping = value.clone(),
            b"WRITEFAILTIME" => entry.writefailtime = value.clone(),
            _ => {}
        }
    }
    entry
}

pub(super) fn encode_client(out: &mut BytesMut, c: &ClientEntry) {
    let num = |n: usize| n.to_string().into_bytes();
    let flag = |b: bool| if b { &b"1"[..] } else { &b"0"[..] };
    put_line(
        out,
        &[
            CLIENT,
            b"CID=",
            &c.cid,
            b";HOST=",
            &c.host,
            b";PORT=",
            &c.port,
            b";CLIENTINFO=",
            &c.clientinfo,
            b";OUTBUFFER_LENGTH=",
            &num(c.outbuffer_length),
            b";INBUFFER_LENGTH=",
            &num(c.inbuffer_length),
            b";INTERCLACKS=",
            flag(c.interclacks),
            b";MONITOR=",
            flag(c.monitor),
            b";LASTPING=",
            &c.lastping,
            b";LASTINTERCLACKSPING=",
            &c.lastinterclacksping,
            b";WRITEFAILTIME=",
            &c.writefailtime,
            b";",
        ],
    );
}

#[inline]
pub(super) fn encode_flushed(out: &mut BytesMut, id: &[u8]) {
    put_line(out, &[FLUSHED, id]);
}

#[inline]
pub(super) fn encode_debug(out: &mut BytesMut, source: &[u8], text: &[u8]) {
    put_line(out, &[DEBUG, source, b"=", text]);
}

#[inline]
pub(super) fn encode_stat(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    put_line(out, &[STAT, name, b"=", value]);
}

/// `TIMEOUT` with a CR LF before it as well as after it.
#[inline]
pub(super) fn encode_timeout(out: &mut BytesMut) {
    put_line(out, &[CRLF, TIMEOUT]);
}

/// `QUIT` with a CR LF before it as well as after it.
#[inline]
pub(super) fn encode_quit(out: &mut BytesMut) {
    put_line(out, &[CRLF, QUIT]);
}

#[cfg(test)]
mod tests {
    use super::super::{assert_encodes, assert_parses};
    use super::*;
    use crate::words::b;

    #[test]
    fn encodings() {
        assert_encodes(vec![
            (Reply::Quit, "\r\nQUIT\r\n"),
            (Reply::Timeout, "\r\nTIMEOUT\r\n"),
            (
                Reply::Overhead {
                    flags: Flags::parse(b"E"),
                    value: b("permission_denied"),
                },
                "OVERHEAD E permission_denied\r\n",
            ),
            (Reply::Clacks { info: b("srv 1") }, "CLACKS srv 1\r\n"),
            (Reply::ClientListStart, "CLIENTLISTSTART\r\n"),
            (Reply::ClientListEnd, "CLIENTLISTEND\r\n"),
            (Reply::Flushed { id: b("f1") }, "FLUSHED f1\r\n"),
            (
                Reply::Debug {
                    source: b("CONNECTED"),
                    text: b("a=b"),
                },
                "DEBUG CONNECTED=a=b\r\n",
            ),
            (Reply::StatsStart, "STATSSTART\r\n"),
            (
                Reply::Stat {
                    name: b("keys"),
                    value: b("3"),
                },
                "STAT keys=3\r\n",
            ),
            (Reply::StatsEnd, "STATSEND\r\n"),
            (Reply::Ping, "PING\r\n"),
            (Reply::Nop, "NOP\r\n"),
            (Reply::Other { line: b("HELLO x") }, "HELLO x\r\n"),
        ]);
    }

    #[test]
    fn client_line_round_trip() {
        let c = ClientEntry {
            cid: b("unixdomainsocket:1.5:3"),
            host: b("unixdomainsocket"),
            port: b("1.5:3"),
            clientinfo: b("x"),
            outbuffer_length: 0,
            inbuffer_length: 2,
            interclacks: false,
            monitor: true,
            lastping: b("1.5"),
            lastinterclacksping: b("0"),
            writefailtime: b("0"),
        };
        let line = String::from_utf8(Reply::Client(Box::new(c.clone())).to_bytes().to_vec());
        let line = line.unwrap();
        assert_eq!(
            line,
            "CLIENT CID=unixdomainsocket:1.5:3;HOST=unixdomainsocket;PORT=1.5:3;CLIENTINFO=x;\
             OUTBUFFER_LENGTH=0;INBUFFER_LENGTH=2;INTERCLACKS=0;MONITOR=1;LASTPING=1.5;\
             LASTINTERCLACKSPING=0;WRITEFAILTIME=0;\r\n"
        );
        let parsed = Reply::parse(Bytes::from(line.trim_end().to_string()));
        assert_eq!(parsed, Reply::Client(Box::new(c)));
    }

    #[test]
    fn table() {
        assert_parses(vec![
            ("CLACKS srv 1", Reply::Clacks { info: b("srv 1") }),
            (
                "OVERHEAD GN a b",
                Reply::Overhead {
                    flags: Flags::FORWARD | Flags::NO_LOGGING,
                    value: b("a b"),
                },
            ),
            (
                "OVERHEAD E",
                Reply::Other {
                    line: b("OVERHEAD E"),
                },
            ),
            ("CLIENTLISTSTART", Reply::ClientListStart),
            (
                "CLIENT junk;PORT=7;MONITOR=1;OUTBUFFER_LENGTH=x",
                Reply::Client(Box::new(ClientEntry {
                    port: b("7"),
                    monitor: true,
                    ..ClientEntry::default()
                })),
            ),
            ("CLIENTLISTEND", Reply::ClientListEnd),
            ("FLUSHED f1", Reply::Flushed { id: b("f1") }),
            (
                "DEBUG 1:2=STORE a=b",
                Reply::Debug {
                    source: b("1:2"),
                    text: b("STORE a=b"),
                },
            ),
            ("DEBUG x", Reply::Other { line: b("DEBUG x") }),
            ("STATSSTART", Reply::StatsStart),
            (
                "STAT keys=3",
                Reply::Stat {
                    name: b("keys"),
                    value: b("3"),
                },
            ),
            ("STATSEND", Reply::StatsEnd),
            ("PING", Reply::Ping),
            ("PINGX", Reply::Other { line: b("PINGX") }),
            ("NOP", Reply::Nop),
            ("TIMEOUT", Reply::Timeout),
            ("QUIT", Reply::Quit),
            ("HELLO", Reply::Other { line: b("HELLO") }),
        ]);
    }
}
