//! cargo-fuzz target `mpd_parse`: the check lives in `checks/mpd_parse.rs`, which the test suite also
//! runs over the committed corpus (`tests/tests/fuzz_corpora.rs`).
#![no_main]

#[path = "../checks/mpd_parse.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
