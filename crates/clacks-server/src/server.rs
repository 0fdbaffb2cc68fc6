//! The server: loading the cache, running the listeners, background tasks and shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clacks_store::{Clock, SystemClock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::{replay, Journal};
use crate::listen::{Accepting, Listeners};
use crate::state::{Peer, Shared};
use crate::stats::Stats;
use crate::transport::Opaque;
use crate::{interclacks, persistence, Config, ServerError};

/// Puts the configured memory limit on the (loaded) cache; warns when there is none.
fn apply_memory_limit(config: &Config, cache: &mut clacks_store::Cache, now: f64) {
    let (limit, policy) = (config.max_memory, config.max_memory_policy);
    if limit == 0 {
        tracing::warn!(
            "no <maxmemory>: the cache may grow until the system runs out of memory; \
             set <maxmemory> (e.g. 1G) and <maxmemorypolicy> (reject or evict)"
        );
        return;
    }
    let evicted = cache.set_memory_limit(limit, policy, now);
    let used = cache.memory().used;
    tracing::info!(limit, ?policy, used, evicted, "cache memory limit");
    if used > limit {
        tracing::warn!(
            limit,
            used,
            "the loaded cache is over <maxmemory>: writes that grow it are refused until it shrinks"
        );
    }
}

/// A configured server, ready to run.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    save_now: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// A server using the system clock (shifted by `time_offset`).
    pub fn new(config: Config) -> Result<Server, ServerError> {
        let clock = SystemClock {
            offset: config.time_offset,
        };
        Server::with_clock(config, Arc::new(clock))
    }

    /// A server whose cache times come from `clock`; loads the persistence file.
    pub fn with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Server, ServerError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        let (mut cache, mut queues, mut save_now) = match &config.persistence_file {
            Some(path) => {
                let loaded = persistence::load(path, clock.now(), config.persistence_on_error)?;
                (loaded.cache, loaded.queues, loaded.save_now)
            }
            None => (Default::default(), Vec::new(), false),
        };
        let stats = Arc::new(Stats::default());
        let journal = match &config.journal {
            Some(j) => {
                let (journal, records) =
                    Journal::open(j, config.persistence_on_error, stats.clone())?;
                if !records.is_empty() {
                    let n = replay::apply(records, &mut cache, &mut queues);
                    tracing::info!(file = %j.file.display(), records = n, entries = cache.len(),
                        "journal replayed");
                    // The next save takes it all in, and the journal starts afresh.
                    save_now = true;
                }
                Some(journal)
            }
            None => None,
        };
        apply_memory_limit(&config, &mut cache, clock.now());
        let shared = Arc::new(Shared::new(config, clock, cache, stats, journal));
        shared.lock().queues.restore(queues);
        Ok(Server {
            shared,
            tls,
            save_now,
        })
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// A token that stops [`Server::run`] when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Serves one already-connected stream as a plain (non-TLS) client connection until it
    /// closes. Used for Unix sockets and for in-memory streams in tests.
    pub async fn serve_stream<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        crate::conn::serve(
            self.shared.clone(),
            Opaque(Box::pin(stream)),
            &Peer::Unix,
            &self.shared.shutdown,
            None,
        )
        .await;
    }

    /// Accepts and serves connections until `shutdown` completes, a signal the caller wires in,
    /// or `OVERHEAD S`. Then: stop accepting, save persistence, send `QUIT` to every connection,
    /// close them (waiting at most 5 s) and remove the socket files.
    pub async fn run(self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        let shared = self.shared.clone();
        let stop = shared.shutdown.clone();
        let tracker = TaskTracker::new();
        let accepting = Accepting::new(shared.clone(), tracker.clone());
        let socket_files = crate::listen::start(listeners, self.tls.as_ref(), &accepting);
        let persist = shared.config.persistence_file.clone().map(|path| {
            tokio::spawn(persistence::persist_loop(
                shared.clone(),
                path,
                self.save_now,
                stop.clone(),
            ))
        });
        tracker.spawn(cleanup_loop(shared.clone(), stop.clone()));
        tracker.spawn(queue_timer_loop(shared.clone(), stop.clone()));
        if let Some(master) = shared.config.master.clone() {
            tracker.spawn(interclacks::master::run(master, accepting.clone()));
        }

        tokio::select! {
            () = shutdown => tracing::info!("shutdown requested"),
            () = stop.cancelled() => tracing::info!("shutdown requested through the shutdown token (OVERHEAD S)"),
        }
        stop.cancel();
        if let Some(task) = persist {
            let _ = task.await;
        }
        accepting.conns.cancel();
        shared.lock().conns.kick_all();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 5 s; closing anyway");
        }
        for file in socket_files {
            file.remove();
        }
        if let Some(journal) = &shared.journal {
            journal.stop();
            let end = journal.appended();
            if tokio::time::timeout(Duration::from_secs(10), journal.synced(end))
                .await
                .is_err()
            {
                tracing::error!("the journal could not be synced at stop");
            }
        }
        tracing::info!(stats = ?shared.stats.snapshot(), "server stopped");
    }
}

async fn cleanup_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let interval = shared
        .config
        .cache_clean_interval
        .max(Duration::from_millis(100));
    loop {
        shared.cleanup();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Ends queue waits and leases when their time comes.
async fn queue_timer_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let wake = shared.lock().queues.wake();
    loop {
        let next = shared.lock().fire_queue_timers();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
            () = due => {}
        }
    }
}
