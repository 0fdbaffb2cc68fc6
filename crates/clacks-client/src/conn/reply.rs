//! The server's lines: signals and server messages become events, `OVERHEAD E` refusals find
//! their command, and replies complete the request they answer.

use bytes::Bytes;
use clacks_proto::{Flags, Reply};

use super::inflight::{InFlight, Pending};
use super::{Expect, Response, Task};
use crate::{ClientError, Event, QueueRefusal, RegistryRefusal};

impl Task {
    /// Handles one line from the server. Returns a reason when the server ends the connection.
    pub(super) fn incoming(&mut self, line: Bytes, flight: &mut InFlight) -> Option<String> {
        let reply = Reply::parse(line.clone());
        match &reply {
            Reply::Notify { name } => {
                let name = text(name);
                self.signal(name.clone(), Event::Notify { name });
            }
            Reply::Set { name, value } => {
                let name = text(name);
                self.signal(name.clone(), Event::set(name, value));
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
            Reply::QMessage { queue, id, value } => {
                let message = Some((id.clone(), value.clone()));
                self.queue_answer(queue.clone(), message, reply, flight);
            }
            Reply::QEmpty { queue } => self.queue_answer(queue.clone(), None, reply, flight),
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
            _ => self.answer(reply, flight),
        }
        None
    }

    /// `OVERHEAD E …`: belongs to the oldest command that can fail and is not settled yet (a
    /// confirmed write keeps it until its `FLUSHED`); a queue or registry refusal, which names
    /// its queue or service, to the oldest such command on that queue or service (through a
    /// slave, the answers to commands the root runs can come after those to later commands run
    /// on the slave). `queue_unavailable` can also end a receive that waited at the root.
    fn error_line(&mut self, message: String, reply: Reply, flight: &mut InFlight) {
        let about = queue_refusal_of(&message);
        if about.is_some_and(|q| self.recv_cut_off(&message, q, flight)) {
            return;
        }
        let can_take = |p: &Pending| {
            // A confirmed write (or a receive) takes one refusal at most.
            let settled = barrier(&p.cmd.expect) && !p.lines.is_empty();
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
        let named = named_refusal(&message);
        let on_name = |p: &Pending| {
            can_take(p)
                && named.is_some_and(|(name, family)| {
                    p.cmd.label.split(' ').nth(1) == Some(name) && family.fits(&p.cmd.label)
                })
        };
        let idx = named
            .and_then(|_| pending.iter().position(on_name))
            .or_else(|| pending.iter().position(can_take));
        let Some(idx) = idx else {
            self.emit(Event::ErrorMessage {
                message,
                command: None,
            });
            return;
        };
        if barrier(&pending[idx].cmd.expect) {
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
    fn answer(&mut self, reply: Reply, flight: &mut InFlight) {
        let pending = &mut flight.pending;
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
        if let (Expect::Recv(spec), Reply::Flushed { id }) = (&front.cmd.expect, &reply) {
            if spec.barrier == id {
                let refused = refused(front);
                let Some(p) = pending.pop_front() else { return };
                if let Expect::Recv(spec) = &p.cmd.expect {
                    self.recv_settled(spec, refused, flight);
                }
                return;
            }
        }
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
            (Expect::QStat(queue), Reply::QStats { queue: q, fields }) if *queue == q => {
                Response::QueueStats(fields)
            }
            (Expect::Register(spec), Reply::Registered { service, id })
                if spec.service == service =>
            {
                let Some(id) = std::str::from_utf8(&id).ok().and_then(|i| i.parse().ok()) else {
                    tracing::warn!(?id, "REGISTERED with an id that is not a number");
                    return;
                };
                if let Some(p) = pending.pop_front() {
                    self.registered(p.cmd, id);
                }
                return;
            }
            (Expect::Resolve(service), Reply::ResolveStart { service: s }) if *service == s => {
                front.started = true;
                return;
            }
            (Expect::Resolve(_), r @ Reply::Instance { .. }) if front.started => {
                front.lines.push(r);
                return;
            }
            (Expect::Resolve(service), Reply::ResolveEnd { service: s }) if *service == s => {
                Response::Instances(
                    front
                        .lines
                        .drain(..)
                        .filter_map(|r| match r {
                            Reply::Instance { fields, .. } => Some(fields),
                            _ => None,
                        })
                        .collect(),
                )
            }
            (Expect::Services, r @ Reply::Service { .. }) if front.started => {
                front.lines.push(r);
                return;
            }
            (Expect::Services, Reply::ServicesEnd) => Response::Services(
                front
                    .lines
                    .drain(..)
                    .filter_map(|r| match r {
                        Reply::Service { service, fields } => Some((service, fields)),
                        _ => None,
                    })
                    .collect(),
            ),
            (Expect::QTemp, Reply::QTempName { queue }) => Response::TempQueue {
                name: queue,
                epoch: self.epoch,
            },
            (Expect::KeyList, Reply::KeyListStart)
            | (Expect::ClientList, Reply::ClientListStart)
            | (Expect::Stats, Reply::StatsStart)
            | (Expect::QList, Reply::QListStart)
            | (Expect::Services, Reply::ServicesStart) => {
                front.started = true;
                return;
            }
            (Expect::KeyList, r @ Reply::Key { .. })
            | (Expect::ClientList, r @ Reply::Client(_))
            | (Expect::Stats, r @ Reply::Stat { .. })
            | (Expect::QList, r @ Reply::Queue { .. })
                if front.started =>
            {
                front.lines.push(r);
                return;
            }
            (Expect::QList, Reply::QListEnd) => Response::Queues(
                front
                    .lines
                    .drain(..)
                    .filter_map(|r| match r {
                        Reply::Queue { queue, fields } => Some((queue, fields)),
                        _ => None,
                    })
                    .collect(),
            ),
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

/// Whether the command ends with a `FLUSH` barrier that its refusal, if any, comes before: a
/// confirmed write or a receive.
fn barrier(expect: &Expect) -> bool {
    matches!(expect, Expect::Confirm(_) | Expect::Recv(_))
}

/// What the server refused a confirmed write or a receive with, if it did.
pub(super) fn refused(p: &Pending) -> Option<String> {
    if !barrier(&p.cmd.expect) {
        return None;
    }
    p.lines.iter().find_map(|r| match r {
        Reply::Overhead { value, .. } => Some(text(value)),
        _ => None,
    })
}

/// The error for a command the server refused with `OVERHEAD E <message>`: the one place where
/// refusals become errors.
pub(super) fn refusal(message: &str, command: String) -> ClientError {
    let mut words = message.split(' ');
    let token = words.next().unwrap_or_default();
    if message == "permission_denied" {
        return ClientError::PermissionDenied(command);
    }
    if message.starts_with("unknown_command") {
        return ClientError::UnknownCommand(command);
    }
    if Family::Registry.fits(&command) {
        if let Some(reason) = RegistryRefusal::from_token(token) {
            return ClientError::RegistryRefused {
                command,
                service: words.next().unwrap_or_default().to_string(),
                reason,
                message: message.to_string(),
            };
        }
    }
    if let Some(reason) = QueueRefusal::from_token(token) {
        return ClientError::QueueRefused {
            command,
            queue: words.next().unwrap_or_default().to_string(),
            reason,
            message: message.to_string(),
        };
    }
    ClientError::Refused {
        command,
        reason: message.to_string(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The commands a refusal that names a queue or service can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Queue,
    Registry,
    /// `bad_name`, which both refuse.
    Either,
}

impl Family {
    /// Whether the command labelled `label` is of this family.
    fn fits(self, label: &str) -> bool {
        let registry = matches!(
            label.split(' ').next(),
            Some("REGISTER" | "UNREGISTER" | "RESOLVE" | "SERVICES")
        );
        match self {
            Family::Queue => !registry,
            Family::Registry => registry,
            Family::Either => true,
        }
    }
}

/// The queue or service a queue or registry refusal (`<token> <name>…`) names, and the
/// commands it can belong to.
fn named_refusal(message: &str) -> Option<(&str, Family)> {
    let (token, rest) = message.split_once(' ')?;
    let family = match (
        QueueRefusal::from_token(token).is_some(),
        RegistryRefusal::from_token(token).is_some(),
    ) {
        (true, true) => Family::Either,
        (true, false) => Family::Queue,
        (false, true) => Family::Registry,
        (false, false) => return None,
    };
    Some((rest.split(' ').next()?, family))
}

/// The queue a queue refusal (`<token> <queue>…`) names.
fn queue_refusal_of(message: &str) -> Option<&str> {
    let (token, rest) = message.split_once(' ')?;
    crate::QueueRefusal::from_token(token)?;
    rest.split(' ').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_typed_errors() {
        let queue = |message: &str| match refusal(message, "QSEND jobs".into()) {
            ClientError::QueueRefused {
                queue,
                reason,
                message: m,
                ..
            } => {
                assert_eq!(m, message);
                Some((queue, reason))
            }
            _ => None,
        };
        assert_eq!(
            queue("queue_full jobs"),
            Some(("jobs".into(), QueueRefusal::QueueFull))
        );
        assert_eq!(
            queue("bad_name a"),
            Some(("a".into(), QueueRefusal::BadName))
        );
        assert_eq!(
            queue("message_too_large jobs"),
            Some(("jobs".into(), QueueRefusal::MessageTooLarge))
        );
        assert_eq!(
            queue("unknown_message jobs 17"),
            Some(("jobs".into(), QueueRefusal::UnknownMessage))
        );
        assert_eq!(
            queue("bad_argument jobs 1e99"),
            Some(("jobs".into(), QueueRefusal::BadArgument))
        );
        assert_eq!(queue("out_of_memory k"), None);
        assert!(matches!(
            refusal("permission_denied", "QRECV jobs".into()),
            ClientError::PermissionDenied(c) if c == "QRECV jobs"
        ));
        assert!(matches!(
            refusal("unknown_command QSEND jobs=x", "QSEND jobs".into()),
            ClientError::UnknownCommand(_)
        ));
    }

    #[test]
    fn registry_refusals_become_typed_errors() {
        let registry = |message: &str, label: &str| match refusal(message, label.into()) {
            ClientError::RegistryRefused {
                service, reason, ..
            } => Some((service, reason)),
            _ => None,
        };
        use RegistryRefusal as R;
        assert_eq!(
            registry("bad_endpoint web", "REGISTER web"),
            Some(("web".into(), R::BadEndpoint))
        );
        assert_eq!(
            registry("bad_name a", "REGISTER a"),
            Some(("a".into(), R::BadName))
        );
        assert_eq!(
            registry("unknown_instance web 7", "UNREGISTER web 7"),
            Some(("web".into(), R::UnknownInstance))
        );
        assert_eq!(
            registry("too_many_instances web", "REGISTER web"),
            Some(("web".into(), R::TooManyInstances))
        );
        assert_eq!(
            registry("registry_unavailable web", "RESOLVE web"),
            Some(("web".into(), R::RegistryUnavailable))
        );
        // The same token on a queue command is a queue refusal.
        assert!(matches!(
            refusal("bad_name a", "QSEND a".into()),
            ClientError::QueueRefused { .. }
        ));
        assert_eq!(named_refusal("bad_name a"), Some(("a", Family::Either)));
        assert_eq!(
            named_refusal("unknown_instance web 7"),
            Some(("web", Family::Registry))
        );
        assert_eq!(named_refusal("queue_full q"), Some(("q", Family::Queue)));
        assert_eq!(named_refusal("out_of_memory k"), None);
        assert!(Family::Registry.fits("RESOLVE web") && !Family::Registry.fits("QSEND web"));
        assert!(Family::Queue.fits("QSEND web") && !Family::Queue.fits("REGISTER web"));
    }
}
