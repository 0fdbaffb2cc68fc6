//! The element tree ([`super::xml`]) read into a [`Config`]: each element through its row of
//! [`super::table`] (type, range, default), then the rules that tie elements together (TLS files
//! for `<ip>`, a listener somewhere, a memcached item that fits on a line).

use std::path::{Path, PathBuf};

use super::table::{self, Entry, Text};
use super::xml::Node;
use super::{
    invalid, Config, ConfigError, HttpConfig, JournalConfig, Master, Memcached, QueueConfig,
    QueueLimits, RegistryConfig, User,
};

/// Reads a root element (host overrides already applied) into a validated config.
pub(super) fn config(root: &Node) -> Result<Config, ConfigError> {
    for name in root.names() {
        if !table::root_entries().any(|e| e.name() == name) {
            tracing::warn!(element = %name, "unknown config element ignored");
        }
    }
    for e in table::root_entries() {
        if matches!(e, Entry::Ignored(_)) && root.child(e.element()).is_some() {
            tracing::info!(
                element = e.element(),
                "config element accepted but has no effect here"
            );
        }
    }
    let username = required(root, &table::USERNAME)?;
    let password = required(root, &table::PASSWORD)?;
    let mut c = Config::with_user(username, password);
    c.ips = root.texts(&table::IP);
    c.port = root.optional(&table::PORT)?;
    if !c.ips.is_empty() {
        if c.port.is_none() {
            return Err(invalid(table::PORT.element, "required when <ip> is given"));
        }
        let ssl = root.child(table::SSL.element).ok_or_else(|| {
            invalid(
                table::SSL.element,
                "<ssl><cert> and <ssl><key> are required when <ip> is given",
            )
        })?;
        c.tls_cert = Some(tls_file(ssl, &table::SSL_CERT)?);
        c.tls_key = Some(tls_file(ssl, &table::SSL_KEY)?);
    }
    c.sockets = root
        .texts(&table::SOCKET)
        .into_iter()
        .map(PathBuf::from)
        .collect();
    // An empty <socketchmod> means none, as in the reference.
    let chmod = root.child(table::SOCKETCHMOD.element).map(Node::trimmed);
    c.socketchmod = match chmod.filter(|s| !s.is_empty()) {
        None => None,
        Some(_) => root.optional(&table::SOCKETCHMOD)?.map(|m| m.0),
    };
    c.socketcommands = root
        .child(table::SOCKETCOMMANDS.element)
        .map(|s| s.texts(&table::SOCKETCOMMANDS_ITEM))
        .unwrap_or_default();
    for (i, u) in root.all(table::USER.element).enumerate() {
        c.users.push(user(u, i + 1)?);
    }
    if let Some(m) = root.child(table::MASTER.element) {
        let master = master(m)?;
        c.master_verify = master_verify(m, &master)?;
        c.master = Some(master);
    }
    c.interclacks_reconnect_timeout = root.setting(&table::INTERCLACKS_RECONNECT_TIMEOUT)?;
    c.auth_timeout = root.setting(&table::AUTH_TIMEOUT)?;
    c.ping_timeout = root.setting(&table::PING_TIMEOUT)?;
    c.interclacks_ping_timeout = root.setting(&table::INTERCLACKS_PING_TIMEOUT)?;
    c.persistence_file = root
        .text(&table::PERSISTENCE_FILE)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    c.persistence_interval = root.setting(&table::PERSISTENCE_INTERVAL)?;
    c.persistence_on_error = root.choice(&table::PERSISTENCE_ON_ERROR)?;
    if let Some(j) = root.child(table::JOURNAL.element) {
        c.journal = Some(JournalConfig {
            file: required(j, &table::JOURNAL_FILE)?.into(),
            fsync: j.choice(&table::JOURNAL_FSYNC)?,
            max_backlog: j.setting(&table::JOURNAL_MAX_BACKLOG)?,
        });
    }
    c.deleted_cache_time = root.setting(&table::DELETED_CACHE_TIME)?;
    c.stale_cache_time = root.setting(&table::STALE_CACHE_TIME)?;
    c.cache_clean_interval = root.setting(&table::CACHE_CLEAN_INTERVAL)?;
    c.stalled_write_timeout = root.setting(&table::STALLED_WRITE_TIMEOUT)?;
    c.interclacks_stalled_write_timeout =
        root.setting(&table::INTERCLACKS_STALLED_WRITE_TIMEOUT)?;
    c.max_line_length = root.setting(&table::MAX_LINE_LENGTH)?;
    c.max_connections = root.setting(&table::MAX_CONNECTIONS)?;
    c.max_out_buffer = root.setting(&table::MAX_OUT_BUFFER)?;
    c.tls_handshake_timeout = root.setting(&table::TLS_HANDSHAKE_TIMEOUT)?;
    c.worker_threads = root.optional(&table::WORKER_THREADS)?;
    if let Some(m) = root.child(table::MEMCACHED.element) {
        c.memcached = Some(memcached(m)?);
    }
    if let Some(h) = root.child(table::HTTP.element) {
        let mut ips = h.texts(&table::HTTP_IP);
        if ips.is_empty() {
            ips.extend(table::HTTP_IP.default.map(String::from));
        }
        let port = h
            .optional(&table::HTTP_PORT)?
            .ok_or_else(|| invalid(table::HTTP_PORT.element, "required"))?;
        c.http = Some(HttpConfig { ips, port });
    }
    c.auth_max_line_length = root.setting(&table::AUTH_MAX_LINE_LENGTH)?;
    c.max_unauthenticated = root.setting(&table::MAX_UNAUTHENTICATED)?;
    c.auth_fail_delay = root.setting(&table::AUTH_FAIL_DELAY)?;
    c.interclacks_max_out_buffer = root.setting(&table::INTERCLACKS_MAX_OUT_BUFFER)?;
    c.log_rate_limit = root.setting(&table::LOG_RATE_LIMIT)?;
    c.max_memory = root.setting(&table::MAX_MEMORY)?.0;
    c.max_memory_policy = root.choice(&table::MAX_MEMORY_POLICY)?;
    c.queues = queues(root)?;
    if let Some(r) = root.child(table::REGISTRY.element) {
        c.registry = RegistryConfig {
            max_instances: r.setting(&table::REGISTRY_MAX_INSTANCES)?,
            max_per_connection: r.setting(&table::REGISTRY_MAX_PER_CONNECTION)?,
        };
    }
    if let Some(m) = &c.memcached {
        // A stored value must fit on one interclacks line.
        let needed = m.line_needed();
        if needed > c.max_line_length {
            return Err(invalid(
                table::MEMCACHED_MAX_ITEM_SIZE.element,
                format!(
                    "{} bytes needs a <maxlinelength> of at least {needed}",
                    m.max_item_size
                ),
            ));
        }
    }
    if c.journal.is_some() && c.persistence_file.is_none() {
        return Err(invalid(
            table::JOURNAL.element,
            "needs a <persistancefile>: the journal holds the changes since the last save",
        ));
    }
    if c.ips.is_empty() && c.sockets.is_empty() {
        return Err(invalid(
            table::IP.element,
            "no <ip> and no <socket>: the server would listen nowhere",
        ));
    }
    Ok(c)
}

/// A text element that must be present and not empty.
fn required(node: &Node, t: &Text) -> Result<String, ConfigError> {
    node.text(t)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(t.element, "required"))
}

/// `<ssl><cert>` / `<ssl><key>`: a file that exists.
fn tls_file(ssl: &Node, t: &Text) -> Result<PathBuf, ConfigError> {
    let path = ssl
        .text(t)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(t.element, "required when <ip> is given"))?;
    if !Path::new(&path).is_file() {
        return Err(invalid(t.element, format!("file {path} not found")));
    }
    Ok(PathBuf::from(path))
}

/// The `n`th `<user>` (from 1): errors name it as `user[n]/…`.
fn user(u: &Node, n: usize) -> Result<User, ConfigError> {
    let field = |t: &Text| {
        u.text(t)
            .ok_or_else(|| invalid(format!("user[{n}]/{}", table::leaf(t.element)), "required"))
    };
    Ok(User {
        username: field(&table::USER_USERNAME)?,
        password: field(&table::USER_PASSWORD)?,
        read: u.flag(&table::USER_READ),
        write: u.flag(&table::USER_WRITE),
        manage: u.flag(&table::USER_MANAGE),
    })
}

/// `<master>`: a Unix socket, or an address and port.
fn master(m: &Node) -> Result<Master, ConfigError> {
    if let Some(sock) = m.child(table::MASTER_SOCKET.element) {
        Ok(Master::Unix(PathBuf::from(sock.trimmed())))
    } else if let Some(ip) = m.child(table::MASTER_IP.element) {
        let port = m
            .optional(&table::MASTER_PORT)?
            .ok_or_else(|| invalid(table::MASTER_PORT.element, "required with <master><ip>"))?;
        Ok(Master::Tcp {
            ip: ip.trimmed(),
            port,
        })
    } else {
        Err(invalid(
            table::MASTER.element,
            "needs <ip> and <port>, or <socket>",
        ))
    }
}

/// `<master><cafile>` / `<master><pin>`: PEM files that must exist; at most one, TCP only.
fn master_verify(m: &Node, master: &Master) -> Result<clacks_client::TlsVerify, ConfigError> {
    let file = |t: &Text| -> Result<Option<PathBuf>, ConfigError> {
        match m.text(t) {
            None => Ok(None),
            Some(p) if p.is_empty() => Err(invalid(t.element, "empty file name")),
            Some(p) if !Path::new(&p).is_file() => {
                Err(invalid(t.element, format!("file {p} not found")))
            }
            Some(p) => Ok(Some(PathBuf::from(p))),
        }
    };
    let verify = match (file(&table::MASTER_CAFILE)?, file(&table::MASTER_PIN)?) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                table::MASTER_PIN.element,
                "give <cafile> or <pin>, not both",
            ));
        }
        (Some(ca), None) => clacks_client::TlsVerify::CaFile(ca),
        (None, Some(pin)) => clacks_client::TlsVerify::Pinned(pin),
        (None, None) => clacks_client::TlsVerify::None,
    };
    if verify != clacks_client::TlsVerify::None && matches!(master, Master::Unix(_)) {
        return Err(invalid(
            table::MASTER_CAFILE.element,
            "<cafile> and <pin> apply to a TLS master (<ip>), not to <socket>",
        ));
    }
    Ok(verify)
}

/// `<memcached>`: a port (on loopback unless `<ip>` says otherwise) or sockets.
fn memcached(m: &Node) -> Result<Memcached, ConfigError> {
    let mut ips = m.texts(&table::MEMCACHED_IP);
    let port = m.optional(&table::MEMCACHED_PORT)?;
    if port.is_none() && !ips.is_empty() {
        return Err(invalid(
            table::MEMCACHED_PORT.element,
            "required when <ip> is given",
        ));
    }
    if port.is_some() && ips.is_empty() {
        ips.extend(table::MEMCACHED_IP.default.map(String::from));
    }
    let sockets: Vec<PathBuf> = m
        .texts(&table::MEMCACHED_SOCKET)
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if port.is_none() && sockets.is_empty() {
        return Err(invalid(
            table::MEMCACHED.element,
            "needs <port> (and <ip>) or <socket>",
        ));
    }
    Ok(Memcached {
        ips,
        port,
        sockets,
        max_item_size: m.setting(&table::MEMCACHED_MAX_ITEM_SIZE)?,
    })
}

/// `<queues>` and every `<queueprefix>`.
fn queues(root: &Node) -> Result<QueueConfig, ConfigError> {
    let mut q = QueueConfig::default();
    if let Some(n) = root.child(table::QUEUES.element) {
        q.limits = QueueLimits {
            max_messages: n.setting(&table::QUEUES_MAX_MESSAGES)?,
            max_bytes: n.setting(&table::QUEUES_MAX_BYTES)?,
            max_message_size: n.setting(&table::QUEUES_MAX_MESSAGE_SIZE)?,
            overflow: n.choice(&table::QUEUES_OVERFLOW)?,
        };
        q.max_deliveries = n.setting(&table::QUEUES_MAX_DELIVERIES)?;
        q.max_queues = n.setting(&table::QUEUES_MAX_QUEUES)?;
        q.max_total_bytes = n.setting(&table::QUEUES_MAX_TOTAL_BYTES)?;
        q.max_waits = n.setting(&table::QUEUES_MAX_WAITS)?;
        q.idle_time = n.setting(&table::QUEUES_IDLE_TIME)?;
    }
    for (i, p) in root.all(table::QUEUEPREFIX.element).enumerate() {
        let prefix = p.text(&table::QUEUEPREFIX_PREFIX).filter(|s| !s.is_empty());
        let prefix =
            prefix.ok_or_else(|| invalid(format!("queueprefix[{}]/prefix", i + 1), "required"))?;
        let d = q.limits;
        let limits = QueueLimits {
            max_messages: p
                .optional(&table::QUEUEPREFIX_MAX_MESSAGES.range())?
                .unwrap_or(d.max_messages),
            max_bytes: p
                .optional(&table::QUEUEPREFIX_MAX_BYTES.range())?
                .unwrap_or(d.max_bytes),
            max_message_size: p
                .optional(&table::QUEUEPREFIX_MAX_MESSAGE_SIZE.range())?
                .unwrap_or(d.max_message_size),
            overflow: match p.child(table::QUEUEPREFIX_OVERFLOW.element) {
                None => d.overflow,
                Some(_) => p.choice(&table::QUEUEPREFIX_OVERFLOW)?,
            },
        };
        q.prefixes.push((prefix, limits));
    }
    Ok(q)
}
