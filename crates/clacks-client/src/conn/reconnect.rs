//! The task's life: the first connection, login, and reconnecting with backoff and jitter
//! while commands queue up offline.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, LineDecoder, Reply, Request};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::{Conn, Control, Exit, Task};
use crate::transport;
use crate::{ClientError, Event};

/// Longest line accepted from a server.
const MAX_LINE: usize = 64 * 1024 * 1024;

impl Task {
    /// Runs until closed; reports the first connection attempt through `first`.
    pub(crate) async fn run(mut self, first: oneshot::Sender<Result<(), ClientError>>) {
        let mut conn = match self.connect().await {
            Ok(c) => {
                let _ = first.send(Ok(()));
                Some(c)
            }
            Err(e) => {
                let _ = first.send(Err(e));
                return;
            }
        };
        let (mut attempt, mut lost): (u32, bool) = (0, false);
        loop {
            if let Some(c) = conn.take() {
                // The state first, so that whoever hears `Reconnected` finds it up; only a
                // real change moves the watch.
                self.connected
                    .send_if_modified(|up| !std::mem::replace(up, true));
                if lost {
                    self.emit(Event::Reconnected);
                }
                let up = Instant::now();
                let exit = self.serve(c).await;
                self.connected
                    .send_if_modified(|up| std::mem::replace(up, false));
                match exit {
                    Exit::Closed => return,
                    Exit::Lost(reason) => {
                        tracing::debug!(%reason, "connection lost");
                        self.emit(Event::Disconnected { reason });
                    }
                }
                lost = true;
                // The backoff starts over only after a connection that stayed up: a server
                // that accepts and then drops us at once is not hammered.
                if up.elapsed() >= self.opts.reconnect_max {
                    attempt = 0;
                }
            }
            attempt = attempt.saturating_add(1);
            if !self.wait_offline(self.backoff(attempt)).await {
                return;
            }
            match self.connect().await {
                Ok(c) => conn = Some(c),
                Err(ClientError::AuthFailed) => {
                    tracing::warn!(
                        attempt,
                        "reconnect: login failed (was the password changed?)"
                    );
                }
                Err(e) => tracing::debug!(error = %e, attempt, "reconnect failed"),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .opts
            .reconnect_min
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.opts.reconnect_max);
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        base.mul_f64(jitter)
    }

    /// Connects and logs in: `CLACKS <name>`, `OVERHEAD A <token>`, then waits for the greeting
    /// and `OVERHEAD O` (or `F`).
    async fn connect(&mut self) -> Result<Conn, ClientError> {
        let timeout = self.opts.connect_timeout;
        match tokio::time::timeout(timeout, self.login()).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    async fn login(&mut self) -> Result<Conn, ClientError> {
        use base64::Engine as _;
        let stream = transport::open(&self.opts.target).await?;
        let (reader, mut writer) = tokio::io::split(stream);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut hello = BytesMut::new();
        Request::Clacks {
            info: Bytes::from(self.opts.client_name.replace(['\r', '\n'], " ")),
        }
        .encode(&mut hello);
        Request::Overhead {
            flags: Flags::AUTH,
            value: Bytes::from(format!(
                "{}:{}",
                b64(&self.opts.username),
                b64(&self.opts.password)
            )),
        }
        .encode(&mut hello);
        writer.write_all(&hello).await?;
        writer.flush().await?;
        let mut conn = Conn {
            reader,
            writer,
            rbuf: BytesMut::with_capacity(16 * 1024),
            decoder: LineDecoder::new(MAX_LINE),
        };
        let mut first = true;
        loop {
            let line = match conn.decoder.decode(&mut conn.rbuf) {
                Ok(Some(line)) => line,
                Ok(None) => {
                    if conn.reader.read_buf(&mut conn.rbuf).await? == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "connection closed by the server",
                        )
                        .into());
                    }
                    continue;
                }
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            };
            let reply = Reply::parse(line);
            if first {
                first = false;
                let Reply::Clacks { info } = &reply else {
                    return Err(ClientError::Protocol(
                        "the server did not greet with CLACKS".into(),
                    ));
                };
                let info = String::from_utf8_lossy(info).into_owned();
                if let Ok(mut slot) = self.server_info.lock() {
                    *slot = Some(info.clone());
                }
                self.emit(Event::ServerInfo(info));
                continue;
            }
            match reply {
                Reply::Overhead { flags, .. } if flags.contains(Flags::AUTH_OK) => return Ok(conn),
                Reply::Overhead { flags, .. } if flags.contains(Flags::AUTH_FAILED) => {
                    return Err(ClientError::AuthFailed)
                }
                _ => {}
            }
        }
    }

    /// Accepts commands while disconnected for `delay`. Returns `false` when the client closed.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                ctl = self.rx.recv() => match ctl {
                    Some(Control::Cmd(cmd)) => {
                        if self.queue.len() >= self.opts.offline_queue {
                            cmd.finish(Err(ClientError::QueueFull(self.opts.offline_queue)));
                        } else {
                            self.apply(&cmd.change);
                            self.queue.push_back(cmd);
                        }
                    }
                    Some(Control::Close(done)) => {
                        self.fail_queue(ClientError::Closed);
                        let _ = done.send(());
                        return false;
                    }
                    Some(Control::Subscribe { name, id, feed }) => self.subscribe(name, id, feed),
                    Some(Control::Unsubscribe { name, id }) => self.unsubscribe(name, id),
                    Some(Control::Reap { queue }) => self.reap(&queue, None),
                    Some(Control::Deregister { key }) => self.deregister(key),
                    None => {
                        self.fail_queue(ClientError::Closed);
                        return false;
                    }
                }
            }
        }
    }
}
