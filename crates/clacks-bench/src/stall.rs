//! The stall workload (Clacks only): round trips of one client while the server saves a large,
//! constantly dirtied cache, optionally with memcached `stats` in a loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::{percentiles, progress};
use crate::wire::{self, Endpoint, Proto};
use crate::Common;

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
pub(crate) async fn run(
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
