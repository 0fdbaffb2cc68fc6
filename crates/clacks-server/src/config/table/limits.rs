//! Rows for timeouts, cache lifetimes, limits and the cache memory limit.

use super::*;

/// `<authtimeout>`: time a new connection has to log in.
pub const AUTH_TIMEOUT: Numeric<Duration> = secs(
    "authtimeout",
    15,
    S,
    DAY,
    "Time a new connection has to log in",
);
/// `<pingtimeout>`: a client that sent no PING for this long is disconnected (`NOPING` turns
/// the check off for one connection).
pub const PING_TIMEOUT: Numeric<Duration> = secs(
    "pingtimeout",
    180,
    S,
    DAY,
    "A client that sent no PING for this long is disconnected (NOPING turns the check off)",
);
/// `<tlshandshaketimeout>`: time a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Numeric<Duration> = secs(
    "tlshandshaketimeout",
    10,
    S,
    Duration::from_secs(3600),
    "Time a TLS handshake may take",
);
/// `<stalledwritetimeout>`: a connection whose writes make no progress this long is dropped.
pub const STALLED_WRITE_TIMEOUT: Numeric<Duration> = secs(
    "stalledwritetimeout",
    60,
    S,
    DAY,
    "A connection whose writes make no progress this long is dropped",
);
/// `<deletedcachetime>`: tombstone lifetime. Only compared with record times, never a timer,
/// so up to a century (0: tombstones go at the next cleanup).
pub const DELETED_CACHE_TIME: Numeric<Duration> = secs(
    "deletedcachetime",
    3600,
    Duration::ZERO,
    YEAR.saturating_mul(100),
    "How long a deleted key's tombstone is kept (0: until the next cleanup)",
);
/// `<stalecachetime>`: entries not read for this long are purged. Only compared with record
/// times, so up to a century ("never" in practice).
pub const STALE_CACHE_TIME: Numeric<Duration> = secs(
    "stalecachetime",
    86_400,
    S,
    YEAR.saturating_mul(100),
    "Keys neither read nor written for this long are purged",
);
/// `<cachecleaninterval>`: cleanup period.
pub const CACHE_CLEAN_INTERVAL: Numeric<Duration> = secs(
    "cachecleaninterval",
    60,
    TENTH,
    DAY,
    "Time between two cache cleanups",
);
/// `<maxlinelength>`: longest input line in bytes.
pub const MAX_LINE_LENGTH: Numeric<usize> = count(
    "maxlinelength",
    2 * MIB,
    KIB,
    GIB,
    "Longest input line in bytes, also for the memcached listener",
);
/// `<maxconnections>`: most simultaneous connections.
pub const MAX_CONNECTIONS: Numeric<usize> = count(
    "maxconnections",
    10_000,
    1,
    1_000_000,
    "Most simultaneous connections; one more is refused",
);
/// `<maxoutbuffer>`: bytes queued for one connection before it is cut as a slow consumer.
pub const MAX_OUT_BUFFER: Numeric<usize> = count(
    "maxoutbuffer",
    16 * MIB,
    KIB,
    GIB,
    "Bytes queued for one connection before it is cut as a slow consumer",
);
/// `<authmaxlinelength>`: longest input line before login (bounded by `maxlinelength` too).
pub const AUTH_MAX_LINE_LENGTH: Numeric<usize> = count(
    "authmaxlinelength",
    16 * KIB,
    64,
    64 * MIB,
    "Longest input line before login (and at most <maxlinelength>)",
);
/// `<maxunauthenticated>`: most connections that have not logged in yet.
pub const MAX_UNAUTHENTICATED: Numeric<usize> = count(
    "maxunauthenticated",
    1024,
    1,
    1_000_000,
    "Most connections that have not logged in yet; one more is refused",
);
/// `<authfaildelay>`: how long a failed login waits before its answer and the close.
pub const AUTH_FAIL_DELAY: Numeric<Duration> = Numeric {
    element: "authfaildelay",
    default: Duration::from_millis(500),
    min: Duration::ZERO,
    max: Duration::from_secs(60),
    doc: "How long a failed login waits before its answer and the close",
};
/// `<logratelimit>`: log lines one connection may cause per minute; the rest are counted and
/// summarised (0: none).
pub const LOG_RATE_LIMIT: Numeric<usize> = count(
    "logratelimit",
    10,
    0,
    1_000_000,
    "Log lines one connection may cause per minute; the rest are counted and summarised",
);
/// `<workerthreads>` (and `clacksd --threads`): runtime worker threads; default one per core.
pub const WORKER_THREADS: Range<usize> = Range {
    element: "workerthreads",
    min: 1,
    max: 1024,
    example: 1,
    doc: "Runtime worker threads (absent: one per core); the threads flag of clacksd overrides it",
};
/// `<maxmemory>`: memory limit of the cache (0: none, the default for a v36 config).
pub const MAX_MEMORY: Numeric<ByteSize> = Numeric {
    element: "maxmemory",
    default: ByteSize(0),
    min: ByteSize(0),
    max: ByteSize(1 << 50),
    doc: "Memory limit of the cache in bytes, or with K, M or G (powers of 1024), counted per \
          record as key + value + about 220 bytes, tombstones included; 0: none (a warning at \
          start)",
};
/// `<maxmemorypolicy>`.
pub const MAX_MEMORY_POLICY: Choice<MemoryPolicy> = Choice {
    element: "maxmemorypolicy",
    default: MemoryPolicy::Reject,
    options: &[
        ("reject", MemoryPolicy::Reject),
        ("evict", MemoryPolicy::Evict),
    ],
    doc: "A write over <maxmemory>: reject (the writer gets OVERHEAD E out_of_memory) or evict \
          (least recently used values make room)",
};
