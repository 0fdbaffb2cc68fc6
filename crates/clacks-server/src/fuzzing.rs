//! Invariant checks shared by the fuzz target `config_parse` (in `fuzz/`) and the test that
//! replays its seed corpus on stable. Not part of the API: each function panics when an
//! invariant does not hold.

use std::time::Instant;

use crate::config::table::{self, Numeric, Value};
use crate::config::{Config, Master};

/// The host name configs are parsed for (seeds use it under `<hosts>`).
pub const HOST: &str = "fuzzhost";

/// Parses `data` (as UTF-8, invalid bytes replaced) as a config file for [`HOST`].
///
/// Invariants: no panic; parsing is deterministic; an accepted config satisfies [`check`].
pub fn config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = Config::from_xml(&text, HOST) else {
        return;
    };
    check(&config);
    let again = Config::from_xml(&text, HOST).expect("the same text parses again");
    assert_eq!(format!("{again:?}"), format!("{config:?}"));
}

/// What every accepted config holds: each number within its element's range (so every deadline
/// `Instant::now() + duration` is representable), a main user, a listener, and the TLS and
/// memcached settings complete.
pub fn check(c: &Config) {
    let seconds = [
        (
            table::INTERCLACKS_RECONNECT_TIMEOUT,
            c.interclacks_reconnect_timeout,
        ),
        (table::AUTH_TIMEOUT, c.auth_timeout),
        (table::PING_TIMEOUT, c.ping_timeout),
        (table::INTERCLACKS_PING_TIMEOUT, c.interclacks_ping_timeout),
        (table::PERSISTENCE_INTERVAL, c.persistence_interval),
        (table::DELETED_CACHE_TIME, c.deleted_cache_time),
        (table::STALE_CACHE_TIME, c.stale_cache_time),
        (table::CACHE_CLEAN_INTERVAL, c.cache_clean_interval),
        (table::STALLED_WRITE_TIMEOUT, c.stalled_write_timeout),
        (
            table::INTERCLACKS_STALLED_WRITE_TIMEOUT,
            c.interclacks_stalled_write_timeout,
        ),
        (table::TLS_HANDSHAKE_TIMEOUT, c.tls_handshake_timeout),
        (table::AUTH_FAIL_DELAY, c.auth_fail_delay),
        (table::QUEUES_IDLE_TIME, c.queues.idle_time),
    ];
    assert_eq!(
        seconds.len(),
        table::seconds().count(),
        "a timeout is not checked here"
    );
    let now = Instant::now();
    for (n, d) in seconds {
        in_range(&n, d);
        assert!(now.checked_add(d).is_some(), "<{}> {d:?}", n.element);
    }
    let mut counts = vec![
        (table::MAX_LINE_LENGTH, c.max_line_length),
        (table::MAX_CONNECTIONS, c.max_connections),
        (table::MAX_OUT_BUFFER, c.max_out_buffer),
        (table::AUTH_MAX_LINE_LENGTH, c.auth_max_line_length),
        (table::MAX_UNAUTHENTICATED, c.max_unauthenticated),
        (
            table::INTERCLACKS_MAX_OUT_BUFFER,
            c.interclacks_max_out_buffer,
        ),
        (table::LOG_RATE_LIMIT, c.log_rate_limit),
        (table::QUEUES_MAX_DELIVERIES, c.queues.max_deliveries),
        (table::QUEUES_MAX_QUEUES, c.queues.max_queues),
        (table::QUEUES_MAX_TOTAL_BYTES, c.queues.max_total_bytes),
        (table::QUEUES_MAX_WAITS, c.queues.max_waits),
        (table::REGISTRY_MAX_INSTANCES, c.registry.max_instances),
        (
            table::REGISTRY_MAX_PER_CONNECTION,
            c.registry.max_per_connection,
        ),
    ];
    let prefixes = c.queues.prefixes.iter().map(|(_, limits)| limits);
    for limits in std::iter::once(&c.queues.limits).chain(prefixes) {
        counts.push((table::QUEUES_MAX_MESSAGES, limits.max_messages));
        counts.push((table::QUEUES_MAX_BYTES, limits.max_bytes));
        counts.push((table::QUEUES_MAX_MESSAGE_SIZE, limits.max_message_size));
    }
    if let Some(m) = &c.memcached {
        counts.push((table::MEMCACHED_MAX_ITEM_SIZE, m.max_item_size));
        assert!(
            m.port.is_some() || !m.sockets.is_empty(),
            "memcached listens nowhere"
        );
        assert_eq!(
            m.port.is_some(),
            !m.ips.is_empty(),
            "memcached <ip> without <port>"
        );
        if let Some(p) = m.port {
            assert!(table::MEMCACHED_PORT.contains(p));
        }
        assert!(
            m.line_needed() <= c.max_line_length,
            "a largest item does not fit on an interclacks line"
        );
    }
    for (n, v) in counts {
        in_range(&n, v);
    }
    in_range(&table::MAX_MEMORY, table::ByteSize(c.max_memory));
    if let Some(t) = c.worker_threads {
        assert!(table::WORKER_THREADS.contains(t), "<workerthreads> {t}");
    }
    if let Some(p) = c.port {
        assert!(table::PORT.contains(p), "<port> {p}");
    }
    if let Some(Master::Tcp { port, .. }) = &c.master {
        assert!(table::MASTER_PORT.contains(*port), "<master/port> {port}");
    }
    if let Some(m) = c.socketchmod {
        assert!(
            table::SOCKETCHMOD.contains(table::Octal(m)),
            "<socketchmod> {m:o}"
        );
    }
    assert!(table::TIME_OFFSET.contains(c.time_offset));
    assert!(
        !c.username.is_empty() && !c.password.is_empty(),
        "no main user"
    );
    assert!(
        !c.ips.is_empty() || !c.sockets.is_empty(),
        "listens nowhere"
    );
    if !c.ips.is_empty() {
        assert!(c.port.is_some() && c.tls_cert.is_some() && c.tls_key.is_some());
    }
}

fn in_range<T: Value>(n: &Numeric<T>, v: T) {
    assert!(
        n.range().contains(v),
        "<{}> {v:?} outside {:?}..={:?}",
        n.element,
        n.min,
        n.max
    );
}
