//! Serving one connection: restoring its state, writing queued commands, reading the server's
//! lines, and settling every command at most once when it ends.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::Request;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::inflight::InFlight;
use super::reply::{refusal, refused};
use super::{Command, Conn, Control, Exit, Expect, Task};
use crate::ClientError;

/// Bytes buffered for writing before new commands wait.
const HIGH_WATER: usize = 256 * 1024;
/// How long a connection whose write failed is still read for the server's last lines.
const LAST_WORDS: Duration = Duration::from_millis(200);

impl Task {
    /// Serves one connection until it is lost or the client closes.
    pub(super) async fn serve(&mut self, mut conn: Conn) -> Exit {
        self.epoch += 1;
        self.epoch_shared
            .store(self.epoch, std::sync::atomic::Ordering::Relaxed);
        // Restore LISTENs, monitor mode, NOPING and registrations before anything queued.
        let names: BTreeSet<&String> = self.listens.iter().chain(self.subs.keys()).collect();
        let mut restore: Vec<Command> = names
            .into_iter()
            .map(|name| {
                Command::internal(
                    Request::Listen {
                        name: Bytes::from(name.clone()),
                    },
                    Expect::Written,
                )
            })
            .collect();
        if self.monitor {
            restore.push(Command::internal(Request::Monitor, Expect::Written));
        }
        if !self.ping {
            restore.push(Command::internal(Request::NoPing, Expect::Written));
        }
        restore.extend(self.restore_registrations());
        for cmd in restore.into_iter().rev() {
            self.queue.push_front(cmd);
        }

        let mut wbuf = BytesMut::new();
        let mut appended: u64 = 0;
        let mut needs_flush = false;
        let mut flight = InFlight::default();
        let mut ping = tokio::time::interval(self.opts.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;

        let exit = loop {
            while wbuf.len() < HIGH_WATER {
                let Some(cmd) = self.queue.pop_front() else {
                    break;
                };
                let Some(cmd) = self.admit(cmd, &mut flight) else {
                    continue;
                };
                wbuf.extend_from_slice(&cmd.line);
                appended += cmd.line.len() as u64;
                flight.writing.push_back((appended, cmd));
            }
            if self.closing.is_some()
                && wbuf.is_empty()
                && !needs_flush
                && flight.writing.is_empty()
            {
                let _ = conn.writer.shutdown().await;
                break Exit::Closed;
            }
            let accepting = wbuf.len() < HIGH_WATER && self.closing.is_none();
            tokio::select! {
                ctl = self.rx.recv(), if accepting => match ctl {
                    Some(Control::Cmd(cmd)) => {
                        self.apply(&cmd.change);
                        self.queue.push_back(cmd);
                    }
                    Some(Control::Close(done)) => self.close(Some(done)),
                    Some(Control::Subscribe { name, id, feed }) => self.subscribe(name, id, feed),
                    Some(Control::Unsubscribe { name, id }) => self.unsubscribe(name, id),
                    Some(Control::Reap { queue }) => self.reap(&queue, Some(&mut flight)),
                    Some(Control::Deregister { key }) => self.deregister(key),
                    None => self.close(None),
                },
                res = write_some(&mut conn.writer, &mut wbuf), if !wbuf.is_empty() || needs_flush => {
                    match res {
                        Ok(Some(n)) => {
                            flight.written += n as u64;
                            needs_flush = true;
                            let written = flight.written;
                            while flight.writing.front().is_some_and(|(end, _)| *end <= written) {
                                let Some((_, cmd)) = flight.writing.pop_front() else { break };
                                self.written(cmd, &mut flight);
                            }
                        }
                        Ok(None) => needs_flush = false,
                        Err(e) => {
                            // The server may have said why before it closed (a line too long):
                            // the command being written is the one it answers.
                            flight.promote_started(true);
                            self.last_words(&mut conn, &mut flight).await;
                            break Exit::Lost(e.to_string());
                        }
                    }
                }
                read = conn.reader.read_buf(&mut conn.rbuf) => {
                    match read {
                        Ok(0) => break Exit::Lost("connection closed by the server".into()),
                        Err(e) => break Exit::Lost(e.to_string()),
                        Ok(_) => {}
                    }
                    if let Some(reason) = self.incoming_lines(&mut conn, &mut flight) {
                        break Exit::Lost(reason);
                    }
                }
                _ = ping.tick() => {
                    if self.ping {
                        self.queue.push_back(Command::internal(Request::Ping, Expect::Written));
                    }
                }
            }
        };

        // Registrations went with the connection (they are made again on the next one).
        self.registrations_lost();
        // At most once: nothing is sent twice. A command none of which was written goes out
        // on the next connection; one written (partly or wholly) and not answered may or may
        // not have run, and its call says so. Restored state (LISTENs, monitor mode) is
        // rebuilt by the next connection. Receives waiting in the server ended with the
        // connection (leased messages went back to their queues).
        let error = |command: String| match &exit {
            Exit::Closed => ClientError::Closed,
            Exit::Lost(reason) => ClientError::OutcomeUnknown {
                command,
                reason: reason.clone(),
            },
        };
        let lost = |cmd: Command| {
            let err = error(cmd.label.clone());
            cmd.finish(Err(err));
        };
        let pending = std::mem::take(&mut flight.pending);
        for p in pending {
            // A confirmed write (or a receive) the server refused before the connection went:
            // known.
            match (refused(&p), &p.cmd.expect) {
                (Some(message), Expect::Recv(spec)) => {
                    Task::refused_recv(spec, &message, &mut flight);
                }
                (Some(message), _) => {
                    let err = refusal(&message, p.cmd.label.clone());
                    p.cmd.finish(Err(err));
                }
                (None, _) => lost(p.cmd),
            }
        }
        let waiting = Task::end_recvs(&mut flight, error);
        let InFlight {
            writing, written, ..
        } = flight;
        let mut unsent = Vec::new();
        for (end, cmd) in writing {
            if end - cmd.line.len() as u64 >= written {
                unsent.push(cmd);
            } else {
                lost(cmd);
            }
        }
        unsent.extend(waiting);
        for cmd in unsent.into_iter().rev().filter(|c| c.done.is_some()) {
            self.queue.push_front(cmd);
        }
        if let Exit::Closed = exit {
            self.fail_queue(ClientError::Closed);
            if let Some(Some(done)) = self.closing.take() {
                let _ = done.send(());
            }
        }
        exit
    }

    /// Handles every complete line read. Returns a reason when the connection ends.
    fn incoming_lines(&mut self, conn: &mut Conn, flight: &mut InFlight) -> Option<String> {
        loop {
            match conn.decoder.decode(&mut conn.rbuf) {
                Ok(Some(line)) => {
                    if let Some(reason) = self.incoming(line, flight) {
                        return Some(reason);
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(e.to_string()),
            }
        }
    }

    /// After a failed write: reads (briefly) what the server sent before it closed.
    async fn last_words(&mut self, conn: &mut Conn, flight: &mut InFlight) {
        let read_all =
            async { while matches!(conn.reader.read_buf(&mut conn.rbuf).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(LAST_WORDS, read_all).await;
        let _ = self.incoming_lines(conn, flight);
    }

    fn close(&mut self, done: Option<oneshot::Sender<()>>) {
        self.queue
            .push_back(Command::internal(Request::Quit, Expect::Written));
        self.closing = Some(done);
    }
}

/// Writes some of `wbuf`, or flushes when it is empty. `Some(n)` bytes written, `None` flushed.
async fn write_some<W: AsyncWrite + Unpin>(
    writer: &mut W,
    wbuf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if wbuf.is_empty() {
        writer.flush().await?;
        return Ok(None);
    }
    let n = writer.write_buf(wbuf).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(Some(n))
}
