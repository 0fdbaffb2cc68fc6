//! The cloneable client handle and the whole Net::Clacks client API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::{ClientEntry, Request};
use tokio::sync::{mpsc, oneshot};

use crate::conn::{Change, Command, Control, Expect, Response, Task};
use crate::{ClientError, ConnectOptions, Events};

/// A handle to one connection. Cheap to clone; every clone talks over the same connection,
/// which a background task keeps alive and reconnects.
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Control>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    request_timeout: Duration,
    server_info: Arc<Mutex<Option<String>>>,
    flush_ids: AtomicU64,
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
fn check_value(value: &str) -> Result<(), ClientError> {
    if value.contains(['\r', '\n']) {
        return Err(ClientError::InvalidArgument(
            "value contains a line break; encode it (see clacks_client::value)".into(),
        ));
    }
    Ok(())
}

/// Formats an INCREMENT/DECREMENT step as the Perl client does (`0 + $step`).
fn format_step(step: f64) -> String {
    if step.fract() == 0.0 && step.abs() < 1e15 {
        format!("{}", step as i64)
    } else {
        format!("{step}")
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Client {
    /// Connects and logs in. Fails if the first connection fails (wrong password, no server);
    /// after that, lost connections are re-established in the background.
    pub async fn connect(opts: ConnectOptions) -> Result<(Client, Events), ClientError> {
        let (tx, rx) = mpsc::channel(1024);
        let (etx, erx) = mpsc::channel(opts.event_capacity.max(1));
        let server_info = Arc::new(Mutex::new(None));
        let shared = Arc::new(Shared {
            request_timeout: opts.request_timeout,
            server_info: server_info.clone(),
            flush_ids: AtomicU64::new(0),
        });
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(Task::new(opts, rx, etx, server_info).run(first_tx));
        match first_rx.await {
            Ok(Ok(())) => Ok((Client { tx, shared }, Events { rx: erx })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// What the server said in its greeting (`CLACKS <info>`).
    pub fn server_info(&self) -> Option<String> {
        self.shared.server_info.lock().ok().and_then(|s| s.clone())
    }

    async fn request(
        &self,
        request: Request,
        expect: Expect,
        label: String,
        change: Change,
    ) -> Result<Response, ClientError> {
        let mut line = BytesMut::new();
        request.encode(&mut line);
        let can_fail = !matches!(
            request,
            Request::Ping | Request::NoPing | Request::Flush { .. } | Request::Quit
        );
        self.send(line.freeze(), expect, label, can_fail, change)
            .await
    }

    async fn send(
        &self,
        line: Bytes,
        expect: Expect,
        label: String,
        can_fail: bool,
        change: Change,
    ) -> Result<Response, ClientError> {
        let (done, rx) = oneshot::channel();
        let cmd = Command {
            line,
            expect,
            label,
            can_fail,
            change,
            done: Some(done),
        };
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

    async fn fire(
        &self,
        request: Request,
        label: String,
        change: Change,
    ) -> Result<(), ClientError> {
        self.request(request, Expect::Written, label, change)
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

    /// `SET name=value`: sends a value to every listener of `name` (but not us).
    pub async fn set(&self, name: &str, value: &str) -> Result<(), ClientError> {
        check_name(name)?;
        check_value(value)?;
        let req = Request::Set {
            name: b(name),
            value: b(value),
        };
        self.fire(req, format!("SET {name}"), Change::None).await
    }

    /// `SETANDSTORE name=value`: SET to listeners and STORE in the cache.
    pub async fn set_and_store(&self, name: &str, value: &str) -> Result<(), ClientError> {
        check_name(name)?;
        check_value(value)?;
        let req = Request::SetAndStore {
            name: b(name),
            value: b(value),
        };
        self.fire(req, format!("SETANDSTORE {name}"), Change::None)
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

    /// `STORE key=value`.
    pub async fn store(&self, key: &str, value: &str) -> Result<(), ClientError> {
        check_name(key)?;
        check_value(value)?;
        let req = Request::Store {
            key: b(key),
            value: b(value),
        };
        self.fire(req, format!("STORE {key}"), Change::None).await
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
            .request(
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

    /// `KEYLIST`: every key, removed ones included (as the server lists them).
    pub async fn keylist(&self) -> Result<Vec<String>, ClientError> {
        match self
            .request(
                Request::KeyList,
                Expect::KeyList,
                "KEYLIST".into(),
                Change::None,
            )
            .await?
        {
            Response::Keys(keys) => Ok(keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// `CLIENTLIST`: the server's connections (manage permission).
    pub async fn clientlist(&self) -> Result<Vec<ClientEntry>, ClientError> {
        match self
            .request(
                Request::ClientList,
                Expect::ClientList,
                "CLIENTLIST".into(),
                Change::None,
            )
            .await?
        {
            Response::Clients(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// `CLIENTDISCONNECT cid`: closes another connection (manage permission).
    pub async fn client_disconnect(&self, cid: &str) -> Result<(), ClientError> {
        check_value(cid)?;
        let req = Request::ClientDisconnect { cid: b(cid) };
        self.fire(req, format!("CLIENTDISCONNECT {cid}"), Change::None)
            .await
    }

    /// `STATS` (clacksd only): the server's counters.
    pub async fn stats(&self) -> Result<Vec<(String, String)>, ClientError> {
        match self
            .request(Request::Stats, Expect::Stats, "STATS".into(), Change::None)
            .await?
        {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// `CLEARCACHE`: empties the whole cache (manage permission).
    pub async fn clear_cache(&self) -> Result<(), ClientError> {
        self.fire(Request::ClearCache, "CLEARCACHE".into(), Change::None)
            .await
    }

    fn next_flush_id(&self) -> Bytes {
        let n = self.shared.flush_ids.fetch_add(1, Ordering::Relaxed);
        Bytes::from(format!("rs{}-{n}", std::process::id()))
    }

    /// `FLUSH`: returns once the server has processed everything sent before.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let id = self.next_flush_id();
        let req = Request::Flush { id: id.clone() };
        self.request(req, Expect::Flushed(id), "FLUSH".into(), Change::None)
            .await
            .map(|_| ())
    }

    /// `PING` now, and keep sending PINGs (the default).
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.fire(Request::Ping, "PING".into(), Change::Ping(true))
            .await
    }

    /// `NOPING`: the server stops timing this connection out, and the client stops pinging.
    pub async fn disable_ping(&self) -> Result<(), ClientError> {
        self.fire(Request::NoPing, "NOPING".into(), Change::Ping(false))
            .await
    }

    /// `MONITOR` / `UNMONITOR`: mirror every command on the server as [`crate::Event::Debug`]
    /// (manage permission; restored after a reconnect).
    pub async fn monitor(&self, on: bool) -> Result<(), ClientError> {
        let (req, label) = if on {
            (Request::Monitor, "MONITOR")
        } else {
            (Request::Unmonitor, "UNMONITOR")
        };
        self.fire(req, label.into(), Change::Monitor(on)).await
    }

    /// Sends one raw protocol line; answers arrive as events or are ignored.
    pub async fn send_raw(&self, line: &str) -> Result<(), ClientError> {
        check_value(line)?;
        let mut bytes = BytesMut::from(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(
            bytes.freeze(),
            Expect::Written,
            line.to_string(),
            true,
            Change::None,
        )
        .await
        .map(|_| ())
    }

    /// Sends one raw protocol line followed by a FLUSH and returns every reply line before
    /// the FLUSHED (events such as SET still go to the event stream).
    pub async fn raw(&self, line: &str) -> Result<Vec<String>, ClientError> {
        check_value(line)?;
        let id = self.next_flush_id();
        let mut bytes = BytesMut::from(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        Request::Flush { id: id.clone() }.encode(&mut bytes);
        match self
            .send(
                bytes.freeze(),
                Expect::Raw(id),
                line.to_string(),
                false,
                Change::None,
            )
            .await?
        {
            Response::Lines(lines) => Ok(lines),
            other => Err(unexpected(other)),
        }
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

fn unexpected(r: Response) -> ClientError {
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
        assert!(check_value("x=y z").is_ok());
        assert!(check_value("x\ry").is_err());
    }

    #[test]
    fn steps_print_like_perl() {
        assert_eq!(format_step(5.0), "5");
        assert_eq!(format_step(-2.0), "-2");
        assert_eq!(format_step(1.25), "1.25");
    }
}
