//! Service registrations across reconnects.
//!
//! An instance belongs to the connection that registered it and goes when it ends. The task
//! keeps every registration whose [`crate::Registration`] guard lives and makes it again on
//! each new connection (after the LISTENs, before anything queued): a new instance with a new
//! id. A registration enters the task's keeping only once its first `REGISTERED` came and its
//! call took it, so a call that failed or gave up leaves nothing behind (an instance registered
//! for a call that gave up is withdrawn at once). A guard dropped while its registration is
//! being made again is withdrawn when the `REGISTERED` comes.

use bytes::{Bytes, BytesMut};
use clacks_proto::Request;

use super::{Change, Command, Expect, RegSpec, Response, Task};

/// `UNREGISTER <service> <id>` from the task (a refusal becomes an event).
fn unregister(service: &Bytes, id: u64) -> Command {
    let mut line = BytesMut::new();
    Request::Unregister {
        service: service.clone(),
        id: Bytes::from(id.to_string()),
    }
    .encode(&mut line);
    Command {
        line: line.freeze(),
        expect: Expect::Written,
        label: format!("UNREGISTER {} {id}", String::from_utf8_lossy(service)),
        can_fail: true,
        change: Change::None,
        epoch: None,
        done: None,
    }
}

impl Task {
    /// `REGISTERED <service> <id>` for `cmd`: the registration is kept (and live on this
    /// connection) if its call or, for one made again, its guard still wants it; else the
    /// instance is withdrawn.
    pub(super) fn registered(&mut self, mut cmd: Command, id: u64) {
        let Expect::Register(spec) = &cmd.expect else {
            return;
        };
        let spec = spec.clone();
        let epoch = self.epoch;
        let wanted = match cmd.done.take() {
            Some(done) => done.send(Ok(Response::Registered(id))).is_ok(),
            None => self.registrations.contains_key(&spec.key),
        };
        if wanted {
            spec.set_live(Some((id, epoch)));
            self.registrations.insert(spec.key, spec);
        } else {
            spec.set_live(None);
            self.registrations.remove(&spec.key);
            self.queue.push_front(unregister(&spec.service, id));
        }
    }

    /// A guard was dropped: its instance is withdrawn if it is registered on this connection
    /// (one registered on a lost connection went with it).
    pub(super) fn deregister(&mut self, key: u64) {
        let Some(spec) = self.registrations.remove(&key) else {
            return;
        };
        let live = spec.live.lock().ok().and_then(|mut l| l.take());
        if let Some((id, epoch)) = live {
            if epoch == self.epoch {
                self.queue.push_back(unregister(&spec.service, id));
            }
        }
    }

    /// The connection ended: no registration is live any more.
    pub(super) fn registrations_lost(&mut self) {
        for spec in self.registrations.values() {
            spec.set_live(None);
        }
    }

    /// The `REGISTER`s that make every kept registration again on a new connection.
    pub(super) fn restore_registrations(&self) -> Vec<Command> {
        let mut specs: Vec<&RegSpec> = self.registrations.values().collect();
        specs.sort_by_key(|s| s.key);
        specs
            .into_iter()
            .map(|spec| Command {
                line: spec.line(),
                expect: Expect::Register(spec.clone()),
                label: format!("REGISTER {}", String::from_utf8_lossy(&spec.service)),
                can_fail: true,
                change: Change::None,
                epoch: None,
                done: None,
            })
            .collect()
    }
}
