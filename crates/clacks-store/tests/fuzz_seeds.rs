//! The seed corpus of the fuzz target `persist_load`, replayed on stable so CI covers it.

#[test]
fn persist_load_seeds_hold_every_invariant() {
    clacks_proto::fuzzing::replay_corpus("persist_load", 20, clacks_store::fuzzing::persist_load);
}
