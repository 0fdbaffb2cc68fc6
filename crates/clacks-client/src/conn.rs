//! The connection task: owns the socket, writes queued commands, matches replies to requests in
//! order, turns everything else into events, keeps the connection alive and reconnects.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::{ClientEntry, Flags, LineDecoder, Reply, Request};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::transport::{self, Stream};
use crate::{ClientError, ConnectOptions, Event};

/// Longest line accepted from a server.
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Bytes buffered for writing before new commands wait.
const HIGH_WATER: usize = 256 * 1024;
/// Unanswered fire-and-forget commands tracked before a FLUSH barrier is sent to settle them.
const BARRIER_AFTER: usize = 512;

/// What a request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Nothing: done once written.
    Written,
    /// `RETRIEVED <key>=…` or `NOTRETRIEVED <key>`.
    Retrieve(Bytes),
    /// `KEYLISTSTART` … `KEYLISTEND`.
    KeyList,
    /// `CLIENTLISTSTART` … `CLIENTLISTEND`.
    ClientList,
    /// `STATSSTART` … `STATSEND`.
    Stats,
    /// `FLUSHED <id>`.
    Flushed(Bytes),
    /// Every line up to `FLUSHED <id>` (a raw command followed by a barrier).
    Raw(Bytes),
}

/// What a request got.
#[derive(Debug)]
pub(crate) enum Response {
    Done,
    Value(Option<Bytes>),
    Keys(Vec<Bytes>),
    Clients(Vec<ClientEntry>),
    Stats(Vec<(String, String)>),
    Lines(Vec<String>),
}

/// Connection state a command changes, restored after a reconnect.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    None,
    Listen(String),
    Unlisten(String),
    Monitor(bool),
    Ping(bool),
}

pub(crate) type Responder = oneshot::Sender<Result<Response, ClientError>>;

/// One command from a handle.
pub(crate) struct Command {
    pub(crate) line: Bytes,
    pub(crate) expect: Expect,
    /// For error messages: the command as the user would recognise it.
    pub(crate) label: String,
    /// Whether the server may answer it with `OVERHEAD E …`.
    pub(crate) can_fail: bool,
    pub(crate) change: Change,
    pub(crate) done: Option<Responder>,
}

impl Command {
    pub(crate) fn internal(request: Request, expect: Expect) -> Command {
        let mut line = BytesMut::new();
        request.encode(&mut line);
        Command {
            line: line.freeze(),
            expect,
            label: String::new(),
            can_fail: false,
            change: Change::None,
            done: None,
        }
    }

    fn finish(self, result: Result<Response, ClientError>) {
        if let Some(done) = self.done {
            let _ = done.send(result);
        }
    }
}

pub(crate) enum Control {
    Cmd(Command),
    Close(oneshot::Sender<()>),
}

/// A command written to the server, waiting for its answer (or settled by a later one).
struct Pending {
    cmd: Command,
    lines: Vec<Reply>,
    started: bool,
}

/// Why a connection ended.
enum Exit {
    Lost(String),
    Closed,
}

struct Conn {
    reader: ReadHalf<Box<dyn Stream>>,
    writer: WriteHalf<Box<dyn Stream>>,
    rbuf: BytesMut,
    decoder: LineDecoder,
}

pub(crate) struct Task {
    opts: ConnectOptions,
    rx: mpsc::Receiver<Control>,
    events: mpsc::Sender<Event>,
    lagged: u64,
    server_info: Arc<Mutex<Option<String>>>,
    listens: BTreeSet<String>,
    monitor: bool,
    ping: bool,
    queue: VecDeque<Command>,
    closing: Option<Option<oneshot::Sender<()>>>,
    barrier: u64,
}

impl Task {
    pub(crate) fn new(
        opts: ConnectOptions,
        rx: mpsc::Receiver<Control>,
        events: mpsc::Sender<Event>,
        server_info: Arc<Mutex<Option<String>>>,
    ) -> Task {
        Task {
            opts,
            rx,
            events,
            lagged: 0,
            server_info,
            listens: BTreeSet::new(),
            monitor: false,
            ping: true,
            queue: VecDeque::new(),
            closing: None,
            barrier: 0,
        }
    }

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
        let mut attempt: u32 = 0;
        loop {
            if let Some(c) = conn.take() {
                if attempt > 0 {
                    self.emit(Event::Reconnected);
                }
                attempt = 0;
                match self.serve(c).await {
                    Exit::Closed => return,
                    Exit::Lost(reason) => {
                        tracing::debug!(%reason, "connection lost");
                        self.emit(Event::Disconnected { reason });
                    }
                }
            }
            attempt = attempt.saturating_add(1);
            if !self.wait_offline(self.backoff(attempt)).await {
                return;
            }
            match self.connect().await {
                Ok(c) => conn = Some(c),
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

    fn emit(&mut self, event: Event) {
        use mpsc::error::TrySendError;
        if self.lagged > 0 {
            match self.events.try_send(Event::Lagged(self.lagged)) {
                Ok(()) => self.lagged = 0,
                Err(TrySendError::Full(_)) => {
                    self.lagged += 1;
                    return;
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
        if let Err(TrySendError::Full(_)) = self.events.try_send(event) {
            self.lagged += 1;
        }
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
        let io = |e: std::io::Error| ClientError::Io(e.to_string());
        writer.write_all(&hello).await.map_err(io)?;
        writer.flush().await.map_err(io)?;
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
                    if conn.reader.read_buf(&mut conn.rbuf).await.map_err(io)? == 0 {
                        return Err(ClientError::Io("connection closed by the server".into()));
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
                    None => {
                        self.fail_queue(ClientError::Closed);
                        return false;
                    }
                }
            }
        }
    }

    fn fail_queue(&mut self, err: ClientError) {
        for cmd in self.queue.drain(..) {
            cmd.finish(Err(err.clone()));
        }
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::None => {}
            Change::Listen(name) => {
                self.listens.insert(name.clone());
            }
            Change::Unlisten(name) => {
                self.listens.remove(name);
            }
            Change::Monitor(on) => self.monitor = *on,
            Change::Ping(on) => self.ping = *on,
        }
    }

    /// Serves one connection until it is lost or the client closes.
    async fn serve(&mut self, mut conn: Conn) -> Exit {
        // Restore LISTENs, monitor mode and NOPING before anything queued.
        let mut restore: Vec<Command> = self
            .listens
            .iter()
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
        for cmd in restore.into_iter().rev() {
            self.queue.push_front(cmd);
        }

        let mut wbuf = BytesMut::new();
        let mut appended: u64 = 0;
        let mut written: u64 = 0;
        let mut needs_flush = false;
        let mut writing: VecDeque<(u64, Command)> = VecDeque::new();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut ping = tokio::time::interval(self.opts.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;

        let exit = loop {
            while wbuf.len() < HIGH_WATER {
                let Some(cmd) = self.queue.pop_front() else {
                    break;
                };
                wbuf.extend_from_slice(&cmd.line);
                appended += cmd.line.len() as u64;
                writing.push_back((appended, cmd));
            }
            if self.closing.is_some() && wbuf.is_empty() && !needs_flush && writing.is_empty() {
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
                    None => self.close(None),
                },
                res = write_some(&mut conn.writer, &mut wbuf), if !wbuf.is_empty() || needs_flush => {
                    match res {
                        Ok(Some(n)) => {
                            written += n as u64;
                            needs_flush = true;
                            while writing.front().is_some_and(|(end, _)| *end <= written) {
                                let Some((_, cmd)) = writing.pop_front() else { break };
                                self.written(cmd, &mut pending);
                            }
                        }
                        Ok(None) => needs_flush = false,
                        Err(e) => break Exit::Lost(e.to_string()),
                    }
                }
                read = conn.reader.read_buf(&mut conn.rbuf) => {
                    match read {
                        Ok(0) => break Exit::Lost("connection closed by the server".into()),
                        Err(e) => break Exit::Lost(e.to_string()),
                        Ok(_) => {}
                    }
                    let mut lost = None;
                    loop {
                        match conn.decoder.decode(&mut conn.rbuf) {
                            Ok(Some(line)) => {
                                if let Some(reason) = self.incoming(line, &mut pending) {
                                    lost = Some(reason);
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                lost = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    if let Some(reason) = lost {
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

        // Requests that may not have reached the server, or whose answer was lost, are sent
        // again after reconnecting (all of them are reads or barriers, safe to repeat); what
        // was only being written goes first in its original order.
        let mut again: Vec<Command> = pending
            .into_iter()
            .map(|p| p.cmd)
            .filter(|c| c.done.is_some() && c.expect != Expect::Written)
            .collect();
        again.extend(
            writing
                .into_iter()
                .map(|(_, c)| c)
                .filter(|c| c.done.is_some()),
        );
        for cmd in again.into_iter().rev() {
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

    fn close(&mut self, done: Option<oneshot::Sender<()>>) {
        self.queue
            .push_back(Command::internal(Request::Quit, Expect::Written));
        self.closing = Some(done);
    }

    /// A command was written: done if it waits for nothing, else it waits for its answer.
    fn written(&mut self, mut cmd: Command, pending: &mut VecDeque<Pending>) {
        if cmd.expect == Expect::Written {
            if let Some(done) = cmd.done.take() {
                let _ = done.send(Ok(Response::Done));
            }
            if !cmd.can_fail {
                return;
            }
        }
        pending.push_back(Pending {
            cmd,
            lines: Vec::new(),
            started: false,
        });
        let unsettled = pending
            .iter()
            .filter(|p| p.cmd.expect == Expect::Written)
            .count();
        let barrier_pending = pending
            .iter()
            .any(|p| p.cmd.done.is_none() && matches!(p.cmd.expect, Expect::Flushed(_)));
        if unsettled >= BARRIER_AFTER && !barrier_pending {
            self.barrier += 1;
            let id = Bytes::from(format!("__clacks_barrier_{}", self.barrier));
            self.queue.push_back(Command::internal(
                Request::Flush { id: id.clone() },
                Expect::Flushed(id),
            ));
        }
    }

    /// Handles one line from the server. Returns a reason when the server ends the connection.
    fn incoming(&mut self, line: Bytes, pending: &mut VecDeque<Pending>) -> Option<String> {
        let reply = Reply::parse(line.clone());
        match &reply {
            Reply::Notify { name } => self.emit(Event::Notify { name: text(name) }),
            Reply::Set { name, value } => self.emit(Event::Set {
                name: text(name),
                value: text(value),
            }),
            Reply::Debug { source, text: t } => self.emit(Event::Debug {
                source: text(source),
                text: text(t),
            }),
            Reply::Clacks { info } => {
                let info = text(info);
                if let Ok(mut slot) = self.server_info.lock() {
                    *slot = Some(info.clone());
                }
                self.emit(Event::ServerInfo(info));
            }
            Reply::Quit => return Some("quit".into()),
            Reply::Timeout => return Some("timeout".into()),
            Reply::Ping | Reply::Nop => {}
            Reply::Overhead { flags, value } => {
                if flags.contains(Flags::ERROR) {
                    self.error_line(text(value), reply.clone(), pending);
                } else if flags.contains(Flags::FORWARD) && flags.contains(Flags::INFORMAL) {
                    self.emit(Event::Informal(text(value)));
                } else if flags.contains(Flags::AUTH_FAILED) {
                    return Some("login failed".into());
                }
            }
            _ => self.answer(reply, pending),
        }
        None
    }

    /// `OVERHEAD E …`: belongs to the oldest command that can fail and is not settled yet.
    fn error_line(&mut self, message: String, reply: Reply, pending: &mut VecDeque<Pending>) {
        if let Some(front) = pending.front_mut() {
            if matches!(front.cmd.expect, Expect::Raw(_)) {
                front.lines.push(reply);
                return;
            }
        }
        let Some(idx) = pending.iter().position(|p| p.cmd.can_fail) else {
            self.emit(Event::ErrorMessage {
                message,
                command: None,
            });
            return;
        };
        let Some(p) = pending.remove(idx) else { return };
        if p.cmd.done.is_some() {
            let err = if message == "permission_denied" {
                ClientError::PermissionDenied(p.cmd.label.clone())
            } else {
                ClientError::UnknownCommand(p.cmd.label.clone())
            };
            p.cmd.finish(Err(err));
        } else {
            self.emit(Event::ErrorMessage {
                message,
                command: Some(p.cmd.label),
            });
        }
    }

    /// A reply line: settles the fire-and-forget commands before the request it answers.
    fn answer(&mut self, reply: Reply, pending: &mut VecDeque<Pending>) {
        while pending
            .front()
            .is_some_and(|p| p.cmd.expect == Expect::Written)
        {
            pending.pop_front();
        }
        let Some(front) = pending.front_mut() else {
            tracing::debug!(?reply, "reply without a request");
            return;
        };
        let response = match (&front.cmd.expect, reply) {
            (Expect::Retrieve(key), Reply::Retrieved { key: k, value }) if *key == k => {
                Response::Value(Some(value))
            }
            (Expect::Retrieve(key), Reply::NotRetrieved { key: k }) if *key == k => {
                Response::Value(None)
            }
            (Expect::Flushed(id), Reply::Flushed { id: got }) if *id == got => Response::Done,
            (Expect::Raw(id), Reply::Flushed { id: got }) if *id == got => Response::Lines(
                front
                    .lines
                    .drain(..)
                    .map(|r| {
                        text(&r.to_bytes())
                            .trim_end_matches(['\r', '\n'])
                            .trim_start_matches(['\r', '\n'])
                            .to_string()
                    })
                    .collect(),
            ),
            (Expect::Raw(_), other) => {
                front.lines.push(other);
                return;
            }
            (Expect::KeyList, Reply::KeyListStart)
            | (Expect::ClientList, Reply::ClientListStart)
            | (Expect::Stats, Reply::StatsStart) => {
                front.started = true;
                return;
            }
            (Expect::KeyList, r @ Reply::Key { .. })
            | (Expect::ClientList, r @ Reply::Client(_))
            | (Expect::Stats, r @ Reply::Stat { .. })
                if front.started =>
            {
                front.lines.push(r);
                return;
            }
            (Expect::KeyList, Reply::KeyListEnd) => Response::Keys(
                front
                    .lines
                    .drain(..)
                    .filter_map(|r| match r {
                        Reply::Key { key } => Some(key),
                        _ => None,
                    })
                    .collect(),
            ),
            (Expect::ClientList, Reply::ClientListEnd) => Response::Clients(
                front
                    .lines
                    .drain(..)
                    .filter_map(|r| match r {
                        Reply::Client(c) => Some(*c),
                        _ => None,
                    })
                    .collect(),
            ),
            (Expect::Stats, Reply::StatsEnd) => Response::Stats(
                front
                    .lines
                    .drain(..)
                    .filter_map(|r| match r {
                        Reply::Stat { name, value } => Some((text(&name), text(&value))),
                        _ => None,
                    })
                    .collect(),
            ),
            (expect, other) => {
                tracing::warn!(?expect, reply = ?other, "reply does not match the oldest request");
                return;
            }
        };
        if let Some(p) = pending.pop_front() {
            p.cmd.finish(Ok(response));
        }
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
