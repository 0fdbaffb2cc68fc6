//! `clacks`: the command-line client for Clacks servers (`clacksd` or the Perl Net::Clacks).
//!
//! With no connection flags it uses the zero-config server's data directory (`./clacks-data`):
//! its Unix socket and generated credentials, so `clacksd` in one terminal and `clacks get x` in
//! another just works.

mod cli;
mod queues;
mod registry;
mod shell;
mod table;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clacks_client::{Client, ClientError, ConnectOptions, Event, Events};
use clap::Parser as _;

use cli::{Cli, Command, Conn};

/// How a command ended when it did not fail.
pub(crate) enum Outcome {
    Done,
    NotFound,
    /// Exit with this status (`register`: its command's).
    Exit(u8),
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

/// The exit status for a failure (see [`cli::EXIT_STATUSES`]).
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
                    return Err(ClientError::Refused {
                        command: command.unwrap_or_default(),
                        reason: readable(&message),
                    }
                    .into());
                }
            }
            outcome
        }
    };
    client.disconnect().await?;
    Ok(outcome)
}

/// A server's refusal (`queue_full my_jobs`) for people: the token's underscores as spaces,
/// the names after it as they are.
fn readable(refusal: &str) -> String {
    match refusal.split_once(' ') {
        Some((token, rest)) => format!("{} {rest}", token.replace('_', " ")),
        None => refusal.replace('_', " "),
    }
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
        Event::Set { name, value, .. } => ("set", vec![("name", name), ("value", value)]),
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
        Event::Set { name, value, .. } => format!("SET {name}={value}"),
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
                    for reply in &replies {
                        writeln!(out, "{reply}")?;
                    }
                    // A refusal among the answers is the command's outcome (exit status 4).
                    if let Some(reason) = replies.iter().find_map(|r| r.strip_prefix("OVERHEAD E "))
                    {
                        return Err(ClientError::Refused {
                            command: line,
                            reason: readable(reason),
                        }
                        .into());
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
