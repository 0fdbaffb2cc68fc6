//! A blocking facade for programs without an async runtime.
//!
//! ```no_run
//! use clacks_client::{blocking, ConnectOptions};
//!
//! let client = blocking::Client::connect(ConnectOptions::from_data_dir("clacks-data")?)?;
//! client.store("greeting", "hello")?;
//! assert_eq!(client.retrieve("greeting")?.as_deref(), Some("hello"));
//! # Ok::<(), clacks_client::ClientError>(())
//! ```

use std::sync::Mutex;
use std::time::Duration;

use clacks_proto::ClientEntry;

use crate::{ClientError, ConnectOptions, Event, Events};

/// A blocking client: the async [`crate::Client`] on its own background runtime.
#[derive(Debug)]
pub struct Client {
    runtime: tokio::runtime::Runtime,
    inner: crate::Client,
    events: Mutex<Events>,
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

impl Client {
    /// Connects and logs in (see [`crate::Client::connect`]).
    pub fn connect(opts: ConnectOptions) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let (inner, events) = runtime.block_on(crate::Client::connect(opts))?;
        Ok(Client {
            runtime,
            inner,
            events: Mutex::new(events),
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
        set(name: &str, value: &str) -> ();
        /// See [`crate::Client::set_and_store`].
        set_and_store(name: &str, value: &str) -> ();
        /// See [`crate::Client::listen`].
        listen(name: &str) -> ();
        /// See [`crate::Client::unlisten`].
        unlisten(name: &str) -> ();
        /// See [`crate::Client::store`].
        store(key: &str, value: &str) -> ();
        /// See [`crate::Client::retrieve`].
        retrieve(key: &str) -> Option<String>;
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
        /// See [`crate::Client::disconnect`].
        disconnect() -> ();
    }
}
