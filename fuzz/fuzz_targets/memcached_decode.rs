//! Arbitrary bytes, cut in several ways, through the memcached request decoder with small line
//! and item limits: see `clacks_proto::fuzzing::memcached_decode` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clacks_proto::fuzzing::memcached_decode(data));
