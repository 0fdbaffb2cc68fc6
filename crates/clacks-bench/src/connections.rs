//! The connections workload: N idle connections, logged in, and the server memory they cost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::progress;
use crate::wire::{self, Endpoint, Proto};
use crate::{sys, Common};

pub(crate) async fn run(
    ep: &Endpoint,
    c: &Common,
    count: usize,
) -> anyhow::Result<serde_json::Value> {
    let before = c.server_pid.and_then(sys::rss_kib);
    let opened = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(c.quiet, "connections", opened.clone(), done.clone());
    let mut conns = Vec::with_capacity(count);
    let start = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut batch = Vec::new();
        for _ in chunk {
            let ep = ep.clone();
            batch.push(tokio::spawn(async move {
                let (mut s, mut buf) = ep.connect().await?;
                let (req, ready): (&[u8], &[u8]) = match ep.proto {
                    Proto::Clacks => (b"FLUSH c\r\n", b"FLUSHED c"),
                    Proto::Redis => (b"PING\r\n", b"+PONG"),
                    Proto::Memcached => (b"version\r\n", b"VERSION"),
                };
                s.write_all(req).await?;
                while wire::find(&buf, ready).is_none() {
                    if s.read_buf(&mut buf).await? == 0 {
                        bail!("closed while connecting");
                    }
                }
                anyhow::Ok(s)
            }));
        }
        for b in batch {
            conns.push(b.await??);
            opened.fetch_add(1, Ordering::Relaxed);
        }
    }
    let open_time = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = c.server_pid.and_then(sys::rss_kib);
    done.store(true, Ordering::Relaxed);
    let per = match (before, after) {
        (Some(b), Some(a)) => {
            json!(((a.saturating_sub(b)) as f64 / count as f64 * 100.0).round() / 100.0)
        }
        _ => serde_json::Value::Null,
    };
    drop(conns);
    Ok(json!({
        "connections": count,
        "open_s": (open_time.as_secs_f64() * 1000.0).round() / 1000.0,
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_kib_per_connection": per,
    }))
}
