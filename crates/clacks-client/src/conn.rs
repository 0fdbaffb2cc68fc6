//! The connection task: owns the socket, writes queued commands, matches replies to requests in
//! order, turns everything else into events, keeps the connection alive and reconnects.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clacks_proto::{ClientEntry, Flags, LineDecoder, Reply, Request};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::event::Feed;
use crate::transport::{self, Stream};
use crate::{ClientError, ConnectOptions, Event};

/// Longest line accepted from a server.
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Bytes buffered for writing before new commands wait.
const HIGH_WATER: usize = 256 * 1024;
/// How long a connection whose write failed is still read for the server's last lines.
const LAST_WORDS: Duration = Duration::from_millis(200);
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
    /// `FLUSHED <id>` after a write (a confirmed write): the server's refusal, if any, comes
    /// before it.
    Confirm(Bytes),
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
    /// Signals of `name` go to `feed` from now on (the handle sends the LISTEN).
    Subscribe {
        name: String,
        id: u64,
        feed: Feed,
    },
    /// A [`crate::Subscription`] was dropped.
    Unsubscribe {
        name: String,
        id: u64,
    },
    Close(oneshot::Sender<()>),
}

/// A command written to the server, waiting for its answer (or settled by a later one).
struct Pending {
    cmd: Command,
    lines: Vec<Reply>,
    started: bool,
}

/// Commands on the wire.
#[derive(Default)]
struct InFlight {
    /// Commands in the write buffer, each with the offset where it ends.
    writing: VecDeque<(u64, Command)>,
    /// Bytes written so far.
    written: u64,
    /// Written commands that wait for an answer or may still draw an error.
    pending: VecDeque<Pending>,
}

impl InFlight {
    /// Makes the command being written pending once its first bytes are out, so that an answer
    /// the server gives before reading all of it (a refusal) finds it. A fire-and-forget
    /// command completes only once written, so it moves only when `any` (the connection is
    /// over).
    fn promote_started(&mut self, any: bool) {
        let started = self.writing.front().is_some_and(|(end, c)| {
            *end - (c.line.len() as u64) < self.written && (any || c.expect != Expect::Written)
        });
        if started {
            if let Some((_, cmd)) = self.writing.pop_front() {
                self.pending.push_back(Pending {
                    cmd,
                    lines: Vec::new(),
                    started: false,
                });
            }
        }
    }
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
    events: Feed,
    server_info: Arc<Mutex<Option<String>>>,
    connected: Arc<AtomicBool>,
    listens: BTreeSet<String>,
    /// Subscriptions by name, each with its id.
    subs: HashMap<String, Vec<(u64, Feed)>>,
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
        events: Feed,
        server_info: Arc<Mutex<Option<String>>>,
        connected: Arc<AtomicBool>,
    ) -> Task {
        Task {
            opts,
            rx,
            events,
            server_info,
            connected,
            listens: BTreeSet::new(),
            subs: HashMap::new(),
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
        let (mut attempt, mut lost): (u32, bool) = (0, false);
        loop {
            if let Some(c) = conn.take() {
                if lost {
                    self.emit(Event::Reconnected);
                }
                let up = Instant::now();
                self.connected.store(true, Ordering::Relaxed);
                let exit = self.serve(c).await;
                self.connected.store(false, Ordering::Relaxed);
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

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// A signal of `name`: to its subscriptions, else to the event stream.
    fn signal(&mut self, name: String, event: Event) {
        let Some(subs) = self.subs.get_mut(&name) else {
            self.emit(event);
            return;
        };
        subs.retain(|(_, feed)| !feed.is_closed());
        for (_, feed) in subs.iter() {
            feed.push(event.clone());
        }
        if subs.is_empty() {
            self.subs.remove(&name);
            self.unlisten_unused(name);
        }
    }

    /// A [`crate::Subscription`] was made (its handle sends the LISTEN).
    fn subscribe(&mut self, name: String, id: u64, feed: Feed) {
        self.subs.entry(name).or_default().push((id, feed));
    }

    /// A [`crate::Subscription`] was dropped.
    fn unsubscribe(&mut self, name: String, id: u64) {
        let Some(subs) = self.subs.get_mut(&name) else {
            return;
        };
        subs.retain(|(i, _)| *i != id);
        if subs.is_empty() {
            self.subs.remove(&name);
            self.unlisten_unused(name);
        }
    }

    /// Stops listening to `name` unless [`crate::Client::listen`] asked for it.
    fn unlisten_unused(&mut self, name: String) {
        if !self.listens.contains(&name) {
            let name = Bytes::from(name);
            let unlisten = Command::internal(Request::Unlisten { name }, Expect::Written);
            self.queue.push_back(unlisten);
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
                if cmd.done.as_ref().is_some_and(|d| d.is_closed()) {
                    // Its call timed out or was dropped: never sent later.
                    continue;
                }
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
                                self.written(cmd, &mut flight.pending);
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

        // At most once: nothing is sent twice. A command none of which was written goes out
        // on the next connection; one written (partly or wholly) and not answered may or may
        // not have run, and its call says so. Restored state (LISTENs, monitor mode) is
        // rebuilt by the next connection.
        let lost = |cmd: Command| {
            let err = match &exit {
                Exit::Closed => ClientError::Closed,
                Exit::Lost(reason) => ClientError::OutcomeUnknown {
                    command: cmd.label.clone(),
                    reason: reason.clone(),
                },
            };
            cmd.finish(Err(err));
        };
        let InFlight {
            writing,
            written,
            pending,
        } = flight;
        for p in pending {
            // A confirmed write the server refused before the connection went: known.
            match refused(&p) {
                Some(message) => {
                    let err = refusal(&message, p.cmd.label.clone());
                    p.cmd.finish(Err(err));
                }
                None => lost(p.cmd),
            }
        }
        let mut unsent = Vec::new();
        for (end, cmd) in writing {
            if end - cmd.line.len() as u64 >= written {
                unsent.push(cmd);
            } else {
                lost(cmd);
            }
        }
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
    fn incoming(&mut self, line: Bytes, flight: &mut InFlight) -> Option<String> {
        let reply = Reply::parse(line.clone());
        match &reply {
            Reply::Notify { name } => {
                let name = text(name);
                self.signal(name.clone(), Event::Notify { name });
            }
            Reply::Set { name, value } => {
                let name = text(name);
                let value = text(value);
                self.signal(name.clone(), Event::Set { name, value });
            }
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
                    self.error_line(text(value), reply.clone(), flight);
                } else if flags.contains(Flags::FORWARD) && flags.contains(Flags::INFORMAL) {
                    self.emit(Event::Informal(text(value)));
                } else if flags.contains(Flags::AUTH_FAILED) {
                    return Some("login failed".into());
                }
            }
            _ => self.answer(reply, &mut flight.pending),
        }
        None
    }

    /// `OVERHEAD E …`: belongs to the oldest command that can fail and is not settled yet (a
    /// confirmed write keeps it until its `FLUSHED`).
    fn error_line(&mut self, message: String, reply: Reply, flight: &mut InFlight) {
        let can_take = |p: &Pending| {
            // A confirmed write takes one refusal at most.
            let settled = matches!(p.cmd.expect, Expect::Confirm(_)) && !p.lines.is_empty();
            p.cmd.can_fail && !settled
        };
        // A refusal that comes while the command is still being written (a line too long).
        if !flight.pending.iter().any(can_take) {
            flight.promote_started(false);
        }
        let pending = &mut flight.pending;
        if let Some(front) = pending.front_mut() {
            if matches!(front.cmd.expect, Expect::Raw(_)) {
                front.lines.push(reply);
                return;
            }
        }
        let Some(idx) = pending.iter().position(can_take) else {
            self.emit(Event::ErrorMessage {
                message,
                command: None,
            });
            return;
        };
        if matches!(pending[idx].cmd.expect, Expect::Confirm(_)) {
            pending[idx].lines.push(reply);
            return;
        }
        let Some(p) = pending.remove(idx) else { return };
        if p.cmd.done.is_some() {
            let err = refusal(&message, p.cmd.label.clone());
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
            (Expect::Confirm(id), Reply::Flushed { id: got }) if *id == got => {
                if let Some(message) = refused(front) {
                    if let Some(p) = pending.pop_front() {
                        let err = refusal(&message, p.cmd.label.clone());
                        p.cmd.finish(Err(err));
                    }
                    return;
                }
                Response::Done
            }
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

/// What the server refused a confirmed write with, if it did.
fn refused(p: &Pending) -> Option<String> {
    if !matches!(p.cmd.expect, Expect::Confirm(_)) {
        return None;
    }
    p.lines.iter().find_map(|r| match r {
        Reply::Overhead { value, .. } => Some(text(value)),
        _ => None,
    })
}

/// The error for a command the server refused with `OVERHEAD E <message>`.
fn refusal(message: &str, command: String) -> ClientError {
    if message == "permission_denied" {
        ClientError::PermissionDenied(command)
    } else if message.starts_with("unknown_command") {
        ClientError::UnknownCommand(command)
    } else {
        ClientError::Refused {
            command,
            reason: message.to_string(),
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
