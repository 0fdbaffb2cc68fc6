//! The cache workload: C connections doing gets and sets on a preloaded key space, pipelined.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::{per_cpu, percentiles, progress, CpuWindow};
use crate::wire::{self, Endpoint};
use crate::Common;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    ep: &Endpoint,
    c: &Common,
    connections: usize,
    get_ratio: f64,
    pipeline: usize,
    keys: usize,
    size: usize,
    ops: Option<u64>,
    duration: Duration,
) -> anyhow::Result<serde_json::Value> {
    let value = vec![b'v'; size];
    // Preload every key so gets hit.
    {
        let (mut s, mut buf) = ep.connect().await?;
        for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
            let mut req = Vec::new();
            let mut expect = 0;
            for k in chunk {
                if wire::set(ep.proto, &format!("key:{k}"), &value, &mut req) {
                    expect += 1;
                }
            }
            if wire::barrier(ep.proto, &mut req) {
                expect += 1;
            }
            s.write_all(&req).await?;
            let mut got = 0;
            while got < expect {
                if s.read_buf(&mut buf).await? == 0 {
                    bail!("closed while preloading");
                }
                got += wire::take_replies(ep.proto, &mut buf);
            }
        }
    }
    let total = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(c.quiet, "operations", total.clone(), done.clone());
    let cpu = CpuWindow::start(c.server_pid);
    let start = Instant::now();
    let per_conn = ops.map(|o| o.div_ceil(connections as u64));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (mut s, mut buf) = ep.connect().await?;
        let (proto, value, total) = (ep.proto, value.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut req = Vec::new();
            let mut done_ops = 0u64;
            loop {
                if per_conn.map_or(start.elapsed() >= duration, |limit| done_ops >= limit) {
                    break;
                }
                req.clear();
                let mut expect = 0;
                for _ in 0..pipeline {
                    let key = format!("key:{}", rng.gen_range(0..keys));
                    if rng.gen_bool(get_ratio) {
                        wire::get(proto, &key, &mut req);
                        expect += 1;
                    } else if wire::set(proto, &key, &value, &mut req) {
                        expect += 1;
                    }
                }
                if expect == 0 && wire::barrier(proto, &mut req) {
                    expect = 1;
                }
                let sent = Instant::now();
                s.write_all(&req).await?;
                let mut got = 0;
                while got < expect {
                    if s.read_buf(&mut buf).await? == 0 {
                        bail!("server closed the connection");
                    }
                    got += wire::take_replies(proto, &mut buf);
                }
                let _ = hist.record_n(sent.elapsed().as_nanos() as u64, pipeline as u64);
                done_ops += pipeline as u64;
                total.fetch_add(pipeline as u64, Ordering::Relaxed);
            }
            anyhow::Ok((done_ops, hist))
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let mut done_ops = 0;
    for t in tasks {
        let (n, h) = t.await??;
        done_ops += n;
        hist.add(h).ok();
    }
    let elapsed = start.elapsed();
    let cpu_used = cpu.used();
    done.store(true, Ordering::Relaxed);
    Ok(json!({
        "operations": done_ops,
        "ops_per_s": (done_ops as f64 / elapsed.as_secs_f64()).round(),
        "server_cpu_s": cpu_used,
        "ops_per_server_cpu_s": per_cpu(done_ops, cpu_used),
        "latency": percentiles(&hist),
    }))
}
