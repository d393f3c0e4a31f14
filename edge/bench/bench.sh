#!/usr/bin/env bash
# Edge benchmark: our edge vs nginx proxy_cache and Varnish (Debian packages), same machine, same
# run, interleaved rounds, quoted as ratios.
#
#   1. Cache hits: wrk with fixed connections on a 2 KiB MPD and a 1 MiB segment, each server
#      pinned to core 0 (one worker: TOKIO_WORKER_THREADS=1, nginx worker_processes 1), wrk on
#      core 1. Requests/s and p99 latency, median of ROUNDS interleaved rounds, and the server's
#      CPU time per request (utime + stime from /proc over the run).
#   2. Miss storm: STORM concurrent requests (warm keep-alive connections) for one uncached key;
#      origin fetches counted from the origin's /metrics, latency to the full body. Against nginx
#      with and without proxy_cache_lock, and Varnish.
#
# Usage: edge/bench/bench.sh            (env: ROUNDS=3 DURATION=8 CONNS=32 STORM=200 STORMS=3,
#                                        SKIP_BUILD=1 to use the release binaries already built)
# Needs: wrk nginx varnishd taskset curl (Debian: wrk nginx-light varnish util-linux curl).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-32}
STORM=${STORM:-200}
STORMS=${STORMS:-3}
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/edge-bench.XXXXXX)
SHM=$(mktemp -d /dev/shm/edge-bench-nginx.XXXXXX)
chmod 777 "$SHM"

P_ORIGIN=18000 P_EDGE=18080 P_NGINX=18081 P_VARNISH=18082 P_NGINX_NOLOCK=18083 P_FLOOR=18090

source "$ROOT_DIR/scripts/bench-lib.sh"
require_tools wrk nginx varnishd taskset curl

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "building release binaries..." >&2
    (cd "$ROOT_DIR" && cargo build --release --bin cdn -q && cargo build --release -p edge --example storm -q \
        && cargo build --release -p edge --example hyper_floor -q)
fi
CDN="$ROOT_DIR/target/release/cdn"
STORM_BIN="$ROOT_DIR/target/release/examples/storm"
FLOOR_BIN="$ROOT_DIR/target/release/examples/hyper_floor"

# Content: a 2 KiB MPD and a 1 MiB segment.
mkdir -p "$WORK/content/vod/demo/v0"
python3 - "$WORK/content/vod/demo" <<'PY'
import sys, os
d = sys.argv[1]
reps = "".join(f'      <Representation id="v{i}" bandwidth="{(i+1)*400000}" width="1280" height="720"/>\n' for i in range(20))
mpd = f'''<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011" mediaPresentationDuration="PT60S" minBufferTime="PT2S">
  <Period>
    <AdaptationSet mimeType="video/mp4" codecs="avc1.64001f" segmentAlignment="true">
      <SegmentTemplate timescale="90000" duration="360000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" startNumber="1"/>
{reps}    </AdaptationSet>
  </Period>
</MPD>
'''
mpd = mpd + "<!--" + "x" * max(0, 2048 - len(mpd) - 8) + "-->\n"
open(os.path.join(d, "manifest.mpd"), "w").write(mpd)
open(os.path.join(d, "v0", "1.m4s"), "wb").write(os.urandom(1 << 20))
PY
MPD_PATH=/vod/demo/manifest.mpd
SEG_PATH=/vod/demo/v0/1.m4s

# Origin (ours; all three caches use it).
taskset -c 0 "$CDN" origin --root "$WORK/content" --listen 127.0.0.1:$P_ORIGIN >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_port $P_ORIGIN

# Our edge: one worker thread on core 0.
TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$CDN" edge --listen 127.0.0.1:$P_EDGE \
    --upstream http://127.0.0.1:$P_ORIGIN --name edge-bench --cache-size 512MiB >"$WORK/edge.log" 2>&1 &
PIDS+=($!)
EDGE_PID=$!
wait_port $P_EDGE

# nginx: memory-backed proxy_cache, revalidation, stale serving, keep-alive upstream; one server
# with proxy_cache_lock (the equivalent of our coalescing), one without.
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    proxy_cache_path $SHM levels=1:2 keys_zone=edge:64m max_size=512m inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_revalidate on;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            proxy_cache_background_update on;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            add_header Cache-Status \$upstream_cache_status;
        }
    }
    server {
        listen 127.0.0.1:$P_NGINX_NOLOCK;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_revalidate on;
            add_header Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
NGINX_PID=$!
wait_port $P_NGINX

# Varnish: malloc storage, default VCL behaviour (honours Cache-Control, waiting list).
cat >"$WORK/default.vcl" <<EOF
vcl 4.1;
backend default { .host = "127.0.0.1"; .port = "$P_ORIGIN"; }
EOF
taskset -c 0 varnishd -F -j none -a 127.0.0.1:$P_VARNISH -f "$WORK/default.vcl" -s malloc,512m \
    -n "$WORK/varnish" -p thread_pools=1 >"$WORK/varnish.log" 2>&1 &
PIDS+=($!)
VARNISH_PID=$!
wait_port $P_VARNISH

# hyper alone (edge/examples/hyper_floor.rs): the same 2 KiB body with no logic at all, the floor
# of the HTTP stack the edge is built on, for the 2 KiB case only.
taskset -c 0 "$FLOOR_BIN" 127.0.0.1:$P_FLOOR >"$WORK/floor.log" 2>&1 &
PIDS+=($!)
FLOOR_PID=$!
wait_port $P_FLOOR

# The processes that serve hits: our edge, nginx's one worker, Varnish's cache process (the
# masters only supervise); the CPU each spends per request is reported beside its rate.
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)
VARNISH_CHILD=$(pgrep -P "$VARNISH_PID" | head -1)
[ -n "$NGINX_WORKER" ] && [ -n "$VARNISH_CHILD" ] || { echo "no nginx worker or varnish child" >&2; exit 1; }
declare -A SPID=([edge]=$EDGE_PID [nginx]=$NGINX_WORKER [varnish]=$VARNISH_CHILD [hyper-floor]=$FLOOR_PID)

declare -A PORT=([edge]=$P_EDGE [nginx]=$P_NGINX [varnish]=$P_VARNISH [hyper-floor]=$P_FLOOR)

# wrk output -> "rps p99_ms"
run_wrk() {
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1" | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
                   if (u == "us") v /= 1000; else if (u == "s") v *= 1000; p99 = v }
        END { printf "%.0f %.3f\n", rps, p99 }'
}

declare -A RPS P99 CPU
for r in $(seq 1 "$ROUNDS"); do
    for obj in mpd seg; do
        path=$MPD_PATH; [ "$obj" = seg ] && path=$SEG_PATH
        servers=(edge nginx varnish)
        [ "$obj" = mpd ] && servers+=(hyper-floor)
        for srv in "${servers[@]}"; do
            url="http://127.0.0.1:${PORT[$srv]}$path"
            curl -s -o /dev/null "$url"; curl -s -o /dev/null "$url"
            t0=$(cpu_ticks "${SPID[$srv]}")
            read -r rps p99 < <(run_wrk "$url")
            t1=$(cpu_ticks "${SPID[$srv]}")
            us=$(us_per_request "$t0" "$t1" "$rps" "$DURATION")
            RPS[$srv.$obj]+="$rps "
            P99[$srv.$obj]+="$p99 "
            CPU[$srv.$obj]+="$us "
            echo "round $r $obj $srv: $rps req/s, p99 ${p99} ms, server CPU $us us/req" >&2
        done
    done
done

echo
echo "## Cache hits (wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS interleaved rounds)"
echo
echo "| object | server | req/s | p99 ms | edge req/s ratio | server CPU us/req | edge per-CPU ratio |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
for obj in mpd seg; do
    e=$(echo "${RPS[edge.$obj]}" | median)
    ec=$(echo "${CPU[edge.$obj]}" | median)
    servers=(edge nginx varnish)
    [ "$obj" = mpd ] && servers+=(hyper-floor)
    for srv in "${servers[@]}"; do
        m=$(echo "${RPS[$srv.$obj]}" | median)
        p=$(echo "${P99[$srv.$obj]}" | median)
        c=$(echo "${CPU[$srv.$obj]}" | median)
        ratio=$(awk -v a="$e" -v b="$m" 'BEGIN { printf "%.2f", a / b }')
        cratio=$(awk -v a="$c" -v b="$ec" 'BEGIN { printf "%.2f", a / b }')
        echo "| $obj | $srv | $m | $p | $ratio | $c | $cratio |"
    done
done
echo
echo "Per-CPU ratio: requests per second of server CPU, the edge's over that server's: what each"
echo "spends per request, whichever side (server or the one wrk thread) limited the rate."
echo "hyper-floor: hyper alone answering the same 2 KiB with no logic (edge/examples/hyper_floor.rs),"
echo "the most the edge's HTTP stack does here: its rate over nginx's bounds what any hyper-based edge can reach."

echo
echo "## Miss storm ($STORM concurrent requests for one uncached 1 MiB key, warm connections, $STORMS rounds)"
echo
echo "Baseline: one request alone for another uncached key through the same server. Added latency ="
echo "storm head p99 - baseline head."
echo
echo "| server | origin fetches | baseline head ms | head p50 ms | head p99 ms | added ms | body p50 ms | body p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
declare -A SPORT=([edge]=$P_EDGE [nginx-lock]=$P_NGINX [nginx-nolock]=$P_NGINX_NOLOCK [varnish]=$P_VARNISH)
for s in $(seq 1 "$STORMS"); do
    for srv in edge nginx-lock nginx-nolock varnish; do
        port=${SPORT[$srv]}
        base=$("$STORM_BIN" "http://127.0.0.1:$port$SEG_PATH?alone=$srv-$s-$RANDOM" 1 "" "http://127.0.0.1:$port$MPD_PATH")
        out=$("$STORM_BIN" "http://127.0.0.1:$port$SEG_PATH?storm=$srv-$s-$RANDOM" "$STORM" \
            "http://127.0.0.1:$P_ORIGIN/metrics" "http://127.0.0.1:$port$MPD_PATH")
        echo "storm $s $srv: alone $base storm $out" >&2
        python3 -c '
import json, sys
b = json.loads(sys.argv[2]); d = json.loads(sys.argv[3])
print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |" % (sys.argv[1], d["origin_fetches"],
      b["head_p50_ms"], d["head_p50_ms"], d["head_p99_ms"], d["head_p99_ms"] - b["head_p50_ms"],
      d["body_p50_ms"], d["body_p99_ms"]))
' "$srv" "$base" "$out"
    done
done
