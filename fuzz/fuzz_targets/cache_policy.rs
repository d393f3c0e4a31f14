//! cargo-fuzz target `cache_policy`: the check lives in `checks/cache_policy.rs`, which the test suite also
//! runs over the committed corpus (`tests/tests/fuzz_corpora.rs`).
#![no_main]

#[path = "../checks/cache_policy.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
