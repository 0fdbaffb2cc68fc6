//! The I/O of one connection, generic over the stream (TLS, Unix socket, in-memory duplex).
//!
//! One loop owns the stream. Each pass writes what is waiting — everything the outbox holds and
//! the connection's latest replies, in one write (the replies alone straight from the session's
//! buffer) — and then waits for input, for output pushed by other connections,
//! for its one timer (auth/ping deadline, interclacks keepalive, idle `NOP`), or for the end of a
//! sync lock. The connection ends when the outbox says so (QUIT, EOF, a kick,
//! a timeout, a slow-consumer cut) or a write fails.

use std::future::{poll_fn, Future};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, LineDecoder, ProtoError, Reply};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::{Peer, Shared};
use crate::outbox::{CloseReason, Drain};
use crate::session::{Flow, Session};
use crate::stats::Stats;
use crate::transport::{read_some, release_if_empty, Transport};

/// A connection that was idle for this long gets a `NOP`.
const NOP_INTERVAL: Duration = Duration::from_secs(60);

/// Registers a connection and returns the future that serves it until it closes, holding its
/// connection slot (if it counts towards `maxconnections`).
pub(crate) fn serve<S: Transport>(
    shared: Arc<Shared>,
    stream: S,
    peer: &Peer,
    cancel: &CancellationToken,
    slot: Option<OwnedSemaphorePermit>,
) -> impl Future<Output = ()> + Send {
    let session = Session::open(shared.clone(), peer);
    Stats::bump(&shared.stats.connections_accepted);
    shared
        .stats
        .connections_current
        .fetch_add(1, Ordering::Relaxed);
    // Shutdown sends QUIT to every registered connection; one that registered after that sees
    // the cancelled token here.
    if cancel.is_cancelled() {
        session
            .outbox
            .push_last(Reply::Quit.to_bytes(), CloseReason::Kicked);
    }
    run(shared, stream, session, slot)
}

async fn run<S: Transport>(
    shared: Arc<Shared>,
    mut stream: S,
    mut session: Session,
    _slot: Option<OwnedSemaphorePermit>,
) {
    let cid = String::from_utf8_lossy(&session.cid).into_owned();
    tracing::debug!(cid, "connected");
    let reason = drive(&shared, &mut stream, &mut session, &cid).await;
    let note = match reason {
        CloseReason::SlowConsumer => Some("slow consumer"),
        CloseReason::LineTooLong => Some("line too long"),
        _ => None,
    };
    session.close(note);
    shared
        .stats
        .connections_current
        .fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(cid, ?reason, "disconnected");
}

async fn drive<S: Transport>(
    shared: &Shared,
    stream: &mut S,
    session: &mut Session,
    cid: &str,
) -> CloseReason {
    let outbox = session.outbox.clone();
    let stalled = shared.config.stalled_write_timeout;
    let mut buf = BytesMut::new();
    let mut decoder = LineDecoder::new(shared.config.max_line_length);
    let mut sync_lock = shared.sync_lock.subscribe();
    let mut lines = Vec::new();
    let mut items: Vec<Bytes> = Vec::new();
    let mut batch = BytesMut::new();
    let mut last_write = Instant::now();
    // When to look at idleness again (moved only when the timer fires, not at every write).
    let mut nop_check = last_write + NOP_INTERVAL;
    let timer = Timer::new();
    tokio::pin!(timer);
    loop {
        // Write what is waiting, in order: what others queued (and our replies queued behind
        // it), then our latest replies. Usually only the replies: written straight from the
        // session's buffer.
        let written = match outbox.drain(&mut items) {
            Drain::Write => {
                let write = async {
                    if let ([one], true) = (items.as_slice(), session.out.is_empty()) {
                        stream.write_all(one).await
                    } else {
                        batch.clear();
                        for item in &items {
                            batch.extend_from_slice(item);
                        }
                        batch.extend_from_slice(&session.out);
                        stream.write_all(&batch).await
                    }
                };
                let result = finish_write(write, stalled, shared, cid).await;
                items.clear();
                result.map(|()| true)
            }
            Drain::Idle if !session.out.is_empty() => {
                finish_write(stream.write_all(&session.out), stalled, shared, cid)
                    .await
                    .map(|()| true)
            }
            Drain::Idle => Ok(false),
            Drain::Close(reason) => {
                if reason != CloseReason::SlowConsumer && !session.out.is_empty() {
                    let _ =
                        finish_write(stream.write_all(&session.out), stalled, shared, cid).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                return reason;
            }
        };
        session.out.clear();
        match written {
            Ok(false) => {}
            Ok(true) => {
                if let Err(reason) = finish_write(stream.flush(), stalled, shared, cid).await {
                    outbox.close(reason);
                    return reason;
                }
                last_write = Instant::now();
            }
            Err(reason) => {
                outbox.close(reason);
                return reason;
            }
        }

        let deadline = session.deadline();
        let link_ping = session.link_ping_due();
        let wake_at = [deadline, link_ping, Some(nop_check)]
            .into_iter()
            .flatten()
            .min();
        timer.as_mut().set_at(wake_at);
        // Waiting for the end of a sync lock is rare: its future is allocated only then.
        let mut lock_released = session.waiting().then(|| Box::pin(sync_lock.changed()));
        tokio::select! {
            biased;
            () = poll_fn(|cx| outbox.poll_ready(cx)) => {}
            () = timer.as_mut().wait() => {
                let now = Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    session.timed_out();
                } else if link_ping.is_some_and(|p| p <= now) {
                    session.send_link_ping();
                } else if now >= nop_check {
                    if now.duration_since(last_write) >= NOP_INTERVAL {
                        outbox.push(Reply::Nop.to_bytes());
                        last_write = now;
                    }
                    nop_check = last_write + NOP_INTERVAL;
                }
            }
            _ = async { lock_released.as_mut().expect("waiting").await }, if lock_released.is_some() => {
                if session.handle(&mut lines) == Flow::Stop {
                    stop(session);
                }
            }
            read = read_some(stream, &mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    session.flush_out();
                    outbox.close(CloseReason::Quit);
                    continue;
                }
                let result = loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(line)) => lines.push(line),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                session.inbuf.store(buf.len(), Ordering::Relaxed);
                release_if_empty::<S>(&mut buf);
                if session.handle(&mut lines) == Flow::Stop {
                    stop(session);
                    continue;
                }
                if let Err(ProtoError::LineTooLong { limit }) = result {
                    Stats::bump(&shared.stats.lines_too_long);
                    tracing::warn!(cid, limit, "line too long, closing connection");
                    let line = Reply::Overhead {
                        flags: Flags::ERROR,
                        value: format!("line_too_long (limit {limit} bytes)").into(),
                    };
                    session.flush_out();
                    outbox.push_last(line.to_bytes(), CloseReason::LineTooLong);
                }
            }
        }
    }
}

/// After a command that ends the connection: whatever it answered goes out first.
fn stop(session: &mut Session) {
    session.flush_out();
    if !session.outbox.is_closing() {
        session.outbox.close(CloseReason::Quit);
    }
}

/// Runs a write; a failure or no progress within `stalled` gives the reason to close.
async fn finish_write<F>(
    write: F,
    stalled: Duration,
    shared: &Shared,
    cid: &str,
) -> Result<(), CloseReason>
where
    F: Future<Output = std::io::Result<()>>,
{
    match complete_or_timeout(write, stalled).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(cid, error = %e, "write failed");
            Err(CloseReason::Quit)
        }
        Err(_) => {
            Stats::bump(&shared.stats.stalled_writes);
            tracing::warn!(
                cid,
                secs = stalled.as_secs_f64(),
                "writes stalled, closing connection"
            );
            Err(CloseReason::Timeout)
        }
    }
}

pin_project_lite::pin_project! {
    /// A sleep that can be moved to another time (or to never) without re-creating it.
    struct Timer {
        #[pin]
        sleep: tokio::time::Sleep,
        at: Option<Instant>,
    }
}

impl Timer {
    fn new() -> Timer {
        Timer {
            sleep: tokio::time::sleep_until(far_future()),
            at: None,
        }
    }

    fn set_at(self: std::pin::Pin<&mut Self>, at: Option<Instant>) {
        let this = self.project();
        if *this.at != at {
            *this.at = at;
            this.sleep.reset(at.unwrap_or_else(far_future));
        }
    }

    async fn wait(self: std::pin::Pin<&mut Self>) {
        let this = self.project();
        if this.at.is_none() {
            return std::future::pending().await;
        }
        this.sleep.await;
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// A write made no progress within its limit.
#[derive(Debug)]
pub(crate) struct Stalled;

/// Runs `fut`, failing after `limit`. The timer is only allocated if `fut` does not finish at
/// its first poll, so the common write costs neither a timer nor room for one.
pub(crate) async fn complete_or_timeout<F: Future>(
    fut: F,
    limit: Duration,
) -> Result<F::Output, Stalled> {
    let mut fut = std::pin::pin!(fut);
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).map(|()| Err(Stalled))
    })
    .await
}
