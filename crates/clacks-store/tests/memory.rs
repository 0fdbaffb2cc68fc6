//! The memory limit: accounting, `reject` and `evict`, and the running figures against a full
//! recount after random operations.

use bytes::Bytes;
use clacks_proto::memcache::StoreMode;
use clacks_store::memcache::{Limits, NewValue, Refused};
use clacks_store::{Cache, Entry, MemoryPolicy, OutOfMemory, ENTRY_OVERHEAD};
use proptest::prelude::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The accounted size of a record with this key and value.
fn size(key: &str, value: &str) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

/// `(used, items, item_bytes)` counted by walking every record.
fn recount(c: &Cache) -> (usize, usize, usize) {
    let (mut used, mut items, mut item_bytes) = (0, 0, 0);
    for (k, e) in c.iter() {
        let s = k.len() + e.data.len() + ENTRY_OVERHEAD;
        used += s;
        if !e.deleted {
            items += 1;
            item_bytes += s;
        }
    }
    (used, items, item_bytes)
}

fn figures(c: &Cache) -> (usize, usize, usize) {
    let m = c.memory();
    (m.used, m.items, m.item_bytes)
}

#[test]
fn usage_follows_writes_deletes_and_clear() {
    let mut c = Cache::default();
    c.store(b("k"), b("value"), 1.0).unwrap();
    assert_eq!(c.memory().used, size("k", "value"));
    c.store(b("k"), b("v"), 1.0).unwrap();
    assert_eq!(c.memory().used, size("k", "v"), "an overwrite replaces");
    c.remove(b("k"), 2.0).unwrap();
    assert_eq!(
        c.memory().used,
        size("k", ""),
        "a tombstone counts, without its value"
    );
    assert_eq!((c.memory().items, c.memory().item_bytes), (0, 0));
    c.store(b("n"), b("9"), 2.0).unwrap();
    c.add(b("n"), None, false, 2.0).unwrap();
    assert_eq!(c.memory().used, size("k", "") + size("n", "10"));
    c.clear(None, 2.0);
    assert_eq!(figures(&c), (0, 0, 0));
}

#[test]
fn reject_refuses_growth_but_not_shrinking() {
    let mut c = Cache::default();
    let limit = 2 * size("a", "xxxx");
    c.set_memory_limit(limit, MemoryPolicy::Reject, 0.0);
    c.store(b("a"), b("xxxx"), 1.0).unwrap();
    c.store(b("b"), b("xxxx"), 1.0).unwrap();
    let err = c.store(b("c"), b("x"), 1.0).unwrap_err();
    assert_eq!(
        err,
        OutOfMemory {
            needed: size("c", "x"),
            used: limit,
            limit
        }
    );
    assert!(c.get(b"c").is_none(), "nothing written");
    assert!(c.store(b("a"), b("xxxxx"), 1.0).is_err(), "a longer value");
    assert_eq!(c.get(b"a").unwrap().data, b("xxxx"), "the old value stays");
    assert_eq!(
        c.add(b("a"), None, false, 1.0).unwrap().value,
        b("1"),
        "shorter: fits"
    );
    assert!(
        c.remove(b("never"), 1.0).is_err(),
        "a new tombstone needs room"
    );
    c.store(b("a"), b("x"), 1.0).unwrap();
    c.remove(b("b"), 1.0).unwrap();
    let m = c.memory();
    assert_eq!(m.used, size("a", "x") + size("b", ""), "tombstones count");
    assert_eq!((m.refused, m.evictions), (3, 0));
    assert!(m.used <= limit);
}

#[test]
fn evict_takes_the_least_recently_used_values_and_never_tombstones() {
    let mut c = Cache::default();
    let one = size("key00", "v");
    c.set_memory_limit(10 * one, MemoryPolicy::Evict, 0.0);
    for i in 0..10 {
        c.store(b(&format!("key{i:02}")), b("v"), 1.0).unwrap();
    }
    c.remove(b("key09"), 1.0).unwrap();
    assert!(c.retrieve(b"key00", 2.0).is_some());
    for i in 10..15 {
        c.store(b(&format!("key{i:02}")), b("v"), 3.0).unwrap();
        assert!(c.memory().used <= 10 * one);
    }
    assert!(c.get(b"key00").is_some(), "read recently: kept");
    assert!(
        c.get(b"key09").unwrap().deleted,
        "tombstones are never evicted"
    );
    for i in 1..6 {
        assert!(
            c.get(format!("key{i:02}").as_bytes()).is_none(),
            "key{i:02}"
        );
    }
    for i in 6..15 {
        assert!(
            c.get(format!("key{i:02}").as_bytes()).is_some(),
            "key{i:02}"
        );
    }
    assert_eq!(c.memory().evictions, 5);
    assert_eq!(c.memory().refused, 0);

    // Larger than the whole limit: refused, nothing evicted for it.
    let big = "x".repeat(10 * one);
    assert!(c.store(b("big"), b(&big), 4.0).is_err());
    assert_eq!((c.memory().evictions, c.memory().refused), (5, 1));

    // Only tombstones left: nothing to evict, so refused.
    let mut t = Cache::default();
    t.set_memory_limit(2 * size("a", ""), MemoryPolicy::Evict, 0.0);
    t.remove(b("a"), 1.0).unwrap();
    t.remove(b("b"), 1.0).unwrap();
    assert!(t.store(b("c"), b(""), 1.0).is_err());
}

#[test]
fn lowering_the_limit_evicts_at_once_under_evict_only() {
    let mut c = Cache::default();
    for i in 0..10 {
        c.store(b(&format!("k{i}")), b("v"), 1.0).unwrap();
    }
    let mut r = c.clone();
    assert_eq!(
        c.set_memory_limit(4 * size("k0", "v"), MemoryPolicy::Evict, 2.0),
        6
    );
    assert_eq!(c.len(), 4);
    assert_eq!(
        r.set_memory_limit(4 * size("k0", "v"), MemoryPolicy::Reject, 2.0),
        0
    );
    assert_eq!(r.len(), 10);
    assert!(
        r.store(b("k0"), b("w"), 3.0).is_ok(),
        "same size still fits"
    );
    assert!(r.store(b("k0"), b("ww"), 3.0).is_err());
}

#[test]
fn memcached_writes_under_the_limit() {
    let limits = Limits {
        item: 1000,
        stored: 2000,
    };
    let mut c = Cache::default();
    c.set_memory_limit(size("k", "abc"), MemoryPolicy::Reject, 0.0);
    let set = |c: &mut Cache, mode, data: &str| {
        let value = NewValue {
            data: data.as_bytes(),
            flags: 0,
            expires: 0.0,
        };
        c.mc_store(mode, b"k", value, limits, 1.0)
    };
    assert!(set(&mut c, StoreMode::Set, "abc").is_ok());
    assert_eq!(
        set(&mut c, StoreMode::Append, "d"),
        Err(Refused::OutOfMemory)
    );
    assert_eq!(
        set(&mut c, StoreMode::Set, "abcd"),
        Err(Refused::OutOfMemory)
    );
    assert!(set(&mut c, StoreMode::Set, "99").is_ok());
    assert_eq!(c.mc_arith(b"k", true, 1, 1.0).unwrap().0, 100);
    assert_eq!(c.mc_arith(b"k", true, 900, 1.0), Err(Refused::OutOfMemory));
    assert!(c.mc_delete(b"k", 1.0));
    assert_eq!(c.memory().items, 0);
}

#[derive(Debug, Clone)]
enum Op {
    Store(u8, usize),
    Remove(u8),
    Add(u8),
    Retrieve(u8),
    Merge(u8, usize, bool, u8),
    McStore(u8, usize, u8, i8),
    McDelete(u8),
    McArith(u8, bool),
    McTouch(u8, i8),
    McFlush(u8),
    Cleanup,
    Clear,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..12;
    prop_oneof![
        4 => (key.clone(), 0usize..300).prop_map(|(k, n)| Op::Store(k, n)),
        2 => key.clone().prop_map(Op::Remove),
        1 => key.clone().prop_map(Op::Add),
        2 => key.clone().prop_map(Op::Retrieve),
        1 => (key.clone(), 0usize..300, any::<bool>(), 0u8..20).prop_map(|(k, n, d, t)| Op::Merge(k, n, d, t)),
        3 => (key.clone(), 0usize..300, 0u8..6, -2i8..4).prop_map(|(k, n, m, e)| Op::McStore(k, n, m, e)),
        1 => key.clone().prop_map(Op::McDelete),
        1 => (key.clone(), any::<bool>()).prop_map(|(k, i)| Op::McArith(k, i)),
        1 => (key, -1i8..4).prop_map(|(k, e)| Op::McTouch(k, e)),
        1 => (0u8..3).prop_map(Op::McFlush),
        1 => Just(Op::Cleanup),
        1 => Just(Op::Tick),
        1 => Just(Op::Clear),
    ]
}

fn apply(c: &mut Cache, op: &Op, now: &mut f64) {
    let key = |k: &u8| Bytes::from(format!("key{k}"));
    let value = |n: &usize| Bytes::from(vec![b'1'; *n]);
    let t = *now;
    let limits = Limits {
        item: 500,
        stored: 1000,
    };
    match op {
        Op::Store(k, n) => {
            let _ = c.store(key(k), value(n), t);
        }
        Op::Remove(k) => {
            let _ = c.remove(key(k), t);
        }
        Op::Add(k) => {
            let _ = c.add(key(k), Some(b"7"), false, t);
        }
        Op::Retrieve(k) => {
            let _ = c.retrieve(&key(k), t);
        }
        Op::Merge(k, n, deleted, dt) => {
            let ct = t + f64::from(*dt) - 10.0;
            let _ = c.merge(key(k), Entry::new(value(n), ct, ct, *deleted), 0.0, t);
        }
        Op::McStore(k, n, mode, exp) => {
            let mode = match mode {
                0 => StoreMode::Set,
                1 => StoreMode::Add,
                2 => StoreMode::Replace,
                3 => StoreMode::Append,
                4 => StoreMode::Prepend,
                _ => StoreMode::Cas(u64::from(*k)),
            };
            let data = vec![b'2'; *n];
            let v = NewValue {
                data: &data,
                flags: 1,
                expires: clacks_store::memcache::expires_at(i32::from(*exp), t),
            };
            let _ = c.mc_store(mode, &key(k), v, limits, t);
        }
        Op::McDelete(k) => {
            let _ = c.mc_delete(&key(k), t);
        }
        Op::McArith(k, incr) => {
            let _ = c.mc_arith(&key(k), *incr, 3, t);
        }
        Op::McTouch(k, e) => {
            let _ = c.mc_touch(
                &key(k),
                clacks_store::memcache::expires_at(i32::from(*e), t),
                t,
            );
        }
        Op::McFlush(d) => c.mc_flush(t + f64::from(*d), t),
        Op::Cleanup => {
            let _ = c.cleanup(t, 5.0, 20.0);
        }
        Op::Clear => {
            c.clear(Some(t), t);
        }
        Op::Tick => *now += 1.5,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The running figures equal a walk over every record after any sequence of operations,
    /// and with a limit the cache never holds more than it.
    #[test]
    fn running_figures_equal_a_recount(
        ops in prop::collection::vec(op(), 1..120),
        limit in prop_oneof![Just(0usize), 300usize..3000],
        evict in any::<bool>(),
    ) {
        let mut c = Cache::default();
        let policy = if evict { MemoryPolicy::Evict } else { MemoryPolicy::Reject };
        c.set_memory_limit(limit, policy, 0.0);
        let mut now = 100.0;
        for op in &ops {
            apply(&mut c, op, &mut now);
            prop_assert_eq!(figures(&c), recount(&c), "after {:?}", op);
            prop_assert!(limit == 0 || c.memory().used <= limit, "over the limit after {:?}", op);
        }
        if limit == 0 {
            prop_assert_eq!((c.memory().refused, c.memory().evictions), (0, 0));
        }
        if !evict {
            prop_assert_eq!(c.memory().evictions, 0);
        }
    }
}
