//! The HTTP listener (`<http>`): Prometheus metrics (`/metrics`), health checks (`/healthz`,
//! `/readyz`) and a live dashboard (`/`, fed by server-sent events from `/events`), served by
//! hyper. Off loopback every request needs HTTP basic auth of a user with manage permission.
//! See `docs/operations.md`.

mod dashboard;
mod metrics;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;
use crate::stats::Stats;
use crate::transport::Transport;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one HTTP connection until it closes or the server stops.
pub(crate) async fn serve<S: Transport>(
    shared: Arc<Shared>,
    stream: S,
    cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let stats = shared.stats.clone();
    Stats::bump(&stats.connections_accepted);
    stats.connections_current.fetch_add(1, Ordering::Relaxed);
    stats
        .http_connections_current
        .fetch_add(1, Ordering::Relaxed);
    let stop = cancel.clone();
    let service = hyper::service::service_fn(move |req| {
        let (shared, stop) = (shared.clone(), stop.clone());
        async move { Ok::<_, Infallible>(respond(&shared, &req, stop)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        }
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
    stats
        .http_connections_current
        .fetch_sub(1, Ordering::Relaxed);
    stats.connections_current.fetch_sub(1, Ordering::Relaxed);
}

/// What the listener answers when `maxconnections` is reached.
pub(crate) const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\nconnection: close\r\n\r\ntoo many connections";

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    text(status, "text/plain; charset=utf-8", body)
}

/// Whether the request may be answered: always on loopback, otherwise with the basic auth of
/// a user with manage permission.
fn allowed(shared: &Shared, req: &Request<Incoming>) -> bool {
    if !shared.config.http.as_ref().is_some_and(|h| h.needs_auth()) {
        return true;
    }
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::trim);
    token
        .and_then(|t| shared.authenticate(t.as_bytes()))
        .is_some_and(|perms| perms.manage)
}

fn respond(
    shared: &Arc<Shared>,
    req: &Request<Incoming>,
    stop: CancellationToken,
) -> Response<Body> {
    Stats::bump(&shared.stats.http_requests);
    if !allowed(shared, req) {
        let mut r = plain(
            StatusCode::UNAUTHORIZED,
            "basic auth of a user with manage permission required\n",
        );
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"clacksd\", charset=\"UTF-8\""),
        );
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(shared),
        ),
        "/healthz" => plain(StatusCode::OK, "ok\n"),
        "/readyz" => match not_ready(shared) {
            None => plain(StatusCode::OK, "ready\n"),
            Some(reason) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        "/" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(dashboard::PAGE.as_bytes()),
        ),
        "/events" => dashboard::events(shared.clone(), stop),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found; try /, /metrics, /healthz or /readyz\n",
        ),
    }
}

/// The number `name` of the `k=v;…` fields of a `QSTATS` or `SERVICE` line (0 when absent).
fn field(fields: &[u8], name: &str) -> u64 {
    String::from_utf8_lossy(fields)
        .split(';')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Why the server is not ready, if it is not: a slave whose link to its master is down or not
/// synced yet. (Persistence is loaded before the server serves at all.)
fn not_ready(shared: &Shared) -> Option<&'static str> {
    shared.config.master.as_ref()?;
    if !shared.master_up.load(Ordering::Relaxed) {
        return Some("not ready: the link to the master is down");
    }
    if shared.lock().routes.master_link().is_none() {
        return Some("not ready: the master has not synced this server yet");
    }
    None
}
