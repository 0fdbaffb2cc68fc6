//! Lines a server sends to a client.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Flags, CRLF};

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

/// One line from server to client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// `CLACKS <info>`: greeting.
    Clacks {
        /// Server name and version.
        info: Bytes,
    },
    /// `OVERHEAD <flags> <value>`.
    Overhead {
        /// Flag letters.
        flags: Flags,
        /// The value.
        value: Bytes,
    },
    /// `NOTIFY <name>` to a listener.
    Notify {
        /// Signal name.
        name: Bytes,
    },
    /// `SET <name>=<value>` to a listener.
    Set {
        /// Signal name.
        name: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `RETRIEVED <key>=<value>`.
    Retrieved {
        /// Cache key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `NOTRETRIEVED <key>`.
    NotRetrieved {
        /// Cache key.
        key: Bytes,
    },
    /// `KEYLISTSTART`.
    KeyListStart,
    /// `KEY <key>`.
    Key {
        /// Cache key.
        key: Bytes,
    },
    /// `KEYLISTEND`.
    KeyListEnd,
    /// `CLIENTLISTSTART`.
    ClientListStart,
    /// `CLIENT CID=…;HOST=…;…;`.
    Client(Box<ClientEntry>),
    /// `CLIENTLISTEND`.
    ClientListEnd,
    /// `FLUSHED <id>`.
    Flushed {
        /// The id from the FLUSH.
        id: Bytes,
    },
    /// `DEBUG <source>=<text>` to monitors.
    Debug {
        /// Connection id, or `CONNECTED`, `DISCONNECTED`, `SERVERCACHE`.
        source: Bytes,
        /// The mirrored line or event text.
        text: Bytes,
    },
    /// `STATSSTART` (extension).
    StatsStart,
    /// `STAT <name>=<value>` (extension).
    Stat {
        /// Counter name.
        name: Bytes,
        /// Counter value.
        value: Bytes,
    },
    /// `STATSEND` (extension).
    StatsEnd,
    /// `PING` (interclacks links only).
    Ping,
    /// `NOP` keepalive.
    Nop,
    /// `TIMEOUT`, sent as `\r\nTIMEOUT\r\n` just before closing.
    Timeout,
    /// `QUIT`, sent as `\r\nQUIT\r\n` just before closing.
    Quit,
    /// Any other line (what a client receives that it does not know).
    Other {
        /// The whole line.
        line: Bytes,
    },
}

impl Reply {
    /// Writes this reply with its CR LF (and the leading CR LF of `TIMEOUT` and `QUIT`).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut put = |parts: &[&[u8]]| {
            for p in parts {
                out.put_slice(p);
            }
            out.put_slice(CRLF);
        };
        match self {
            Reply::Clacks { info } => put(&[b"CLACKS ", info]),
            Reply::Overhead { flags, value } => put(&[b"OVERHEAD ", &flags.to_word(), b" ", value]),
            Reply::Notify { name } => put(&[b"NOTIFY ", name]),
            Reply::Set { name, value } => put(&[b"SET ", name, b"=", value]),
            Reply::Retrieved { key, value } => put(&[b"RETRIEVED ", key, b"=", value]),
            Reply::NotRetrieved { key } => put(&[b"NOTRETRIEVED ", key]),
            Reply::KeyListStart => put(&[b"KEYLISTSTART"]),
            Reply::Key { key } => put(&[b"KEY ", key]),
            Reply::KeyListEnd => put(&[b"KEYLISTEND"]),
            Reply::ClientListStart => put(&[b"CLIENTLISTSTART"]),
            Reply::Client(c) => {
                let num = |n: usize| n.to_string().into_bytes();
                let flag = |b: bool| if b { &b"1"[..] } else { &b"0"[..] };
                put(&[
                    b"CLIENT CID=",
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
                ])
            }
            Reply::ClientListEnd => put(&[b"CLIENTLISTEND"]),
            Reply::Flushed { id } => put(&[b"FLUSHED ", id]),
            Reply::Debug { source, text } => put(&[b"DEBUG ", source, b"=", text]),
            Reply::StatsStart => put(&[b"STATSSTART"]),
            Reply::Stat { name, value } => put(&[b"STAT ", name, b"=", value]),
            Reply::StatsEnd => put(&[b"STATSEND"]),
            Reply::Ping => put(&[b"PING"]),
            Reply::Nop => put(&[b"NOP"]),
            Reply::Timeout => put(&[CRLF, b"TIMEOUT"]),
            Reply::Quit => put(&[CRLF, b"QUIT"]),
            Reply::Other { line } => put(&[line]),
        }
    }

    /// Like [`Reply::encode`], but without copying the value of a `RETRIEVED` reply: writes
    /// the reply up to the value and returns the value, which the caller sends next, followed
    /// by [`CRLF`](crate::CRLF). Other replies are written whole (and `None` returned).
    pub fn encode_head(&self, out: &mut BytesMut) -> Option<&Bytes> {
        match self {
            Reply::Retrieved { key, value } => {
                for p in [&b"RETRIEVED "[..], key, b"="] {
                    out.put_slice(p);
                }
                Some(value)
            }
            other => {
                other.encode(out);
                None
            }
        }
    }

    /// This reply as one encoded, shareable buffer (for fan-out: encode once, send to many).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// Parses one line received from a server (without terminator). Never fails.
    pub fn parse(line: Bytes) -> Reply {
        let after = |prefix: &[u8]| -> Option<Bytes> {
            line.starts_with(prefix).then(|| line.slice(prefix.len()..))
        };
        let split_eq = |rest: Bytes| -> Option<(Bytes, Bytes)> {
            let idx = rest.iter().position(|&b| b == b'=')?;
            Some((rest.slice(..idx), rest.slice(idx + 1..)))
        };
        match &line[..] {
            b"KEYLISTSTART" => return Reply::KeyListStart,
            b"KEYLISTEND" => return Reply::KeyListEnd,
            b"CLIENTLISTSTART" => return Reply::ClientListStart,
            b"CLIENTLISTEND" => return Reply::ClientListEnd,
            b"STATSSTART" => return Reply::StatsStart,
            b"STATSEND" => return Reply::StatsEnd,
            b"PING" => return Reply::Ping,
            b"NOP" => return Reply::Nop,
            b"TIMEOUT" => return Reply::Timeout,
            b"QUIT" => return Reply::Quit,
            _ => {}
        }
        if let Some(info) = after(b"CLACKS ") {
            return Reply::Clacks { info };
        }
        if let Some(rest) = after(b"OVERHEAD ") {
            if let Some(idx) = rest.iter().position(|&b| b == b' ') {
                return Reply::Overhead {
                    flags: Flags::parse(&rest[..idx]),
                    value: rest.slice(idx + 1..),
                };
            }
        }
        if let Some(name) = after(b"NOTIFY ") {
            return Reply::Notify { name };
        }
        if let Some((name, value)) = after(b"SET ").and_then(split_eq) {
            return Reply::Set { name, value };
        }
        if let Some((key, value)) = after(b"RETRIEVED ").and_then(split_eq) {
            return Reply::Retrieved { key, value };
        }
        if let Some(key) = after(b"NOTRETRIEVED ") {
            return Reply::NotRetrieved { key };
        }
        if let Some(key) = after(b"KEY ") {
            return Reply::Key { key };
        }
        if let Some(rest) = after(b"CLIENT ") {
            return Reply::Client(Box::new(parse_client(&rest)));
        }
        if let Some(id) = after(b"FLUSHED ") {
            return Reply::Flushed { id };
        }
        if let Some((source, text)) = after(b"DEBUG ").and_then(split_eq) {
            return Reply::Debug { source, text };
        }
        if let Some((name, value)) = after(b"STAT ").and_then(split_eq) {
            return Reply::Stat { name, value };
        }
        Reply::Other { line }
    }
}

fn parse_client(rest: &Bytes) -> ClientEntry {
    let mut entry = ClientEntry::default();
    let mut start = 0;
    while start < rest.len() {
        let end = rest[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(rest.len(), |p| p + start);
        let field = rest.slice(start..end);
        start = end + 1;
        let Some(eq) = field.iter().position(|&b| b == b'=') else {
            continue;
        };
        let value = field.slice(eq + 1..);
        let number = || {
            std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        match &field[..eq] {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply) -> String {
        String::from_utf8(r.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn encodings() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        assert_eq!(
            enc(&Reply::Retrieved {
                key: b("k"),
                value: b("a=b")
            }),
            "RETRIEVED k=a=b\r\n"
        );
        assert_eq!(
            enc(&Reply::NotRetrieved { key: b("k") }),
            "NOTRETRIEVED k\r\n"
        );
        let retrieved = Reply::Retrieved {
            key: b("k"),
            value: b("a=b"),
        };
        let mut head = BytesMut::new();
        let value = retrieved.encode_head(&mut head).unwrap().clone();
        head.extend_from_slice(&value);
        head.extend_from_slice(CRLF);
        assert_eq!(&head[..], &retrieved.to_bytes()[..]);
        let mut whole = BytesMut::new();
        assert!(Reply::Nop.encode_head(&mut whole).is_none());
        assert_eq!(&whole[..], b"NOP\r\n");
        assert_eq!(enc(&Reply::Quit), "\r\nQUIT\r\n");
        assert_eq!(enc(&Reply::Timeout), "\r\nTIMEOUT\r\n");
        assert_eq!(
            enc(&Reply::Overhead {
                flags: Flags::parse(b"E"),
                value: b("permission_denied")
            }),
            "OVERHEAD E permission_denied\r\n"
        );
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
        let line = enc(&Reply::Client(Box::new(c.clone())));
        assert_eq!(
            line,
            "CLIENT CID=unixdomainsocket:1.5:3;HOST=unixdomainsocket;PORT=1.5:3;CLIENTINFO=x;\
             OUTBUFFER_LENGTH=0;INBUFFER_LENGTH=2;INTERCLACKS=0;MONITOR=1;LASTPING=1.5;\
             LASTINTERCLACKSPING=0;WRITEFAILTIME=0;\r\n"
        );
        let parsed = Reply::parse(Bytes::from(line.trim_end().to_string()));
        assert_eq!(parsed, Reply::Client(Box::new(c)));
    }
}
