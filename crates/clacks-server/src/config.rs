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

pub use clacks_store::MemoryPolicy;

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
    pub const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;

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
            interclacks_reconnect_timeout: Duration::from_secs(30),
            auth_timeout: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(180),
            interclacks_ping_timeout: Duration::from_secs(60),
            persistence_file: None,
            persistence_interval: Duration::from_secs(10),
            deleted_cache_time: Duration::from_secs(3600),
            stale_cache_time: Duration::from_secs(86400),
            cache_clean_interval: Duration::from_secs(60),
            stalled_write_timeout: Duration::from_secs(60),
            interclacks_stalled_write_timeout: Duration::from_secs(120),
            max_line_length: 2 * 1024 * 1024,
            max_connections: 10_000,
            max_out_buffer: 16 * 1024 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            worker_threads: None,
            time_offset: 0.0,
            memcached: None,
            max_memory: 0,
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
        if let Some((_, v)) = env
            .iter()
            .find(|(k, _)| k == "CLACKS_SIMULATED_TIME_OFFSET")
        {
            config.time_offset = v.trim().parse().unwrap_or(0.0);
        }
        Ok(config)
    }

    /// Parses config XML (already substituted) for the host `hostname`.
    pub fn from_xml(text: &str, hostname: &str) -> Result<Config, ConfigError> {
        let mut root = parse_tree(text)?;
        root.apply_host_overrides(hostname);
        root.into_config()
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
    "maxmemory",
    "maxmemorypolicy",
];

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

    fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        match self.text_of(name) {
            None => Ok(Duration::from_secs(default)),
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| invalid(name, format!("expected seconds, got {t:?}"))),
        }
    }

    fn count(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        match self.text_of(name) {
            None => Ok(default),
            Some(t) => t.parse::<usize>().ok().filter(|v| *v > 0).ok_or_else(|| {
                invalid(name, format!("expected a positive whole number, got {t:?}"))
            }),
        }
    }

    /// A size in bytes: digits with an optional `K`, `M` or `G` (powers of 1024, either case).
    fn bytes(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        let Some(t) = self.text_of(name) else {
            return Ok(default);
        };
        let (digits, unit) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
            _ => (&t[..], ' '),
        };
        let shift = match unit {
            ' ' => 0,
            'K' => 10,
            'M' => 20,
            'G' => 30,
            _ => u32::MAX,
        };
        digits
            .parse::<usize>()
            .ok()
            .filter(|_| !digits.starts_with('+') && shift != u32::MAX)
            .and_then(|n| n.checked_mul(1usize.checked_shl(shift)?))
            .filter(|n| u64::try_from(*n).is_ok_and(|n| n <= i64::MAX as u64))
            .ok_or_else(|| {
                invalid(
                    name,
                    format!(
                        "expected bytes (a whole number, optionally with K, M or G), got {t:?}"
                    ),
                )
            })
    }

    fn memcached(&self) -> Result<Memcached, ConfigError> {
        let mut ips: Vec<String> = self.all("ip").map(|e| e.text.trim().to_string()).collect();
        let port = match self.text_of("port") {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                invalid(
                    "memcached/port",
                    format!("expected a port number, got {p:?}"),
                )
            })?),
        };
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
            max_item_size: self.count("maxitemsize", Memcached::DEFAULT_MAX_ITEM_SIZE)?,
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
        c.port = match self.text_of("port") {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| invalid("port", format!("expected a port number, got {p:?}")))?,
            ),
        };
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
            Some(m) => Some(
                u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        invalid("socketchmod", format!("expected an octal mode, got {m:?}"))
                    })?,
            ),
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
                    .text_of("port")
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| invalid("master/port", "required with <master><ip>"))?;
                Some(Master::Tcp {
                    ip: ip.text.trim().to_string(),
                    port,
                })
            } else {
                return Err(invalid("master", "needs <ip> and <port>, or <socket>"));
            };
        }
        c.interclacks_reconnect_timeout = self.seconds("interclacksreconnecttimeout", 30)?;
        c.auth_timeout = self.seconds("authtimeout", 15)?;
        c.ping_timeout = self.seconds("pingtimeout", 180)?;
        c.interclacks_ping_timeout = self.seconds("interclackspingtimeout", 60)?;
        c.persistence_file = self
            .text_of("persistancefile")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        c.persistence_interval = self.seconds("persistanceinterval", 10)?;
        c.deleted_cache_time = self.seconds("deletedcachetime", 3600)?;
        c.stale_cache_time = self.seconds("stalecachetime", 86400)?;
        c.cache_clean_interval = self.seconds("cachecleaninterval", 60)?;
        c.stalled_write_timeout = self.seconds("stalledwritetimeout", 60)?;
        c.interclacks_stalled_write_timeout =
            self.seconds("interclacksstalledwritetimeout", 120)?;
        c.max_line_length = self.count("maxlinelength", c.max_line_length)?;
        c.max_connections = self.count("maxconnections", c.max_connections)?;
        c.max_out_buffer = self.count("maxoutbuffer", c.max_out_buffer)?;
        c.tls_handshake_timeout = self.seconds("tlshandshaketimeout", 10)?;
        if self.first("workerthreads").is_some() {
            c.worker_threads = Some(self.count("workerthreads", 1)?);
        }
        if let Some(m) = self.first("memcached") {
            c.memcached = Some(m.memcached()?);
        }
        c.max_memory = self.bytes("maxmemory", 0)?;
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
