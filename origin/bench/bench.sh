#!/usr/bin/env bash
# Origin benchmark: our origin vs nginx (Debian) serving the same folder, same machine, same run,
# interleaved rounds, quoted as ratios.
#
# wrk with a fixed number of keep-alive connections fetches a 2 KiB MPD and a 1 MiB segment. Each
# server is pinned to core 0 (our origin with TOKIO_WORKER_THREADS=1, nginx with one worker
# process, sendfile on), wrk to core 1. Access logs are off on both. Requests/s and p99 latency,
# median of ROUNDS interleaved rounds (the order alternates per round).
#
# Two configurations: "default" (ours as shipped: every request opens the file; nginx without
# open_file_cache, as Debian ships it) and "cached" (ours with small_file_cache_ms = 1000; nginx
# with open_file_cache and open_file_cache_valid 1s: both trust a file for 1 s).
#
# Usage: origin/bench/bench.sh          (env: ROUNDS=3 DURATION=8 CONNS=32)
# Needs: wrk nginx taskset curl (Debian: wrk nginx-light util-linux curl).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-32}
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/origin-bench.XXXXXX)
P_ORIGIN=18100 P_NGINX=18101 P_ORIGIN_C=18102 P_NGINX_C=18103

source "$ROOT_DIR/scripts/bench-lib.sh"
require_tools wrk nginx taskset curl python3

# The origin alone (origin/examples/origin.rs runs origin::cli::run, the code of `cdn origin`).
echo "building the release binary..." >&2
(cd "$ROOT_DIR" && cargo build --release -p origin --example origin -q)
ORIGIN_BIN="$ROOT_DIR/target/release/examples/origin"

# Content: a 2 KiB MPD and a 1 MiB segment (random bytes).
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
chmod -R a+rX "$WORK"  # nginx workers run as www-data
MPD_PATH=/vod/demo/manifest.mpd
SEG_PATH=/vod/demo/v0/1.m4s

start_origin() { # port cache_ms
    cat >"$WORK/origin-$1.toml" <<EOF2
root = "$WORK/content"
listen = "127.0.0.1:$1"
access_log = false
small_file_cache_ms = $2
EOF2
    TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$ORIGIN_BIN" --config "$WORK/origin-$1.toml" \
        >"$WORK/origin-$1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1"
}
start_origin $P_ORIGIN 0
start_origin $P_ORIGIN_C 1000

# nginx as a static origin: the same headers ours sends (CORS, Cache-Control by kind; ETag,
# Last-Modified and Accept-Ranges are nginx defaults), sendfile, long keep-alive.
start_nginx() { # port extra-directives
    cat >"$WORK/nginx-$1.conf" <<EOF2
worker_processes 1;
daemon off;
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-error-$1.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    $2
    types { application/dash+xml mpd; video/mp4 mp4 m4s; }
    server {
        listen 127.0.0.1:$1;
        root $WORK/content;
        add_header Access-Control-Allow-Origin *;
        location ~ \.mpd\$ { add_header Access-Control-Allow-Origin *; add_header Cache-Control "public, max-age=60"; }
        location ~ \.m4s\$ { add_header Access-Control-Allow-Origin *; add_header Cache-Control "public, max-age=31536000, immutable"; }
    }
}
EOF2
    taskset -c 0 nginx -c "$WORK/nginx-$1.conf" -p "$WORK" >"$WORK/nginx-$1.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1"
}
start_nginx $P_NGINX ""
start_nginx $P_NGINX_C "open_file_cache max=1000 inactive=20s; open_file_cache_valid 1s;"

# Both must serve the same bytes.
for p in $MPD_PATH $SEG_PATH; do
    a=$(curl -s "http://127.0.0.1:$P_ORIGIN$p" | sha256sum)
    for port in $P_NGINX $P_ORIGIN_C $P_NGINX_C; do
        b=$(curl -s "http://127.0.0.1:$port$p" | sha256sum)
        [ "$a" = "$b" ] || { echo "port $port serves different bytes for $p" >&2; curl -si "http://127.0.0.1:$port$p" | head -5 >&2; exit 1; }
    done
done

# One wrk run: prints "rps p99_ms".
run_wrk() {
    local out
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$1$2")
    local rps p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
    echo "$rps $p99"
}

RESULTS="$WORK/results.txt"
: >"$RESULTS"
echo "wrk -t1 -c$CONNS -d${DURATION}s, servers on core 0, wrk on core 1, $ROUNDS rounds" >&2
for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then order="origin nginx"; else order="nginx origin"; fi
    for conf in default cached; do
        for target in mpd segment; do
            path=$MPD_PATH; [ "$target" = segment ] && path=$SEG_PATH
            for server in $order; do
                case "$server-$conf" in
                    origin-default) port=$P_ORIGIN ;;
                    nginx-default) port=$P_NGINX ;;
                    origin-cached) port=$P_ORIGIN_C ;;
                    nginx-cached) port=$P_NGINX_C ;;
                esac
                read -r rps p99 < <(run_wrk "$port" "$path")
                echo "round $round $conf $target $server rps=$rps p99_ms=$p99" >&2
                echo "$conf $target $server $rps $p99" >>"$RESULTS"
            done
        done
    done
done

python3 - "$RESULTS" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"{'config':<9}{'object':<9}{'origin req/s':>13}{'nginx req/s':>13}{'ratio':>7}{'origin p99 ms':>15}{'nginx p99 ms':>14}")
for conf in ("default", "cached"):
    for target in ("mpd", "segment"):
        med = {}
        for server in ("origin", "nginx"):
            sel = [r for r in rows if r[0] == conf and r[1] == target and r[2] == server]
            med[server] = (statistics.median(float(r[3]) for r in sel), statistics.median(float(r[4]) for r in sel))
        o, n = med["origin"], med["nginx"]
        print(f"{conf:<9}{target:<9}{o[0]:>13.0f}{n[0]:>13.0f}{o[0]/n[0]:>7.2f}{o[1]:>15.2f}{n[1]:>14.2f}")
PY
