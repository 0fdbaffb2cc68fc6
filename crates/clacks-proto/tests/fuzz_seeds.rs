//! The seed corpus of the fuzz target `request_decode`, replayed on stable so CI covers it.

#[test]
fn request_decode_seeds_hold_every_invariant() {
    clacks_proto::fuzzing::replay_corpus(
        "request_decode",
        40,
        clacks_proto::fuzzing::request_decode,
    );
}
