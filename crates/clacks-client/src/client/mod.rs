//! The cloneable client handle and the whole Net::Clacks client API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::Request;
use tokio::sync::{mpsc, oneshot, watch};

use crate::conn::{Change, Command, Control, Expect, Response, Task};
use crate::event::feed;

mod admin;
use crate::{ClientError, ConnectOptions, Events, Subscription};

/// A handle to one connection. Cheap to clone; every clone talks over the same connection,
/// which a background task keeps alive and reconnects.
///
/// Every command is sent at most once. A command not yet written when the connection drops
/// goes out after the reconnect; one already written whose answer was lost fails with
/// [`ClientError::OutcomeUnknown`]; one whose call timed out or was dropped is never sent.
/// Only LISTENs, monitor mode, NOPING, the login and live [`crate::Registration`]s are
/// restored after a reconnect.
///
/// Writes (`store`, `set`, `increment`, …) return once written, and a refusal arrives later as
/// an [`crate::Event::ErrorMessage`]; a [confirmed](Client::confirmed) handle waits for the
/// server's verdict and returns the refusal as the call's error.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) tx: mpsc::Sender<Control>,
    pub(crate) shared: Arc<Shared>,
    confirm: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) request_timeout: Duration,
    max_line_length: usize,
    event_capacity: usize,
    connected: watch::Receiver<bool>,
    pub(crate) subscription_ids: AtomicU64,
    server_info: Arc<Mutex<Option<String>>>,
    flush_ids: AtomicU64,
    /// The connection's number (see `conn::Task::epoch`).
    pub(crate) epoch: Arc<AtomicU64>,
    /// Requests waiting for their replies (see `rpc`).
    #[cfg(feature = "json")]
    pub(crate) replies: crate::rpc::Replies,
}

/// Checks a signal name or cache key: not empty, no line break, no `=` (it ends a name on the
/// wire).
fn check_name(name: &str) -> Result<(), ClientError> {
    if name.is_empty() {
        return Err(ClientError::InvalidArgument("empty name".into()));
    }
    if name.contains(['\r', '\n', '=']) {
        return Err(ClientError::InvalidArgument(format!(
            "name {name:?} contains a line break or '='"
        )));
    }
    Ok(())
}

/// Checks a value: no line break (it would end the command and start another). Use the
/// [`crate::value`] encodings for multi-line text.
pub(crate) fn check_value(value: &[u8]) -> Result<(), ClientError> {
    if value.iter().any(|&c| c == b'\r' || c == b'\n') {
        return Err(ClientError::InvalidArgument(
            "value contains a line break; encode it (see clacks_client::value)".into(),
        ));
    }
    Ok(())
}

/// Whether the server may answer `request` with `OVERHEAD E …`.
fn can_fail(request: &Request) -> bool {
    !matches!(
        request,
        Request::Ping | Request::NoPing | Request::Flush { .. } | Request::Quit
    )
}

/// Formats an INCREMENT/DECREMENT step as the Perl client does (`0 + $step`).
fn format_step(step: f64) -> String {
    if step.fract() == 0.0 && step.abs() < 1e15 {
        format!("{}", step as i64)
    } else {
        format!("{step}")
    }
}

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Client {
    /// Connects and logs in. Fails if the first connection fails (wrong password, no server);
    /// after that, lost connections are re-established in the background.
    pub async fn connect(opts: ConnectOptions) -> Result<(Client, Events), ClientError> {
        let (tx, rx) = mpsc::channel(1024);
        let (etx, erx) = feed(opts.event_capacity);
        let (connected, state) = watch::channel(true);
        let server_info = Arc::new(Mutex::new(None));
        let epoch = Arc::new(AtomicU64::new(0));
        let confirm = opts.confirm_writes;
        let shared = Arc::new(Shared {
            request_timeout: opts.request_timeout,
            max_line_length: opts.max_line_length,
            event_capacity: opts.event_capacity,
            connected: state,
            subscription_ids: AtomicU64::new(0),
            server_info: server_info.clone(),
            flush_ids: AtomicU64::new(0),
            epoch: epoch.clone(),
            #[cfg(feature = "json")]
            replies: Default::default(),
        });
        let (first_tx, first_rx) = oneshot::channel();
        let task = Task::new(opts, rx, etx, server_info, connected, epoch);
        tokio::spawn(task.run(first_tx));
        match first_rx.await {
            Ok(Ok(())) => Ok((
                Client {
                    tx,
                    shared,
                    confirm,
                },
                Events { rx: erx },
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// A handle to the same connection whose writes are confirmed: each one is followed by a
    /// `FLUSH` barrier and returns once the server has executed it, with the server's refusal
    /// (`permission_denied`, `out_of_memory …`) as its error.
    ///
    /// ```
    /// # use clacks_client::{Client, ClientError, ConnectOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ClientError> {
    /// # let server = clacks_server::testing::TestServer::start().await;
    /// # let (user, password) = clacks_server::testing::RO;
    /// let (client, _events) = Client::connect(ConnectOptions::unix(&server.socket, user, password)).await?;
    /// // A read-only user: the plain write returns once written, the confirmed one fails.
    /// client.store("k", "v").await?;
    /// match client.confirmed().store("k", "v").await {
    ///     Err(ClientError::PermissionDenied(command)) => assert_eq!(command, "STORE k"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn confirmed(&self) -> Client {
        Client {
            confirm: true,
            ..self.clone()
        }
    }

    /// Whether the connection is up (it is re-established in the background when lost; see
    /// [`crate::Event::Disconnected`] and [`crate::Event::Reconnected`]).
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// The connection's state as it changes: `true` while connected. `changed().await` waits
    /// for the next change, and fails once the client has closed. Unlike the
    /// [`crate::Event::Disconnected`] and [`crate::Event::Reconnected`] events on the shared
    /// event stream, a change here is never dropped because a reader lags: a reader always
    /// sees the latest state.
    ///
    /// ```no_run
    /// # async fn f(client: clacks_client::Client) {
    /// let mut state = client.connection_state();
    /// while state.changed().await.is_ok() {
    ///     let up = *state.borrow_and_update();
    ///     eprintln!("connection {}", if up { "up" } else { "down, reconnecting" });
    /// }
    /// # }
    /// ```
    pub fn connection_state(&self) -> watch::Receiver<bool> {
        let mut state = self.shared.connected.clone();
        // Changes before this call are not news to its caller.
        state.mark_unchanged();
        state
    }

    /// `LISTEN name`, with the signals of `name` delivered to the returned stream instead of
    /// the [`Events`] stream. Dropping the stream sends `UNLISTEN name` (unless another
    /// subscription or [`Client::listen`] still wants it). The LISTEN is confirmed: a refusal
    /// is this call's error. Restored after a reconnect.
    ///
    /// ```
    /// # use clacks_client::{Client, ClientError, ConnectOptions, Event};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ClientError> {
    /// # let server = clacks_server::testing::TestServer::start().await;
    /// # let (user, password) = clacks_server::testing::ADMIN;
    /// # let opts = || ConnectOptions::unix(&server.socket, user, password);
    /// let (client, _events) = Client::connect(opts()).await?;
    /// let (other, _) = Client::connect(opts()).await?;
    /// let mut temperatures = client.subscribe("temperature").await?;
    /// other.set("temperature", "21.5").await?;
    /// assert_eq!(
    ///     temperatures.next().await,
    ///     Some(Event::set("temperature", "21.5"))
    /// );
    /// drop(temperatures); // UNLISTEN temperature
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, name: &str) -> Result<Subscription, ClientError> {
        check_name(name)?;
        let id = self.shared.subscription_ids.fetch_add(1, Ordering::Relaxed);
        let (feed, rx) = feed(self.shared.event_capacity);
        let subscribe = Control::Subscribe {
            name: name.to_string(),
            id,
            feed,
        };
        self.tx
            .send(subscribe)
            .await
            .map_err(|_| ClientError::Closed)?;
        // From here on, a failure drops the subscription, which unsubscribes.
        let subscription = Subscription {
            name: name.to_string(),
            id,
            rx,
            ctl: self.tx.clone(),
        };
        let listen = Request::Listen { name: b(name) };
        self.confirmed()
            .fire(listen, format!("LISTEN {name}"), Change::None)
            .await?;
        Ok(subscription)
    }

    /// What the server said in its greeting (`CLACKS <info>`).
    pub fn server_info(&self) -> Option<String> {
        self.shared.server_info.lock().ok().and_then(|s| s.clone())
    }

    /// Sends `request` and waits for its answer.
    pub(crate) async fn call(
        &self,
        request: Request,
        expect: Expect,
        label: String,
        change: Change,
    ) -> Result<Response, ClientError> {
        let mut line = BytesMut::new();
        request.encode(&mut line);
        let can_fail = can_fail(&request);
        self.send_line(line.freeze(), expect, label, can_fail, change, None)
            .await
    }

    /// A command for the connection task and where its answer comes, or the line is too long.
    pub(crate) fn command(
        &self,
        line: Bytes,
        expect: Expect,
        label: String,
        can_fail: bool,
        change: Change,
        epoch: Option<u64>,
    ) -> Result<(Command, oneshot::Receiver<Result<Response, ClientError>>), ClientError> {
        let limit = self.shared.max_line_length;
        let longest = line
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
            .max()
            .unwrap_or(0);
        if longest > limit {
            return Err(ClientError::LineTooLong {
                len: longest,
                limit,
            });
        }
        let (done, rx) = oneshot::channel();
        let cmd = Command {
            line,
            expect,
            label,
            can_fail,
            change,
            epoch,
            done: Some(done),
        };
        Ok((cmd, rx))
    }

    pub(crate) async fn send_line(
        &self,
        line: Bytes,
        expect: Expect,
        label: String,
        can_fail: bool,
        change: Change,
        epoch: Option<u64>,
    ) -> Result<Response, ClientError> {
        let (cmd, rx) = self.command(line, expect, label, can_fail, change, epoch)?;
        let timeout = self.shared.request_timeout;
        let wait = async {
            self.tx
                .send(Control::Cmd(cmd))
                .await
                .map_err(|_| ClientError::Closed)?;
            rx.await.map_err(|_| ClientError::Closed)?
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// Sends a command the server does not answer (unless it refuses it); confirmed, with a
    /// `FLUSH` barrier after it.
    async fn fire(
        &self,
        request: Request,
        label: String,
        change: Change,
    ) -> Result<(), ClientError> {
        self.fire_on(request, label, change, None).await
    }

    /// [`Client::fire`], sent only on connection `epoch` if one is given.
    pub(crate) async fn fire_on(
        &self,
        request: Request,
        label: String,
        change: Change,
        epoch: Option<u64>,
    ) -> Result<(), ClientError> {
        let can_fail = can_fail(&request);
        let mut line = BytesMut::new();
        request.encode(&mut line);
        if !self.confirm {
            return self
                .send_line(
                    line.freeze(),
                    Expect::Written,
                    label,
                    can_fail,
                    change,
                    epoch,
                )
                .await
                .map(|_| ());
        }
        let id = self.next_flush_id();
        Request::Flush { id: id.clone() }.encode(&mut line);
        self.send_line(
            line.freeze(),
            Expect::Confirm(id),
            label,
            true,
            change,
            epoch,
        )
        .await
        .map(|_| ())
    }

    /// `NOTIFY name`: tells every listener of `name` (but not us) that something happened.
    pub async fn notify(&self, name: &str) -> Result<(), ClientError> {
        check_name(name)?;
        self.fire(
            Request::Notify { name: b(name) },
            format!("NOTIFY {name}"),
            Change::None,
        )
        .await
    }

    /// `SET name=value`: sends a value to every listener of `name` (but not us). The value is
    /// text or bytes (`&str`, `String`, `&[u8]`, `Bytes`, …) without line breaks.
    pub async fn set(&self, name: &str, value: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.fire_pair("SET", name, value.as_ref(), |name, value| Request::Set {
            name,
            value,
        })
        .await
    }

    /// `SETANDSTORE name=value`: SET to listeners and STORE in the cache.
    pub async fn set_and_store(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        self.fire_pair("SETANDSTORE", name, value.as_ref(), |name, value| {
            Request::SetAndStore { name, value }
        })
        .await
    }

    /// `LISTEN name`: receive NOTIFY/SET for `name` as [`crate::Event`]s (restored after a
    /// reconnect).
    pub async fn listen(&self, name: &str) -> Result<(), ClientError> {
        check_name(name)?;
        let change = Change::Listen(name.to_string());
        self.fire(
            Request::Listen { name: b(name) },
            format!("LISTEN {name}"),
            change,
        )
        .await
    }

    /// `UNLISTEN name`.
    pub async fn unlisten(&self, name: &str) -> Result<(), ClientError> {
        check_name(name)?;
        let change = Change::Unlisten(name.to_string());
        self.fire(
            Request::Unlisten { name: b(name) },
            format!("UNLISTEN {name}"),
            change,
        )
        .await
    }

    /// `STORE key=value`; the value is text or bytes without line breaks (see
    /// [`crate::value`] and [`crate::Cache`] for encodings that carry any value).
    pub async fn store(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.fire_pair("STORE", key, value.as_ref(), |key, value| Request::Store {
            key,
            value,
        })
        .await
    }

    /// A `<VERB> name=value` write (`SET`, `SETANDSTORE`, `STORE`): name and value checked,
    /// then sent as [`Client::fire`] sends.
    async fn fire_pair(
        &self,
        verb: &str,
        name: &str,
        value: &[u8],
        request: fn(Bytes, Bytes) -> Request,
    ) -> Result<(), ClientError> {
        check_name(name)?;
        check_value(value)?;
        let req = request(b(name), Bytes::copy_from_slice(value));
        self.fire(req, format!("{verb} {name}"), Change::None).await
    }

    /// `RETRIEVE key`: the value, or `None` when the key is unknown or removed.
    pub async fn retrieve(&self, key: &str) -> Result<Option<String>, ClientError> {
        Ok(self
            .retrieve_bytes(key)
            .await?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// `RETRIEVE key`, the value as raw bytes.
    pub async fn retrieve_bytes(&self, key: &str) -> Result<Option<Bytes>, ClientError> {
        check_name(key)?;
        let req = Request::Retrieve { key: b(key) };
        match self
            .call(
                req,
                Expect::Retrieve(b(key)),
                format!("RETRIEVE {key}"),
                Change::None,
            )
            .await?
        {
            Response::Value(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// `REMOVE key`.
    pub async fn remove(&self, key: &str) -> Result<(), ClientError> {
        check_name(key)?;
        self.fire(
            Request::Remove { key: b(key) },
            format!("REMOVE {key}"),
            Change::None,
        )
        .await
    }

    /// `INCREMENT key[=step]` (no step: 1). The server does not answer; RETRIEVE to read it.
    pub async fn increment(&self, key: &str, step: Option<f64>) -> Result<(), ClientError> {
        check_name(key)?;
        let req = Request::Increment {
            key: b(key),
            step: step.map(|s| Bytes::from(format_step(s))),
        };
        self.fire(req, format!("INCREMENT {key}"), Change::None)
            .await
    }

    /// `DECREMENT key[=step]` (no step: 1).
    pub async fn decrement(&self, key: &str, step: Option<f64>) -> Result<(), ClientError> {
        check_name(key)?;
        let req = Request::Decrement {
            key: b(key),
            step: step.map(|s| Bytes::from(format_step(s))),
        };
        self.fire(req, format!("DECREMENT {key}"), Change::None)
            .await
    }

    pub(crate) fn next_flush_id(&self) -> Bytes {
        let n = self.shared.flush_ids.fetch_add(1, Ordering::Relaxed);
        Bytes::from(format!("rs{}-{n}", std::process::id()))
    }

    /// `FLUSH`: returns once the server has processed everything sent before.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let id = self.next_flush_id();
        let req = Request::Flush { id: id.clone() };
        self.call(req, Expect::Flushed(id), "FLUSH".into(), Change::None)
            .await
            .map(|_| ())
    }

    /// Sends `QUIT` after everything queued and closes the connection; every handle is closed.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Control::Close(done)).await.is_err() {
            return Ok(());
        }
        let timeout = self.shared.request_timeout;
        let _ = tokio::time::timeout(timeout, rx).await;
        Ok(())
    }
}

pub(crate) fn unexpected(r: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {r:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked() {
        assert!(check_name("a::b c").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a=b").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_value(b"x=y z").is_ok());
        assert!(check_value(b"x\ry").is_err());
        assert!(check_value(b"\xff\x00").is_ok());
    }

    #[test]
    fn steps_print_like_perl() {
        assert_eq!(format_step(5.0), "5");
        assert_eq!(format_step(-2.0), "-2");
        assert_eq!(format_step(1.25), "1.25");
    }
}
