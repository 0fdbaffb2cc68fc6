//! The bounded output queue of one connection.
//!
//! Producers (its own commands, fan-out from other connections, monitors) push encoded lines;
//! the connection's writer drains everything queued into one write. A push never waits: when the
//! queue would exceed its byte cap the connection is marked as a slow consumer and closed, and
//! the producer goes on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Room for this many queued lines is kept; a burst's larger queue is freed by [`Outbox::trim`].
const QUEUE_KEPT: usize = 1024;

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer closed or sent QUIT.
    Quit,
    /// Kicked (CLIENTDISCONNECT, OVERHEAD C) or server shutdown.
    Kicked,
    /// Authentication failed.
    AuthFailed,
    /// Authentication or ping timeout.
    Timeout,
    /// A line over the length limit.
    LineTooLong,
    /// Output queue over its cap.
    SlowConsumer,
}

impl CloseReason {
    /// Whether queued output is still delivered before closing.
    fn flushes(self) -> bool {
        self != CloseReason::SlowConsumer
    }
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Bytes>,
    /// Bytes queued plus those drained but not yet written (both count towards the cap).
    bytes: usize,
    /// Bytes drained by the writer and not yet reported written.
    in_flight: usize,
    closing: Option<CloseReason>,
    /// Lines not queued because the connection was cut or closing.
    dropped: u64,
    /// The connection task, waiting for output to write.
    waker: Option<Waker>,
}

/// What a closed connection's queue lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Discarded {
    /// Lines queued and never written, plus lines refused after the cut or close.
    pub(crate) lines: u64,
    /// Bytes queued and never written.
    pub(crate) bytes: usize,
}

/// Lines in a queued piece.
fn lines_in(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

/// What the writer should do next.
#[derive(Debug)]
pub(crate) enum Drain {
    /// Write what was moved into the caller's vector.
    Write,
    /// Nothing queued; wait.
    Idle,
    /// Done: close the connection.
    Close(CloseReason),
}

/// A connection's output queue, capped in bytes. It also carries the length of the
/// connection's partial input line, for CLIENTLIST.
#[derive(Debug)]
pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    /// The byte cap: `maxoutbuffer`, or `interclacksmaxoutbuffer` for a link.
    cap: AtomicUsize,
    /// `Inner::bytes`, readable without the lock (the connection's own backpressure check).
    queued: AtomicUsize,
    input: AtomicUsize,
}

/// Makes the next push or close wake the task polling with `cx`.
fn register(inner: &mut Inner, cx: &Context<'_>) {
    if !inner
        .waker
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        inner.waker = Some(cx.waker().clone());
    }
}

/// Releases the lock, then wakes the connection task if it waits for output.
fn wake(mut inner: MutexGuard<'_, Inner>) {
    let waker = inner.waker.take();
    drop(inner);
    if let Some(w) = waker {
        w.wake();
    }
}

impl Outbox {
    pub(crate) fn new(cap: usize) -> Self {
        Outbox {
            inner: Mutex::new(Inner::default()),
            cap: AtomicUsize::new(cap),
            queued: AtomicUsize::new(0),
            input: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the byte cap (a connection that becomes an interclacks link).
    pub(crate) fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    /// The byte cap.
    pub(crate) fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    /// Bytes queued, without taking the lock (may lag a concurrent push).
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Adds `line` to the queue.
    fn enqueue(&self, inner: &mut Inner, line: Bytes) {
        inner.bytes += line.len();
        self.queued.store(inner.bytes, Ordering::Relaxed);
        inner.queue.push_back(line);
    }

    /// Queues `line`. Returns `false` when this push made the connection a slow consumer: the
    /// queue would exceed its cap. One line larger than the cap is still accepted into an empty
    /// queue, so a large reply (KEYLIST of a big cache) is not mistaken for a slow reader.
    pub(crate) fn push(&self, line: Bytes) -> bool {
        let mut inner = self.lock();
        if inner.closing.is_some() {
            inner.dropped += lines_in(&line);
            return true;
        }
        if inner.bytes > 0 && inner.bytes + line.len() > self.cap() {
            inner.dropped += lines_in(&line);
            inner.closing = Some(CloseReason::SlowConsumer);
            wake(inner);
            return false;
        }
        self.enqueue(&mut inner, line);
        wake(inner);
        true
    }

    /// Queues `data` whatever the cap (an interclacks full sync).
    pub(crate) fn push_force(&self, data: Bytes) {
        let mut inner = self.lock();
        if inner.closing.is_none() {
            self.enqueue(&mut inner, data);
        }
        wake(inner);
    }

    /// Queues a last line (ignoring the cap) and closes after it is written.
    pub(crate) fn push_last(&self, line: Bytes, reason: CloseReason) {
        let mut inner = self.lock();
        if inner.closing.is_none() {
            self.enqueue(&mut inner, line);
            inner.closing = Some(reason);
        }
        wake(inner);
    }

    /// Closes after queued output is written (or at once for a slow consumer).
    pub(crate) fn close(&self, reason: CloseReason) {
        let mut inner = self.lock();
        if inner.closing.is_none() {
            inner.closing = Some(reason);
        }
        wake(inner);
    }

    /// Whether a close was requested.
    pub(crate) fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Whether the connection was cut as a slow consumer.
    pub(crate) fn was_cut(&self) -> bool {
        self.lock().closing == Some(CloseReason::SlowConsumer)
    }

    /// Bytes waiting to be written (queued or being written).
    pub(crate) fn len(&self) -> usize {
        self.lock().bytes
    }

    /// Moves everything queued into `into`, or says why there is nothing.
    pub(crate) fn drain(&self, into: &mut Vec<Bytes>) -> Drain {
        let mut inner = self.lock();
        match inner.closing {
            Some(reason) if !reason.flushes() => return Drain::Close(reason),
            Some(reason) if inner.queue.is_empty() => return Drain::Close(reason),
            _ => {}
        }
        if inner.queue.is_empty() {
            return Drain::Idle;
        }
        // Still counted until the writer reports them written.
        inner.in_flight = inner.bytes;
        into.extend(inner.queue.drain(..));
        Drain::Write
    }

    /// What the last [`Outbox::drain`] handed out was written: it no longer counts.
    pub(crate) fn written(&self) {
        let mut inner = self.lock();
        inner.bytes -= std::mem::take(&mut inner.in_flight);
        self.queued.store(inner.bytes, Ordering::Relaxed);
    }

    /// Records how many bytes of input wait for the end of their line.
    pub(crate) fn set_input_len(&self, len: usize) {
        self.input.store(len, Ordering::Relaxed);
    }

    /// Bytes of input waiting for the end of their line.
    pub(crate) fn input_len(&self) -> usize {
        self.input.load(Ordering::Relaxed)
    }

    /// Frees the room a burst made, if the queue is empty now.
    pub(crate) fn trim(&self) {
        let mut inner = self.lock();
        if inner.queue.is_empty() && inner.queue.capacity() > QUEUE_KEPT {
            inner.queue = VecDeque::new();
        }
    }

    /// Discards what is queued; returns what was lost.
    pub(crate) fn discard(&self) -> Discarded {
        let mut inner = self.lock();
        let queued: u64 = inner.queue.iter().map(|item| lines_in(item)).sum();
        inner.queue.clear();
        inner.in_flight = 0;
        self.queued.store(0, Ordering::Relaxed);
        Discarded {
            lines: queued + std::mem::take(&mut inner.dropped),
            bytes: std::mem::take(&mut inner.bytes),
        }
    }

    /// Ready when something is queued or a close was requested; otherwise the task is woken by
    /// the next push or close.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if !inner.queue.is_empty() || inner.closing.is_some() {
            return Poll::Ready(());
        }
        register(&mut inner, cx);
        Poll::Pending
    }

    /// Ready when the connection was cut as a slow consumer (checked while a write waits, so
    /// the cut takes effect at once rather than when the write finishes).
    pub(crate) fn poll_cut(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.closing == Some(CloseReason::SlowConsumer) {
            return Poll::Ready(());
        }
        register(&mut inner, cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_makes_a_slow_consumer_and_drops_output() {
        let o = Outbox::new(10);
        assert!(o.push(Bytes::from_static(b"12345")));
        assert!(o.push(Bytes::from_static(b"12345")));
        assert!(!o.push(Bytes::from_static(b"1")));
        assert!(matches!(
            o.drain(&mut Vec::new()),
            Drain::Close(CloseReason::SlowConsumer)
        ));
    }

    #[test]
    fn output_being_written_counts_until_written() {
        let o = Outbox::new(10);
        assert!(o.push(Bytes::from_static(b"12345678")));
        let mut v = Vec::new();
        assert!(matches!(o.drain(&mut v), Drain::Write));
        assert_eq!(o.queued(), 8);
        assert!(!o.push(Bytes::from_static(b"123")), "8 in flight + 3 > 10");
        let o = Outbox::new(10);
        o.push(Bytes::from_static(b"12345678"));
        o.drain(&mut v);
        o.written();
        assert_eq!(o.queued(), 0);
        assert!(o.push(Bytes::from_static(b"123")));
    }

    #[test]
    fn one_large_line_fits_an_empty_queue() {
        let o = Outbox::new(10);
        assert!(o.push(Bytes::from(vec![b'x'; 100])));
        assert!(!o.push(Bytes::from_static(b"1")));
    }

    #[test]
    fn a_burst_does_not_keep_its_queue() {
        let o = Outbox::new(usize::MAX);
        for _ in 0..10_000 {
            o.push(Bytes::from_static(b"x"));
        }
        let mut v = Vec::new();
        assert!(matches!(o.drain(&mut v), Drain::Write));
        assert_eq!(v.len(), 10_000);
        o.trim();
        assert!(o.lock().queue.capacity() <= QUEUE_KEPT);
    }

    #[test]
    fn quit_flushes_first() {
        let o = Outbox::new(100);
        o.push(Bytes::from_static(b"a"));
        o.close(CloseReason::Quit);
        let mut v = Vec::new();
        assert!(matches!(o.drain(&mut v), Drain::Write));
        assert_eq!(v.len(), 1);
        assert!(matches!(o.drain(&mut v), Drain::Close(CloseReason::Quit)));
    }
}
