//! Work-queue receives on the wire.
//!
//! The answers to receives, `QMESSAGE <queue> <id>=<value>` and `QEMPTY <queue>`, name a queue
//! but not the receive they answer, and come whenever the server has them: possibly after the
//! answers to later commands. A connection's receives on one queue are served in the order
//! they arrived, but they do not *end* in that order: a timeout ends a wait when its time is up
//! (a short wait sent after a long one ends first), and `QCANCEL` ends all of the connection's
//! waits on the queue at once. So the client keeps at most one receive per queue on the wire
//! ([`InFlight::recvs`]); further receives on that queue wait in the client
//! ([`InFlight::backlog`]) and go out, in order, when the one before them is answered. Every
//! `QMESSAGE`/`QEMPTY` of a queue then belongs to its one receive on the wire.
//!
//! A receive is `QRECV` followed by a `FLUSH` barrier, as a confirmed write is: a refusal
//! (`bad_name`, `too_many_waits`, …) comes before the `FLUSHED` and is the call's error; after
//! the `FLUSHED` the receive waits in the server and can draw no refusal, so it cannot take the
//! refusal of a later command.
//!
//! A call that gives up (times out, or its future is dropped) tells the task (`Control::Reap`):
//! a receive still in the client is dropped (never sent later); one on the wire is ended with
//! `QCANCEL <queue>` (which only ends our one receive on that queue), and what it gets is not
//! lost: a leased message is given back at once with `QNACK`, an unleased one (handed out before
//! the `QCANCEL` arrived: it is off the queue) becomes [`Event::QueueMessage`].
//!
//! When the connection is lost, the receives on the wire fail (the server ended them with the
//! connection, and gave leased messages back); receives not sent yet go out on the next one.

use bytes::{Bytes, BytesMut};
use clacks_proto::{Reply, Request};
use tokio::time::Instant;

use super::inflight::{InFlight, Slot};
use super::reply::refusal;
use super::{Change, Command, Delivery, Expect, RecvSpec, Response, Task};
use crate::{ClientError, Event};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `QCANCEL <queue>` as it is written.
fn cancel_line(queue: &Bytes) -> Bytes {
    let mut line = BytesMut::new();
    Request::QCancel {
        queue: queue.clone(),
    }
    .encode(&mut line);
    line.freeze()
}

impl Task {
    /// Whether `cmd` goes on the wire now: a command whose call gave up never does; one bound
    /// to an earlier connection fails unsent; a receive waits in the client while another one
    /// on its queue is on the wire, and one whose time ran out in the client ends empty.
    pub(super) fn admit(&mut self, mut cmd: Command, flight: &mut InFlight) -> Option<Command> {
        let queue = match &cmd.expect {
            Expect::Recv(spec) => Some(spec.queue.clone()),
            _ => None,
        };
        let closed = cmd.done.as_ref().is_some_and(|d| d.is_closed());
        let stale = cmd.epoch.is_some_and(|e| e != self.epoch);
        if closed || stale {
            // A call that timed out or was dropped: never sent later. One bound to a lost
            // connection: never sent on another.
            if stale {
                let err = ClientError::ConnectionLost {
                    command: cmd.label.clone(),
                };
                cmd.finish(Err(err));
            }
            // It held no place on the wire: if its queue has none, the next one may go.
            if let Some(queue) = queue.filter(|q| !flight.recvs.contains_key(q)) {
                self.release(&queue, flight);
            }
            return None;
        }
        let Expect::Recv(spec) = &cmd.expect else {
            return Some(cmd);
        };
        let queue = spec.queue.clone();
        let poll = spec.timeout.is_some_and(|t| t.is_zero());
        if flight.recvs.contains_key(&queue) {
            if poll {
                // "Answer at once" while our other receive on the queue waits in the server:
                // the queue has nothing ready.
                cmd.finish(Ok(Response::Message(None)));
            } else {
                flight.backlog.entry(queue).or_default().push_back(cmd);
            }
            return None;
        }
        let timeout = match (spec.timeout, spec.deadline) {
            (Some(t), Some(deadline)) if !t.is_zero() => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    cmd.finish(Ok(Response::Message(None)));
                    self.release(&queue, flight);
                    return None;
                }
                Some(left)
            }
            (t, _) => t,
        };
        let slot = Slot {
            barrier: spec.barrier.clone(),
            label: cmd.label.clone(),
            leased: !spec.lease.is_zero(),
            done: None,
            confirmed: false,
            cancelled: false,
        };
        cmd.line = spec.line(timeout);
        flight.recvs.insert(queue, slot);
        Some(cmd)
    }

    /// The receive on `queue` is over: the next one waiting in the client goes out.
    fn release(&mut self, queue: &Bytes, flight: &mut InFlight) {
        let Some(waiting) = flight.backlog.get_mut(queue) else {
            return;
        };
        let next = waiting.pop_front();
        if waiting.is_empty() {
            flight.backlog.remove(queue);
        }
        if let Some(cmd) = next {
            self.queue.push_front(cmd);
        }
    }

    /// `QMESSAGE` (`message` is its id and value) or `QEMPTY` for `queue`.
    pub(super) fn queue_answer(
        &mut self,
        queue: Bytes,
        message: Option<(Bytes, Bytes)>,
        reply: Reply,
        flight: &mut InFlight,
    ) {
        let Some(slot) = flight.recvs.remove(&queue) else {
            // Not a receive of ours: the answer to a raw QRECV.
            if let Some(front) = flight.pending.front_mut() {
                if matches!(front.cmd.expect, Expect::Raw(_)) {
                    front.lines.push(reply);
                    return;
                }
            }
            match message {
                Some((id, value)) => self.emit(Event::QueueMessage {
                    queue: text(&queue),
                    id: text(&id),
                    value,
                }),
                None => tracing::debug!(queue = %text(&queue), "QEMPTY for no receive"),
            }
            return;
        };
        if slot.cancelled {
            // Answered: a QCANCEL not sent yet has nothing left to end, and must not end the
            // next receive, which goes out now.
            let cancel = cancel_line(&queue);
            self.queue
                .retain(|c| !(c.done.is_none() && c.expect == Expect::Written && c.line == cancel));
        }
        self.release(&queue, flight);
        let delivery = message.map(|(id, value)| Delivery {
            queue,
            id,
            value,
            epoch: self.epoch,
        });
        let unclaimed = match slot.done {
            Some(done) => match done.send(Ok(Response::Message(delivery))) {
                Ok(()) => None,
                Err(Ok(Response::Message(delivery))) => delivery,
                Err(_) => None,
            },
            None => delivery,
        };
        if let Some(delivery) = unclaimed {
            self.unclaimed(delivery, slot.leased);
        }
    }

    /// A message for a receive whose call gave up: a leased one goes back to its queue at
    /// once; an unleased one is off the queue and becomes an event.
    fn unclaimed(&mut self, d: Delivery, leased: bool) {
        let (queue, id) = (text(&d.queue), text(&d.id));
        if leased {
            tracing::debug!(%queue, %id, "message for a receive that gave up: given back");
            let request = Request::QNack {
                queue: d.queue,
                id: d.id,
            };
            self.internal(request, format!("QNACK {queue} {id}"));
            return;
        }
        tracing::warn!(%queue, %id, "message for a receive that gave up: passed to the event stream");
        self.emit(Event::QueueMessage {
            queue,
            id,
            value: d.value,
        });
    }

    /// A receive's barrier came back (`refused`: with the server's refusal before it).
    pub(super) fn recv_settled(
        &mut self,
        spec: &RecvSpec,
        refused: Option<String>,
        flight: &mut InFlight,
    ) {
        let mine = |slot: &Slot| slot.barrier == spec.barrier;
        if !flight.recvs.get(&spec.queue).is_some_and(mine) {
            // Answered already (a message or an immediate QEMPTY), so it was not refused.
            return;
        }
        if let Some(message) = refused {
            if let Some(slot) = flight.recvs.remove(&spec.queue) {
                if let Some(done) = slot.done {
                    let _ = done.send(Err(refusal(&message, slot.label)));
                }
            }
            self.release(&spec.queue, flight);
            return;
        }
        let cancel = match flight.recvs.get_mut(&spec.queue) {
            Some(slot) => {
                slot.confirmed = true;
                slot.abandoned() && !slot.cancelled
            }
            None => false,
        };
        if cancel {
            self.cancel(&spec.queue, flight);
        }
    }

    /// `queue_unavailable <queue>` for our receive that waited at the root: our server lost its
    /// link to the master, and the receive ended with it. Returns whether it was that.
    pub(super) fn recv_cut_off(
        &mut self,
        message: &str,
        queue: &str,
        flight: &mut InFlight,
    ) -> bool {
        let queue = Bytes::copy_from_slice(queue.as_bytes());
        let waited = flight.recvs.get(&queue).is_some_and(|slot| slot.confirmed);
        if !message.starts_with("queue_unavailable ") || !waited {
            return false;
        }
        if let Some(slot) = flight.recvs.remove(&queue) {
            if let Some(done) = slot.done {
                let _ = done.send(Err(refusal(message, slot.label)));
            }
        }
        self.release(&queue, flight);
        true
    }

    /// A receive on `queue` gave up or ran out of time: the ones that wait in the client and
    /// gave up go, those whose time is over end empty; the one on the wire, if it gave up and
    /// the server has it, is ended with `QCANCEL`.
    pub(super) fn reap(&mut self, queue: &Bytes, flight: Option<&mut InFlight>) {
        let now = Instant::now();
        let over = |cmd: &Command| match &cmd.expect {
            Expect::Recv(spec) if spec.queue == *queue => {
                let expired = spec.timeout.is_some_and(|t| !t.is_zero())
                    && spec.deadline.is_some_and(|d| d <= now);
                cmd.done.as_ref().is_none_or(|d| d.is_closed()) || expired
            }
            _ => false,
        };
        let end = |cmd: Command| {
            if cmd.done.as_ref().is_some_and(|d| !d.is_closed()) {
                cmd.finish(Ok(Response::Message(None)));
            }
        };
        if self.queue.iter().any(over) {
            let queue = std::mem::take(&mut self.queue);
            for cmd in queue {
                if over(&cmd) {
                    end(cmd);
                } else {
                    self.queue.push_back(cmd);
                }
            }
        }
        let Some(flight) = flight else { return };
        if let Some(waiting) = flight.backlog.get_mut(queue) {
            let before = std::mem::take(waiting);
            for cmd in before {
                if over(&cmd) {
                    end(cmd);
                } else {
                    waiting.push_back(cmd);
                }
            }
            if waiting.is_empty() {
                flight.backlog.remove(queue);
            }
        }
        let cancel = flight
            .recvs
            .get(queue)
            .is_some_and(|s| s.confirmed && !s.cancelled && s.abandoned());
        if cancel {
            self.cancel(queue, flight);
        }
    }

    /// Ends our receive on `queue` in the server: it answers `QEMPTY`, or (if it handed out a
    /// message first) the `QMESSAGE` is already on its way.
    fn cancel(&mut self, queue: &Bytes, flight: &mut InFlight) {
        if let Some(slot) = flight.recvs.get_mut(queue) {
            slot.cancelled = true;
        }
        let label = format!("QCANCEL {}", text(queue));
        self.internal(
            Request::QCancel {
                queue: queue.clone(),
            },
            label,
        );
    }

    /// Queues a command of the task's own that the server may refuse (the refusal becomes an
    /// event), on this connection only, ahead of the rest.
    fn internal(&mut self, request: Request, label: String) {
        let mut line = BytesMut::new();
        request.encode(&mut line);
        self.queue.push_front(Command {
            line: line.freeze(),
            expect: Expect::Written,
            label,
            can_fail: true,
            change: Change::None,
            epoch: Some(self.epoch),
            done: None,
        });
    }

    /// The connection is over: its receives on the wire fail with `err` of their command
    /// (those refused before it ended with their refusal); those waiting in the client go on
    /// the next connection (returned).
    pub(super) fn end_recvs(
        flight: &mut InFlight,
        err: impl Fn(String) -> ClientError,
    ) -> Vec<Command> {
        for (_, slot) in flight.recvs.drain() {
            if let Some(done) = slot.done {
                let _ = done.send(Err(err(slot.label)));
            }
        }
        flight.backlog.drain().flat_map(|(_, cmds)| cmds).collect()
    }

    /// A receive refused before the connection ended: the refusal is its call's error.
    pub(super) fn refused_recv(spec: &RecvSpec, message: &str, flight: &mut InFlight) {
        let mine = flight
            .recvs
            .get(&spec.queue)
            .is_some_and(|s| s.barrier == spec.barrier);
        if !mine {
            return;
        }
        if let Some(slot) = flight.recvs.remove(&spec.queue) {
            if let Some(done) = slot.done {
                let _ = done.send(Err(refusal(message, slot.label)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::seconds;
    use super::*;

    #[test]
    fn seconds_round_up_to_the_millisecond() {
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_secs(2)), "2");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::from_micros(1500)), "0.002");
        assert_eq!(seconds(Duration::from_nanos(1)), "0.001");
        assert_eq!(seconds(Duration::from_millis(61_010)), "61.01");
    }

    #[test]
    fn receive_lines() {
        let spec = |timeout, lease| RecvSpec {
            queue: Bytes::from_static(b"jobs"),
            timeout,
            lease,
            deadline: None,
            barrier: Bytes::from_static(b"b1"),
        };
        let line = |s: RecvSpec| String::from_utf8(s.line(s.timeout).to_vec()).unwrap();
        assert_eq!(
            line(spec(None, Duration::ZERO)),
            "QRECV jobs\r\nFLUSH b1\r\n"
        );
        assert_eq!(
            line(spec(Some(Duration::ZERO), Duration::ZERO)),
            "QRECV jobs 0\r\nFLUSH b1\r\n"
        );
        assert_eq!(
            line(spec(
                Some(Duration::from_millis(1500)),
                Duration::from_secs(30)
            )),
            "QRECV jobs 1.5 30\r\nFLUSH b1\r\n"
        );
        // A lease needs a timeout before it: "until a message comes" is the longest one.
        assert_eq!(
            line(spec(None, Duration::from_secs(30))),
            "QRECV jobs 31536000 30\r\nFLUSH b1\r\n"
        );
    }
}
