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
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

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
    let span = tracing::info_span!("conn", cid = %String::from_utf8_lossy(&session.cid));
    Stats::bump(&shared.stats.connections_accepted);
    shared
        .stats
        .connections_current
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(parent: &span, "connected");

    let (reader, writer) = tokio::io::split(stream);
    let outbox = session.outbox.clone();
    let stalled = shared.config.stalled_write_timeout;
    let reason = async {
        let write = write_loop(writer, &outbox, stalled, &shared);
        let read = read_loop(reader, &mut session, &shared, &cancel);
        tokio::pin!(write);
        tokio::select! {
            reason = &mut write => reason,
            () = read => write.await,
        }
    }
    .instrument(span.clone())
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
    tracing::debug!(parent: &span, ?reason, "disconnected");
}

async fn read_loop<R: AsyncRead>(
    reader: R,
    session: &mut Session,
    shared: &Shared,
    cancel: &CancellationToken,
) {
    tokio::pin!(reader);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut decoder = LineDecoder::new(shared.config.max_line_length);
    let mut sync_lock = shared.sync_lock.subscribe();
    loop {
        let waiting = session.waiting();
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                session.outbox.push_last(Reply::Quit.to_bytes(), CloseReason::Kicked);
                return;
            }
            () = sleep_until(session.deadline()) => {
                session.timed_out();
                return;
            }
            () = sleep_until(session.link_ping_due()) => session.send_link_ping(),
            _ = sync_lock.changed(), if waiting => {
                if session.handle(Vec::new()) == Flow::Stop {
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
                let mut lines = Vec::new();
                let result = loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(line)) => lines.push(line),
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                session.inbuf.store(buf.len(), Ordering::Relaxed);
                if session.handle(lines) == Flow::Stop {
                    return;
                }
                if let Err(ProtoError::LineTooLong { limit }) = result {
                    Stats::bump(&shared.stats.lines_too_long);
                    tracing::warn!(limit, "line too long, closing connection");
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

/// Sleeps until `at`, or forever when there is no such time.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn write_loop<W: AsyncWrite>(
    writer: W,
    outbox: &Outbox,
    stalled: Duration,
    shared: &Shared,
) -> CloseReason {
    tokio::pin!(writer);
    let mut batch = BytesMut::new();
    loop {
        match outbox.drain() {
            Drain::Write(items) => {
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
                match tokio::time::timeout(stalled, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "write failed");
                        outbox.close(CloseReason::Quit);
                        return CloseReason::Quit;
                    }
                    Err(_) => {
                        Stats::bump(&shared.stats.stalled_writes);
                        tracing::warn!(
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
                    () = tokio::time::sleep(NOP_INTERVAL) => {
                        outbox.push(Reply::Nop.to_bytes());
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
