#!/usr/bin/env bash
# HTTPS benchmark: our edge against nginx proxy_cache, both with the same certificate (ECDSA
# P-256) and TLS 1.3 only, same machine, same run, interleaved rounds, quoted as ratios; and our
# edge's HTTP/3 beside its HTTP/2 (no packaged HTTP/3 peer).
#
#   1. Cache hits over HTTPS (HTTP/1.1 keep-alive, wrk -t1 -cCONNS): a 2 KiB MPD and a 1 MiB
#      segment. Servers pinned to core 0 (one worker each), wrk on core 1.
#   2. New TLS connections/s: wrk with `Connection: close` on the 2 KiB MPD (a full TLS 1.3
#      handshake per request; wrk does not resume sessions). One wrk thread doing the client
#      side of every handshake (including the certificate check) can be what limits this case,
#      so each case also reports the server's CPU time per request (utime + stime of the
#      server process from /proc, over the run): what the server spends, whoever is slower.
#   3. HTTP/2 and HTTP/3 hits of our edge with the same client shape (edge/examples/h3load.rs:
#      H3CONNS connections x H3STREAMS requests in flight), 2 KiB and 1 MiB.
#
# Usage: edge/bench/tls.sh     (env: ROUNDS=3 DURATION=8 CONNS=32 H3CONNS=4 H3STREAMS=8,
#                               SKIP_BUILD=1 to use the release binaries already built)
# Needs: wrk nginx openssl taskset curl (Debian: wrk nginx-light openssl util-linux curl).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-32}
H3CONNS=${H3CONNS:-4}
H3STREAMS=${H3STREAMS:-8}
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/edge-tls-bench.XXXXXX)
chmod 755 "$WORK"
SHM=$(mktemp -d /dev/shm/edge-tls-bench-nginx.XXXXXX)
chmod 777 "$SHM"

P_ORIGIN=18200 P_EDGE=18280 P_NGINX=18281

source "$ROOT_DIR/scripts/bench-lib.sh"
require_tools wrk nginx openssl taskset curl

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "building release binaries..." >&2
    (cd "$ROOT_DIR" && cargo build --release --bin cdn -q && cargo build --release -p edge --example h3load -q)
fi
CDN="$ROOT_DIR/target/release/cdn"
H3LOAD="$ROOT_DIR/target/release/examples/h3load"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj "/CN=video.example.test" \
    -addext "subjectAltName=DNS:video.example.test,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
chmod 644 "$WORK/key.pem"

mkdir -p "$WORK/content/vod/demo/v0"
python3 - "$WORK/content/vod/demo" <<'PY'
import sys, os
d = sys.argv[1]
open(os.path.join(d, "manifest.mpd"), "w").write("<MPD>" + "x" * (2048 - 12) + "</MPD>\n")
open(os.path.join(d, "v0", "1.m4s"), "wb").write(os.urandom(1 << 20))
PY
MPD_PATH=/vod/demo/manifest.mpd
SEG_PATH=/vod/demo/v0/1.m4s

taskset -c 0 "$CDN" origin --root "$WORK/content" --listen 127.0.0.1:$P_ORIGIN >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_url "http://127.0.0.1:$P_ORIGIN/"

TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c 0 "$CDN" edge --listen 127.0.0.1:$P_EDGE \
    --upstream http://127.0.0.1:$P_ORIGIN --name edge-tls --cache-size 256MiB \
    --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" >"$WORK/edge.log" 2>&1 &
PIDS+=($!)
EDGE_PID=$!
wait_url "https://127.0.0.1:$P_EDGE/"

cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    proxy_cache_path $SHM levels=1:2 keys_zone=edge:64m max_size=256m inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.3;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            add_header Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
NGINX_PID=$!
wait_url "https://127.0.0.1:$P_NGINX/"
# The one nginx worker (the master only supervises).
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)
[ -n "$NGINX_WORKER" ] || { echo "no nginx worker process" >&2; exit 1; }
declare -A SPID=([edge]=$EDGE_PID [nginx]=$NGINX_WORKER)

declare -A PORT=([edge]=$P_EDGE [nginx]=$P_NGINX)
for srv in edge nginx; do
    for path in $MPD_PATH $SEG_PATH; do
        for _ in 1 2; do
            code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:${PORT[$srv]}$path")
            [ "$code" = 200 ] || { echo "$srv answered $code for $path" >&2; exit 1; }
        done
    done
done
tls=$(curl -skv -o /dev/null "https://127.0.0.1:$P_EDGE$MPD_PATH" 2>&1 | grep -o 'TLSv1.3[^,]*' | head -1)
echo "edge handshake: ${tls:-unknown}" >&2

# wrk output -> "rps p99_ms"; fails on any non-2xx answer or socket error.
run_wrk() {
    local url=$1; shift
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" | awk '
        /Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = $NF }
        /^ +99%/ { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
                   if (u == "us") v /= 1000; else if (u == "s") v *= 1000; p99 = v }
        END { if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
              printf "%.0f %.3f\n", rps, p99 }'
}

declare -A RPS P99 CPU
CASES=("mpd" "seg" "new")
for r in $(seq 1 "$ROUNDS"); do
    for c in "${CASES[@]}"; do
        for srv in edge nginx; do
            base="https://127.0.0.1:${PORT[$srv]}"
            t0=$(cpu_ticks "${SPID[$srv]}")
            case $c in
                mpd) read -r rps p99 < <(run_wrk "$base$MPD_PATH") ;;
                seg) read -r rps p99 < <(run_wrk "$base$SEG_PATH") ;;
                new) read -r rps p99 < <(run_wrk "$base$MPD_PATH" -H "Connection: close") ;;
            esac
            t1=$(cpu_ticks "${SPID[$srv]}")
            # Server CPU microseconds per request over the run.
            us=$(us_per_request "$t0" "$t1" "$rps" "$DURATION")
            RPS[$c-$srv]+="$rps "
            P99[$c-$srv]+="$p99 "
            CPU[$c-$srv]+="$us "
            echo "round $r $c $srv: $rps req/s, p99 $p99 ms, server CPU $us us/req" >&2
        done
    done
    for c in mpd seg; do
        for proto in h2 h3; do
            path=$MPD_PATH
            [ "$c" = seg ] && path=$SEG_PATH
            out=$(taskset -c 1 "$H3LOAD" "$proto" 127.0.0.1:$P_EDGE video.example.test "$path" \
                "$WORK/cert.pem" "$H3CONNS" "$H3STREAMS" "$DURATION")
            rps=$(echo "$out" | awk '{print $2}')
            p99=$(echo "$out" | awk '{print $5}')
            errs=$(echo "$out" | awk '{print $NF}')
            [ "$errs" = 0 ] || { echo "$proto $c: $errs errors" >&2; exit 1; }
            RPS[$c-edge-$proto]+="$rps "
            P99[$c-edge-$proto]+="$p99 "
            echo "round $r $c edge $proto: $rps req/s, p99 $p99 ms" >&2
        done
    done
done

echo
echo "## HTTPS (TLS 1.3, ECDSA P-256; wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS interleaved rounds)"
echo
echo "| case | edge req/s | nginx req/s | ratio | edge p99 ms | nginx p99 ms | edge CPU us/req | nginx CPU us/req | per CPU |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${CASES[@]}"; do
    case $c in
        mpd) name="2 KiB hit, keep-alive" ;;
        seg) name="1 MiB hit, keep-alive" ;;
        new) name="new TLS connection per request (2 KiB)" ;;
    esac
    e=$(echo "${RPS[$c-edge]}" | median); n=$(echo "${RPS[$c-nginx]}" | median)
    ec=$(echo "${CPU[$c-edge]}" | median); nc=$(echo "${CPU[$c-nginx]}" | median)
    echo "| $name | $e | $n | $(awk -v a="$e" -v b="$n" 'BEGIN { printf "%.2f", a / b }') | $(echo "${P99[$c-edge]}" | median) | $(echo "${P99[$c-nginx]}" | median) | $ec | $nc | $(awk -v a="$nc" -v b="$ec" 'BEGIN { printf "%.2f", a / b }') |"
done
echo
echo "per CPU: requests per second of server CPU, ours over nginx's (nginx CPU us/req over ours)."
echo
echo "## Our edge: HTTP/2 and HTTP/3 ($H3CONNS connections x $H3STREAMS streams, edge/examples/h3load.rs)"
echo
echo "| object | h2 req/s | h3 req/s | h3/h2 | h2 p99 ms | h3 p99 ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for c in mpd seg; do
    a=$(echo "${RPS[$c-edge-h2]}" | median); b=$(echo "${RPS[$c-edge-h3]}" | median)
    name="2 KiB"; [ "$c" = seg ] && name="1 MiB"
    echo "| $name | $a | $b | $(awk -v a="$b" -v b="$a" 'BEGIN { printf "%.2f", a / b }') | $(echo "${P99[$c-edge-h2]}" | median) | $(echo "${P99[$c-edge-h3]}" | median) |"
done
