#!/usr/bin/env bash
# Disk-tier benchmark: our edge with a disk tier vs nginx proxy_cache with the same disk budget,
# same machine, same run, interleaved rounds, quoted as ratios.
#
#   1. Hits beyond memory: OBJECTS distinct 1 MiB segments (default 256 = 4x the edge's 64 MiB
#      memory tier), requested uniformly at random (wrk + Lua, fixed seed), every object cached
#      and the page cache warm for both (each object fetched twice through each server first).
#      Servers pinned to core 0 (one worker), wrk on core 1. Requests/s and p99 latency, median
#      of ROUNDS rounds. A memory-only edge whose tier holds the whole working set runs the same
#      load, for the memory-tier figure.
#   2. RSS of our edge with FILL (default 100,000) small objects on disk, and the index rebuild
#      time for them after a restart (edge_disk_index_load_seconds).
#
# Usage: edge/bench/disk.sh     (env: ROUNDS=3 DURATION=8 CONNS=32 OBJECTS=256 FILL=100000,
#                                SKIP_BUILD=1 to use the release binary already built)
# Needs: wrk nginx taskset curl python3 (Debian: wrk nginx-light util-linux curl python3).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-32}
OBJECTS=${OBJECTS:-256}
FILL=${FILL:-100000}
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/edge-disk-bench.XXXXXX)
# nginx workers run unprivileged: its folders must be theirs to read and write.
chmod 755 "$WORK"

P_ORIGIN=18100 P_EDGE=18180 P_NGINX=18181 P_MEM=18182

source "$ROOT_DIR/scripts/bench-lib.sh"
require_tools wrk nginx taskset curl python3

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "building the release binary..." >&2
    (cd "$ROOT_DIR" && cargo build --release --bin cdn -q)
fi
CDN="$ROOT_DIR/target/release/cdn"

mkdir -p "$WORK/content/vod/disk" "$WORK/edge-cache" "$WORK/nginx-cache"
chmod 777 "$WORK/nginx-cache"
python3 - "$WORK/content/vod/disk" "$OBJECTS" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"seg-{i}.m4s"), "wb") as f:
        f.write(os.urandom(1 << 20))
with open(os.path.join(d, "small.m4s"), "wb") as f:
    f.write(os.urandom(2048))
PY

# One sample's value from /metrics (names carry the constant label edge="NAME").
# (awk reads to the end: an early exit could kill curl with SIGPIPE and, under pipefail, the run.)
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '!found && ($1 == m || index($1, m "{") == 1) { print $2; found = 1 }'; }

taskset -c 0 "$CDN" origin --root "$WORK/content" --listen 127.0.0.1:$P_ORIGIN >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_port $P_ORIGIN

start_edge() {
    TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$CDN" edge --listen 127.0.0.1:$P_EDGE \
        --upstream http://127.0.0.1:$P_ORIGIN --name edge-disk --cache-size 64MiB \
        --cache-dir "$WORK/edge-cache" --disk-size 1GiB >>"$WORK/edge.log" 2>&1 &
    EDGE_PID=$!
    PIDS+=($EDGE_PID)
    wait_port $P_EDGE
}
start_edge

# The memory tier alone, large enough for the whole working set.
TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$CDN" edge --listen 127.0.0.1:$P_MEM \
    --upstream http://127.0.0.1:$P_ORIGIN --name edge-mem --cache-size 1GiB >"$WORK/mem.log" 2>&1 &
PIDS+=($!)
wait_port $P_MEM

# nginx: proxy_cache on disk with the same 1 GiB budget; its memory tier is the page cache.
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=disk:64m max_size=1g inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache disk;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            add_header Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
wait_port $P_NGINX

declare -A PORT=([edge-disk]=$P_EDGE [nginx-disk]=$P_NGINX [edge-mem]=$P_MEM)

# Every object cached and in the page cache, through every server; any non-200 stops the run.
for srv in edge-disk nginx-disk edge-mem; do
    for pass in 1 2; do
        for i in $(seq 0 $((OBJECTS - 1))); do
            code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$srv]}/vod/disk/seg-$i.m4s")
            [ "$code" = 200 ] || { echo "$srv answered $code for seg-$i (pass $pass)" >&2; exit 1; }
        done
    done
done
echo "edge: $(metric $P_EDGE edge_disk_objects) objects on disk, $(metric $P_EDGE edge_stored_objects) in memory" >&2

cat >"$WORK/uniform.lua" <<EOF
math.randomseed(42)
request = function()
    return wrk.format("GET", "/vod/disk/seg-" .. math.random(0, $((OBJECTS - 1))) .. ".m4s")
end
EOF

# wrk output -> "rps p99_ms"; fails on any non-2xx answer.
run_wrk() {
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/uniform.lua" "$1" | awk '
        /Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        /^ +99%/ { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
                   if (u == "us") v /= 1000; else if (u == "s") v *= 1000; p99 = v }
        END { if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
              printf "%.0f %.3f\n", rps, p99 }'
}

declare -A RPS P99
for r in $(seq 1 "$ROUNDS"); do
    for srv in edge-disk nginx-disk edge-mem; do
        read -r rps p99 < <(run_wrk "http://127.0.0.1:${PORT[$srv]}")
        RPS[$srv]+="$rps "
        P99[$srv]+="$p99 "
        echo "round $r $srv: $rps req/s, p99 ${p99} ms" >&2
    done
done
tier_hits=$(curl -s "http://127.0.0.1:$P_EDGE/metrics" | grep '^edge_tier_hits_total' || true)
origin_after=$(metric $P_EDGE edge_upstream_bytes_total)

echo
echo "## Hits beyond memory ($OBJECTS x 1 MiB, uniform random, wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS rounds)"
echo
echo "| server | tiers | req/s | p99 ms | ratio to nginx |"
echo "| --- | --- | ---: | ---: | ---: |"
n=$(echo "${RPS[nginx-disk]}" | median)
for srv in edge-disk nginx-disk edge-mem; do
    m=$(echo "${RPS[$srv]}" | median)
    p=$(echo "${P99[$srv]}" | median)
    case $srv in
        edge-disk) tiers="64 MiB memory + 1 GiB disk" ;;
        nginx-disk) tiers="1 GiB proxy_cache (page cache)" ;;
        edge-mem) tiers="1 GiB memory" ;;
    esac
    echo "| $srv | $tiers | $m | $p | $(awk -v a="$m" -v b="$n" 'BEGIN { printf "%.2f", a / b }') |"
done
echo
echo "Edge tier hits after the rounds: $(echo $tier_hits | tr '\n' ' '); upstream bytes: $origin_after"

# RSS with FILL objects on disk, then the index rebuild after a restart.
echo "filling $FILL small objects..." >&2
python3 - "$P_EDGE" "$FILL" <<'PY'
import http.client, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
errors = []
def run(lo, hi):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(lo, hi):
        c.request("GET", f"/vod/disk/small.m4s?n={i}")
        r = c.getresponse(); r.read()
        if r.status != 200:
            errors.append(r.status); return
ts = [threading.Thread(target=run, args=(k * n // 8, (k + 1) * n // 8)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
if errors:
    sys.exit(f"fill: non-200 answers {errors[:5]}")
PY
sleep 1
objects=$(metric $P_EDGE edge_disk_objects)
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$EDGE_PID/status")
rss_anon=$(awk '/RssAnon/ { print $2 }' "/proc/$EDGE_PID/status")
rss_file=$(awk '/RssFile/ { print $2 }' "/proc/$EDGE_PID/status")
kill -TERM "$EDGE_PID"; wait "$EDGE_PID" 2>/dev/null || true
start_edge
for _ in $(seq 1 600); do
    [ "$(metric $P_EDGE edge_disk_loading)" = 0 ] && break
    sleep 0.1
done
echo
echo "## The edge with $objects objects on disk"
echo
echo "RSS includes the 64 MiB memory tier, full of segments from the rounds above (anonymous"
echo "memory), and the disk-tier bodies mapped by the rounds (file pages, at most 256 MiB)."
echo
echo "| RSS | of which anonymous | of which file pages | index rebuild after restart | objects found |"
echo "| ---: | ---: | ---: | ---: | ---: |"
echo "| $((rss / 1024)) MiB | $((rss_anon / 1024)) MiB | $((rss_file / 1024)) MiB | $(metric $P_EDGE edge_disk_index_load_seconds) s | $(metric $P_EDGE edge_disk_objects) |"
