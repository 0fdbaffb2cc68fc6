//! `clacksd`: the Clacks server binary. It parses the flags, installs the tracing subscriber,
//! raises the open-file limit, loads the config (or prepares the zero-config data directory) and
//! runs [`clacks_server::Server`] on a Tokio runtime until SIGINT or SIGTERM.
//!
//! ```sh
//! cargo run --release -p clacksd                       # zero-config: ./clacks-data
//! clacksd --config /etc/clacks/clacks.xml --check-config
//! clacksd --print-default-config > clacks.xml
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clacks_server::config::{sample_config, PersistenceOnError};
use clacks_server::datadir::DataDir;
use clacks_server::{Config, Listeners, Server, ServerError};
use clap::Parser;
use tracing_subscriber::EnvFilter;

mod systemd;

/// A Clacks server, wire-compatible with Net::Clacks.
///
/// Without `--config` it runs a ready-to-use server from a data directory: TLS on
/// 127.0.0.1:49888 with a generated self-signed certificate, a Unix socket, generated
/// credentials and cache persistence.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Net::Clacks XML config file (looked up like the Perl server does).
    #[arg(long, short)]
    config: Option<String>,
    /// Data directory of the zero-config mode.
    #[arg(long, default_value = "./clacks-data")]
    data_dir: PathBuf,
    /// Check the config file and exit.
    #[arg(long, requires = "config")]
    check_config: bool,
    /// Print a commented sample config file and exit.
    #[arg(long)]
    print_default_config: bool,
    /// What to do when the persistence file exists but cannot be read: refuse to start
    /// (default) or move it aside and start empty (overrides `<persistanceonerror>`).
    #[arg(long, value_enum, value_name = "POLICY")]
    persistence_on_error: Option<OnError>,
    /// Worker threads of the runtime (default: `<workerthreads>`, else one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print the man page or shell completions of clacksd, then exit.
    #[arg(long, value_enum, value_name = "WHAT")]
    generate: Option<clacks_client::Generate>,
    /// Log lines for people (text) or for log shippers (json: one JSON object per line).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// `--log-format` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

/// `--persistence-on-error` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OnError {
    /// Refuse to start, naming the file and the fault.
    Refuse,
    /// Rename the damaged file(s) to `<name>.bad-<unix time>` and start with an empty cache.
    Moveaside,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clacksd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(what) = args.generate {
        use clap::CommandFactory as _;
        clacks_client::generate(Args::command(), what, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let level = match args.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }

    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    if args.print_default_config {
        print!("{}", sample_config());
        return Ok(());
    }
    if let Some(n) = args.threads {
        let range = clacks_server::config::table::WORKER_THREADS;
        anyhow::ensure!(
            range.contains(n),
            "--threads: expected {} to {}, got {n}",
            range.min,
            range.max
        );
    }
    let mut config = match &args.config {
        Some(name) => Config::load(name).with_context(|| format!("config {name}"))?,
        None => DataDir::new(&args.data_dir)
            .ensure()
            .with_context(|| format!("data directory {}", args.data_dir.display()))?,
    };
    if let Some(policy) = args.persistence_on_error {
        config.persistence_on_error = match policy {
            OnError::Refuse => PersistenceOnError::Refuse,
            OnError::Moveaside => PersistenceOnError::MoveAside,
        };
    }
    if args.check_config {
        // A check never moves files: it reads the persistence file as a refusing server would.
        let policy = config.persistence_on_error;
        let mut check = config;
        check.persistence_on_error = PersistenceOnError::Refuse;
        match Server::new(check) {
            Err(
                ServerError::Persistence { problem, .. } | ServerError::Journal { problem, .. },
            ) if policy == PersistenceOnError::MoveAside => {
                println!("config OK; damaged persistence or journal file(s) would be moved aside at start: {problem}");
            }
            other => {
                other.context("config check")?;
                println!("config OK");
            }
        }
        return Ok(());
    }
    // Loads the persistence file before anything is bound, so a refusal leaves nothing behind.
    let server = Server::new(config.clone())?;
    // One thread: the cheaper single-threaded scheduler; more: the work-stealing one.
    let mut builder = match args.threads.or(config.worker_threads) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        if args.config.is_none() {
            let dir = DataDir::new(&args.data_dir);
            println!("clacksd listening:");
            println!("  TLS     127.0.0.1:{}", clacks_server::datadir::DEFAULT_PORT);
            println!("  socket  {}", dir.socket().display());
            println!(
                "  http    http://127.0.0.1:{}/ (dashboard; /metrics, /healthz, /readyz)",
                clacks_server::datadir::DEFAULT_HTTP_PORT
            );
            println!("  login   user {:?}, password in {}", config.username, dir.credentials().display());
            println!("  memory  cache limit {} MiB (<maxmemory>; writes over it are refused)", config.max_memory >> 20);
            println!("  try:    printf 'CLACKS me\\nOVERHEAD A <base64 user>:<base64 password>\\nKEYLIST\\nQUIT\\n' | socat - UNIX-CONNECT:{}", dir.socket().display());
        }
        // Loaded and bound: clients can connect from now on.
        systemd::notify("READY=1");
        let stopping = server.shutdown_token();
        tokio::spawn(async move {
            stopping.cancelled().await;
            systemd::notify("STOPPING=1");
        });
        server.run(listeners, shutdown_signal()).await;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
