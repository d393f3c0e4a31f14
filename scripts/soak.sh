#!/usr/bin/env bash
# Bounded soak of the whole stack (release build): N players for M minutes through the router
# and the edges, edge 1 restarted halfway. Flags: --players N (50), --minutes M (10, max 60),
# --restart-down-secs S (5). Prints errors, stalls, p99 segment latency and peak RSS; exits 1
# when a playback failed or lost a segment.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -p cdn-tests --example soak -- "$@"
