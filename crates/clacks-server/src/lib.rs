//! The Clacks server: listeners (TLS over TCP, Unix sockets), connections, command execution,
//! fan-out, persistence and configuration. The `clacksd` binary (crate `clacksd`) is a thin
//! wrapper around [`Server`].
//!
//! ```no_run
//! use clacks_server::{Config, Listeners, Server};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::with_user("admin", "secret");
//! config.sockets = vec!["/tmp/clacks.sock".into()];
//! let listeners = Listeners::bind(&config).await?;
//! let server = Server::new(config)?;
//! server.run(listeners, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

mod auth;
mod cmd;
pub mod config;
mod conn;
pub mod datadir;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod interclacks;
mod journal;
mod listen;
mod memcache;
mod mutation;
mod outbox;
mod persistence;
mod server;
mod session;
mod state;
pub mod stats;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod tls;
mod transport;

use std::path::{Path, PathBuf};

pub use config::{
    Config, ConfigError, Fsync, HttpConfig, JournalConfig, Memcached, Overflow, QueueConfig,
    QueueLimits, RegistryConfig,
};
pub use listen::{Listeners, Protocol, Socket};
pub use server::Server;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address or socket path.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS certificate or key problem.
    #[error("TLS: {0}")]
    Tls(String),
    /// The persistence file exists but none of it (nor its backups) can be read; the server
    /// refuses to start rather than replace it.
    #[error(
        "persistence file {path} cannot be read, not starting (the file is left as it is): \
         {problem}. To move the damaged file aside and start with an empty cache, run clacksd \
         with --persistence-on-error moveaside or set \
         <persistanceonerror>moveaside</persistanceonerror> in the config"
    )]
    Persistence {
        /// The configured persistence file.
        path: PathBuf,
        /// Each damaged file with where and why reading it failed.
        problem: String,
    },
    /// The journal is damaged before its end; the server refuses to start rather than lose
    /// the changes after the damage.
    #[error(
        "journal {path} is damaged, not starting (the file is left as it is): {problem}. To \
         move it aside and start from the persistence file alone (without the changes in the \
         journal), run clacksd with --persistence-on-error moveaside or set \
         <persistanceonerror>moveaside</persistanceonerror> in the config"
    )]
    Journal {
        /// The damaged journal file.
        path: PathBuf,
        /// Where and what.
        problem: String,
    },
    /// A malformed credentials file.
    #[error("credentials: {0}")]
    Credentials(String),
}

impl ServerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ServerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
