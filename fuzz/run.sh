#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each) with the nightly
# toolchain (installed when missing), starting from and adding to the committed corpora under
# fuzz/corpus/<target>/ (`cargo fuzz cmin` keeps them small before a commit; the test suite
# replays them on stable in tests/tests/fuzz_corpora.rs).
# Prints one line per target: executions, corpus size, and whether it crashed. Exits non-zero
# when any target crashed; the crashing input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
targets=("${TARGETS[@]:-mpd_parse range_header cache_policy coverage_zone dns_answer}")
targets=(${targets[*]})
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "run.sh: installing the nightly toolchain (cargo fuzz needs it)" >&2
    rustup toolchain install nightly --profile minimal >&2 \
        || { echo "error: cargo fuzz needs a nightly toolchain and it could not be installed" >&2; exit 1; }
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2 \
        || { echo "error: cargo-fuzz is missing and could not be installed" >&2; exit 1; }
fi
cargo +nightly fuzz build -O >&2
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$(mktemp)"
    dict=()
    [[ "$t" == mpd_parse ]] && dict=(-dict=mpd.dict)
    set +e
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 \
        -timeout=10 -rss_limit_mb=2048 "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || true)
    if [[ -z "$runs" ]]; then
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    fi
    if [[ $rc -ne 0 ]]; then
        failed=1
        echo "$t: CRASHED after ${runs:-?} runs (rc $rc); see artifacts/$t/"
        grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -5 || true
    else
        echo "$t: ${runs:-?} runs in ${secs}s, no crash, corpus $(ls "corpus/$t" | wc -l) files"
    fi
    rm -f "$log"
done
exit $failed
