//! Loading and saving the persistence file: the `<file>`, `<file>_bck`, `<file>_` fallback chain
//! on load; on save the current file is copied to `_bck`, the new one written to `_`, fsynced
//! and renamed over the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use clacks_store::persist::{self, Format};
use clacks_store::Cache;

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

/// Loads the cache, trying the file, then `_bck`, then `_`; starts empty if none is valid.
pub(crate) fn load(path: &Path, now: f64) -> Loaded {
    let candidates = [
        path.to_path_buf(),
        with_suffix(path, "_bck"),
        with_suffix(path, "_"),
    ];
    for (i, candidate) in candidates.iter().enumerate() {
        let data = match std::fs::read(candidate) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(file = %candidate.display(), error = %e, "cannot read persistence file");
                continue;
            }
        };
        match persist::decode(&data, now) {
            Ok((cache, format)) => {
                tracing::info!(file = %candidate.display(), entries = cache.len(), ?format, "persistence file loaded");
                return Loaded {
                    cache,
                    save_now: i > 0 || format == Format::Legacy,
                };
            }
            Err(e) => {
                tracing::warn!(file = %candidate.display(), error = %e, "invalid persistence file");
            }
        }
    }
    tracing::info!(file = %path.display(), "no valid persistence file, starting with an empty cache");
    Loaded {
        cache: Cache::default(),
        save_now: true,
    }
}

/// Writes `data` atomically to `path`, keeping the previous file as `_bck`.
pub(crate) fn save(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let temp = with_suffix(path, "_");
    let backup = with_suffix(path, "_bck");
    if path.is_file() {
        std::fs::copy(path, &backup)?;
    }
    {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    if !backup.is_file() {
        std::fs::copy(path, &backup)?;
    }
    Ok(())
}
