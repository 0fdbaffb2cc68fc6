//! `/metrics`: the Prometheus text exposition format (version 0.0.4), every series
//! `clacks_`-prefixed with HELP and TYPE.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::state::Shared;
use crate::stats::{Stats, GAUGES, LATENCY_BOUNDS};

/// The exposition being written.
struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP clacks_{name} {help}");
        let _ = writeln!(self.0, "# TYPE clacks_{name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str("clacks_");
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.head(name, kind, help);
        self.value(name, &[], value);
    }
}

/// A figure of a `QSTATS` or `SERVICE` line's fields.
fn field(fields: &[u8], name: &str) -> f64 {
    super::field(fields, name) as f64
}

/// Every counter of `STATS` (microseconds as seconds), then the figures of the state.
pub(super) fn render(shared: &Shared) -> String {
    let mut out = Out(String::with_capacity(16 * 1024));
    let stats = shared.stats.snapshot();
    for ((name, value), (_, doc)) in stats.iter().zip(Stats::DOCS) {
        let gauge = GAUGES.contains(name);
        let (name, value) = match name.strip_suffix("_micros") {
            Some(base) => (format!("{base}_seconds"), *value as f64 / 1e6),
            None => (name.to_string(), *value as f64),
        };
        let doc = doc.replace("Microseconds", "Seconds");
        if gauge {
            out.single(&name, "gauge", &doc, value);
        } else {
            out.single(&format!("{name}_total"), "counter", &doc, value);
        }
    }
    let st = &shared.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
    let memcached = load(&st.memcached_connections_current);
    let http = load(&st.http_connections_current);
    let all = load(&st.connections_current);
    out.head(
        "connections",
        "gauge",
        "Connections open now, by the kind of listener that accepted them (links to and from \
         other servers count as clacks).",
    );
    out.value(
        "connections",
        &[("listener", "clacks")],
        all - memcached - http,
    );
    out.value("connections", &[("listener", "memcached")], memcached);
    out.value("connections", &[("listener", "http")], http);
    out.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        shared.started.elapsed().as_secs_f64(),
    );

    let state = shared.lock();
    let memory = state.cache.memory();
    out.single(
        "cache_entries",
        "gauge",
        "Records in the cache, tombstones included.",
        state.cache.len() as f64,
    );
    out.single(
        "cache_memory_bytes",
        "gauge",
        "Accounted bytes of every cache record (key + value + overhead).",
        memory.used as f64,
    );
    out.single(
        "cache_memory_limit_bytes",
        "gauge",
        "The cache memory limit (<maxmemory>), 0 for none.",
        memory.limit as f64,
    );
    out.single(
        "cache_memory_limit_used",
        "gauge",
        "Share of the memory limit in use (0 to 1; 0 without a limit).",
        if memory.limit > 0 {
            memory.used as f64 / memory.limit as f64
        } else {
            0.0
        },
    );
    out.single(
        "cache_evictions_total",
        "counter",
        "Records evicted to stay under the memory limit.",
        memory.evictions as f64,
    );
    out.single(
        "cache_writes_refused_memory_total",
        "counter",
        "Writes refused for the memory limit.",
        memory.refused as f64,
    );

    let queues = state.queues.list();
    for (name, help) in [
        ("messages", "Ready messages in the queue."),
        ("bytes", "Bytes of the ready messages in the queue."),
        (
            "leased",
            "Messages handed out under a lease and not acknowledged yet.",
        ),
        ("waiting", "Receives waiting for a message."),
    ] {
        out.head(&format!("queue_{name}"), "gauge", help);
        for (queue, fields) in &queues {
            let q = String::from_utf8_lossy(queue);
            out.value(
                &format!("queue_{name}"),
                &[("queue", &q)],
                field(fields, name),
            );
        }
    }
    for (name, help) in [
        ("sent", "Messages taken into the queue."),
        ("received", "Messages handed to receives."),
        ("acked", "Leased messages acknowledged."),
    ] {
        out.head(&format!("queue_messages_{name}_total"), "counter", help);
        for (queue, fields) in &queues {
            let q = String::from_utf8_lossy(queue);
            out.value(
                &format!("queue_messages_{name}_total"),
                &[("queue", &q)],
                field(fields, name),
            );
        }
    }
    let services = state.registry.services();
    for (name, help) in [
        ("instances", "Live instances registered under the service."),
        ("draining", "Instances of the service that are draining."),
    ] {
        out.head(&format!("registry_{name}"), "gauge", help);
        for (service, fields) in &services {
            let s = String::from_utf8_lossy(service);
            out.value(
                &format!("registry_{name}"),
                &[("service", &s)],
                field(fields, name),
            );
        }
    }
    let synced = state.routes.master_link().is_some();
    let links = state.links.ids().count();
    if let Some(journal) = &state.journal {
        out.single(
            "journal_unsynced_age_seconds",
            "gauge",
            "How long ago the oldest change not yet on disk was made (0 when all are).",
            journal.unsynced_age(),
        );
    }
    drop(state);

    out.single(
        "links",
        "gauge",
        "Interclacks links of this server (to its master and from its slaves).",
        links as f64,
    );
    if shared.config.master.is_some() {
        out.single(
            "master_link_up",
            "gauge",
            "1 while the connection to the master is open.",
            f64::from(u8::from(shared.master_up.load(Ordering::Relaxed))),
        );
        out.single(
            "master_link_synced",
            "gauge",
            "1 once the master has synced this server over the open link.",
            f64::from(u8::from(synced)),
        );
        let last = *shared
            .last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = last {
            out.single(
                "master_last_sync_age_seconds",
                "gauge",
                "Seconds since the master last synced this server.",
                at.elapsed().as_secs_f64(),
            );
        }
    }

    let (buckets, count, sum) = shared.latency.cumulative();
    out.head(
        "command_batch_duration_seconds",
        "histogram",
        "Time a batch of commands (those read together from one connection) ran under the \
         state lock; one batch in 16 is measured.",
    );
    for (bound, n) in LATENCY_BOUNDS.iter().zip(&buckets) {
        out.value(
            "command_batch_duration_seconds_bucket",
            &[("le", &bound.to_string())],
            *n as f64,
        );
    }
    out.value(
        "command_batch_duration_seconds_bucket",
        &[("le", "+Inf")],
        count as f64,
    );
    out.value("command_batch_duration_seconds_sum", &[], sum);
    out.value("command_batch_duration_seconds_count", &[], count as f64);
    out.0
}
