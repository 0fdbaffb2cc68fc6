//! The relay loop: one PostgreSQL session that LISTENs on `clacksmessage` (and, in the
//! durable mode, drains `clacks_outbox`), re-established with backoff and jitter when lost,
//! and each command sent to Clacks in order.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clacks_client::{value, Client, ClientError, ErrorKind};
use rand::Rng as _;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Config, NoTls, Notification};
use tracing::{debug, info, warn};

use crate::outbox;
use crate::payload::{self, Relay, CHANNEL};
use crate::sql::WAKE_CHANNEL;

/// Timings of the bridge.
#[derive(Debug, Clone)]
pub struct Options {
    /// First delay before reconnecting to PostgreSQL; doubles up to `reconnect_max`, with
    /// jitter, until a session has stayed up for `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// How long connecting and LISTEN may take.
    pub connect_timeout: Duration,
    /// How often an idle session is checked with a query (a dead TCP peer is otherwise only
    /// noticed by keepalives).
    pub health_interval: Duration,
    /// First delay before resending a command that Clacks did not take because the connection
    /// was down; doubles up to `reconnect_max`.
    pub retry_min: Duration,
    /// Notifications received and not relayed yet (while Clacks is down) that are kept; newer
    /// ones are dropped and counted until there is room.
    pub max_pending: usize,
    /// Also relay the rows of `clacks_outbox` (the durable mode; see [`crate::outbox`]).
    pub outbox: bool,
    /// Rows taken (and locked) per outbox transaction.
    pub outbox_batch: usize,
    /// How often the outbox is checked without a wake-up (rows left by a bridge that died
    /// holding them, a missed wake-up).
    pub outbox_poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            health_interval: Duration::from_secs(30),
            retry_min: Duration::from_millis(100),
            max_pending: 100_000,
            outbox: false,
            outbox_batch: 100,
            outbox_poll: Duration::from_secs(5),
        }
    }
}

/// Counters of a running bridge, shared with its caller.
#[derive(Debug, Default)]
pub struct Stats {
    /// Notifications received on `clacksmessage`.
    pub received: AtomicU64,
    /// Commands the Clacks server took.
    pub relayed: AtomicU64,
    /// Payloads refused as unknown or malformed (never sent).
    pub rejected: AtomicU64,
    /// Commands that could not be relayed (refused by the server, or outcome unknown for
    /// INCREMENT/DECREMENT).
    pub failed: AtomicU64,
    /// Times a PostgreSQL session was established and LISTEN issued.
    pub pg_sessions: AtomicU64,
    /// Notifications dropped because `max_pending` were waiting to be relayed.
    pub dropped: AtomicU64,
    /// Outbox rows relayed (and deleted); also counted in `relayed`, `rejected` or `failed`.
    pub outbox_rows: AtomicU64,
    /// Times the outbox was left as it was, to retry later, because Clacks did not take a
    /// command (down, or the user may not write).
    pub outbox_waits: AtomicU64,
}

impl Stats {
    /// The counters as `name=value` pairs for a log line.
    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "received={} relayed={} rejected={} failed={} pg_sessions={} dropped={} \
             outbox_rows={} outbox_waits={}",
            g(&self.received),
            g(&self.relayed),
            g(&self.rejected),
            g(&self.failed),
            g(&self.pg_sessions),
            g(&self.dropped),
            g(&self.outbox_rows),
            g(&self.outbox_waits)
        )
    }
}

/// Exponential backoff with jitter (each delay is 50–100 % of the nominal one).
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
        }
    }

    pub(crate) fn delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        nominal.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Logs at most a few rejected payloads per window, then how many were not shown.
#[derive(Debug)]
pub(crate) struct WarnLimit {
    window: Instant,
    shown: u32,
    hidden: u64,
}

impl WarnLimit {
    const PER_WINDOW: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(10);

    fn new() -> Self {
        WarnLimit {
            window: Instant::now(),
            shown: 0,
            hidden: 0,
        }
    }

    pub(crate) fn allow(&mut self) -> bool {
        if self.window.elapsed() >= Self::WINDOW {
            if self.hidden > 0 {
                warn!(count = self.hidden, "more payloads rejected (not shown)");
            }
            *self = WarnLimit::new();
        }
        if self.shown < Self::PER_WINDOW {
            self.shown += 1;
            true
        } else {
            self.hidden += 1;
            false
        }
    }
}

/// A live PostgreSQL session: its client, the notifications its connection task forwards, the
/// outbox wake-ups it signals, and that task.
struct Session {
    client: tokio_postgres::Client,
    notifications: mpsc::Receiver<Notification>,
    wake: Arc<Notify>,
    task: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a session ended.
pub(crate) enum Ended {
    Shutdown,
    Lost(String),
}

pub(crate) type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

/// Runs the bridge until `shutdown` completes: relays every notification on `clacksmessage`
/// and, with [`Options::outbox`], every row of `clacks_outbox`, through `clacks` (a client that
/// reconnects by itself; give it a [confirmed](Client::confirmed) handle so refusals are seen),
/// reconnecting to PostgreSQL with backoff and jitter whenever the session is lost.
/// Notifications sent while no session was listening are not seen (PostgreSQL does not keep
/// them); outbox rows wait in their table.
pub async fn run(
    pg: Config,
    clacks: Client,
    opts: Options,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut shutdown: Shutdown<'_> = shutdown.as_mut();
    let mut backoff = Backoff::new(opts.reconnect_min, opts.reconnect_max);
    let mut limit = WarnLimit::new();
    let target = crate::pg::describe(&pg);
    loop {
        let connected = tokio::select! {
            () = shutdown.as_mut() => return,
            r = connect(&pg, &opts, stats.clone()) => r,
        };
        let ended = match connected {
            Ok(session) => {
                stats.pg_sessions.fetch_add(1, Ordering::Relaxed);
                info!(postgres = %target, channel = CHANNEL, outbox = opts.outbox, "listening");
                if !opts.outbox {
                    outbox::warn_if_waiting(&session.client, opts.connect_timeout).await;
                }
                let since = Instant::now();
                let ended = serve(session, &clacks, &opts, &stats, &mut limit, &mut shutdown).await;
                if since.elapsed() >= opts.reconnect_max {
                    backoff.reset();
                }
                ended
            }
            Err(e) => Ended::Lost(format!("cannot connect and LISTEN: {e}")),
        };
        let Ended::Lost(reason) = ended else { return };
        let delay = backoff.delay();
        warn!(postgres = %target, %reason, retry_in = ?delay, "PostgreSQL session lost");
        tokio::select! {
            () = shutdown.as_mut() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Connects, starts the connection task and issues LISTEN (on the wake-up channel too in the
/// durable mode). The task keeps at most `max_pending` notifications for the relay; more are
/// dropped, counted and logged. Wake-ups are folded into one.
async fn connect(pg: &Config, opts: &Options, stats: Arc<Stats>) -> Result<Session, String> {
    let limit = opts.connect_timeout;
    let (client, mut connection) = tokio::time::timeout(limit, pg.connect(NoTls))
        .await
        .map_err(|_| format!("no connection within {limit:?}"))?
        .map_err(|e| e.to_string())?;
    let (tx, notifications) = mpsc::channel(opts.max_pending.max(1));
    let wake = Arc::new(Notify::new());
    let woken = wake.clone();
    let task = tokio::spawn(async move {
        let mut warned = WarnLimit::new();
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == WAKE_CHANNEL => {
                    woken.notify_one();
                }
                Some(Ok(AsyncMessage::Notification(n))) => match tx.try_send(n) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        if warned.allow() {
                            warn!("notification dropped: max_pending are waiting to be relayed (is the Clacks server down?)");
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                },
                Some(Ok(AsyncMessage::Notice(n))) => debug!(notice = %n, "PostgreSQL notice"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    let session = Session {
        client,
        notifications,
        wake,
        task,
    };
    let mut listen = format!("LISTEN {CHANNEL};");
    if opts.outbox {
        listen.push_str(&format!(" LISTEN {WAKE_CHANNEL};"));
    }
    tokio::time::timeout(limit, session.client.batch_execute(&listen))
        .await
        .map_err(|_| format!("no answer to LISTEN within {limit:?}"))?
        .map_err(|e| e.to_string())?;
    Ok(session)
}

/// Relays the notifications and outbox rows of one session until it is lost or `shutdown`
/// completes. The outbox is drained at the start, on each wake-up and every `outbox_poll`, one
/// batch per turn so notifications and shutdown are served in between; when Clacks does not
/// take a command the outbox is left alone for a backoff delay.
async fn serve(
    mut session: Session,
    clacks: &Client,
    opts: &Options,
    stats: &Stats,
    limit: &mut WarnLimit,
    shutdown: &mut Shutdown<'_>,
) -> Ended {
    let every = if opts.outbox {
        opts.health_interval.min(opts.outbox_poll)
    } else {
        opts.health_interval
    };
    let mut health = tokio::time::interval(every);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    health.reset();
    let mut due = opts.outbox;
    let mut resume: Option<tokio::time::Instant> = None;
    let mut waits = Backoff::new(opts.retry_min, opts.reconnect_max);
    loop {
        let drain_now = due && resume.is_none();
        tokio::select! {
            () = shutdown.as_mut() => return Ended::Shutdown,
            n = session.notifications.recv() => match n {
                Some(n) => {
                    if let Some(ended) = handle(&n, clacks, opts, stats, limit, shutdown).await {
                        return ended;
                    }
                }
                None => {
                    let reason = match (&mut session.task).await {
                        Ok(Err(e)) => e.to_string(),
                        _ => "the server closed the connection".to_string(),
                    };
                    return Ended::Lost(reason);
                }
            },
            () = std::future::ready(()), if drain_now => {
                match outbox::batch(&mut session.client, clacks, opts, stats, limit).await {
                    Ok(taken) => {
                        waits.reset();
                        due = taken == opts.outbox_batch;
                    }
                    Err(outbox::Stop::Wait) => {
                        stats.outbox_waits.fetch_add(1, Ordering::Relaxed);
                        resume = Some(tokio::time::Instant::now() + waits.delay());
                    }
                    Err(outbox::Stop::Busy) => {
                        let pause = opts.retry_min.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
                        resume = Some(tokio::time::Instant::now() + pause);
                    }
                    Err(outbox::Stop::Lost(reason)) => return Ended::Lost(reason),
                }
            }
            () = session.wake.notified(), if opts.outbox => due = true,
            () = tokio::time::sleep_until(resume.unwrap_or_else(tokio::time::Instant::now)),
                if resume.is_some() => resume = None,
            _ = health.tick() => {
                if opts.outbox {
                    // The drain's queries check the session.
                    due = true;
                    continue;
                }
                let check = session.client.simple_query("SELECT 1");
                match tokio::time::timeout(opts.connect_timeout, check).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(format!("health check failed: {e}")),
                    Err(_) => return Ended::Lost("health check timed out".into()),
                }
            }
        }
    }
}

/// Parses and relays one notification; `Some` when shutdown came while retrying.
async fn handle(
    n: &Notification,
    clacks: &Client,
    opts: &Options,
    stats: &Stats,
    limit: &mut WarnLimit,
    shutdown: &mut Shutdown<'_>,
) -> Option<Ended> {
    if n.channel() != CHANNEL {
        debug!(
            channel = n.channel(),
            "notification on another channel ignored"
        );
        return None;
    }
    stats.received.fetch_add(1, Ordering::Relaxed);
    let relay = match payload::parse(n.payload()) {
        Ok(relay) => relay,
        Err(e) => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            if limit.allow() {
                warn!(error = %e, payload = %shorten(n.payload()), pid = n.process_id(),
                    "payload rejected, not relayed");
            }
            return None;
        }
    };
    let mut backoff = Backoff::new(opts.retry_min, opts.reconnect_max);
    let mut first = true;
    loop {
        match send(clacks, &relay).await {
            Ok(()) => {
                stats.relayed.fetch_add(1, Ordering::Relaxed);
                debug!(
                    command = relay.command(),
                    name = relay.name(),
                    pid = n.process_id(),
                    "relayed"
                );
                return None;
            }
            Err(e) if retryable(&e, &relay) => {
                let delay = backoff.delay();
                if first {
                    warn!(command = relay.command(), name = relay.name(), error = %e,
                        "Clacks did not take the command; resending until it does");
                    first = false;
                } else {
                    debug!(command = relay.command(), name = relay.name(), error = %e, retry_in = ?delay, "resending");
                }
                tokio::select! {
                    () = shutdown.as_mut() => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        warn!(command = relay.command(), name = relay.name(), "shutdown before the command was relayed");
                        return Some(Ended::Shutdown);
                    }
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                warn!(command = relay.command(), name = relay.name(), error = %e, "relay failed");
                return None;
            }
        }
    }
}

/// Whether a failed command may be sent again: it did not reach the server, or it did but
/// sending it twice does no harm.
fn retryable(e: &ClientError, relay: &Relay) -> bool {
    match e.kind() {
        ErrorKind::Connection => true,
        ErrorKind::Timeout | ErrorKind::OutcomeUnknown => relay.is_idempotent(),
        _ => false,
    }
}

/// A value as sent: text with CR or LF in the ClacksCache text encoding
/// (`PAGECAMELCLACKSB64:`), anything else as it is.
pub fn wire_value(v: &str) -> Result<String, ClientError> {
    if v.contains(['\r', '\n']) {
        value::encode_text(v)
    } else {
        Ok(v.to_string())
    }
}

/// Sends one command and waits for the server's verdict. Nothing is sent while the connection
/// is down: the command is not left in the client's queue, the caller retries it.
pub(crate) async fn send(clacks: &Client, relay: &Relay) -> Result<(), ClientError> {
    if !clacks.is_connected() {
        return Err(ClientError::Io(Arc::new(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "not connected to Clacks",
        ))));
    }
    match relay {
        Relay::Notify { name } => clacks.notify(name).await,
        Relay::Set { name, value } => clacks.set(name, wire_value(value)?).await,
        Relay::Store { name, value } => clacks.store(name, wire_value(value)?).await,
        Relay::SetAndStore { name, value } => clacks.set_and_store(name, wire_value(value)?).await,
        Relay::Increment { name, step } => clacks.increment(name, *step).await,
        Relay::Decrement { name, step } => clacks.decrement(name, *step).await,
        Relay::Remove { name } => clacks.remove(name).await,
    }
}

/// The first 200 characters of a payload, for a log line.
pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let d: Vec<Duration> = (0..4).map(|_| b.delay()).collect();
        for (got, nominal) in d.iter().zip([100, 200, 400, 400]) {
            let nominal = Duration::from_millis(nominal);
            assert!(
                *got >= nominal / 2 && *got <= nominal,
                "{got:?} vs {nominal:?}"
            );
        }
        b.reset();
        assert!(b.delay() <= Duration::from_millis(100));
    }

    #[test]
    fn values_with_line_breaks_are_encoded() {
        assert_eq!(wire_value("a=b ü").unwrap(), "a=b ü");
        let enc = wire_value("a\r\nb").unwrap();
        assert!(enc.starts_with(value::TEXT_PREFIX), "{enc}");
        assert_eq!(value::decode_text(&enc).unwrap(), "a\r\nb");
    }

    #[test]
    fn retry_policy() {
        let lost = ClientError::QueueFull(1);
        let unknown = ClientError::Timeout(Duration::from_secs(1));
        let (store, incr) = payload::store_and_increment();
        assert!(retryable(&lost, &incr) && retryable(&lost, &store));
        assert!(retryable(&unknown, &store) && !retryable(&unknown, &incr));
        assert!(!retryable(
            &ClientError::PermissionDenied("STORE k".into()),
            &store
        ));
        assert_eq!(shorten(&"é".repeat(300)).chars().count(), 201);
    }
}
