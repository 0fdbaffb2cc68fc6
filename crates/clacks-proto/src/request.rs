//! Lines a client (or an interclacks peer) sends to a server.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Flags, CRLF};

/// One parsed request line.
///
/// Parsing never fails: a line that matches no command is [`Request::Unknown`]. The rules follow
/// the reference server exactly: commands are case sensitive; `KEYLIST`, `CLEARCACHE`, `MONITOR`,
/// `UNMONITOR`, `QUIT`, `TIMEOUT`, `PING`, `NOPING`, `CLIENTLIST` and `STATS` are prefixes (anything
/// after them is ignored); `SET`, `STORE`, `SETANDSTORE` split name and value at the first `=`
/// after a non-empty name; `INCREMENT`/`DECREMENT` take a step after the last `=` that has at
/// least one byte on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `CLACKS <info>`: the peer names itself.
    Clacks {
        /// Free text (the server replaces `;` with `_` when storing it).
        info: Bytes,
    },
    /// `OVERHEAD <flags> <value>`.
    Overhead {
        /// The parsed flag letters.
        flags: Flags,
        /// The rest of the line (never empty).
        value: Bytes,
    },
    /// `OVERHEAD <word>` without a value: ignored by the server.
    OverheadWithoutValue,
    /// `NOTIFY <name>`.
    Notify {
        /// Signal name (may be empty).
        name: Bytes,
    },
    /// `SET <name>=<value>`.
    Set {
        /// Signal name.
        name: Bytes,
        /// Value carried to listeners.
        value: Bytes,
    },
    /// `KEYSYNC <cachetime> <accesstime> <mode> <key>=<value>` (interclacks only).
    KeySync {
        /// Peer's cache time (float seconds, as text).
        cachetime: Bytes,
        /// Peer's access time (float seconds, as text; `0` for tombstones).
        accesstime: Bytes,
        /// `D` for a tombstone, anything else for a live value.
        mode: Bytes,
        /// Cache key.
        key: Bytes,
        /// Value (`REMOVED` for tombstones).
        value: Bytes,
    },
    /// `STORE <key>=<value>`.
    Store {
        /// Cache key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `SETANDSTORE <name>=<value>`: broadcast as SET and store.
    SetAndStore {
        /// Signal name and cache key.
        name: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `RETRIEVE <key>`.
    Retrieve {
        /// Cache key.
        key: Bytes,
    },
    /// `REMOVE <key>`.
    Remove {
        /// Cache key.
        key: Bytes,
    },
    /// `INCREMENT <key>[=<step>]`.
    Increment {
        /// Cache key.
        key: Bytes,
        /// Step as sent (numified by the store); `None` means 1.
        step: Option<Bytes>,
    },
    /// `DECREMENT <key>[=<step>]`.
    Decrement {
        /// Cache key.
        key: Bytes,
        /// Step as sent; `None` means 1.
        step: Option<Bytes>,
    },
    /// `KEYLIST`.
    KeyList,
    /// `CLEARCACHE`.
    ClearCache,
    /// `LISTEN <name>`.
    Listen {
        /// Signal name (may be empty).
        name: Bytes,
    },
    /// `UNLISTEN <name>`.
    Unlisten {
        /// Signal name (may be empty).
        name: Bytes,
    },
    /// `MONITOR`.
    Monitor,
    /// `UNMONITOR`.
    Unmonitor,
    /// `QUIT`.
    Quit,
    /// `TIMEOUT` (meaningful only on interclacks links).
    Timeout,
    /// `PING`.
    Ping,
    /// `NOPING`.
    NoPing,
    /// `CLIENTLIST`.
    ClientList,
    /// `CLIENTDISCONNECT <cid>`.
    ClientDisconnect {
        /// Connection id as shown by CLIENTLIST.
        cid: Bytes,
    },
    /// `FLUSH <id>`.
    Flush {
        /// Echoed back in `FLUSHED <id>`.
        id: Bytes,
    },
    /// `STATS` (extension): server counters.
    Stats,
    /// Anything else.
    Unknown {
        /// The whole line.
        line: Bytes,
    },
}

/// Splits `rest` as the regex `(.+?)\ (.*)` does: at least one byte, then up to the next space.
fn take_word(rest: &Bytes) -> Option<(Bytes, Bytes)> {
    if rest.is_empty() {
        return None;
    }
    let idx = rest[1..].iter().position(|&b| b == b' ')? + 1;
    Some((rest.slice(..idx), rest.slice(idx + 1..)))
}

/// Splits `name=value` at the first `=` after a non-empty name (`(.+?)\=(.*)`).
fn split_assign(rest: &Bytes) -> Option<(Bytes, Bytes)> {
    if rest.is_empty() {
        return None;
    }
    let idx = rest[1..].iter().position(|&b| b == b'=')? + 1;
    Some((rest.slice(..idx), rest.slice(idx + 1..)))
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

impl Request {
    /// Parses one line (without terminator). Never fails.
    pub fn parse(line: Bytes) -> Request {
        let unknown = |line: &Bytes| Request::Unknown { line: line.clone() };
        // Comparing the first byte before the whole prefix keeps this chain cheap.
        let first = line.first().copied();
        let has = |prefix: &[u8]| first == prefix.first().copied() && line.starts_with(prefix);
        let after =
            |prefix: &[u8]| -> Option<Bytes> { has(prefix).then(|| line.slice(prefix.len()..)) };
        let nonempty = |b: Bytes| (!b.is_empty()).then_some(b);

        if let Some(info) = after(b"CLACKS ").and_then(nonempty) {
            return Request::Clacks { info };
        }
        if let Some(rest) = after(b"OVERHEAD ") {
            return match take_word(&rest) {
                Some((flags, value)) if !value.is_empty() => Request::Overhead {
                    flags: Flags::parse(&flags),
                    value,
                },
                _ => Request::OverheadWithoutValue,
            };
        }
        if let Some(name) = after(b"NOTIFY ") {
            return Request::Notify { name };
        }
        if let Some((name, value)) = after(b"SET ").as_ref().and_then(split_assign) {
            return Request::Set { name, value };
        }
        if let Some(rest) = after(b"KEYSYNC ") {
            if let Some(req) = parse_keysync(&rest) {
                return req;
            }
        }
        if let Some((key, value)) = after(b"STORE ").as_ref().and_then(split_assign) {
            return Request::Store { key, value };
        }
        if let Some((name, value)) = after(b"SETANDSTORE ").as_ref().and_then(split_assign) {
            return Request::SetAndStore { name, value };
        }
        if let Some(key) = after(b"RETRIEVE ").and_then(nonempty) {
            return Request::Retrieve { key };
        }
        if let Some(key) = after(b"REMOVE ").and_then(nonempty) {
            return Request::Remove { key };
        }
        if let Some(rest) = after(b"INCREMENT ").and_then(nonempty) {
            let (key, step) = split_step(rest);
            return Request::Increment { key, step };
        }
        if let Some(rest) = after(b"DECREMENT ").and_then(nonempty) {
            let (key, step) = split_step(rest);
            return Request::Decrement { key, step };
        }
        if has(b"KEYLIST") {
            return Request::KeyList;
        }
        if has(b"CLEARCACHE") {
            return Request::ClearCache;
        }
        if let Some(name) = after(b"LISTEN ") {
            return Request::Listen { name };
        }
        if let Some(name) = after(b"UNLISTEN ") {
            return Request::Unlisten { name };
        }
        let prefixes: [(&[u8], Request); 8] = [
            (b"MONITOR", Request::Monitor),
            (b"UNMONITOR", Request::Unmonitor),
            (b"QUIT", Request::Quit),
            (b"TIMEOUT", Request::Timeout),
            (b"PING", Request::Ping),
            (b"NOPING", Request::NoPing),
            (b"CLIENTLIST", Request::ClientList),
            (b"STATS", Request::Stats),
        ];
        for (prefix, req) in prefixes {
            if has(prefix) {
                return req;
            }
        }
        if let Some(cid) = after(b"CLIENTDISCONNECT ").and_then(nonempty) {
            return Request::ClientDisconnect { cid };
        }
        if let Some(id) = after(b"FLUSH ").and_then(nonempty) {
            return Request::Flush { id };
        }
        unknown(&line)
    }

    /// Writes this request as one line with CR LF.
    pub fn encode(&self, out: &mut BytesMut) {
        fn put(out: &mut BytesMut, parts: &[&[u8]]) {
            for p in parts {
                out.put_slice(p);
            }
            out.put_slice(CRLF);
        }
        match self {
            Request::Clacks { info } => put(out, &[b"CLACKS ", info]),
            Request::Overhead { flags, value } => {
                put(out, &[b"OVERHEAD ", &flags.to_word(), b" ", value])
            }
            Request::OverheadWithoutValue => put(out, &[b"OVERHEAD Z"]),
            Request::Notify { name } => put(out, &[b"NOTIFY ", name]),
            Request::Set { name, value } => put(out, &[b"SET ", name, b"=", value]),
            Request::KeySync {
                cachetime,
                accesstime,
                mode,
                key,
                value,
            } => put(
                out,
                &[
                    b"KEYSYNC ",
                    cachetime,
                    b" ",
                    accesstime,
                    b" ",
                    mode,
                    b" ",
                    key,
                    b"=",
                    value,
                ],
            ),
            Request::Store { key, value } => put(out, &[b"STORE ", key, b"=", value]),
            Request::SetAndStore { name, value } => put(out, &[b"SETANDSTORE ", name, b"=", value]),
            Request::Retrieve { key } => put(out, &[b"RETRIEVE ", key]),
            Request::Remove { key } => put(out, &[b"REMOVE ", key]),
            Request::Increment { key, step } | Request::Decrement { key, step } => {
                let verb: &[u8] = if matches!(self, Request::Increment { .. }) {
                    b"INCREMENT "
                } else {
                    b"DECREMENT "
                };
                match step {
                    Some(step) => put(out, &[verb, key, b"=", step]),
                    None => put(out, &[verb, key]),
                }
            }
            Request::KeyList => put(out, &[b"KEYLIST"]),
            Request::ClearCache => put(out, &[b"CLEARCACHE"]),
            Request::Listen { name } => put(out, &[b"LISTEN ", name]),
            Request::Unlisten { name } => put(out, &[b"UNLISTEN ", name]),
            Request::Monitor => put(out, &[b"MONITOR"]),
            Request::Unmonitor => put(out, &[b"UNMONITOR"]),
            Request::Quit => put(out, &[b"QUIT"]),
            Request::Timeout => put(out, &[b"TIMEOUT"]),
            Request::Ping => put(out, &[b"PING"]),
            Request::NoPing => put(out, &[b"NOPING"]),
            Request::ClientList => put(out, &[b"CLIENTLIST"]),
            Request::ClientDisconnect { cid } => put(out, &[b"CLIENTDISCONNECT ", cid]),
            Request::Flush { id } => put(out, &[b"FLUSH ", id]),
            Request::Stats => put(out, &[b"STATS"]),
            Request::Unknown { line } => put(out, &[line]),
        }
    }

    /// Whether a server relays this command to its interclacks peers after running it.
    pub fn is_replicated(&self) -> bool {
        matches!(
            self,
            Request::Notify { .. }
                | Request::Set { .. }
                | Request::SetAndStore { .. }
                | Request::Store { .. }
                | Request::Remove { .. }
                | Request::Increment { .. }
                | Request::Decrement { .. }
                | Request::ClearCache
                | Request::KeySync { .. }
        )
    }
}

fn parse_keysync(rest: &Bytes) -> Option<Request> {
    let (cachetime, rest) = take_word(rest)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Request {
        Request::parse(Bytes::copy_from_slice(s.as_bytes()))
    }
    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Request)> = vec![
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
            (
                "SETANDSTORE k=1",
                Request::SetAndStore {
                    name: b("k"),
                    value: b("1"),
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
            ("CLEARCACHE", Request::ClearCache),
            ("LISTEN ", Request::Listen { name: b("") }),
            ("UNLISTEN x", Request::Unlisten { name: b("x") }),
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
        ];
        for (line, want) in cases {
            assert_eq!(p(line), want, "{line}");
        }
    }

    #[test]
    fn encode_round_trip_of_table_rows() {
        for line in [
            "SET a=b",
            "INCREMENT k=5",
            "KEYSYNC 1 2 D k=REMOVED",
            "FLUSH x",
        ] {
            let mut out = BytesMut::new();
            p(line).encode(&mut out);
            assert_eq!(&out[..], format!("{line}\r\n").as_bytes());
        }
    }
}
