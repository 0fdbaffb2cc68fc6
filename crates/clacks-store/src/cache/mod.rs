//! The key/value cache: records with tombstones and timestamps, the Clacks cache commands,
//! the `KEYSYNC` merge and cleanup. What records cost and how the memory limit is kept is in
//! `memory`.

mod memory;

use bytes::Bytes;
use indexmap::IndexMap;
use std::ops::Range;

use crate::number::{looks_like_number, numify, Num};

pub use memory::{Memory, MemoryPolicy, OutOfMemory, ENTRY_OVERHEAD};

/// One cache record. Deleted keys stay as tombstones so that a delete wins over an older value
/// when servers resynchronise.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value (empty for tombstones).
    pub data: Bytes,
    /// When the value was last written (seconds since the epoch).
    pub cachetime: f64,
    /// When the value that increments have been adding to was written: the `cachetime` of the
    /// last write that was not an increment (0 for an increment of a key that had no record).
    /// Increments replicated from the same base add up (see [`Cache::merge_increment`]); local,
    /// never persisted (a loaded record's base is its `cachetime`). Like every time that
    /// crosses a link, on the [`TICK`] grid.
    pub base: f64,
    /// When the value was last written or read.
    pub accesstime: f64,
    /// Whether this is a tombstone.
    pub deleted: bool,
    /// memcached client flags (0 for values written over Clacks).
    pub flags: u32,
    /// When the value expires (seconds since the epoch), 0 for never. Set over memcached only;
    /// local to this server.
    pub expires: f64,
    /// memcached CAS unique, new at every write (never persisted or replicated).
    pub cas: u64,
    /// Read since the eviction hand last passed it (the CLOCK reference bit; local, never
    /// persisted).
    pub(crate) referenced: bool,
}

impl Entry {
    /// A record without memcached flags or expiry.
    pub fn new(data: Bytes, cachetime: f64, accesstime: f64, deleted: bool) -> Entry {
        Entry {
            data,
            cachetime,
            base: cachetime,
            accesstime,
            deleted,
            flags: 0,
            expires: 0.0,
            cas: 0,
            referenced: false,
        }
    }

    /// Whether the record holds a value that has not expired.
    pub fn is_live(&self, now: f64) -> bool {
        !self.deleted && (self.expires == 0.0 || self.expires > now)
    }
}

/// What a cleanup pass purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    /// A tombstone older than the deleted-entry lifetime.
    Deleted(Bytes),
    /// A live entry not accessed within the stale lifetime.
    Stale(Bytes),
    /// An entry past its memcached expiry time (or flushed by `flush_all`).
    Expired(Bytes),
}

/// The key/value cache.
///
/// Every change that must reach the persistence file bumps [`Cache::generation`]; reads only
/// update access times and do not.
///
/// Memory is accounted per record as key + value + [`ENTRY_OVERHEAD`], kept as running figures
/// (see [`Cache::memory`]). With a limit set ([`Cache::set_memory_limit`]), a write that would
/// take the total over it is refused or makes room by eviction, by [`MemoryPolicy`]. Writes
/// that do not grow the total (deletes of present keys, values no longer than before) always
/// succeed.
#[derive(Debug, Default, Clone)]
pub struct Cache {
    /// Randomly seeded fast hashing (keys come from clients, so not a fixed-seed hash).
    /// Insertion-ordered with random access, for the eviction hand.
    pub(crate) map: IndexMap<Bytes, Entry, foldhash::fast::RandomState>,
    pub(crate) generation: u64,
    /// The last CAS unique handed out.
    last_cas: u64,
    /// A pending memcached `flush_all <delay>`: from this time on, values written before it
    /// are gone.
    pub(crate) flush_at: Option<f64>,
    /// The time of the latest `CLEARCACHE`: records written up to it are gone everywhere, so
    /// a copy of one that arrives late is not taken, and local writes get later times.
    pub(crate) cleared_until: f64,
    /// Memory limit in bytes, 0 for none.
    limit: usize,
    policy: MemoryPolicy,
    /// Accounted bytes of every record.
    used: usize,
    /// Records that are not tombstones, and their accounted bytes.
    items: usize,
    item_bytes: usize,
    /// Where the eviction hand stands in `map`.
    hand: usize,
    evictions: u64,
    refused: u64,
}

impl Cache {
    /// A cache holding `entries` (no memory limit yet), as loaded: times on the [`TICK`] grid,
    /// each record its own base.
    pub fn from_entries(entries: impl IntoIterator<Item = (Bytes, Entry)>) -> Self {
        let mut cache = Cache::default();
        for (key, mut entry) in entries {
            entry.cachetime = on_grid(entry.cachetime);
            entry.base = entry.cachetime;
            entry.cas = cache.new_cas();
            cache.put_entry(key, entry, Write::AsIs);
        }
        cache
    }

    /// Puts back a record exactly as a journal saw it written (its times, flags and expiry; no
    /// memory limit applies, as at load), after what was loaded.
    pub fn replay(&mut self, key: Bytes, mut entry: Entry) {
        entry.base = entry.cachetime;
        self.generation += 1;
        entry.cas = if entry.deleted { 0 } else { self.new_cas() };
        self.put_entry(key, entry, Write::AsIs);
    }

    pub(crate) fn new_cas(&mut self) -> u64 {
        self.last_cas += 1;
        self.last_cas
    }

    /// Whether `e` holds a value at `now`: not a tombstone, not expired, not flushed.
    pub fn alive(&self, e: &Entry, now: f64) -> bool {
        alive_with(e, self.flush_at, now)
    }

    /// Whether `e` is still a record at `now`: a tombstone or a value that is [alive](Self::alive).
    /// Expired values are not (they are purged by [`Cache::cleanup`]).
    pub fn current(&self, e: &Entry, now: f64) -> bool {
        e.deleted || self.alive(e, now)
    }

    /// The live record of `key`, for changing it.
    pub(crate) fn alive_mut(&mut self, key: &[u8], now: f64) -> Option<&mut Entry> {
        let flush_at = self.flush_at;
        self.map
            .get_mut(key)
            .filter(|e| alive_with(e, flush_at, now))
    }

    /// Counter of persisted-state changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of records, tombstones included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The record of `key`, tombstones included.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter()
    }

    /// The records at `positions` of the cache's internal order (clamped to its length), for
    /// copying the cache a part at a time. A new record goes to the end; an evicted one is
    /// replaced by the last record; a cleanup or removal only moves records towards the start.
    /// So a walk from the end towards the start sees every record that is present throughout
    /// the walk, some of them twice.
    pub fn records_at(&self, positions: Range<usize>) -> impl Iterator<Item = (&Bytes, &Entry)> {
        let end = positions.end.min(self.map.len());
        let start = positions.start.min(end);
        self.map
            .get_range(start..end)
            .into_iter()
            .flat_map(|s| s.iter())
    }

    fn put(&mut self, key: Bytes, data: Bytes, now: f64, deleted: bool) -> Result<(), OutOfMemory> {
        self.insert(key, Entry::new(data, now, now, deleted), Write::Local, now)?;
        Ok(())
    }

    /// Writes a record with a new CAS unique, copying key and data out of whatever buffer
    /// they point into, if it fits (see [`MemoryPolicy`]). Returns the record's time.
    pub(crate) fn insert(
        &mut self,
        key: Bytes,
        mut entry: Entry,
        write: Write,
        now: f64,
    ) -> Result<f64, OutOfMemory> {
        // Checked before copying: a refused write allocates nothing.
        self.check_room(&key, &entry, now)?;
        entry.data = own(entry.data);
        Ok(self.write(own(key), entry, write))
    }

    /// [`Cache::insert`] for a key and data that own their memory already.
    pub(crate) fn insert_owned(
        &mut self,
        key: Bytes,
        entry: Entry,
        write: Write,
        now: f64,
    ) -> Result<f64, OutOfMemory> {
        self.check_room(&key, &entry, now)?;
        Ok(self.write(key, entry, write))
    }

    /// Writes a record (room was made) with a new CAS unique; returns its time.
    fn write(&mut self, key: Bytes, mut entry: Entry, write: Write) -> f64 {
        self.generation += 1;
        // Like memcached, only values take a CAS unique (a delete uses none up).
        entry.cas = if entry.deleted { 0 } else { self.new_cas() };
        self.put_entry(key, entry, write)
    }

    /// Counts a change of a record's persisted fields made in place.
    pub(crate) fn touched(&mut self) {
        self.generation += 1;
    }

    /// `STORE` / `SETANDSTORE`.
    pub fn store(&mut self, key: Bytes, value: Bytes, now: f64) -> Result<(), OutOfMemory> {
        self.put(key, value, now, false)
    }

    /// `RETRIEVE`: the live value, updating its access time.
    pub fn retrieve(&mut self, key: &[u8], now: f64) -> Option<Bytes> {
        let entry = self.alive_mut(key, now)?;
        entry.accesstime = now;
        entry.referenced = true;
        Some(entry.data.clone())
    }

    /// `REMOVE`: writes a tombstone, even for a key that never existed (which is refused only
    /// when the limit has no room for its key).
    pub fn remove(&mut self, key: Bytes, now: f64) -> Result<(), OutOfMemory> {
        self.put(key, Bytes::new(), now, true)
    }

    /// `INCREMENT` (or `DECREMENT` with `negate`): the step is numified (`None` is 1), the old
    /// value counts only if it is live and looks like a number. The record keeps its base (see
    /// [`Entry::base`]).
    pub fn add(
        &mut self,
        key: Bytes,
        step: Option<&[u8]>,
        negate: bool,
        now: f64,
    ) -> Result<Added, OutOfMemory> {
        let step = step.map_or(Num::Int(1), numify);
        let step = if negate { Num::Int(0) - step } else { step };
        let base = self.map.get(&key).map_or(0.0, |e| e.base);
        let value = self.added(&key, step, now);
        let mut entry = Entry::new(value.clone(), now, now, false);
        entry.base = base;
        let time = self.insert(key, entry, Write::Increment, now)?;
        Ok(Added {
            value,
            step,
            base,
            time,
        })
    }

    /// The value of `key` plus `step`: the old value counts only if it is live and looks like a
    /// number.
    fn added(&self, key: &[u8], step: Num, now: f64) -> Bytes {
        let old = match self.map.get(key) {
            Some(e) if self.alive(e, now) && looks_like_number(&e.data) => numify(&e.data),
            _ => Num::Int(0),
        };
        Bytes::from((old + step).to_perl_string())
    }

    /// An increment replicated from a peer (`KEYINCREMENT`), made there at `time` on the value
    /// written at `base` and giving `result` there:
    /// - the same base here: the increments were made on the same value,
    ///   so they add up in any order: `step` is added, the record's time is the later one;
    /// - another base, and `time` is newer than the record here: the peer's result is taken
    ///   (with the peer's base, so increments that follow from it add up again);
    /// - another base, and the record here is newer: a later write replaced the value the
    ///   increment was made on; nothing changes.
    pub fn merge_increment(
        &mut self,
        key: Bytes,
        inc: &Increment,
        now: f64,
    ) -> Result<Merged, OutOfMemory> {
        if inc.time <= self.cleared_until {
            return Ok(Merged::Unchanged);
        }
        let local = self.map.get(&key).filter(|e| self.current(e, now));
        let (merged, entry) = match local {
            Some(e) if e.base == inc.base => {
                let mut entry = Entry::new(self.added(&key, inc.step, now), 0.0, now, false);
                entry.cachetime = e.cachetime.max(inc.time);
                entry.base = e.base;
                (Merged::Added, entry)
            }
            Some(e) if inc.time <= e.cachetime => return Ok(Merged::Unchanged),
            _ => {
                let mut entry = Entry::new(inc.result.clone(), inc.time, inc.time, false);
                entry.base = inc.base;
                (Merged::Taken, entry)
            }
        };
        self.insert(key, entry, Write::AsIs, now)?;
        Ok(merged)
    }

    /// Every key, tombstones included, expired values not, in byte order (`KEYLIST`).
    pub fn keys_sorted(&self, now: f64) -> Vec<Bytes> {
        let mut keys: Vec<Bytes> = self
            .map
            .iter()
            .filter(|(_, e)| self.current(e, now))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// `CLEARCACHE`: forgets every record written up to `until` (all of them for `None`),
    /// tombstones included, and from then on takes no copy of such a record from a peer.
    /// Records written later, on another server before the clear reached it, stay: every
    /// server keeps the same ones. Returns the clear's time (for `None` the later of `now` and
    /// the newest record it forgot), or `None` when a clear up to `until` was made already.
    pub fn clear(&mut self, until: Option<f64>, now: f64) -> Option<f64> {
        if until.is_some_and(|t| t <= self.cleared_until) {
            return None;
        }
        self.generation += 1;
        self.flush_at = None;
        let limit = until.unwrap_or(f64::INFINITY);
        let mut latest: f64 = 0.0;
        self.retain(|_, e| {
            let keep = e.cachetime > limit;
            if !keep {
                latest = latest.max(e.cachetime);
            }
            keep
        });
        let time = until.unwrap_or(now.max(latest));
        self.cleared_until = self.cleared_until.max(time);
        Some(time)
    }

    /// The time of the latest `CLEARCACHE` (0 for none).
    pub fn cleared_until(&self) -> f64 {
        self.cleared_until
    }

    /// `KEYSYNC` merge: takes the peer's record if the key is unknown here or the peer's record
    /// is newer (see [`newer`]), unless it holds the same value and is at most `slack` seconds
    /// newer: a copy of a record that comes back with a slightly later timestamp (a clock offset
    /// measured again) changes nothing. The same value written later is taken, time and all,
    /// so that an older write of another value arriving afterwards loses everywhere.
    /// Returns whether the local record changed; a record that would be taken but does not fit
    /// the memory limit is refused.
    /// A local value that has expired counts as unknown.
    pub fn merge(
        &mut self,
        key: Bytes,
        mut remote: Entry,
        slack: f64,
        now: f64,
    ) -> Result<bool, OutOfMemory> {
        if remote.cachetime <= self.cleared_until {
            return Ok(false);
        }
        let newer = self.map.get(&key).is_none_or(|local| {
            !self.current(local, now)
                || (newer(&remote, local) && !same_write(local, &remote, slack))
        });
        if newer {
            if remote.deleted {
                remote.data = Bytes::new();
            }
            self.insert(key, remote, Write::AsIs, now)?;
        }
        Ok(newer)
    }

    /// Purges tombstones older than `deleted_ttl` and live entries not accessed for `stale_ttl`.
    /// Values past their memcached expiry (or flushed) go as well.
    pub fn cleanup(&mut self, now: f64, deleted_ttl: f64, stale_ttl: f64) -> Vec<Cleaned> {
        let mut cleaned = Vec::new();
        let flush_at = self.flush_at.take_if(|t| now >= *t);
        self.retain(|key, e| {
            let gone = if !e.deleted && !alive_with(e, flush_at, now) {
                Cleaned::Expired(key.clone())
            } else if e.deleted && e.cachetime < now - deleted_ttl {
                Cleaned::Deleted(key.clone())
            } else if !e.deleted && e.accesstime < now - stale_ttl {
                Cleaned::Stale(key.clone())
            } else {
                return true;
            };
            cleaned.push(gone);
            false
        });
        if !cleaned.is_empty() {
            self.generation += 1;
        }
        cleaned.sort_by(|a, b| cleaned_key(a).cmp(cleaned_key(b)));
        cleaned
    }
}

pub(crate) fn alive_with(e: &Entry, flush_at: Option<f64>, now: f64) -> bool {
    e.is_live(now) && !flush_at.is_some_and(|t| now >= t && e.cachetime < t)
}

/// Whether two records hold the same value (tombstones are equal whatever their data).
pub fn same_value(a: &Entry, b: &Entry) -> bool {
    a.deleted == b.deleted && (a.deleted || a.data == b.data)
}

/// The resolution of cache times in seconds: what the 15 significant digits of a `KEYSYNC`
/// time carry (until the year 2286). Every time that is stored or crosses a link is a whole
/// number of ticks, so a time sent and corrected by offsets that are whole ticks too comes
/// back exactly.
pub const TICK: f64 = 1.0 / TICKS_PER_SECOND;

/// `t` on the [`TICK`] grid: the double nearest to a whole number of ticks, which is also
/// what that time's decimal text reads back as.
pub fn on_grid(t: f64) -> f64 {
    (t * TICKS_PER_SECOND).round() / TICKS_PER_SECOND
}

const TICKS_PER_SECOND: f64 = 100_000.0;

/// Whether record `a` wins over record `b` of the same key: the later write, or, written at the
/// same time, the greater value (a tombstone counting least), so that every server picks the
/// same one whatever the order they arrive in.
pub fn newer(a: &Entry, b: &Entry) -> bool {
    a.cachetime > b.cachetime
        || (a.cachetime == b.cachetime && (!a.deleted, &a.data[..]) > (!b.deleted, &b.data[..]))
}

/// Whether two records are copies of one write: the same value, written at most `slack`
/// seconds apart.
pub fn same_write(a: &Entry, b: &Entry, slack: f64) -> bool {
    same_value(a, b) && (a.cachetime - b.cachetime).abs() <= slack
}

/// How a record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// A value made here: if the record it replaces is not older (several writes at one clock
    /// reading, or a clock that went back), it gets one [`TICK`] after it, so that every peer
    /// orders this server's writes of a key as they were made; the same after the last clear.
    /// It is its own base.
    Local,
    /// An increment made here: timed as [`Write::Local`], keeping the base it was given.
    Increment,
    /// From a peer or a file: with the time it has.
    AsIs,
}

/// What an `INCREMENT` did (see [`Cache::add`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// The new value.
    pub value: Bytes,
    /// Its time.
    pub time: f64,
    /// The step that was added (negative for a decrement).
    pub step: Num,
    /// The record's base (see [`Entry::base`]).
    pub base: f64,
}

/// An increment from a peer (see [`Cache::merge_increment`]); times in our clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// When it was made.
    pub time: f64,
    /// The base it was made on.
    pub base: f64,
    /// The step.
    pub step: Num,
    /// The value it gave where it was made.
    pub result: Bytes,
}

/// What [`Cache::merge_increment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The step was added to the value here.
    Added,
    /// The peer's result was taken.
    Taken,
    /// Nothing: the record here is newer.
    Unchanged,
}

/// A copy that owns its memory: keys and values often arrive as slices of a large read buffer,
/// which must not stay pinned for as long as the entry lives.
fn own(b: Bytes) -> Bytes {
    Bytes::copy_from_slice(&b)
}

fn cleaned_key(c: &Cleaned) -> &Bytes {
    match c {
        Cleaned::Deleted(k) | Cleaned::Stale(k) | Cleaned::Expired(k) => k,
    }
}

#[cfg(test)]
mod tests;
