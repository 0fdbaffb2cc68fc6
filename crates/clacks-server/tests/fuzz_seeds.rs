//! Seed corpora of the fuzz targets replayed on stable so CI covers them: `config_parse` and
//! `memcached_decode` here (`request_decode` and `persist_load` are replayed by the tests of
//! `clacks-proto` and `clacks-store`), and a check that no target goes without seeds.

use std::path::{Path, PathBuf};

/// Every fuzz target and the test file that replays its seeds.
const REPLAYED: [(&str, &str); 4] = [
    ("config_parse", "crates/clacks-server/tests/fuzz_seeds.rs"),
    (
        "memcached_decode",
        "crates/clacks-server/tests/fuzz_seeds.rs",
    ),
    ("persist_load", "crates/clacks-store/tests/fuzz_seeds.rs"),
    ("request_decode", "crates/clacks-proto/tests/fuzz_seeds.rs"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn config_parse_seeds_hold_every_invariant() {
    clacks_proto::fuzzing::replay_corpus("config_parse", 30, clacks_server::fuzzing::config_parse);
}

#[test]
fn memcached_decode_seeds_hold_every_invariant() {
    clacks_proto::fuzzing::replay_corpus(
        "memcached_decode",
        10,
        clacks_proto::fuzzing::memcached_decode,
    );
}

/// A target added to `fuzz/` without seeds, a dictionary or a replaying test fails here rather
/// than going unchecked on stable.
#[test]
fn every_fuzz_target_has_seeds_a_dictionary_and_a_replay() {
    let fuzz = root().join("fuzz");
    let targets_dir = fuzz.join("fuzz_targets");
    let mut targets: Vec<String> = std::fs::read_dir(&targets_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", targets_dir.display()))
        .map(|e| e.expect("fuzz target entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    targets.sort();
    let replayed: Vec<&str> = REPLAYED.iter().map(|(t, _)| *t).collect();
    assert_eq!(targets, replayed, "fuzz targets and their replays differ");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, test) in REPLAYED {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} is not a [[bin]] of fuzz/Cargo.toml"
        );
        let dict = fuzz.join(format!("{target}.dict"));
        let dict =
            std::fs::read_to_string(&dict).unwrap_or_else(|e| panic!("{}: {e}", dict.display()));
        assert!(
            dict.lines().any(|l| l.starts_with('"')),
            "{target}.dict has no entry"
        );
        let seeds = fuzz.join("corpus").join(target);
        let count = std::fs::read_dir(&seeds)
            .unwrap_or_else(|e| panic!("{}: {e}", seeds.display()))
            .count();
        assert!(count > 0, "{} is empty", seeds.display());
        let replay = std::fs::read_to_string(root().join(test)).expect(test);
        assert!(
            replay.contains("replay_corpus") && replay.contains(&format!("\"{target}\"")),
            "{test} does not replay {target}"
        );
    }
}
