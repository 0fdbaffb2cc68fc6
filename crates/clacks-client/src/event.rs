use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Something the server told us without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `NOTIFY <name>` from another client.
    Notify {
        /// Signal name.
        name: String,
    },
    /// `SET <name>=<value>` from another client ([`Event::set`] makes one).
    Set {
        /// Signal name.
        name: String,
        /// The value as text (invalid UTF-8 replaced).
        value: String,
        /// The value as it was sent, byte for byte.
        bytes: Bytes,
    },
    /// A MONITOR line: `DEBUG <source>=<text>`.
    Debug {
        /// Connection id, or `CONNECTED`, `DISCONNECTED`, `SERVERCACHE`.
        source: String,
        /// The mirrored line or event.
        text: String,
    },
    /// `OVERHEAD E <message>` that no pending request took, with the command it most likely
    /// belongs to.
    ErrorMessage {
        /// What the server said (`permission_denied`, `unknown_command …`).
        message: String,
        /// The command it was attributed to, if any.
        command: Option<String>,
    },
    /// An informal message forwarded through the server (`OVERHEAD GM …`).
    Informal(String),
    /// A work-queue message no receive call took: it was handed out, unleased, to a receive
    /// whose call had given up (timed out or was dropped) before the client could cancel it,
    /// or it answers a raw `QRECV`. It is off its queue: this event is the only copy, and, like
    /// every event, it is dropped (and counted in [`Event::Lagged`]) when the event reader falls
    /// behind.
    QueueMessage {
        /// The queue.
        queue: String,
        /// The message id.
        id: String,
        /// The message, as it was sent.
        value: Bytes,
    },
    /// The server's greeting (`CLACKS <info>`), after every (re)connect.
    ServerInfo(String),
    /// The connection was lost; the client reconnects by itself.
    Disconnected {
        /// Why (`quit`, `timeout`, an I/O error …).
        reason: String,
    },
    /// Connected again; LISTENs and monitor mode were restored.
    Reconnected,
    /// This many events were dropped because the stream was not read fast enough.
    Lagged(u64),
}

/// The sending side of an event stream: a bounded queue, and the count of events it dropped
/// because it was full.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    tx: mpsc::Sender<Event>,
    lagged: Arc<AtomicU64>,
}

/// The receiving side of a [`Feed`].
#[derive(Debug)]
pub(crate) struct FeedRx {
    rx: mpsc::Receiver<Event>,
    lagged: Arc<AtomicU64>,
}

pub(crate) fn feed(capacity: usize) -> (Feed, FeedRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let lagged = Arc::new(AtomicU64::new(0));
    (
        Feed {
            tx,
            lagged: lagged.clone(),
        },
        FeedRx { rx, lagged },
    )
}

impl Feed {
    /// Queues `event`, or counts it as dropped when the reader is behind.
    pub(crate) fn push(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.lagged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the reader is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl FeedRx {
    /// Drops are reported by the next read, before the events still queued.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        match self.lagged.swap(0, Ordering::Relaxed) {
            0 => self.rx.poll_recv(cx),
            n => Poll::Ready(Some(Event::Lagged(n))),
        }
    }

    async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn try_next(&mut self) -> Option<Event> {
        match self.lagged.swap(0, Ordering::Relaxed) {
            0 => self.rx.try_recv().ok(),
            n => Some(Event::Lagged(n)),
        }
    }
}

/// The stream of [`Event`]s of one client: signals of names it LISTENs to without a
/// [`Subscription`], MONITOR lines, errors nobody waited for and connection events. Also a
/// [`futures_core::Stream`].
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: FeedRx,
}

impl Event {
    /// `SET name=value`, as a listener receives it.
    pub fn set(name: impl Into<String>, value: impl AsRef<[u8]>) -> Event {
        let bytes = Bytes::copy_from_slice(value.as_ref());
        Event::Set {
            name: name.into(),
            value: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }
}

impl Events {
    /// The next event; `None` once the client is closed. Events dropped because the stream
    /// was not read fast enough are reported first, as [`Event::Lagged`].
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.next().await
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_next()
    }
}

impl futures_core::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_next(cx)
    }
}

/// The signals of one name ([`Event::Notify`], [`Event::Set`], and [`Event::Lagged`] when
/// some were dropped), from [`crate::Client::subscribe`]. Dropping it stops listening (unless
/// another subscription or [`crate::Client::listen`] still wants the name). Also a
/// [`futures_core::Stream`].
#[derive(Debug)]
pub struct Subscription {
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) rx: FeedRx,
    pub(crate) ctl: mpsc::Sender<crate::conn::Control>,
}

impl Subscription {
    /// The name subscribed to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next signal; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.next().await
    }

    /// The next signal if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_next()
    }
}

impl futures_core::Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_next(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // If the command queue is full, the connection task notices the closed feed at the
        // next signal for the name instead.
        let _ = self.ctl.try_send(crate::conn::Control::Unsubscribe {
            name: std::mem::take(&mut self.name),
            id: self.id,
        });
    }
}
