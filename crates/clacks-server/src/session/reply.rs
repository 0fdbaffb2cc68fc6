//! What a session sends back: the reply buffer, error replies (made in one place,
//! [`Session::error`]), permission checks, and the per-connection log budget.

use std::time::Duration;

use bytes::Bytes;
use clacks_proto::{Flags, Reply};
use tokio::time::Instant;

use super::Session;
use crate::auth::Need;
use crate::outbox::CloseReason;
use crate::state::Shared;
use crate::stats::Stats;

/// Values at least this large are queued by reference, not copied into a reply buffer.
const BY_REFERENCE: usize = 64 * 1024;

/// The window of [`LogBudget`].
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Per-connection log budget: `logratelimit` lines per window, the rest counted and summarised.
pub(super) struct LogBudget {
    window_start: Instant,
    used: usize,
    suppressed: u64,
}

impl LogBudget {
    pub(super) fn new(now: Instant) -> LogBudget {
        LogBudget {
            window_start: now,
            used: 0,
            suppressed: 0,
        }
    }
}

/// The errors a client can be sent.
pub(crate) enum ClientError<'a> {
    PermissionDenied,
    UnknownCommand(&'a Bytes),
    /// A write to this key was refused by the memory limit (`<maxmemory>`).
    OutOfMemory(&'a Bytes),
    /// Any other refusal: an error token and what it is about (a queue name and, for some, an
    /// id), as `OVERHEAD E <token> <about>…`.
    Refused(&'static str, &'a [&'a [u8]]),
}

impl ClientError<'_> {
    /// The value of its `OVERHEAD E` line: the token, then what it is about.
    pub(crate) fn text(&self) -> Bytes {
        let (token, about): (&[u8], &[&[u8]]) = match self {
            ClientError::PermissionDenied => (b"permission_denied", &[]),
            ClientError::UnknownCommand(line) => (b"unknown_command", &[&line[..]]),
            ClientError::OutOfMemory(key) => (b"out_of_memory", &[&key[..]]),
            ClientError::Refused(token, about) => (token.as_bytes(), about),
        };
        let mut v = token.to_vec();
        for word in about {
            v.push(b' ');
            v.extend_from_slice(word);
        }
        Bytes::from(v)
    }
}

/// Counts a connection that has not logged in yet; `false` (logged, throttled) when there are
/// already `maxunauthenticated` of them.
pub(super) fn admit_unauthenticated(shared: &Shared) -> bool {
    let stats = &shared.stats;
    let limit = shared.config.max_unauthenticated;
    let before = stats
        .connections_unauthenticated
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if before < limit as u64 {
        return true;
    }
    Stats::bump(&stats.unauthenticated_rejected);
    shared.warn_throttled(|| {
        tracing::warn!(
            limit,
            "connection refused: too many connections have not logged in yet (maxunauthenticated)"
        );
    });
    false
}

impl Session {
    pub(crate) fn reply(&mut self, reply: Reply) {
        reply.encode(&mut self.out);
    }

    /// Queues a reply, without copying a large value: the replies so far and the reply's head,
    /// then the value itself (shared with the cache), then its line end.
    pub(crate) fn reply_value(&mut self, reply: Reply) {
        if !matches!(&reply, Reply::Retrieved { value, .. } if value.len() >= BY_REFERENCE) {
            return self.reply(reply);
        }
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
    pub(crate) fn close_self(&mut self, reason: CloseReason) {
        self.flush_out();
        self.outbox.close(reason);
    }

    /// Sends an error reply (and counts it).
    pub(crate) fn error(&mut self, err: ClientError<'_>) {
        let stats = &self.shared.stats;
        match err {
            ClientError::PermissionDenied => {
                Stats::bump(&stats.permission_denied);
                self.denials += 1;
            }
            ClientError::UnknownCommand(_) => Stats::bump(&stats.unknown_commands),
            ClientError::OutOfMemory(key) => {
                // Counted by the cache (`writes_refused_memory`). A refused write is not
                // replicated; an interclacks peer gets no error line (it would only log it).
                self.denials += 1;
                tracing::debug!(cid = %self.cid_str(), key = %String::from_utf8_lossy(key), "write refused: out of memory");
                if self.link.is_link() {
                    return;
                }
            }
            ClientError::Refused(..) => {}
        }
        self.reply(Reply::Overhead {
            flags: Flags::ERROR,
            value: err.text(),
        });
    }

    /// Checks a permission; on refusal replies `permission_denied`.
    pub(crate) fn allowed(&mut self, need: Need) -> bool {
        let ok = self.perms.is_some_and(|p| p.grants(need));
        if !ok {
            self.error(ClientError::PermissionDenied);
        }
        ok
    }

    /// Whether this connection may cause another log line now (`logratelimit` per minute);
    /// otherwise it is counted, and summarised when the window ends or the connection closes.
    pub(crate) fn may_log(&mut self) -> bool {
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
    pub(super) fn log_summary(&mut self) {
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
}
