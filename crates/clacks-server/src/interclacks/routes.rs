//! Work queues and the service registry across a tree: the root holds the registry and every
//! queue but those named `Local::…`, which stay on the server where they are used. A slave
//! forwards its clients' commands for what the root holds to its master as
//! `QFWD <tag> <hops> <line>`, the tag naming the client on the link; the master runs them for
//! that client (forwarding them further up if it is a slave itself) and answers with
//! `QREPLY <tag> <line>`, which the slave hands to the client. `QDROP <tag>` says the client is
//! gone (its waits end, its leased messages go back, its instances are withdrawn), as the end of
//! the link does for all of them.
//!
//! Only a master that says `queues` in its `CLACKS` line gets these commands; a slave of a v36
//! master holds its part of the tree's queues and registry itself. While the link to a master
//! that takes them is down, they are refused at once (`queue_unavailable`,
//! `registry_unavailable`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use clacks_proto::{Flags, Reply};

use crate::state::queues::{Owner, Refusal};
use crate::state::ConnId;

/// The word a `clacksd` puts in its `CLACKS` line on a link: it takes forwarded queue commands.
pub(crate) const QUEUES: &str = "queues";

/// Queues with names that start with this stay on the server where they are used.
pub(crate) const LOCAL_PREFIX: &[u8] = b"Local::";

/// The refusal of a registry command while the link to the master that holds the registry is
/// down.
pub(crate) const REGISTRY_UNAVAILABLE: &str = "registry_unavailable";

/// A command forwarded through this many servers goes no further (a loop in the tree).
pub(crate) const MAX_HOPS: u8 = 16;

/// Where a queue command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Here.
    Here,
    /// At our master, over this link.
    Up(ConnId),
    /// At our master, whose link is down: refused at once.
    Unavailable,
}

/// An answer a forwarded command is still to get from our master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// `QRECV <queue>`: `QMESSAGE`, `QEMPTY` or an error.
    Recv(Bytes),
    /// `QSTAT <queue>`: `QSTATS`.
    Stat(Bytes),
    /// `QLIST`: ends with `QLISTEND`.
    List,
    /// `QTEMP`: `QTEMPNAME` or an error.
    Temp,
    /// `FLUSH <id>`: `FLUSHED <id>`.
    Flush(Bytes),
    /// `REGISTER <service> …`: `REGISTERED` or an error.
    Register(Bytes),
    /// `RESOLVE <service>`: ends with `RESOLVEEND`.
    Resolve(Bytes),
    /// `SERVICES`: ends with `SERVICESEND`.
    Services,
}

impl Pending {
    /// The answer it gets when the link to our master is lost before the master answered.
    pub(crate) fn unanswered(self) -> Reply {
        let queues = Refusal::Unavailable.token().as_bytes();
        let (token, about) = match self {
            Pending::Flush(id) => return Reply::Flushed { id },
            Pending::Recv(queue) | Pending::Stat(queue) => (queues, queue),
            Pending::List => (queues, Bytes::from_static(b"QLIST")),
            Pending::Temp => (queues, Bytes::from_static(b"QTEMP")),
            Pending::Register(service) | Pending::Resolve(service) => {
                (REGISTRY_UNAVAILABLE.as_bytes(), service)
            }
            Pending::Services => (
                REGISTRY_UNAVAILABLE.as_bytes(),
                Bytes::from_static(b"SERVICES"),
            ),
        };
        Reply::Overhead {
            flags: Flags::ERROR,
            value: Bytes::from([token, b" ", &about].concat()),
        }
    }

    /// Whether `answer` (a line from our master) is the answer this waits for.
    fn answered_by(&self, answer: &Reply) -> bool {
        match (self, answer) {
            (Pending::Recv(q), Reply::QMessage { queue, .. } | Reply::QEmpty { queue }) => {
                q == queue
            }
            (Pending::Stat(q), Reply::QStats { queue, .. }) => q == queue,
            (Pending::List, Reply::QListEnd) | (Pending::Temp, Reply::QTempName { .. }) => true,
            (Pending::Flush(i), Reply::Flushed { id }) => i == id,
            (Pending::Register(s), Reply::Registered { service, .. })
            | (Pending::Resolve(s), Reply::ResolveEnd { service }) => s == service,
            (Pending::Services, Reply::ServicesEnd) => true,
            (_, Reply::Overhead { value, .. }) => {
                // `<token> <queue>…`; a temporary queue of another client is refused without
                // its name.
                let mut words = value.split(|&b| b == b' ');
                let token = words.next().unwrap_or_default();
                let about = words.next().unwrap_or_default();
                match self {
                    Pending::Recv(q) if token == b"permission_denied" => {
                        q.starts_with(crate::state::queues::TEMP_PREFIX)
                    }
                    Pending::Recv(q) | Pending::Stat(q) | Pending::Register(q) => &q[..] == about,
                    Pending::Temp => about == b"QTEMP",
                    Pending::List | Pending::Flush(_) | Pending::Resolve(_) | Pending::Services => {
                        false
                    }
                }
            }
            _ => false,
        }
    }
}

/// A client of ours that forwarded commands: who it is, and the answers it still waits for.
struct Forwarded {
    owner: Owner,
    pending: VecDeque<Pending>,
}

/// The forwarding state of this server (part of the shared state).
#[derive(Default)]
pub(crate) struct Routes {
    /// Our link to our master once it is synced, and whether the master takes queue commands.
    master: Option<(ConnId, bool)>,
    tags: HashMap<u64, Forwarded>,
    /// In owner order, so that a connection's owners are one range.
    by_owner: BTreeMap<Owner, u64>,
    last_tag: u64,
}

impl Routes {
    /// Where a command for `queue` runs (`has_master`: this server is configured as a slave).
    pub(crate) fn route(&self, has_master: bool, queue: &[u8]) -> Route {
        if !has_master || queue.starts_with(LOCAL_PREFIX) {
            return Route::Here;
        }
        match self.master {
            Some((link, true)) => Route::Up(link),
            Some((_, false)) => Route::Here,
            None => Route::Unavailable,
        }
    }

    /// Our master has synced us on link `link`.
    pub(crate) fn master_linked(&mut self, link: ConnId, takes_queues: bool) {
        self.master = Some((link, takes_queues));
    }

    /// Our master's link, once synced, and whether it takes queue commands.
    pub(crate) fn master_link(&self) -> Option<(ConnId, bool)> {
        self.master
    }

    /// Whether `link` is our master's.
    pub(crate) fn is_master(&self, link: ConnId) -> bool {
        self.master.is_some_and(|(id, _)| id == link)
    }

    /// The tag `owner`'s commands go up with (new at its first command), noting the answer the
    /// command waits for, if any.
    pub(crate) fn tag_for(&mut self, owner: Owner, waits_for: Option<Pending>) -> u64 {
        let tag = match self.by_owner.get(&owner) {
            Some(tag) => *tag,
            None => {
                self.last_tag += 1;
                let tag = self.last_tag;
                self.by_owner.insert(owner, tag);
                let pending = VecDeque::new();
                self.tags.insert(tag, Forwarded { owner, pending });
                tag
            }
        };
        if let (Some(waits_for), Some(f)) = (waits_for, self.tags.get_mut(&tag)) {
            f.pending.push_back(waits_for);
        }
        tag
    }

    /// The tag of an owner that forwarded commands and whose master link is up: its `FLUSH`
    /// goes up too, so that it answers after them.
    pub(crate) fn forwarding(&self, owner: Owner) -> Option<(ConnId, u64)> {
        let (link, true) = self.master? else {
            return None;
        };
        Some((link, *self.by_owner.get(&owner)?))
    }

    /// Who an answer from our master is for; the answer a command waited for is no longer
    /// pending.
    pub(crate) fn answered(&mut self, tag: u64, line: &Bytes) -> Option<Owner> {
        let f = self.tags.get_mut(&tag)?;
        let answer = Reply::parse(line.clone());
        if let Some(i) = f.pending.iter().position(|p| p.answered_by(&answer)) {
            f.pending.remove(i);
        }
        Some(f.owner)
    }

    /// `owner` is gone: the tag to drop at our master, if it had one.
    pub(crate) fn drop_owner(&mut self, owner: Owner) -> Option<u64> {
        let tag = self.by_owner.remove(&owner)?;
        self.tags.remove(&tag);
        Some(tag)
    }

    /// Connection `conn` is gone, and with it every owner it stood for: their tags.
    pub(crate) fn drop_conn(&mut self, conn: ConnId) -> Vec<u64> {
        let owners: Vec<Owner> = self
            .by_owner
            .range(Owner::all_of(conn))
            .map(|(o, _)| *o)
            .collect();
        owners
            .into_iter()
            .filter_map(|o| self.drop_owner(o))
            .collect()
    }

    /// The link to our master is gone, and every command there with it: each owner with the
    /// answers it still waited for, in order (`queue_unavailable`, and `FLUSHED` for a
    /// `FLUSH`), so that every command is answered.
    pub(crate) fn master_lost(&mut self) -> Vec<(Owner, Vec<Reply>)> {
        self.master = None;
        self.by_owner.clear();
        let mut lost: Vec<(Owner, Vec<Reply>)> = self
            .tags
            .drain()
            .map(|(_, f)| {
                (
                    f.owner,
                    f.pending.into_iter().map(Pending::unanswered).collect(),
                )
            })
            .collect();
        lost.sort_unstable_by_key(|(owner, _)| *owner);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_master_link() {
        let mut r = Routes::default();
        assert_eq!(r.route(false, b"jobs"), Route::Here);
        assert_eq!(r.route(true, b"jobs"), Route::Unavailable);
        assert_eq!(r.route(true, b"Local::jobs"), Route::Here);
        r.master_linked(9, true);
        assert_eq!(r.route(true, b"jobs"), Route::Up(9));
        let client = Owner::here(3);
        let q = Bytes::from_static(b"jobs");
        let tag = r.tag_for(client, Some(Pending::Recv(q.clone())));
        assert_eq!(r.tag_for(client, Some(Pending::Stat(q.clone()))), tag);
        r.tag_for(client, Some(Pending::Recv(q.clone())));
        r.tag_for(client, Some(Pending::Flush(Bytes::from_static(b"f"))));
        assert_eq!(r.forwarding(client), Some((9, tag)));
        // Answers settle what they answer, errors by the queue they name.
        let line = |l: &'static str| Bytes::from_static(l.as_bytes());
        assert_eq!(r.answered(tag, &line("QEMPTY jobs")), Some(client));
        assert_eq!(
            r.answered(tag, &line("OVERHEAD E bad_name other")),
            Some(client)
        );
        assert_eq!(
            r.answered(tag, &line("QSTATS jobs messages=0")),
            Some(client)
        );
        let e = |v: &'static str| Reply::Overhead {
            flags: Flags::ERROR,
            value: Bytes::from_static(v.as_bytes()),
        };
        let flushed = Reply::Flushed {
            id: Bytes::from_static(b"f"),
        };
        assert_eq!(
            r.master_lost(),
            vec![(client, vec![e("queue_unavailable jobs"), flushed])]
        );
        assert_eq!(r.answered(tag, &line("QEMPTY jobs")), None);
        // A v36 master takes no queue commands: the slave holds its queues itself.
        r.master_linked(10, false);
        assert_eq!(r.route(true, b"jobs"), Route::Here);
        let behind = Owner { conn: 4, tag: 77 };
        let t = r.tag_for(behind, None);
        assert_eq!(r.drop_conn(4), vec![t]);
        assert_eq!(r.drop_owner(behind), None);
    }
}
