//! The I/O of one connection, generic over the stream (TLS, Unix socket, in-memory duplex).
//!
//! A connection is one hand-written future, so an idle connection costs exactly its fields (an
//! `async fn` would keep room for every write and wait state at once). Each pass writes what is
//! waiting — everything the outbox holds and the connection's latest replies, in one write (the
//! replies alone straight from the session's buffer) — and then waits for input, for output
//! pushed by other connections, for its one timer (auth/ping deadline, interclacks keepalive,
//! idle `NOP`), or for the end of a sync lock. The connection ends when the outbox says so
//! (QUIT, EOF, a kick, a timeout, a slow-consumer cut) or a write fails.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

mod io_helpers;

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, LineDecoder, ProtoError, Reply};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use io_helpers::{poll_write_all, poll_write_parts, Timer};

use crate::outbox::{CloseReason, Drain};
use crate::session::{Flow, Hold, Session};
use crate::state::{Peer, Shared};
use crate::stats::Stats;
use crate::transport::{poll_limit, poll_read_some, release_if_empty, shrink_if_large, Transport};

/// A connection that was idle for this long gets a `NOP`.
const NOP_INTERVAL: Duration = Duration::from_secs(60);

/// Room for this many drained outbox items is kept between writes; more is freed.
const ITEMS_KEPT: usize = 1024;

/// A queued piece this large (a value queued by reference) is never copied: output holding one
/// is written piece by piece.
const COPY_MAX: usize = 64 * 1024;
/// Most bytes of small pieces copied into one buffer for a write; more are written piece by
/// piece (vectored), so a full queue is not held twice.
const BATCH_MAX: usize = 1024 * 1024;
/// Most pieces handed to one vectored write (the usual `IOV_MAX` is 1024).
const PARTS_PER_WRITE: usize = 256;

/// How long closing waits for the stream's shutdown.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(1);

/// Registers a connection and returns the future that serves it until it closes, holding its
/// connection slot (if it counts towards `maxconnections`).
pub(crate) fn serve<S: Transport>(
    shared: Arc<Shared>,
    stream: S,
    peer: &Peer,
    cancel: &CancellationToken,
    slot: Option<OwnedSemaphorePermit>,
) -> Connection<S> {
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
    tracing::debug!(cid = %session.cid_str(), "connected");
    let now = Instant::now();
    Connection {
        conn: Conn {
            decoder: LineDecoder::new(session.line_limit()),
            shared,
            stream,
            session,
            _slot: slot,
            buf: BytesMut::new(),
            items: Vec::new(),
            batch: BytesMut::new(),
            phase: Phase::Open,
            limit: None,
            lock_released: None,
            input_held: false,
            out_in_write: false,
            last_write: now,
            nop_check: now + NOP_INTERVAL,
        },
        timer: Timer::new(),
    }
}

pin_project_lite::pin_project! {
    /// One connection, served until it closes.
    pub(crate) struct Connection<S> {
        conn: Conn<S>,
        #[pin]
        timer: Timer,
    }
}

impl<S: Transport> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let reason = ready!(this.conn.poll(this.timer, cx));
        this.conn.finish(reason);
        Poll::Ready(())
    }
}

/// What the connection is doing.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Looking for output to write.
    Open,
    /// Nothing to write: waiting for input, output or the timer.
    Waiting,
    /// Writing (then flushing) `src` from `pos`.
    Writing { src: Src, pos: usize },
    /// Writing its last replies before closing for `reason`.
    Closing { reason: CloseReason, pos: usize },
    /// Shutting the stream down (for at most [`SHUTDOWN_LIMIT`]).
    ShuttingDown(CloseReason),
}

/// Where the bytes being written are.
#[derive(Debug, Clone, Copy)]
enum Src {
    /// The session's latest replies.
    Out,
    /// The one item drained from the outbox.
    One,
    /// `batch`: several items, then the replies.
    Batch,
    /// The items one by one from `index`, then the replies (large output, not copied).
    Parts { index: usize },
}

/// Everything of a connection but its timer.
struct Conn<S> {
    shared: Arc<Shared>,
    stream: S,
    session: Session,
    _slot: Option<OwnedSemaphorePermit>,
    decoder: LineDecoder,
    /// Input not yet decoded (no allocation while idle over a plain socket).
    buf: BytesMut,
    /// What was drained from the outbox, until written.
    items: Vec<Bytes>,
    /// Several outbox items and the replies, copied together for one write.
    batch: BytesMut,
    phase: Phase,
    /// Limit on the current write or shutdown, allocated when it does not finish at once.
    limit: Option<Pin<Box<Sleep>>>,
    /// While lines wait for a sync lock: ready when it is released.
    lock_released: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Whether input was left unexecuted (see [`Session::hold`]); nothing is read meanwhile.
    input_held: bool,
    /// Whether the write in progress includes the session's replies (`session.out`); once input
    /// runs during a pending write, they are moved out of the way first.
    out_in_write: bool,
    last_write: Instant,
    /// When to look at idleness again (moved only when the timer fires, not at every write).
    nop_check: Instant,
}

impl<S: Transport> Conn<S> {
    /// Runs until the connection ends; the result says why.
    fn poll(&mut self, mut timer: Pin<&mut Timer>, cx: &mut Context<'_>) -> Poll<CloseReason> {
        loop {
            match self.phase {
                Phase::Open => {
                    // With `<journal><fsync>always`, nothing is written (no reply, no FLUSHED)
                    // before the sync that covers this connection's changes.
                    if self.session.journal_at != 0 {
                        if let Some(journal) = &self.shared.journal {
                            ready!(journal.poll_synced(self.session.journal_at, cx));
                        }
                        self.session.journal_at = 0;
                    }
                    self.start_write();
                }
                Phase::Waiting => {
                    ready!(self.poll_waiting(timer.as_mut(), cx));
                    self.phase = Phase::Open;
                }
                Phase::Writing { src, pos } => match self.poll_writing(src, pos, cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(reason)) => return Poll::Ready(reason),
                    Poll::Pending => {
                        if let Err(reason) = ready!(self.poll_while_writing(timer.as_mut(), cx)) {
                            self.session.outbox.close(reason);
                            return Poll::Ready(reason);
                        }
                    }
                },
                Phase::Closing { reason, pos } => ready!(self.poll_closing(reason, pos, cx)),
                Phase::ShuttingDown(reason) => {
                    if Pin::new(&mut self.stream).poll_shutdown(cx).is_pending()
                        && poll_limit(&mut self.limit, SHUTDOWN_LIMIT, cx).is_pending()
                    {
                        return Poll::Pending;
                    }
                    return Poll::Ready(reason);
                }
            }
        }
    }

    /// Starts writing what is waiting, in order: what others queued (and our replies queued
    /// behind it), then our latest replies. Usually only the replies: written straight from the
    /// session's buffer.
    fn start_write(&mut self) {
        let out = &self.session.out;
        self.phase = match self.session.outbox.drain(&mut self.items) {
            Drain::Write => {
                let size = self.items.iter().map(Bytes::len).sum::<usize>() + out.len();
                let src = if self.items.len() == 1 && out.is_empty() {
                    Src::One
                } else if size > BATCH_MAX || self.items.iter().any(|i| i.len() >= COPY_MAX) {
                    Src::Parts { index: 0 }
                } else {
                    for item in &self.items {
                        self.batch.extend_from_slice(item);
                    }
                    self.batch.extend_from_slice(out);
                    Src::Batch
                };
                self.out_in_write = !out.is_empty();
                Phase::Writing { src, pos: 0 }
            }
            Drain::Idle if !out.is_empty() => {
                self.out_in_write = true;
                Phase::Writing {
                    src: Src::Out,
                    pos: 0,
                }
            }
            Drain::Idle => Phase::Waiting,
            Drain::Close(reason) if reason != CloseReason::SlowConsumer && !out.is_empty() => {
                Phase::Closing { reason, pos: 0 }
            }
            Drain::Close(reason) => Phase::ShuttingDown(reason),
        };
    }

    /// Waits for input, for output pushed by others, for the timer or for the end of a sync
    /// lock; ready when something happened.
    fn poll_waiting(&mut self, mut timer: Pin<&mut Timer>, cx: &mut Context<'_>) -> Poll<()> {
        let session = &mut self.session;
        let deadline = session.deadline();
        let link_ping = session.link_ping_due();
        let wake_at = [deadline, link_ping, Some(self.nop_check)]
            .into_iter()
            .flatten()
            .min();
        timer.as_mut().set_at(wake_at);
        if session.outbox.poll_ready(cx).is_ready() {
            return Poll::Ready(());
        }
        if timer.poll_wait(cx).is_ready() {
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                session.timed_out();
            } else if link_ping.is_some_and(|p| p <= now) {
                session.send_link_ping();
            } else if now >= self.nop_check {
                if now.duration_since(self.last_write) >= NOP_INTERVAL {
                    session.outbox.push(Reply::Nop.to_bytes());
                    self.last_write = now;
                }
                self.nop_check = self.last_write + NOP_INTERVAL;
                self.trim();
            }
            return Poll::Ready(());
        }
        if self.input_held {
            match session.hold() {
                Hold::No => {}
                // The deadline timer answers and closes.
                Hold::LoginFailed => return Poll::Pending,
                Hold::SyncLock => {
                    // Rare: the waiting future is allocated only then.
                    let released = self.lock_released.get_or_insert_with(|| {
                        let mut lock = self.shared.sync_lock.subscribe();
                        Box::pin(async move {
                            let _ = lock.wait_for(|locked| !locked).await;
                        })
                    });
                    ready!(released.as_mut().poll(cx));
                    self.lock_released = None;
                }
            }
            self.run_input();
            return Poll::Ready(());
        }
        self.lock_released = None;

        let read = ready!(poll_read_some(&mut self.stream, &mut self.buf, cx));
        if matches!(read, Ok(0) | Err(_)) {
            session.flush_out();
            session.outbox.close(CloseReason::Quit);
            return Poll::Ready(());
        }
        self.run_input();
        Poll::Ready(())
    }

    /// Executes the complete lines of the input (decoded as they run), as far as the session
    /// goes; what it leaves waits in the buffer.
    fn run_input(&mut self) {
        let session = &mut self.session;
        let mut error = None;
        let (decoder, buf) = (&mut self.decoder, &mut self.buf);
        let flow = session.handle(|limit| {
            decoder.set_max_line(limit);
            decoder.decode(buf).unwrap_or_else(|e| {
                error = Some(e);
                None
            })
        });
        self.input_held = flow == Flow::Hold;
        session.outbox.set_input_len(self.buf.len());
        release_if_empty::<S>(&mut self.buf);
        if flow == Flow::Stop {
            // Whatever the last command answered goes out first.
            session.flush_out();
            if !session.outbox.is_closing() {
                session.outbox.close(CloseReason::Quit);
            }
            return;
        }
        if let Some(ProtoError::LineTooLong { limit }) = error {
            Stats::bump(&self.shared.stats.lines_too_long);
            tracing::warn!(cid = %session.cid_str(), limit, "line too long, closing connection");
            let line = Reply::Overhead {
                flags: Flags::ERROR,
                value: format!("line_too_long (limit {limit} bytes)").into(),
            };
            session.flush_out();
            session
                .outbox
                .push_last(line.to_bytes(), CloseReason::LineTooLong);
        }
    }

    /// Frees what one large line, reply or burst made large (looked at when the idle check runs,
    /// so a busy connection reuses its buffers).
    fn trim(&mut self) {
        shrink_if_large(&mut self.buf);
        shrink_if_large(&mut self.session.out);
        shrink_if_large(&mut self.batch);
        if self.items.capacity() > ITEMS_KEPT {
            self.items = Vec::new();
        }
        self.session.outbox.trim();
    }

    /// Goes on with a write; when it is done the connection waits (output queued meanwhile
    /// makes the outbox ready at once).
    fn poll_writing(
        &mut self,
        src: Src,
        mut pos: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), CloseReason>> {
        let (src, written) = match src {
            Src::Parts { mut index } => {
                // Once the replies were moved into `items` (input ran during the write), what
                // `session.out` holds now belongs to the next write.
                let out: &[u8] = if self.out_in_write {
                    &self.session.out
                } else {
                    &[]
                };
                let parts = (&self.items[..], out);
                let written = poll_write_parts(&mut self.stream, parts, &mut index, &mut pos, cx);
                (Src::Parts { index }, written)
            }
            Src::Out => (
                src,
                poll_write_all(&mut self.stream, &self.session.out, &mut pos, cx),
            ),
            Src::One => (
                src,
                poll_write_all(&mut self.stream, &self.items[0], &mut pos, cx),
            ),
            Src::Batch => (
                src,
                poll_write_all(&mut self.stream, &self.batch, &mut pos, cx),
            ),
        };
        self.phase = Phase::Writing { src, pos };
        if let Err(reason) = ready!(self.write_outcome(written, cx)) {
            self.session.outbox.close(reason);
            return Poll::Ready(Err(reason));
        }
        if !self.items.is_empty() {
            self.session.outbox.written();
        }
        if std::mem::take(&mut self.out_in_write) {
            self.session.out.clear();
        }
        self.batch.clear();
        self.items.clear();
        self.last_write = Instant::now();
        // Replies of input that ran during the write go out next.
        self.phase = if self.session.out.is_empty() {
            Phase::Waiting
        } else {
            Phase::Open
        };
        Poll::Ready(Ok(()))
    }

    /// While a write is pending: keeps the connection's deadline and, on an interclacks link,
    /// keeps reading and running input (so two servers writing to each other never wait for each
    /// other). Ready when input ran
    /// (the write is tried again); an error when the deadline passed.
    fn poll_while_writing(
        &mut self,
        mut timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), CloseReason>> {
        // The timer stays as the wait set it (moving it costs a timer-wheel update per pending
        // write); when it fires for something else (keepalive, idle check: they wait until the
        // write is done), it is moved to the deadline alone.
        if timer.as_mut().poll_wait(cx).is_ready() {
            let deadline = self.session.deadline();
            if deadline.is_some_and(|d| d <= Instant::now()) {
                Stats::bump(&self.shared.stats.ping_timeouts);
                tracing::info!(cid = %self.session.cid_str(), "timeout while a write is pending");
                return Poll::Ready(Err(CloseReason::Timeout));
            }
            timer.as_mut().set_at(deadline);
            let _ = timer.as_mut().poll_wait(cx);
        }
        // Only links read on: two servers must never wait for each other, while a client's
        // input may as well wait in the socket until its replies are out (reading it earlier only
        // splits its batches).
        if !self.session.link.is_link() || self.input_held || self.session.outbox.is_closing() {
            return Poll::Pending;
        }
        let read = ready!(poll_read_some(&mut self.stream, &mut self.buf, cx));
        self.detach_replies();
        if matches!(read, Ok(0) | Err(_)) {
            // Closing the outbox also ends the reading.
            self.session.flush_out();
            self.session.outbox.close(CloseReason::Quit);
        } else {
            self.run_input();
        }
        Poll::Ready(Ok(()))
    }

    /// Makes the write in progress independent of `session.out`, so commands can reply into it.
    fn detach_replies(&mut self) {
        if !std::mem::take(&mut self.out_in_write) {
            return;
        }
        let Phase::Writing { src, pos } = self.phase else {
            return;
        };
        let src = match src {
            // The replies become the one item written (nothing was drained from the outbox).
            Src::Out => {
                self.items.push(self.session.out.split().freeze());
                Src::One
            }
            // The replies become the last item: the write goes on where it was.
            Src::Parts { index } => {
                self.items.push(self.session.out.split().freeze());
                Src::Parts { index }
            }
            // Already copied into the batch.
            Src::Batch => {
                self.session.out.clear();
                Src::Batch
            }
            Src::One => Src::One,
        };
        self.phase = Phase::Writing { src, pos };
    }

    /// Writes the last replies (as far as the peer takes them), then shuts down.
    fn poll_closing(
        &mut self,
        reason: CloseReason,
        mut pos: usize,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let written = poll_write_all(&mut self.stream, &self.session.out, &mut pos, cx);
        self.phase = Phase::Closing { reason, pos };
        let _ = ready!(self.write_outcome(written, cx));
        self.phase = Phase::ShuttingDown(reason);
        Poll::Ready(())
    }

    /// What a write's progress means: a failure or no progress within `stalledwritetimeout`
    /// gives the reason to close. The limit is cleared once the write is over.
    fn write_outcome(
        &mut self,
        written: Poll<io::Result<()>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), CloseReason>> {
        let config = &self.shared.config;
        let outcome = match written {
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Ready(Err(e)) => {
                tracing::debug!(cid = %self.session.cid_str(), error = %e, "write failed");
                Err(CloseReason::Quit)
            }
            Poll::Pending if self.session.outbox.poll_cut(cx).is_ready() => {
                Err(CloseReason::SlowConsumer)
            }
            Poll::Pending => {
                let limit = if self.session.link.is_link() {
                    config.interclacks_stalled_write_timeout
                } else {
                    config.stalled_write_timeout
                };
                ready!(poll_limit(&mut self.limit, limit, cx));
                Stats::bump(&self.shared.stats.stalled_writes);
                tracing::warn!(
                    cid = %self.session.cid_str(),
                    secs = limit.as_secs_f64(),
                    "writes stalled, closing connection"
                );
                Err(CloseReason::Timeout)
            }
        };
        self.limit = None;
        Poll::Ready(outcome)
    }

    /// The connection ended: it leaves the shared state.
    fn finish(&mut self, reason: CloseReason) {
        let note = match reason {
            CloseReason::SlowConsumer => Some("slow consumer"),
            CloseReason::LineTooLong => Some("line too long"),
            _ => None,
        };
        self.session.close(note);
        self.shared
            .stats
            .connections_current
            .fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(cid = %self.session.cid_str(), ?reason, "disconnected");
    }
}
