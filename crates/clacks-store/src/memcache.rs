//! memcached operations on the shared cache, with memcached's rules (CAS uniques, `add`/`replace`
//! conditions, unsigned 64-bit `incr`/`decr`, expiry, `flush_all`).
//!
//! Values are kept in their Clacks form, so Clacks clients and interclacks see them: a value a
//! Clacks line cannot carry (it holds CR or LF, or starts with the ClacksCache text prefix) is
//! stored the way Net::Clacks's ClacksCache stores text, `PAGECAMELCLACKSB64:` + base64, and
//! memcached clients get the original bytes back.

use std::borrow::Cow;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use clacks_proto::memcache::StoreMode;

use crate::cache::{alive_with, Entry, Write};
use crate::Cache;

/// The ClacksCache prefix of base64-encoded text.
pub const TEXT_PREFIX: &[u8] = b"PAGECAMELCLACKSB64:";

/// The largest exptime memcached takes as relative seconds; larger ones are unix times.
const MAX_RELATIVE_EXPTIME: i32 = 60 * 60 * 24 * 30;

/// The stored (Clacks) form of a memcached value.
pub fn to_clacks(raw: &[u8]) -> Bytes {
    if !raw.starts_with(TEXT_PREFIX) && memchr::memchr2(b'\r', b'\n', raw).is_none() {
        return Bytes::copy_from_slice(raw);
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = BytesMut::with_capacity(TEXT_PREFIX.len() + raw.len().div_ceil(3) * 4);
    out.put_slice(TEXT_PREFIX);
    out.put_slice(engine.encode(raw).as_bytes());
    out.freeze()
}

/// The memcached view of a stored value: ClacksCache base64 text decoded, anything else as is.
pub fn from_clacks(stored: &[u8]) -> Cow<'_, [u8]> {
    match stored.strip_prefix(TEXT_PREFIX) {
        Some(b64) if !b64.is_empty() => {
            let clean: Vec<u8> = b64
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            match base64::engine::general_purpose::STANDARD.decode(clean) {
                Ok(raw) => Cow::Owned(raw),
                Err(_) => Cow::Borrowed(stored),
            }
        }
        _ => Cow::Borrowed(stored),
    }
}

/// When an item with memcached exptime `exptime` expires: 0 for never, a time in the past for
/// at once (negative values, unix times already passed).
pub fn expires_at(exptime: i32, now: f64) -> f64 {
    match exptime {
        0 => 0.0,
        e if e < 0 => 1.0,
        e if e <= MAX_RELATIVE_EXPTIME => now + f64::from(e),
        e => f64::from(e),
    }
}

/// Why a memcached command changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `NOT_STORED`: `add` of a present key, `replace`/`append`/`prepend` of a missing one.
    NotStored,
    /// `EXISTS`: `cas` with a stale unique.
    Exists,
    /// `NOT_FOUND`: `cas`, `incr`, `decr` of a missing key.
    NotFound,
    /// The result would be larger than allowed.
    TooLarge,
    /// `incr`/`decr` of a value that is not a number.
    NonNumeric,
    /// The new value does not fit the memory limit (see [`crate::MemoryPolicy`]).
    OutOfMemory,
}

impl From<crate::OutOfMemory> for Refused {
    fn from(_: crate::OutOfMemory) -> Self {
        Refused::OutOfMemory
    }
}

/// A hit of `get`.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    /// The value as the memcached client stored it: the cache's own (clone it to share it) when
    /// stored as is, else decoded.
    pub data: Cow<'a, Bytes>,
    /// Client flags.
    pub flags: u32,
    /// CAS unique.
    pub cas: u64,
}

/// The value of a memcached storage command.
#[derive(Debug, Clone, PartialEq)]
pub struct NewValue<'a> {
    /// The data, as the client sent it.
    pub data: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Expiry time (see [`expires_at`]).
    pub expires: f64,
}

/// Size limits of a memcached write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest value in bytes, as the client sees it.
    pub item: usize,
    /// Largest value in its stored (Clacks) form.
    pub stored: usize,
}

impl Cache {
    /// `get`/`gets`; with `touch` (`gat`/`gats`) the item's expiry becomes that time.
    pub fn mc_get(&mut self, key: &[u8], touch: Option<f64>, now: f64) -> Option<Item<'_>> {
        let flush_at = self.flush_at;
        let entry = self
            .map
            .get_mut(key)
            .filter(|e| alive_with(e, flush_at, now))?;
        if let Some(t) = touch.filter(|t| *t != entry.expires) {
            entry.expires = t;
            self.generation += 1;
        }
        entry.accesstime = now;
        entry.referenced = true;
        let data = match from_clacks(&entry.data) {
            Cow::Borrowed(_) => Cow::Borrowed(&entry.data),
            Cow::Owned(decoded) => Cow::Owned(Bytes::from(decoded)),
        };
        Some(Item {
            data,
            flags: entry.flags,
            cas: entry.cas,
        })
    }

    /// A storage command; on success returns the stored (Clacks) form of the new value.
    pub fn mc_store(
        &mut self,
        mode: StoreMode,
        key: &[u8],
        value: NewValue<'_>,
        limits: Limits,
        now: f64,
    ) -> Result<Bytes, Refused> {
        let NewValue {
            data,
            flags,
            expires,
        } = value;
        let old = self
            .alive_mut(key, now)
            .map(|e| (e.cas, e.flags, e.expires));
        let joined;
        let (data, flags, expires) = match (mode, old) {
            (StoreMode::Add, Some(_)) => return Err(Refused::NotStored),
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                return Err(Refused::NotStored)
            }
            (StoreMode::Cas(_), None) => return Err(Refused::NotFound),
            (StoreMode::Cas(unique), Some((cas, ..))) if unique != cas => {
                return Err(Refused::Exists)
            }
            (StoreMode::Append | StoreMode::Prepend, Some((_, old_flags, old_expires))) => {
                let old = self
                    .map
                    .get(key)
                    .map(|e| from_clacks(&e.data))
                    .unwrap_or_default();
                if old.len() + data.len() > limits.item {
                    return Err(Refused::TooLarge);
                }
                joined = if mode == StoreMode::Append {
                    [&old[..], data].concat()
                } else {
                    [data, &old[..]].concat()
                };
                (&joined[..], old_flags, old_expires)
            }
            _ => (data, flags, expires),
        };
        let stored = to_clacks(data);
        if stored.len() > limits.stored {
            return Err(Refused::TooLarge);
        }
        let mut entry = Entry::new(stored.clone(), now, now, false);
        entry.flags = flags;
        entry.expires = expires;
        self.insert_owned(Bytes::copy_from_slice(key), entry, Write::Local, now)?;
        Ok(stored)
    }

    /// `delete`: a live value becomes a tombstone (never larger, so never refused). Returns
    /// whether there was one.
    pub fn mc_delete(&mut self, key: &[u8], now: f64) -> bool {
        if self.alive_mut(key, now).is_none() {
            return false;
        }
        let tombstone = Entry::new(Bytes::new(), now, now, true);
        self.insert_owned(Bytes::copy_from_slice(key), tombstone, Write::Local, now)
            .is_ok()
    }

    /// `incr`/`decr`: unsigned 64-bit, `incr` wraps, `decr` stops at 0. A shorter result is
    /// padded with spaces to the old length, as memcached does when it changes a value in
    /// place. Returns the new number and the stored value.
    pub fn mc_arith(
        &mut self,
        key: &[u8],
        incr: bool,
        delta: u64,
        now: f64,
    ) -> Result<(u64, Bytes), Refused> {
        let entry = self.alive_mut(key, now).ok_or(Refused::NotFound)?;
        let raw = from_clacks(&entry.data);
        let value = match clacks_proto::memcache::strtou64(&raw) {
            Some(v) if !raw.is_empty() => v,
            _ => return Err(Refused::NonNumeric),
        };
        let value = if incr {
            value.wrapping_add(delta)
        } else {
            value.saturating_sub(delta)
        };
        let mut text = value.to_string().into_bytes();
        if text.len() < raw.len() {
            text.resize(raw.len(), b' ');
        }
        let stored = to_clacks(&text);
        let (flags, expires) = (entry.flags, entry.expires);
        let mut new = Entry::new(stored.clone(), now, now, false);
        new.flags = flags;
        new.expires = expires;
        self.insert_owned(Bytes::copy_from_slice(key), new, Write::Local, now)?;
        Ok((value, stored))
    }

    /// `touch`: sets the expiry of a live value. Returns whether there was one.
    pub fn mc_touch(&mut self, key: &[u8], expires: f64, now: f64) -> bool {
        let Some(entry) = self.alive_mut(key, now) else {
            return false;
        };
        entry.expires = expires;
        entry.accesstime = now;
        self.touched();
        true
    }

    /// `flush_all`: every value written before `at` is gone from `at` on; at once if `at` is at
    /// most a second away, as in memcached (which then also uses up a CAS unique). Tombstones
    /// stay. Local to this cache: nothing is replicated.
    pub fn mc_flush(&mut self, at: f64, now: f64) {
        if at > now + 1.0 {
            self.flush_at = Some(at);
            return;
        }
        self.new_cas();
        self.flush_at = None;
        if self.retain(|_, e| e.deleted) > 0 {
            self.touched();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        item: 100,
        stored: 200,
    };

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn value(data: &str, flags: u32, expires: f64) -> NewValue<'_> {
        NewValue {
            data: data.as_bytes(),
            flags,
            expires,
        }
    }

    fn set(
        c: &mut Cache,
        mode: StoreMode,
        key: &str,
        data: &str,
        now: f64,
    ) -> Result<Bytes, Refused> {
        c.mc_store(mode, key.as_bytes(), value(data, 7, 0.0), LIMITS, now)
    }

    #[test]
    fn encoding_round_trips() {
        for raw in ["plain", "two\r\nlines", "PAGECAMELCLACKSB64:x", "", "a\nb"] {
            let stored = to_clacks(raw.as_bytes());
            assert!(!stored.contains(&b'\n') && !stored.contains(&b'\r'));
            assert_eq!(from_clacks(&stored), raw.as_bytes());
        }
        assert_eq!(to_clacks(b"plain"), b("plain"));
        let bad = b"PAGECAMELCLACKSB64:!!";
        assert_eq!(from_clacks(bad), &bad[..]);
    }

    #[test]
    fn storage_rules_and_cas() {
        let mut c = Cache::default();
        assert_eq!(
            set(&mut c, StoreMode::Replace, "k", "x", 1.0),
            Err(Refused::NotStored)
        );
        assert_eq!(
            set(&mut c, StoreMode::Append, "k", "x", 1.0),
            Err(Refused::NotStored)
        );
        assert_eq!(
            set(&mut c, StoreMode::Cas(1), "k", "x", 1.0),
            Err(Refused::NotFound)
        );
        assert!(set(&mut c, StoreMode::Add, "k", "abc", 1.0).is_ok());
        assert_eq!(
            set(&mut c, StoreMode::Add, "k", "x", 1.0),
            Err(Refused::NotStored)
        );
        c.mc_store(StoreMode::Append, b"k", value("de", 9, 5.0), LIMITS, 1.0)
            .unwrap();
        set(&mut c, StoreMode::Prepend, "k", "xy", 1.0).unwrap();
        let item = c.mc_get(b"k", None, 1.0).unwrap();
        assert_eq!((&item.data[..], item.flags), (&b"xyabcde"[..], 7));
        let cas = item.cas;
        assert_eq!(
            set(&mut c, StoreMode::Cas(cas + 1), "k", "z", 1.0),
            Err(Refused::Exists)
        );
        set(&mut c, StoreMode::Cas(cas), "k", "z", 1.0).unwrap();
        assert!(c.mc_get(b"k", None, 1.0).unwrap().cas > cas);
        assert!(c.mc_delete(b"k", 2.0));
        assert!(!c.mc_delete(b"k", 2.0));
        assert!(c.get(b"k").unwrap().deleted, "delete leaves a tombstone");
        assert!(!c.mc_delete(b"never", 2.0));
        assert!(c.get(b"never").is_none());
        let big = "x".repeat(60);
        set(&mut c, StoreMode::Set, "big", &big, 1.0).unwrap();
        assert_eq!(
            set(&mut c, StoreMode::Append, "big", &big, 1.0),
            Err(Refused::TooLarge)
        );
    }

    #[test]
    fn arithmetic() {
        let mut c = Cache::default();
        assert_eq!(c.mc_arith(b"n", true, 1, 1.0), Err(Refused::NotFound));
        set(&mut c, StoreMode::Set, "n", "100", 1.0).unwrap();
        assert_eq!(c.mc_arith(b"n", false, 1, 1.0).unwrap(), (99, b("99 ")));
        assert_eq!(c.mc_arith(b"n", true, u64::MAX, 1.0).unwrap().0, 98);
        assert_eq!(c.mc_arith(b"n", false, 1000, 1.0).unwrap(), (0, b("0  ")));
        assert_eq!(c.mc_get(b"n", None, 1.0).unwrap().flags, 7);
        for bad in ["-5", "", "12abc", "x"] {
            set(&mut c, StoreMode::Set, "s", bad, 1.0).unwrap();
            assert_eq!(
                c.mc_arith(b"s", true, 1, 1.0),
                Err(Refused::NonNumeric),
                "{bad:?}"
            );
        }
        set(&mut c, StoreMode::Set, "s", " 5", 1.0).unwrap();
        assert_eq!(c.mc_arith(b"s", true, 1, 1.0).unwrap().0, 6);
    }

    #[test]
    fn expiry_touch_and_flush() {
        let mut c = Cache::default();
        assert_eq!(expires_at(0, 100.0), 0.0);
        assert_eq!(expires_at(10, 100.0), 110.0);
        assert!(expires_at(-1, 100.0) < 100.0);
        assert_eq!(expires_at(2_000_000_000, 100.0), 2e9);
        c.mc_store(StoreMode::Set, b"t", value("v", 0, 110.0), LIMITS, 100.0)
            .unwrap();
        assert!(c.mc_get(b"t", None, 109.0).is_some());
        assert!(c.mc_get(b"t", None, 110.0).is_none());
        assert_eq!(c.retrieve(b"t", 110.0), None, "Clacks sees the expiry too");
        c.mc_store(StoreMode::Set, b"t", value("v", 0, 110.0), LIMITS, 100.0)
            .unwrap();
        assert!(c.mc_touch(b"t", 0.0, 105.0));
        assert!(c.mc_get(b"t", Some(120.0), 200.0).is_some());
        assert!(c.mc_get(b"t", None, 121.0).is_none());
        assert_eq!(
            c.cleanup(121.0, 1e9, 1e9),
            vec![crate::Cleaned::Expired(b("t"))]
        );

        c.store(b("old"), b("1"), 100.0).unwrap();
        c.remove(b("gone"), 100.0).unwrap();
        c.mc_flush(110.0, 101.0);
        c.mc_flush(110.0, 101.0);
        c.store(b("new"), b("2"), 111.0).unwrap();
        assert!(c.mc_get(b"old", None, 109.0).is_some());
        assert!(c.mc_get(b"old", None, 110.0).is_none());
        assert!(c.mc_get(b"new", None, 112.0).is_some());
        c.mc_flush(0.0, 120.0);
        assert!(c.mc_get(b"new", None, 120.0).is_none());
        assert!(
            c.get(b"gone").unwrap().deleted,
            "tombstones survive a flush"
        );
    }
}
