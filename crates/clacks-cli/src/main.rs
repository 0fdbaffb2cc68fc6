//! `clacks`: the command-line client for Clacks servers (`clacksd` or the Perl Net::Clacks).
//!
//! With no connection flags it uses the zero-config server's data directory (`./clacks-data`):
//! its Unix socket and generated credentials, so `clacksd` in one terminal and `clacks get x` in
//! another just works.

mod shell;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clacks_client::{Client, ConnectOptions, Event, Events, TlsVerify};
use clap::{Args, Parser, Subcommand};

/// Command-line client for Clacks servers.
#[derive(Parser, Debug)]
#[command(name = "clacks", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

/// Where and as whom to connect; flags may stand before or after the subcommand.
#[derive(Args, Debug, Clone)]
struct Conn {
    /// Server host for TLS (default: the Unix socket of the data directory).
    #[arg(long, global = true, env = "CLACKS_HOST")]
    host: Option<String>,
    /// Server TLS port.
    #[arg(long, global = true, env = "CLACKS_PORT", default_value_t = 49888)]
    port: u16,
    /// Unix socket path.
    #[arg(long, global = true, env = "CLACKS_SOCKET")]
    socket: Option<PathBuf>,
    /// User name (default: from the data directory's credentials file).
    #[arg(long, global = true, env = "CLACKS_USER")]
    user: Option<String>,
    /// Password (default: from the data directory's credentials file).
    #[arg(long, global = true, env = "CLACKS_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Data directory of a zero-config clacksd.
    #[arg(
        long,
        global = true,
        env = "CLACKS_DATA_DIR",
        default_value = "./clacks-data"
    )]
    data_dir: PathBuf,
    /// Verify the server's TLS certificate against this CA file (PEM).
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
    /// Accept only this TLS certificate (PEM).
    #[arg(long, global = true)]
    pin: Option<PathBuf>,
    /// Seconds to wait for connecting and for each answer.
    #[arg(long, global = true, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// NOTIFY listeners of NAME.
    Notify { name: String },
    /// SET NAME=VALUE to its listeners.
    Set { name: String, value: String },
    /// SET to listeners and STORE.
    Setandstore { name: String, value: String },
    /// STORE KEY=VALUE in the cache.
    Store { key: String, value: String },
    /// Print the value of KEY (exit status 1 when not found).
    Get { key: String },
    /// REMOVE KEY.
    Remove { key: String },
    /// INCREMENT KEY by N (default 1).
    Incr { key: String, n: Option<f64> },
    /// DECREMENT KEY by N (default 1).
    Decr { key: String, n: Option<f64> },
    /// List the keys (removed ones included, as the server lists them).
    Keys,
    /// Empty the whole cache.
    ClearCache,
    /// List the server's connections.
    Clients,
    /// Disconnect the client with this CID (see `clients`).
    Kick { cid: String },
    /// Print every signal of the NAMEs as it arrives.
    Listen {
        #[arg(required = true)]
        names: Vec<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print every command the server sees (DEBUG lines).
    Monitor {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the server has processed everything sent before.
    Flush,
    /// Print the server's counters (clacksd only).
    Stats,
    /// Send one raw protocol line and print the answer.
    Raw {
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Interactive prompt with history and completion; shows signals as they arrive.
    Shell,
}

/// How a command ended when it did not fail.
pub(crate) enum Outcome {
    Done,
    NotFound,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clacks: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Shell => shell::run(&runtime, &cli.conn),
        command => runtime.block_on(one_shot(&cli.conn, &command)),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Err(e) => {
            eprintln!("clacks: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Connection options from flags, environment and the data directory.
fn options(conn: &Conn) -> anyhow::Result<ConnectOptions> {
    let from_dir = || {
        ConnectOptions::from_data_dir(&conn.data_dir).with_context(|| {
            format!(
                "no --user/--password given and no usable zero-config data directory at {}",
                conn.data_dir.display()
            )
        })
    };
    let credentials = || -> anyhow::Result<(String, String)> {
        match (&conn.user, &conn.password) {
            (Some(u), Some(p)) => Ok((u.clone(), p.clone())),
            (u, p) => {
                let d = from_dir()?;
                Ok((
                    u.clone().unwrap_or(d.username),
                    p.clone().unwrap_or(d.password),
                ))
            }
        }
    };
    let mut opts = if let Some(socket) = &conn.socket {
        let (u, p) = credentials()?;
        ConnectOptions::unix(socket, &u, &p)
    } else if let Some(host) = &conn.host {
        let (u, p) = credentials()?;
        let verify = match (&conn.ca_file, &conn.pin) {
            (Some(_), Some(_)) => bail!("give --ca-file or --pin, not both"),
            (Some(ca), None) => TlsVerify::CaFile(ca.clone()),
            (None, Some(pin)) => TlsVerify::Pinned(pin.clone()),
            (None, None) => TlsVerify::None,
        };
        ConnectOptions::tls(host, conn.port, &u, &p).verify(verify)
    } else {
        let mut o = from_dir()?;
        if let Some(u) = &conn.user {
            o.username = u.clone();
        }
        if let Some(p) = &conn.password {
            o.password = p.clone();
        }
        o
    };
    let timeout = Duration::try_from_secs_f64(conn.timeout).context("--timeout")?;
    opts = opts.client_name("clacks-cli").request_timeout(timeout);
    opts.connect_timeout = timeout;
    Ok(opts)
}

pub(crate) async fn connect(conn: &Conn) -> anyhow::Result<(Client, Events)> {
    let opts = options(conn)?;
    let where_ = match &opts.target {
        clacks_client::Target::Unix(p) => p.display().to_string(),
        clacks_client::Target::Tls { host, port, .. } => format!("{host}:{port}"),
    };
    Client::connect(opts)
        .await
        .with_context(|| format!("cannot connect to {where_}"))
}

async fn one_shot(conn: &Conn, command: &Command) -> anyhow::Result<Outcome> {
    let (client, mut events) = connect(conn).await?;
    let outcome = match command {
        Command::Listen { names, json } => {
            for name in names {
                client.listen(name).await?;
            }
            client.flush().await?;
            eprintln!("listening to {}", names.join(", "));
            stream(&mut events, *json).await?
        }
        Command::Monitor { json } => {
            client.monitor(true).await?;
            client.flush().await?;
            eprintln!("monitoring");
            stream(&mut events, *json).await?
        }
        other => {
            let outcome = execute(&client, other, &mut std::io::stdout().lock()).await?;
            client.flush().await?;
            while let Some(event) = events.try_next() {
                if let Event::ErrorMessage { message, command } = event {
                    let cmd = command.unwrap_or_default();
                    bail!("{cmd}: {}", message.replace('_', " "));
                }
            }
            outcome
        }
    };
    client.disconnect().await?;
    Ok(outcome)
}

/// Prints events until the stream ends (the client closed) or Ctrl-C.
async fn stream(events: &mut Events, json: bool) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout();
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(event) = event else {
            return Ok(Outcome::Done);
        };
        match event {
            Event::Disconnected { reason } => eprintln!("disconnected ({reason}), reconnecting"),
            Event::Reconnected => eprintln!("reconnected"),
            Event::Lagged(n) => eprintln!("{n} events dropped"),
            Event::ErrorMessage { message, command } => {
                eprintln!("error: {message} {}", command.unwrap_or_default())
            }
            event => {
                if let Some(line) = format_event(&event, json) {
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
            }
        }
    }
}

/// One printable line for a signal or monitor event.
pub(crate) fn format_event(event: &Event, json: bool) -> Option<String> {
    let (kind, fields): (&str, Vec<(&str, &str)>) = match event {
        Event::Set { name, value } => ("set", vec![("name", name), ("value", value)]),
        Event::Notify { name } => ("notify", vec![("name", name)]),
        Event::Debug { source, text } => ("debug", vec![("source", source), ("text", text)]),
        Event::Informal(text) => ("informal", vec![("text", text)]),
        _ => return None,
    };
    if json {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), kind.into());
        for (k, v) in fields {
            obj.insert(k.into(), v.into());
        }
        return Some(serde_json::Value::Object(obj).to_string());
    }
    Some(match event {
        Event::Set { name, value } => format!("SET {name}={value}"),
        Event::Notify { name } => format!("NOTIFY {name}"),
        Event::Debug { source, text } => format!("DEBUG {source}={text}"),
        Event::Informal(text) => format!("INFORMAL {text}"),
        _ => return None,
    })
}

/// Runs one non-streaming command, printing its result to `out`.
pub(crate) async fn execute(
    client: &Client,
    command: &Command,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    match command {
        Command::Notify { name } => client.notify(name).await?,
        Command::Set { name, value } => client.set(name, value).await?,
        Command::Setandstore { name, value } => client.set_and_store(name, value).await?,
        Command::Store { key, value } => client.store(key, value).await?,
        Command::Get { key } => match client.retrieve(key).await? {
            Some(value) => writeln!(out, "{value}")?,
            None => return Ok(Outcome::NotFound),
        },
        Command::Remove { key } => client.remove(key).await?,
        Command::Incr { key, n } => client.increment(key, *n).await?,
        Command::Decr { key, n } => client.decrement(key, *n).await?,
        Command::Keys => {
            for key in client.keylist().await? {
                writeln!(out, "{key}")?;
            }
        }
        Command::ClearCache => client.clear_cache().await?,
        Command::Clients => print_clients(client, out).await?,
        Command::Kick { cid } => client.client_disconnect(cid).await?,
        Command::Flush => client.flush().await?,
        Command::Stats => {
            for (name, value) in client.stats().await? {
                writeln!(out, "{name} {value}")?;
            }
        }
        Command::Raw { line } => {
            for reply in client.raw(&line.join(" ")).await? {
                writeln!(out, "{reply}")?;
            }
        }
        Command::Listen { names, .. } => {
            for name in names {
                client.listen(name).await?;
            }
        }
        Command::Monitor { .. } => client.monitor(true).await?,
        Command::Shell => bail!("already in the shell"),
    }
    Ok(Outcome::Done)
}

async fn print_clients(client: &Client, out: &mut dyn Write) -> Result<(), anyhow::Error> {
    let rows: Vec<[String; 5]> = client
        .clientlist()
        .await?
        .into_iter()
        .map(|c| {
            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            [
                s(&c.cid),
                s(&c.clientinfo),
                if c.monitor { "yes" } else { "no" }.to_string(),
                c.outbuffer_length.to_string(),
                s(&c.lastping),
            ]
        })
        .collect();
    let header = ["CID", "CLIENT", "MONITOR", "OUTBUF", "LASTPING"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
