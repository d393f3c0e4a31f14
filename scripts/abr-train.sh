#!/usr/bin/env bash
# Regenerates the hybrid ABR's per-state table (player/src/abr/tuning_table.rs) from the training
# half of the trace sets (even positions of each set's sorted file names), and the small table
# the player tests check (player/abr-data/fixture-table.rs, trained on the test fixtures).
#
#   scripts/abr-train.sh [TRACES]          # TRACES defaults to ../shared/traces
#   scripts/abr-train.sh --check [TRACES]  # regenerate and compare, write nothing
set -euo pipefail
cd "$(dirname "$0")/.."
check=()
if [[ "${1:-}" == "--check" ]]; then
    check=(--check)
    shift
fi
traces="${1:-../shared/traces}"
nice -n 10 cargo build --release -p player --example abr_train
nice -n 10 target/release/examples/abr_train --traces "$traces" \
    --out player/src/abr/tuning_table.rs "${check[@]}"
nice -n 10 target/release/examples/abr_train --fixtures player/tests/fixtures \
    --out player/abr-data/fixture-table.rs "${check[@]}"
