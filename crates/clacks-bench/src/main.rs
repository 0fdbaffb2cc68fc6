//! `clacks-bench`: drives one server with a named workload over the Clacks protocol, Redis RESP
//! or the memcached text protocol, so the same work can be compared across servers.
//!
//! ```text
//! clacks-bench --proto clacks --target unix:clacks-data/clacks.sock --user U --password P fanout --listeners 100
//! clacks-bench --proto redis --target unix:/tmp/redis.sock cache --pipeline 16
//! clacks-bench --proto memcached --target tcp:127.0.0.1:11211 connections --count 10000
//! clacks-bench --proto redis --target unix:/tmp/redis.sock queue --mode acked --consumers 4
//! ```
//!
//! Each run prints a summary and writes a JSON result (machine, commit, command line, server
//! version) into `bench/results/`. With `--server-pid` it also measures the server's CPU time
//! and memory, and reports work per server CPU-second.

mod cache;
mod connections;
mod fanout;
mod queue;
mod report;
mod stall;
mod sys;
mod wire;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

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
    /// One producer, C competing consumers of one work queue: at most once (Clacks
    /// `QSEND`/`QRECV`, Redis `LPUSH`/`BRPOP`) or acknowledged (`QRECV` with a lease + `QACK`,
    /// Redis streams `XADD`/`XREADGROUP`/`XACK`).
    Queue(queue::Options),
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
            let r = fanout::run(&ep, c, listeners, size, rate, messages, window, duration).await?;
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
            let r = cache::run(
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
            let r = stall::run(
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
        Workload::Queue(options) => (
            "queue",
            options.params(),
            queue::run(&ep, c, &options, duration).await?,
        ),
        Workload::Connections { count } => {
            let params = json!({"count": count});
            (
                "connections",
                params,
                connections::run(&ep, c, count).await?,
            )
        }
    };
    report::write(c, name, params, results, &version)
}
