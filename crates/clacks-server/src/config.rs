//! The XML configuration file of the reference server, read unchanged, validated once.
//!
//! Lookup follows the reference: with `PC_CONFIG_PATHS` set, the file name is tried in each of
//! its colon-separated directories; otherwise as given, then under `configs/`. Before parsing,
//! every environment variable whose name starts with `PC_` is substituted in the text (longest
//! name first, so `PC_AB` is never cut by `PC_A`). `hosts/<hostname>/…` children replace root
//! children of the same name. Unknown elements are warned about, never fatal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_xml::events::Event;
use thiserror::Error;

pub mod table;

pub use clacks_store::MemoryPolicy;
use table::Value;

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

impl std::str::FromStr for PersistenceOnError {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "refuse" => Ok(PersistenceOnError::Refuse),
            "moveaside" => Ok(PersistenceOnError::MoveAside),
            other => Err(format!("expected refuse or moveaside, got {other:?}")),
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

    /// A listener on `127.0.0.1:port`.
    pub fn on_port(port: u16) -> Memcached {
        Memcached {
            ips: vec!["127.0.0.1".into()],
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
            persistence_on_error: PersistenceOnError::Refuse,
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
            max_memory_policy: MemoryPolicy::Reject,
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
        let mut root = parse_tree(text)?;
        root.apply_host_overrides(hostname);
        root.into_config()
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

/// An XML element as XML::Simple sees it: text, attributes and child elements.
#[derive(Debug, Default, Clone)]
struct Element {
    text: String,
    children: Vec<(String, Element)>,
}

fn parse_tree(text: &str) -> Result<Element, ConfigError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<(String, Element)> = vec![(String::new(), Element::default())];
    let xml_err =
        |e: &dyn std::fmt::Display, pos: u64| ConfigError::Xml(format!("{e} at byte {pos}"));
    let attrs_of = |e: &quick_xml::events::BytesStart<'_>,
                    pos: u64|
     -> Result<Vec<(String, Element)>, ConfigError> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| xml_err(&e, pos))?;
            let value = a.unescape_value().map_err(|e| xml_err(&e, pos))?;
            out.push((
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                Element {
                    text: value.into_owned(),
                    children: Vec::new(),
                },
            ));
        }
        Ok(out)
    };
    loop {
        let pos = reader.buffer_position();
        match reader.read_event().map_err(|e| xml_err(&e, pos))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let el = Element {
                    text: String::new(),
                    children: attrs_of(&e, pos)?,
                };
                stack.push((name, el));
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let el = Element {
                    text: String::new(),
                    children: attrs_of(&e, pos)?,
                };
                if let Some(top) = stack.last_mut() {
                    top.1.children.push((name, el));
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| xml_err(&"unbalanced end tag", pos))?;
                match stack.last_mut() {
                    Some(parent) => parent.1.children.push(done),
                    None => return Err(xml_err(&"unbalanced end tag", pos)),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| xml_err(&e, pos))?;
                if let Some(top) = stack.last_mut() {
                    top.1.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.1.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(ConfigError::Xml("unclosed element at end of file".into()));
    }
    let doc = stack.pop().map(|(_, e)| e).unwrap_or_default();
    let mut roots = doc.children.into_iter();
    match (roots.next(), roots.next()) {
        (Some((_, root)), None) => Ok(root),
        (None, _) => Err(ConfigError::Xml("no root element".into())),
        (Some(_), Some(_)) => Err(ConfigError::Xml("more than one root element".into())),
    }
}

const KNOWN: &[&str] = &[
    "appname",
    "ip",
    "port",
    "ssl",
    "socket",
    "socketchmod",
    "socketcommands",
    "username",
    "password",
    "user",
    "master",
    "interclacksreconnecttimeout",
    "authtimeout",
    "pingtimeout",
    "interclackspingtimeout",
    "persistancefile",
    "persistanceinterval",
    "persistanceonerror",
    "deletedcachetime",
    "stalecachetime",
    "cachecleaninterval",
    "readfailtimeout",
    "interclacksreadfailtimeout",
    "stalledwritetimeout",
    "interclacksstalledwritetimeout",
    "throttle",
    "debugfile",
    "hosts",
    "maxlinelength",
    "maxconnections",
    "maxoutbuffer",
    "tlshandshaketimeout",
    "workerthreads",
    "memcached",
    "authmaxlinelength",
    "maxunauthenticated",
    "authfaildelay",
    "interclacksmaxoutbuffer",
    "logratelimit",
    "maxmemory",
    "maxmemorypolicy",
];

/// `<master><cafile>` / `<master><pin>`: PEM files that must exist; at most one, TCP only.
fn master_verify(
    m: &Element,
    master: Option<&Master>,
) -> Result<clacks_client::TlsVerify, ConfigError> {
    let file = |name: &str| -> Result<Option<PathBuf>, ConfigError> {
        match m.text_of(name) {
            None => Ok(None),
            Some(p) if p.is_empty() => Err(invalid(format!("master/{name}"), "empty file name")),
            Some(p) if !Path::new(&p).is_file() => Err(invalid(
                format!("master/{name}"),
                format!("file {p} not found"),
            )),
            Some(p) => Ok(Some(PathBuf::from(p))),
        }
    };
    let verify = match (file("cafile")?, file("pin")?) {
        (Some(_), Some(_)) => {
            return Err(invalid("master/pin", "give <cafile> or <pin>, not both"));
        }
        (Some(ca), None) => clacks_client::TlsVerify::CaFile(ca),
        (None, Some(pin)) => clacks_client::TlsVerify::Pinned(pin),
        (None, None) => clacks_client::TlsVerify::None,
    };
    if verify != clacks_client::TlsVerify::None && matches!(master, Some(Master::Unix(_))) {
        return Err(invalid(
            "master/cafile",
            "<cafile> and <pin> apply to a TLS master (<ip>), not to <socket>",
        ));
    }
    Ok(verify)
}

impl Element {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, e)| e)
    }

    fn first(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
    }

    fn text_of(&self, name: &str) -> Option<String> {
        self.first(name).map(|e| e.text.trim().to_string())
    }

    fn apply_host_overrides(&mut self, hostname: &str) {
        let Some(host) = self.first("hosts").and_then(|h| h.first(hostname)).cloned() else {
            return;
        };
        let names: Vec<String> = host.children.iter().map(|(n, _)| n.clone()).collect();
        self.children.retain(|(n, _)| !names.contains(n));
        self.children.extend(host.children);
    }

    /// The numeric element `range.element` (its last path segment, a child of this element),
    /// checked against its range; `None` when absent.
    fn optional<T: Value>(&self, range: &table::Range<T>) -> Result<Option<T>, ConfigError> {
        let name = range.element.rsplit('/').next().unwrap_or(range.element);
        self.text_of(name)
            .map(|t| range.parse(&t).map_err(|p| invalid(range.element, p)))
            .transpose()
    }

    /// The numeric element `n.element`, checked against its range; its default when absent.
    fn setting<T: Value>(&self, n: &table::Numeric<T>) -> Result<T, ConfigError> {
        Ok(self.optional(&n.range())?.unwrap_or(n.default))
    }

    fn memcached(&self) -> Result<Memcached, ConfigError> {
        let mut ips: Vec<String> = self.all("ip").map(|e| e.text.trim().to_string()).collect();
        let port = self.optional(&table::MEMCACHED_PORT)?;
        if port.is_none() && !ips.is_empty() {
            return Err(invalid("memcached/port", "required when <ip> is given"));
        }
        if port.is_some() && ips.is_empty() {
            ips.push("127.0.0.1".into());
        }
        let sockets: Vec<PathBuf> = self
            .all("socket")
            .map(|e| PathBuf::from(e.text.trim()))
            .collect();
        if port.is_none() && sockets.is_empty() {
            return Err(invalid("memcached", "needs <port> (and <ip>) or <socket>"));
        }
        Ok(Memcached {
            ips,
            port,
            sockets,
            max_item_size: self.setting(&table::MEMCACHED_MAX_ITEM_SIZE)?,
        })
    }

    fn into_config(self) -> Result<Config, ConfigError> {
        for (name, _) in &self.children {
            if !KNOWN.contains(&name.as_str()) {
                tracing::warn!(element = %name, "unknown config element ignored");
            }
        }
        for name in [
            "readfailtimeout",
            "interclacksreadfailtimeout",
            "throttle",
            "debugfile",
        ] {
            if self.first(name).is_some() {
                tracing::info!(
                    element = name,
                    "config element accepted but has no effect here"
                );
            }
        }
        let username = self
            .text_of("username")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("username", "required"))?;
        let password = self
            .text_of("password")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("password", "required"))?;
        let mut c = Config::with_user(username, password);
        c.ips = self.all("ip").map(|e| e.text.trim().to_string()).collect();
        c.port = self.optional(&table::PORT)?;
        if !c.ips.is_empty() {
            if c.port.is_none() {
                return Err(invalid("port", "required when <ip> is given"));
            }
            let ssl = self.first("ssl").ok_or_else(|| {
                invalid(
                    "ssl",
                    "<ssl><cert> and <ssl><key> are required when <ip> is given",
                )
            })?;
            for (field, slot) in [("cert", &mut c.tls_cert), ("key", &mut c.tls_key)] {
                let path = ssl
                    .text_of(field)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        invalid(format!("ssl/{field}"), "required when <ip> is given")
                    })?;
                if !Path::new(&path).is_file() {
                    return Err(invalid(
                        format!("ssl/{field}"),
                        format!("file {path} not found"),
                    ));
                }
                *slot = Some(PathBuf::from(path));
            }
        }
        c.sockets = self
            .all("socket")
            .map(|e| PathBuf::from(e.text.trim()))
            .collect();
        c.socketchmod = match self.text_of("socketchmod").filter(|s| !s.is_empty()) {
            None => None,
            Some(_) => self.optional(&table::SOCKETCHMOD)?.map(|m| m.0),
        };
        c.socketcommands = self
            .first("socketcommands")
            .map(|s| s.all("item").map(|i| i.text.trim().to_string()).collect())
            .unwrap_or_default();
        for (i, u) in self.all("user").enumerate() {
            let el = |f: &str| format!("user[{}]/{f}", i + 1);
            let flag = |f: &str| u.text_of(f).is_some_and(|v| !v.is_empty() && v != "0");
            c.users.push(User {
                username: u
                    .text_of("username")
                    .ok_or_else(|| invalid(el("username"), "required"))?,
                password: u
                    .text_of("password")
                    .ok_or_else(|| invalid(el("password"), "required"))?,
                read: flag("read"),
                write: flag("write"),
                manage: flag("manage"),
            });
        }
        if let Some(m) = self.first("master") {
            c.master = if let Some(sock) = m.first("socket") {
                Some(Master::Unix(PathBuf::from(sock.text.trim())))
            } else if let Some(ip) = m.first("ip") {
                let port = m
                    .optional(&table::MASTER_PORT)?
                    .ok_or_else(|| invalid("master/port", "required with <master><ip>"))?;
                Some(Master::Tcp {
                    ip: ip.text.trim().to_string(),
                    port,
                })
            } else {
                return Err(invalid("master", "needs <ip> and <port>, or <socket>"));
            };
            c.master_verify = master_verify(m, c.master.as_ref())?;
        }
        c.interclacks_reconnect_timeout = self.setting(&table::INTERCLACKS_RECONNECT_TIMEOUT)?;
        c.auth_timeout = self.setting(&table::AUTH_TIMEOUT)?;
        c.ping_timeout = self.setting(&table::PING_TIMEOUT)?;
        c.interclacks_ping_timeout = self.setting(&table::INTERCLACKS_PING_TIMEOUT)?;
        c.persistence_file = self
            .text_of("persistancefile")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        c.persistence_interval = self.setting(&table::PERSISTENCE_INTERVAL)?;
        if let Some(v) = self.text_of("persistanceonerror") {
            c.persistence_on_error = v.parse().map_err(|e| invalid("persistanceonerror", e))?;
        }
        c.deleted_cache_time = self.setting(&table::DELETED_CACHE_TIME)?;
        c.stale_cache_time = self.setting(&table::STALE_CACHE_TIME)?;
        c.cache_clean_interval = self.setting(&table::CACHE_CLEAN_INTERVAL)?;
        c.stalled_write_timeout = self.setting(&table::STALLED_WRITE_TIMEOUT)?;
        c.interclacks_stalled_write_timeout =
            self.setting(&table::INTERCLACKS_STALLED_WRITE_TIMEOUT)?;
        c.max_line_length = self.setting(&table::MAX_LINE_LENGTH)?;
        c.max_connections = self.setting(&table::MAX_CONNECTIONS)?;
        c.max_out_buffer = self.setting(&table::MAX_OUT_BUFFER)?;
        c.tls_handshake_timeout = self.setting(&table::TLS_HANDSHAKE_TIMEOUT)?;
        c.worker_threads = self.optional(&table::WORKER_THREADS)?;
        if let Some(m) = self.first("memcached") {
            c.memcached = Some(m.memcached()?);
        }
        c.auth_max_line_length = self.setting(&table::AUTH_MAX_LINE_LENGTH)?;
        c.max_unauthenticated = self.setting(&table::MAX_UNAUTHENTICATED)?;
        c.auth_fail_delay = self.setting(&table::AUTH_FAIL_DELAY)?;
        c.interclacks_max_out_buffer = self.setting(&table::INTERCLACKS_MAX_OUT_BUFFER)?;
        c.log_rate_limit = self.setting(&table::LOG_RATE_LIMIT)?;
        c.max_memory = self.setting(&table::MAX_MEMORY)?.0;
        c.max_memory_policy = match self.text_of("maxmemorypolicy").as_deref() {
            None | Some("reject") => MemoryPolicy::Reject,
            Some("evict") => MemoryPolicy::Evict,
            Some(other) => {
                return Err(invalid(
                    "maxmemorypolicy",
                    format!("expected reject or evict, got {other:?}"),
                ))
            }
        };
        if let Some(m) = &c.memcached {
            // A stored value must fit on one interclacks line (base64 makes text 4/3 longer).
            let needed = m.max_item_size.saturating_mul(4) / 3 + 512;
            if needed > c.max_line_length {
                return Err(invalid(
                    "memcached/maxitemsize",
                    format!(
                        "{} bytes needs a <maxlinelength> of at least {needed}",
                        m.max_item_size
                    ),
                ));
            }
        }
        if c.ips.is_empty() && c.sockets.is_empty() {
            return Err(invalid(
                "ip",
                "no <ip> and no <socket>: the server would listen nowhere",
            ));
        }
        Ok(c)
    }
}

/// The commented sample configuration printed by `clacksd --print-default-config`.
pub const SAMPLE_CONFIG: &str = include_str!("../clacks.sample.xml");

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"<clacks>
    <appname>Clacks master</appname>
    <ip>127.0.0.1</ip>
    <port>49888</port>
    <socket>/tmp/a.sock</socket>
    <socket>/tmp/b.sock</socket>
    <socketchmod>0660</socketchmod>
    <ssl><cert>CERT</cert><key>KEY</key></ssl>
    <username>exampleuser</username>
    <password>unsafepassword</password>
    <user><username>rwuser</username><password>foo</password><read>1</read><write>1</write></user>
    <user><username>rouser</username><password>bar</password><read>1</read></user>
    <persistancefile>/tmp/clackspersistance.dat</persistancefile>
    <pingtimeout>600</pingtimeout>
    <throttle><maxsleep>100</maxsleep><step>10</step></throttle>
    <frobnicate>1</frobnicate>
    <hosts><otherhost><port>1</port></otherhost><thishost><pingtimeout>5</pingtimeout><socket>/tmp/host.sock</socket></thishost></hosts>
</clacks>"#;

    fn with_cert(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "x").unwrap();
        std::fs::write(&key, "x").unwrap();
        let text = text
            .replace("CERT", cert.to_str().unwrap())
            .replace("KEY", key.to_str().unwrap());
        (dir, text)
    }

    #[test]
    fn reads_the_reference_example_with_host_override() {
        let (_dir, text) = with_cert(EXAMPLE);
        let c = Config::from_xml(&text, "thishost").unwrap();
        assert_eq!(c.ips, vec!["127.0.0.1"]);
        assert_eq!(c.port, Some(49888));
        assert_eq!(c.sockets, vec![PathBuf::from("/tmp/host.sock")]);
        assert_eq!(c.socketchmod, Some(0o660));
        assert_eq!(c.ping_timeout, Duration::from_secs(5));
        assert_eq!(c.users.len(), 2);
        assert!(c.users[0].write && !c.users[1].write && c.users[1].read);
        assert_eq!(
            c.persistence_file,
            Some(PathBuf::from("/tmp/clackspersistance.dat"))
        );
        assert_eq!(c.auth_timeout, Duration::from_secs(15));
        let other = Config::from_xml(&text, "nohost").unwrap();
        assert_eq!(other.sockets.len(), 2);
        assert_eq!(other.ping_timeout, Duration::from_secs(600));
    }

    #[test]
    fn errors_name_the_element() {
        let err = |xml: &str| Config::from_xml(xml, "h").unwrap_err().to_string();
        assert!(err("<c><socket>s</socket><password>p</password></c>").contains("<username>"));
        assert!(
            err("<c><username>u</username><password>p</password><ip>1.2.3.4</ip></c>")
                .contains("<port>")
        );
        assert!(
            err("<c><username>u</username><password>p</password><ip>1</ip><port>1</port></c>")
                .contains("<ssl>")
        );
        assert!(err("<c><username>u</username><password>p</password><socket>s</socket><pingtimeout>x</pingtimeout></c>").contains("<pingtimeout>"));
        assert!(err("<c><username>u</username><password>p</password><socket>s</socket><user><password>p</password></user></c>").contains("user[1]/username"));
        assert!(
            err("<c><username>u</username>").contains("invalid XML")
                || err("<c><username>u</username>").contains("unclosed")
        );
    }

    #[test]
    fn memcached_section() {
        let base = "<c><username>u</username><password>p</password><socket>s</socket>";
        let parse = |extra: &str| Config::from_xml(&format!("{base}{extra}</c>"), "h");
        assert_eq!(parse("").unwrap().memcached, None, "off by default");
        let m = parse("<memcached><port>11211</port></memcached>")
            .unwrap()
            .memcached
            .unwrap();
        assert_eq!(
            m,
            Memcached::on_port(11211),
            "loopback unless <ip> is given"
        );
        let m = parse("<memcached><ip>::1</ip><ip>10.0.0.1</ip><port>1</port><socket>m.sock</socket><maxitemsize>100</maxitemsize></memcached>")
            .unwrap()
            .memcached
            .unwrap();
        assert_eq!(m.ips, vec!["::1", "10.0.0.1"]);
        assert_eq!(m.sockets, vec![PathBuf::from("m.sock")]);
        assert_eq!(m.max_item_size, 100);
        let err = |extra: &str| parse(extra).unwrap_err().to_string();
        assert!(err("<memcached></memcached>").contains("<memcached>"));
        assert!(err("<memcached><ip>1.2.3.4</ip></memcached>").contains("<memcached/port>"));
        assert!(err("<memcached><port>x</port></memcached>").contains("<memcached/port>"));
        assert!(
            err("<memcached><port>1</port><maxitemsize>2000000</maxitemsize></memcached>")
                .contains("<memcached/maxitemsize>")
        );
    }

    /// A minimal valid config with `element` (a path like `memcached/maxitemsize`) set to
    /// `value`.
    fn with_element(element: &str, value: &str) -> String {
        let inner = match element.split_once('/') {
            None => format!("<{element}>{value}</{element}>"),
            Some(("memcached", e)) => format!(
                "<maxlinelength>1073741824</maxlinelength>\
                 <memcached><socket>m</socket><{e}>{value}</{e}></memcached>"
            ),
            Some(("master", e)) => format!("<master><ip>10.0.0.1</ip><{e}>{value}</{e}></master>"),
            Some(_) => unreachable!("{element}"),
        };
        format!("<c><username>u</username><password>p</password><socket>s</socket>{inner}</c>")
    }

    /// Every numeric element: garbage, signs, NaN, infinities, huge values and values just
    /// outside the range are errors naming the element and the range; the bounds are accepted.
    #[test]
    fn numbers_out_of_range_are_errors_naming_the_element() {
        const GARBAGE: &[&str] = &[
            "",
            "x",
            "12abc",
            "-1",
            "NaN",
            "inf",
            "-inf",
            "1e300",
            "1.8e19",
            "18446744073709551616",
        ];
        let mut cases: Vec<(&str, Vec<String>, Vec<String>)> = Vec::new();
        for n in table::SECONDS {
            let (min, max) = (n.min.as_secs_f64(), n.max.as_secs_f64());
            let mut bad = vec![format!("{}", max + 0.001)];
            if min > 0.0 {
                bad.push(format!("{}", min - 0.001));
            }
            cases.push((n.element, bad, vec![min.to_string(), max.to_string()]));
        }
        for n in table::COUNTS {
            let mut bad = vec![(n.max + 1).to_string(), "1.5".into()];
            bad.extend(n.min.checked_sub(1).map(|v| v.to_string()));
            cases.push((n.element, bad, vec![n.min.to_string(), n.max.to_string()]));
        }
        for r in [table::PORT, table::MASTER_PORT, table::MEMCACHED_PORT] {
            cases.push((
                r.element,
                vec!["0".into(), "65536".into()],
                vec!["1".into(), "65535".into()],
            ));
        }
        let w = table::WORKER_THREADS;
        cases.push((
            w.element,
            vec!["0".into(), "1025".into()],
            vec!["1".into(), "1024".into()],
        ));
        cases.push((
            table::SOCKETCHMOD.element,
            vec!["10000".into(), "8".into(), "-1".into()],
            vec!["0".into(), "7777".into(), "0660".into()],
        ));
        for (element, bad, good) in cases {
            let garbage = GARBAGE
                .iter()
                .filter(|g| !(element == "socketchmod" && g.is_empty()))
                .map(|g| g.to_string());
            for value in garbage.chain(bad) {
                let xml = with_element(element, &value);
                let err = Config::from_xml(&xml, "h")
                    .map(|_| ())
                    .expect_err(&format!("<{element}>{value:?} accepted"))
                    .to_string();
                assert!(
                    err.contains(&format!("<{element}>")),
                    "{element} {value:?}: {err}"
                );
                assert!(
                    err.contains(" from ") && err.contains(" to "),
                    "{element} {value:?}: {err}"
                );
            }
            for value in good {
                let xml = with_element(element, &value);
                match Config::from_xml(&xml, "h") {
                    Ok(c) => crate::fuzzing::check(&c),
                    Err(e) => panic!("<{element}>{value}: {e}"),
                }
            }
        }
    }

    #[test]
    fn bounds_are_the_values_used() {
        let c = Config::from_xml(&with_element("authtimeout", "86400"), "h").unwrap();
        assert_eq!(c.auth_timeout, table::DAY);
        let c = Config::from_xml(&with_element("socketchmod", "0660"), "h").unwrap();
        assert_eq!(c.socketchmod, Some(0o660));
        let c = Config::from_xml(&with_element("workerthreads", "1024"), "h").unwrap();
        assert_eq!(c.worker_threads, Some(1024));
        let c = Config::from_xml(&with_element("memcached/maxitemsize", "1"), "h").unwrap();
        assert_eq!(c.memcached.unwrap().max_item_size, 1);
    }

    #[test]
    fn simulated_time_offset_is_range_checked() {
        let env = |v: &str| vec![("CLACKS_SIMULATED_TIME_OFFSET".to_string(), v.to_string())];
        assert_eq!(time_offset(&[]).unwrap(), 0.0);
        assert_eq!(time_offset(&env("")).unwrap(), 0.0);
        assert_eq!(time_offset(&env(" -3600.5 ")).unwrap(), -3600.5);
        for bad in ["x", "NaN", "inf", "1e300", "-1e10"] {
            let e = time_offset(&env(bad)).unwrap_err().to_string();
            assert!(e.contains("CLACKS_SIMULATED_TIME_OFFSET"), "{bad}: {e}");
        }
    }

    #[test]
    fn memory_limit_sizes_and_policy() {
        let base = "<c><username>u</username><password>p</password><socket>s</socket>";
        let parse = |extra: &str| Config::from_xml(&format!("{base}{extra}</c>"), "h");
        let c = parse("").unwrap();
        assert_eq!(
            (c.max_memory, c.max_memory_policy),
            (0, MemoryPolicy::Reject),
            "unlimited without the element, as v36"
        );
        for (text, want) in [
            ("0", 0),
            ("1000", 1000),
            ("64k", 64 << 10),
            ("512M", 512 << 20),
            (" 2G ", 2 << 30),
        ] {
            let c = parse(&format!("<maxmemory>{text}</maxmemory>")).unwrap();
            assert_eq!(c.max_memory, want, "{text}");
        }
        let c = parse("<maxmemory>1G</maxmemory><maxmemorypolicy>evict</maxmemorypolicy>").unwrap();
        assert_eq!(c.max_memory_policy, MemoryPolicy::Evict);
        let err = |extra: &str| parse(extra).unwrap_err().to_string();
        for bad in [
            "",
            "G",
            "-1",
            "+5",
            "1.5G",
            "12KB",
            "1T",
            "ten",
            "99999999999999999999",
            "9999999999G",
        ] {
            let e = err(&format!("<maxmemory>{bad}</maxmemory>"));
            assert!(e.contains("<maxmemory>"), "{bad:?}: {e}");
        }
        let e = err("<maxmemorypolicy>lru</maxmemorypolicy>");
        assert!(e.contains("<maxmemorypolicy>") && e.contains("lru"), "{e}");
    }

    #[test]
    fn lookup_uses_pc_config_paths_then_legacy_locations() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("c.xml"), "x").unwrap();
        let paths = format!("{}:{}", a.path().display(), b.path().display());
        let env = vec![("PC_CONFIG_PATHS".to_string(), paths)];
        assert_eq!(find_config("c.xml", &env).unwrap(), b.path().join("c.xml"));
        let err = find_config("missing.xml", &env).unwrap_err().to_string();
        assert!(err.contains("missing.xml"), "{err}");
        let legacy = find_config("no-such-file.xml", &[])
            .unwrap_err()
            .to_string();
        assert!(legacy.contains("configs/no-such-file.xml"), "{legacy}");
    }

    #[test]
    fn pc_substitution_longest_first() {
        let env = vec![
            ("PC_A".to_string(), "short".to_string()),
            ("PC_AB".to_string(), "long".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        assert_eq!(
            substitute_pc_vars("PC_AB PC_A OTHER", &env),
            "long short OTHER"
        );
    }

    #[test]
    fn sample_config_parses() {
        let c = Config::from_xml(SAMPLE_CONFIG, "h").unwrap();
        assert_eq!(c.username, "exampleuser");
    }
}
