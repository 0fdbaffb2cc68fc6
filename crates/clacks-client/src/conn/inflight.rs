//! Commands on the wire: those being written and those waiting for an answer, the receives
//! waiting for a message, and the FLUSH barrier that settles fire-and-forget commands.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use clacks_proto::{Reply, Request};

use super::{Command, Expect, Responder, Response, Task};

/// Unanswered fire-and-forget commands tracked before a FLUSH barrier is sent to settle them.
const BARRIER_AFTER: usize = 512;

/// A command written to the server, waiting for its answer (or settled by a later one).
pub(super) struct Pending {
    pub(super) cmd: Command,
    pub(super) lines: Vec<Reply>,
    pub(super) started: bool,
}

/// Commands on the wire.
#[derive(Default)]
pub(super) struct InFlight {
    /// Commands in the write buffer, each with the offset where it ends.
    pub(super) writing: VecDeque<(u64, Command)>,
    /// Bytes written so far.
    pub(super) written: u64,
    /// Written commands that wait for an answer or may still draw an error.
    pub(super) pending: VecDeque<Pending>,
    /// The receive on the wire for each queue: at most one per queue, so that the answers
    /// (`QMESSAGE`/`QEMPTY <queue>`, which name no receive) are never mistaken (see
    /// `conn::queue`).
    pub(super) recvs: HashMap<Bytes, Slot>,
    /// Receives that wait in the client while another one on their queue is on the wire, in
    /// the order they were made.
    pub(super) backlog: HashMap<Bytes, VecDeque<Command>>,
}

/// A receive on the wire, from the moment it is put in the write buffer until its answer.
pub(super) struct Slot {
    /// Its barrier's id (see [`super::RecvSpec`]).
    pub(super) barrier: Bytes,
    pub(super) label: String,
    pub(super) leased: bool,
    /// Its call, moved here once the command is written.
    pub(super) done: Option<Responder>,
    /// Its `FLUSHED` came without a refusal: the server has it.
    pub(super) confirmed: bool,
    /// `QCANCEL` was sent for it.
    pub(super) cancelled: bool,
}

impl Slot {
    /// Whether its call gave up (timed out or was dropped).
    pub(super) fn abandoned(&self) -> bool {
        self.done.as_ref().is_some_and(|d| d.is_closed())
    }
}

impl InFlight {
    /// Makes the command being written pending once its first bytes are out, so that an answer
    /// the server gives before reading all of it (a refusal) finds it. A fire-and-forget
    /// command completes only once written, so it moves only when `any` (the connection is
    /// over).
    pub(super) fn promote_started(&mut self, any: bool) {
        let started = self.writing.front().is_some_and(|(end, c)| {
            *end - (c.line.len() as u64) < self.written && (any || c.expect != Expect::Written)
        });
        if started {
            if let Some((_, cmd)) = self.writing.pop_front() {
                self.push_pending(cmd);
            }
        }
    }

    /// A command now waits for its answer; a receive's call moves to its slot, where its
    /// answer finds it.
    pub(super) fn push_pending(&mut self, mut cmd: Command) {
        if let Expect::Recv(spec) = &cmd.expect {
            if let Some(slot) = self.recvs.get_mut(&spec.queue) {
                if slot.barrier == spec.barrier {
                    slot.done = cmd.done.take();
                }
            }
        }
        self.pending.push_back(Pending {
            cmd,
            lines: Vec::new(),
            started: false,
        });
    }
}

impl Task {
    /// A command was written: done if it waits for nothing, else it waits for its answer.
    pub(super) fn written(&mut self, mut cmd: Command, flight: &mut InFlight) {
        if cmd.expect == Expect::Written {
            if let Some(done) = cmd.done.take() {
                let _ = done.send(Ok(Response::Done));
            }
            if !cmd.can_fail {
                return;
            }
        }
        flight.push_pending(cmd);
        let pending = &flight.pending;
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
}
