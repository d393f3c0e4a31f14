//! cargo-fuzz target `coverage_zone`: the check lives in `checks/coverage_zone.rs`, which the test suite also
//! runs over the committed corpus (`tests/tests/fuzz_corpora.rs`).
#![no_main]

#[path = "../checks/coverage_zone.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
