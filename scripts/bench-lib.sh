# Helpers the side-by-side benchmarks share; sourced by edge/bench/*.sh and origin/bench/bench.sh
# after they set ROOT_DIR. The processes a benchmark starts go into PIDS; they are stopped, and
# its scratch folders (WORK, and SHM when set) removed, when it exits however it exits.

# Exits naming the first of the given tools that is not on PATH.
require_tools() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
    done
}

PIDS=()
bench_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "${WORK:-}" "${SHM:-}"
}
trap bench_cleanup EXIT

# Waits up to 10 s for URL to answer (any status, certificate not checked); exits otherwise.
wait_url() {
    for _ in $(seq 1 100); do
        curl -sk -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    exit 1
}

# Waits for a plain-HTTP server on 127.0.0.1:PORT.
wait_port() { wait_url "http://127.0.0.1:$1/"; }

# The median of the numbers on standard input (separated by spaces or lines).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# CPU ticks (user + system, every thread) process PID has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Microseconds of CPU per request: us_per_request TICKS_BEFORE TICKS_AFTER REQ_PER_S SECONDS.
us_per_request() {
    awk -v t=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v r="$3" -v d="$4" \
        'BEGIN { printf "%.1f", t / hz * 1e6 / (r * d) }'
}
