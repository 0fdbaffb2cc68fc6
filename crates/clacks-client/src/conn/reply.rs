//! The server's lines: signals and server messages become events, `OVERHEAD E` refusals find
//! their command, and replies complete the request they answer.

use std::collections::VecDeque;

use bytes::Bytes;
use clacks_proto::{Flags, Reply};

use super::inflight::{InFlight, Pending};
use super::{Expect, Response, Task};
use crate::{ClientError, Event};

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

/// What the server refused a confirmed write with, if it did.
pub(super) fn refused(p: &Pending) -> Option<String> {
    if !matches!(p.cmd.expect, Expect::Confirm(_)) {
        return None;
    }
    p.lines.iter().find_map(|r| match r {
        Reply::Overhead { value, .. } => Some(text(value)),
        _ => None,
    })
}

/// The error for a command the server refused with `OVERHEAD E <message>`.
pub(super) fn refusal(message: &str, command: String) -> ClientError {
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
