//! Arbitrary bytes, cut in several ways, through the line decoder with small limits and the
//! request parser: see `clacks_proto::fuzzing::request_decode` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clacks_proto::fuzzing::request_decode(data));
