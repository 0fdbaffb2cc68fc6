//! The clock offset of a link: how a peer's times are turned into ours.
//!
//! Each side sends `OVERHEAD T <its clock>` during the sync, and v36 takes `our clock − theirs`
//! as the offset, latency included, so a record that crosses a link and comes back is a little
//! newer than it left. Between two `clacksd` servers the slave measures the offset and its master
//! uses the same, negated, and both are whole [`TICK`](clacks_store::TICK)s: a time sent either
//! way and back is then exactly what it was, so copies of one write have one time on every server
//! of a tree. The slave keeps the offset it agreed with its master across reconnects while a new
//! measurement stays within [`OFFSET_KEEP`].

use clacks_store::number::{format_float, numify};
use clacks_store::on_grid;

use super::Link;
use crate::session::Session;
use crate::state::State;

/// A new measurement of the offset to our master closer than this (seconds) to the one agreed
/// before is latency jitter: the old one is kept.
pub(crate) const OFFSET_KEEP: f64 = 0.05;

/// How much later (seconds) a copy of a record may come back in a sync and still count as the
/// same write, at least: offsets measured again, and v36 peers, whose offsets carry their
/// latency. On a link to a v36 peer the slack is the time its sync took, if longer: a v36 peer
/// measures the offset while it works through the sync, which can take a while for a large
/// cache.
pub(crate) const RESYNC_SLACK: f64 = 0.1;

/// `OVERHEAD T <their clock>` from the peer: sets the link's offset.
pub(crate) fn peer_clock(s: &mut Session, state: &mut State, value: &[u8], now: f64) {
    let theirs = numify(value).to_f64();
    if !(theirs.is_finite() && theirs.abs() <= crate::session::MAX_PEER_TIME) {
        tracing::warn!(cid = %s.cid_str(), "interclacks peer sent an unusable clock; offset unchanged");
        return;
    }
    let theirs = on_grid(theirs);
    let measured = on_grid(now - theirs);
    s.time_offset = match (s.link.kind, s.link.origin_times, s.link.sent_clock) {
        // Our slave answered our clock with it plus the offset it uses.
        (Link::Inbound, true, Some(sent)) => on_grid(sent - theirs),
        // A v36 slave answers once it has worked through our sync.
        (Link::Inbound, false, Some(sent)) => {
            s.link.slack = s.link.slack.max(now - sent);
            measured
        }
        (Link::ToMaster, true, _) => {
            s.link.peer_clock = Some(theirs);
            let kept = state
                .links
                .master_offset
                .filter(|kept| (measured - kept).abs() <= OFFSET_KEEP);
            let offset = kept.unwrap_or(measured);
            state.links.master_offset = Some(offset);
            offset
        }
        _ => measured,
    };
}

/// The `OVERHEAD T` value of our answer to our master's sync: to a `clacksd` master, its clock
/// plus our offset (from which it takes the same offset); to a v36 master, our clock.
pub(crate) fn answer_clock(s: &Session, now: f64) -> String {
    match (s.link.origin_times, s.link.peer_clock) {
        (true, Some(theirs)) => format_float(on_grid(theirs + s.time_offset)),
        _ => format_float(now),
    }
}

/// Our master's sync is over (`OVERHEAD L 0`): on a link to a v36 master, copies may come back
/// later by up to the time the link took to get here.
pub(crate) fn synced_by_master(s: &mut Session) {
    if !s.link.origin_times {
        s.link.slack = s.link.slack.max(s.connected_for());
    }
}

/// How much later a copy of a record from this peer may be and still count as the same write
/// (see [`RESYNC_SLACK`]): none on a link between `clacksd` servers outside a sync.
pub(crate) fn slack(s: &Session) -> f64 {
    match (s.link.origin_times, s.link.sync_seen.is_some()) {
        (true, false) => 0.0,
        (true, true) => RESYNC_SLACK,
        // A v36 master's sync in progress: its copies of our records carry the offset it took
        // while it worked through our last answer, as long as that took.
        (false, true) => s.link.slack.max(s.connected_for()),
        (false, false) => s.link.slack,
    }
}
