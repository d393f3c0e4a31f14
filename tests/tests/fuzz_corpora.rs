//! Replays the committed fuzzing corpora (`fuzz/corpus/<target>/`) through the same checks the
//! cargo-fuzz targets run (`fuzz/checks/<target>.rs`), on the stable toolchain: every input a
//! fuzzer once found interesting stays a regression test. New inputs come from `fuzz/run.sh`
//! (nightly, in `scripts/bench.sh fuzz`).

use std::path::Path;

#[path = "../../fuzz/checks/cache_policy.rs"]
mod cache_policy;
#[path = "../../fuzz/checks/coverage_zone.rs"]
mod coverage_zone;
#[path = "../../fuzz/checks/dns_answer.rs"]
mod dns_answer;
#[path = "../../fuzz/checks/mpd_parse.rs"]
mod mpd_parse;
#[path = "../../fuzz/checks/range_header.rs"]
mod range_header;

/// Runs `check` on every file of the target's corpus and fails naming the input that broke it.
/// The corpus must hold at least `min_inputs` files, so an emptied corpus cannot pass.
fn replay(target: &str, min_inputs: usize, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= min_inputs,
        "{}: {} inputs, expected at least {min_inputs}",
        dir.display(),
        files.len()
    );
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs broke the {target} check: {failed:?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn mpd_parse_corpus() {
    replay("mpd_parse", 1000, mpd_parse::check);
}

#[test]
fn range_header_corpus() {
    replay("range_header", 300, range_header::check);
}

#[test]
fn cache_policy_corpus() {
    replay("cache_policy", 1000, cache_policy::check);
}

#[test]
fn coverage_zone_corpus() {
    replay("coverage_zone", 1000, coverage_zone::check);
}

#[test]
fn dns_answer_corpus() {
    replay("dns_answer", 200, dns_answer::check);
}

/// The replay cannot pass vacuously: a check that panics on an input fails the corpus.
#[test]
#[should_panic(expected = "broke the")]
fn a_failing_check_fails_the_replay() {
    replay("dns_answer", 1, |_| panic!("invariant broken"));
}
