//! One connection's protocol state: login, deadlines, the order of execution, and what a batch
//! of lines does. The commands themselves live in [`crate::cmd`]; the reply buffer, error replies
//! and the per-connection log budget in [`reply`].
//!
//! A batch of lines is executed under one lock of the shared state, in order; every reply is
//! pushed to the connection's own outbox in command order.

mod reply;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use clacks_proto::{Flags, Reply, Request};
use tokio::time::Instant;

pub(crate) use reply::ClientError;
use reply::LogBudget;

use crate::auth::Perms;
use crate::interclacks::{self, Link, LinkSide};
use crate::journal::Journal;
use crate::mutation::{publish, Mutation};
use crate::outbox::{CloseReason, Outbox};
use crate::state::{ConnId, Peer, Shared, State};
use crate::stats::{Latency, Stats};

/// The largest time (seconds, either way) a peer's record may carry: about the year 33658.
pub(crate) const MAX_PEER_TIME: f64 = 1e12;

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

/// Per-connection protocol state, owned by the connection's reader.
pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: ConnId,
    pub(crate) cid: Bytes,
    pub(crate) outbox: Arc<Outbox>,
    perms: Option<Perms>,
    /// The peer's clock minus ours (`OVERHEAD T`), applied to the times of its `KEYSYNC`s.
    pub(crate) time_offset: f64,
    /// Last PING (monotonic); `None` after NOPING.
    pub(crate) last_ping: Option<Instant>,
    connected_at: Instant,
    pub(crate) link: LinkSide,
    /// A line taken while our master held the sync lock, run when it is released.
    held: Option<Bytes>,
    /// After a failed login: when it is answered and the connection closed.
    login_failed_at: Option<Instant>,
    /// Whether this connection counts as not logged in yet (`maxunauthenticated`).
    unauthenticated: bool,
    log: LogBudget,
    /// Refusals so far (a refused command is never replicated).
    denials: u64,
    /// Replies of the current batch. The connection writes them after the batch, behind what the
    /// outbox holds; anything this session queues itself moves them into the outbox first.
    pub(crate) out: BytesMut,
    /// Whether this connection is a monitor (its own DEBUG lines follow its replies).
    pub(crate) monitoring: bool,
    /// With `<journal><fsync>always`: the journal position of this connection's last change
    /// that may not be synced yet (0: none). The connection writes nothing until it is.
    pub(crate) journal_at: u64,
    /// Batches run, wrapping (one in [`Latency::SAMPLE`] is timed).
    batches: u8,
}

impl Session {
    /// Registers a new connection and queues the greeting, or, for the link to our master,
    /// the interclacks client hello.
    pub(crate) fn open(shared: Arc<Shared>, peer: &Peer) -> Session {
        let config = &shared.config;
        let outbox = Arc::new(Outbox::new(config.max_out_buffer));
        // The greeting (or our interclacks hello) is the first thing the connection writes.
        let (link, mut hello) = if matches!(peer, Peer::Master { .. }) {
            outbox.set_cap(config.interclacks_max_out_buffer);
            (Link::ToMaster, interclacks::master::hello(&shared))
        } else {
            (Link::None, BytesMut::from(&shared.greeting[..]))
        };
        let unauthenticated = link == Link::None;
        if unauthenticated && !reply::admit_unauthenticated(&shared) {
            hello.clear();
            Reply::Overhead {
                flags: Flags::ERROR,
                value: Bytes::from_static(b"too_many_unauthenticated_connections"),
            }
            .encode(&mut hello);
            outbox.close(CloseReason::Kicked);
        }
        let (id, cid) = {
            let mut state = shared.lock();
            let (id, cid) = state.register(&shared, peer, outbox.clone());
            if link == Link::ToMaster {
                // Shown as a link at once, but it forwards nothing until our master has synced
                // us (see `interclacks::sync::lock_from_master`).
                state.conns.set_interclacks(id, true);
            }
            (id, cid)
        };
        let now = Instant::now();
        Session {
            link: LinkSide::new(link, config),
            shared,
            id,
            cid,
            outbox,
            perms: None,
            time_offset: 0.0,
            last_ping: Some(now),
            connected_at: now,
            held: None,
            login_failed_at: None,
            unauthenticated,
            log: LogBudget::new(now),
            denials: 0,
            out: hello,
            monitoring: false,
            journal_at: 0,
            batches: 0,
        }
    }

    /// Removes the connection from the shared state (releasing the sync lock if our master
    /// goes away in the middle of a sync).
    pub(crate) fn close(&mut self, note: Option<&str>) {
        self.set_authenticated();
        self.log_summary();
        let mut state = self.shared.lock();
        if self.link.kind == Link::ToMaster && state.links.sync_locked() {
            tracing::warn!("link to master lost during sync; releasing the sync lock");
            state.conns.debug(
                b"DISCONNECTED",
                format!("{} (Unlocking interclacks mid-sync)", self.cid_str()).as_bytes(),
            );
            state.links.set_sync_lock(&self.shared, false);
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
        match (self.perms, self.link.kind) {
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
        self.link.is_link().then_some(self.link.next_ping)
    }

    /// Sends the interclacks keepalive PING.
    pub(crate) fn send_link_ping(&mut self) {
        self.outbox.push(Reply::Ping.to_bytes());
        self.link.next_ping = Instant::now() + interclacks::ping_interval(&self.shared.config);
        let now = self.shared.now();
        if let Some(entry) = self.shared.lock().conns.get_mut(self.id) {
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
        if self.perms.is_some() || self.link.kind == Link::ToMaster {
            config.max_line_length
        } else {
            config.auth_max_line_length.min(config.max_line_length)
        }
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

    /// A time the peer sent (a number in its clock), in ours, on the tick grid; `0` (no time)
    /// stays `0`. `None` for a time no clock shows (not finite, or beyond [`MAX_PEER_TIME`]).
    pub(crate) fn peer_time(&self, text: &[u8]) -> Option<f64> {
        let t = clacks_store::number::numify(text).to_f64();
        if t == 0.0 {
            Some(0.0)
        } else if t.is_finite() && t.abs() <= MAX_PEER_TIME {
            Some(clacks_store::on_grid(t + self.time_offset))
        } else {
            None
        }
    }

    /// Seconds since the connection opened.
    pub(crate) fn connected_for(&self) -> f64 {
        self.connected_at.elapsed().as_secs_f64()
    }

    /// A sign of life from the peer (PING, or any KEYSYNC on a link).
    pub(crate) fn ping(&mut self) {
        self.last_ping = Some(Instant::now());
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
        let Some(line) = self.held.take().or_else(|| next(self.line_limit())) else {
            return Flow::Continue;
        };
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if state.links.sync_locked() && self.link.kind != Link::ToMaster {
            self.held = Some(line);
            return Flow::Hold;
        }
        let before = state.journal.as_ref().map(Journal::appended);
        self.batches = self.batches.wrapping_add(1);
        let timed = (self.batches % Latency::SAMPLE == 0).then(std::time::Instant::now);
        let flow = self.handle_batch(&mut state, line, next);
        if let Some(started) = timed {
            self.shared.latency.record(started.elapsed());
        }
        if let (Some(journal), Some(before)) = (&state.journal, before) {
            let after = journal.appended();
            if after != before && journal.must_wait() {
                self.journal_at = after;
            }
        }
        flow
    }

    /// Runs `line` and the lines after it, under the lock.
    fn handle_batch(
        &mut self,
        state: &mut State,
        mut line: Bytes,
        mut next: impl FnMut(usize) -> Option<Bytes>,
    ) -> Flow {
        // One clock reading per batch: its commands arrived together.
        let now = self.shared.now();
        loop {
            let flow = self.handle_line(state, line, now);
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
            // A link's kind never changes once it is in place.
            if !self.link.settled {
                self.link.origin_times = interclacks::says(info, interclacks::ORIGIN_TIMES);
                self.link.queues = interclacks::says(info, interclacks::routes::QUEUES);
            }
            let info: Vec<u8> = info
                .iter()
                .map(|&b| if b == b';' { b'_' } else { b })
                .collect();
            if let Some(entry) = state.conns.get_mut(self.id) {
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
        let forward = interclacks::forward(&request) == interclacks::Forward::Line;
        let denials = self.denials;
        let flow = crate::cmd::execute(self, state, request, &line, now);
        if forward && self.denials == denials {
            publish(state, self.id, Mutation::Command(&line));
        }
        // Monitors see the line after its own replies, as the reference queues it.
        if logged {
            if self.monitoring {
                self.flush_out();
            }
            state.conns.debug(&self.cid, &line);
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
}
