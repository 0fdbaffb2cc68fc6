//! Every element of the config file, stated once: its name, what it holds, its default and
//! allowed range, and a one-line doc.
//!
//! The reader ([`super`]) reads each element through its row here, so a value outside its range
//! is a config error naming the element and the range, and nothing downstream (timers,
//! `Instant + Duration`, allocations, thread pools) ever sees an absurd number. [`Config`]
//! defaults come from the rows, the sample config (`clacksd --print-default-config`) is generated
//! from [`GROUPS`], and the element list in the protocol docs is checked against them. A new
//! element gets a row here, a place in [`GROUPS`] and a line in the reader.
//!
//! [`Config`]: super::Config

use std::time::Duration;

use super::MemoryPolicy;

pub use super::entry::{entries, leaf, root_entries, Entry, Group};
use super::value::{count, needed, port, secs, text};
pub use super::value::{
    human_bytes, ByteSize, Choice, Numeric, Octal, Range, Section, Text, Value, DAY, GIB, KIB, MIB,
    YEAR,
};
use super::{Fsync, Overflow, PersistenceOnError};

const S: Duration = Duration::from_secs(1);
const TENTH: Duration = Duration::from_millis(100);

/// `<appname>`: a name for people; accepted, not used.
pub const APPNAME: Text = needed(
    "appname",
    "Clacks server",
    "A name for this server; the Perl server uses it, clacksd accepts it",
);
/// `<ip>`: a TLS listen address (repeatable).
pub const IP: Text = text(
    "ip",
    "127.0.0.1",
    "Address to listen on with TLS over TCP, repeatable; needs <port> and <ssl>",
);
/// `<port>`: the TLS port.
pub const PORT: Range<u16> = port("port", 49888, "TLS port of every <ip>");
/// `<ssl><cert>`.
pub const SSL_CERT: Text = text(
    "ssl/cert",
    "/etc/clacks/server.crt",
    "PEM certificate chain file",
);
/// `<ssl><key>`.
pub const SSL_KEY: Text = text("ssl/key", "/etc/clacks/server.key", "PEM private key file");
/// `<ssl>`.
pub const SSL: Section = Section {
    element: "ssl",
    children: &[Entry::Path(SSL_CERT), Entry::Path(SSL_KEY)],
    examples: &[&["cert", "key"]],
    doc: "TLS certificate and key of the <ip> listeners, required with <ip>",
};
/// `<socket>`: a Unix socket (repeatable).
pub const SOCKET: Text = needed(
    "socket",
    "/tmp/clacks.sock",
    "Unix domain socket to listen on (plain text), repeatable",
);
/// `<socketchmod>`: mode of the socket files.
pub const SOCKETCHMOD: Range<Octal> = Range {
    element: "socketchmod",
    min: Octal(0),
    max: Octal(0o7777),
    example: Octal(0o660),
    doc: "Mode of every socket file, in octal",
};
/// `<socketcommands><item>` (repeatable).
pub const SOCKETCOMMANDS_ITEM: Text = text(
    "socketcommands/item",
    "chgrp www-data /tmp/clacks.sock",
    "A shell command, repeatable",
);
/// `<socketcommands>`.
pub const SOCKETCOMMANDS: Section = Section {
    element: "socketcommands",
    children: &[Entry::Text(SOCKETCOMMANDS_ITEM)],
    examples: &[&["item"]],
    doc: "Shell commands run after each socket is created",
};
/// `<username>`: the main user.
pub const USERNAME: Text = needed(
    "username",
    "exampleuser",
    "Main user: every permission, and the login of interclacks links (required)",
);
/// `<password>`: the main user's password.
pub const PASSWORD: Text = needed(
    "password",
    "unsafepassword",
    "Password of the main user (required)",
);
/// `<user><username>`.
pub const USER_USERNAME: Text = text("user/username", "rwuser", "Login name (required)");
/// `<user><password>`.
pub const USER_PASSWORD: Text = text("user/password", "foo", "Password (required)");
/// `<user><read>`.
pub const USER_READ: Text = text(
    "user/read",
    "1",
    "1: may read (RETRIEVE, KEYLIST, LISTEN, UNLISTEN)",
);
/// `<user><write>`.
pub const USER_WRITE: Text = text("user/write", "1", "1: may write (NOTIFY, SET, STORE, …)");
/// `<user><manage>`.
pub const USER_MANAGE: Text = text(
    "user/manage",
    "0",
    "1: may manage (CLEARCACHE, MONITOR, CLIENTLIST, …)",
);
/// `<user>` (repeatable).
pub const USER: Section = Section {
    element: "user",
    children: &[
        Entry::Text(USER_USERNAME),
        Entry::Text(USER_PASSWORD),
        Entry::Flag(USER_READ),
        Entry::Flag(USER_WRITE),
        Entry::Flag(USER_MANAGE),
    ],
    examples: &[&["username", "password", "read", "write", "manage"]],
    doc: "An extra user with the permissions given (never an interclacks peer), repeatable",
};
/// `<master><ip>`.
pub const MASTER_IP: Text = text(
    "master/ip",
    "10.0.0.1",
    "Host or address of the master, reached with TLS",
);
/// `<master><port>`.
pub const MASTER_PORT: Range<u16> = port("master/port", 49888, "Its TLS port (required with <ip>)");
/// `<master><socket>`.
pub const MASTER_SOCKET: Text = text(
    "master/socket",
    "/run/clacks/master.sock",
    "A Unix socket of the master instead of <ip> and <port> (plain text)",
);
/// `<master><cafile>` (extension).
pub const MASTER_CAFILE: Text = text(
    "master/cafile",
    "/etc/clacks/ca.pem",
    "PEM CA bundle: the master's certificate must be signed by one of these CAs for the <ip> name",
);
/// `<master><pin>` (extension).
pub const MASTER_PIN: Text = text(
    "master/pin",
    "/etc/clacks/master.pem",
    "PEM file of the master's exact certificate; without <cafile> or <pin> any certificate is \
     accepted, as in v36, and the main password goes to whoever answers",
);
/// `<master>`.
pub const MASTER: Section = Section {
    element: "master",
    children: &[
        Entry::Text(MASTER_IP),
        Entry::Port(MASTER_PORT),
        Entry::Path(MASTER_SOCKET),
        Entry::Path(MASTER_CAFILE),
        Entry::Path(MASTER_PIN),
    ],
    examples: &[
        &["ip", "port"],
        &["ip", "port", "cafile"],
        &["ip", "port", "pin"],
        &["socket"],
    ],
    doc: "Makes this server a slave of this master; both must have the same main user and password",
};
/// `<interclacksreconnecttimeout>`: longest wait between two connection attempts to the master.
pub const INTERCLACKS_RECONNECT_TIMEOUT: Numeric<Duration> = secs(
    "interclacksreconnecttimeout",
    30,
    TENTH,
    DAY,
    "Longest wait between two connection attempts to the master",
);
/// `<interclackspingtimeout>`: the ping timeout of interclacks links, which are pinged every
/// third of it (at least every second), hence at least 3 s.
pub const INTERCLACKS_PING_TIMEOUT: Numeric<Duration> = secs(
    "interclackspingtimeout",
    60,
    Duration::from_secs(3),
    DAY,
    "An interclacks link silent this long is closed; links are pinged every third of it",
);
/// `<interclacksstalledwritetimeout>`: [`STALLED_WRITE_TIMEOUT`] for interclacks links.
pub const INTERCLACKS_STALLED_WRITE_TIMEOUT: Numeric<Duration> = secs(
    "interclacksstalledwritetimeout",
    120,
    S,
    DAY,
    "An interclacks link whose writes make no progress this long is dropped",
);
/// `<interclacksmaxoutbuffer>`: bytes queued for one interclacks link before it is cut (the
/// peer resyncs when it reconnects).
pub const INTERCLACKS_MAX_OUT_BUFFER: Numeric<usize> = count(
    "interclacksmaxoutbuffer",
    256 * MIB,
    KIB,
    16 * GIB,
    "Bytes queued for one interclacks link before it is cut (the peer resyncs when it is back)",
);
/// `<persistancefile>`.
pub const PERSISTENCE_FILE: Text = text(
    "persistancefile",
    "/var/lib/clacks/cache.dat",
    "File the cache is loaded from at start and saved to",
);
/// `<persistanceinterval>`: minimum time between two saves.
pub const PERSISTENCE_INTERVAL: Numeric<Duration> = secs(
    "persistanceinterval",
    10,
    TENTH,
    DAY,
    "Minimum time between two saves",
);
/// `<persistanceonerror>` (extension).
pub const PERSISTENCE_ON_ERROR: Choice<PersistenceOnError> = Choice {
    element: "persistanceonerror",
    default: PersistenceOnError::Refuse,
    options: &[
        ("refuse", PersistenceOnError::Refuse),
        ("moveaside", PersistenceOnError::MoveAside),
    ],
    doc: "A persistence file that exists but cannot be read: refuse to start, or moveaside \
          (add .bad-<unix time> to its name and start empty)",
};
/// `<journal><file>`.
pub const JOURNAL_FILE: Text = text(
    "journal/file",
    "/var/lib/clacks/journal",
    "The journal of changes since the last save (required in <journal>); <file>.prev is the \
     one before",
);
/// `<journal><fsync>`.
pub const JOURNAL_FSYNC: Choice<Fsync> = Choice {
    element: "journal/fsync",
    default: Fsync::EverySec,
    options: &[
        ("always", Fsync::Always),
        ("everysec", Fsync::EverySec),
        ("no", Fsync::No),
    ],
    doc: "When changes reach the disk: always (before they are acknowledged: FLUSHED, \
          memcached replies), everysec (about a second of changes may be lost) or no (the OS \
          decides)",
};
/// `<journal><maxbacklog>`.
pub const JOURNAL_MAX_BACKLOG: Numeric<usize> = count(
    "journal/maxbacklog",
    64 * MIB,
    KIB,
    16 * GIB,
    "Bytes of changes not yet written over which every writer waits for the disk (keeps memory \
     bounded when the disk is slow)",
);
/// `<journal>` (extension).
pub const JOURNAL: Section = Section {
    element: "journal",
    children: &[
        Entry::Path(JOURNAL_FILE),
        Entry::Fsync(JOURNAL_FSYNC),
        Entry::Bytes(JOURNAL_MAX_BACKLOG),
    ],
    examples: &[&["file", "fsync", "maxbacklog"]],
    doc: "An append-only journal of every change between saves, replayed at start (off when \
          absent)",
};
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
/// `<memcached><ip>` (repeatable).
pub const MEMCACHED_IP: Text = Text {
    default: Some("127.0.0.1"),
    ..text(
        "memcached/ip",
        "127.0.0.1",
        "Address for <port>, repeatable",
    )
};
/// `<memcached><port>`.
pub const MEMCACHED_PORT: Range<u16> = port(
    "memcached/port",
    11211,
    "TCP port (plain TCP, like memcached)",
);
/// `<memcached><socket>` (repeatable).
pub const MEMCACHED_SOCKET: Text = text(
    "memcached/socket",
    "/run/clacks/memcached.sock",
    "Unix socket, repeatable",
);
/// `<memcached><maxitemsize>`: largest memcached item value in bytes.
/// At most 512 MiB: a stored value must also fit on one interclacks line (base64, at most
/// `maxlinelength`).
pub const MEMCACHED_MAX_ITEM_SIZE: Numeric<usize> = count(
    "memcached/maxitemsize",
    MIB,
    1,
    512 * MIB,
    "Largest item value in bytes; 4/3 of it + 512 must fit in <maxlinelength>",
);
/// `<memcached>` (extension).
pub const MEMCACHED: Section = Section {
    element: "memcached",
    children: &[
        Entry::Text(MEMCACHED_IP),
        Entry::Port(MEMCACHED_PORT),
        Entry::Path(MEMCACHED_SOCKET),
        Entry::Bytes(MEMCACHED_MAX_ITEM_SIZE),
    ],
    examples: &[&["ip", "port", "socket", "maxitemsize"]],
    doc: "The memcached text protocol on the same cache, off unless present; it needs <port> or \
          <socket>. memcached has no authentication: keep it on loopback or a Unix socket",
};
/// `<http><ip>` (repeatable).
pub const HTTP_IP: Text = Text {
    default: Some("127.0.0.1"),
    ..text(
        "http/ip",
        "127.0.0.1",
        "Address for <port>, repeatable; an address that is not loopback requires HTTP basic \
         auth of a user with manage permission",
    )
};
/// `<http><port>`.
pub const HTTP_PORT: Range<u16> = port(
    "http/port",
    49889,
    "TCP port of /metrics, /healthz, /readyz and the dashboard (required)",
);
/// `<http>` (extension).
pub const HTTP: Section = Section {
    element: "http",
    children: &[Entry::Text(HTTP_IP), Entry::Port(HTTP_PORT)],
    examples: &[&["ip", "port"]],
    doc: "The HTTP listener: Prometheus metrics, health checks and a live dashboard, off unless \
          present",
};
/// `<queues><maxmessages>`.
pub const QUEUES_MAX_MESSAGES: Numeric<usize> = count(
    "queues/maxmessages",
    100_000,
    1,
    100_000_000,
    "Most messages in one queue, ready and leased",
);
/// `<queues><maxbytes>`.
pub const QUEUES_MAX_BYTES: Numeric<usize> = count(
    "queues/maxbytes",
    64 * MIB,
    KIB,
    16 * GIB,
    "Most bytes of messages in one queue, ready and leased",
);
/// `<queues><maxmessagesize>`.
pub const QUEUES_MAX_MESSAGE_SIZE: Numeric<usize> = count(
    "queues/maxmessagesize",
    MIB,
    1,
    GIB,
    "Largest message in bytes (a message is also one line, under <maxlinelength>)",
);
/// `<queues><overflow>`.
pub const QUEUES_OVERFLOW: Choice<Overflow> = Choice {
    element: "queues/overflow",
    default: Overflow::Reject,
    options: &[
        ("reject", Overflow::Reject),
        ("drop_oldest", Overflow::DropOldest),
    ],
    doc: "A message for a full queue: reject (the sender gets OVERHEAD E queue_full) or \
          drop_oldest (the oldest ready messages make room)",
};
/// `<queues><maxdeliveries>`.
pub const QUEUES_MAX_DELIVERIES: Numeric<usize> = count(
    "queues/maxdeliveries",
    5,
    1,
    1_000_000,
    "A leased message handed out this many times and not acknowledged moves to <queue>::dead",
);
/// `<queues><maxqueues>`.
pub const QUEUES_MAX_QUEUES: Numeric<usize> = count(
    "queues/maxqueues",
    10_000,
    1,
    10_000_000,
    "Most queues on this server; a new one beyond them is refused (too_many_queues)",
);
/// `<queues><maxtotalbytes>`.
pub const QUEUES_MAX_TOTAL_BYTES: Numeric<usize> = count(
    "queues/maxtotalbytes",
    256 * MIB,
    KIB,
    64 * GIB,
    "Most bytes of messages in all queues together",
);
/// `<queues><maxwaits>`.
pub const QUEUES_MAX_WAITS: Numeric<usize> = count(
    "queues/maxwaits",
    1_000,
    1,
    1_000_000,
    "Most waiting receives of one connection (too_many_waits)",
);
/// `<queues><idletime>`.
pub const QUEUES_IDLE_TIME: Numeric<Duration> = secs(
    "queues/idletime",
    3_600,
    S,
    YEAR.saturating_mul(100),
    "An empty queue no one used for this long is forgotten, its figures with it",
);
/// `<queues>` (extension).
pub const QUEUES: Section = Section {
    element: "queues",
    children: &[
        Entry::Count(QUEUES_MAX_MESSAGES),
        Entry::Bytes(QUEUES_MAX_BYTES),
        Entry::Bytes(QUEUES_MAX_MESSAGE_SIZE),
        Entry::Overflow(QUEUES_OVERFLOW),
        Entry::Count(QUEUES_MAX_DELIVERIES),
        Entry::Count(QUEUES_MAX_QUEUES),
        Entry::Bytes(QUEUES_MAX_TOTAL_BYTES),
        Entry::Count(QUEUES_MAX_WAITS),
        Entry::Seconds(QUEUES_IDLE_TIME),
    ],
    examples: &[&[
        "maxmessages",
        "maxbytes",
        "maxmessagesize",
        "overflow",
        "maxdeliveries",
        "maxqueues",
        "maxtotalbytes",
        "maxwaits",
        "idletime",
    ]],
    doc: "Limits of the work queues (QSEND, QRECV); every child has its default when absent",
};
/// `<queueprefix><prefix>`.
pub const QUEUEPREFIX_PREFIX: Text = text(
    "queueprefix/prefix",
    "Telemetry::",
    "The queues whose names start with this (required)",
);
/// `<queueprefix><maxmessages>`.
pub const QUEUEPREFIX_MAX_MESSAGES: Numeric<usize> = Numeric {
    element: "queueprefix/maxmessages",
    doc: "Their <maxmessages> (absent: that of <queues>)",
    ..QUEUES_MAX_MESSAGES
};
/// `<queueprefix><maxbytes>`.
pub const QUEUEPREFIX_MAX_BYTES: Numeric<usize> = Numeric {
    element: "queueprefix/maxbytes",
    doc: "Their <maxbytes> (absent: that of <queues>)",
    ..QUEUES_MAX_BYTES
};
/// `<queueprefix><maxmessagesize>`.
pub const QUEUEPREFIX_MAX_MESSAGE_SIZE: Numeric<usize> = Numeric {
    element: "queueprefix/maxmessagesize",
    doc: "Their <maxmessagesize> (absent: that of <queues>)",
    ..QUEUES_MAX_MESSAGE_SIZE
};
/// `<queueprefix><overflow>`.
pub const QUEUEPREFIX_OVERFLOW: Choice<Overflow> = Choice {
    element: "queueprefix/overflow",
    doc: "Their <overflow> (absent: that of <queues>)",
    ..QUEUES_OVERFLOW
};
/// `<queueprefix>` (extension, repeatable).
pub const QUEUEPREFIX: Section = Section {
    element: "queueprefix",
    children: &[
        Entry::Text(QUEUEPREFIX_PREFIX),
        Entry::Count(QUEUEPREFIX_MAX_MESSAGES),
        Entry::Bytes(QUEUEPREFIX_MAX_BYTES),
        Entry::Bytes(QUEUEPREFIX_MAX_MESSAGE_SIZE),
        Entry::Overflow(QUEUEPREFIX_OVERFLOW),
    ],
    examples: &[&[
        "prefix",
        "maxmessages",
        "maxbytes",
        "maxmessagesize",
        "overflow",
    ]],
    doc: "Other limits for the queues whose names start with <prefix>, repeatable; the longest \
          matching prefix applies",
};
/// `<registry><maxinstances>`.
pub const REGISTRY_MAX_INSTANCES: Numeric<usize> = count(
    "registry/maxinstances",
    100_000,
    1,
    10_000_000,
    "Most registered instances on this server (too_many_instances)",
);
/// `<registry><maxperconnection>`.
pub const REGISTRY_MAX_PER_CONNECTION: Numeric<usize> = count(
    "registry/maxperconnection",
    1_000,
    1,
    1_000_000,
    "Most instances one connection (or one client behind a slave) registers",
);
/// `<registry>` (extension).
pub const REGISTRY: Section = Section {
    element: "registry",
    children: &[
        Entry::Count(REGISTRY_MAX_INSTANCES),
        Entry::Count(REGISTRY_MAX_PER_CONNECTION),
    ],
    examples: &[&["maxinstances", "maxperconnection"]],
    doc: "Limits of the service registry (REGISTER, RESOLVE)",
};
/// `<hosts>`.
pub const HOSTS: Text = text(
    "hosts",
    "<otherhost><port>49889</port></otherhost>",
    "On the host called NAME, the children of <hosts><NAME> replace the root elements of the \
     same name",
);
const fn ignored(element: &'static str, example: &'static str) -> Entry {
    Entry::Ignored(text(
        element,
        example,
        "Read by the Perl server; accepted without effect here",
    ))
}
/// The environment variable `CLACKS_SIMULATED_TIME_OFFSET`: seconds added to the clock, at most
/// ten years either way.
pub const TIME_OFFSET: Range<f64> = Range {
    element: "CLACKS_SIMULATED_TIME_OFFSET",
    min: -10.0 * 365.0 * 86_400.0,
    max: 10.0 * 365.0 * 86_400.0,
    example: 0.0,
    doc: "Seconds added to the clock (an environment variable, not an element)",
};

/// Every element of the config file, in the order the sample config shows them.
pub const GROUPS: &[Group] = &[
    Group {
        title: "This server",
        entries: &[Entry::Text(APPNAME)],
    },
    Group {
        title: "Listeners: TLS over TCP on every <ip> at <port>, and Unix sockets",
        entries: &[
            Entry::Text(IP),
            Entry::Port(PORT),
            Entry::Section(SSL),
            Entry::Path(SOCKET),
            Entry::Mode(SOCKETCHMOD),
            Entry::Section(SOCKETCOMMANDS),
        ],
    },
    Group {
        title: "Users",
        entries: &[
            Entry::Text(USERNAME),
            Entry::Text(PASSWORD),
            Entry::Section(USER),
        ],
    },
    Group {
        title: "Interclacks: this server as the slave of a master",
        entries: &[
            Entry::Section(MASTER),
            Entry::Seconds(INTERCLACKS_RECONNECT_TIMEOUT),
            Entry::Seconds(INTERCLACKS_PING_TIMEOUT),
            Entry::Seconds(INTERCLACKS_STALLED_WRITE_TIMEOUT),
            Entry::Bytes(INTERCLACKS_MAX_OUT_BUFFER),
        ],
    },
    Group {
        title: "Cache persistence (the spelling is the reference's)",
        entries: &[
            Entry::Path(PERSISTENCE_FILE),
            Entry::Seconds(PERSISTENCE_INTERVAL),
            Entry::OnError(PERSISTENCE_ON_ERROR),
            Entry::Section(JOURNAL),
        ],
    },
    Group {
        title: "Timeouts and cache lifetimes, in seconds (fractions allowed)",
        entries: &[
            Entry::Seconds(AUTH_TIMEOUT),
            Entry::Seconds(PING_TIMEOUT),
            Entry::Seconds(TLS_HANDSHAKE_TIMEOUT),
            Entry::Seconds(STALLED_WRITE_TIMEOUT),
            Entry::Seconds(DELETED_CACHE_TIME),
            Entry::Seconds(STALE_CACHE_TIME),
            Entry::Seconds(CACHE_CLEAN_INTERVAL),
        ],
    },
    Group {
        title: "Limits (clacksd only; the Perl server ignores them)",
        entries: &[
            Entry::Bytes(MAX_LINE_LENGTH),
            Entry::Count(MAX_CONNECTIONS),
            Entry::Bytes(MAX_OUT_BUFFER),
            Entry::Bytes(AUTH_MAX_LINE_LENGTH),
            Entry::Count(MAX_UNAUTHENTICATED),
            Entry::Seconds(AUTH_FAIL_DELAY),
            Entry::Count(LOG_RATE_LIMIT),
            Entry::Whole(WORKER_THREADS),
        ],
    },
    Group {
        title: "Cache memory limit (clacksd only)",
        entries: &[Entry::Size(MAX_MEMORY), Entry::Policy(MAX_MEMORY_POLICY)],
    },
    Group {
        title: "The memcached listener (clacksd only)",
        entries: &[Entry::Section(MEMCACHED)],
    },
    Group {
        title: "Metrics, health checks and the dashboard over HTTP (clacksd only)",
        entries: &[Entry::Section(HTTP)],
    },
    Group {
        title: "Work queues (clacksd only)",
        entries: &[Entry::Section(QUEUES), Entry::Section(QUEUEPREFIX)],
    },
    Group {
        title: "Service registry (clacksd only)",
        entries: &[Entry::Section(REGISTRY)],
    },
    Group {
        title: "Per-host settings, and elements of the Perl server without effect here",
        entries: &[
            Entry::Hosts(HOSTS),
            ignored("readfailtimeout", "10"),
            ignored("interclacksreadfailtimeout", "10"),
            ignored("throttle", "<maxsleep>100</maxsleep><step>10</step>"),
            ignored("debugfile", "/tmp/clacks.debug"),
        ],
    },
];

/// The elements holding seconds, from the table.
pub fn seconds() -> impl Iterator<Item = Numeric<Duration>> {
    entries().filter_map(|e| match e {
        Entry::Seconds(n) => Some(*n),
        _ => None,
    })
}

/// The elements holding counts and sizes, from the table.
pub fn counts() -> impl Iterator<Item = Numeric<usize>> {
    entries().filter_map(|e| match e {
        Entry::Count(n) | Entry::Bytes(n) => Some(*n),
        _ => None,
    })
}
