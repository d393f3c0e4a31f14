#!/usr/bin/env bash
# dnsperf against the DNS router (geo steering, with and without ECS) and against Knot DNS
# serving an equivalent static zone, interleaved in one run on this machine.
#
#   dns-router/bench/bench.sh [SECONDS_PER_RUN] [ROUNDS]
#
# Needs Debian packages dnsperf and knot. Prints one line per run and a summary with the
# router/Knot ratios. Everything listens on 127.0.0.1 only; each run is bounded by -l.
set -euo pipefail

secs=${1:-10}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dns-bench.XXXXXX)
router_port=25353
knot_port=25354
workers=$(nproc)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in dnsperf knotd; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install dnsperf knot)" >&2; exit 1; }
done

# The router binary: `cdn dns`'s code alone (dns-router/examples/serve.rs), so the benchmark
# builds even while other crates of the workspace are mid-change.
cargo build --release -p dns-router --example serve --manifest-path "$root/Cargo.toml" >&2
router_bin="$root/target/release/examples/serve"

# The router: the shipped local-stack config, on other ports, edges without health URLs
# (always up, so every answer goes through the geo steering path).
sed -e "s/^listen = .*/listen = \"127.0.0.1:$router_port\"/" \
    -e "s/^metrics_listen = .*/metrics_listen = \"127.0.0.1:25355\"/" \
    -e "s/^udp_workers = .*/udp_workers = $workers/" \
    -e "s/^udp_sockets = .*/udp_sockets = 0/" \
    -e '/^health_url/d' \
    "$root/dns-router/examples/local.toml" > "$work/router.toml"
RUST_LOG=warn "$router_bin" --config "$work/router.toml" >"$work/router.log" 2>&1 &
router_pid=$!
pids+=($router_pid)
# The same with one SO_REUSEPORT socket shared by the worker threads (udp_sockets = 1, the
# default); `router` above has one socket per worker (udp_sockets = 0).
shared_port=25356
sed -e "s/^listen = .*/listen = \"127.0.0.1:$shared_port\"/" \
    -e "s/^metrics_listen = .*/metrics_listen = \"127.0.0.1:25357\"/" \
    -e "s/^udp_sockets = .*/udp_sockets = 1/" \
    "$work/router.toml" > "$work/router_shared.toml"
RUST_LOG=warn "$router_bin" --config "$work/router_shared.toml" >"$work/router_shared.log" 2>&1 &
shared_pid=$!
pids+=($shared_pid)

# Knot: the same names, with the CDN name as a static A record.
mkdir -p "$work/knot"
cat > "$work/knot/example.test.zone" <<ZONE
\$ORIGIN example.test.
\$TTL 3600
@       SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60
@       NS  ns1.example.test.
ns1     A   127.0.0.1
origin  300 A 127.0.0.1
video   300 CNAME video.cdn.example.test.
ZONE
cat > "$work/knot/cdn.example.test.zone" <<ZONE
\$ORIGIN cdn.example.test.
\$TTL 3600
@       SOA ns1.cdn.example.test. hostmaster.cdn.example.test. 1 3600 600 86400 60
@       NS  ns1.cdn.example.test.
ns1     A   127.0.0.1
video   20  A 127.0.1.1
ZONE
cat > "$work/knot/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$knot_port
    rundir: $work/knot
    udp-workers: $workers
    tcp-workers: 1
    background-workers: 1
database:
    storage: $work/knot/db
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: $work/knot
    semantic-checks: off
zone:
  - domain: example.test
    file: example.test.zone
  - domain: cdn.example.test
    file: cdn.example.test.zone
CONF
knotd -c "$work/knot/knot.conf" >"$work/knot.log" 2>&1 &
knot_pid=$!
pids+=($knot_pid)

echo "video.cdn.example.test A" > "$work/queries.txt"
# ECS 127.0.2.0/24: family 1, source 24, scope 0, three address octets.
ecs="8:000118007f0002"

# Wait for both servers.
for port in $router_port $shared_port $knot_port; do
    for _ in $(seq 50); do
        if dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" video.cdn.example.test A | grep -q 127.0; then break; fi
        sleep 0.2
    done
done
echo "router answers: $(dig +short @127.0.0.1 -p $router_port video.cdn.example.test A)  (ECS region 2: $(dig +short +subnet=127.0.2.0/24 @127.0.0.1 -p $router_port video.cdn.example.test A))" >&2
echo "knot answers:   $(dig +short @127.0.0.1 -p $knot_port video.cdn.example.test A)" >&2

# CPU time (user+system, clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # name port pid [extra dnsperf args]
    local name=$1 port=$2 pid=$3
    shift 3
    local out before after
    before=$(cpu_ticks "$pid")
    out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$secs" -c 4 -q 200 "$@" 2>&1)
    after=$(cpu_ticks "$pid")
    local qps lat lost completed
    qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
    lat=$(awk '/Average Latency/ {print $4}' <<<"$out")
    lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
    completed=$(awk '/Queries completed:/ {print $3}' <<<"$out")
    # Server CPU microseconds per answered query: robust to the machine's load, unlike qps.
    local cpu_us
    cpu_us=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$completed" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
    echo "$name qps=$qps avg_latency_s=$lat lost=$lost server_cpu_us_per_query=$cpu_us"
}

results="$work/results.txt"
for r in $(seq "$rounds"); do
    run router "$router_port" "$router_pid" | tee -a "$results"
    run knot "$knot_port" "$knot_pid" | tee -a "$results"
    run shared "$shared_port" "$shared_pid" | tee -a "$results"
    run router_ecs "$router_port" "$router_pid" -E "$ecs" | tee -a "$results"
    run knot_ecs "$knot_port" "$knot_pid" -E "$ecs" | tee -a "$results"
    run shared_ecs "$shared_port" "$shared_pid" -E "$ecs" | tee -a "$results"
done

awk '
    {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[$1, kv[1]] += kv[2] }
        n[$1]++
    }
    END {
        printf "\n%-11s %10s %16s %18s\n", "server", "mean qps", "mean latency ms", "cpu us per query"
        split("router shared knot router_ecs shared_ecs knot_ecs", order, " ")
        for (i = 1; i <= 6; i++) {
            k = order[i]
            printf "%-11s %10.0f %16.3f %18.2f\n", k, v[k, "qps"]/n[k], 1000*v[k, "avg_latency_s"]/n[k], v[k, "server_cpu_us_per_query"]/n[k]
        }
        q = "qps"; c = "server_cpu_us_per_query"
        printf "\nqps ratio router/knot: no ECS %.2fx, ECS %.2fx\n", v["router", q]/v["knot", q], v["router_ecs", q]/v["knot_ecs", q]
        printf "qps ratio shared-socket router/knot: no ECS %.2fx, ECS %.2fx\n", v["shared", q]/v["knot", q], v["shared_ecs", q]/v["knot_ecs", q]
        printf "CPU per query knot/router (higher = router cheaper): no ECS %.2fx, ECS %.2fx\n", v["knot", c]/v["router", c], v["knot_ecs", c]/v["router_ecs", c]
        printf "CPU per query knot/shared-socket router: no ECS %.2fx, ECS %.2fx\n", v["knot", c]/v["shared", c], v["knot_ecs", c]/v["shared_ecs", c]
    }' "$results"
