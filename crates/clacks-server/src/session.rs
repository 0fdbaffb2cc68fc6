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
    Continue,
    Stop,
}

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
    /// Lines that arrived while our master held the sync lock, run when it is released.
    deferred: Vec<Bytes>,
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
        let outbox = Arc::new(Outbox::new(shared.config.max_out_buffer));
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
            Link::ToMaster
        } else {
            hello.extend_from_slice(&shared.greeting);
            Link::None
        };
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
            deferred: Vec::new(),
            sync_seen: None,
            denials: 0,
            out: hello,
            monitoring: false,
        }
    }

    /// Removes the connection from the shared state (releasing the sync lock if our master
    /// goes away in the middle of a sync).
    pub(crate) fn close(&self, note: Option<&str>) {
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

    /// Whether lines wait for the sync lock to be released.
    pub(crate) fn waiting(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// The deadline passed: close (silently before login, with `TIMEOUT` after).
    pub(crate) fn timed_out(&self) {
        let stats = &self.shared.stats;
        if self.perms.is_none() {
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

    /// Executes a batch of complete lines in order. While our master holds the sync lock, lines
    /// of other connections wait (reading goes on) and run, in order, once it is released.
    /// After a command that ends the connection the rest of `lines` is left alone.
    pub(crate) fn handle(&mut self, lines: impl Iterator<Item = Bytes>) -> Flow {
        let mut lines = lines.peekable();
        if lines.peek().is_none() && self.deferred.is_empty() {
            return Flow::Continue;
        }
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if state.sync_locked && self.link != Link::ToMaster {
            self.deferred.extend(lines);
            return Flow::Continue;
        }
        let waited = std::mem::take(&mut self.deferred);
        // One clock reading per batch: its commands arrived together.
        let now = self.shared.now();
        for line in waited.into_iter().chain(lines) {
            if self.handle_line(&mut state, line, now) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
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
                self.reply(Reply::Overhead {
                    flags: Flags::AUTH_OK,
                    value: Bytes::from_static(b"Welcome!"),
                });
                Flow::Continue
            }
            None => {
                Stats::bump(&self.shared.stats.auth_failures);
                tracing::info!(cid = %self.cid_str(), "login failed");
                self.perms = None;
                self.flush_out();
                self.outbox.push_last(
                    Reply::Overhead {
                        flags: Flags::AUTH_FAILED,
                        value: Bytes::from_static(b"Login failed!"),
                    }
                    .to_bytes(),
                    CloseReason::AuthFailed,
                );
                Flow::Stop
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
                    let reply = match state.cache.retrieve(&key, now) {
                        Some(value) => Reply::Retrieved { key, value },
                        None => Reply::NotRetrieved { key },
                    };
                    self.reply(reply);
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
                        tracing::info!(by = %self.cid_str(), target = %String::from_utf8_lossy(&cid), "client disconnected by request");
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
            _ => self.error(ClientError::UnknownCommand(line)),
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
        if flags.contains(Flags::ERROR) {
            tracing::warn!(cid = %self.cid_str(), message = %String::from_utf8_lossy(&value), "error message from peer");
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
