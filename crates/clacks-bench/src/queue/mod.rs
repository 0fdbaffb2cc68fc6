//! The queue workload: one producer, C competing consumers of one work queue; messages per
//! second delivered end to end, per server CPU-second, and send-to-receive latency from the send
//! time each message carries.
//!
//! Two modes:
//!
//! - `once` (at most once): Clacks `QSEND q=<v>` / `QRECV q`; Redis `LPUSH q <v>` /
//!   `BRPOP q 0`.
//! - `acked` (acknowledged, at least once): Clacks `QSEND q=<v>` / `QRECV q <timeout> <lease>`
//!   then `QACK q <id>`; Redis streams `XADD q * d <v>` / `XREADGROUP GROUP g c<n> COUNT 1
//!   BLOCK 0 STREAMS q >` then `XACK q g <id>` (the group made with `XGROUP CREATE q g $
//!   MKSTREAM` first).
//!
//! Every consumer keeps `--outstanding` receives in flight and sends a new one (after the ack,
//! in the same write) for every answer. Clacks registers all of them as waiting receives. Redis
//! blocks a connection on its first blocking command and runs the ones pipelined behind it only
//! after that one is answered, so there a consumer has one receive waiting and the others queued
//! in the server's input buffer: the next receive is already there when a message is handed out,
//! with no round trip to the client in between.
//!
//! A message is `<send time, 20 digits of ns since the run started>:<sequence number, 11
//! digits>`, padded to `--size`: the consumers (same process, same clock) take the latency
//! from it, and the sequence numbers show messages lost or received twice.
//!
//! The producer keeps at most `--window` messages (default 256) between send and receipt: it
//! waits for receipts when there are more, so the queue cannot grow without bound and what is
//! measured is sustained delivery, not a backlog. At saturation the latency is then about
//! window ÷ throughput (Little's law): it says how long a message waits behind the window, and
//! is comparable between servers only together with the throughput. With `--rate` the producer
//! also sends at that rate (in bursts of rate/1000 every millisecond, tokio's timer
//! resolution); below both servers' capacity that is the latency of a server that is not
//! saturated, and the CPU per message at the same load. The default of 16 receives in flight
//! per consumer (64 with 4 consumers) is where the throughput of both servers stopped growing
//! on the machine this was written on (4: about half; 32: the same as 16 within the noise).
//!
//! Each run uses a queue of its own (`benchq.<pid>.<ns>`), deleted at the end (Clacks `QDELETE`
//! needs the manage permission; without it the empty queue stays).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Buf as _, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use crate::report::{per_cpu, percentiles, progress, CpuWindow, NoiseWindow};
use crate::wire::{self, Endpoint, Proto, RespKind};
use crate::Common;

mod tally;

use tally::Tally;

/// Delivery guarantee under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// At most once: a message is gone once handed out (`QRECV q`; Redis `LPUSH`/`BRPOP`).
    Once,
    /// Acknowledged: handed out under a lease, then acked (`QRECV q T L` + `QACK`; Redis
    /// streams with a consumer group, `XREADGROUP` + `XACK`).
    Acked,
}

/// Options of the queue workload.
#[derive(Args, Debug, Clone)]
pub(crate) struct Options {
    /// Delivery guarantee.
    #[arg(long, value_enum, default_value = "once")]
    pub(crate) mode: Mode,
    /// Competing consumer connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) consumers: usize,
    /// Message size in bytes (send time and sequence number, at least 32 bytes).
    #[arg(long, default_value_t = 32)]
    pub(crate) size: usize,
    /// Receives each consumer keeps in flight.
    #[arg(long, default_value_t = 16)]
    pub(crate) outstanding: usize,
    /// Messages at most between send and receipt: the producer waits when there are more.
    #[arg(long, default_value_t = 256)]
    pub(crate) window: u64,
    /// Messages per second to send (default: as fast as the window allows).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Stop after this many messages instead of after --duration.
    #[arg(long)]
    pub(crate) messages: Option<u64>,
    /// Clacks, acked mode: seconds a receive waits (`QRECV q <timeout> <lease>`).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) timeout: f64,
    /// Clacks, acked mode: seconds a received message is leased for.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) lease: f64,
}

impl Options {
    /// The options as they go into the JSON result.
    pub(crate) fn params(&self) -> serde_json::Value {
        json!({
            "mode": format!("{:?}", self.mode).to_lowercase(),
            "consumers": self.consumers,
            "size": self.size,
            "outstanding": self.outstanding,
            "window": self.window,
            "rate": self.rate,
            "messages": self.messages,
            "timeout": self.timeout,
            "lease": self.lease,
        })
    }
}

/// Digits of the send time (ns) at the start of a message, then `:`, then the sequence number.
const TS_DIGITS: usize = 20;
const SEQ_DIGITS: usize = 11;
const MIN_SIZE: usize = TS_DIGITS + 1 + SEQ_DIGITS;
/// Messages written at most in one write by the producer.
const BATCH: u64 = 64;
/// Redis consumer group.
const GROUP: &[u8] = b"g";

/// What the producer and the consumers share.
struct Job {
    proto: Proto,
    mode: Mode,
    queue: String,
    outstanding: usize,
    timeout: f64,
    lease: f64,
    epoch: Instant,
    /// Messages received, by all consumers together.
    delivered: Arc<AtomicU64>,
    /// Woken when consumers received messages (the producer may have room in its window).
    credit: Notify,
}

impl Job {
    /// Appends a send of message number `seq`, stamped with the time now.
    fn send(&self, seq: u64, size: usize, payload: &mut Vec<u8>, out: &mut Vec<u8>) {
        payload.clear();
        let ts = self.epoch.elapsed().as_nanos() as u64;
        payload.extend_from_slice(format!("{ts:020}:{seq:011}").as_bytes());
        payload.resize(size.max(MIN_SIZE), b'x');
        let q = self.queue.as_bytes();
        match (self.proto, self.mode) {
            (Proto::Redis, Mode::Once) => wire::command(&[b"LPUSH", q, payload], out),
            (Proto::Redis, Mode::Acked) => wire::command(&[b"XADD", q, b"*", b"d", payload], out),
            _ => {
                out.extend_from_slice(b"QSEND ");
                out.extend_from_slice(q);
                out.push(b'=');
                out.extend_from_slice(payload);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The receive request of consumer `n`.
    fn recv(&self, n: usize) -> Vec<u8> {
        let q = self.queue.as_bytes();
        let mut out = Vec::new();
        match (self.proto, self.mode) {
            (Proto::Redis, Mode::Once) => wire::command(&[b"BRPOP", q, b"0"], &mut out),
            (Proto::Redis, Mode::Acked) => {
                let consumer = format!("c{n}");
                wire::command(
                    &[
                        b"XREADGROUP",
                        b"GROUP",
                        GROUP,
                        consumer.as_bytes(),
                        b"COUNT",
                        b"1",
                        b"BLOCK",
                        b"0",
                        b"STREAMS",
                        q,
                        b">",
                    ],
                    &mut out,
                )
            }
            (_, Mode::Once) => {
                out.extend_from_slice(format!("QRECV {}\r\n", self.queue).as_bytes())
            }
            (_, Mode::Acked) => out.extend_from_slice(
                format!("QRECV {} {} {}\r\n", self.queue, self.timeout, self.lease).as_bytes(),
            ),
        }
        out
    }

    /// Appends the acknowledgement of message `id`.
    fn ack(&self, id: &[u8], out: &mut Vec<u8>) {
        let q = self.queue.as_bytes();
        if self.proto == Proto::Redis {
            wire::command(&[b"XACK", q, GROUP, id], out);
        } else {
            out.extend_from_slice(b"QACK ");
            out.extend_from_slice(q);
            out.push(b' ');
            out.extend_from_slice(id);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// One consumer: keeps `outstanding` receives in flight until told to stop.
async fn consume(
    ep: Endpoint,
    job: Arc<Job>,
    n: usize,
    mut stop: watch::Receiver<bool>,
    ready: Arc<AtomicU64>,
) -> anyhow::Result<Tally> {
    let (mut s, mut buf) = ep.connect().await?;
    let recv = job.recv(n);
    let mut out = recv.repeat(job.outstanding);
    s.write_all(&out).await?;
    ready.fetch_add(1, Ordering::Relaxed);
    let mut tally = Tally::new();
    let mut bulks = Vec::new();
    loop {
        tokio::select! {
            read = s.read_buf(&mut buf) => {
                if read? == 0 {
                    bail!("server closed consumer {n}");
                }
            }
            _ = stop.changed() => break,
        }
        let now = job.epoch.elapsed().as_nanos() as u64;
        out.clear();
        let got = match job.proto {
            Proto::Redis => tally.redis(&job, &recv, now, &mut buf, &mut out, &mut bulks),
            _ => tally.clacks(&job, &recv, now, &mut buf, &mut out),
        };
        if !out.is_empty() {
            s.write_all(&out).await?;
        }
        if got > 0 {
            job.delivered.fetch_add(got, Ordering::Relaxed);
            job.credit.notify_one();
        }
    }
    Ok(tally)
}

/// The producer's replies: counts the errors until the barrier's answer comes back.
async fn drain_producer<R: tokio::io::AsyncRead + Unpin>(
    proto: Proto,
    mut r: R,
) -> anyhow::Result<(u64, Option<String>)> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut bulks = Vec::new();
    let mut errors = 0;
    let mut first = None;
    let mut error = |line: &[u8]| {
        errors += 1;
        if first.is_none() {
            first = Some(String::from_utf8_lossy(line).trim_end().to_string());
        }
    };
    loop {
        if r.read_buf(&mut buf).await? == 0 {
            bail!("server closed the producer's connection");
        }
        let mut pos = 0;
        let mut done = false;
        if proto == Proto::Redis {
            loop {
                bulks.clear();
                let Some((len, kind)) = wire::resp_value(&buf[pos..], &mut bulks) else {
                    break;
                };
                let value = &buf[pos..pos + len];
                pos += len;
                match kind {
                    RespKind::Error => error(value),
                    RespKind::Simple if value.starts_with(b"+PONG") => done = true,
                    _ => {}
                }
            }
        } else {
            while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
                let line = &buf[pos..pos + nl];
                pos += nl + 1;
                if line.starts_with(b"OVERHEAD E ") {
                    error(line);
                } else if line.starts_with(b"FLUSHED") {
                    done = true;
                }
            }
        }
        buf.advance(pos);
        if done {
            return Ok((errors, first));
        }
    }
}

/// Sends `request` on a fresh connection and waits for `answer`.
async fn once(ep: &Endpoint, request: &[u8], answer: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut s, mut buf) = ep.connect().await?;
    s.write_all(request).await?;
    loop {
        if let Some(pos) = wire::find(&buf, answer) {
            return Ok(buf[..pos].to_vec());
        }
        if s.read_buf(&mut buf).await? == 0 {
            bail!("closed before the answer");
        }
    }
}

pub(crate) async fn run(
    ep: &Endpoint,
    c: &Common,
    o: &Options,
    duration: Duration,
) -> anyhow::Result<serde_json::Value> {
    if ep.proto == Proto::Memcached {
        bail!("the queue workload speaks Clacks or Redis");
    }
    if o.consumers == 0 || o.outstanding == 0 || o.window == 0 {
        bail!("--consumers, --outstanding and --window must be at least 1");
    }
    // A queue of its own for every run: nothing left over from an earlier one.
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    let queue = format!("benchq.{}.{unique}", std::process::id());
    if ep.proto == Proto::Redis && o.mode == Mode::Acked {
        let mut req = Vec::new();
        wire::command(
            &[
                b"XGROUP",
                b"CREATE",
                queue.as_bytes(),
                GROUP,
                b"$",
                b"MKSTREAM",
            ],
            &mut req,
        );
        wire::command(&[b"PING"], &mut req);
        let before = once(ep, &req, b"+PONG").await?;
        if !before.starts_with(b"+OK") {
            bail!(
                "XGROUP CREATE: {}",
                String::from_utf8_lossy(&before).trim_end()
            );
        }
    }
    let job = Arc::new(Job {
        proto: ep.proto,
        mode: o.mode,
        queue: queue.clone(),
        outstanding: o.outstanding,
        timeout: o.timeout,
        lease: o.lease,
        epoch: Instant::now(),
        delivered: Arc::new(AtomicU64::new(0)),
        credit: Notify::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicU64::new(0));
    let mut consumers = Vec::new();
    for n in 0..o.consumers {
        consumers.push(tokio::spawn(consume(
            ep.clone(),
            job.clone(),
            n,
            stop_rx.clone(),
            ready.clone(),
        )));
    }
    while ready.load(Ordering::Relaxed) < o.consumers as u64 {
        if let Some(done) = consumers.iter_mut().find(|t| t.is_finished()) {
            done.await??;
            bail!("a consumer ended early");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The receives are on their way; give the server a moment to have them waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (stream, _) = ep.connect().await?;
    let (reader, mut producer) = tokio::io::split(stream);
    let drain = tokio::spawn(drain_producer(ep.proto, reader));
    let done = Arc::new(AtomicBool::new(false));
    progress(
        c.quiet,
        "messages delivered",
        job.delivered.clone(),
        done.clone(),
    );
    let delivered = || job.delivered.load(Ordering::Relaxed);
    let cpu = CpuWindow::start(c.server_pid);
    let noise = NoiseWindow::start(c.server_pid);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let limit = o.messages.unwrap_or(u64::MAX);
    let mut batch = Vec::with_capacity(BATCH as usize * (o.size + 64));
    let mut payload = Vec::with_capacity(o.size.max(MIN_SIZE));
    while sent < limit && (o.messages.is_some() || start.elapsed() < duration) {
        let mut n = BATCH.min(limit - sent);
        if let Some(r) = o.rate {
            let allowed = (start.elapsed().as_secs_f64() * r) as u64;
            if sent >= allowed {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            n = n.min(allowed - sent);
        }
        let in_flight = sent.saturating_sub(delivered());
        if in_flight >= o.window {
            // Receipts wake this; the timeout only re-checks the clock.
            let _ = tokio::time::timeout(Duration::from_millis(100), job.credit.notified()).await;
            continue;
        }
        n = n.min(o.window - in_flight);
        batch.clear();
        for i in 0..n {
            job.send(sent + i, o.size, &mut payload, &mut batch);
        }
        producer.write_all(&batch).await?;
        sent += n;
    }
    let sent_in = start.elapsed();
    // A barrier: its answer comes after every send's.
    batch.clear();
    if ep.proto == Proto::Redis {
        wire::command(&[b"PING"], &mut batch);
    } else {
        wire::barrier(ep.proto, &mut batch);
    }
    producer.write_all(&batch).await?;
    producer.flush().await?;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while delivered() < sent && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu.used();
    let noise = noise.used();
    done.store(true, Ordering::Relaxed);
    let (send_errors, first_send_error) =
        match tokio::time::timeout(Duration::from_secs(10), drain).await {
            Ok(joined) => joined??,
            Err(_) => (0, Some("no answer to the producer's barrier".to_string())),
        };
    let _ = stop_tx.send(true);
    let mut tallies = Vec::new();
    for t in consumers {
        tallies.push(t.await??);
    }
    drop(producer);

    // The queue goes (Clacks needs the manage permission for that; without it the queue stays,
    // empty).
    let mut req = Vec::new();
    if ep.proto == Proto::Redis {
        wire::command(&[b"DEL", queue.as_bytes()], &mut req);
        wire::command(&[b"PING"], &mut req);
        once(ep, &req, b"+PONG")
            .await
            .context("deleting the queue")?;
    } else {
        req.extend_from_slice(format!("QDELETE {queue}\r\nFLUSH q\r\n").as_bytes());
        once(ep, &req, b"FLUSHED")
            .await
            .context("deleting the queue")?;
    }

    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut seen: Vec<u64> = Vec::new();
    let (mut received, mut duplicates, mut errors) = (0, 0, send_errors);
    let mut first_error = first_send_error;
    for t in tallies {
        hist.add(&t.hist).ok();
        received += t.received;
        duplicates += t.duplicates;
        errors += t.errors;
        first_error = first_error.or(t.first_error);
        if seen.len() < t.seen.len() {
            seen.resize(t.seen.len(), 0);
        }
        for (all, mine) in seen.iter_mut().zip(&t.seen) {
            duplicates += u64::from((*all & mine).count_ones());
            *all |= mine;
        }
    }
    let unique: u64 = seen.iter().map(|w| u64::from(w.count_ones())).sum();
    Ok(json!({
        "mode": format!("{:?}", o.mode).to_lowercase(),
        "messages_sent": sent,
        "messages_delivered": received,
        "duplicates": duplicates,
        "lost": sent.saturating_sub(unique),
        "errors": errors,
        "first_error": first_error,
        "sent_per_s": (sent as f64 / sent_in.as_secs_f64()).round(),
        "delivered_per_s": (received as f64 / elapsed.as_secs_f64()).round(),
        "server_cpu_s": cpu_used,
        "delivered_per_server_cpu_s": per_cpu(received, cpu_used),
        "latency": percentiles(&hist),
        "noise": noise,
    }))
}
