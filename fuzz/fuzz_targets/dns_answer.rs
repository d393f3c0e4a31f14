//! cargo-fuzz target `dns_answer`: the check lives in `checks/dns_answer.rs`, which the test suite also
//! runs over the committed corpus (`tests/tests/fuzz_corpora.rs`).
#![no_main]

#[path = "../checks/dns_answer.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
