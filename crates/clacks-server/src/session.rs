//! One connection's protocol state and the execution of its commands.
//!
//! A batch of lines is executed under one lock of the shared state, in order; every reply is
//! pushed to the connection's own outbox in command order. Errors become protocol replies only
//! in [`Session::error`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, Reply, Request};
use clacks_store::number::{format_float, numify};
use clacks_store::{same_value, Cleaned, Entry};
use tokio::time::Instant;

use crate::hub::{ConnId, Peer, Perms, Shared, State, SERVER_INFO};
use crate::outbox::{CloseReason, Outbox};
use crate::stats::Stats;

/// Whether the connection goes on after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// All input was executed; read more.
    Continue,
    /// The connection ends.
    Stop,
    /// Input was left where it is (see [`Session::hold`]): read no more until it has run.
    Hold,
}

/// Why input waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// It does not (or only waited for output to go out): run it.
    No,
    /// Our master holds the sync lock.
    SyncLock,
    /// A failed login waits for its answer; nothing runs any more.
    LoginFailed,
}

/// Values at least this large are queued by reference, not copied into a reply buffer.
const BY_REFERENCE: usize = 64 * 1024;

/// Per-connection log budget: `logratelimit` lines per window, the rest counted and summarised.
struct LogBudget {
    window_start: Instant,
    used: usize,
    suppressed: u64,
}

/// The window of [`LogBudget`].
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Text a client makes the server log is cut to this many bytes.
const LOGGED_TEXT_MAX: usize = 256;

/// The errors a client can be sent.
enum ClientError<'a> {
    PermissionDenied,
    UnknownCommand(&'a Bytes),
    /// A write to this key was refused by the memory limit (`<maxmemory>`).
    OutOfMemory(&'a Bytes),
}

/// What kind of interclacks link a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// A client.
    None,
    /// A slave that connected to us and sent `OVERHEAD I 1`.
    Inbound,
    /// Our connection to our master.
    ToMaster,
}

/// Per-connection protocol state, owned by the connection's reader.
pub(crate) struct Session {
    shared: Arc<Shared>,
    pub(crate) id: ConnId,
    pub(crate) cid: Bytes,
    pub(crate) outbox: Arc<Outbox>,
    perms: Option<Perms>,
    time_offset: f64,
    /// Last PING (monotonic); `None` after NOPING.
    last_ping: Option<Instant>,
    connected_at: Instant,
    link: Link,
    /// When the next keepalive PING goes out on an interclacks link.
    next_link_ping: Instant,
    /// A line taken while our master held the sync lock, run when it is released.
    held: Option<Bytes>,
    /// After a failed login: when it is answered and the connection closed.
    login_failed_at: Option<Instant>,
    /// Whether this connection counts as not logged in yet (`maxunauthenticated`).
    unauthenticated: bool,
    log: LogBudget,
    /// During our master's sync: the records it sent, so we answer only with what differs.
    sync_seen: Option<HashMap<Bytes, Entry>>,
    /// Permission refusals so far (a refused command is never replicated).
    denials: u64,
    /// Replies of the current batch. The connection writes them after the batch, behind what the
    /// outbox holds; anything this session queues itself moves them into the outbox first.
    pub(crate) out: BytesMut,
    /// Whether this connection is a monitor (its own DEBUG lines follow its replies).
    monitoring: bool,
}

impl Session {
    /// Registers a new connection and queues the greeting, or, for the link to our master,
    /// the interclacks client hello (`CLACKS … in interclacks client mode`, login, `OVERHEAD I 1`).
    pub(crate) fn open(shared: Arc<Shared>, peer: &Peer) -> Session {
        let config = &shared.config;
        let outbox = Arc::new(Outbox::new(config.max_out_buffer));
        // The greeting (or our interclacks hello) is the first thing the connection writes.
        let mut hello = BytesMut::new();
        let link = if matches!(peer, Peer::Master { .. }) {
            Request::Clacks {
                info: Bytes::from(format!("{SERVER_INFO} in interclacks client mode")),
            }
            .encode(&mut hello);
            Request::Overhead {
                flags: Flags::AUTH,
                value: shared.main_token.clone(),
            }
            .encode(&mut hello);
            Request::Overhead {
                flags: Flags::INTERCLACKS,
                value: Bytes::from_static(b"1"),
            }
            .encode(&mut hello);
            outbox.set_cap(config.interclacks_max_out_buffer);
            Link::ToMaster
        } else {
            hello.extend_from_slice(&shared.greeting);
            Link::None
        };
        let unauthenticated = link == Link::None;
        if unauthenticated {
            let stats = &shared.stats;
            let before = stats
                .connections_unauthenticated
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if before >= config.max_unauthenticated as u64 {
                Stats::bump(&stats.unauthenticated_rejected);
                shared.warn_throttled(|| {
                    tracing::warn!(
                        limit = config.max_unauthenticated,
                        "connection refused: too many connections have not logged in yet (maxunauthenticated)"
                    );
                });
                hello.clear();
                Reply::Overhead {
                    flags: Flags::ERROR,
                    value: Bytes::from_static(b"too_many_unauthenticated_connections"),
                }
                .encode(&mut hello);
                outbox.close(CloseReason::Kicked);
            }
        }
        let (id, cid) = {
            let mut state = shared.lock();
            let (id, cid) = state.register(&shared, peer, outbox.clone());
            if link == Link::ToMaster {
                state.set_link(id, true);
            }
            (id, cid)
        };
        let now = Instant::now();
        let ping_every = link_ping_interval(&shared);
        Session {
            shared,
            id,
            cid,
            outbox,
            perms: None,
            time_offset: 0.0,
            last_ping: Some(now),
            connected_at: now,
            link,
            next_link_ping: now + ping_every,
            held: None,
            login_failed_at: None,
            unauthenticated,
            log: LogBudget {
                window_start: now,
                used: 0,
                suppressed: 0,
            },
            sync_seen: None,
            denials: 0,
            out: hello,
            monitoring: false,
        }
    }

    /// Removes the connection from the shared state (releasing the sync lock if our master
    /// goes away in the middle of a sync).
    pub(crate) fn close(&mut self, note: Option<&str>) {
        self.set_authenticated();
        self.log_summary();
        let mut state = self.shared.lock();
        if self.link == Link::ToMaster && state.sync_locked {
            tracing::warn!("link to master lost during sync; releasing the sync lock");
            state.debug(
                b"DISCONNECTED",
                format!("{} (Unlocking interclacks mid-sync)", self.cid_str()).as_bytes(),
            );
            state.set_sync_lock(&self.shared, false);
        }
        state.unregister(self.id, note);
    }

    /// When this connection times out if nothing happens: the auth deadline before login, the
    /// ping deadline after (none after NOPING; at once for an interclacks link after NOPING).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let config = &self.shared.config;
        if self.login_failed_at.is_some() {
            return self.login_failed_at;
        }
        match (self.perms, self.link) {
            (None, _) => Some(self.connected_at + config.auth_timeout),
            (Some(_), Link::None) => self.last_ping.map(|t| t + config.ping_timeout),
            (Some(_), _) => Some(
                self.last_ping
                    .map_or_else(Instant::now, |t| t + config.interclacks_ping_timeout),
            ),
        }
    }

    /// When the next keepalive PING is due (interclacks links only).
    pub(crate) fn link_ping_due(&self) -> Option<Instant> {
        (self.link != Link::None).then_some(self.next_link_ping)
    }

    /// Sends the interclacks keepalive PING.
    pub(crate) fn send_link_ping(&mut self) {
        self.outbox.push(Reply::Ping.to_bytes());
        self.next_link_ping = Instant::now() + link_ping_interval(&self.shared);
        let now = self.shared.now();
        if let Some(entry) = self.shared.lock().conn_mut(self.id) {
            entry.lastinterclacksping = now;
        }
    }

    /// Why input that was left alone waits.
    pub(crate) fn hold(&self) -> Hold {
        if self.login_failed_at.is_some() {
            Hold::LoginFailed
        } else if self.held.is_some() {
            Hold::SyncLock
        } else {
            Hold::No
        }
    }

    /// The longest line accepted now: small before login.
    pub(crate) fn line_limit(&self) -> usize {
        let config = &self.shared.config;
        if self.perms.is_some() || self.link == Link::ToMaster {
            config.max_line_length
        } else {
            config.auth_max_line_length.min(config.max_line_length)
        }
    }

    /// Whether this connection is an interclacks link.
    pub(crate) fn is_link(&self) -> bool {
        self.link != Link::None
    }

    /// Whether the replies waiting to go out reached the connection's cap: then no more of its
    /// requests run until they are written (backpressure).
    fn output_full(&self) -> bool {
        self.out.len() + self.outbox.queued() >= self.outbox.cap()
    }

    /// No longer counts as a connection that has not logged in.
    fn set_authenticated(&mut self) {
        if std::mem::take(&mut self.unauthenticated) {
            self.shared
                .stats
                .connections_unauthenticated
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether this connection may cause another log line now (`logratelimit` per minute);
    /// otherwise it is counted, and summarised when the window ends or the connection closes.
    fn may_log(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.log.window_start) >= LOG_WINDOW {
            self.log_summary();
            self.log.window_start = now;
            self.log.used = 0;
        }
        if self.log.used < self.shared.config.log_rate_limit {
            self.log.used += 1;
            return true;
        }
        self.log.suppressed += 1;
        Stats::bump(&self.shared.stats.log_lines_suppressed);
        false
    }

    /// Logs how many lines [`Session::may_log`] held back, if any.
    fn log_summary(&mut self) {
        let suppressed = std::mem::take(&mut self.log.suppressed);
        if suppressed > 0 {
            tracing::warn!(
                cid = %self.cid_str(),
                suppressed,
                limit_per_minute = self.shared.config.log_rate_limit,
                "log lines caused by this connection were suppressed (logratelimit)"
            );
        }
    }

    /// The deadline passed: close (silently before login, with `TIMEOUT` after); after a failed
    /// login, answer it and close.
    pub(crate) fn timed_out(&mut self) {
        let stats = &self.shared.stats;
        if self.login_failed_at.is_some() {
            self.flush_out();
            self.outbox.push_last(
                Reply::Overhead {
                    flags: Flags::AUTH_FAILED,
                    value: Bytes::from_static(b"Login failed!"),
                }
                .to_bytes(),
                CloseReason::AuthFailed,
            );
        } else if self.perms.is_none() {
            Stats::bump(&stats.auth_timeouts);
            tracing::info!(cid = %self.cid_str(), "authentication timeout");
            self.outbox.close(CloseReason::Timeout);
        } else {
            Stats::bump(&stats.ping_timeouts);
            tracing::info!(cid = %self.cid_str(), "ping timeout");
            self.outbox
                .push_last(Reply::Timeout.to_bytes(), CloseReason::Timeout);
        }
    }

    /// The CID as text, for logs.
    pub(crate) fn cid_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.cid)
    }

    fn reply(&mut self, reply: Reply) {
        reply.encode(&mut self.out);
    }

    /// Queues a reply with a large value without copying the value: the replies so far and the
    /// reply's head, then the value itself (shared with the cache), then its line end.
    fn reply_by_reference(&mut self, reply: Reply) {
        if let Some(value) = reply.encode_head(&mut self.out) {
            self.flush_out();
            // Our own reply: counted, but never a reason to cut us as a slow consumer.
            self.outbox.push_force(value.clone());
            self.out.extend_from_slice(clacks_proto::CRLF);
        }
    }

    /// Queues the replies gathered so far; done before anything else reaches this outbox.
    pub(crate) fn flush_out(&mut self) {
        if !self.out.is_empty() {
            self.outbox.push(self.out.split().freeze());
        }
    }

    /// Closes this connection after its replies.
    fn close_self(&mut self, reason: CloseReason) {
        self.flush_out();
        self.outbox.close(reason);
    }

    fn error(&mut self, err: ClientError<'_>) {
        let stats = &self.shared.stats;
        let value = match err {
            ClientError::PermissionDenied => {
                Stats::bump(&stats.permission_denied);
                self.denials += 1;
                Bytes::from_static(b"permission_denied")
            }
            ClientError::UnknownCommand(line) => {
                Stats::bump(&stats.unknown_commands);
                let mut v = b"unknown_command ".to_vec();
                v.extend_from_slice(line);
                Bytes::from(v)
            }
            ClientError::OutOfMemory(key) => {
                // Counted by the cache (`writes_refused_memory`). A refused write is not
                // replicated; an interclacks peer gets no error line (it would only log it).
                self.denials += 1;
                tracing::debug!(cid = %self.cid_str(), key = %String::from_utf8_lossy(key), "write refused: out of memory");
                if self.link != Link::None {
                    return;
                }
                let mut v = b"out_of_memory ".to_vec();
                v.extend_from_slice(key);
                Bytes::from(v)
            }
        };
        self.reply(Reply::Overhead {
            flags: Flags::ERROR,
            value,
        });
    }

    /// Checks a permission; on refusal replies `permission_denied`.
    fn allowed(&mut self, check: impl Fn(&Perms) -> bool) -> bool {
        let ok = self.perms.as_ref().is_some_and(check);
        if !ok {
            self.error(ClientError::PermissionDenied);
        }
        ok
    }

    /// Executes complete lines in order, taking each from `next`, which decodes it with the
    /// line limit it is given. The rest of the input is left where it is (and [`Flow::Hold`]
    /// returned) while our master holds the sync lock, while a failed login waits for its
    /// answer, and once the output reached the connection's cap. After a command that ends the
    /// connection the rest is left alone.
    pub(crate) fn handle(&mut self, mut next: impl FnMut(usize) -> Option<Bytes>) -> Flow {
        if self.login_failed_at.is_some() {
            return Flow::Hold;
        }
        let Some(mut line) = self.held.take().or_else(|| next(self.line_limit())) else {
            return Flow::Continue;
        };
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if state.sync_locked && self.link != Link::ToMaster {
            self.held = Some(line);
            return Flow::Hold;
        }
        // One clock reading per batch: its commands arrived together.
        let now = self.shared.now();
        loop {
            let flow = self.handle_line(&mut state, line, now);
            if flow != Flow::Continue {
                return flow;
            }
            if self.output_full() {
                Stats::bump(&self.shared.stats.input_paused);
                return Flow::Hold;
            }
            match next(self.line_limit()) {
                Some(l) => line = l,
                None => return Flow::Continue,
            }
        }
    }

    fn handle_line(&mut self, state: &mut State, line: Bytes, now: f64) -> Flow {
        let request = Request::parse(line.clone());
        if let Request::Clacks { info } = &request {
            let info: Vec<u8> = info
                .iter()
                .map(|&b| if b == b';' { b'_' } else { b })
                .collect();
            if let Some(entry) = state.conn_mut(self.id) {
                entry.clientinfo = Bytes::from(info);
            }
            return Flow::Continue;
        }
        if let Request::Overhead { flags, value } = &request {
            if flags.contains(Flags::AUTH) {
                return self.login(value);
            }
        }
        if self.perms.is_none() {
            return Flow::Continue;
        }
        Stats::bump(&self.shared.stats.commands);
        let logged = !matches!(&request, Request::Overhead { flags, .. } if flags.contains(Flags::NO_LOGGING));
        // A refused command is never replicated; KEYSYNC replicates itself when it changed
        // something.
        let replicated = request.is_replicated() && !matches!(request, Request::KeySync { .. });
        let denials = self.denials;
        // Monitors see the line after its own replies, as the reference queues it.
        let flow = self.execute(state, request, &line, now);
        if replicated && self.denials == denials {
            replicate(state, self.id, &line);
        }
        if logged {
            if self.monitoring {
                self.flush_out();
            }
            state.debug(&self.cid, &line);
        }
        flow
    }

    fn login(&mut self, token: &Bytes) -> Flow {
        match self.shared.authenticate(token) {
            Some(perms) => {
                self.perms = Some(perms);
                self.set_authenticated();
                self.reply(Reply::Overhead {
                    flags: Flags::AUTH_OK,
                    value: Bytes::from_static(b"Welcome!"),
                });
                Flow::Continue
            }
            None => {
                // The answer and the close wait `authfaildelay`, so guessing costs the guesser
                // time (and a connection slot under `maxunauthenticated`), not the server.
                Stats::bump(&self.shared.stats.auth_failures);
                if self.may_log() {
                    tracing::info!(cid = %self.cid_str(), "login failed");
                }
                self.perms = None;
                self.login_failed_at = Some(Instant::now() + self.shared.config.auth_fail_delay);
                Flow::Hold
            }
        }
    }

    fn execute(&mut self, state: &mut State, request: Request, line: &Bytes, now: f64) -> Flow {
        match request {
            Request::Overhead { flags, value } => return self.overhead(state, flags, value, now),
            Request::OverheadWithoutValue | Request::Clacks { .. } => {}
            Request::Notify { name } => {
                if self.allowed(|p| p.write) {
                    let line = Reply::Notify { name: name.clone() }.to_bytes();
                    state.fanout(self.id, &name, &line);
                }
            }
            Request::Set { name, value } => {
                if self.allowed(|p| p.write) {
                    let line = Reply::Set {
                        name: name.clone(),
                        value,
                    }
                    .to_bytes();
                    state.fanout(self.id, &name, &line);
                }
            }
            Request::SetAndStore { name, value } => {
                if self.allowed(|p| p.write) {
                    let out = Reply::Set {
                        name: name.clone(),
                        value: value.clone(),
                    }
                    .to_bytes();
                    // Refused for memory: neither stored nor signalled (nor replicated).
                    match state.cache.store(name.clone(), value, now) {
                        Ok(()) => state.fanout(self.id, &name, &out),
                        Err(_) => self.error(ClientError::OutOfMemory(&name)),
                    }
                }
            }
            Request::KeySync {
                cachetime,
                accesstime,
                mode,
                key,
                value,
            } => {
                if self.allowed(|p| p.interclacks) {
                    self.ping();
                    let ctime = numify(&cachetime).to_f64() + self.time_offset;
                    let atime = numify(&accesstime).to_f64();
                    let atime = if atime != 0.0 {
                        atime + self.time_offset
                    } else {
                        0.0
                    };
                    let deleted = &mode[..] == b"D";
                    let data = if deleted { Bytes::new() } else { value };
                    let remote = Entry::new(data, ctime, atime, deleted);
                    if let Some(seen) = self.sync_seen.as_mut() {
                        seen.insert(Bytes::copy_from_slice(&key), remote.clone());
                    }
                    match state.cache.merge(key.clone(), remote, now) {
                        Ok(true) => replicate(state, self.id, line),
                        Ok(false) => {}
                        Err(_) => self.error(ClientError::OutOfMemory(&key)),
                    }
                }
            }
            Request::Store { key, value } => {
                if self.allowed(|p| p.write) && state.cache.store(key.clone(), value, now).is_err()
                {
                    self.error(ClientError::OutOfMemory(&key));
                }
            }
            Request::Retrieve { key } => {
                if self.allowed(|p| p.read) {
                    match state.cache.retrieve(&key, now) {
                        Some(value) if value.len() >= BY_REFERENCE => {
                            self.reply_by_reference(Reply::Retrieved { key, value });
                        }
                        Some(value) => self.reply(Reply::Retrieved { key, value }),
                        None => self.reply(Reply::NotRetrieved { key }),
                    }
                }
            }
            Request::Remove { key } => {
                if self.allowed(|p| p.write) && state.cache.remove(key.clone(), now).is_err() {
                    self.error(ClientError::OutOfMemory(&key));
                }
            }
            Request::Increment { key, step } => {
                if self.allowed(|p| p.write)
                    && (state.cache)
                        .add(key.clone(), step.as_deref(), false, now)
                        .is_err()
                {
                    self.error(ClientError::OutOfMemory(&key));
                }
            }
            Request::Decrement { key, step } => {
                if self.allowed(|p| p.write)
                    && (state.cache)
                        .add(key.clone(), step.as_deref(), true, now)
                        .is_err()
                {
                    self.error(ClientError::OutOfMemory(&key));
                }
            }
            Request::KeyList => {
                if self.allowed(|p| p.read) {
                    Reply::KeyListStart.encode(&mut self.out);
                    for key in state.cache.keys_sorted(now) {
                        Reply::Key { key }.encode(&mut self.out);
                    }
                    Reply::KeyListEnd.encode(&mut self.out);
                }
            }
            Request::ClearCache => {
                if self.allowed(|p| p.manage) {
                    state.cache.clear();
                }
            }
            Request::Listen { name } => {
                if self.allowed(|p| p.read) {
                    state.subscribe(self.id, name);
                }
            }
            Request::Unlisten { name } => {
                if self.allowed(|p| p.read) {
                    state.unsubscribe(self.id, &name);
                }
            }
            Request::Monitor | Request::Unmonitor => {
                if self.allowed(|p| p.manage) {
                    self.monitoring = matches!(request, Request::Monitor);
                    state.set_monitor(self.id, self.monitoring);
                }
            }
            Request::Quit => {
                self.close_self(CloseReason::Quit);
                return Flow::Stop;
            }
            Request::Ping => {
                self.ping();
                if let Some(entry) = state.conn_mut(self.id) {
                    entry.lastping = now;
                }
            }
            Request::NoPing => {
                self.last_ping = None;
                if let Some(entry) = state.conn_mut(self.id) {
                    entry.lastping = 0.0;
                }
            }
            Request::ClientList => {
                if self.allowed(|p| p.manage) {
                    Reply::ClientListStart.encode(&mut self.out);
                    for entry in state.client_entries() {
                        Reply::Client(Box::new(entry)).encode(&mut self.out);
                    }
                    Reply::ClientListEnd.encode(&mut self.out);
                }
            }
            Request::ClientDisconnect { cid } => {
                if self.allowed(|p| p.manage) {
                    self.flush_out();
                    if let Some(target) = state.find_cid(&cid).and_then(|id| state.conn(id)) {
                        if self.may_log() {
                            tracing::info!(by = %self.cid_str(), target = %String::from_utf8_lossy(&cid), "client disconnected by request");
                        }
                        target
                            .outbox
                            .push_last(Reply::Quit.to_bytes(), CloseReason::Kicked);
                    }
                    if self.outbox.is_closing() {
                        return Flow::Stop;
                    }
                }
            }
            Request::Flush { id } => self.reply(Reply::Flushed { id }),
            Request::Stats => {
                if self.allowed(|p| p.manage) {
                    let out = &mut self.out;
                    Reply::StatsStart.encode(out);
                    let mut stats = self.shared.stats.snapshot();
                    stats.push(("cache_entries", state.cache.len() as u64));
                    let memory = state.cache.memory();
                    stats.extend([
                        ("memory_used", memory.used as u64),
                        ("memory_limit", memory.limit as u64),
                        ("evictions", memory.evictions),
                        ("writes_refused_memory", memory.refused),
                    ]);
                    for (name, value) in stats {
                        Reply::Stat {
                            name: Bytes::from_static(name.as_bytes()),
                            value: Bytes::from(value.to_string()),
                        }
                        .encode(out);
                    }
                    Reply::StatsEnd.encode(out);
                }
            }
            Request::Timeout if self.link != Link::None && self.allowed(|p| p.interclacks) => {
                tracing::warn!(cid = %self.cid_str(), "peer says our link timed out; dropping it");
                self.close_self(CloseReason::Timeout);
                return Flow::Stop;
            }
            Request::Timeout | Request::Unknown { .. } => {
                self.error(ClientError::UnknownCommand(line));
            }
        }
        Flow::Continue
    }

    fn ping(&mut self) {
        self.last_ping = Some(Instant::now());
    }

    /// `OVERHEAD <flags> <value>` after login (A was handled before), in the reference's order:
    /// T, C, S, E, then G re-emission.
    fn overhead(&mut self, state: &mut State, flags: Flags, value: Bytes, now: f64) -> Flow {
        if flags.contains(Flags::TIMESTAMP) {
            self.time_offset = now - numify(&value).to_f64();
            return Flow::Continue;
        }
        // Forwarded control flags act on every server of the tree with interclacks rights: only
        // the main user may send them. Refused, the line has no effect here or anywhere.
        if flags.contains(Flags::FORWARD)
            && flags.intersects(Flags::CONTROL)
            && !self.allowed(|p| p.interclacks)
        {
            return Flow::Continue;
        }
        let truthy = !(value.is_empty() || &value[..] == b"0");
        if flags.contains(Flags::LOCK) && self.link == Link::ToMaster {
            if self.allowed(|p| p.interclacks) {
                self.sync_lock(state, truthy);
            }
            return Flow::Continue;
        }
        if flags.contains(Flags::CLOSE_ALL) && truthy {
            if !self.allowed(|p| p.manage) {
                return Flow::Continue;
            }
            tracing::info!(by = %self.cid_str(), "closing all connections (OVERHEAD C)");
            self.flush_out();
            if flags.contains(Flags::FORWARD) {
                let close_tree = Bytes::from_static(b"\r\nOVERHEAD GC 1\r\n");
                for id in state.links().to_vec() {
                    state.deliver(id, &close_tree);
                }
            }
            state.kick_all();
            return Flow::Stop;
        }
        if flags.contains(Flags::SHUTDOWN) {
            if !self.allowed(|p| p.manage) {
                return Flow::Continue;
            }
            let secs = numify(&value).to_f64();
            if secs > 0.0 {
                tracing::info!(by = %self.cid_str(), secs, "shutdown requested (OVERHEAD S)");
                let token = self.shared.shutdown.clone();
                let delay = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    token.cancel();
                });
            }
        }
        if flags.contains(Flags::ERROR) && self.may_log() {
            let shown = &value[..value.len().min(LOGGED_TEXT_MAX)];
            tracing::warn!(
                cid = %self.cid_str(),
                message = %String::from_utf8_lossy(shown),
                bytes = value.len(),
                "error message from peer"
            );
        }
        if flags.contains(Flags::INTERCLACKS) {
            if !self.allowed(|p| p.interclacks) {
                return Flow::Continue;
            }
            if truthy {
                self.become_link(state);
            } else {
                state.set_link(self.id, false);
                self.link = Link::None;
                self.outbox.set_cap(self.shared.config.max_out_buffer);
            }
        }
        if flags.contains(Flags::FORWARD) {
            if !self.allowed(|p| p.write) {
                return Flow::Continue;
            }
            let mut out_flags = flags.without(Flags::RETURN_TO_SENDER);
            if flags.contains(Flags::INTERCLACKS) {
                out_flags = out_flags.without(Flags::FORWARD);
            }
            let line = Reply::Overhead {
                flags: out_flags,
                value,
            }
            .to_bytes();
            let except = (!flags.contains(Flags::RETURN_TO_SENDER)).then_some(self.id);
            self.flush_out();
            state.broadcast(except, &line);
        }
        Flow::Continue
    }
}

impl Session {
    /// `OVERHEAD I 1` from a slave: it becomes an interclacks link and gets our whole cache,
    /// framed by our master-mode greeting, login, clock and sync lock.
    fn become_link(&mut self, state: &mut State) {
        tracing::info!(cid = %self.cid_str(), entries = state.cache.len(), "slave connected; sending full sync");
        state.set_link(self.id, true);
        self.link = Link::Inbound;
        self.outbox
            .set_cap(self.shared.config.interclacks_max_out_buffer);
        self.ping();
        self.next_link_ping = Instant::now() + link_ping_interval(&self.shared);
        let mut out = BytesMut::new();
        Reply::Clacks {
            info: Bytes::from(format!("{SERVER_INFO} in interclacks master mode")),
        }
        .encode(&mut out);
        let overhead = |flags: Flags, value: Bytes, out: &mut BytesMut| {
            Reply::Overhead { flags, value }.encode(out)
        };
        overhead(
            Flags::INFORMAL,
            Bytes::from_static(b"Authentication required"),
            &mut out,
        );
        overhead(Flags::AUTH, self.shared.main_token.clone(), &mut out);
        overhead(Flags::LOCK, Bytes::from_static(b"1"), &mut out);
        overhead(
            Flags::TIMESTAMP,
            Bytes::from(format_float(self.shared.now())),
            &mut out,
        );
        let now = self.shared.now();
        let cache = &state.cache;
        keysync_lines(
            cache.iter().filter(|(_, e)| cache.current(e, now)),
            &mut out,
        );
        overhead(Flags::LOCK, Bytes::from_static(b"0"), &mut out);
        Reply::Ping.encode(&mut out);
        self.flush_out();
        self.outbox.push_force(out.freeze());
    }

    /// `OVERHEAD L 1` / `L 0` from our master. On release we send our clock and the records the
    /// master does not have in the same version (unknown to it, or newer here with a different
    /// value), so an unchanged slave sends nothing back.
    fn sync_lock(&mut self, state: &mut State, on: bool) {
        if on {
            tracing::info!("sync lock on: master is sending its cache");
            state.set_sync_lock(&self.shared, true);
            self.sync_seen = Some(HashMap::new());
            return;
        }
        state.set_sync_lock(&self.shared, false);
        let seen = self.sync_seen.take().unwrap_or_default();
        let mut out = BytesMut::new();
        Reply::Overhead {
            flags: Flags::TIMESTAMP,
            value: Bytes::from(format_float(self.shared.now())),
        }
        .encode(&mut out);
        let now = self.shared.now();
        let cache = &state.cache;
        let ours = cache
            .iter()
            .filter(|(_, local)| cache.current(local, now))
            .filter(|(key, local)| match seen.get(*key) {
                None => true,
                Some(remote) => local.cachetime > remote.cachetime && !same_value(local, remote),
            });
        let sent = keysync_lines(ours, &mut out);
        tracing::info!(
            received = seen.len(),
            sent,
            "sync lock off: sent our newer records"
        );
        self.flush_out();
        self.outbox.push_force(out.freeze());
    }
}

/// PING interval on interclacks links: a third of the link timeout (at least one second).
fn link_ping_interval(shared: &Shared) -> Duration {
    (shared.config.interclacks_ping_timeout / 3).max(Duration::from_secs(1))
}

/// Relays a command line to every interclacks link except the one it came from.
fn replicate(state: &State, origin: ConnId, line: &Bytes) {
    if state.links().iter().all(|l| *l == origin) {
        return;
    }
    let mut out = BytesMut::with_capacity(line.len() + 2);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    state.forward(origin, &out.freeze());
}

/// Encodes one `KEYSYNC` per record, keys in byte order; returns how many.
fn keysync_lines<'a>(
    entries: impl Iterator<Item = (&'a Bytes, &'a Entry)>,
    out: &mut BytesMut,
) -> usize {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, e) in &entries {
        let (accesstime, mode, value) = if e.deleted {
            (
                Bytes::from_static(b"0"),
                b"D",
                Bytes::from_static(b"REMOVED"),
            )
        } else {
            (
                Bytes::from(format_float(e.accesstime)),
                b"U",
                e.data.clone(),
            )
        };
        Request::KeySync {
            cachetime: Bytes::from(format_float(e.cachetime)),
            accesstime,
            mode: Bytes::from_static(mode),
            key: (*key).clone(),
            value,
        }
        .encode(out);
    }
    entries.len()
}

/// Runs one cache cleanup pass and tells monitors what was purged.
pub(crate) fn cleanup(shared: &Shared) {
    let now = shared.now();
    let mut state = shared.lock();
    let cleaned = state.cache.cleanup(
        now,
        shared.config.deleted_cache_time.as_secs_f64(),
        shared.config.stale_cache_time.as_secs_f64(),
    );
    for c in cleaned {
        let text = match c {
            Cleaned::Deleted(k) => [&b"CLEANDELETED="[..], &k].concat(),
            Cleaned::Stale(k) => [&b"CLEANSTALE="[..], &k].concat(),
            Cleaned::Expired(k) => [&b"CLEANEXPIRED="[..], &k].concat(),
        };
        state.debug(b"SERVERCACHE", &text);
    }
}
