//! `clacks-bench`: drives one server with a named workload over the Clacks protocol, Redis RESP
//! or the memcached text protocol, so the same work can be compared across servers.
//!
//! ```text
//! clacks-bench --proto clacks --target unix:clacks-data/clacks.sock --user U --password P fanout --listeners 100
//! clacks-bench --proto redis --target unix:/tmp/redis.sock cache --pipeline 16
//! clacks-bench --proto memcached --target tcp:127.0.0.1:11211 connections --count 10000
//! ```
//!
//! Each run prints a summary and writes a JSON result (machine, commit, command line, server
//! version) into `bench/results/`. With `--server-pid` it also measures the server's CPU time
//! and memory, and reports work per server CPU-second.

mod sys;
mod wire;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::BytesMut;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use wire::{Endpoint, Proto};

/// Load generator for Clacks, Redis and memcached servers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Protocol of the server.
    #[arg(long, global = true, value_enum, default_value = "clacks")]
    proto: Proto,
    /// unix:PATH, tcp:HOST:PORT or tls:HOST:PORT.
    #[arg(long, global = true, default_value = "unix:clacks-data/clacks.sock")]
    target: String,
    /// Clacks user.
    #[arg(long, global = true, env = "CLACKS_USER", default_value = "")]
    user: String,
    /// Clacks password.
    #[arg(
        long,
        global = true,
        env = "CLACKS_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    password: String,
    /// Seconds of load.
    #[arg(long, global = true, default_value_t = 5.0)]
    duration: f64,
    /// Process id of the server, to measure its CPU time and memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Name of this run in the results.
    #[arg(long, global = true)]
    label: Option<String>,
    /// Directory for the JSON result.
    #[arg(long, global = true, default_value = "bench/results")]
    json_dir: String,
    /// Do not write a JSON result.
    #[arg(long, global = true)]
    no_json: bool,
    /// No progress line.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug, Clone)]
enum Workload {
    /// One publisher, N listeners of one channel.
    Fanout {
        /// Listening connections.
        #[arg(long, default_value_t = 100)]
        listeners: usize,
        /// Message size in bytes (a send timestamp plus padding).
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Messages per second to publish (default: as fast as the listeners keep up).
        #[arg(long)]
        rate: Option<f64>,
        /// Stop after this many messages instead of after --duration.
        #[arg(long)]
        messages: Option<u64>,
        /// Messages the slowest listener may lag behind before the publisher waits.
        #[arg(long, default_value_t = 8192)]
        window: u64,
    },
    /// C connections doing gets and sets on a key space.
    Cache {
        /// Connections.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Share of gets (the rest are sets).
        #[arg(long, default_value_t = 0.9)]
        get_ratio: f64,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 1)]
        pipeline: usize,
        /// Number of distinct keys.
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Stop after this many operations instead of after --duration.
        #[arg(long)]
        ops: Option<u64>,
    },
    /// Round trips of one client while the server saves a large cache (Clacks only): fills
    /// KEYS values of SIZE bytes, keeps the cache dirty with a slow stream of writes, and
    /// measures RETRIEVE round trips; run the server with a short `persistanceinterval`.
    /// With --memcached-stats also runs memcached `stats` in a loop meanwhile.
    Stall {
        /// Values to fill the cache with.
        #[arg(long, default_value_t = 200_000)]
        keys: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Writes per second that keep the cache dirty during the measurement.
        #[arg(long, default_value_t = 100.0)]
        write_rate: f64,
        /// memcached listener (tcp:HOST:PORT or unix:PATH) to send `stats` to in a loop.
        #[arg(long)]
        memcached_stats: Option<String>,
        /// Stop after this many round trips instead of after --duration.
        #[arg(long)]
        round_trips: Option<u64>,
    },
    /// N idle connections (logged in) and the server memory they cost.
    Connections {
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clacks-bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clacks-bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let c = &cli.common;
    let ep = Endpoint {
        proto: c.proto,
        target: c.target.clone(),
        user: c.user.clone(),
        password: c.password.clone(),
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let version = ep.version().await.context("asking the server's version")?;
    let duration = Duration::try_from_secs_f64(c.duration).context("--duration")?;
    let (name, params, results) = match cli.workload.clone() {
        Workload::Fanout {
            listeners,
            size,
            rate,
            messages,
            window,
        } => {
            let params = json!({"listeners": listeners, "size": size, "rate": rate, "messages": messages, "window": window});
            let r = fanout(&ep, c, listeners, size, rate, messages, window, duration).await?;
            ("fanout", params, r)
        }
        Workload::Cache {
            connections,
            get_ratio,
            pipeline,
            keys,
            size,
            ops,
        } => {
            let params = json!({"connections": connections, "get_ratio": get_ratio, "pipeline": pipeline, "keys": keys, "size": size, "ops": ops});
            let r = cache(
                &ep,
                c,
                connections,
                get_ratio,
                pipeline,
                keys,
                size,
                ops,
                duration,
            )
            .await?;
            ("cache", params, r)
        }
        Workload::Stall {
            keys,
            size,
            write_rate,
            memcached_stats,
            round_trips,
        } => {
            let params = json!({"keys": keys, "size": size, "write_rate": write_rate, "memcached_stats": memcached_stats, "round_trips": round_trips});
            let r = stall(
                &ep,
                c,
                keys,
                size,
                write_rate,
                memcached_stats,
                round_trips,
                duration,
            )
            .await?;
            ("stall", params, r)
        }
        Workload::Connections { count } => {
            let params = json!({"count": count});
            ("connections", params, connections(&ep, c, count).await?)
        }
    };
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

/// Prints a progress line every second until `done`.
fn progress(quiet: bool, what: &'static str, count: Arc<AtomicU64>, done: Arc<AtomicBool>) {
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

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let us = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0 * 10.0).round() / 10.0;
    json!({"p50_us": us(0.5), "p99_us": us(0.99), "p999_us": us(0.999), "samples": h.len()})
}

struct CpuWindow {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuWindow {
    fn start(pid: Option<u32>) -> Self {
        CpuWindow {
            pid,
            start: pid.and_then(sys::cpu_seconds),
        }
    }

    fn used(&self) -> Option<f64> {
        Some(sys::cpu_seconds(self.pid?)? - self.start?)
    }
}

fn per_cpu(work: u64, cpu: Option<f64>) -> serde_json::Value {
    match cpu {
        Some(c) if c > 0.0 => json!((work as f64 / c).round()),
        _ => serde_json::Value::Null,
    }
}

#[allow(clippy::too_many_arguments)]
async fn fanout(
    ep: &Endpoint,
    c: &Common,
    listeners: usize,
    size: usize,
    rate: Option<f64>,
    messages: Option<u64>,
    window: u64,
    duration: Duration,
) -> anyhow::Result<serde_json::Value> {
    const CHANNEL: &str = "bench";
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut counters = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..listeners {
        let (mut s, mut buf) = ep.connect().await?;
        let mut req = Vec::new();
        wire::subscribe(ep.proto, CHANNEL, &mut req);
        let ready: &[u8] = if wire::barrier(ep.proto, &mut req) {
            b"FLUSHED"
        } else {
            b":1\r\n"
        };
        s.write_all(&req).await?;
        while wire::find(&buf, ready).is_none() {
            if s.read_buf(&mut buf).await? == 0 {
                bail!("listener closed while subscribing");
            }
        }
        buf.clear();
        let delivered = Arc::new(AtomicU64::new(0));
        counters.push(delivered.clone());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut buf = BytesMut::with_capacity(256 * 1024);
            while !stop.load(Ordering::Relaxed) {
                let read =
                    tokio::time::timeout(Duration::from_millis(50), s.read_buf(&mut buf)).await;
                match read {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                    Err(_) => continue,
                }
                let now = epoch.elapsed().as_nanos() as u64;
                let mut pos = 0;
                let mut n = 0;
                while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
                    let line = &buf[pos..pos + nl];
                    pos += nl + 1;
                    let payload = if line.starts_with(b"SET ") {
                        memchr::memchr(b'=', line).map(|e| &line[e + 1..])
                    } else if line.first().is_some_and(u8::is_ascii_digit) {
                        Some(line)
                    } else {
                        None
                    };
                    if let Some(p) = payload {
                        let ts = p
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'));
                        let _ = hist.record(now.saturating_sub(ts).max(1));
                        n += 1;
                    }
                }
                let _ = buf.split_to(pos);
                delivered.fetch_add(n, Ordering::Relaxed);
            }
            hist
        }));
    }

    let (pub_stream, _) = ep.connect().await?;
    let (mut drain, mut publisher) = tokio::io::split(pub_stream);
    tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(drain.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let total = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(c.quiet, "messages delivered", total.clone(), done.clone());
    let slowest = |counters: &[Arc<AtomicU64>]| {
        counters
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    let cpu = CpuWindow::start(c.server_pid);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut batch = Vec::with_capacity(64 * (size + 64));
    let limit = messages.unwrap_or(u64::MAX);
    while sent < limit && (messages.is_some() || start.elapsed() < duration) {
        if let Some(r) = rate {
            let allowed = (start.elapsed().as_secs_f64() * r) as u64;
            if sent >= allowed {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        while sent.saturating_sub(slowest(&counters)) > window {
            tokio::task::yield_now().await;
            total.store(
                counters.iter().map(|d| d.load(Ordering::Relaxed)).sum(),
                Ordering::Relaxed,
            );
        }
        batch.clear();
        let n = 64.min(limit - sent);
        for _ in 0..n {
            let ts = epoch.elapsed().as_nanos();
            let mut payload = format!("{ts}:").into_bytes();
            payload.resize(size.max(payload.len()), b'x');
            wire::publish(ep.proto, CHANNEL, &payload, &mut batch);
        }
        publisher.write_all(&batch).await?;
        sent += n;
        total.store(
            counters.iter().map(|d| d.load(Ordering::Relaxed)).sum(),
            Ordering::Relaxed,
        );
    }
    publisher.flush().await?;
    let published_in = start.elapsed();
    let expected = sent * listeners as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while counters
        .iter()
        .map(|d| d.load(Ordering::Relaxed))
        .sum::<u64>()
        < expected
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu.used();
    stop.store(true, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        hist.add(t.await?).ok();
    }
    let delivered: u64 = counters.iter().map(|d| d.load(Ordering::Relaxed)).sum();
    Ok(json!({
        "messages_published": sent,
        "messages_delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "published_per_s": (sent as f64 / published_in.as_secs_f64()).round(),
        "delivered_per_s": (delivered as f64 / elapsed.as_secs_f64()).round(),
        "server_cpu_s": cpu_used,
        "delivered_per_server_cpu_s": per_cpu(delivered, cpu_used),
        "latency": percentiles(&hist),
    }))
}

#[allow(clippy::too_many_arguments)]
async fn cache(
    ep: &Endpoint,
    c: &Common,
    connections: usize,
    get_ratio: f64,
    pipeline: usize,
    keys: usize,
    size: usize,
    ops: Option<u64>,
    duration: Duration,
) -> anyhow::Result<serde_json::Value> {
    let value = vec![b'v'; size];
    // Preload every key so gets hit.
    {
        let (mut s, mut buf) = ep.connect().await?;
        for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
            let mut req = Vec::new();
            let mut expect = 0;
            for k in chunk {
                if wire::set(ep.proto, &format!("key:{k}"), &value, &mut req) {
                    expect += 1;
                }
            }
            if wire::barrier(ep.proto, &mut req) {
                expect += 1;
            }
            s.write_all(&req).await?;
            let mut got = 0;
            while got < expect {
                if s.read_buf(&mut buf).await? == 0 {
                    bail!("closed while preloading");
                }
                got += wire::take_replies(ep.proto, &mut buf);
            }
        }
    }
    let total = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(c.quiet, "operations", total.clone(), done.clone());
    let cpu = CpuWindow::start(c.server_pid);
    let start = Instant::now();
    let per_conn = ops.map(|o| o.div_ceil(connections as u64));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (mut s, mut buf) = ep.connect().await?;
        let (proto, value, total) = (ep.proto, value.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut req = Vec::new();
            let mut done_ops = 0u64;
            loop {
                if per_conn.map_or(start.elapsed() >= duration, |limit| done_ops >= limit) {
                    break;
                }
                req.clear();
                let mut expect = 0;
                for _ in 0..pipeline {
                    let key = format!("key:{}", rng.gen_range(0..keys));
                    if rng.gen_bool(get_ratio) {
                        wire::get(proto, &key, &mut req);
                        expect += 1;
                    } else if wire::set(proto, &key, &value, &mut req) {
                        expect += 1;
                    }
                }
                if expect == 0 && wire::barrier(proto, &mut req) {
                    expect = 1;
                }
                let sent = Instant::now();
                s.write_all(&req).await?;
                let mut got = 0;
                while got < expect {
                    if s.read_buf(&mut buf).await? == 0 {
                        bail!("server closed the connection");
                    }
                    got += wire::take_replies(proto, &mut buf);
                }
                let _ = hist.record_n(sent.elapsed().as_nanos() as u64, pipeline as u64);
                done_ops += pipeline as u64;
                total.fetch_add(pipeline as u64, Ordering::Relaxed);
            }
            anyhow::Ok((done_ops, hist))
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut done_ops = 0;
    for t in tasks {
        let (n, h) = t.await??;
        done_ops += n;
        hist.add(h).ok();
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu.used();
    done.store(true, Ordering::Relaxed);
    Ok(json!({
        "operations": done_ops,
        "ops_per_s": (done_ops as f64 / elapsed.as_secs_f64()).round(),
        "server_cpu_s": cpu_used,
        "ops_per_server_cpu_s": per_cpu(done_ops, cpu_used),
        "latency": percentiles(&hist),
    }))
}

/// The value of `STAT <name>=<n>` in a Clacks `STATS` reply.
async fn clacks_stat(s: &mut wire::Conn, buf: &mut BytesMut, name: &str) -> anyhow::Result<u64> {
    s.write_all(b"STATS\r\n").await?;
    while wire::find(buf, b"STATSEND").is_none() {
        if s.read_buf(buf).await? == 0 {
            bail!("closed during STATS");
        }
    }
    let want = format!("STAT {name}=");
    let value = wire::find(buf, want.as_bytes()).map(|pos| {
        buf[pos + want.len()..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'))
    });
    buf.clear();
    value.with_context(|| format!("no {name} in STATS (needs the manage permission)"))
}

#[allow(clippy::too_many_arguments)]
async fn stall(
    ep: &Endpoint,
    c: &Common,
    keys: usize,
    size: usize,
    write_rate: f64,
    memcached_stats: Option<String>,
    round_trips: Option<u64>,
    duration: Duration,
) -> anyhow::Result<serde_json::Value> {
    if ep.proto != Proto::Clacks {
        bail!("the stall workload speaks Clacks (RETRIEVE, STATS)");
    }
    // Fill, pipelined in batches that end with a FLUSH barrier.
    let fill_start = Instant::now();
    let value = vec![b'v'; size];
    let (mut admin, mut abuf) = ep.connect().await?;
    let mut req = Vec::with_capacity(1000 * (size + 32));
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        req.clear();
        for k in chunk {
            wire::set(ep.proto, &format!("stall:{k}"), &value, &mut req);
        }
        wire::barrier(ep.proto, &mut req);
        admin.write_all(&req).await?;
        let mut got = 0;
        while got < 1 {
            if admin.read_buf(&mut abuf).await? == 0 {
                bail!("closed while filling");
            }
            got += wire::take_replies(ep.proto, &mut abuf);
        }
    }
    let fill_s = fill_start.elapsed().as_secs_f64();
    let saves_before = clacks_stat(&mut admin, &mut abuf, "persistence_saves").await?;

    let stop = Arc::new(AtomicBool::new(false));
    // Writer: keeps the cache dirty so that every interval saves.
    let writer = {
        let (mut s, _) = ep.connect().await?;
        let stop = stop.clone();
        let pause = Duration::from_secs_f64(1.0 / write_rate.max(0.1));
        tokio::spawn(async move {
            let mut n = 0u64;
            let (mut drain, mut w) = tokio::io::split(&mut s);
            let reader = async {
                let mut sink = vec![0u8; 4096];
                while matches!(drain.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            let writes = async {
                while !stop.load(Ordering::Relaxed) {
                    let line = format!("STORE stall:dirty={n}\r\n");
                    if w.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                    n += 1;
                    tokio::time::sleep(pause).await;
                }
            };
            tokio::select! {
                () = reader => {}
                () = writes => {}
            }
            n
        })
    };
    // memcached `stats` in a loop.
    let stats_task = match memcached_stats {
        Some(target) => {
            let mc = Endpoint {
                proto: Proto::Memcached,
                target,
                user: String::new(),
                password: String::new(),
            };
            let (mut s, mut buf) = mc.connect().await?;
            let stop = stop.clone();
            Some(tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3).expect("histogram");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    s.write_all(b"stats\r\n").await?;
                    while wire::find(&buf, b"END\r\n").is_none() {
                        if s.read_buf(&mut buf).await? == 0 {
                            bail!("memcached listener closed");
                        }
                    }
                    buf.clear();
                    let _ = hist.record(sent.elapsed().as_nanos() as u64);
                    n += 1;
                }
                anyhow::Ok((n, hist))
            }))
        }
        None => None,
    };

    let total = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(c.quiet, "round trips", total.clone(), done.clone());
    let (mut s, mut buf) = ep.connect().await?;
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut over_20ms = 0u64;
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        if round_trips.map_or(start.elapsed() >= duration, |limit| n >= limit) {
            break;
        }
        req.clear();
        wire::get(
            ep.proto,
            &format!("stall:{}", rng.gen_range(0..keys.max(1))),
            &mut req,
        );
        let sent = Instant::now();
        s.write_all(&req).await?;
        let mut got = 0;
        while got < 1 {
            if s.read_buf(&mut buf).await? == 0 {
                bail!("server closed the connection");
            }
            got += wire::take_replies(ep.proto, &mut buf);
        }
        let rtt = sent.elapsed();
        if rtt > Duration::from_millis(20) {
            over_20ms += 1;
        }
        let _ = hist.record(rtt.as_nanos() as u64);
        n += 1;
        total.store(n, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let writes = writer.await?;
    let (stats_calls, stats_latency) = match stats_task {
        Some(t) => {
            let (n, h) = t.await??;
            (
                json!(n),
                json!({"max_ms": h.max() as f64 / 1e6, "p50_us": h.value_at_quantile(0.5) as f64 / 1e3}),
            )
        }
        None => (serde_json::Value::Null, serde_json::Value::Null),
    };
    let saves_after = clacks_stat(&mut admin, &mut abuf, "persistence_saves").await?;
    let ms = |v: u64| (v as f64 / 1e4).round() / 100.0;
    Ok(json!({
        "round_trips": n,
        "fill_s": (fill_s * 100.0).round() / 100.0,
        "measured_s": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "saves_during": saves_after.saturating_sub(saves_before),
        "writes_during": writes,
        "max_ms": ms(hist.max()),
        "p99_ms": ms(hist.value_at_quantile(0.99)),
        "p999_ms": ms(hist.value_at_quantile(0.999)),
        "over_20ms": over_20ms,
        "memcached_stats_calls": stats_calls,
        "memcached_stats_latency": stats_latency,
        "latency": percentiles(&hist),
    }))
}

async fn connections(ep: &Endpoint, c: &Common, count: usize) -> anyhow::Result<serde_json::Value> {
    let before = c.server_pid.and_then(sys::rss_kib);
    let opened = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(c.quiet, "connections", opened.clone(), done.clone());
    let mut conns = Vec::with_capacity(count);
    let start = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut batch = Vec::new();
        for _ in chunk {
            let ep = ep.clone();
            batch.push(tokio::spawn(async move {
                let (mut s, mut buf) = ep.connect().await?;
                let (req, ready): (&[u8], &[u8]) = match ep.proto {
                    Proto::Clacks => (b"FLUSH c\r\n", b"FLUSHED c"),
                    Proto::Redis => (b"PING\r\n", b"+PONG"),
                    Proto::Memcached => (b"version\r\n", b"VERSION"),
                };
                s.write_all(req).await?;
                while wire::find(&buf, ready).is_none() {
                    if s.read_buf(&mut buf).await? == 0 {
                        bail!("closed while connecting");
                    }
                }
                anyhow::Ok(s)
            }));
        }
        for b in batch {
            conns.push(b.await??);
            opened.fetch_add(1, Ordering::Relaxed);
        }
    }
    let open_time = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = c.server_pid.and_then(sys::rss_kib);
    done.store(true, Ordering::Relaxed);
    let per = match (before, after) {
        (Some(b), Some(a)) => {
            json!(((a.saturating_sub(b)) as f64 / count as f64 * 100.0).round() / 100.0)
        }
        _ => serde_json::Value::Null,
    };
    drop(conns);
    Ok(json!({
        "connections": count,
        "open_s": (open_time.as_secs_f64() * 1000.0).round() / 1000.0,
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_kib_per_connection": per,
    }))
}
