//! The memcached text protocol listener: one task per connection that reads, executes every
//! complete request against the shared cache under one lock, and writes the replies with one
//! write. Writes that change the cache are replicated to interclacks links as Clacks `STORE` /
//! `REMOVE` lines, so Clacks clients and other servers see them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clacks_proto::memcache::{self as proto, Keys, McDecoder, McFrame, McRequest, StoreMode};
use clacks_proto::ProtoError;
use clacks_store::memcache::{expires_at, Limits, NewValue, Refused};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::config::Memcached;
use crate::journal::Journal;
use crate::mutation::{publish, Mutation};
use crate::state::{Shared, State, NO_CONN, SERVER_INFO};
use crate::stats::Stats;
use crate::transport::{complete_or_timeout, read_some, release_if_empty, Stalled, Transport};

/// Replies are written once this much is gathered, even in the middle of a batch or of one
/// `get`: a connection holds at most this much output plus one value.
const FLUSH_AT: usize = 256 * 1024;

/// Values at least this large are written from the cache's copy, not copied into the output.
const BY_REFERENCE: usize = 64 * 1024;

/// Replies waiting to be written: text copied into one buffer, large values by reference.
#[derive(Default)]
struct Output {
    buf: BytesMut,
    /// Written before `buf`: earlier text and large values, in order.
    parts: Vec<Bytes>,
    parts_len: usize,
}

impl Output {
    fn len(&self) -> usize {
        self.buf.len() + self.parts_len
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a value: copied when small, shared with the cache when large.
    fn value(&mut self, data: &Bytes) {
        if data.len() < BY_REFERENCE {
            self.buf.put_slice(data);
            return;
        }
        if !self.buf.is_empty() {
            let text = self.buf.split().freeze();
            self.parts_len += text.len();
            self.parts.push(text);
        }
        self.parts_len += data.len();
        self.parts.push(data.clone());
    }

    /// Writes everything, in order (one write when there are no large values).
    async fn write_to<S: Transport>(&mut self, stream: &mut S) -> std::io::Result<()> {
        for part in &self.parts {
            stream.write_all(part).await?;
        }
        stream.write_all(&self.buf).await?;
        self.clear();
        Ok(())
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.parts.clear();
        self.parts_len = 0;
    }
}

/// A `get` interrupted to write what it answered so far: the keys still to answer.
struct PendingGet {
    keys: Bytes,
    cas: bool,
    touch: Option<i32>,
}

/// What the connection does after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Read more input.
    Read,
    /// More complete requests wait in the buffer (output was flushed early).
    More,
    /// Close after writing the output.
    Close,
}

/// Serves one memcached connection until it closes. `who` names the peer in logs.
pub(crate) async fn serve<S: Transport>(
    shared: Arc<Shared>,
    mut stream: S,
    who: String,
    cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let stats = &shared.stats;
    Stats::bump(&stats.connections_accepted);
    Stats::bump(&stats.memcached_connections);
    stats.connections_current.fetch_add(1, Ordering::Relaxed);
    stats
        .memcached_connections_current
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(peer = %who, "memcached connection");

    let max_item = shared
        .config
        .memcached
        .as_ref()
        .map_or(Memcached::DEFAULT_MAX_ITEM_SIZE, |m| m.max_item_size);
    let mut decoder = McDecoder::new(shared.config.max_line_length, max_item);
    let mut buf = BytesMut::new();
    let mut out = Output::default();
    let mut pending = None;
    let stalled = shared.config.stalled_write_timeout;
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    // With `<journal><fsync>always`: the position of our last change that may not be synced
    // yet (0: none); no reply is written before it is.
    let mut journal_at = 0;
    loop {
        let (next, changed) = execute_batch(
            &shared,
            &mut decoder,
            &mut buf,
            (&mut out, &mut pending),
            max_item,
            &who,
        );
        release_if_empty::<S>(&mut buf);
        journal_at = changed.unwrap_or(journal_at);
        if !out.is_empty() {
            if let (Some(journal), true) = (&shared.journal, journal_at != 0) {
                journal.synced(journal_at).await;
                journal_at = 0;
            }
            match complete_or_timeout(out.write_to(&mut stream), stalled).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(peer = %who, error = %e, "memcached write failed");
                    break;
                }
                Err(Stalled) => {
                    Stats::bump(&stats.stalled_writes);
                    tracing::warn!(peer = %who, secs = stalled.as_secs_f64(), "writes stalled, closing memcached connection");
                    break;
                }
            }
        }
        match next {
            Next::Close => break,
            Next::More => continue,
            Next::Read => {}
        }
        let read = tokio::select! {
            biased;
            read = read_some(&mut stream, &mut buf) => read,
            () = &mut cancelled => break,
        };
        if matches!(read, Ok(0) | Err(_)) {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    stats.connections_current.fetch_sub(1, Ordering::Relaxed);
    stats
        .memcached_connections_current
        .fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(peer = %who, "memcached connection closed");
}

/// Decodes and executes every complete request in `buf` (until `out` is large, which may
/// interrupt a `get` into `pending`), under one lock, then drops the bytes used. With
/// `<journal><fsync>always`, also says where in the journal its last change is, if it made one.
fn execute_batch(
    shared: &Shared,
    decoder: &mut McDecoder,
    buf: &mut BytesMut,
    (out, pending): (&mut Output, &mut Option<PendingGet>),
    max_item: usize,
    who: &str,
) -> (Next, Option<u64>) {
    // The lock, one clock reading for the batch (its requests arrived together) and where the
    // journal stood.
    let mut locked = None;
    let mut used = 0;
    let next = loop {
        if out.len() >= FLUSH_AT {
            break Next::More;
        }
        if let Some(p) = pending.take() {
            let (state, now, _) = locked.get_or_insert_with(|| lock(shared));
            let keys = Keys::resume(&p.keys);
            if let Some(rest) = get((shared, state, *now), keys, (p.cas, p.touch), out) {
                *pending = Some(PendingGet { keys: rest, ..p });
            }
            continue;
        }
        let frame = match decoder.decode(&buf[used..]) {
            Ok((Some(frame), n)) => {
                used += n;
                frame
            }
            Ok((None, 0)) => break Next::Read,
            Ok((None, n)) => {
                used += n;
                continue;
            }
            Err(e) => {
                if let ProtoError::LineTooLong { limit } = e {
                    Stats::bump(&shared.stats.lines_too_long);
                    tracing::warn!(peer = %who, limit, "memcached line too long, closing connection");
                    line(
                        &mut out.buf,
                        &format!("CLIENT_ERROR line too long (limit {limit} bytes)"),
                    );
                }
                break Next::Close;
            }
        };
        let request = match frame {
            McFrame::Request(McRequest::Quit) | McFrame::Close => break Next::Close,
            McFrame::Request(request) => request,
            McFrame::Reply { text, noreply } => {
                if text.starts_with("ERROR") || text.starts_with("CLIENT_ERROR") {
                    Stats::bump(&shared.stats.memcached_client_errors);
                }
                if !noreply {
                    line(&mut out.buf, text);
                }
                continue;
            }
        };
        let (state, now, _) = locked.get_or_insert_with(|| lock(shared));
        if let McRequest::Get { keys, cas, touch } = request {
            Stats::bump(&shared.stats.memcached_commands);
            if let Some(rest) = get((shared, state, *now), keys, (cas, touch), out) {
                *pending = Some(PendingGet {
                    keys: rest,
                    cas,
                    touch,
                });
            }
            continue;
        }
        execute((shared, state, *now), request, &mut out.buf, max_item);
    };
    buf.advance(used);
    // Room for the whole data block of a large item at once.
    buf.reserve(decoder.wants().saturating_sub(buf.len()));
    let changed = locked.and_then(|(state, _, before)| {
        let after = state.journal.as_ref().filter(|j| j.must_wait())?.appended();
        (after != before).then_some(after)
    });
    (next, changed)
}

/// The state lock, the time, and where the journal stands.
fn lock(shared: &Shared) -> (MutexGuard<'_, State>, f64, u64) {
    let state = shared.lock();
    let at = state.journal.as_ref().map_or(0, Journal::appended);
    (state, shared.now(), at)
}

fn line(out: &mut BytesMut, text: &str) {
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
}

fn reply(out: &mut BytesMut, noreply: bool, text: &str) {
    if !noreply {
        line(out, text);
    }
}

fn execute(
    (shared, state, now): (&Shared, &mut State, f64),
    request: McRequest<'_>,
    out: &mut BytesMut,
    max_item: usize,
) {
    let stats = &shared.stats;
    Stats::bump(&stats.memcached_commands);
    match request {
        // Answered by `get`, which can stop and go on after a write.
        McRequest::Get { .. } => {}
        McRequest::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            noreply,
        } => {
            Stats::bump(&stats.memcached_sets);
            let limits = Limits {
                item: max_item,
                // The replicated line (`KEYSYNC <times> U key=value`) must fit in a line.
                stored: shared
                    .config
                    .max_line_length
                    .saturating_sub(key.len() + 128),
            };
            let value = NewValue {
                data,
                flags,
                expires: expires_at(exptime, now),
            };
            let result = state.cache.mc_store(mode, key, value, limits, now);
            if let StoreMode::Cas(_) = mode {
                Stats::bump(match result {
                    Ok(_) => &stats.memcached_cas_hits,
                    Err(Refused::Exists) => &stats.memcached_cas_badval,
                    Err(_) => &stats.memcached_cas_misses,
                });
            }
            let text = match result {
                Ok(_) => {
                    publish(state, NO_CONN, written(key));
                    "STORED"
                }
                Err(Refused::Exists) => "EXISTS",
                Err(Refused::NotFound) => "NOT_FOUND",
                Err(Refused::TooLarge) => {
                    Stats::bump(&stats.memcached_too_large);
                    "SERVER_ERROR out of memory storing object"
                }
                Err(Refused::OutOfMemory) => {
                    // As memcached does, a failed `set` does not leave the old value behind.
                    if mode == StoreMode::Set && state.cache.mc_delete(key, now) {
                        publish(state, NO_CONN, written(key));
                    }
                    "SERVER_ERROR out of memory storing object"
                }
                Err(Refused::NotStored | Refused::NonNumeric) => "NOT_STORED",
            };
            reply(out, noreply, text);
        }
        McRequest::TooLarge { key, set, noreply } => {
            Stats::bump(&stats.memcached_too_large);
            tracing::info!(key = %String::from_utf8_lossy(key), limit = max_item, "memcached item over maxitemsize refused");
            // Like memcached, a failed `set` does not leave the old value behind.
            if set && proto::key_ok(key) && state.cache.mc_delete(key, now) {
                publish(state, NO_CONN, written(key));
            }
            reply(out, noreply, proto::TOO_LARGE);
        }
        McRequest::Delete { key, noreply } => {
            if state.cache.mc_delete(key, now) {
                Stats::bump(&stats.memcached_delete_hits);
                publish(state, NO_CONN, written(key));
                reply(out, noreply, "DELETED");
            } else {
                Stats::bump(&stats.memcached_delete_misses);
                reply(out, noreply, "NOT_FOUND");
            }
        }
        McRequest::Arith {
            key,
            incr,
            delta,
            noreply,
        } => {
            let (hits, misses) = if incr {
                (&stats.memcached_incr_hits, &stats.memcached_incr_misses)
            } else {
                (&stats.memcached_decr_hits, &stats.memcached_decr_misses)
            };
            match state.cache.mc_arith(key, incr, delta, now) {
                Ok((value, _)) => {
                    Stats::bump(hits);
                    publish(state, NO_CONN, written(key));
                    reply(out, noreply, itoa::Buffer::new().format(value));
                }
                Err(Refused::NotFound) => {
                    Stats::bump(misses);
                    reply(out, noreply, "NOT_FOUND");
                }
                Err(Refused::OutOfMemory) => reply(out, noreply, "SERVER_ERROR out of memory"),
                Err(_) => {
                    Stats::bump(&stats.memcached_client_errors);
                    reply(
                        out,
                        noreply,
                        "CLIENT_ERROR cannot increment or decrement non-numeric value",
                    );
                }
            }
        }
        McRequest::Touch {
            key,
            exptime,
            noreply,
        } => {
            if state.cache.mc_touch(key, expires_at(exptime, now), now) {
                publish(state, NO_CONN, Mutation::Touched { key });
                Stats::bump(&stats.memcached_touch_hits);
                reply(out, noreply, "TOUCHED");
            } else {
                Stats::bump(&stats.memcached_touch_misses);
                reply(out, noreply, "NOT_FOUND");
            }
        }
        McRequest::FlushAll { delay, noreply } => {
            Stats::bump(&stats.memcached_flushes);
            let at = if delay > 0 {
                expires_at(delay, now)
            } else {
                now
            };
            tracing::info!(delay, "memcached flush_all (local to this server)");
            state.cache.mc_flush(at, now);
            publish(state, NO_CONN, Mutation::Flushed { at, now });
            reply(out, noreply, "OK");
        }
        McRequest::Version => {
            line(out, &format!("VERSION {}", version()));
        }
        McRequest::Verbosity { noreply } => reply(out, noreply, "OK"),
        McRequest::Stats { reset: true } => {
            stats.reset_memcached();
            line(out, "RESET");
        }
        McRequest::Stats { reset: false } => stats_reply(shared, state, out, now),
        McRequest::Quit => {}
    }
}

/// Answers the keys of a `get` (`gets`, `gat`, `gats`) until the output is full. Returns the
/// keys still to answer then; otherwise the reply is complete, with its `END`.
fn get(
    (shared, state, now): (&Shared, &mut State, f64),
    mut keys: Keys<'_>,
    (cas, touch): (bool, Option<i32>),
    out: &mut Output,
) -> Option<Bytes> {
    let stats = &shared.stats;
    let touch = touch.map(|e| expires_at(e, now));
    let (hits, misses) = if touch.is_some() {
        (&stats.memcached_touch_hits, &stats.memcached_touch_misses)
    } else {
        (&stats.memcached_get_hits, &stats.memcached_get_misses)
    };
    loop {
        if out.len() >= FLUSH_AT {
            return Some(Bytes::copy_from_slice(keys.remaining()));
        }
        let Some(key) = keys.next() else {
            break;
        };
        let Some(item) = state.cache.mc_get(key, touch, now) else {
            Stats::bump(misses);
            continue;
        };
        Stats::bump(hits);
        let mut num = itoa::Buffer::new();
        let copied = if item.data.len() < BY_REFERENCE {
            item.data.len()
        } else {
            0
        };
        let text = &mut out.buf;
        text.reserve(key.len() + copied + 48);
        text.put_slice(b"VALUE ");
        text.put_slice(key);
        text.put_u8(b' ');
        text.put_slice(num.format(item.flags).as_bytes());
        text.put_u8(b' ');
        text.put_slice(num.format(item.data.len()).as_bytes());
        if cas {
            text.put_u8(b' ');
            text.put_slice(num.format(item.cas).as_bytes());
        }
        text.put_slice(b"\r\n");
        out.value(&item.data);
        out.buf.put_slice(b"\r\n");
        if touch.is_some() {
            publish(state, NO_CONN, Mutation::Touched { key });
        }
    }
    out.buf.put_slice(b"END\r\n");
    None
}

/// The version memcached clients see: a memcached-style number they can parse, then ours.
fn version() -> String {
    format!("1.6.0-{}", SERVER_INFO.replace(' ', "-"))
}

fn stats_reply(shared: &Shared, state: &State, out: &mut BytesMut, now: f64) {
    let s = &shared.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    // Running figures (O(1)): values past their exptime or flushed count until cleanup.
    let memory = state.cache.memory();
    let started = shared.started.elapsed().as_secs();
    let threads = shared
        .config
        .worker_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rows: Vec<(&str, String)> = vec![
        ("pid", std::process::id().to_string()),
        ("uptime", started.to_string()),
        ("time", (now as u64).to_string()),
        ("version", version()),
        ("pointer_size", (usize::BITS).to_string()),
        ("curr_connections", get(&s.connections_current).to_string()),
        (
            "total_connections",
            get(&s.connections_accepted).to_string(),
        ),
        (
            "rejected_connections",
            get(&s.connections_rejected).to_string(),
        ),
        (
            "cmd_get",
            (get(&s.memcached_get_hits) + get(&s.memcached_get_misses)).to_string(),
        ),
        ("cmd_set", get(&s.memcached_sets).to_string()),
        ("cmd_flush", get(&s.memcached_flushes).to_string()),
        (
            "cmd_touch",
            (get(&s.memcached_touch_hits) + get(&s.memcached_touch_misses)).to_string(),
        ),
        ("get_hits", get(&s.memcached_get_hits).to_string()),
        ("get_misses", get(&s.memcached_get_misses).to_string()),
        ("delete_misses", get(&s.memcached_delete_misses).to_string()),
        ("delete_hits", get(&s.memcached_delete_hits).to_string()),
        ("incr_misses", get(&s.memcached_incr_misses).to_string()),
        ("incr_hits", get(&s.memcached_incr_hits).to_string()),
        ("decr_misses", get(&s.memcached_decr_misses).to_string()),
        ("decr_hits", get(&s.memcached_decr_hits).to_string()),
        ("cas_misses", get(&s.memcached_cas_misses).to_string()),
        ("cas_hits", get(&s.memcached_cas_hits).to_string()),
        ("cas_badval", get(&s.memcached_cas_badval).to_string()),
        ("touch_hits", get(&s.memcached_touch_hits).to_string()),
        ("touch_misses", get(&s.memcached_touch_misses).to_string()),
        ("threads", threads.to_string()),
        ("bytes", memory.item_bytes.to_string()),
        ("curr_items", memory.items.to_string()),
        ("total_items", get(&s.memcached_sets).to_string()),
        ("evictions", memory.evictions.to_string()),
        ("limit_maxbytes", memory.limit.to_string()),
    ];
    for (name, value) in rows {
        line(out, &format!("STAT {name} {value}"));
    }
    line(out, "END");
}

/// The change a memcached write made to `key`'s record, for peers and monitors.
fn written(key: &[u8]) -> Mutation<'_> {
    Mutation::Record {
        key,
        memcached: true,
    }
}
