//! Arbitrary text as a config file: never panics; an accepted config holds every invariant of
//! `clacks_server::fuzzing::check` (numbers within their ranges, a user, a listener, …).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clacks_server::fuzzing::config_parse(data));
