//! A blocking facade for programs without an async runtime: the whole API of the async
//! [`crate::Client`], each call waiting for its answer on the calling thread.
//!
//! It covers the Net::Clacks calls (signals, the cache, [`Subscription`]s, the manage calls),
//! the JSON helpers (feature `json`), work queues with leased receives ([`Job`]) and temporary
//! queues, the service registry ([`Registration`], withdrawn when dropped, and [`Resolver`]),
//! requests with replies and their workers (`Client::request`, `Client::serve`, feature
//! `json`), and the `ClacksCache`-like [`Cache`]. Calls that wait for something that may never
//! come take a timeout ([`Subscription::next`], [`Client::next_event`], [`Resolver::changed`]).
//! Closures handed to the facade (`Client::serve`, [`Resolver::connect_with`]) are plain
//! blocking functions, run on the calling thread, and may use the blocking client themselves.
//!
//! Not for async code: its calls block the thread, and panic inside a runtime's tasks.
//!
//! ```no_run
//! use clacks_client::{blocking, ConnectOptions};
//!
//! let client = blocking::Client::connect(ConnectOptions::from_data_dir("clacks-data")?)?;
//! client.store("greeting", "hello")?;
//! assert_eq!(client.retrieve("greeting")?.as_deref(), Some("hello"));
//! # Ok::<(), clacks_client::ClientError>(())
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clacks_proto::ClientEntry;

use crate::{ClientError, ConnectOptions, Event, Events, Message, QueueStats};

/// A blocking client: the async [`crate::Client`] on its own background runtime. Cheap to
/// clone; clones share the connection and the event stream.
#[derive(Debug, Clone)]
pub struct Client {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: crate::Client,
    events: Arc<Mutex<Events>>,
}

/// The signals of one name (see [`crate::Client::subscribe`]); dropping it stops listening.
#[derive(Debug)]
pub struct Subscription {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: crate::Subscription,
}

impl Subscription {
    /// The name it listens to.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The next signal if one is waiting (see [`crate::Subscription::try_next`]).
    pub fn try_next(&mut self) -> Option<Event> {
        self.inner.try_next()
    }

    /// The next signal, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<Event> {
        let next = self.inner.next();
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, next).await.ok().flatten() })
    }
}

/// The connection's state as it changes (see [`crate::Client::connection_state`]).
#[derive(Debug)]
pub struct ConnectionState {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: tokio::sync::watch::Receiver<bool>,
}

impl ConnectionState {
    /// Whether the connection is up now.
    pub fn is_up(&self) -> bool {
        *self.inner.borrow()
    }

    /// Waits at most `timeout` for a change not seen yet and returns the state then (`true`:
    /// up); `None` when nothing changed in time or the client has closed.
    pub fn changed(&mut self, timeout: Duration) -> Option<bool> {
        let inner = &mut self.inner;
        self.runtime.block_on(async {
            match tokio::time::timeout(timeout, inner.changed()).await {
                Ok(Ok(())) => Some(*inner.borrow_and_update()),
                _ => None,
            }
        })
    }
}

macro_rules! blocking {
    ($( $(#[$doc:meta])* $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self, $($arg: $ty),*) -> Result<$ret, ClientError> {
                self.runtime.block_on(self.inner.$name($($arg),*))
            }
        )*
    };
}

mod cache;
mod queue;
mod registry;
#[cfg(feature = "json")]
mod rpc;

pub use cache::Cache;
pub use queue::Job;
pub use registry::{Registration, Resolver};

/// Runs `f`, a caller's blocking closure, from inside one of our `block_on`s: outside the
/// runtime's context, so that `f` may use the blocking client itself.
fn outside_runtime<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

impl Client {
    /// Connects and logs in (see [`crate::Client::connect`]).
    pub fn connect(opts: ConnectOptions) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(ClientError::from)?;
        let (inner, events) = runtime.block_on(crate::Client::connect(opts))?;
        Ok(Client {
            runtime: Arc::new(runtime),
            inner,
            events: Arc::new(Mutex::new(events)),
        })
    }

    /// The same connection with confirmed writes (see [`crate::Client::confirmed`]).
    pub fn confirmed(&self) -> Client {
        Client {
            inner: self.inner.confirmed(),
            ..self.clone()
        }
    }

    /// Whether the connection is up (see [`crate::Client::is_connected`]).
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// The connection's state as it changes (see [`crate::Client::connection_state`]).
    pub fn connection_state(&self) -> ConnectionState {
        ConnectionState {
            runtime: self.runtime.clone(),
            inner: self.inner.connection_state(),
        }
    }

    /// What the server said in its greeting.
    pub fn server_info(&self) -> Option<String> {
        self.inner.server_info()
    }

    /// See [`crate::Client::subscribe`].
    pub fn subscribe(&self, name: &str) -> Result<Subscription, ClientError> {
        let inner = self.runtime.block_on(self.inner.subscribe(name))?;
        Ok(Subscription {
            runtime: self.runtime.clone(),
            inner,
        })
    }

    /// The async client behind this one.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        let mut events = self.events.lock().ok()?;
        self.runtime.block_on(async {
            tokio::time::timeout(timeout, events.next())
                .await
                .ok()
                .flatten()
        })
    }

    blocking! {
        /// See [`crate::Client::notify`].
        notify(name: &str) -> ();
        /// See [`crate::Client::set`].
        set(name: &str, value: impl AsRef<[u8]>) -> ();
        /// See [`crate::Client::set_and_store`].
        set_and_store(name: &str, value: impl AsRef<[u8]>) -> ();
        /// See [`crate::Client::listen`].
        listen(name: &str) -> ();
        /// See [`crate::Client::unlisten`].
        unlisten(name: &str) -> ();
        /// See [`crate::Client::store`].
        store(key: &str, value: impl AsRef<[u8]>) -> ();
        /// See [`crate::Client::retrieve`].
        retrieve(key: &str) -> Option<String>;
        /// See [`crate::Client::retrieve_bytes`].
        retrieve_bytes(key: &str) -> Option<Bytes>;
        /// See [`crate::Client::remove`].
        remove(key: &str) -> ();
        /// See [`crate::Client::increment`].
        increment(key: &str, step: Option<f64>) -> ();
        /// See [`crate::Client::decrement`].
        decrement(key: &str, step: Option<f64>) -> ();
        /// See [`crate::Client::keylist`].
        keylist() -> Vec<String>;
        /// See [`crate::Client::clientlist`].
        clientlist() -> Vec<ClientEntry>;
        /// See [`crate::Client::client_disconnect`].
        client_disconnect(cid: &str) -> ();
        /// See [`crate::Client::stats`].
        stats() -> Vec<(String, String)>;
        /// See [`crate::Client::clear_cache`].
        clear_cache() -> ();
        /// See [`crate::Client::flush`].
        flush() -> ();
        /// See [`crate::Client::ping`].
        ping() -> ();
        /// See [`crate::Client::disable_ping`].
        disable_ping() -> ();
        /// See [`crate::Client::monitor`].
        monitor(on: bool) -> ();
        /// See [`crate::Client::send_raw`].
        send_raw(line: &str) -> ();
        /// See [`crate::Client::raw`].
        raw(line: &str) -> Vec<String>;
        /// See [`crate::Client::send`].
        send(queue: &str, value: impl AsRef<[u8]>) -> ();
        /// See [`crate::Client::send_until`].
        send_until(queue: &str, value: impl AsRef<[u8]>, deadline: std::time::Instant) -> ();
        /// See [`crate::Client::recv`].
        recv(queue: &str, timeout: Option<Duration>) -> Option<Message>;
        /// See [`crate::Client::stat`].
        stat(queue: &str) -> QueueStats;
        /// See [`crate::Client::list`].
        list() -> Vec<(String, QueueStats)>;
        /// See [`crate::Client::disconnect`].
        disconnect() -> ();
    }

    /// See [`crate::Client::store_json`].
    #[cfg(feature = "json")]
    pub fn store_json<T: serde::Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), ClientError> {
        self.runtime.block_on(self.inner.store_json(key, value))
    }

    /// See [`crate::Client::retrieve_json`].
    #[cfg(feature = "json")]
    pub fn retrieve_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ClientError> {
        self.runtime.block_on(self.inner.retrieve_json(key))
    }

    /// See [`crate::Client::set_json`].
    #[cfg(feature = "json")]
    pub fn set_json<T: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), ClientError> {
        self.runtime.block_on(self.inner.set_json(name, value))
    }
}
