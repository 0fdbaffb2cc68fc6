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

mod extensions;
mod limits;
mod server;

pub use extensions::*;
pub use limits::*;
pub use server::*;

const S: Duration = Duration::from_secs(1);
const TENTH: Duration = Duration::from_millis(100);

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
