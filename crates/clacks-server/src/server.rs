//! Listeners, accept loops, background tasks and shutdown.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clacks_proto::{Flags, Reply};
use clacks_store::{Clock, SystemClock};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Master;
use crate::hub::{Peer, Shared};
use crate::stats::Stats;
use crate::transport::{Opaque, Transport};
use crate::{persistence, session, Config, ServerError};
use clacks_client::{Target, TlsVerify};
use rand::Rng;

/// Bound listening sockets, handed to [`Server::run`] (so tests can bind port 0 themselves).
#[derive(Debug, Default)]
pub struct Listeners {
    /// TLS-over-TCP listeners.
    pub tcp: Vec<TcpListener>,
    /// Unix socket listeners with their paths (removed at shutdown).
    pub unix: Vec<(UnixListener, PathBuf)>,
    /// memcached text protocol listeners (plain TCP).
    pub memcached_tcp: Vec<TcpListener>,
    /// memcached text protocol Unix sockets with their paths (removed at shutdown).
    pub memcached_unix: Vec<(UnixListener, PathBuf)>,
}

impl Listeners {
    /// Binds every `<ip>` × `<port>` and every `<socket>` of `config`, and those of its
    /// `<memcached>` section. A stale socket file is replaced; `socketchmod` and
    /// `socketcommands` are applied to each socket.
    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let mut out = Listeners {
            tcp: bind_tcp(&config.ips, config.port).await?,
            ..Listeners::default()
        };
        for path in &config.sockets {
            out.unix.push((bind_unix(path, config)?, path.clone()));
        }
        if let Some(m) = &config.memcached {
            out.memcached_tcp = bind_tcp(&m.ips, m.port).await?;
            for path in &m.sockets {
                out.memcached_unix
                    .push((bind_unix(path, config)?, path.clone()));
            }
        }
        Ok(out)
    }
}

async fn bind_tcp(ips: &[String], port: Option<u16>) -> Result<Vec<TcpListener>, ServerError> {
    let mut out = Vec::new();
    let Some(port) = port else {
        return Ok(out);
    };
    for ip in ips {
        let addr = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        let l = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        out.push(l);
    }
    Ok(out)
}

fn bind_unix(path: &Path, config: &Config) -> Result<UnixListener, ServerError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            tracing::info!(path = %path.display(), "removing stale socket file");
            let _ = std::fs::remove_file(path);
        }
    }
    let l = UnixListener::bind(path).map_err(|source| ServerError::Bind {
        addr: path.display().to_string(),
        source,
    })?;
    if let Some(mode) = config.socketchmod {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ServerError::io(path, e))?;
    }
    for cmd in &config.socketcommands {
        tracing::info!(command = %cmd, "running socket command");
        match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::warn!(command = %cmd, status = %s, "socket command failed"),
            Err(e) => tracing::warn!(command = %cmd, error = %e, "socket command failed"),
        }
    }
    Ok(l)
}

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
        let (mut cache, save_now) = match &config.persistence_file {
            Some(path) => {
                let loaded = persistence::load(path, clock.now(), config.persistence_on_error)?;
                (loaded.cache, loaded.save_now)
            }
            None => (Default::default(), false),
        };
        apply_memory_limit(&config, &mut cache, clock.now());
        Ok(Server {
            shared: Arc::new(Shared::new(config, clock, cache)),
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
        let accepting = Accepting {
            shared: shared.clone(),
            limit: Arc::new(Semaphore::new(shared.config.max_connections)),
            tracker: tracker.clone(),
            conns: CancellationToken::new(),
            stop: stop.clone(),
        };
        let mut socket_paths = Vec::new();

        for l in listeners.tcp {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, tls = self.tls.is_some(), "listening on TCP");
            }
            let Some(tls) = self.tls.clone() else {
                tracing::error!("a TCP listener needs a TLS certificate; not serving it");
                continue;
            };
            tracker.spawn(accept_tcp(l, tls, accepting.clone()));
        }
        for (l, path) in listeners.unix {
            tracing::info!(path = %path.display(), "listening on Unix socket");
            socket_paths.push(path);
            tracker.spawn(accept_unix(l, Protocol::Clacks, accepting.clone()));
        }
        for l in listeners.memcached_tcp {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "memcached protocol listening on TCP");
            }
            tracker.spawn(accept_memcached_tcp(l, accepting.clone()));
        }
        for (l, path) in listeners.memcached_unix {
            tracing::info!(path = %path.display(), "memcached protocol listening on Unix socket");
            socket_paths.push(path);
            tracker.spawn(accept_unix(l, Protocol::Memcached, accepting.clone()));
        }
        let persist = shared.config.persistence_file.clone().map(|path| {
            tokio::spawn(persist_loop(
                shared.clone(),
                path,
                self.save_now,
                stop.clone(),
            ))
        });
        tracker.spawn(cleanup_loop(shared.clone(), stop.clone()));
        if let Some(master) = shared.config.master.clone() {
            tracker.spawn(master_loop(master, accepting.clone()));
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
        shared.lock().kick_all();
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 5 s; closing anyway");
        }
        for path in socket_paths {
            let _ = std::fs::remove_file(&path);
        }
        tracing::info!(stats = ?shared.stats.snapshot(), "server stopped");
    }
}

/// What the accept loops share.
#[derive(Clone)]
struct Accepting {
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Parent of every connection's cancellation token.
    conns: CancellationToken,
    /// Stops accepting.
    stop: CancellationToken,
}

impl Accepting {
    /// The next accepted connection, or `None` once the server stops. Accept errors (such as
    /// running out of file descriptors) are logged and retried after a pause.
    async fn next<T, F, Fut>(&self, mut accept: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::io::Result<T>>,
    {
        loop {
            let accepted = tokio::select! {
                () = self.stop.cancelled() => return None,
                a = accept() => a,
            };
            match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A connection slot, if one is free under `maxconnections`.
    fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.limit.clone().try_acquire_owned().ok()
    }

    /// Serves an accepted stream in its own task, holding `slot`; without a slot (over
    /// `maxconnections`) the peer is told why and closed. The task runs exactly the connection's
    /// future, so an idle connection costs no more than that future.
    fn serve<S: Transport>(
        &self,
        protocol: Protocol,
        stream: S,
        peer: Peer,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        let shared = self.shared.clone();
        let Some(slot) = slot else {
            self.tracker
                .spawn(async move { reject(&shared, stream, protocol).await });
            return;
        };
        match protocol {
            Protocol::Clacks => {
                self.tracker.spawn(crate::conn::serve(
                    shared,
                    stream,
                    &peer,
                    &self.conns,
                    Some(slot),
                ));
            }
            Protocol::Memcached => {
                let who = match peer {
                    Peer::Tcp(addr) => addr.to_string(),
                    _ => "unixdomainsocket".to_string(),
                };
                self.tracker.spawn(crate::memcache::serve(
                    shared,
                    stream,
                    who,
                    self.conns.clone(),
                    slot,
                ));
            }
        }
    }
}

async fn accept_tcp(listener: TcpListener, tls: TlsAcceptor, accepting: Accepting) {
    while let Some((tcp, addr)) = accepting.next(|| listener.accept()).await {
        let _ = tcp.set_nodelay(true);
        // The slot is taken before the handshake, so handshakes count towards the limit too.
        let slot = accepting.slot();
        let tls = tls.clone();
        let conn = accepting.clone();
        accepting.tracker.spawn(async move {
            let timeout = conn.shared.config.tls_handshake_timeout;
            let failure = match tokio::time::timeout(timeout, tls.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    conn.serve(Protocol::Clacks, stream, Peer::Tcp(addr), slot);
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_string(),
            };
            Stats::bump(&conn.shared.stats.tls_handshake_failures);
            tracing::info!(peer = %addr, error = %failure, "TLS handshake failed");
        });
    }
}

async fn accept_unix(listener: UnixListener, protocol: Protocol, accepting: Accepting) {
    while let Some((stream, _)) = accepting.next(|| listener.accept()).await {
        accepting.serve(protocol, stream, Peer::Unix, accepting.slot());
    }
}

async fn accept_memcached_tcp(listener: TcpListener, accepting: Accepting) {
    while let Some((tcp, addr)) = accepting.next(|| listener.accept()).await {
        let _ = tcp.set_nodelay(true);
        accepting.serve(Protocol::Memcached, tcp, Peer::Tcp(addr), accepting.slot());
    }
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Clacks,
    Memcached,
}

/// Tells a connection over `maxconnections` why it is refused, then closes it.
async fn reject<S: AsyncWrite + Unpin>(shared: &Shared, mut stream: S, protocol: Protocol) {
    Stats::bump(&shared.stats.connections_rejected);
    tracing::warn!(
        limit = shared.config.max_connections,
        ?protocol,
        "connection refused: too many connections"
    );
    let line = match protocol {
        Protocol::Clacks => Reply::Overhead {
            flags: Flags::ERROR,
            value: "too_many_connections".into(),
        }
        .to_bytes(),
        // memcached's own text for this case.
        Protocol::Memcached => bytes::Bytes::from_static(b"ERROR Too many open connections\r\n"),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    })
    .await;
}

/// Keeps the link to our master up: connect, serve it as an interclacks connection, and after
/// it ends (or a connection attempt fails) try again with backoff and jitter, logging why.
async fn master_loop(master: Master, accepting: Accepting) {
    let shared = accepting.shared.clone();
    let (target, peer) = match &master {
        Master::Tcp { ip, port } => (
            Target::Tls {
                host: ip.clone(),
                port: *port,
                verify: shared.config.master_verify.clone(),
            },
            Peer::Master {
                cid: format!("{ip}:{port}"),
                host: ip.clone(),
                port: port.to_string(),
            },
        ),
        Master::Unix(path) => (
            Target::Unix(path.clone()),
            Peer::Master {
                cid: "unixdomainsocket:interclacksmaster".into(),
                host: String::new(),
                port: String::new(),
            },
        ),
    };
    match (&target, &shared.config.master_verify) {
        (Target::Tls { .. }, TlsVerify::None) => tracing::warn!(
            ?master,
            "the link to the master accepts any TLS certificate (no <master><cafile> or <pin>): \
             the main user's password is sent to whoever answers at that address"
        ),
        (Target::Tls { .. }, verify) => {
            tracing::info!(?master, ?verify, "the master's certificate is checked");
        }
        (Target::Unix(_), _) => {}
    }
    let limit = shared
        .config
        .interclacks_reconnect_timeout
        .max(Duration::from_millis(100));
    let connect_timeout = Duration::from_secs(5) + shared.config.tls_handshake_timeout;
    let mut failures: u32 = 0;
    loop {
        let started = tokio::time::Instant::now();
        let attempt = tokio::time::timeout(connect_timeout, clacks_client::connect_stream(&target));
        let outcome = tokio::select! {
            () = accepting.stop.cancelled() => return,
            r = attempt => r,
        };
        match outcome {
            Ok(Ok(stream)) => {
                tracing::info!(?master, "connected to master");
                crate::conn::serve(shared.clone(), stream, &peer, &accepting.conns, None).await;
                tracing::warn!(?master, "link to master closed");
                if started.elapsed() > limit {
                    failures = 0;
                }
            }
            Ok(Err(e)) => tracing::warn!(?master, error = %e, "cannot connect to master"),
            Err(_) => tracing::warn!(?master, "connecting to master timed out"),
        }
        failures = failures.saturating_add(1);
        let base = Duration::from_millis(250)
            .saturating_mul(2u32.saturating_pow(failures.min(16)))
            .min(limit);
        let delay = base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        tracing::info!(
            ?master,
            delay_ms = delay.as_millis() as u64,
            "reconnecting to master"
        );
        tokio::select! {
            () = accepting.stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn cleanup_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let interval = shared
        .config
        .cache_clean_interval
        .max(Duration::from_millis(100));
    loop {
        session::cleanup(&shared);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Saves when the cache changed, at most every `persistanceinterval`, and once more at stop.
async fn persist_loop(
    shared: Arc<Shared>,
    path: PathBuf,
    mut force: bool,
    stop: CancellationToken,
) {
    let interval = shared
        .config
        .persistence_interval
        .max(Duration::from_millis(100));
    let mut saved = shared.lock().cache.generation();
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(interval) => false,
        };
        let dirty = force || stopping || shared.lock().cache.generation() != saved;
        if dirty {
            let (s, target) = (shared.clone(), path.clone());
            match tokio::task::spawn_blocking(move || save_snapshot(&s, &target)).await {
                Ok(Ok(generation)) => {
                    Stats::bump(&shared.stats.persistence_saves);
                    tracing::debug!(file = %path.display(), "persistence file saved");
                    saved = generation;
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

/// Takes a snapshot of the cache without stopping the server, and writes it to `path`.
/// Returns the cache generation the snapshot is complete up to.
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
fn save_snapshot(shared: &Shared, path: &Path) -> std::io::Result<u64> {
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
    persistence::save(path, |out| {
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
