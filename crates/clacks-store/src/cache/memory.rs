//! Memory accounting and the limit: what a record costs, the running figures, and making room
//! by refusing a write or evicting with the CLOCK hand.

use bytes::Bytes;

use super::{alive_with, on_grid, Cache, Entry, Write, TICK};

/// Bytes counted for every record on top of its key and value, so that the memory limit is
/// close to what the process really holds: the record in the map's entry vector (hash, key
/// handle, [`Entry`]), its slot in the index table (an index and a control byte, the table at
/// most 7/8 full), and for key and value each a heap-block header (16 bytes) plus the shared
/// header (32 bytes with its block) that `Bytes` allocates once a value or key is handed out.
/// `cargo bench -p clacks-store --bench cache` compares it with the resident memory one record
/// really takes (1M records: about 190 bytes on top of key and value on x86-64, 218 counted).
pub const ENTRY_OVERHEAD: usize = size_of::<usize>()
    + size_of::<Bytes>()
    + size_of::<Entry>()
    + (size_of::<usize>() + 1) * 8 / 7
    + 2 * (16 + 32);

/// Records the eviction hand looks at, at most, to find one victim (the hot path stays O(1)).
const MAX_SWEEP: usize = 1024;

/// What a write does when it would take the cache over its memory limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemoryPolicy {
    /// The write is refused.
    #[default]
    Reject,
    /// Least recently used live values are evicted to make room (CLOCK, an approximate LRU);
    /// a record larger than the whole limit is still refused.
    Evict,
}

/// A write refused because it would take the cache over its memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: a record of {needed} bytes does not fit ({used} of {limit} bytes used)")]
pub struct OutOfMemory {
    /// Accounted size of the record that was refused.
    pub needed: usize,
    /// Bytes in use.
    pub used: usize,
    /// The limit.
    pub limit: usize,
}

/// The cache's running memory figures; reading them is O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Accounted bytes of every record, tombstones included (see [`ENTRY_OVERHEAD`]).
    pub used: usize,
    /// The limit in bytes, 0 for none.
    pub limit: usize,
    /// Records holding a value (not tombstones); expired ones count until cleanup.
    pub items: usize,
    /// Accounted bytes of those records.
    pub item_bytes: usize,
    /// Records evicted to make room.
    pub evictions: u64,
    /// Writes refused for memory.
    pub refused: u64,
}

/// The accounted size of a record.
fn cost(key: &[u8], e: &Entry) -> usize {
    key.len() + e.data.len() + ENTRY_OVERHEAD
}

impl Cache {
    /// Sets the memory limit (0: none) and policy. With [`MemoryPolicy::Evict`] a cache over the
    /// new limit is evicted down to it at once; returns how many records that evicted. With
    /// [`MemoryPolicy::Reject`] the records stay and writes that grow the cache are refused
    /// until it is under the limit again.
    pub fn set_memory_limit(&mut self, limit: usize, policy: MemoryPolicy, now: f64) -> usize {
        self.limit = limit;
        self.policy = policy;
        let mut evicted = 0;
        if policy == MemoryPolicy::Evict && limit > 0 {
            while self.used > limit && self.evict_one(None, now) {
                evicted += 1;
            }
        }
        evicted
    }

    /// The running memory figures.
    pub fn memory(&self) -> Memory {
        Memory {
            used: self.used,
            limit: self.limit,
            items: self.items,
            item_bytes: self.item_bytes,
            evictions: self.evictions,
            refused: self.refused,
        }
    }

    /// Counts a record with a key of `key_len` bytes in (`add`) or out of the running figures.
    fn account(&mut self, key_len: usize, e: &Entry, add: bool) {
        let c = key_len + e.data.len() + ENTRY_OVERHEAD;
        let item = usize::from(!e.deleted);
        if add {
            self.used += c;
            self.items += item;
            self.item_bytes += c * item;
        } else {
            self.used -= c;
            self.items -= item;
            self.item_bytes -= c * item;
        }
    }

    /// Inserts or replaces a record without looking at the limit, keeping the figures; returns
    /// its time (see [`Write`]).
    pub(super) fn put_entry(&mut self, key: Bytes, mut entry: Entry, write: Write) -> f64 {
        let local = write != Write::AsIs;
        if local && entry.cachetime <= self.cleared_until {
            entry.cachetime = on_grid(self.cleared_until + TICK);
        }
        if write == Write::Local {
            entry.base = entry.cachetime;
        }
        let key_len = key.len();
        let time = entry.cachetime;
        self.account(key_len, &entry, true);
        let (i, Some(old)) = self.map.insert_full(key, entry) else {
            return time;
        };
        self.account(key_len, &old, false);
        let Some((_, e)) = self.map.get_index_mut(i) else {
            return time;
        };
        // A value written over a present one counts as a use for eviction.
        e.referenced = !e.deleted;
        if local && e.cachetime <= old.cachetime {
            e.cachetime = on_grid(old.cachetime + TICK);
            if write == Write::Local {
                e.base = e.cachetime;
            }
        }
        e.cachetime
    }

    /// Makes room for a record of `needed` bytes replacing one of `old` bytes under `key`: Ok
    /// when it fits (after evicting, by policy), else the refusal, counted.
    fn make_room(
        &mut self,
        key: &[u8],
        needed: usize,
        old: usize,
        now: f64,
    ) -> Result<(), OutOfMemory> {
        let grow = needed.saturating_sub(old);
        if self.limit == 0 || grow == 0 || self.used + grow <= self.limit {
            return Ok(());
        }
        if self.policy == MemoryPolicy::Evict && needed <= self.limit {
            while self.used + grow > self.limit {
                if !self.evict_one(Some(key), now) {
                    break;
                }
            }
            if self.used + grow <= self.limit {
                return Ok(());
            }
        }
        self.refused += 1;
        Err(OutOfMemory {
            needed,
            used: self.used,
            limit: self.limit,
        })
    }

    /// Evicts one record with the CLOCK hand: it walks the records in map order, skipping
    /// tombstones (a delete must keep winning) and `protect`, and takes the first value that is
    /// dead (expired, flushed) or was not read since the hand last passed it, clearing the
    /// reference bits it passes. After [`MAX_SWEEP`] records without such a value it takes the
    /// first value it passed. Returns false when there is no value to evict.
    fn evict_one(&mut self, protect: Option<&[u8]>, now: f64) -> bool {
        let len = self.map.len();
        let flush_at = self.flush_at;
        let mut fallback = None;
        let mut victim = None;
        for _ in 0..len.saturating_mul(2).min(MAX_SWEEP) {
            if self.hand >= len {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let Some((k, e)) = self.map.get_index_mut(i) else {
                break;
            };
            if e.deleted || protect == Some(&k[..]) {
                continue;
            }
            if e.referenced && alive_with(e, flush_at, now) {
                e.referenced = false;
                fallback.get_or_insert(i);
                continue;
            }
            victim = Some(i);
            break;
        }
        let Some(i) = victim.or(fallback) else {
            return false;
        };
        // The last record moves into slot `i`, behind the hand: it is looked at next round.
        if let Some((k, e)) = self.map.swap_remove_index(i) {
            self.account(k.len(), &e, false);
            self.evictions += 1;
            self.generation += 1;
        }
        true
    }

    /// Whether `entry` may replace the record of `key` (evicting others by policy).
    pub(super) fn check_room(
        &mut self,
        key: &[u8],
        entry: &Entry,
        now: f64,
    ) -> Result<(), OutOfMemory> {
        if self.limit == 0 {
            return Ok(());
        }
        let old = self.map.get(key).map_or(0, |e| cost(key, e));
        self.make_room(key, cost(key, entry), old, now)
    }

    /// Keeps the records for which `keep` is true, keeping the figures; returns how many went.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Bytes, &Entry) -> bool) -> usize {
        let (mut used, mut items, mut item_bytes, mut gone) = (0, 0, 0, 0);
        self.map.retain(|key, e| {
            if keep(key, e) {
                return true;
            }
            let c = cost(key, e);
            used += c;
            if !e.deleted {
                items += 1;
                item_bytes += c;
            }
            gone += 1;
            false
        });
        self.used -= used;
        self.items -= items;
        self.item_bytes -= item_bytes;
        if self.hand >= self.map.len() {
            self.hand = 0;
        }
        gone
    }
}
