//! The fanout workload: one publisher, N listeners of one channel; delivery rate and latency
//! from the send timestamp each message carries.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::BytesMut;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::{per_cpu, percentiles, progress, CpuWindow};
use crate::wire::{self, Endpoint};
use crate::Common;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
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
