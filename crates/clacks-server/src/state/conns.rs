//! The connection table: every connection as the others see it (CLIENTLIST, delivery,
//! monitors, kicks).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use clacks_proto::{ClientEntry, Reply};
use clacks_store::number::format_float;
use foldhash::fast::RandomState;

use crate::outbox::{CloseReason, Discarded, Outbox};
use crate::stats::Stats;

/// Connection number, unique for the life of the process.
pub(crate) type ConnId = u64;

/// No connection (connection numbers start at 1): the origin of changes made over memcached.
pub(crate) const NO_CONN: ConnId = 0;

/// Where a connection comes from, for its CID.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    Tcp(std::net::SocketAddr),
    Unix,
    /// Our link to our master, with the fixed CID the reference uses.
    Master {
        cid: String,
        host: String,
        port: String,
    },
}

/// One connection as others see it.
pub(crate) struct ConnEntry {
    pub(crate) cid: Bytes,
    host: Bytes,
    port: Bytes,
    pub(crate) clientinfo: Bytes,
    pub(crate) outbox: Arc<Outbox>,
    monitor: bool,
    /// Wall-clock time of the last PING, 0 after NOPING.
    pub(crate) lastping: f64,
    /// Whether this is an interclacks link (either direction).
    interclacks: bool,
    /// Wall-clock time of the last PING we sent on the link.
    pub(crate) lastinterclacksping: f64,
}

/// Every connection, and which of them are monitors.
pub(crate) struct Conns {
    /// Boxed: the table's slots stay small, which matters with many idle connections.
    table: HashMap<ConnId, Box<ConnEntry>, RandomState>,
    monitors: Vec<ConnId>,
    stats: Arc<Stats>,
}

impl Conns {
    pub(crate) fn new(stats: Arc<Stats>) -> Conns {
        Conns {
            table: HashMap::default(),
            monitors: Vec::new(),
            stats,
        }
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Adds connection `id`; returns its CID. Monitors see `DEBUG CONNECTED=<cid>`.
    pub(crate) fn register(
        &mut self,
        id: ConnId,
        now: f64,
        peer: &Peer,
        outbox: Arc<Outbox>,
    ) -> Bytes {
        // The CID is `<host>:<port>`; host and port are slices of it, not copies.
        let (host, port, cid) = match peer {
            Peer::Tcp(addr) => {
                let host = addr.ip().to_string();
                let cid = Bytes::from(format!("{host}:{}:{id}", addr.port()));
                (cid.slice(..host.len()), cid.slice(host.len() + 1..), cid)
            }
            Peer::Unix => {
                const HOST: &str = "unixdomainsocket";
                let cid = Bytes::from(format!("{HOST}:{}:{id}", format_float(now)));
                (
                    Bytes::from_static(HOST.as_bytes()),
                    cid.slice(HOST.len() + 1..),
                    cid,
                )
            }
            Peer::Master { cid, host, port } => (
                Bytes::from(host.clone()),
                Bytes::from(port.clone()),
                Bytes::from(cid.clone()),
            ),
        };
        self.debug(b"CONNECTED", &cid);
        self.table.insert(
            id,
            Box::new(ConnEntry {
                cid: cid.clone(),
                host,
                port,
                clientinfo: Bytes::from_static(b"UNKNOWN"),
                outbox,
                monitor: false,
                lastping: now,
                interclacks: false,
                lastinterclacksping: 0.0,
            }),
        );
        cid
    }

    /// Removes a connection; monitors see `DEBUG DISCONNECTED=…`.
    pub(crate) fn remove(&mut self, id: ConnId, note: Option<&str>) {
        let Some(entry) = self.table.remove(&id) else {
            return;
        };
        self.monitors.retain(|m| *m != id);
        let lost = entry.outbox.discard();
        let cid = String::from_utf8_lossy(&entry.cid);
        if lost.lines > 0 {
            self.count_dropped(&entry, &cid, lost);
        }
        let discarded = lost.bytes;
        let text = match note {
            Some(note) => format!("{cid} ({note}; {discarded} bytes discarded from outbuffer)"),
            None => format!("{cid} ({discarded} bytes discarded from outbuffer)"),
        };
        self.debug(b"DISCONNECTED", text.as_bytes());
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&ConnEntry> {
        self.table.get(&id).map(|e| &**e)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut ConnEntry> {
        self.table.get_mut(&id).map(|e| &mut **e)
    }

    /// Pushes `line` to connection `id`, counting and logging a slow-consumer cut.
    pub(crate) fn deliver(&self, id: ConnId, line: &Bytes) {
        if let Some(entry) = self.table.get(&id) {
            self.push_counted(id, &entry.outbox, line.clone());
        }
    }

    /// Pushes `line` to `outbox` (connection `id`'s), counting and logging a slow-consumer cut
    /// (what the cut connection loses is counted when it is removed).
    pub(crate) fn push_counted(&self, id: ConnId, outbox: &Outbox, line: Bytes) {
        if outbox.push(line) {
            return;
        }
        Stats::bump(&self.stats.slow_consumers);
        let Some(entry) = self.table.get(&id) else {
            return;
        };
        let cid = String::from_utf8_lossy(&entry.cid);
        if entry.interclacks {
            tracing::warn!(
                %cid,
                limit = outbox.cap(),
                "interclacks link cut: output over interclacksmaxoutbuffer; the peer resyncs when it reconnects"
            );
        } else {
            tracing::warn!(%cid, limit = outbox.cap(), "slow consumer cut off: output buffer over its limit");
        }
    }

    /// Counts and logs the lines a closing connection's queue lost: signals and replicated
    /// changes for a link (the peer's resync restores the cache, not the signals), output of a
    /// client cut or gone.
    fn count_dropped(&self, entry: &ConnEntry, cid: &str, lost: Discarded) {
        let counter = if entry.interclacks {
            &self.stats.link_lines_dropped
        } else {
            &self.stats.lines_dropped
        };
        counter.fetch_add(lost.lines, Ordering::Relaxed);
        if entry.interclacks || entry.outbox.was_cut() {
            tracing::warn!(
                %cid,
                link = entry.interclacks,
                lines_dropped = lost.lines,
                bytes_dropped = lost.bytes,
                "lines queued for a closed connection were dropped"
            );
        } else {
            tracing::debug!(%cid, lines_dropped = lost.lines, bytes_dropped = lost.bytes, "lines queued for a closed connection were dropped");
        }
    }

    /// Whether any connection is a monitor.
    pub(crate) fn has_monitors(&self) -> bool {
        !self.monitors.is_empty()
    }

    /// Sends `DEBUG <source>=<text>` to every monitor.
    pub(crate) fn debug(&self, source: &[u8], text: &[u8]) {
        if self.monitors.is_empty() {
            return;
        }
        let line = Reply::Debug {
            source: Bytes::copy_from_slice(source),
            text: Bytes::copy_from_slice(text),
        }
        .to_bytes();
        for id in &self.monitors {
            self.deliver(*id, &line);
        }
    }

    pub(crate) fn set_monitor(&mut self, id: ConnId, on: bool) {
        if let Some(entry) = self.table.get_mut(&id) {
            entry.monitor = on;
        }
        self.monitors.retain(|m| *m != id);
        if on {
            self.monitors.push(id);
        }
    }

    /// Shows a connection as an interclacks link (or not) in CLIENTLIST and slow-consumer logs.
    pub(crate) fn set_interclacks(&mut self, id: ConnId, on: bool) {
        if let Some(entry) = self.table.get_mut(&id) {
            entry.interclacks = on;
        }
    }

    /// Pushes `line` to every connection (except `except`).
    pub(crate) fn broadcast(&self, except: Option<ConnId>, line: &Bytes) {
        for (id, entry) in &self.table {
            if Some(*id) != except {
                self.push_counted(*id, &entry.outbox, line.clone());
            }
        }
    }

    /// Sends `QUIT` to every connection and closes each after what it has queued.
    pub(crate) fn kick_all(&self) {
        let quit = Reply::Quit.to_bytes();
        for entry in self.table.values() {
            entry.outbox.push_last(quit.clone(), CloseReason::Kicked);
        }
    }

    /// The id of the connection with CID `cid`.
    pub(crate) fn find_cid(&self, cid: &[u8]) -> Option<ConnId> {
        self.table
            .iter()
            .find(|(_, e)| &e.cid[..] == cid)
            .map(|(id, _)| *id)
    }

    /// CLIENTLIST entries, sorted by CID.
    pub(crate) fn client_entries(&self) -> Vec<ClientEntry> {
        let mut out: Vec<ClientEntry> = self
            .table
            .values()
            .map(|e| ClientEntry {
                cid: e.cid.clone(),
                host: e.host.clone(),
                port: e.port.clone(),
                clientinfo: e.clientinfo.clone(),
                outbuffer_length: e.outbox.len(),
                inbuffer_length: e.outbox.input_len(),
                interclacks: e.interclacks,
                monitor: e.monitor,
                lastping: Bytes::from(format_float(e.lastping)),
                lastinterclacksping: Bytes::from(format_float(e.lastinterclacksping)),
                writefailtime: Bytes::from_static(b"0"),
            })
            .collect();
        out.sort_by(|a, b| a.cid.cmp(&b.cid));
        out
    }
}
