//! Cost of the cache's hot path: `store` (overwrite and new keys) and `retrieve`, in nanoseconds
//! per operation. `cargo bench -p clacks-store --bench cache`; std only, best of five runs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use clacks_store::{Cache, MemoryPolicy};

const KEYS: usize = 100_000;
const OPS: usize = 1_000_000;

fn keys() -> Vec<Bytes> {
    (0..KEYS)
        .map(|i| Bytes::from(format!("key:{i:08}")))
        .collect()
}

/// Best of five runs of `f`, in ns per operation.
fn best(name: &str, mut f: impl FnMut() -> usize) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let n = f();
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("cache::{name:<24} {best:>8.1} ns/op");
}

fn filled(keys: &[Bytes], value: &Bytes) -> Cache {
    let mut c = Cache::default();
    for k in keys {
        let _ = c.store(k.clone(), value.clone(), 1.0);
    }
    c
}

fn main() {
    let keys = keys();
    let value = Bytes::from(vec![b'v'; 100]);
    let mut c = filled(&keys, &value);
    best("store/overwrite_100b", || {
        for i in 0..OPS {
            let _ = black_box(c.store(keys[i % KEYS].clone(), value.clone(), 2.0));
        }
        OPS
    });
    best("retrieve/hit_100b", || {
        let mut n = 0;
        for i in 0..OPS {
            n += black_box(c.retrieve(&keys[i % KEYS], 3.0)).map_or(0, |v| v.len());
        }
        black_box(n);
        OPS
    });
    best("retrieve/miss", || {
        for i in 0..OPS {
            black_box(c.retrieve(b"missing-key", 3.0 + i as f64));
        }
        OPS
    });
    best("store/new_keys_100b", || {
        let mut c = Cache::default();
        for k in &keys {
            let _ = black_box(c.store(k.clone(), value.clone(), 1.0));
        }
        KEYS
    });
    best("store/new_keys_evicting", || {
        let mut c = Cache::default();
        let room = 20 * (keys[0].len() + value.len() + clacks_store::ENTRY_OVERHEAD);
        c.set_memory_limit(KEYS * room / 40, MemoryPolicy::Evict, 0.0);
        for k in &keys {
            let _ = black_box(c.store(k.clone(), value.clone(), 1.0));
        }
        KEYS
    });
    resident_per_record();
}

/// Resident memory of the process in bytes (Linux), 0 where unknown.
fn resident() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// What one record really costs (1M records, 16-byte keys and values, each read once) against
/// what the memory limit counts for it.
fn resident_per_record() {
    const N: usize = 1_000_000;
    let before = resident();
    let mut c = Cache::default();
    for i in 0..N {
        let key = Bytes::from(format!("k:{i:014}"));
        let _ = c.store(key, Bytes::from(format!("v:{i:014}")), 1.0);
    }
    for i in 0..N {
        black_box(c.retrieve(format!("k:{i:014}").as_bytes(), 2.0));
    }
    let per = resident().saturating_sub(before) as f64 / N as f64;
    let counted = c.memory().used as f64 / N as f64;
    println!("cache::resident_per_record        {per:>8.1} bytes (counted: {counted:.1})");
    black_box(c);
}
