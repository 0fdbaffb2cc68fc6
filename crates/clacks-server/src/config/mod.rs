//! The XML configuration file of the reference server, read unchanged, validated once.
//!
//! Lookup follows the reference: with `PC_CONFIG_PATHS` set, the file name is tried in each of
//! its colon-separated directories; otherwise as given, then under `configs/`. Before parsing,
//! every environment variable whose name starts with `PC_` is substituted in the text (longest
//! name first, so `PC_AB` is never cut by `PC_A`). `hosts/<hostname>/…` children replace root
//! children of the same name. Unknown elements are warned about, never fatal.
//!
//! Every element is a row of [`table`] (name, kind, default, range, doc): the file is parsed
//! into a tree (`xml`), each element is read through its row into [`Config`] and checked against
//! the others (`read`), and the sample config is generated from the same rows
//! ([`sample_config`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

mod entry;
mod read;
mod sample;
pub mod table;
mod value;
mod xml;

pub use clacks_store::MemoryPolicy;
pub use sample::sample_config;

/// A configuration error; it names the element (or file) at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be found in any lookup directory.
    #[error("config file {name} not found (looked in: {looked})")]
    NotFound {
        /// The name given.
        name: String,
        /// Where it was looked for.
        looked: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The XML does not parse.
    #[error("invalid XML: {0}")]
    Xml(String),
    /// An element has a value that is not allowed.
    #[error("<{element}>: {problem}")]
    Invalid {
        /// The element path, like `ssl/cert` or `user[2]/username`.
        element: String,
        /// What is wrong.
        problem: String,
    },
    /// An environment variable the server reads has a value that is not allowed.
    #[error("environment variable {name}: {problem}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(element: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        element: element.into(),
        problem: problem.into(),
    }
}

/// An extra user (`<user>`): never an interclacks peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
    /// May read (RETRIEVE, KEYLIST, LISTEN, UNLISTEN).
    pub read: bool,
    /// May write (NOTIFY, SET, STORE, …).
    pub write: bool,
    /// May manage (CLEARCACHE, MONITOR, CLIENTLIST, …).
    pub manage: bool,
}

/// Where a slave server finds its master (`<master>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// `<master><ip>` + `<port>`: TLS over TCP.
    Tcp {
        /// Host or address.
        ip: String,
        /// Port.
        port: u16,
    },
    /// `<master><socket>`: plain Unix socket.
    Unix(PathBuf),
}

/// What the server does when its persistence file exists but cannot be read
/// (`<persistanceonerror>`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersistenceOnError {
    /// Refuse to start, naming the file and the fault (default).
    #[default]
    Refuse,
    /// Rename the damaged file(s) to `<name>.bad-<unix time>` and start with an empty cache.
    MoveAside,
}

/// When the journal syncs what it wrote (`<journal><fsync>`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// After every write, before the changes are acknowledged (group commit).
    Always,
    /// About once a second (default).
    #[default]
    EverySec,
    /// When the OS decides.
    No,
}

/// The HTTP listener (`<http>`, extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Addresses for `<port>` (default `127.0.0.1`).
    pub ips: Vec<String>,
    /// TCP port.
    pub port: u16,
}

impl HttpConfig {
    /// Whether requests need basic auth: some address is not a loopback one.
    pub fn needs_auth(&self) -> bool {
        self.ips.iter().any(|ip| {
            !ip.parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
        })
    }
}

/// The journal (`<journal>`, extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// `<file>`.
    pub file: PathBuf,
    /// `<fsync>`.
    pub fsync: Fsync,
    /// `<maxbacklog>`: bytes of changes not written yet over which writers wait.
    pub max_backlog: usize,
}

/// What a message for a full queue does (`<queues><overflow>`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The sender gets `OVERHEAD E queue_full <queue>` (default).
    #[default]
    Reject,
    /// The oldest ready messages are dropped to make room.
    DropOldest,
}

/// The limits of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages, ready and leased.
    pub max_messages: usize,
    /// Most bytes of messages, ready and leased.
    pub max_bytes: usize,
    /// Largest message.
    pub max_message_size: usize,
    /// What a message for a full queue does.
    pub overflow: Overflow,
}

/// The work queues' limits (`<queues>`, `<queueprefix>`, extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Limits of a queue no prefix names.
    pub limits: QueueLimits,
    /// Other limits for the queues whose names start with a prefix (the longest one applies).
    pub prefixes: Vec<(String, QueueLimits)>,
    /// A leased message handed out this many times without an ack moves to `<queue>::dead`.
    pub max_deliveries: usize,
    /// Most queues.
    pub max_queues: usize,
    /// Most bytes of messages in all queues together.
    pub max_total_bytes: usize,
    /// Most waiting receives of one connection.
    pub max_waits: usize,
    /// An empty queue unused for this long is forgotten.
    pub idle_time: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            limits: QueueLimits {
                max_messages: table::QUEUES_MAX_MESSAGES.default,
                max_bytes: table::QUEUES_MAX_BYTES.default,
                max_message_size: table::QUEUES_MAX_MESSAGE_SIZE.default,
                overflow: table::QUEUES_OVERFLOW.default,
            },
            prefixes: Vec::new(),
            max_deliveries: table::QUEUES_MAX_DELIVERIES.default,
            max_queues: table::QUEUES_MAX_QUEUES.default,
            max_total_bytes: table::QUEUES_MAX_TOTAL_BYTES.default,
            max_waits: table::QUEUES_MAX_WAITS.default,
            idle_time: table::QUEUES_IDLE_TIME.default,
        }
    }
}

impl QueueConfig {
    /// The limits of the queue called `name`.
    pub fn limits_for(&self, name: &[u8]) -> QueueLimits {
        self.prefixes
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix.as_bytes()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.limits, |(_, limits)| *limits)
    }
}

/// The service registry's limits (`<registry>`, extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Most instances on the server.
    pub max_instances: usize,
    /// Most instances of one owner (a connection, or a client behind a slave).
    pub max_per_connection: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_instances: table::REGISTRY_MAX_INSTANCES.default,
            max_per_connection: table::REGISTRY_MAX_PER_CONNECTION.default,
        }
    }
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP listen addresses (`<ip>`), all on `port`, all TLS.
    pub ips: Vec<String>,
    /// TCP port (`<port>`).
    pub port: Option<u16>,
    /// PEM certificate chain (`<ssl><cert>`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (`<ssl><key>`).
    pub tls_key: Option<PathBuf>,
    /// Unix socket paths (`<socket>`).
    pub sockets: Vec<PathBuf>,
    /// Mode applied to every socket file (`<socketchmod>`, octal).
    pub socketchmod: Option<u32>,
    /// Shell commands run after each socket is created (`<socketcommands><item>`).
    pub socketcommands: Vec<String>,
    /// Main user name (all permissions).
    pub username: String,
    /// Main user password.
    pub password: String,
    /// Extra users.
    pub users: Vec<User>,
    /// Master of this server, when it is a slave.
    pub master: Option<Master>,
    /// How the TLS link to a TCP master checks its certificate (`<master><cafile>` or
    /// `<master><pin>`, extension); without either any certificate is accepted, as in v36.
    pub master_verify: clacks_client::TlsVerify,
    /// Seconds between connection attempts to the master.
    pub interclacks_reconnect_timeout: Duration,
    /// Time a new connection has to authenticate.
    pub auth_timeout: Duration,
    /// A client that has not sent PING for this long is disconnected (unless it sent NOPING).
    pub ping_timeout: Duration,
    /// Ping timeout of interclacks links.
    pub interclacks_ping_timeout: Duration,
    /// Persistence file.
    pub persistence_file: Option<PathBuf>,
    /// Minimum time between two saves.
    pub persistence_interval: Duration,
    /// What to do with a persistence file that cannot be read (`<persistanceonerror>`).
    pub persistence_on_error: PersistenceOnError,
    /// The journal of changes between saves (`<journal>`); off when `None`.
    pub journal: Option<JournalConfig>,
    /// The HTTP listener (`<http>`); off when `None`.
    pub http: Option<HttpConfig>,
    /// Tombstone lifetime.
    pub deleted_cache_time: Duration,
    /// Unaccessed live entries are purged after this.
    pub stale_cache_time: Duration,
    /// Cleanup period.
    pub cache_clean_interval: Duration,
    /// A connection whose writes make no progress for this long is dropped.
    pub stalled_write_timeout: Duration,
    /// The same for interclacks links.
    pub interclacks_stalled_write_timeout: Duration,
    /// Longest accepted input line in bytes (`<maxlinelength>`, extension).
    pub max_line_length: usize,
    /// Most simultaneous connections (`<maxconnections>`, extension).
    pub max_connections: usize,
    /// Most bytes queued for one connection before it is cut as a slow consumer
    /// (`<maxoutbuffer>`, extension).
    pub max_out_buffer: usize,
    /// Time a TLS handshake may take (`<tlshandshaketimeout>`, extension).
    pub tls_handshake_timeout: Duration,
    /// Runtime worker threads (`<workerthreads>`, extension; default: one per core).
    pub worker_threads: Option<usize>,
    /// Seconds added to the clock (`CLACKS_SIMULATED_TIME_OFFSET`).
    pub time_offset: f64,
    /// The memcached text protocol listener (`<memcached>`, extension); off when `None`.
    pub memcached: Option<Memcached>,
    /// Longest line accepted before login (`<authmaxlinelength>`, extension).
    pub auth_max_line_length: usize,
    /// Most connections that have not logged in yet (`<maxunauthenticated>`, extension).
    pub max_unauthenticated: usize,
    /// How long a failed login waits before its answer and close (`<authfaildelay>`, extension).
    pub auth_fail_delay: Duration,
    /// Most bytes queued for one interclacks link before it is cut (`<interclacksmaxoutbuffer>`,
    /// extension).
    pub interclacks_max_out_buffer: usize,
    /// Log lines one connection may cause per minute (`<logratelimit>`, extension); more are
    /// counted and summarised.
    pub log_rate_limit: usize,
    /// Memory limit of the cache in bytes (`<maxmemory>`, extension; 0: none).
    pub max_memory: usize,
    /// What a write over `max_memory` does (`<maxmemorypolicy>`, extension).
    pub max_memory_policy: MemoryPolicy,
    /// The work queues' limits (`<queues>`, `<queueprefix>`, extension).
    pub queues: QueueConfig,
    /// The service registry's limits (`<registry>`, extension).
    pub registry: RegistryConfig,
}

/// Where the memcached text protocol is served (`<memcached>`). memcached has no
/// authentication, so a port without `<ip>` listens on 127.0.0.1 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memcached {
    /// Addresses for `<port>` (default `127.0.0.1`).
    pub ips: Vec<String>,
    /// TCP port (plain TCP, like memcached).
    pub port: Option<u16>,
    /// Unix sockets.
    pub sockets: Vec<PathBuf>,
    /// Largest item value in bytes (`<maxitemsize>`, default 1 MiB).
    pub max_item_size: usize,
}

impl Memcached {
    /// The default largest item: 1 MiB, as memcached's.
    pub const DEFAULT_MAX_ITEM_SIZE: usize = table::MEMCACHED_MAX_ITEM_SIZE.default;

    /// The line length a largest item needs to travel on an interclacks line (base64 makes text
    /// 4/3 longer).
    pub fn line_needed(&self) -> usize {
        self.max_item_size.saturating_mul(4) / 3 + 512
    }

    /// A listener on `127.0.0.1:port`.
    pub fn on_port(port: u16) -> Memcached {
        Memcached {
            ips: table::MEMCACHED_IP
                .default
                .into_iter()
                .map(String::from)
                .collect(),
            port: Some(port),
            sockets: Vec::new(),
            max_item_size: Self::DEFAULT_MAX_ITEM_SIZE,
        }
    }
}

impl Config {
    /// A configuration with every default and the given main user; no listeners.
    pub fn with_user(username: impl Into<String>, password: impl Into<String>) -> Self {
        Config {
            ips: Vec::new(),
            port: None,
            tls_cert: None,
            tls_key: None,
            sockets: Vec::new(),
            socketchmod: None,
            socketcommands: Vec::new(),
            username: username.into(),
            password: password.into(),
            users: Vec::new(),
            master: None,
            master_verify: clacks_client::TlsVerify::None,
            interclacks_reconnect_timeout: table::INTERCLACKS_RECONNECT_TIMEOUT.default,
            auth_timeout: table::AUTH_TIMEOUT.default,
            ping_timeout: table::PING_TIMEOUT.default,
            interclacks_ping_timeout: table::INTERCLACKS_PING_TIMEOUT.default,
            persistence_file: None,
            persistence_interval: table::PERSISTENCE_INTERVAL.default,
            persistence_on_error: table::PERSISTENCE_ON_ERROR.default,
            journal: None,
            http: None,
            deleted_cache_time: table::DELETED_CACHE_TIME.default,
            stale_cache_time: table::STALE_CACHE_TIME.default,
            cache_clean_interval: table::CACHE_CLEAN_INTERVAL.default,
            stalled_write_timeout: table::STALLED_WRITE_TIMEOUT.default,
            interclacks_stalled_write_timeout: table::INTERCLACKS_STALLED_WRITE_TIMEOUT.default,
            max_line_length: table::MAX_LINE_LENGTH.default,
            max_connections: table::MAX_CONNECTIONS.default,
            max_out_buffer: table::MAX_OUT_BUFFER.default,
            tls_handshake_timeout: table::TLS_HANDSHAKE_TIMEOUT.default,
            worker_threads: None,
            time_offset: 0.0,
            memcached: None,
            auth_max_line_length: table::AUTH_MAX_LINE_LENGTH.default,
            max_unauthenticated: table::MAX_UNAUTHENTICATED.default,
            auth_fail_delay: table::AUTH_FAIL_DELAY.default,
            interclacks_max_out_buffer: table::INTERCLACKS_MAX_OUT_BUFFER.default,
            log_rate_limit: table::LOG_RATE_LIMIT.default,
            max_memory: table::MAX_MEMORY.default.0,
            max_memory_policy: table::MAX_MEMORY_POLICY.default,
            queues: QueueConfig::default(),
            registry: RegistryConfig::default(),
        }
    }

    /// Finds, reads, substitutes and parses a config file as the reference server does.
    pub fn load(name: &str) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let path = find_config(name, &env)?;
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        let mut config = Config::from_xml(&substitute_pc_vars(&text, &env), &hostname)?;
        config.time_offset = time_offset(&env)?;
        Ok(config)
    }

    /// Parses config XML (already substituted) for the host `hostname`.
    pub fn from_xml(text: &str, hostname: &str) -> Result<Config, ConfigError> {
        let mut root = xml::parse(text)?;
        root.apply_host_overrides(hostname);
        read::config(&root)
    }
}

/// `CLACKS_SIMULATED_TIME_OFFSET`, range-checked like a config element (absent or empty: 0).
fn time_offset(env: &[(String, String)]) -> Result<f64, ConfigError> {
    let range = table::TIME_OFFSET;
    match env.iter().find(|(k, _)| k == range.element) {
        Some((_, v)) if !v.trim().is_empty() => {
            range.parse(v.trim()).map_err(|problem| ConfigError::Env {
                name: range.element.to_string(),
                problem,
            })
        }
        _ => Ok(0.0),
    }
}

fn find_config(name: &str, env: &[(String, String)]) -> Result<PathBuf, ConfigError> {
    let dirs: Vec<String> = match env.iter().find(|(k, _)| k == "PC_CONFIG_PATHS") {
        Some((_, v)) => v.split(':').map(str::to_string).collect(),
        None => vec![String::new(), "configs".to_string()],
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    for d in &dirs {
        let path = if d.is_empty() {
            PathBuf::from(name)
        } else {
            Path::new(d).join(name)
        };
        if !candidates.contains(&path) {
            candidates.push(path);
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| ConfigError::NotFound {
            name: name.to_string(),
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Replaces every `PC_*` variable name in `text` with its value, longest names first.
pub fn substitute_pc_vars(text: &str, env: &[(String, String)]) -> String {
    let mut vars: Vec<&(String, String)> =
        env.iter().filter(|(k, _)| k.starts_with("PC_")).collect();
    vars.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(name.as_str(), value);
    }
    out
}

#[cfg(test)]
mod tests;
