//! Rows for this server: its listeners, users, the link to a master, persistence and the
//! journal.

use super::*;

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
