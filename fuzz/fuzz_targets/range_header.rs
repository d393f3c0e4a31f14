//! cargo-fuzz target `range_header`: the check lives in `checks/range_header.rs`, which the test suite also
//! runs over the committed corpus (`tests/tests/fuzz_corpora.rs`).
#![no_main]

#[path = "../checks/range_header.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
