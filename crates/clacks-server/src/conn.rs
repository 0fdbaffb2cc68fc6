//! The I/O of one connection, generic over the stream (TLS, Unix socket, in-memory duplex).
//!
//! A reader future decodes lines and executes them through the [`Session`]; a writer future
//! drains the outbox, coalescing everything queued into one write. The connection ends when the
//! writer ends (output flushed after QUIT/EOF, a kick, a slow-consumer cut or a write error).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use clacks_proto::{Flags, LineDecoder, ProtoError, Reply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::{Peer, Shared};
use crate::outbox::{CloseReason, Drain, Outbox};
use crate::session::{Flow, Session};
use crate::stats::Stats;

/// A connection that was idle for this long gets a `NOP`.
const NOP_INTERVAL: Duration = Duration::from_secs(60);

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S, peer: Peer, cancel: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut session = Session::open(shared.clone(), &peer);
    let cid = String::from_utf8_lossy(&session.cid).into_owned();
    Stats::bump(&shared.stats.connections_accepted);
    shared
        .stats
        .connections_current
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(cid, "connected");

    let (reader, writer) = tokio::io::split(stream);
    let outbox = session.outbox.clone();
    let stalled = shared.config.stalled_write_timeout;
    let reason = async {
        let write = write_loop(writer, &outbox, stalled, &shared, &cid);
        let read = read_loop(reader, &mut session, &shared, &cancel);
        tokio::pin!(write);
        tokio::select! {
            reason = &mut write => reason,
            () = read => write.await,
        }
    }
    .await;

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

async fn read_loop<R: AsyncRead>(
    reader: R,
    session: &mut Session,
    shared: &Shared,
    cancel: &CancellationToken,
) {
    tokio::pin!(reader);
    let mut buf = BytesMut::with_capacity(1024);
    let mut decoder = LineDecoder::new(shared.config.max_line_length);
    let mut sync_lock = shared.sync_lock.subscribe();
    let mut lines = Vec::new();
    // Timers are reset only when their time changes, not re-created for every read.
    let deadline = Timer::new();
    let link_ping = Timer::new();
    tokio::pin!(deadline, link_ping);
    loop {
        deadline.as_mut().set_at(session.deadline());
        link_ping.as_mut().set_at(session.link_ping_due());
        let waiting = session.waiting();
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                session.outbox.push_last(Reply::Quit.to_bytes(), CloseReason::Kicked);
                return;
            }
            () = deadline.as_mut().wait() => {
                session.timed_out();
                return;
            }
            () = link_ping.as_mut().wait() => session.send_link_ping(),
            _ = sync_lock.changed(), if waiting => {
                if session.handle(&mut lines) == Flow::Stop {
                    return;
                }
            }
            read = reader.read_buf(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => {
                        session.outbox.close(CloseReason::Quit);
                        return;
                    }
                    Ok(_) => {}
                }
                let result = loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(line)) => lines.push(line),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                session.inbuf.store(buf.len(), Ordering::Relaxed);
                if session.handle(&mut lines) == Flow::Stop {
                    return;
                }
                if let Err(ProtoError::LineTooLong { limit }) = result {
                    Stats::bump(&shared.stats.lines_too_long);
                    tracing::warn!(cid = %String::from_utf8_lossy(&session.cid), limit, "line too long, closing connection");
                    let line = Reply::Overhead {
                        flags: Flags::ERROR,
                        value: format!("line_too_long (limit {limit} bytes)").into(),
                    };
                    session.outbox.push_last(line.to_bytes(), CloseReason::LineTooLong);
                    return;
                }
                if session.outbox.is_closing() {
                    return;
                }
            }
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

async fn write_loop<W: AsyncWrite>(
    writer: W,
    outbox: &Outbox,
    stalled: Duration,
    shared: &Shared,
    cid: &str,
) -> CloseReason {
    tokio::pin!(writer);
    let mut items = Vec::new();
    let mut batch = BytesMut::new();
    let mut last_write = Instant::now();
    let nop = tokio::time::sleep_until(last_write + NOP_INTERVAL);
    tokio::pin!(nop);
    loop {
        match outbox.drain(&mut items) {
            Drain::Write => {
                let write = async {
                    if let [one] = items.as_slice() {
                        writer.write_all(one).await?;
                    } else {
                        batch.clear();
                        for item in &items {
                            batch.extend_from_slice(item);
                        }
                        writer.write_all(&batch).await?;
                    }
                    writer.flush().await
                };
                let result = complete_or_timeout(write, stalled).await;
                items.clear();
                last_write = Instant::now();
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(cid, error = %e, "write failed");
                        outbox.close(CloseReason::Quit);
                        return CloseReason::Quit;
                    }
                    Err(_) => {
                        Stats::bump(&shared.stats.stalled_writes);
                        tracing::warn!(
                            cid,
                            secs = stalled.as_secs_f64(),
                            "writes stalled, closing connection"
                        );
                        outbox.close(CloseReason::Timeout);
                        return CloseReason::Timeout;
                    }
                }
            }
            Drain::Idle => {
                tokio::select! {
                    () = outbox.wait() => {}
                    () = nop.as_mut() => {
                        if last_write.elapsed() >= NOP_INTERVAL {
                            outbox.push(Reply::Nop.to_bytes());
                            last_write = Instant::now();
                        }
                        nop.as_mut().reset(last_write + NOP_INTERVAL);
                    }
                }
            }
            Drain::Close(reason) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
                return reason;
            }
        }
    }
}

/// Runs `fut`, failing after `limit`; the timer is only armed if it does not finish at once,
/// so the common write costs no timer.
pub(crate) async fn complete_or_timeout<F: std::future::Future>(
    fut: F,
    limit: Duration,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(out) => Ok(out),
        std::task::Poll::Pending => tokio::time::timeout(limit, fut).await,
    }
}
