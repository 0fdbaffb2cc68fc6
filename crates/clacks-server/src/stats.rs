//! Server counters, shown by the `STATS` command and logged at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Monotonic counters (plus `connections_current`).
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Stats {
            /// Every counter with its name, in a fixed order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }

            /// Every counter's name and what it counts, in the order of [`Stats::snapshot`].
            pub const DOCS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($name), $doc),)*];
        }
    };
}

counters! {
    connections_accepted: "Connections accepted (after the TLS handshake).",
    connections_current: "Connections open now.",
    connections_rejected: "Connections refused because `maxconnections` was reached.",
    tls_handshake_failures: "TLS handshakes that failed or timed out.",
    auth_failures: "Failed logins.",
    auth_timeouts: "Connections closed for not authenticating in time.",
    ping_timeouts: "Connections closed for not sending PING in time.",
    stalled_writes: "Connections closed because writes made no progress.",
    lines_too_long: "Connections closed for a line over `maxlinelength`.",
    slow_consumers: "Connections closed for output over `maxoutbuffer`.",
    commands: "Authenticated command lines processed.",
    cache_commands: "Clacks cache commands processed (STORE, SETANDSTORE, RETRIEVE, REMOVE, INCREMENT, DECREMENT, KEYLIST, CLEARCACHE; memcached requests are in `memcached_commands`).",
    unknown_commands: "`unknown_command` errors sent.",
    permission_denied: "`permission_denied` errors sent.",
    messages_delivered: "NOTIFY/SET lines delivered to listeners.",
    persistence_saves: "Persistence files written.",
    persistence_errors: "Persistence writes that failed.",
    memcached_connections: "memcached protocol connections accepted (also in `connections_accepted`).",
    memcached_commands: "memcached protocol requests executed.",
    memcached_get_hits: "memcached `get`/`gets` keys found.",
    memcached_get_misses: "memcached `get`/`gets` keys not found.",
    memcached_sets: "memcached storage commands (`set`, `add`, `replace`, `append`, `prepend`, `cas`).",
    memcached_cas_hits: "memcached `cas` that stored.",
    memcached_cas_misses: "memcached `cas` of a missing key.",
    memcached_cas_badval: "memcached `cas` with a stale unique.",
    memcached_delete_hits: "memcached `delete` of a present key.",
    memcached_delete_misses: "memcached `delete` of a missing key.",
    memcached_incr_hits: "memcached `incr` of a present key.",
    memcached_incr_misses: "memcached `incr` of a missing key.",
    memcached_decr_hits: "memcached `decr` of a present key.",
    memcached_decr_misses: "memcached `decr` of a missing key.",
    memcached_touch_hits: "memcached `touch`/`gat`/`gats` keys found.",
    memcached_touch_misses: "memcached `touch`/`gat`/`gats` keys not found.",
    memcached_flushes: "memcached `flush_all` commands.",
    memcached_too_large: "memcached items refused for being over `maxitemsize`.",
    memcached_client_errors: "memcached `ERROR`/`CLIENT_ERROR` replies (malformed requests).",
    connections_unauthenticated: "Connections open now that have not logged in yet.",
    unauthenticated_rejected: "Connections refused because `maxunauthenticated` connections had not logged in yet.",
    input_paused: "Times a connection stopped reading and executing because its output was over `maxoutbuffer`.",
    link_lines_dropped: "Lines (signals, replicated changes) queued for an interclacks link and dropped when it was cut or closed.",
    lines_dropped: "Lines queued for a client connection and dropped when it was cut (slow consumer) or closed.",
    log_lines_suppressed: "Log lines a connection caused over `logratelimit`, not written.",
    link_bad_times: "Interclacks changes dropped because their time was not a usable number.",
    queue_sent: "Messages taken into work queues (`QSEND`, dead letters).",
    queue_received: "Messages handed to receives (`QMESSAGE`), redeliveries included.",
    queue_acked: "Leased messages acknowledged (`QACK`).",
    queue_redelivered: "Leased messages that went back to their queue (lease over, `QNACK`, receiver gone).",
    queue_rejected: "Messages refused: queue full with the `reject` policy, or over `maxmessagesize`.",
    queue_dropped: "Ready messages dropped to make room (`drop_oldest`).",
    queue_dead_lettered: "Messages moved to `<queue>::dead` after `maxdeliveries` deliveries.",
    queue_limit_refusals: "Queue commands refused by `maxqueues` or `maxwaits`.",
    queues_dropped_idle: "Empty queues forgotten after `queues/idletime` unused.",
    registry_registered: "Service instances registered (`REGISTER` of a new instance).",
    registry_withdrawn: "Service instances gone: `UNREGISTER`, or the end of their connection.",
    registry_refusals: "`REGISTER`s refused by `maxinstances` or `maxperconnection`.",
    journal_records: "Changes written to the journal.",
    journal_bytes: "Size of the current journal file in bytes.",
    journal_fsyncs: "Journal syncs (fdatasync).",
    journal_fsync_micros: "Microseconds spent in journal syncs, all together.",
    journal_fsync_last_micros: "Microseconds the last journal sync took.",
    journal_rotations: "Journal files begun at a persistence save.",
    journal_errors: "Journal writes or syncs that failed (each is retried).",
    memcached_connections_current: "memcached protocol connections open now (also in `connections_current`).",
    http_connections_current: "HTTP connections open now (also in `connections_current`).",
    http_requests: "HTTP requests answered (metrics, health checks, the dashboard).",
    journal_backlog_waits: "Batches whose writer waited for the journal's disk because more than `journal/maxbacklog` bytes were not written yet.",
}

/// The counters that are levels, not running totals (Prometheus gauges).
pub const GAUGES: &[&str] = &[
    "connections_current",
    "connections_unauthenticated",
    "memcached_connections_current",
    "http_connections_current",
    "journal_bytes",
    "journal_fsync_last_micros",
];

/// Upper bounds (seconds) of the command latency histogram's buckets.
pub const LATENCY_BOUNDS: [f64; 12] = [
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 1e-1,
];

/// How long a batch of commands took to run under the state lock (one in
/// [`Latency::SAMPLE`] batches is timed), as a cumulative histogram.
#[derive(Debug, Default)]
pub struct Latency {
    /// Batches at or under each bound of [`LATENCY_BOUNDS`] (not cumulative here).
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    /// Batches over the last bound.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Latency {
    /// One batch in this many is timed.
    pub const SAMPLE: u8 = 16;

    /// Counts one batch that took `took`.
    pub fn record(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        match LATENCY_BOUNDS.iter().position(|b| secs <= *b) {
            Some(i) => Stats::bump(&self.buckets[i]),
            None => Stats::bump(&self.over),
        }
        Stats::add(&self.sum_nanos, took.as_nanos() as u64);
    }

    /// Cumulative counts per bound, then the total count and the sum in seconds.
    pub fn cumulative(&self) -> (Vec<u64>, u64, f64) {
        let mut running = 0;
        let buckets = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        // Counted from the buckets, so that a batch recorded meanwhile cannot make the total
        // smaller than the last bucket.
        let count = running + self.over.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (buckets, count, sum)
    }
}

impl Stats {
    /// memcached's `stats reset`: zeroes the memcached command counters.
    pub fn reset_memcached(&self) {
        for c in [
            &self.memcached_get_hits,
            &self.memcached_get_misses,
            &self.memcached_sets,
            &self.memcached_cas_hits,
            &self.memcached_cas_misses,
            &self.memcached_cas_badval,
            &self.memcached_delete_hits,
            &self.memcached_delete_misses,
            &self.memcached_incr_hits,
            &self.memcached_incr_misses,
            &self.memcached_decr_hits,
            &self.memcached_decr_misses,
            &self.memcached_touch_hits,
            &self.memcached_touch_misses,
            &self.memcached_flushes,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
