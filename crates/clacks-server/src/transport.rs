//! What a connection runs over, and reading without holding a buffer while idle.
//!
//! Plain sockets can wait until they are readable without a buffer, so an idle connection over a
//! Unix socket or plain TCP gives its read buffer back and takes one again when data arrives.
//! Other streams (TLS, in-memory pipes, the boxed link to a master) keep a buffer while they wait.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Bytes made room for before a read: plain sockets give their buffer back when idle, so they
/// can read a whole pipelined batch at once; other streams keep theirs and start smaller.
fn read_chunk<S: Transport>() -> usize {
    if S::WAITS {
        4096
    } else {
        1024
    }
}

/// Read buffers given back by idle connections, reused by the next connection with input on the
/// same thread (so a busy server does not allocate a buffer per request).
const SPARE_BUFFERS: usize = 16;

/// Larger buffers are freed rather than kept for reuse (or kept by an idle connection).
const SPARE_MAX_CAPACITY: usize = 64 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A stream a connection is served over.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Whether [`Transport::poll_read_ready`] really waits for data.
    const WAITS: bool = false;

    /// Ready when a read would not block (at once when the stream cannot tell).
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Transport for UnixStream {
    const WAITS: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_read_ready(self, cx)
    }
}

impl Transport for TcpStream {
    const WAITS: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {}

impl Transport for Box<dyn clacks_client::Stream> {}

/// Any other stream (tests' in-memory pipes).
pub(crate) struct Opaque<S>(pub(crate) S);

impl<S: AsyncRead + Unpin> AsyncRead for Opaque<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Opaque<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for Opaque<S> {}

/// Reads what is available into `buf` (0 at EOF), taking a buffer only once data is there.
pub(crate) fn poll_read_some<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if S::WAITS && buf.capacity() == 0 {
        ready!(stream.poll_read_ready(cx))?;
        if let Some(spare) = SPARE.with(|s| s.borrow_mut().pop()) {
            *buf = spare;
        }
    }
    // A read into a nearly full buffer would split a batch over two reads (and two writes).
    let chunk = read_chunk::<S>();
    if buf.capacity() - buf.len() < chunk / 2 {
        buf.reserve(chunk.max(buf.len()));
    }
    tokio_util::io::poll_read_buf(Pin::new(stream), cx, buf)
}

/// [`poll_read_some`] as a future.
pub(crate) async fn read_some<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_some(stream, buf, cx)).await
}

/// After the input was used up: an idle connection over a plain socket holds no buffer.
pub(crate) fn release_if_empty<S: Transport>(buf: &mut BytesMut) {
    if S::WAITS && buf.is_empty() && buf.capacity() > 0 {
        let spare = std::mem::take(buf);
        if spare.capacity() <= SPARE_MAX_CAPACITY {
            SPARE.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE_BUFFERS {
                    s.push(spare);
                }
            });
        }
    }
}

/// Frees an empty buffer that grew for one large batch instead of keeping it for good.
pub(crate) fn shrink_if_large(buf: &mut BytesMut) {
    if buf.capacity() > SPARE_MAX_CAPACITY && buf.is_empty() {
        *buf = BytesMut::new();
    }
}

/// A write made no progress within its limit.
#[derive(Debug)]
pub(crate) struct Stalled;

/// Runs `fut`, failing after `limit`. The timer is only allocated if `fut` does not finish at
/// its first poll, so the common write costs neither a timer nor room for one.
pub(crate) async fn complete_or_timeout<F: Future>(
    fut: F,
    limit: std::time::Duration,
) -> Result<F::Output, Stalled> {
    let mut fut = std::pin::pin!(fut);
    let mut timer = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        poll_limit(&mut timer, limit, cx).map(|()| Err(Stalled))
    })
    .await
}

/// Ready once `limit` has passed since the first poll; the timer is allocated at that poll.
pub(crate) fn poll_limit(
    timer: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    limit: std::time::Duration,
    cx: &mut Context<'_>,
) -> Poll<()> {
    timer
        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
        .as_mut()
        .poll(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_empty_buffer_is_freed() {
        let mut large = BytesMut::with_capacity(SPARE_MAX_CAPACITY * 4);
        shrink_if_large(&mut large);
        assert_eq!(large.capacity(), 0);
        let mut small = BytesMut::with_capacity(1024);
        shrink_if_large(&mut small);
        assert!(small.capacity() >= 1024);
        let mut full = BytesMut::with_capacity(SPARE_MAX_CAPACITY * 4);
        full.extend_from_slice(b"partial line");
        shrink_if_large(&mut full);
        assert_eq!(&full[..], b"partial line");
    }
}
