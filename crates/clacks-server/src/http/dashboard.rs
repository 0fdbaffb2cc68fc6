//! The dashboard: one self-contained page (`dashboard.html`, no external scripts or fonts) and
//! the server-sent events that feed it, one JSON snapshot of the server a second.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Body;
use crate::state::Shared;

/// The page.
pub(super) const PAGE: &str = include_str!("dashboard.html");

/// How often the page gets a snapshot.
const EVERY: Duration = Duration::from_secs(1);

/// The event stream: a snapshot now and every second, until the client goes or the server
/// stops.
pub(super) fn events(shared: Arc<Shared>, stop: CancellationToken) -> Response<Body> {
    let body = Events {
        shared,
        tick: tokio::time::interval(EVERY),
        stop: Box::pin(stop.cancelled_owned()),
    };
    let mut r = Response::new(body.boxed_unsync());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

struct Events {
    shared: Arc<Shared>,
    tick: tokio::time::Interval,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        ready!(this.tick.poll_tick(cx));
        let event = format!("data: {}\n\n", snapshot(&this.shared));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}

/// `s` as a JSON string.
fn json_str(out: &mut String, s: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The `k=v;…` fields of a `QSTATS` or `SERVICE` line as JSON members (numbers only).
fn fields_json(out: &mut String, fields: &[u8], names: &[&str]) {
    for name in names {
        let _ = write!(out, ",\"{name}\":{}", super::field(fields, name));
    }
}

/// One snapshot of the server as JSON: counters (the page makes rates of them), sizes, queues,
/// services and links.
pub(super) fn snapshot(shared: &Shared) -> String {
    let mut out = String::with_capacity(2048);
    out.push('{');
    let _ = write!(
        out,
        "\"uptime\":{:.3}",
        shared.started.elapsed().as_secs_f64()
    );
    out.push_str(",\"node\":");
    json_str(&mut out, &shared.node);
    out.push_str(",\"counters\":{");
    for (i, (name, value)) in shared.stats.snapshot().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{name}\":{value}");
    }
    out.push('}');
    let state = shared.lock();
    let memory = state.cache.memory();
    let _ = write!(
        out,
        ",\"cache_entries\":{},\"memory_used\":{},\"memory_limit\":{}",
        state.cache.len(),
        memory.used,
        memory.limit
    );
    out.push_str(",\"queues\":[");
    for (i, (name, fields)) in state.queues.list().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, name);
        fields_json(
            &mut out,
            fields,
            &["messages", "leased", "waiting", "sent", "received", "acked"],
        );
        out.push('}');
    }
    out.push_str("],\"services\":[");
    for (i, (name, fields)) in state.registry.services().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, name);
        fields_json(&mut out, fields, &["instances", "draining"]);
        out.push('}');
    }
    let master_link = state.routes.master_link().map(|(id, _)| id);
    out.push_str("],\"slaves\":[");
    let slaves: Vec<_> = state
        .links
        .ids()
        .filter(|id| Some(*id) != master_link)
        .filter_map(|id| state.conns.get(id).map(|e| e.cid.clone()))
        .collect();
    drop(state);
    for (i, cid) in slaves.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, cid);
    }
    out.push(']');
    match &shared.config.master {
        None => out.push_str(",\"master\":null"),
        Some(m) => {
            out.push_str(",\"master\":{\"at\":");
            let at = match m {
                crate::config::Master::Tcp { ip, port } => format!("{ip}:{port}"),
                crate::config::Master::Unix(path) => path.display().to_string(),
            };
            json_str(&mut out, at.as_bytes());
            let _ = write!(
                out,
                ",\"up\":{},\"synced\":{}}}",
                shared.master_up.load(Ordering::Relaxed),
                master_link.is_some()
            );
        }
    }
    out.push('}');
    out
}
