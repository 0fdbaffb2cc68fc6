//! `clacks-pgbridge`: LISTENs on PostgreSQL's `clacksmessage` channel and relays the commands
//! the `clacks_*` SQL functions send to a Clacks server.
//!
//! Clacks connection flags and `CLACKS_*` variables are those of the `clacks` CLI; PostgreSQL
//! comes from `--pg` and the libpq variables `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
//! `PGPASSWORD`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clacks_client::{Client, ConnectArgs, ConnectOptions, Event, Events};
use clacks_pgbridge::{pg, sql, Stats};
use clap::Parser;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// Relays Clacks commands sent from PostgreSQL (the clacks_* SQL functions) to a Clacks server.
#[derive(Parser, Debug)]
#[command(name = "clacks-pgbridge", version, about)]
struct Cli {
    /// PostgreSQL: a `postgresql://` URL or a libpq `key=value` string; what it leaves out comes
    /// from PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD.
    #[arg(long, value_name = "URL")]
    pg: Option<String>,
    /// Install (CREATE OR REPLACE) the clacks_* SQL functions into the database, then exit.
    /// Switching between --outbox and plain functions replaces them; the table stays.
    #[arg(long, conflicts_with = "print_functions")]
    init_functions: bool,
    /// Print the SQL of the clacks_* functions, then exit.
    #[arg(long)]
    print_functions: bool,
    /// Durable mode: relay (and delete) the rows the functions add to the clacks_outbox table,
    /// as well as plain notifications. With --init-functions or --print-functions: the
    /// functions of this mode and their table.
    #[arg(long)]
    outbox: bool,
    /// Seconds between info summaries of the counters (0: only at exit).
    #[arg(long, default_value_t = 300)]
    stats_interval: u64,
    /// Notifications kept while they cannot be relayed (the Clacks server is down); more are
    /// dropped, logged and counted.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    max_pending: u64,
    /// Print the man page or shell completions of clacks-pgbridge, then exit.
    #[arg(long, value_enum, value_name = "WHAT")]
    generate: Option<clacks_client::Generate>,
    /// More logging (-v debug: one line per relayed message; -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    conn: ConnectArgs,
}

/// Clacks connection options from the flags, as the `clacks` CLI resolves them.
fn clacks_options(conn: &ConnectArgs) -> anyhow::Result<ConnectOptions> {
    let opts = conn.options().context(
        "no usable Clacks connection settings (flags, CLACKS_* variables or a zero-config \
         data directory)",
    )?;
    let mut opts = opts.client_name("clacks-pgbridge").confirm_writes(true);
    // While Clacks is down the bridge keeps the commands itself and resends them; queued in the
    // client they could time out unsent, which is not told apart from an unknown outcome.
    opts.offline_queue = 0;
    Ok(opts)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        use clap::CommandFactory as _;
        return match clacks_client::generate(Cli::command(), what, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clacks-pgbridge: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.print_functions {
        print!("{}", sql::script(mode(cli.outbox)));
        return ExitCode::SUCCESS;
    }
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let pg = pg::config(cli.pg.as_deref(), |name| {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    })
    .context("invalid PostgreSQL settings")?;
    if cli.init_functions {
        return init_functions(&pg, mode(cli.outbox)).await;
    }
    let opts = clacks_options(&cli.conn)?;
    let Some((clacks, events)) = connect_clacks(opts).await else {
        return Ok(());
    };
    tokio::spawn(watch_events(events));
    let stats = Arc::new(Stats::default());
    if cli.stats_interval > 0 {
        let stats = stats.clone();
        let every = Duration::from_secs(cli.stats_interval);
        tokio::spawn(async move {
            let mut last = String::new();
            loop {
                tokio::time::sleep(every).await;
                let now = stats.summary();
                if now != last {
                    info!(summary = %now, "counters");
                    last = now;
                }
            }
        });
    }
    clacks_pgbridge::run(
        pg,
        clacks.clone(),
        clacks_pgbridge::Options {
            max_pending: usize::try_from(cli.max_pending).unwrap_or(usize::MAX),
            outbox: cli.outbox,
            ..clacks_pgbridge::Options::default()
        },
        stats.clone(),
        stop_signal(),
    )
    .await;
    info!(summary = %stats.summary(), "stopping");
    let _ = tokio::time::timeout(Duration::from_secs(5), clacks.disconnect()).await;
    Ok(())
}

fn mode(outbox: bool) -> sql::Mode {
    if outbox {
        sql::Mode::Outbox
    } else {
        sql::Mode::Notify
    }
}

/// Installs the SQL functions (and the outbox table) in one transaction.
async fn init_functions(pg: &tokio_postgres::Config, mode: sql::Mode) -> anyhow::Result<()> {
    let target = pg::describe(pg);
    let (mut client, connection) =
        tokio::time::timeout(Duration::from_secs(30), pg.connect(tokio_postgres::NoTls))
            .await
            .with_context(|| format!("no connection to PostgreSQL ({target}) within 30 s"))?
            .with_context(|| format!("cannot connect to PostgreSQL ({target})"))?;
    let conn = tokio::spawn(connection);
    let tx = client.transaction().await?;
    for stmt in sql::statements(mode) {
        tx.batch_execute(&stmt)
            .await
            .with_context(|| format!("installing the functions failed at:\n{stmt}"))?;
    }
    tx.commit().await.context("commit failed")?;
    drop(client);
    let _ = conn.await;
    info!(postgres = %target, functions = sql::FUNCTIONS.len(), outbox = (mode == sql::Mode::Outbox), "functions installed");
    Ok(())
}

/// Connects to Clacks, retrying with backoff until it works or a stop signal comes (`None`).
async fn connect_clacks(opts: ConnectOptions) -> Option<(Client, Events)> {
    let mut delay = Duration::from_millis(200);
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        match Client::connect(opts.clone()).await {
            Ok((client, events)) => return Some((client.confirmed(), events)),
            Err(e) if e.kind() == clacks_client::ErrorKind::Auth => {
                error!(error = %e, "Clacks refused the login; retrying (fix the credentials)");
            }
            Err(e) => warn!(error = %e, retry_in = ?delay, "cannot connect to Clacks"),
        }
        tokio::select! {
            () = stop.as_mut() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Logs the Clacks connection's events (the client reconnects by itself).
async fn watch_events(mut events: Events) {
    while let Some(event) = events.next().await {
        match event {
            Event::ServerInfo(info) => info!(server = %info, "connected to Clacks"),
            Event::Disconnected { reason } => {
                warn!(%reason, "Clacks connection lost; reconnecting")
            }
            Event::Reconnected => info!("reconnected to Clacks"),
            Event::ErrorMessage { message, command } => {
                warn!(%message, command = ?command, "Clacks error")
            }
            _ => {}
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
