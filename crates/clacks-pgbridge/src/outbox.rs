//! The durable mode: the functions installed with `--init-functions --outbox` add each command
//! as a row of `clacks_outbox` in the caller's transaction, and the bridge relays the rows in
//! `id` order and deletes them once Clacks has confirmed them.
//!
//! One batch is one transaction: it takes the outbox's advisory lock (so the batches of several
//! bridges on one outbox run one after the other, and commands reach Clacks in `id` order
//! whichever bridge relays them), `SELECT … FOR UPDATE SKIP LOCKED` takes up to
//! [`Options::outbox_batch`] rows no other bridge holds, each is sent and confirmed (`FLUSH`),
//! and the rows that are done are deleted in the same transaction. A bridge that finds the lock
//! taken tries again shortly, so a second bridge is a standby that takes over at once. A row is done when Clacks
//! took it, when its payload is rejected, or when Clacks refused it for a reason of its own
//! (logged and counted, as without the outbox). When Clacks does not take a command — the
//! connection is down, or the user may not write — the batch stops there: what was done is
//! deleted, the rest stays for a later try. INCREMENT and DECREMENT whose outcome is unknown
//! (the connection broke after they were written) are not sent again.
//!
//! A row is relayed twice only if the bridge or its PostgreSQL session dies between Clacks
//! confirming it and the delete committing (at most one batch).
use std::sync::atomic::Ordering;
use std::time::Duration;

use clacks_client::{Client, ClientError, ErrorKind};
use tokio_postgres::error::SqlState;
use tracing::{debug, warn};

use crate::bridge::{send, Options, Stats, WarnLimit};
use crate::payload::{self, Relay};
use crate::sql::OUTBOX_TABLE;

/// The advisory lock key a batch holds (`clacks` in ASCII).
const LOCK: i64 = 0x636c_6163_6b73;

/// Why a batch stopped early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Another bridge is relaying a batch; nothing was taken.
    Busy,
    /// Clacks did not take a command; the rows from it on are left for a later try.
    Wait,
    /// The PostgreSQL session failed.
    Lost(String),
}

/// Whether the outbox keeps a row whose send failed with `e`, to retry later.
fn keeps(e: &ClientError, relay: &Relay) -> bool {
    match e.kind() {
        // Not sent, or the user may not write at all (permissions are per user): every later
        // row would fail the same way.
        ErrorKind::Connection | ErrorKind::Auth | ErrorKind::Closed => true,
        ErrorKind::Refused => matches!(e, ClientError::PermissionDenied(_)),
        ErrorKind::Timeout | ErrorKind::OutcomeUnknown => relay.is_idempotent(),
        _ => false,
    }
}

/// Relays one batch; the number of rows taken, which is below `outbox_batch` when the outbox
/// held no more rows free to take.
pub(crate) async fn batch(
    pg: &mut tokio_postgres::Client,
    clacks: &Client,
    opts: &Options,
    stats: &Stats,
    limit: &mut WarnLimit,
) -> Result<usize, Stop> {
    let within = opts.connect_timeout;
    let tx = bounded(within, pg.transaction()).await?;
    let locked = bounded(
        within,
        tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK]),
    )
    .await?;
    if !locked.get::<_, bool>(0) {
        bounded(within, tx.commit()).await?;
        return Err(Stop::Busy);
    }
    let select = format!(
        "SELECT id, payload FROM {OUTBOX_TABLE} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
    );
    let size = i64::try_from(opts.outbox_batch).unwrap_or(i64::MAX);
    let rows = bounded(within, tx.query(&select, &[&size])).await?;
    let mut done: Vec<i64> = Vec::with_capacity(rows.len());
    let mut stopped = false;
    for row in &rows {
        let id: i64 = row.get(0);
        let text: String = row.get(1);
        let relay = match payload::parse(&text) {
            Ok(relay) => relay,
            Err(e) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                if limit.allow() {
                    warn!(id, error = %e, payload = %crate::bridge::shorten(&text),
                        "outbox row rejected, not relayed; deleted");
                }
                done.push(id);
                continue;
            }
        };
        match send(clacks, &relay).await {
            Ok(()) => {
                stats.relayed.fetch_add(1, Ordering::Relaxed);
                debug!(
                    id,
                    command = relay.command(),
                    name = relay.name(),
                    "relayed"
                );
            }
            Err(e) if keeps(&e, &relay) => {
                warn!(id, command = relay.command(), name = relay.name(), error = %e,
                    "Clacks did not take the command; the outbox keeps it and the rows after it");
                stopped = true;
                break;
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                warn!(id, command = relay.command(), name = relay.name(), error = %e,
                    "relay failed; outbox row deleted");
            }
        }
        done.push(id);
    }
    if !done.is_empty() {
        let delete = format!("DELETE FROM {OUTBOX_TABLE} WHERE id = ANY($1)");
        bounded(within, tx.execute(&delete, &[&done])).await?;
    }
    bounded(within, tx.commit()).await?;
    stats
        .outbox_rows
        .fetch_add(done.len() as u64, Ordering::Relaxed);
    if stopped {
        Err(Stop::Wait)
    } else {
        Ok(rows.len())
    }
}

/// A PostgreSQL call bounded by `within`; a missing outbox table is named as such.
async fn bounded<T>(
    within: Duration,
    call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Stop> {
    match tokio::time::timeout(within, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Err(Stop::Lost(format!(
            "{e}: install the outbox with clacks-pgbridge --init-functions --outbox"
        ))),
        Ok(Err(e)) => Err(Stop::Lost(e.to_string())),
        Err(_) => Err(Stop::Lost(format!("no answer within {within:?}"))),
    }
}

/// Without the durable mode: warns when rows wait in an outbox (the functions were installed
/// with `--outbox`, so they would never be relayed).
pub(crate) async fn warn_if_waiting(pg: &tokio_postgres::Client, within: Duration) {
    let found = format!("SELECT to_regclass('{OUTBOX_TABLE}') IS NOT NULL");
    let waiting = format!("SELECT EXISTS (SELECT 1 FROM {OUTBOX_TABLE})");
    let ask = |query: String| async move {
        matches!(
            tokio::time::timeout(within, pg.query_one(&query, &[])).await,
            Ok(Ok(row)) if row.get::<_, bool>(0)
        )
    };
    if ask(found).await && ask(waiting).await {
        warn!(
            table = OUTBOX_TABLE,
            "rows wait in the outbox (functions installed with --outbox): run the bridge with --outbox to relay them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_outbox_keeps() {
        let (store, incr) = crate::payload::store_and_increment();
        let unknown = ClientError::OutcomeUnknown {
            command: "X".into(),
            reason: "cut".into(),
        };
        let refused = ClientError::Refused {
            command: "X".into(),
            reason: "out_of_memory".into(),
        };
        for relay in [&store, &incr] {
            assert!(keeps(&ClientError::QueueFull(0), relay));
            assert!(keeps(&ClientError::AuthFailed, relay));
            assert!(keeps(&ClientError::PermissionDenied("X".into()), relay));
            assert!(!keeps(&refused, relay));
            assert!(!keeps(&ClientError::InvalidArgument("x".into()), relay));
        }
        assert!(keeps(&unknown, &store));
        assert!(!keeps(&unknown, &incr));
        assert!(!keeps(&ClientError::Timeout(Duration::from_secs(1)), &incr));
    }
}
