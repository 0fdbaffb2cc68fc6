//! What every workload reports: a progress line, latency percentiles, the server's CPU time,
//! and the summary printed and written as JSON.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::{sys, Common};

/// Prints a progress line every second until `done`.
pub(crate) fn progress(
    quiet: bool,
    what: &'static str,
    count: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) {
    if quiet {
        return;
    }
    tokio::spawn(async move {
        let start = Instant::now();
        while !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let n = count.load(Ordering::Relaxed);
            eprint!(
                "\r  {:>4.0}s  {n:>12} {what}",
                start.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
        eprintln!();
    });
}

/// p50, p99 and p99.9 of a histogram of nanoseconds, in microseconds.
pub(crate) fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let us = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0 * 10.0).round() / 10.0;
    json!({"p50_us": us(0.5), "p99_us": us(0.99), "p999_us": us(0.999), "samples": h.len()})
}

/// The server's CPU time from `start` on (nothing without `--server-pid`).
pub(crate) struct CpuWindow {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuWindow {
    pub(crate) fn start(pid: Option<u32>) -> Self {
        CpuWindow {
            pid,
            start: pid.and_then(sys::cpu_seconds),
        }
    }

    pub(crate) fn used(&self) -> Option<f64> {
        Some(sys::cpu_seconds(self.pid?)? - self.start?)
    }
}

/// What else ran on the machine meanwhile: CPU time used by every process but the server and
/// this one, and time stolen by the hypervisor (both in CPU-seconds), to judge how noisy a run
/// was.
pub(crate) struct NoiseWindow {
    server: CpuWindow,
    me: CpuWindow,
    machine: Option<(f64, f64)>,
}

impl NoiseWindow {
    pub(crate) fn start(server_pid: Option<u32>) -> Self {
        NoiseWindow {
            server: CpuWindow::start(server_pid),
            me: CpuWindow::start(Some(std::process::id())),
            machine: sys::machine_cpu_seconds(),
        }
    }

    /// `{"other_cpu_s", "steal_cpu_s", "load_generator_cpu_s"}` since the start.
    pub(crate) fn used(&self) -> serde_json::Value {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        let (Some((busy0, steal0)), Some((busy1, steal1))) =
            (self.machine, sys::machine_cpu_seconds())
        else {
            return serde_json::Value::Null;
        };
        let me = self.me.used().unwrap_or(0.0);
        let server = self.server.used().unwrap_or(0.0);
        json!({
            "other_cpu_s": round((busy1 - busy0 - me - server).max(0.0)),
            "steal_cpu_s": round(steal1 - steal0),
            "load_generator_cpu_s": round(me),
        })
    }
}

/// `work` per server CPU-second, `null` when the CPU time is unknown.
pub(crate) fn per_cpu(work: u64, cpu: Option<f64>) -> serde_json::Value {
    match cpu {
        Some(c) if c > 0.0 => json!((work as f64 / c).round()),
        _ => serde_json::Value::Null,
    }
}

/// Prints the `results` of workload `name` and, unless `--no-json`, writes them as JSON with the
/// parameters, the machine, the commit and the server's version.
pub(crate) fn write(
    c: &Common,
    name: &str,
    params: serde_json::Value,
    results: serde_json::Value,
    version: &str,
) -> anyhow::Result<()> {
    let label = c
        .label
        .clone()
        .unwrap_or_else(|| format!("{name}-{:?}", c.proto).to_lowercase());
    let report = json!({
        "label": label,
        "workload": name,
        "proto": format!("{:?}", c.proto).to_lowercase(),
        "target": c.target,
        "params": params,
        "results": results,
        "server_version": version,
        "machine": sys::machine(),
        "commit": sys::commit(),
        "command_line": std::env::args().collect::<Vec<_>>().join(" "),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    });
    println!("{label} ({version})");
    if let Some(obj) = results.as_object() {
        for (k, v) in obj {
            println!("  {k:<28} {v}");
        }
    }
    if !c.no_json {
        std::fs::create_dir_all(&c.json_dir).with_context(|| c.json_dir.clone())?;
        let path = format!("{}/{label}.json", c.json_dir);
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| path.clone())?;
        println!("  result written to {path}");
    }
    Ok(())
}
