//! Rows for what the Perl server does not have: the memcached listener, HTTP, work queues
//! and the service registry.

use super::*;

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
