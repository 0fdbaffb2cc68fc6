//! `clacks`: the command-line client for Clacks servers (`clacksd` or the Perl Net::Clacks).
//!
//! With no connection flags it uses the zero-config server's data directory (`./clacks-data`):
//! its Unix socket and generated credentials, so `clacksd` in one terminal and `clacks get x` in
//! another just works.

mod queues;
mod registry;
mod shell;
mod table;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clacks_client::{Client, ClientError, ConnectArgs, ConnectOptions, Event, Events};
use clap::{Args, Parser, Subcommand};

/// Exit statuses, shown by `--help`.
const EXIT_STATUSES: &str = "Exit status: 0 done, 1 not found (get, qrecv, resolve), 2 usage \
error, 3 connection failed, timed out or outcome unknown, 4 refused by the server (permission, \
login, limits), 5 the worker answered the request with an error; register: its command's.";

/// Command-line client for Clacks servers.
#[derive(Parser, Debug)]
#[command(name = "clacks", version, about, after_help = EXIT_STATUSES)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

/// Where and as whom to connect (the flags shared by every Clacks program) and how long to
/// wait; flags may stand before or after the subcommand.
#[derive(Args, Debug, Clone)]
struct Conn {
    #[command(flatten)]
    clacks: ConnectArgs,
    /// Seconds to wait for connecting and for each answer (over 0; default 10). For qrecv
    /// and request, see there.
    #[arg(long, global = true, value_parser = seconds)]
    timeout: Option<f64>,
}

#[derive(Subcommand, Debug, Clone)]
enum Command {
    /// Print the man page or shell completions of clacks (no server needed).
    Generate {
        #[arg(value_enum)]
        what: clacks_client::Generate,
    },
    /// NOTIFY listeners of NAME.
    Notify { name: String },
    /// SET NAME=VALUE to its listeners (VALUE omitted or `-`: read from standard input).
    Set { name: String, value: Option<String> },
    /// SET to listeners and STORE (VALUE omitted or `-`: read from standard input).
    Setandstore { name: String, value: Option<String> },
    /// STORE KEY=VALUE in the cache (VALUE omitted or `-`: read from standard input; a value
    /// with line breaks is stored in the ClacksCache text encoding).
    Store { key: String, value: Option<String> },
    /// Print the value of KEY, decoding ClacksCache encodings (exit status 1 when not found).
    Get {
        key: String,
        /// Print the value as stored.
        #[arg(long)]
        raw: bool,
    },
    /// REMOVE KEY.
    Remove { key: String },
    /// INCREMENT KEY by N (default 1).
    Incr { key: String, n: Option<f64> },
    /// DECREMENT KEY by N (default 1).
    Decr { key: String, n: Option<f64> },
    /// List the keys (removed ones included, as the server lists them).
    Keys {
        /// A JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Empty the whole cache.
    ClearCache,
    /// List the server's connections.
    Clients {
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Disconnect the client with this CID (see `clients`).
    Kick { cid: String },
    /// Print every signal of the NAMEs as it arrives.
    Listen {
        #[arg(required = true)]
        names: Vec<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Exit after this many signals.
        #[arg(long)]
        count: Option<u64>,
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
    Stats {
        /// A JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Send one raw protocol line and print the answer.
    Raw {
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Interactive prompt with history and completion; shows signals as they arrive.
    Shell,
    /// QSEND VALUE to a work queue (VALUE omitted or `-`: one message per line of standard
    /// input).
    Qsend {
        queue: String,
        value: Option<String>,
    },
    /// Take messages from a work queue and print their values, one per line (exit status 1
    /// when none came).
    Qrecv {
        queue: String,
        /// Seconds to wait for each message (0: take one only if one is ready; default: wait
        /// until one comes). Connecting and answers keep 10 s.
        #[arg(long, value_parser = seconds)]
        timeout: Option<f64>,
        /// Take each message under a lease of this many seconds, and acknowledge it once it
        /// is printed (default: no lease: a message is gone once taken).
        #[arg(long, value_parser = positive_seconds)]
        lease: Option<f64>,
        /// Take this many messages, then exit.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// One JSON object per message: queue, id, value.
        #[arg(long)]
        json: bool,
    },
    /// Print the figures of a work queue.
    Qstat {
        queue: String,
        /// A JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List every work queue with its figures.
    Queues {
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Send VALUE as a request to the workers of a queue and print their reply (exit status
    /// 3 when none came in time).
    Request {
        queue: String,
        value: String,
        /// Seconds to wait for the reply, and for connecting (over 0; default 10).
        #[arg(long, value_parser = positive_seconds)]
        timeout: Option<f64>,
        /// VALUE is JSON, and the reply is printed as JSON (else VALUE is sent as a JSON
        /// string, and a string reply printed as it is).
        #[arg(long)]
        json: bool,
    },
    /// Run COMMAND once for each message of a queue (its exit status 0 acknowledges it).
    ///
    /// The message and a line end are COMMAND's standard input; exit status 0 acknowledges
    /// the message (and prints COMMAND's output), any other gives it back. For a request (see
    /// `request`) the input is the request's body and the reply is COMMAND's output, one
    /// final line end dropped. A request past its deadline is dropped unanswered.
    Work {
        queue: String,
        /// Seconds each message is leased for while COMMAND runs; when it runs out, the
        /// message goes back to the queue.
        #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
        lease: f64,
        /// Stop after this many messages.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Register an instance of SERVICE at ENDPOINT while COMMAND runs, then withdraw it and
    /// exit with COMMAND's status.
    ///
    /// ENDPOINT: `tcp:HOST:PORT`, `tls:HOST:PORT`, `unix:PATH`, `queue:NAME` or a URL. The
    /// instance goes with the connection: if `clacks` is killed, the server drops it; after a
    /// lost connection it is registered again.
    Register {
        service: String,
        endpoint: String,
        /// Metadata KEY=VALUE (repeatable); `status=draining` asks for no new work.
        #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = registry::meta_pair)]
        meta: Vec<(String, String)>,
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// List the instances of SERVICE (exit status 1 when there is none).
    Resolve {
        service: String,
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// List every registered service with its instances.
    Services {
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
}

/// How a command ended when it did not fail.
pub(crate) enum Outcome {
    Done,
    NotFound,
    /// Exit with this status (`register`: its command's).
    Exit(u8),
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 86_400.0 => Ok(t),
        _ => Err("seconds, over 0 and at most 86400".into()),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=86_400.0).contains(&t) => Ok(t),
        _ => Err("seconds, from 0 to 86400".into()),
    }
}

/// Seconds to wait for connecting and for each answer: `--timeout` (10 by default), except
/// for qrecv, whose `--timeout` is how long to wait for a message.
fn answer_timeout(conn: &Conn, command: &Command) -> anyhow::Result<f64> {
    match (command, conn.timeout) {
        (Command::Qrecv { .. }, _) | (_, None) => Ok(10.0),
        (_, Some(t)) if t > 0.0 => Ok(t),
        _ => bail!("--timeout: seconds, over 0 and at most 86400"),
    }
}

/// The exit status for a failure (see [`EXIT_STATUSES`]).
pub(crate) fn exit_status(e: &anyhow::Error) -> u8 {
    use clacks_client::ErrorKind as K;
    let Some(client) = e.chain().find_map(|c| c.downcast_ref::<ClientError>()) else {
        return 2;
    };
    match client.kind() {
        K::Refused | K::Auth => 4,
        K::Usage => 2,
        K::Worker => 5,
        _ => 3,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Generate { what } = cli.command {
        use clap::CommandFactory as _;
        return match clacks_client::generate(Cli::command(), what, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clacks: {e}");
                ExitCode::from(2)
            }
        };
    }
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
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("clacks: {e:#}");
            ExitCode::from(exit_status(&e))
        }
    }
}

/// Connection options from the flags; `timeout` for connecting and each answer.
fn options(conn: &Conn, timeout: f64) -> anyhow::Result<ConnectOptions> {
    let mut opts = conn.clacks.options().context(
        "no usable connection settings (flags, CLACKS_* variables or a zero-config data directory)",
    )?;
    let timeout = Duration::from_secs_f64(timeout);
    opts = opts
        .client_name("clacks-cli")
        .request_timeout(timeout)
        .confirm_writes(true);
    opts.connect_timeout = timeout;
    Ok(opts)
}

/// Connects for the shell.
pub(crate) async fn connect(conn: &Conn) -> anyhow::Result<(Client, Events)> {
    let mut opts = options(conn, answer_timeout(conn, &Command::Shell)?)?;
    // A command does not wait for the server to come back.
    opts.offline_queue = 0;
    connect_with(opts).await
}

async fn connect_with(opts: ConnectOptions) -> anyhow::Result<(Client, Events)> {
    let where_ = match &opts.target {
        clacks_client::Target::Unix(p) => p.display().to_string(),
        clacks_client::Target::Tls { host, port, .. } => format!("{host}:{port}"),
    };
    Client::connect(opts)
        .await
        .with_context(|| format!("cannot connect to {where_}"))
}

async fn one_shot(conn: &Conn, command: &Command) -> anyhow::Result<Outcome> {
    let command = &with_stdin_value(command)?;
    let mut opts = options(conn, answer_timeout(conn, command)?)?;
    // A one-shot command does not wait for the server to come back; a worker or a
    // registration does, as a listener does.
    if !matches!(command, Command::Work { .. } | Command::Register { .. }) {
        opts.offline_queue = 0;
    }
    let (client, mut events) = connect_with(opts).await?;
    let outcome = match command {
        Command::Listen { names, json, count } => {
            for name in names {
                client.listen(name).await?;
            }
            eprintln!("listening to {}", names.join(", "));
            stream(&mut events, *json, *count).await?
        }
        Command::Monitor { json } => {
            client.monitor(true).await?;
            eprintln!("monitoring");
            stream(&mut events, *json, None).await?
        }
        Command::Register {
            service,
            endpoint,
            meta,
            command,
        } => registry::register(&client, service, endpoint, meta, command).await?,
        Command::Raw { line } if line.join(" ").trim().eq_ignore_ascii_case("quit") => {
            // The server answers by closing; there is nothing to flush or disconnect.
            execute(&client, command, &mut std::io::stdout().lock()).await?;
            return Ok(Outcome::Done);
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

/// The command with a value omitted or given as `-` read from standard input (one final line
/// end dropped).
fn with_stdin_value(command: &Command) -> anyhow::Result<Command> {
    let read = |value: &Option<String>| -> anyhow::Result<Option<String>> {
        if value.as_deref().is_some_and(|v| v != "-") {
            return Ok(value.clone());
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the value from standard input")?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Ok(Some(text))
    };
    Ok(match command {
        Command::Set { name, value } => Command::Set {
            name: name.clone(),
            value: read(value)?,
        },
        Command::Setandstore { name, value } => Command::Setandstore {
            name: name.clone(),
            value: read(value)?,
        },
        Command::Store { key, value } => Command::Store {
            key: key.clone(),
            value: read(value)?,
        },
        other => other.clone(),
    })
}

/// Prints events until the stream ends (the client closed), `count` signals were printed,
/// standard output is closed, or Ctrl-C.
async fn stream(events: &mut Events, json: bool, count: Option<u64>) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout();
    let mut printed = 0;
    loop {
        if count.is_some_and(|c| printed >= c) {
            return Ok(Outcome::Done);
        }
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
                    let written = writeln!(out, "{line}").and_then(|()| out.flush());
                    match written {
                        Ok(()) => printed += 1,
                        // `clacks listen … | head -1`: the reader is gone, and so are we.
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                            return Ok(Outcome::Done)
                        }
                        Err(e) => return Err(e.into()),
                    }
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
        Command::Set { name, value } => client.set(name, one_line(value)?).await?,
        Command::Setandstore { name, value } => {
            client.set_and_store(name, one_line(value)?).await?
        }
        Command::Store { key, value } => client.store(key, one_line(value)?).await?,
        Command::Get { key, raw } => match client.retrieve(key).await? {
            Some(value) if *raw => writeln!(out, "{value}")?,
            Some(value) => writeln!(out, "{}", decoded(&value)?)?,
            None => return Ok(Outcome::NotFound),
        },
        Command::Remove { key } => client.remove(key).await?,
        Command::Incr { key, n } => client.increment(key, *n).await?,
        Command::Decr { key, n } => client.decrement(key, *n).await?,
        Command::Keys { json: false } => {
            for key in client.keylist().await? {
                writeln!(out, "{key}")?;
            }
        }
        Command::Keys { json: true } => {
            writeln!(out, "{}", serde_json::to_string(&client.keylist().await?)?)?;
        }
        Command::ClearCache => client.clear_cache().await?,
        Command::Clients { json } => print_clients(client, *json, out).await?,
        Command::Kick { cid } => client.client_disconnect(cid).await?,
        Command::Flush => client.flush().await?,
        Command::Stats { json: false } => {
            for (name, value) in client.stats().await? {
                writeln!(out, "{name} {value}")?;
            }
        }
        Command::Stats { json: true } => {
            let stats: serde_json::Map<String, serde_json::Value> = client
                .stats()
                .await?
                .into_iter()
                .map(|(name, value)| {
                    let v = value.parse::<u64>().map_or(value.into(), Into::into);
                    (name, v)
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::Object(stats))?;
        }
        Command::Raw { line } => {
            let line = line.join(" ");
            match client.raw(&line).await {
                Ok(replies) => {
                    for reply in replies {
                        writeln!(out, "{reply}")?;
                    }
                }
                // The server closing after a QUIT is its answer.
                Err(ClientError::OutcomeUnknown { .. })
                    if line.trim().eq_ignore_ascii_case("quit") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Command::Listen { names, .. } => {
            for name in names {
                client.listen(name).await?;
            }
        }
        Command::Monitor { .. } => client.monitor(true).await?,
        Command::Shell => bail!("already in the shell"),
        Command::Generate { .. } => bail!("generate prints to standard output: not in the shell"),
        Command::Qsend { queue, value } => queues::qsend(client, queue, value.as_deref()).await?,
        Command::Qrecv {
            queue,
            timeout,
            lease,
            count,
            json,
        } => {
            let recv = queues::Recv {
                timeout: timeout.map(Duration::from_secs_f64),
                lease: lease.map(Duration::from_secs_f64),
                count: *count,
                json: *json,
            };
            return queues::qrecv(client, queue, &recv, out).await;
        }
        Command::Qstat { queue, json } => queues::qstat(client, queue, *json, out).await?,
        Command::Queues { json } => queues::list(client, *json, out).await?,
        Command::Request {
            queue,
            value,
            timeout,
            json,
        } => {
            let deadline = Duration::from_secs_f64(timeout.unwrap_or(10.0));
            queues::request(client, queue, value, deadline, *json, out).await?
        }
        Command::Work {
            queue,
            lease,
            count,
            command,
        } => {
            let lease = Duration::from_secs_f64(*lease);
            queues::work(client, queue, lease, *count, command, out).await?
        }
        Command::Register { .. } => bail!("register runs a command: not in the shell"),
        Command::Resolve { service, json } => {
            return registry::resolve(client, service, *json, out).await
        }
        Command::Services { json } => registry::services(client, *json, out).await?,
    }
    Ok(Outcome::Done)
}

/// A value as a command sends it: one line, or the ClacksCache text encoding of several.
fn one_line(value: &Option<String>) -> anyhow::Result<String> {
    let value = value.as_deref().unwrap_or_default();
    if value.contains(['\r', '\n']) {
        return Ok(clacks_client::value::encode_text(value)?);
    }
    Ok(value.to_string())
}

/// A stored value as text: ClacksCache text decoded, structured data as JSON.
fn decoded(value: &str) -> anyhow::Result<String> {
    match clacks_client::value::decode_text(value) {
        Ok(text) => Ok(text),
        Err(_) => {
            let data: serde_json::Value = clacks_client::value::decode_data(value)?;
            Ok(data.to_string())
        }
    }
}

async fn print_clients(
    client: &Client,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), anyhow::Error> {
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
    if json {
        let objects: Vec<serde_json::Value> = rows
            .iter()
            .map(|[cid, client, monitor, outbuf, lastping]| {
                serde_json::json!({
                    "cid": cid,
                    "client": client,
                    "monitor": monitor == "yes",
                    "outbuffer_length": outbuf.parse::<u64>().unwrap_or(0),
                    "lastping": lastping,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(objects))?;
        return Ok(());
    }
    let header = ["CID", "CLIENT", "MONITOR", "OUTBUF", "LASTPING"];
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    table::print(&header, &rows, out)?;
    Ok(())
}
