//! The work-queue subcommands: `qsend`, `qrecv`, `qstat`, `queues`, `request` and `work`.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use clacks_client::{Client, ClientError, Job, Message, Overflow, QueueStats, RequestEnvelope};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::Outcome;

/// `qsend`: one message, or (`value` omitted or `-`) one per line of standard input.
pub(crate) async fn qsend(client: &Client, queue: &str, value: Option<&str>) -> anyhow::Result<()> {
    if let Some(value) = value.filter(|v| *v != "-") {
        client.send(queue, value).await?;
        return Ok(());
    }
    let mut lines = BufReader::new(tokio::io::stdin()).split(b'\n');
    let mut n = 0;
    while let Some(mut line) = lines
        .next_segment()
        .await
        .context("reading standard input")?
    {
        n += 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        client
            .send(queue, &line)
            .await
            .with_context(|| format!("line {n}"))?;
    }
    Ok(())
}

/// How `qrecv` takes messages.
pub(crate) struct Recv {
    pub(crate) timeout: Option<Duration>,
    pub(crate) lease: Option<Duration>,
    pub(crate) count: u64,
    pub(crate) json: bool,
}

/// A message taken for good, or under a lease.
enum Taken {
    Message(Message),
    Job(Job),
}

/// `qrecv`: prints up to `count` messages; a leased one is acknowledged once printed (given
/// back if it could not be). Ends early when a receive's timeout passes or on Ctrl-C;
/// `NotFound` when nothing came.
pub(crate) async fn qrecv(
    client: &Client,
    queue: &str,
    how: &Recv,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let mut taken = 0;
    while taken < how.count {
        let receive = async {
            Ok::<_, ClientError>(match how.lease {
                Some(lease) => client
                    .recv_leased(queue, how.timeout, lease)
                    .await?
                    .map(Taken::Job),
                None => client.recv(queue, how.timeout).await?.map(Taken::Message),
            })
        };
        let received = tokio::select! {
            received = receive => received?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(item) = received else { break };
        let message = match &item {
            Taken::Message(m) => m,
            Taken::Job(job) => job.message(),
        };
        let line = if how.json {
            let m = serde_json::json!({"queue": message.queue, "id": message.id, "value": message.text()});
            m.to_string()
        } else {
            message.text().into_owned()
        };
        let printed = writeln!(out, "{line}").and_then(|()| out.flush());
        if let (Err(_), Taken::Job(job)) = (&printed, &item) {
            // Not printed: back to the queue for someone else.
            let _ = job.nack().await;
        }
        match printed {
            Ok(()) => {}
            // `clacks qrecv … | head -1`: the reader is gone, and so are we.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(Outcome::Done),
            Err(e) => return Err(e.into()),
        }
        if let Taken::Job(job) = &item {
            job.ack().await?;
        }
        taken += 1;
    }
    Ok(if taken == 0 {
        Outcome::NotFound
    } else {
        Outcome::Done
    })
}

fn overflow(stats: &QueueStats) -> &str {
    match &stats.overflow {
        Overflow::Reject => "reject",
        Overflow::DropOldest => "drop_oldest",
        Overflow::Other(policy) => policy,
        _ => "?",
    }
}

/// A queue's figures as a JSON object (with its name first when `name` is given).
fn stats_json(name: Option<&str>, stats: &QueueStats) -> Value {
    let mut obj = serde_json::Map::new();
    if let Some(name) = name {
        obj.insert("queue".into(), name.into());
    }
    for (field, value) in stats.counts() {
        obj.insert(field.into(), value.into());
    }
    obj.insert("overflow".into(), overflow(stats).into());
    Value::Object(obj)
}

/// `qstat`: `name value` lines (as `stats` prints them), or a JSON object.
pub(crate) async fn qstat(
    client: &Client,
    queue: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let stats = client.stat(queue).await?;
    if json {
        writeln!(out, "{}", stats_json(None, &stats))?;
        return Ok(());
    }
    for (field, value) in stats.counts() {
        writeln!(out, "{field} {value}")?;
    }
    writeln!(out, "overflow {}", overflow(&stats))?;
    Ok(())
}

/// `queues`: a table of every queue (or a JSON array of objects with every figure).
pub(crate) async fn list(client: &Client, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let queues = client.list().await?;
    if json {
        let all: Vec<Value> = queues
            .iter()
            .map(|(name, stats)| stats_json(Some(name), stats))
            .collect();
        writeln!(out, "{}", Value::Array(all))?;
        return Ok(());
    }
    let names: Vec<String> = QueueStats::default().counts()[..11]
        .iter()
        .map(|(field, _)| field.to_uppercase())
        .collect();
    let header: Vec<&str> = std::iter::once("QUEUE")
        .chain(names.iter().map(String::as_str))
        .collect();
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|(name, stats)| {
            std::iter::once(name.clone())
                .chain(stats.counts()[..11].iter().map(|(_, v)| v.to_string()))
                .collect()
        })
        .collect();
    crate::table::print(&header, &rows, out)?;
    Ok(())
}

/// `request`: sends `value` (a JSON string, or JSON with `json`) and prints the reply body.
pub(crate) async fn request(
    client: &Client,
    queue: &str,
    value: &str,
    deadline: Duration,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let body = if json {
        serde_json::from_str(value).context("VALUE is not JSON (see --json)")?
    } else {
        Value::String(value.to_string())
    };
    let reply = client.request(queue, &body, deadline).await?;
    match (&reply, json) {
        (Value::String(text), false) => writeln!(out, "{text}")?,
        _ => writeln!(out, "{reply}")?,
    }
    Ok(())
}

/// `work`: runs `command` for each message, until `count` messages were handled or Ctrl-C.
/// Waits out lost connections (the client reconnects; a message leased on the lost one went
/// back to its queue).
pub(crate) async fn work(
    client: &Client,
    queue: &str,
    lease: Duration,
    count: Option<u64>,
    command: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut handled = 0;
    while count.is_none_or(|c| handled < c) {
        let received = tokio::select! {
            received = client.recv_leased(queue, None, lease) => received,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let job = match received {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(e) if e.is_disconnect() => {
                eprintln!("clacks: {e}; receiving again once reconnected");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        handled += 1;
        run_job(client, &job, command, out).await?;
    }
    Ok(())
}

/// Text for a command's standard input: a string as it is, other JSON as JSON.
fn body_text(body: &Value) -> String {
    match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Runs `command` on one message: its value (a request's body) and a line end on standard
/// input. Exit status 0 acknowledges it, after the reply to a request (the command's output,
/// one final line end dropped) or, for another message, with the output printed; any other
/// status gives it back without a reply.
async fn run_job(
    client: &Client,
    job: &Job,
    command: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let request = RequestEnvelope::parse(job.value());
    if let Some(r) = request.as_ref().filter(|r| r.expired()) {
        eprintln!(
            "clacks: request {} on {} is past its deadline: dropped",
            r.id,
            job.queue()
        );
        return settle(job, job.ack().await);
    }
    let mut input = match &request {
        Some(r) => body_text(&r.body).into_bytes(),
        None => job.value().to_vec(),
    };
    input.push(b'\n');
    let (program, args) = command.split_first().context("no command")?;
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = job.nack().await;
            return Err(e).with_context(|| format!("cannot run {program}"));
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // Written beside the wait, so that a command that writes before it reads all of its
        // input does not block; a command that does not read it at all is fine too.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let output = child
        .wait_with_output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        if request.is_none() {
            out.write_all(&output.stdout)?;
            out.flush()?;
        }
        eprintln!(
            "clacks: {program} {} on message {} of {}: given back",
            output.status,
            job.id(),
            job.queue()
        );
        return settle(job, job.nack().await);
    }
    match &request {
        Some(r) => {
            let mut reply = output.stdout.as_slice();
            reply = reply.strip_suffix(b"\n").unwrap_or(reply);
            reply = reply.strip_suffix(b"\r").unwrap_or(reply);
            let reply = Value::String(String::from_utf8_lossy(reply).into_owned());
            if let Err(e) = client.reply(r, Ok(reply)).await {
                eprintln!(
                    "clacks: the reply to request {} was not delivered: {e}",
                    r.id
                );
            }
        }
        None => {
            out.write_all(&output.stdout)?;
            out.flush()?;
        }
    }
    settle(job, job.ack().await)
}

/// The end of an acknowledgement: a message whose lease was lost goes back to its queue (it
/// will be handled again), which is said, not fatal.
fn settle(job: &Job, done: Result<(), ClientError>) -> anyhow::Result<()> {
    match done {
        Ok(()) => Ok(()),
        Err(e) if e.is_disconnect() || e.is_refused() => {
            eprintln!(
                "clacks: message {} of {} not settled ({e}); it goes back to its queue",
                job.id(),
                job.queue()
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
