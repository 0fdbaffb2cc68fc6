//! The zero-config data directory: a self-signed certificate, generated credentials, the
//! persistence file and the Unix socket, so `clacksd` with no arguments is a usable, secure server.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::{Config, ServerError};

/// User name written to a new credentials file.
pub const DEFAULT_USER: &str = "clacks";
/// TCP port of the zero-config server.
pub const DEFAULT_PORT: u16 = 49888;
/// The HTTP port of the zero-config start (metrics, health checks, the dashboard): the one
/// after the TLS port, on loopback.
pub const DEFAULT_HTTP_PORT: u16 = DEFAULT_PORT + 1;
/// Most cache memory of the zero-config server: 1 GiB, or half the machine's memory if that is
/// less (see [`default_max_memory`]).
pub const DEFAULT_MAX_MEMORY: usize = 1 << 30;

/// The zero-config memory limit: [`DEFAULT_MAX_MEMORY`], at most half of `MemTotal` in
/// `/proc/meminfo` where that can be read. Writes over it are refused (`reject`).
pub fn default_max_memory() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    total.map_or(DEFAULT_MAX_MEMORY, |t| {
        (t / 2).clamp(1 << 20, DEFAULT_MAX_MEMORY)
    })
}

/// Files of a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The directory.
    pub root: PathBuf,
}

impl DataDir {
    /// A data directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    /// `credentials`: `username=…` and `password=…` lines, mode 0600.
    pub fn credentials(&self) -> PathBuf {
        self.root.join("credentials")
    }
    /// `cert.pem`.
    pub fn cert(&self) -> PathBuf {
        self.root.join("cert.pem")
    }
    /// `key.pem` (mode 0600).
    pub fn key(&self) -> PathBuf {
        self.root.join("key.pem")
    }
    /// `clacks.sock`.
    pub fn socket(&self) -> PathBuf {
        self.root.join("clacks.sock")
    }
    /// `cache.dat`.
    pub fn persistence(&self) -> PathBuf {
        self.root.join("cache.dat")
    }
    /// `journal`.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// Reads `(username, password)` from the credentials file.
    pub fn read_credentials(&self) -> Result<(String, String), ServerError> {
        let path = self.credentials();
        let text = std::fs::read_to_string(&path).map_err(|e| ServerError::io(&path, e))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match (field("username"), field("password")) {
            (Some(u), Some(p)) => Ok((u, p)),
            _ => Err(ServerError::Credentials(format!(
                "{}: needs username=… and password=… lines",
                path.display()
            ))),
        }
    }

    /// Creates what is missing (directory 0700, certificate, credentials) and returns a config
    /// listening with TLS on `127.0.0.1:49888` and on the socket, with persistence and a
    /// journal synced every second.
    pub fn ensure(&self) -> Result<Config, ServerError> {
        std::fs::create_dir_all(&self.root).map_err(|e| ServerError::io(&self.root, e))?;
        let _ = std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700));
        if !self.cert().is_file() || !self.key().is_file() {
            let (cert, key) = crate::tls::self_signed()?;
            write_private(&self.key(), key.as_bytes())?;
            std::fs::write(self.cert(), cert).map_err(|e| ServerError::io(&self.cert(), e))?;
            tracing::info!(cert = %self.cert().display(), "generated a self-signed certificate");
        }
        if !self.credentials().is_file() {
            let password: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            let text = format!("username={DEFAULT_USER}\npassword={password}\n");
            write_private(&self.credentials(), text.as_bytes())?;
            tracing::info!(file = %self.credentials().display(), "generated credentials");
        }
        let (user, password) = self.read_credentials()?;
        let mut config = Config::with_user(user, password);
        config.ips = vec!["127.0.0.1".to_string()];
        config.port = Some(DEFAULT_PORT);
        config.tls_cert = Some(self.cert());
        config.tls_key = Some(self.key());
        config.sockets = vec![self.socket()];
        config.persistence_file = Some(self.persistence());
        config.http = Some(crate::HttpConfig {
            ips: vec!["127.0.0.1".to_string()],
            port: DEFAULT_HTTP_PORT,
        });
        config.journal = Some(crate::JournalConfig {
            file: self.journal(),
            fsync: crate::Fsync::EverySec,
            max_backlog: crate::config::table::JOURNAL_MAX_BACKLOG.default,
        });
        config.max_memory = default_max_memory();
        Ok(config)
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), ServerError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ServerError::io(path, e))?;
    f.write_all(data).map_err(|e| ServerError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_creates_private_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        let config = data.ensure().unwrap();
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(data.credentials()), 0o600);
        assert_eq!(mode(data.key()), 0o600);
        assert_eq!(mode(data.root.clone()), 0o700);
        assert_eq!(config.username, DEFAULT_USER);
        assert!(config.password.len() >= 24);
        assert_eq!(config.ips, vec!["127.0.0.1"]);
        assert_eq!(config.port, Some(DEFAULT_PORT));
        assert_eq!(config.sockets, vec![data.socket()]);
        assert_eq!(config.persistence_file, Some(data.persistence()));
        let http = config.http.as_ref().expect("an HTTP listener");
        assert_eq!(
            (&http.ips[..], http.port, http.needs_auth()),
            (&["127.0.0.1".to_string()][..], DEFAULT_HTTP_PORT, false)
        );
        let journal = config.journal.as_ref().expect("a journal");
        assert_eq!(
            (&journal.file, journal.fsync),
            (&data.journal(), crate::Fsync::EverySec)
        );
        assert!(
            (1 << 20..=DEFAULT_MAX_MEMORY).contains(&config.max_memory),
            "a memory limit: {}",
            config.max_memory
        );
        assert_eq!(
            config.max_memory_policy,
            crate::config::MemoryPolicy::Reject
        );
        crate::tls::acceptor(&data.cert(), &data.key()).unwrap();
        let again = data.ensure().unwrap();
        assert_eq!(again.password, config.password, "credentials are kept");
    }
}
