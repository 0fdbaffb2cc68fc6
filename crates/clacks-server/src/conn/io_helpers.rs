//! The connection's write helpers (vectored and plain, each ending with a flush) and its one
//! movable timer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use super::PARTS_PER_WRITE;

/// Writes the items from `*index` (at `*pos`), then `out`, then flushes.
#[inline]
pub(super) fn poll_write_parts<S: AsyncWrite + Unpin>(
    stream: &mut S,
    (items, out): (&[Bytes], &[u8]),
    index: &mut usize,
    pos: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let part = |i: usize| -> &[u8] {
        match items.get(i) {
            Some(item) => item,
            None => out,
        }
    };
    while *index <= items.len() {
        // Up to `PARTS_PER_WRITE` pieces per system call: many small signals cost one write.
        let mut slices = [io::IoSlice::new(&[]); PARTS_PER_WRITE];
        let mut count = 0;
        for (n, i) in (*index..=items.len()).take(PARTS_PER_WRITE).enumerate() {
            let from = if n == 0 { *pos } else { 0 };
            slices[n] = io::IoSlice::new(&part(i)[from..]);
            count = n + 1;
        }
        let mut n = ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]))?;
        if n == 0 && slices[..count].iter().any(|s| !s.is_empty()) {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        // Move past what was written (and past empty pieces).
        while *index <= items.len() {
            let left = part(*index).len() - *pos;
            if n < left {
                *pos += n;
                break;
            }
            n -= left;
            *index += 1;
            *pos = 0;
        }
    }
    Pin::new(stream).poll_flush(cx)
}

/// Writes `bytes[*pos..]`, then flushes.
#[inline]
pub(super) fn poll_write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    pos: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while *pos < bytes.len() {
        let n = ready!(Pin::new(&mut *stream).poll_write(cx, &bytes[*pos..]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        *pos += n;
    }
    Pin::new(stream).poll_flush(cx)
}

pin_project_lite::pin_project! {
    /// A sleep that can be moved to another time (or to never) without re-creating it.
    pub(super) struct Timer {
        #[pin]
        sleep: Sleep,
        at: Option<Instant>,
        // Whether the sleep holds our waker for `at`: then it need not be polled again (which
        // costs more than the rest of a wait), only asked whether it fired.
        armed: bool,
    }
}

impl Timer {
    #[inline]
    pub(super) fn new() -> Timer {
        Timer {
            sleep: tokio::time::sleep_until(far_future()),
            at: None,
            armed: false,
        }
    }

    #[inline]
    pub(super) fn set_at(self: Pin<&mut Self>, at: Option<Instant>) {
        let this = self.project();
        if *this.at != at {
            *this.at = at;
            *this.armed = false;
            this.sleep.reset(at.unwrap_or_else(far_future));
        }
    }

    #[inline]
    pub(super) fn poll_wait(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.at.is_none() {
            return Poll::Pending;
        }
        if *this.armed {
            return if this.sleep.is_elapsed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        let fired = this.sleep.poll(cx);
        *this.armed = fired.is_pending();
        fired
    }
}

#[inline]
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}
