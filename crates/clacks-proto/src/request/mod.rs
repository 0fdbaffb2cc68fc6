//! Lines a client (or an interclacks peer) sends to a server.
//!
//! The parsing and encoding of each command lives in the file of its family: [`cache`]
//! (STORE, RETRIEVE, REMOVE, INCREMENT, DECREMENT, KEYLIST, CLEARCACHE), [`signals`] (NOTIFY,
//! SET, SETANDSTORE, LISTEN, UNLISTEN), [`admin`] (CLACKS, OVERHEAD, MONITOR, UNMONITOR, QUIT,
//! TIMEOUT, PING, NOPING, CLIENTLIST, CLIENTDISCONNECT, FLUSH, STATS and unknown lines) and
//! [`keysync`] (the KEYSYNC record of interclacks links) and [`queue`] (QSEND, QRECV, QACK,
//! QNACK, QCANCEL, QSTAT, QLIST, QPURGE, QDELETE, QTEMP) and [`registry`] (REGISTER,
//! UNREGISTER, RESOLVE, SERVICES). This file holds the enum and the two
//! dispatchers. The families' small functions are `#[inline]` so that each dispatcher compiles
//! to one function, as fast as a single hand-written chain.

use bytes::{Bytes, BytesMut};

use crate::words::put_line;
use crate::Flags;

pub(crate) mod admin;
pub(crate) mod cache;
pub(crate) mod keysync;
pub(crate) mod queue;
pub(crate) mod registry;
pub(crate) mod signals;

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
    /// `KEYINCREMENT <cachetime> <base> <step> <result> <key>` (interclacks between `clacksd`
    /// servers only): an `INCREMENT`/`DECREMENT` as it ran at its origin.
    KeyIncrement {
        /// When it ran at the origin (float seconds, the origin's clock).
        cachetime: Bytes,
        /// The cache time of the write the incremented value goes back to (`0`: none).
        base: Bytes,
        /// The step added (negative for a decrement), a number.
        step: Bytes,
        /// The value it gave at the origin.
        result: Bytes,
        /// Cache key (the rest of the line).
        key: Bytes,
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
    /// `CLEARCACHE` (anything after it ignored by v36).
    ClearCache {
        /// `CLEARCACHE <time>` from a `clacksd` peer: records written up to then go.
        time: Option<Bytes>,
    },
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
    /// `QSEND <queue>=<value>`: append a message to a work queue.
    QSend {
        /// Queue name.
        queue: Bytes,
        /// The message (opaque to the server).
        value: Bytes,
    },
    /// `QRECV <queue>[ <timeout>[ <lease>]]`: take one message.
    QRecv {
        /// Queue name.
        queue: Bytes,
        /// Seconds to wait (text); `None`: until a message arrives.
        timeout: Option<Bytes>,
        /// Seconds the message is leased for (text); `None` or `0`: no lease.
        lease: Option<Bytes>,
    },
    /// `QACK <queue> <id>`: done with a leased message.
    QAck {
        /// Queue name.
        queue: Bytes,
        /// The message id from `QMESSAGE`.
        id: Bytes,
    },
    /// `QNACK <queue> <id>`: give a leased message back now.
    QNack {
        /// Queue name.
        queue: Bytes,
        /// The message id from `QMESSAGE`.
        id: Bytes,
    },
    /// `QCANCEL <queue>`: end this connection's waiting receives on a queue.
    QCancel {
        /// Queue name.
        queue: Bytes,
    },
    /// `QSTAT <queue>`: one queue's figures.
    QStat {
        /// Queue name.
        queue: Bytes,
    },
    /// `QLIST`: every queue's figures.
    QList,
    /// `QPURGE <queue>`: drop a queue's messages.
    QPurge {
        /// Queue name.
        queue: Bytes,
    },
    /// `QDELETE <queue>`: drop a queue and end its waiting receives.
    QDelete {
        /// Queue name.
        queue: Bytes,
    },
    /// `QTEMP`: a server-named queue only this connection receives from.
    QTemp,
    /// `REGISTER <service> <endpoint>[ <metadata>]`: an instance of a service, for as long as
    /// this connection lasts.
    Register {
        /// Service name.
        service: Bytes,
        /// Where the instance is reached (`queue:…`, `unix:…`, `tcp:…`, `tls:…`, a URL).
        endpoint: Bytes,
        /// `k=v;k=v;…` (`status=draining`: no new work).
        meta: Option<Bytes>,
    },
    /// `UNREGISTER <service> <id>`.
    Unregister {
        /// Service name.
        service: Bytes,
        /// The instance id from `REGISTERED`.
        id: Bytes,
    },
    /// `RESOLVE <service>`: the live instances.
    Resolve {
        /// Service name.
        service: Bytes,
    },
    /// `SERVICES`: every service with its instance counts.
    Services,
    /// `QFWD <tag> <hops> <line>` (interclacks, between `clacksd` servers): a queue command
    /// a slave forwards towards the root for one of its clients (`tag`), `hops` servers so far.
    QForward {
        /// Names the client on the link that sent it.
        tag: u64,
        /// Servers the command has been forwarded through before.
        hops: u8,
        /// The command line.
        line: Bytes,
    },
    /// `QREPLY <tag> <line>` (interclacks): an answer to a forwarded command.
    QReply {
        /// The client it is for, as named in its `QFWD`.
        tag: u64,
        /// The answer line.
        line: Bytes,
    },
    /// `QDROP <tag>` (interclacks): the client the tag names is gone.
    QDrop {
        /// The client, as named in its `QFWD`.
        tag: u64,
    },
    /// Anything else.
    Unknown {
        /// The whole line.
        line: Bytes,
    },
}

impl Request {
    /// Parses one line (without terminator). Never fails.
    pub fn parse(line: Bytes) -> Request {
        // A line is compared only with the verbs that start with its first byte. No verb is a
        // prefix of another (see the tests), so at most one of them can match.
        macro_rules! first_of {
            ($($parse:expr),+) => {{
                $(if let Some(request) = $parse(&line) {
                    return request;
                })+
            }};
        }
        match line.first() {
            Some(b'C') => first_of!(
                admin::parse_clacks,
                cache::parse_clear_cache,
                admin::parse_client_list,
                admin::parse_client_disconnect
            ),
            Some(b'D') => first_of!(cache::parse_decrement),
            Some(b'F') => first_of!(admin::parse_flush),
            Some(b'I') => first_of!(cache::parse_increment),
            Some(b'K') => first_of!(
                keysync::parse,
                keysync::parse_increment,
                cache::parse_key_list
            ),
            Some(b'L') => first_of!(signals::parse_listen),
            Some(b'M') => first_of!(admin::parse_monitor),
            Some(b'N') => first_of!(signals::parse_notify, admin::parse_no_ping),
            Some(b'O') => first_of!(admin::parse_overhead),
            Some(b'P') => first_of!(admin::parse_ping),
            Some(b'Q') => first_of!(
                queue::parse_send,
                queue::parse_recv,
                queue::parse_forward,
                queue::parse_reply,
                queue::parse_drop,
                queue::parse_ack,
                queue::parse_nack,
                queue::parse_cancel,
                queue::parse_stat,
                queue::parse_list,
                queue::parse_purge,
                queue::parse_delete,
                queue::parse_temp,
                admin::parse_quit
            ),
            Some(b'R') => first_of!(
                cache::parse_retrieve,
                cache::parse_remove,
                registry::parse_register,
                registry::parse_resolve
            ),
            Some(b'S') => first_of!(
                signals::parse_set,
                cache::parse_store,
                signals::parse_set_and_store,
                admin::parse_stats,
                registry::parse_services
            ),
            Some(b'T') => first_of!(admin::parse_timeout),
            Some(b'U') => first_of!(
                signals::parse_unlisten,
                admin::parse_unmonitor,
                registry::parse_unregister
            ),
            _ => {}
        }
        Request::Unknown { line }
    }

    /// This request as one encoded, shareable buffer (to send one line to many).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// Writes this request as one line with CR LF.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Request::Clacks { info } => admin::encode_clacks(out, info),
            Request::Overhead { flags, value } => admin::encode_overhead(out, *flags, value),
            Request::OverheadWithoutValue => put_line(out, &[admin::OVERHEAD, b"Z"]),
            Request::Notify { name } => signals::encode_notify(out, name),
            Request::Set { name, value } => signals::encode_set(out, name, value),
            Request::KeySync {
                cachetime,
                accesstime,
                mode,
                key,
                value,
            } => keysync::encode(out, cachetime, accesstime, mode, key, value),
            Request::KeyIncrement {
                cachetime,
                base,
                step,
                result,
                key,
            } => keysync::encode_increment(out, [cachetime, base, step, result], key),
            Request::Store { key, value } => cache::encode_store(out, key, value),
            Request::SetAndStore { name, value } => signals::encode_set_and_store(out, name, value),
            Request::Retrieve { key } => cache::encode_retrieve(out, key),
            Request::Remove { key } => cache::encode_remove(out, key),
            Request::Increment { key, step } => {
                cache::encode_step(out, cache::INCREMENT, key, step.as_ref())
            }
            Request::Decrement { key, step } => {
                cache::encode_step(out, cache::DECREMENT, key, step.as_ref())
            }
            Request::KeyList => put_line(out, &[cache::KEYLIST]),
            Request::ClearCache { time } => cache::encode_clear_cache(out, time.as_ref()),
            Request::Listen { name } => signals::encode_listen(out, name),
            Request::Unlisten { name } => signals::encode_unlisten(out, name),
            Request::Monitor => put_line(out, &[admin::MONITOR]),
            Request::Unmonitor => put_line(out, &[admin::UNMONITOR]),
            Request::Quit => put_line(out, &[admin::QUIT]),
            Request::Timeout => put_line(out, &[admin::TIMEOUT]),
            Request::Ping => put_line(out, &[admin::PING]),
            Request::NoPing => put_line(out, &[admin::NOPING]),
            Request::ClientList => put_line(out, &[admin::CLIENTLIST]),
            Request::ClientDisconnect { cid } => admin::encode_client_disconnect(out, cid),
            Request::Flush { id } => admin::encode_flush(out, id),
            Request::Stats => put_line(out, &[admin::STATS]),
            Request::QSend { queue, value } => queue::encode_send(out, queue, value),
            Request::QRecv {
                queue,
                timeout,
                lease,
            } => queue::encode_recv(out, queue, timeout.as_ref(), lease.as_ref()),
            Request::QAck { queue, id } => queue::encode_words(out, queue::QACK, &[queue, id]),
            Request::QNack { queue, id } => queue::encode_words(out, queue::QNACK, &[queue, id]),
            Request::QCancel { queue } => queue::encode_words(out, queue::QCANCEL, &[queue]),
            Request::QStat { queue } => queue::encode_words(out, queue::QSTAT, &[queue]),
            Request::QList => put_line(out, &[queue::QLIST]),
            Request::QPurge { queue } => queue::encode_words(out, queue::QPURGE, &[queue]),
            Request::QDelete { queue } => queue::encode_words(out, queue::QDELETE, &[queue]),
            Request::QTemp => put_line(out, &[queue::QTEMP]),
            Request::Register {
                service,
                endpoint,
                meta,
            } => registry::encode_register(out, service, endpoint, meta.as_ref()),
            Request::Unregister { service, id } => {
                put_line(out, &[registry::UNREGISTER, service, b" ", id])
            }
            Request::Resolve { service } => put_line(out, &[registry::RESOLVE, service]),
            Request::Services => put_line(out, &[registry::SERVICES]),
            Request::QForward { tag, hops, line } => queue::encode_forward(out, *tag, *hops, line),
            Request::QReply { tag, line } => queue::encode_reply(out, *tag, line),
            Request::QDrop { tag } => queue::encode_drop(out, *tag),
            Request::Unknown { line } => admin::encode_unknown(out, line),
        }
    }
}

/// Checks that each line parses to its request; the families' table tests use it.
#[cfg(test)]
fn assert_parses(cases: Vec<(&str, Request)>) {
    for (line, want) in cases {
        assert_eq!(Request::parse(crate::words::b(line)), want, "{line}");
    }
}

/// Checks that each line parses to a request that encodes to the very same line.
#[cfg(test)]
fn assert_round_trips(lines: &[&str]) {
    for line in lines {
        let mut out = BytesMut::new();
        Request::parse(crate::words::b(line)).encode(&mut out);
        assert_eq!(&out[..], format!("{line}\r\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verb the families parse, as they compare it.
    const VERBS: [&[u8]; 43] = [
        cache::STORE,
        cache::RETRIEVE,
        cache::REMOVE,
        cache::INCREMENT,
        cache::DECREMENT,
        cache::KEYLIST,
        cache::CLEARCACHE,
        signals::NOTIFY,
        signals::SET,
        signals::SETANDSTORE,
        signals::LISTEN,
        signals::UNLISTEN,
        admin::CLACKS,
        admin::OVERHEAD,
        admin::MONITOR,
        admin::UNMONITOR,
        admin::QUIT,
        admin::TIMEOUT,
        admin::PING,
        admin::NOPING,
        admin::CLIENTLIST,
        admin::CLIENTDISCONNECT,
        admin::FLUSH,
        admin::STATS,
        keysync::KEYSYNC,
        keysync::KEYINCREMENT,
        queue::QSEND,
        queue::QRECV,
        queue::QACK,
        queue::QNACK,
        queue::QCANCEL,
        queue::QSTAT,
        queue::QLIST,
        queue::QPURGE,
        queue::QDELETE,
        queue::QTEMP,
        queue::QFWD,
        queue::QREPLY,
        queue::QDROP,
        registry::REGISTER,
        registry::UNREGISTER,
        registry::RESOLVE,
        registry::SERVICES,
    ];

    #[test]
    fn no_verb_is_a_prefix_of_another() {
        for (i, a) in VERBS.iter().enumerate() {
            for (j, b) in VERBS.iter().enumerate() {
                assert!(i == j || !b.starts_with(a), "{a:?} starts {b:?}");
            }
        }
    }

    #[test]
    fn every_verb_reaches_its_family() {
        for verb in VERBS {
            let words: &[u8] = if [queue::QRECV, queue::QACK, queue::QNACK].contains(&verb) {
                b"q 1"
            } else if [queue::QFWD, queue::QREPLY].contains(&verb) {
                b"1 1 QTEMP"
            } else if verb == queue::QDROP {
                b"1"
            } else if verb == registry::UNREGISTER {
                b"s 1"
            } else {
                b"1 2 U k=v k"
            };
            let line = Bytes::from([verb, words].concat());
            let request = Request::parse(line.clone());
            assert!(!matches!(request, Request::Unknown { .. }), "{line:?}");
            let mut out = BytesMut::new();
            request.encode(&mut out);
            assert!(out.starts_with(verb), "{line:?} parses to {request:?}");
        }
        assert_parses(vec![("", Request::Unknown { line: Bytes::new() })]);
    }
}
