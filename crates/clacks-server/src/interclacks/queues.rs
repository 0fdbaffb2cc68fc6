//! Work queues across a tree: the root holds every queue but those named `Local::…`, which stay
//! on the server where they are used. A slave forwards its clients' commands for the root's
//! queues to its master as `QFWD <tag> <hops> <line>`, the tag naming the client on the link;
//! the master runs them for that client (forwarding them further up if it is a slave itself)
//! and answers with `QREPLY <tag> <line>`, which the slave hands to the client. `QDROP <tag>`
//! says the client is gone (its waits end, its leased messages go back), as the end of the link
//! does for all of them.
//!
//! Only a master that says `queues` in its `CLACKS` line gets queue commands; a slave of a v36
//! master holds its queues itself. While the link to a master that takes them is down, commands
//! for the root's queues are refused at once with `queue_unavailable`.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::state::queues::Owner;
use crate::state::ConnId;

/// The word a `clacksd` puts in its `CLACKS` line on a link: it takes forwarded queue commands.
pub(crate) const QUEUES: &str = "queues";

/// Queues with names that start with this stay on the server where they are used.
pub(crate) const LOCAL_PREFIX: &[u8] = b"Local::";

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

/// A client of ours that forwarded commands: who it is, and the queues it sent receives for.
struct Forwarded {
    owner: Owner,
    receives: HashSet<Bytes>,
}

/// The forwarding state of this server (part of the shared state).
#[derive(Default)]
pub(crate) struct Routes {
    /// Our link to our master once it is synced, and whether the master takes queue commands.
    master: Option<(ConnId, bool)>,
    tags: HashMap<u64, Forwarded>,
    by_owner: HashMap<Owner, u64>,
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

    /// The tag `owner`'s commands go up with (new at its first command); `receive`: the command
    /// is a receive on that queue.
    pub(crate) fn tag_for(&mut self, owner: Owner, receive: Option<&Bytes>) -> u64 {
        let tag = match self.by_owner.get(&owner) {
            Some(tag) => *tag,
            None => {
                self.last_tag += 1;
                let tag = self.last_tag;
                self.by_owner.insert(owner, tag);
                let receives = HashSet::new();
                self.tags.insert(tag, Forwarded { owner, receives });
                tag
            }
        };
        if let (Some(queue), Some(f)) = (receive, self.tags.get_mut(&tag)) {
            f.receives.insert(queue.clone());
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

    /// Who an answer from our master is for.
    pub(crate) fn owner_of(&self, tag: u64) -> Option<Owner> {
        self.tags.get(&tag).map(|f| f.owner)
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
            .keys()
            .filter(|o| o.conn == conn)
            .copied()
            .collect();
        owners
            .into_iter()
            .filter_map(|o| self.drop_owner(o))
            .collect()
    }

    /// The link to our master is gone: every owner's receives there ended. Returns each owner
    /// with the queues it had receives on, to be told.
    pub(crate) fn master_lost(&mut self) -> Vec<(Owner, Vec<Bytes>)> {
        self.master = None;
        self.by_owner.clear();
        let mut lost: Vec<(Owner, Vec<Bytes>)> = self
            .tags
            .drain()
            .map(|(_, f)| {
                let mut queues: Vec<Bytes> = f.receives.into_iter().collect();
                queues.sort_unstable();
                (f.owner, queues)
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
        let tag = r.tag_for(client, Some(&q));
        assert_eq!(r.tag_for(client, None), tag);
        assert_eq!(r.owner_of(tag), Some(client));
        assert_eq!(r.forwarding(client), Some((9, tag)));
        assert_eq!(r.master_lost(), vec![(client, vec![q])]);
        assert_eq!(r.owner_of(tag), None);
        // A v36 master takes no queue commands: the slave holds its queues itself.
        r.master_linked(10, false);
        assert_eq!(r.route(true, b"jobs"), Route::Here);
        let behind = Owner { conn: 4, tag: 77 };
        let t = r.tag_for(behind, None);
        assert_eq!(r.drop_conn(4), vec![t]);
        assert_eq!(r.drop_owner(behind), None);
    }
}
