//! The journal: an append-only file of every change since the last persistence save, so that a
//! server killed between two saves loses nothing it acknowledged (`<fsync>always`), or at most
//! about a second of changes (`everysec`), or what the OS had not written (`no`). See
//! `docs/journal.md`.
//!
//! Changes are encoded ([`record`]) into an in-memory buffer under the state lock, in the order
//! they were made; one writer thread ([`writer`]) writes what collected and, by the policy,
//! `fdatasync`s it, so one sync covers every change that arrived meanwhile, from every connection
//! (group commit). With `always`, a connection that made a change writes nothing more (replies,
//! `FLUSHED`) until the sync that covers it: [`Journal::poll_synced`].
//!
//! The persistence save is the snapshot. When a save begins, the journal is rotated (under the
//! state lock, so the cut falls between two changes): the file so far becomes `<file>.prev` and
//! a new one begins. Once the save is on disk, `<file>.prev` is deleted. At start the snapshot is
//! loaded and `<file>.prev` and `<file>` are replayed ([`replay`]): every record holds the state a
//! change left, so replaying changes the snapshot already has gives the same result.

pub(crate) mod record;
pub(crate) mod replay;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use clacks_store::Entry;

use crate::config::{Fsync, JournalConfig, PersistenceOnError};
use crate::stats::Stats;
use crate::ServerError;
use record::QueueChange;

/// The journal of a server: cheap to clone.
#[derive(Clone)]
pub(crate) struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    fsync: Fsync,
    stats: Arc<Stats>,
    pending: Mutex<Pending>,
    /// Wakes the writer.
    work: Condvar,
    /// Bytes appended since start (a change's position: the end of its record).
    appended: AtomicU64,
    /// Bytes on disk (fsynced; with `no`, written) since start.
    synced: AtomicU64,
    /// Bytes written (handed to the OS) since start.
    written: AtomicU64,
    /// `<maxbacklog>`: appended and not written yet, over which writers wait.
    max_backlog: u64,
    /// Whether the backlog is over `max_backlog` (logged once per episode).
    over: std::sync::atomic::AtomicBool,
    /// Connections waiting for `synced` to reach a position.
    waiters: Mutex<Vec<(u64, Waker)>>,
    /// When the oldest change not yet synced was made (`started` + this many µs, plus one; 0
    /// for none).
    unsynced_since: AtomicU64,
    started: Instant,
}

/// What the writer has to do.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Where in `buf` the next file begins (a rotation).
    rotate_at: Option<usize>,
    /// Whether `<file>.prev` exists (or will, once a pending rotation is done).
    has_prev: bool,
    /// Delete `<file>.prev` (a save is on disk).
    drop_prev: bool,
    stop: bool,
    /// Whether the writer waits for work (an append then wakes it; otherwise it comes by
    /// itself).
    sleeping: bool,
}

/// `<file>.prev`.
fn prev_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".prev");
    PathBuf::from(s)
}

impl Journal {
    /// Reads the journal files (`<file>.prev`, then `<file>`) and starts the writer on `<file>`.
    /// Returns the records to replay. A torn last record is cut off with a warning; damage
    /// before it refuses the start, or, with `moveaside`, moves the file aside (replaying none
    /// of it).
    pub(crate) fn open(
        config: &JournalConfig,
        on_error: PersistenceOnError,
        stats: Arc<Stats>,
    ) -> Result<(Journal, Vec<record::Record>), ServerError> {
        let (path, fsync) = (&config.file, config.fsync);
        let prev = prev_path(path);
        let mut records = Vec::new();
        let mut has_prev = false;
        let mut size = 0;
        for (file, current) in [(&prev, false), (&path.to_path_buf(), true)] {
            let data = match std::fs::read(file) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ServerError::io(file, e)),
            };
            match record::read(&data) {
                Ok(read) => {
                    if read.good_len < data.len() {
                        tracing::warn!(file = %file.display(), offset = read.good_len,
                            dropped_bytes = data.len() - read.good_len,
                            "journal ends in a torn record (a crash mid-write); it is cut off there");
                        truncate(file, read.good_len as u64)?;
                    }
                    records.extend(read.records);
                    has_prev |= !current;
                    if current {
                        size = read.good_len as u64;
                    }
                }
                Err(problem) => match on_error {
                    PersistenceOnError::Refuse => {
                        return Err(ServerError::Journal {
                            path: file.clone(),
                            problem,
                        })
                    }
                    PersistenceOnError::MoveAside => {
                        let aside = crate::persistence::move_aside(file)?;
                        tracing::warn!(file = %file.display(), moved_to = %aside.display(), error = %problem,
                            "damaged journal moved aside (persistanceonerror moveaside); its changes are not replayed");
                        if current {
                            size = 0;
                        }
                    }
                },
            }
        }
        let file = writer::open_current(path, size)?;
        tracing::info!(file = %path.display(), ?fsync, records = records.len(), "journal open");
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            fsync,
            stats,
            pending: Mutex::new(Pending {
                has_prev,
                ..Pending::default()
            }),
            work: Condvar::new(),
            appended: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            written: AtomicU64::new(0),
            max_backlog: config.max_backlog as u64,
            over: std::sync::atomic::AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            unsynced_since: AtomicU64::new(0),
            started: Instant::now(),
        });
        inner
            .stats
            .journal_bytes
            .store(size.max(record::HEADER.len() as u64), Ordering::Relaxed);
        let journal = Journal { inner };
        let w = journal.clone();
        std::thread::Builder::new()
            .name("clacks-journal".into())
            .spawn(move || writer::run(&w, file))
            .map_err(|e| ServerError::io(path, e))?;
        Ok((journal, records))
    }

    /// Whether a connection that changed something must hold its output until the sync that
    /// covers it: always with `always`; with the other modes while more than `<maxbacklog>`
    /// bytes wait to be written (the disk is slower than the changes), so that memory stays
    /// bounded.
    pub(crate) fn must_wait(&self) -> bool {
        let inner = &self.inner;
        if inner.fsync == Fsync::Always {
            return true;
        }
        let backlog = inner.appended.load(Ordering::Acquire)
            - inner
                .written
                .load(Ordering::Acquire)
                .min(inner.appended.load(Ordering::Acquire));
        let over = backlog > inner.max_backlog;
        if over {
            Stats::bump(&inner.stats.journal_backlog_waits);
            if !inner.over.swap(true, Ordering::Relaxed) {
                tracing::warn!(file = %inner.path.display(), backlog, max = inner.max_backlog,
                    "the journal's disk is behind: writers wait for it (journal/maxbacklog)");
            }
        } else if backlog <= inner.max_backlog / 2 && inner.over.swap(false, Ordering::Relaxed) {
            tracing::info!(file = %inner.path.display(), "the journal's disk caught up");
        }
        over
    }

    /// The position after the last change appended.
    pub(crate) fn appended(&self) -> u64 {
        self.inner.appended.load(Ordering::Acquire)
    }

    /// Ready once everything up to `position` is on disk; otherwise the task is woken then.
    pub(crate) fn poll_synced(&self, position: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.synced.load(Ordering::Acquire) >= position {
            return Poll::Ready(());
        }
        let mut waiters = lock(&self.inner.waiters);
        // Checked again under the lock the writer takes to wake: no wake-up is lost.
        if self.inner.synced.load(Ordering::Acquire) >= position {
            return Poll::Ready(());
        }
        waiters.push((position, cx.waker().clone()));
        Poll::Pending
    }

    /// Waits until everything up to `position` is on disk.
    pub(crate) async fn synced(&self, position: u64) {
        std::future::poll_fn(|cx| self.poll_synced(position, cx)).await;
    }

    fn append(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        let inner = &self.inner;
        let mut p = lock(&inner.pending);
        let before = p.buf.len();
        encode(&mut p.buf);
        let added = (p.buf.len() - before) as u64;
        inner.appended.fetch_add(added, Ordering::Release);
        if before == 0 {
            let since = inner.started.elapsed().as_micros() as u64 + 1;
            let _ = inner.unsynced_since.compare_exchange(
                0,
                since,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            if p.sleeping {
                // Woken once; it takes what collected meanwhile.
                p.sleeping = false;
                inner.work.notify_one();
            }
        }
        drop(p);
        Stats::bump(&inner.stats.journal_records);
    }

    /// The cache record of `key` is now `entry`.
    pub(crate) fn write(&self, key: &[u8], entry: &Entry) {
        self.append(|b| record::write(b, key, entry));
    }

    /// `CLEARCACHE` up to `time`.
    pub(crate) fn clear(&self, time: f64) {
        self.append(|b| record::clear(b, time));
    }

    /// memcached `flush_all`.
    pub(crate) fn flush(&self, at: f64, now: f64) {
        self.append(|b| record::flush(b, at, now));
    }

    /// A message added to `queue`.
    pub(crate) fn queue_add(&self, queue: &[u8], seq: u64, deliveries: usize, value: &[u8]) {
        let d = u32::try_from(deliveries).unwrap_or(u32::MAX);
        self.append(|b| record::queue_add(b, queue, seq, d, value));
    }

    /// A message of `queue` gone, returned or leased.
    pub(crate) fn queue_change(&self, change: QueueChange, queue: &[u8], seq: u64) {
        self.append(|b| record::queue_message(b, change, queue, seq));
    }

    /// Every message of `queue` gone.
    pub(crate) fn queue_emptied(&self, queue: &[u8]) {
        self.append(|b| record::queue_emptied(b, queue));
    }

    /// A persistence save begins (under the state lock): what follows goes to a new file,
    /// unless `<file>.prev` is still there (the last save failed), in which case the current
    /// file goes on.
    pub(crate) fn rotate(&self) {
        let mut p = lock(&self.inner.pending);
        if p.has_prev || p.rotate_at.is_some() {
            return;
        }
        p.rotate_at = Some(p.buf.len());
        p.has_prev = true;
        self.inner.work.notify_one();
    }

    /// A persistence save that began after the last [`Journal::rotate`] is on disk: the changes
    /// of `<file>.prev` are all in it.
    pub(crate) fn saved(&self) {
        let mut p = lock(&self.inner.pending);
        if p.has_prev {
            p.drop_prev = true;
            self.inner.work.notify_one();
        }
    }

    /// Writes and syncs what is pending and stops the writer (at shutdown, after the last
    /// save).
    pub(crate) fn stop(&self) {
        let mut p = lock(&self.inner.pending);
        p.stop = true;
        self.inner.work.notify_one();
    }

    /// Seconds since the oldest change not yet on disk was made (0 when none).
    pub(crate) fn unsynced_age(&self) -> f64 {
        match self.inner.unsynced_since.load(Ordering::Relaxed) {
            0 => 0.0,
            since => {
                let now = self.inner.started.elapsed().as_micros() as u64 + 1;
                now.saturating_sub(since) as f64 / 1e6
            }
        }
    }
}

/// Locks a mutex, also when a thread panicked holding it (its data stays consistent: every
/// change under these locks is a single step).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn truncate(path: &Path, len: u64) -> Result<(), ServerError> {
    let f = File::options()
        .write(true)
        .open(path)
        .map_err(|e| ServerError::io(path, e))?;
    f.set_len(len).map_err(|e| ServerError::io(path, e))?;
    f.sync_all().map_err(|e| ServerError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_wait_while_the_backlog_is_over_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            file: dir.path().join("journal"),
            fsync: Fsync::No,
            max_backlog: 1024,
        };
        let stats = Arc::new(Stats::default());
        let (journal, records) =
            Journal::open(&config, PersistenceOnError::Refuse, stats.clone()).unwrap();
        assert!(records.is_empty());
        assert!(!journal.must_wait());
        // As if 4 KiB had been appended and nothing written yet.
        journal.inner.appended.fetch_add(4096, Ordering::Release);
        assert!(journal.must_wait());
        assert_eq!(stats.journal_backlog_waits.load(Ordering::Relaxed), 1);
        journal.inner.written.fetch_add(4096, Ordering::Release);
        assert!(!journal.must_wait());
        journal.stop();
    }
}
