//! Lines a server sends to a client.
//!
//! As for requests, the parsing and encoding of each reply lives in the file of its family:
//! [`cache`] (RETRIEVED, NOTRETRIEVED, KEYLISTSTART, KEY, KEYLISTEND), [`signals`] (NOTIFY
//! and SET to a listener) and [`admin`] (CLACKS, OVERHEAD, the CLIENTLIST and STATS lists,
//! FLUSHED, DEBUG, PING, NOP, TIMEOUT, QUIT and other lines) and [`queue`] (QMESSAGE, QEMPTY,
//! QSTATS, the QLIST list, QTEMPNAME) and [`registry`] (REGISTERED, the RESOLVE and SERVICES
//! lists). This file holds the enum and the two dispatchers.

use bytes::{Bytes, BytesMut};

use crate::words::put_line;
use crate::Flags;

mod admin;
mod cache;
mod queue;
mod registry;
mod signals;

pub use admin::ClientEntry;

/// One line from server to client.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `QMESSAGE <queue> <id>=<value>`: a message handed to a `QRECV`.
    QMessage {
        /// Queue name.
        queue: Bytes,
        /// Message id (decimal), for `QACK`/`QNACK`.
        id: Bytes,
        /// The message.
        value: Bytes,
    },
    /// `QEMPTY <queue>`: a `QRECV` ended without a message.
    QEmpty {
        /// Queue name.
        queue: Bytes,
    },
    /// `QSTATS <queue> <k>=<v>;…`.
    QStats {
        /// Queue name.
        queue: Bytes,
        /// The `k=v` fields, `;`-separated.
        fields: Bytes,
    },
    /// `QLISTSTART`.
    QListStart,
    /// `QUEUE <queue> <k>=<v>;…`, one per queue in a `QLIST`.
    Queue {
        /// Queue name.
        queue: Bytes,
        /// The `k=v` fields, `;`-separated.
        fields: Bytes,
    },
    /// `QLISTEND`.
    QListEnd,
    /// `QTEMPNAME <queue>`: the name of a new temporary queue.
    QTempName {
        /// Queue name.
        queue: Bytes,
    },
    /// `REGISTERED <service> <id>`.
    Registered {
        /// Service name.
        service: Bytes,
        /// The new instance's id.
        id: Bytes,
    },
    /// `RESOLVESTART <service>`.
    ResolveStart {
        /// Service name.
        service: Bytes,
    },
    /// `INSTANCE <service> id=…;endpoint=…;…`, one per live instance.
    Instance {
        /// Service name.
        service: Bytes,
        /// The `k=v` fields, `;`-separated.
        fields: Bytes,
    },
    /// `RESOLVEEND <service>`.
    ResolveEnd {
        /// Service name.
        service: Bytes,
    },
    /// `SERVICESSTART`.
    ServicesStart,
    /// `SERVICE <service> instances=…;draining=…`.
    Service {
        /// Service name.
        service: Bytes,
        /// The `k=v` fields, `;`-separated.
        fields: Bytes,
    },
    /// `SERVICESEND`.
    ServicesEnd,
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
        match self {
            Reply::Clacks { info } => admin::encode_clacks(out, info),
            Reply::Overhead { flags, value } => admin::encode_overhead(out, *flags, value),
            Reply::Notify { name } => signals::encode_notify(out, name),
            Reply::Set { name, value } => signals::encode_set(out, name, value),
            Reply::Retrieved { key, value } => cache::encode_retrieved(out, key, value),
            Reply::NotRetrieved { key } => cache::encode_not_retrieved(out, key),
            Reply::KeyListStart => put_line(out, &[cache::KEYLISTSTART]),
            Reply::Key { key } => cache::encode_key(out, key),
            Reply::KeyListEnd => put_line(out, &[cache::KEYLISTEND]),
            Reply::ClientListStart => put_line(out, &[admin::CLIENTLISTSTART]),
            Reply::Client(entry) => admin::encode_client(out, entry),
            Reply::ClientListEnd => put_line(out, &[admin::CLIENTLISTEND]),
            Reply::Flushed { id } => admin::encode_flushed(out, id),
            Reply::Debug { source, text } => admin::encode_debug(out, source, text),
            Reply::StatsStart => put_line(out, &[admin::STATSSTART]),
            Reply::Stat { name, value } => admin::encode_stat(out, name, value),
            Reply::StatsEnd => put_line(out, &[admin::STATSEND]),
            Reply::QMessage { queue, id, value } => queue::encode_message(out, queue, id, value),
            Reply::QEmpty { queue } => put_line(out, &[queue::QEMPTY, queue]),
            Reply::QStats { queue, fields } => {
                queue::encode_fields(out, queue::QSTATS, queue, fields)
            }
            Reply::QListStart => put_line(out, &[queue::QLISTSTART]),
            Reply::Queue { queue, fields } => {
                queue::encode_fields(out, queue::QUEUE, queue, fields)
            }
            Reply::QListEnd => put_line(out, &[queue::QLISTEND]),
            Reply::QTempName { queue } => put_line(out, &[queue::QTEMPNAME, queue]),
            Reply::Registered { service, id } => {
                registry::encode_pair(out, registry::REGISTERED, service, id)
            }
            Reply::ResolveStart { service } => put_line(out, &[registry::RESOLVESTART, service]),
            Reply::Instance { service, fields } => {
                registry::encode_pair(out, registry::INSTANCE, service, fields)
            }
            Reply::ResolveEnd { service } => put_line(out, &[registry::RESOLVEEND, service]),
            Reply::ServicesStart => put_line(out, &[registry::SERVICESSTART]),
            Reply::Service { service, fields } => {
                registry::encode_pair(out, registry::SERVICE, service, fields)
            }
            Reply::ServicesEnd => put_line(out, &[registry::SERVICESEND]),
            Reply::Ping => put_line(out, &[admin::PING]),
            Reply::Nop => put_line(out, &[admin::NOP]),
            Reply::Timeout => admin::encode_timeout(out),
            Reply::Quit => admin::encode_quit(out),
            Reply::Other { line } => admin::encode_other(out, line),
        }
    }

    /// Like [`Reply::encode`], but without copying the value of a `RETRIEVED` reply: writes
    /// the reply up to the value and returns the value, which the caller sends next, followed
    /// by [`CRLF`](crate::CRLF). Other replies are written whole (and `None` returned).
    pub fn encode_head(&self, out: &mut BytesMut) -> Option<&Bytes> {
        match self {
            Reply::Retrieved { key, value } => {
                cache::encode_retrieved_head(out, key);
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
        // As for requests, the first byte selects the candidates: whole-line words first, then
        // prefixes. At most one of them can match (see the tests).
        macro_rules! first_of {
            ($($parse:expr),+) => {{
                $(if let Some(reply) = $parse(&line) {
                    return reply;
                })+
            }};
        }
        match line.first() {
            Some(b'C') => first_of!(
                admin::parse_client_list_start,
                admin::parse_client_list_end,
                admin::parse_clacks,
                admin::parse_client
            ),
            Some(b'D') => first_of!(admin::parse_debug),
            Some(b'F') => first_of!(admin::parse_flushed),
            Some(b'K') => first_of!(
                cache::parse_key_list_start,
                cache::parse_key_list_end,
                cache::parse_key
            ),
            Some(b'N') => first_of!(
                admin::parse_nop,
                signals::parse_notify,
                cache::parse_not_retrieved
            ),
            Some(b'O') => first_of!(admin::parse_overhead),
            Some(b'P') => first_of!(admin::parse_ping),
            Some(b'Q') => first_of!(
                admin::parse_quit,
                queue::parse_list_start,
                queue::parse_list_end,
                queue::parse_message,
                queue::parse_empty,
                queue::parse_stats,
                queue::parse_queue,
                queue::parse_temp_name
            ),
            Some(b'R') => first_of!(
                cache::parse_retrieved,
                registry::parse_registered,
                registry::parse_resolve_start,
                registry::parse_resolve_end
            ),
            Some(b'I') => first_of!(registry::parse_instance),
            Some(b'S') => first_of!(
                admin::parse_stats_start,
                admin::parse_stats_end,
                signals::parse_set,
                admin::parse_stat,
                registry::parse_services_start,
                registry::parse_services_end,
                registry::parse_service
            ),
            Some(b'T') => first_of!(admin::parse_timeout),
            _ => {}
        }
        Reply::Other { line }
    }
}

/// Checks that each line parses to its reply; the families' table tests use it.
#[cfg(test)]
fn assert_parses(cases: Vec<(&str, Reply)>) {
    for (line, want) in cases {
        assert_eq!(Reply::parse(crate::words::b(line)), want, "{line}");
    }
}

/// Checks that each reply encodes to its text.
#[cfg(test)]
fn assert_encodes(cases: Vec<(Reply, &str)>) {
    for (reply, want) in cases {
        let got = reply.to_bytes();
        assert_eq!(String::from_utf8_lossy(&got), want, "{reply:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::b;
    use crate::CRLF;

    #[test]
    fn encode_head_leaves_out_only_the_retrieved_value() {
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
    }

    /// Every word and prefix the families parse, as they compare it.
    const VERBS: [&[u8]; 35] = [
        cache::RETRIEVED,
        cache::NOTRETRIEVED,
        cache::KEYLISTSTART,
        cache::KEY,
        cache::KEYLISTEND,
        signals::NOTIFY,
        signals::SET,
        admin::CLACKS,
        admin::OVERHEAD,
        admin::CLIENTLISTSTART,
        admin::CLIENT,
        admin::CLIENTLISTEND,
        admin::FLUSHED,
        admin::DEBUG,
        admin::STATSSTART,
        admin::STAT,
        admin::STATSEND,
        admin::PING,
        admin::NOP,
        admin::TIMEOUT,
        admin::QUIT,
        queue::QMESSAGE,
        queue::QEMPTY,
        queue::QSTATS,
        queue::QLISTSTART,
        queue::QUEUE,
        queue::QLISTEND,
        queue::QTEMPNAME,
        registry::REGISTERED,
        registry::RESOLVESTART,
        registry::INSTANCE,
        registry::RESOLVEEND,
        registry::SERVICESSTART,
        registry::SERVICE,
        registry::SERVICESEND,
    ];

    #[test]
    fn no_prefix_starts_another_word_or_prefix() {
        // Whole-line words may start each other (`PING` is never compared with `PINGX`);
        // a prefix (ending in a space) must start no other entry.
        for (i, a) in VERBS.iter().enumerate() {
            for (j, b) in VERBS.iter().enumerate() {
                let prefix = a.ends_with(b" ");
                assert!(i == j || !prefix || !b.starts_with(a), "{a:?} starts {b:?}");
            }
        }
    }

    #[test]
    fn every_word_reaches_its_family() {
        for verb in VERBS {
            let line = if verb.ends_with(b" ") {
                Bytes::from([verb, b"a b=c"].concat())
            } else {
                Bytes::from_static(verb)
            };
            let reply = Reply::parse(line.clone());
            let wire = reply.to_bytes();
            let text = wire.strip_prefix(CRLF).unwrap_or(&wire);
            assert!(text.starts_with(verb), "{line:?} parses to {reply:?}");
            assert!(!matches!(reply, Reply::Other { .. }), "{line:?}");
        }
        assert_parses(vec![("", Reply::Other { line: Bytes::new() })]);
    }
}
