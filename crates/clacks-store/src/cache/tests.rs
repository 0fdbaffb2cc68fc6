use super::*;
use std::collections::HashSet;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn store_retrieve_remove_tombstone() {
    let mut c = Cache::default();
    c.store(b("k"), b("v"), 10.0).unwrap();
    assert_eq!(c.retrieve(b"k", 11.0), Some(b("v")));
    assert_eq!(c.get(b"k").unwrap().accesstime, 11.0);
    let g = c.generation();
    c.retrieve(b"k", 12.0);
    assert_eq!(c.generation(), g, "reads do not dirty the cache");
    c.remove(b("k"), 13.0).unwrap();
    assert_eq!(c.retrieve(b"k", 14.0), None);
    assert!(c.get(b"k").unwrap().deleted);
    c.remove(b("never"), 15.0).unwrap();
    assert_eq!(c.keys_sorted(16.0), vec![b("k"), b("never")]);
}

#[test]
fn a_walk_from_the_end_sees_every_record_present_throughout() {
    for seed in 1..=30u64 {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut c = Cache::default();
        for i in 0..300 {
            c.store(b(&format!("k{i}")), b("v"), 1.0).unwrap();
        }
        // Full: every new record evicts one.
        c.set_memory_limit(c.memory().used, MemoryPolicy::Evict, 1.0);
        let before: Vec<Bytes> = c.iter().map(|(k, _)| k.clone()).collect();
        let (mut seen, mut rewritten, mut end, mut fresh) =
            (HashSet::new(), HashSet::new(), c.len(), 0);
        while end > 0 {
            let start = end.saturating_sub(7);
            seen.extend(c.records_at(start..end).map(|(k, _)| k.clone()));
            end = start;
            // Between two chunks: new records (evicting), removals, a cleanup.
            for _ in 0..rand(4) {
                fresh += 1;
                c.store(b(&format!("new{fresh}")), b("v"), 2.0).unwrap();
            }
            if rand(3) == 0 {
                // An evicted key comes back as a new record: not present throughout.
                let key = b(&format!("k{}", rand(300)));
                c.remove(key.clone(), 2.0).unwrap();
                rewritten.insert(key);
            }
            if rand(5) == 0 {
                c.cleanup(3.0, 0.0, 1e9);
            }
        }
        let kept = before
            .iter()
            .filter(|k| c.get(k).is_some() && !rewritten.contains(*k));
        for key in kept {
            assert!(seen.contains(key), "seed {seed}: {key:?} missed");
        }
    }
}

#[test]
fn increment_rules() {
    let mut c = Cache::default();
    let mut add = |k, step: Option<&[u8]>, down| c.add(b(k), step, down, 1.0).unwrap().value;
    assert_eq!(add("n", None, false), b("1"));
    assert_eq!(add("n", Some(b"5"), false), b("6"));
    assert_eq!(add("n", Some(b"2"), true), b("4"));
    c.store(b("s"), b("12abc"), 1.0).unwrap();
    assert_eq!(
        c.add(b("s"), Some(b"3xyz"), false, 1.0).unwrap().value,
        b("3")
    );
    c.store(b("f"), b("1.5"), 1.0).unwrap();
    assert_eq!(
        c.add(b("f"), Some(b"1.25"), false, 1.0).unwrap().value,
        b("2.75")
    );
    c.remove(b("t"), 1.0).unwrap();
    assert_eq!(c.add(b("t"), None, true, 1.0).unwrap().value, b("-1"));
}

#[test]
fn merge_newest_wins_and_cleanup() {
    let mut c = Cache::default();
    c.store(b("k"), b("local"), 100.0).unwrap();
    let remote = |data: &str, t: f64, deleted: bool| Entry::new(b(data), t, t, deleted);
    let mut merge =
        |data, t, deleted, slack| c.merge(b("k"), remote(data, t, deleted), slack, t).unwrap();
    assert!(!merge("old", 99.0, false, 0.0));
    // At the same time the greater value wins, in whichever order they arrive.
    assert!(!merge("aaa", 100.0, false, 0.0));
    assert!(merge("same", 100.0, false, 0.0));
    assert!(merge("REMOVED", 101.0, true, 0.0));
    assert!(
        !merge("", 101.05, true, 0.1),
        "a copy that came back a little later"
    );
    assert!(merge("", 102.0, true, 0.1), "the same value, written later");
    assert_eq!(c.get(b"k").unwrap().cachetime, 102.0);
    assert_eq!(c.get(b"k").unwrap().data, b(""));
    c.store(b("live"), b("x"), 100.0).unwrap();
    let cleaned = c.cleanup(102.0 + 3602.0, 3600.0, 86400.0);
    assert_eq!(cleaned, vec![Cleaned::Deleted(b("k"))]);
    let cleaned = c.cleanup(100.0 + 86402.0, 3600.0, 86400.0);
    assert_eq!(cleaned, vec![Cleaned::Stale(b("live"))]);
    assert!(c.is_empty());
}

#[test]
fn writes_of_a_key_get_increasing_times() {
    let mut c = Cache::default();
    c.store(b("k"), b("a"), 100.0).unwrap();
    c.store(b("k"), b("b"), 100.0).unwrap();
    assert_eq!(c.get(b"k").unwrap().cachetime, on_grid(100.0 + TICK));
    c.remove(b("k"), 99.0).unwrap();
    assert_eq!(c.get(b"k").unwrap().cachetime, on_grid(100.0 + 2.0 * TICK));
    c.add(b("k"), None, false, 100.0).unwrap();
    assert_eq!(c.get(b"k").unwrap().cachetime, on_grid(100.0 + 3.0 * TICK));
    c.store(b("k"), b("c"), 200.0).unwrap();
    assert_eq!(c.get(b"k").unwrap().cachetime, 200.0);
    // A value written at a bumped time is its own base; an increment keeps the base.
    c.store(b("k"), b("1"), 200.0).unwrap();
    let bumped = on_grid(200.0 + TICK);
    let e = c.get(b"k").unwrap();
    assert_eq!((e.cachetime, e.base), (bumped, bumped));
    c.add(b("k"), None, false, 200.0).unwrap();
    let e = c.get(b"k").unwrap();
    assert_eq!((e.cachetime, e.base), (on_grid(200.0 + 2.0 * TICK), bumped));
}

#[test]
fn a_clear_keeps_out_late_copies_of_what_it_forgot() {
    let mut c = Cache::default();
    c.store(b("old"), b("1"), 10.0).unwrap();
    c.store(b("new"), b("2"), 30.0).unwrap();
    assert_eq!(c.clear(Some(20.0), 25.0), Some(20.0));
    assert!(c.get(b"old").is_none() && c.get(b"new").is_some());
    // The same clear again does nothing; a copy written before it is not taken.
    assert_eq!(c.clear(Some(15.0), 25.0), None);
    let late = Entry::new(b("late"), 19.0, 19.0, false);
    assert_eq!(c.merge(b("old"), late, 0.0, 26.0), Ok(false));
    let inc = Increment {
        time: 20.0,
        base: 0.0,
        step: Num::Int(1),
        result: b("1"),
    };
    assert_eq!(c.merge_increment(b("n"), &inc, 26.0), Ok(Merged::Unchanged));
    // A local write after it is later than it, even with a clock behind.
    c.store(b("k"), b("v"), 5.0).unwrap();
    assert_eq!(c.get(b"k").unwrap().cachetime, on_grid(20.0 + TICK));
    // A clear made here: the later of now and the newest record it forgot.
    assert_eq!(c.clear(None, 25.0), Some(30.0));
    assert_eq!(c.cleared_until(), 30.0);
}

#[test]
fn replicated_increments_add_up_on_their_base_and_otherwise_the_newest_wins() {
    let inc = |time, base, step, result: &str| Increment {
        time,
        base,
        step: Num::Int(step),
        result: b(result),
    };
    let mut c = Cache::default();
    c.store(b("n"), b("5"), 10.0).unwrap();
    let added = c.add(b("n"), None, false, 11.0).unwrap();
    assert_eq!((added.value, added.base), (b("6"), 10.0));
    // Made elsewhere on the same value: adds up, whatever their times.
    let merged = c.merge_increment(b("n"), &inc(10.5, 10.0, 2, "7"), 12.0);
    assert_eq!(merged, Ok(Merged::Added));
    let e = c.get(b"n").unwrap();
    assert_eq!((&e.data[..], e.cachetime, e.base), (&b"8"[..], 11.0, 10.0));
    // On another value: the newer of the two.
    let merged = c.merge_increment(b("n"), &inc(10.9, 9.0, 1, "1"), 12.0);
    assert_eq!(merged, Ok(Merged::Unchanged));
    let merged = c.merge_increment(b("n"), &inc(13.0, 12.5, 1, "41"), 14.0);
    assert_eq!(merged, Ok(Merged::Taken));
    let e = c.get(b"n").unwrap();
    assert_eq!((&e.data[..], e.cachetime, e.base), (&b"41"[..], 13.0, 12.5));
    // A key no server had: base 0 on both sides, so they add up too.
    assert_eq!(c.add(b("new"), None, false, 20.0).unwrap().base, 0.0);
    let merged = c.merge_increment(b("new"), &inc(19.0, 0.0, 4, "4"), 21.0);
    assert_eq!(merged, Ok(Merged::Added));
    assert_eq!(c.get(b"new").unwrap().data, b("5"));
}
