//! Loading and saving the persistence file: the `<file>`, `<file>_bck`, `<file>_` fallback chain
//! on load; on save the current file is copied to `_bck`, the new one written to `_`, fsynced
//! and renamed over the file. Every file is created with mode 0600. The save loop takes its
//! snapshot of the running cache in chunks, without stopping the server.
//!
//! A file that exists but cannot be read is never overwritten: when a later file of the chain
//! loads, the damaged ones are first renamed aside (`<name>.bad-<unix time>`); when none loads,
//! the server refuses to start unless `<persistanceonerror>` is `moveaside`, in which case the
//! damaged files are renamed aside and the server starts empty.
//!
//! The work queues are saved with the cache, by the same rules, in a file of their own
//! ([`queues`]), `<persistancefile>.queues`.

mod queues;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clacks_store::persist::{self, Format};
use clacks_store::Cache;
use tokio_util::sync::CancellationToken;

use crate::config::PersistenceOnError;
use crate::state::queues::Saved;
use crate::state::Shared;
use crate::stats::Stats;
use crate::ServerError;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The queues' file beside the cache file `path`.
fn queue_path(path: &Path) -> PathBuf {
    with_suffix(path, ".queues")
}

/// What loading found.
pub(crate) struct Loaded {
    pub(crate) cache: Cache,
    /// The work queues' messages.
    pub(crate) queues: Vec<Saved>,
    /// Whether to save soon (loaded from a fallback, upgraded, or started empty).
    pub(crate) save_now: bool,
}

/// A file of the chain that exists but could not be read.
struct Damaged {
    path: PathBuf,
    problem: String,
}

/// Loads the cache and the work queues (each from its file, then `_bck`, then `_`).
pub(crate) fn load(
    path: &Path,
    now: f64,
    on_error: PersistenceOnError,
) -> Result<Loaded, ServerError> {
    let decode_cache = |data: &[u8]| {
        persist::decode(data, now)
            .map(|(cache, format)| (cache, format == Format::Legacy))
            .map_err(|e| e.to_string())
    };
    let (cache, upgraded) = load_chain(path, decode_cache, on_error)?;
    let decode_queues = |data: &[u8]| queues::read(data).map(|q| (q, false));
    let (saved, _) = load_chain(&queue_path(path), decode_queues, on_error)?;
    let (cache, saved) = (cache.unwrap_or_default(), saved.unwrap_or_default());
    let messages: usize = saved.iter().map(|(_, m)| m.len()).sum();
    tracing::info!(file = %path.display(), entries = cache.len(), messages, "persistence loaded");
    Ok(Loaded {
        cache,
        queues: saved,
        save_now: upgraded,
    })
}

/// Loads one file, trying it, then `_bck`, then `_`; `decode` says what it holds and whether
/// to save soon (an old format). `None` and a save soon when no file is there yet (a first
/// start) or none could be read and `on_error` says to start empty. Files that exist but cannot
/// be read are kept aside before a later one is used; if none can be read, `on_error` decides:
/// refuse to start, or keep them aside and start empty.
fn load_chain<T>(
    path: &Path,
    decode: impl Fn(&[u8]) -> Result<(T, bool), String>,
    on_error: PersistenceOnError,
) -> Result<(Option<T>, bool), ServerError> {
    let candidates = [
        path.to_path_buf(),
        with_suffix(path, "_bck"),
        with_suffix(path, "_"),
    ];
    let mut damaged: Vec<Damaged> = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        let data = match std::fs::read(candidate) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                damaged.push(Damaged {
                    path: candidate.clone(),
                    problem: format!("cannot read it: {e}"),
                });
                continue;
            }
        };
        match decode(&data) {
            Ok((loaded, old_format)) => {
                for d in &damaged {
                    let aside = move_aside(&d.path)?;
                    tracing::warn!(
                        file = %d.path.display(),
                        kept_as = %aside.display(),
                        error = %d.problem,
                        "damaged persistence file kept aside under another name; loading {} instead",
                        candidate.display()
                    );
                }
                tracing::debug!(file = %candidate.display(), "persistence file read");
                return Ok((Some(loaded), i > 0 || old_format));
            }
            Err(problem) => damaged.push(Damaged {
                path: candidate.clone(),
                problem,
            }),
        }
    }
    if damaged.is_empty() {
        tracing::info!(file = %path.display(), "no persistence file yet, starting empty");
        return Ok((None, true));
    }
    match on_error {
        PersistenceOnError::Refuse => Err(ServerError::Persistence {
            path: path.to_path_buf(),
            problem: damaged
                .iter()
                .map(|d| format!("{}: {}", d.path.display(), d.problem))
                .collect::<Vec<_>>()
                .join("; "),
        }),
        PersistenceOnError::MoveAside => {
            for d in &damaged {
                let aside = move_aside(&d.path)?;
                tracing::warn!(
                    file = %d.path.display(),
                    moved_to = %aside.display(),
                    error = %d.problem,
                    "damaged persistence file moved aside (persistanceonerror moveaside)"
                );
            }
            tracing::warn!(file = %path.display(), "starting empty");
            Ok((None, true))
        }
    }
}

/// Renames `path` to `<path>.bad-<unix time>` (with `.1`, `.2`, … if that exists), never
/// replacing another file. Returns the new name.
pub(crate) fn move_aside(path: &Path) -> Result<PathBuf, ServerError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = with_suffix(path, &format!(".bad-{secs}"));
    for n in 0..1000u32 {
        let target = if n == 0 {
            base.clone()
        } else {
            with_suffix(&base, &format!(".{n}"))
        };
        // A hard link fails if the target exists, so nothing is ever replaced.
        match std::fs::hard_link(path, &target) {
            Ok(()) => {
                std::fs::remove_file(path).map_err(|e| ServerError::io(path, e))?;
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !target.exists() => {
                std::fs::rename(path, &target).map_err(|e| ServerError::io(path, e))?;
                return Ok(target);
            }
            Err(e) => return Err(ServerError::io(path, e)),
        }
    }
    Err(ServerError::io(
        path,
        std::io::Error::other("no free name to move the damaged file aside"),
    ))
}

/// Creates (or truncates) `path` for writing with mode 0600, also when it existed before with
/// another mode.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Copies `from` to `to`, creating `to` with mode 0600.
fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let mut dst = create_private(to)?;
    std::io::copy(&mut src, &mut dst)?;
    Ok(())
}

/// Writes the file atomically to `path` with `write`, keeping the previous file as `_bck`.
pub(crate) fn save(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temp = with_suffix(path, "_");
    let backup = with_suffix(path, "_bck");
    if path.is_file() {
        copy_private(path, &backup)?;
    }
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, create_private(&temp)?);
        write(&mut f)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    if !backup.is_file() {
        copy_private(path, &backup)?;
    }
    Ok(())
}

/// Saves when the cache changed, at most every `persistanceinterval`, and once more at stop.
pub(crate) async fn persist_loop(
    shared: Arc<Shared>,
    path: PathBuf,
    mut force: bool,
    stop: CancellationToken,
) {
    let interval = shared
        .config
        .persistence_interval
        .max(Duration::from_millis(100));
    let generations = || {
        let state = shared.lock();
        (state.cache.generation(), state.queues.generation())
    };
    let mut saved = generations();
    // The generations, and when a save is to begin, the journal's cut, under one lock: every
    // change after the cut is in the new journal file, so the save need not hold it.
    let begin = |saved: (u64, u64), all: bool| {
        let state = shared.lock();
        let now = (state.cache.generation(), state.queues.generation());
        if let Some(journal) = state.journal.as_ref().filter(|_| all || now != saved) {
            journal.rotate();
        }
        now
    };
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(interval) => false,
        };
        // Each file is written when what it holds changed (both when forced or stopping).
        let all = force || stopping;
        let now = begin(saved, all);
        let (cache, queues) = (all || now.0 != saved.0, all || now.1 != saved.1);
        if cache || queues {
            let (s, target) = (shared.clone(), path.clone());
            let save = move || -> std::io::Result<(u64, u64)> {
                let mut done = saved;
                if cache {
                    done.0 = save_cache(&s, &target)?;
                }
                if queues {
                    done.1 = save_queues(&s, &target)?;
                }
                Ok(done)
            };
            match tokio::task::spawn_blocking(save).await {
                Ok(Ok(done)) => {
                    if let Some(journal) = &shared.journal {
                        journal.saved();
                    }
                    Stats::bump(&shared.stats.persistence_saves);
                    tracing::debug!(file = %path.display(), cache, queues, "persistence saved");
                    saved = done;
                    force = false;
                }
                Ok(Err(e)) => {
                    Stats::bump(&shared.stats.persistence_errors);
                    tracing::error!(file = %path.display(), error = %e, "saving persistence file failed");
                }
                Err(e) => tracing::error!(error = %e, "persistence task failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// Records copied per hold of the lock while taking a snapshot.
const SNAPSHOT_CHUNK: usize = 2048;

/// Takes a snapshot of the cache without stopping the server, and writes it to `path`. Returns
/// the generation the snapshot is complete up to.
///
/// Under the lock only cheap work is done: the records are copied in chunks of
/// [`SNAPSHOT_CHUNK`] (values are reference-counted, so a copy is not a copy of the bytes;
/// about 0.5 ms a chunk), releasing the lock and pausing briefly between chunks so that waiting
/// connections get it. Sorting and encoding run without it. The chunks are taken from the end
/// of the cache's order towards its start, which sees every record present throughout (see
/// [`Cache::records_at`](clacks_store::Cache::records_at)); a record seen twice is written as
/// last seen. So each record in the file is one consistent record, but records changed while
/// the snapshot is taken may be in the file in their old or new state, and a key written
/// meanwhile may be missing. The generation returned is the one read with the first chunk: any
/// change during the snapshot moves the cache past it, so the next interval saves again and
/// the file catches up.
fn save_cache(shared: &Shared, path: &Path) -> std::io::Result<u64> {
    let started = std::time::Instant::now();
    let (generation, mut end) = {
        let state = shared.lock();
        (state.cache.generation(), state.cache.len())
    };
    let mut records = Vec::with_capacity(end);
    let mut longest_chunk = Duration::ZERO;
    while end > 0 {
        let start = end.saturating_sub(SNAPSHOT_CHUNK);
        let state = shared.lock();
        let t = std::time::Instant::now();
        records.extend(
            state
                .cache
                .records_at(start..end)
                .map(|(k, e)| (k.clone(), e.clone())),
        );
        longest_chunk = longest_chunk.max(t.elapsed());
        drop(state);
        end = start;
        // A mutex released and at once taken again by the same thread usually goes back to
        // that thread: pause so that a connection waiting for the lock gets it in between.
        std::thread::sleep(Duration::from_micros(50));
    }
    let copied = started.elapsed();
    save(path, |out| {
        clacks_store::persist::write_records(&mut records, out)
    })?;
    tracing::debug!(
        records = records.len(),
        longest_chunk_lock_us = longest_chunk.as_micros() as u64,
        copy_ms = copied.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "snapshot taken"
    );
    Ok(generation)
}

/// Writes the work queues (copied in one hold of the lock) to their file beside `path`.
/// Returns the generation the copy is of.
fn save_queues(shared: &Shared, path: &Path) -> std::io::Result<u64> {
    let (generation, saved) = {
        let state = shared.lock();
        (state.queues.generation(), state.queues.snapshot())
    };
    save(&queue_path(path), |out| queues::write(&saved, out))?;
    Ok(generation)
}
