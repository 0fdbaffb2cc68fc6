use std::pin::Pin;
use std::task::{Context, Poll};

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
    /// `SET <name>=<value>` from another client.
    Set {
        /// Signal name.
        name: String,
        /// Value.
        value: String,
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
    /// The server's greeting (`CLACKS <info>`), after every (re)connect.
    ServerInfo(String),
    /// The connection was lost; the client reconnects by itself.
    Disconnected {
        /// Why (`quit`, `timeout`, an I/O error …).
        reason: String,
    },
    /// Connected again; LISTENs and monitor mode were restored.
    Reconnected,
    /// This many events were dropped because the event stream was not read fast enough.
    Lagged(u64),
}

/// The stream of [`Event`]s of one client. Also a [`futures_core::Stream`].
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures_core::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
