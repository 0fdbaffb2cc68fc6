//! The journal's writer thread: writes what collected, rotates files, syncs by the policy and
//! wakes the connections that wait for a sync.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{lock, prev_path, record, Journal};
use crate::config::Fsync;
use crate::stats::Stats;
use crate::ServerError;

/// `everysec`: the longest time between a write and its sync.
const EVERY: Duration = Duration::from_secs(1);

/// With `everysec` and `no`, how long the writer lets changes collect after the first one
/// woke it.
const LINGER: Duration = Duration::from_millis(5);

/// How often an idle writer looks whether the server is still there.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// After a failed write or sync, the wait before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// Opens `<file>` for appending (mode 0600), `size` bytes of it valid; a new or empty file gets
/// the header.
pub(super) fn open_current(path: &Path, size: u64) -> Result<File, ServerError> {
    let mut f = File::options()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ServerError::io(path, e))?;
    if size < record::HEADER.len() as u64 {
        f.set_len(0).map_err(|e| ServerError::io(path, e))?;
        f.write_all(record::HEADER)
            .and_then(|()| f.sync_all())
            .map_err(|e| ServerError::io(path, e))?;
        sync_dir(path);
    }
    Ok(f)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// The file being written and what is known of it.
struct Out {
    file: File,
    /// Bytes of it that are valid (a failed write is cut back to this).
    size: u64,
    /// Position (since start) of the end of what was written.
    written: u64,
    /// Whether something written is not synced yet.
    dirty: bool,
    last_sync: Instant,
}

/// Runs until [`Journal::stop`].
pub(super) fn run(journal: &Journal, file: File) {
    let inner = &journal.inner;
    let size = file.metadata().map_or(0, |m| m.len());
    let mut out = Out {
        file,
        size,
        written: 0,
        dirty: false,
        last_sync: Instant::now(),
    };
    let mut spare: Vec<u8> = Vec::new();
    let mut failed = false;
    loop {
        let (data, rotate_at, drop_prev, stop) = {
            let mut p = lock(&inner.pending);
            loop {
                // Nobody else holds the journal: the server is gone.
                p.stop |= std::sync::Arc::strong_count(inner) == 1;
                if !p.buf.is_empty() || p.stop || p.drop_prev {
                    break;
                }
                let everysec = inner.fsync == Fsync::EverySec && out.dirty;
                let left = if everysec {
                    EVERY.saturating_sub(out.last_sync.elapsed())
                } else {
                    IDLE_CHECK
                };
                if left.is_zero() {
                    break;
                }
                p.sleeping = true;
                p = inner
                    .work
                    .wait_timeout(p, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                p.sleeping = false;
                if !p.buf.is_empty() && inner.fsync != Fsync::Always {
                    // Not waited for: let more changes collect, for fewer, larger writes.
                    drop(p);
                    std::thread::sleep(LINGER);
                    p = lock(&inner.pending);
                }
            }
            spare.clear();
            let data = std::mem::replace(&mut p.buf, std::mem::take(&mut spare));
            (
                data,
                p.rotate_at.take(),
                std::mem::take(&mut p.drop_prev),
                p.stop,
            )
        };
        let (before, after) = data.split_at(rotate_at.unwrap_or(data.len()));
        // Until it works: what was taken must reach the files, in order; a failed step is
        // tried again from where it failed (a failed write leaves nothing behind).
        let mut step = 0;
        while step < 3 {
            let done = match step {
                0 => write(journal, &mut out, before),
                1 if rotate_at.is_some() => rotate(journal, &mut out),
                1 => Ok(()),
                _ => write(journal, &mut out, after),
            };
            match done {
                Ok(()) => step += 1,
                Err(e) => {
                    Stats::bump(&inner.stats.journal_errors);
                    tracing::error!(file = %inner.path.display(), error = %e,
                        "journal write failed; retrying (acknowledgements wait)");
                    std::thread::sleep(RETRY);
                }
            }
        }
        let sync = match inner.fsync {
            Fsync::Always => true,
            Fsync::EverySec => out.dirty && out.last_sync.elapsed() >= EVERY,
            Fsync::No => false,
        };
        if failed {
            // Nothing is ever marked synced again: see below.
        } else if sync || stop {
            if let Err(e) = sync_now(journal, &mut out) {
                // After a failed sync the OS may have dropped the data it could not write and
                // report the next sync as a success: nothing written since the last good sync
                // can be called durable any more.
                failed = true;
                Stats::bump(&inner.stats.journal_errors);
                tracing::error!(file = %inner.path.display(), error = %e,
                    "journal sync failed: from now on no change is acknowledged as synced \
                     (with <fsync>always, replies wait); restart the server once the disk is \
                     fixed, it replays what reached the journal");
            }
        } else if inner.fsync == Fsync::No {
            // Handed to the OS is as far as `no` goes.
            mark_synced(journal, out.written);
        }
        if drop_prev {
            let prev = prev_path(&inner.path);
            match std::fs::remove_file(&prev) {
                Ok(()) => sync_dir(&prev),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %prev.display(), error = %e, "cannot delete the old journal")
                }
            }
            lock(&inner.pending).has_prev = false;
        }
        spare = data;
        if stop {
            return;
        }
    }
}

/// Appends `data`; on failure the file is cut back to its valid size.
fn write(journal: &Journal, out: &mut Out, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if let Err(e) = out.file.write_all(data) {
        let _ = out.file.set_len(out.size);
        let _ = out.file.seek(SeekFrom::End(0));
        return Err(e);
    }
    out.size += data.len() as u64;
    out.written += data.len() as u64;
    journal.inner.written.store(out.written, Ordering::Release);
    out.dirty = true;
    journal
        .inner
        .stats
        .journal_bytes
        .store(out.size, Ordering::Relaxed);
    Ok(())
}

/// Syncs the current file, renames it `<file>.prev` and starts a new `<file>`.
fn rotate(journal: &Journal, out: &mut Out) -> std::io::Result<()> {
    let path = &journal.inner.path;
    if out.dirty {
        sync_now(journal, out)?;
    }
    match std::fs::rename(path, prev_path(path)) {
        Ok(()) => {}
        // Tried again after a failure: the rename was done already.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && prev_path(path).exists() => {}
        Err(e) => return Err(e),
    }
    let file = open_current(path, 0).map_err(std::io::Error::other)?;
    out.file = file;
    out.size = record::HEADER.len() as u64;
    Stats::bump(&journal.inner.stats.journal_rotations);
    Ok(())
}

fn sync_now(journal: &Journal, out: &mut Out) -> std::io::Result<()> {
    let stats = &journal.inner.stats;
    let started = Instant::now();
    out.file.sync_data()?;
    let took = started.elapsed().as_micros() as u64;
    Stats::bump(&stats.journal_fsyncs);
    Stats::add(&stats.journal_fsync_micros, took);
    stats
        .journal_fsync_last_micros
        .store(took, Ordering::Relaxed);
    out.dirty = false;
    out.last_sync = Instant::now();
    mark_synced(journal, out.written);
    Ok(())
}

/// Everything up to `position` is on disk: wakes who waited for it.
fn mark_synced(journal: &Journal, position: u64) {
    let inner = &journal.inner;
    let mut waiters = lock(&inner.waiters);
    inner.synced.store(position, Ordering::Release);
    if inner.appended.load(Ordering::Acquire) <= position {
        inner.unsynced_since.store(0, Ordering::Relaxed);
    }
    waiters.retain(|(at, waker)| {
        if *at <= position {
            waker.wake_by_ref();
            false
        } else {
            true
        }
    });
}
