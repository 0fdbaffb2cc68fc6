//! Loading and saving the persistence file: the `<file>`, `<file>_bck`, `<file>_` fallback chain
//! on load; on save the current file is copied to `_bck`, the new one written to `_`, fsynced
//! and renamed over the file. Every file is created with mode 0600.
//!
//! A file that exists but cannot be read is never overwritten: when a later file of the chain
//! loads, the damaged ones are first renamed aside (`<name>.bad-<unix time>`); when none loads,
//! the server refuses to start unless `<persistanceonerror>` is `moveaside`, in which case the
//! damaged files are renamed aside and the server starts empty.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clacks_store::persist::{self, Format};
use clacks_store::Cache;

use crate::config::PersistenceOnError;
use crate::ServerError;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// What loading found.
pub(crate) struct Loaded {
    pub(crate) cache: Cache,
    /// Whether to save soon (loaded from a fallback, upgraded, or started empty).
    pub(crate) save_now: bool,
}

/// A file of the chain that exists but could not be read.
struct Damaged {
    path: PathBuf,
    problem: String,
}

/// Loads the cache, trying the file, then `_bck`, then `_`. No file at all is a first start
/// (empty cache). Files that exist but cannot be read are kept aside before a later one is
/// used; if none can be read, `on_error` decides: refuse to start, or keep them aside and start
/// empty.
pub(crate) fn load(
    path: &Path,
    now: f64,
    on_error: PersistenceOnError,
) -> Result<Loaded, ServerError> {
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
        match persist::decode(&data, now) {
            Ok((cache, format)) => {
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
                tracing::info!(file = %candidate.display(), entries = cache.len(), ?format, "persistence file loaded");
                return Ok(Loaded {
                    cache,
                    save_now: i > 0 || format == Format::Legacy,
                });
            }
            Err(e) => damaged.push(Damaged {
                path: candidate.clone(),
                problem: e.to_string(),
            }),
        }
    }
    if damaged.is_empty() {
        tracing::info!(file = %path.display(), "no persistence file yet, starting with an empty cache");
        return Ok(Loaded {
            cache: Cache::default(),
            save_now: true,
        });
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
            tracing::warn!(file = %path.display(), "starting with an empty cache");
            Ok(Loaded {
                cache: Cache::default(),
                save_now: true,
            })
        }
    }
}

/// Renames `path` to `<path>.bad-<unix time>` (with `.1`, `.2`, … if that exists), never
/// replacing another file. Returns the new name.
fn move_aside(path: &Path) -> Result<PathBuf, ServerError> {
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
