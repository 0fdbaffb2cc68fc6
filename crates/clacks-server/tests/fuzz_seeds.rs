//! The seed corpus of the fuzz target `config_parse`, replayed on stable so CI covers it.

#[test]
fn config_parse_seeds_hold_every_invariant() {
    clacks_proto::fuzzing::replay_corpus("config_parse", 30, clacks_server::fuzzing::config_parse);
}
