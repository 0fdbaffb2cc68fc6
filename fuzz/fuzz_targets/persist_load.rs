//! Arbitrary bytes as a persistence file: never panics; what loads is written and loads again
//! to the same records (`clacks_store::fuzzing::persist_load`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| clacks_store::fuzzing::persist_load(data));
