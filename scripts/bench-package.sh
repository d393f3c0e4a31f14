#!/usr/bin/env bash
# Packaging benchmark: `cdn package` (default ladder and AAC audio rung, 30 s of test pattern with
# its sound, DASH manifest and HLS playlists) against the real peer, ffmpeg's libx264 + AAC encoder
# + DASH muxer (with its HLS playlists) producing the same ladder and audio from its own test
# sources, in the same run.
# Usage: scripts/bench-package.sh [RUNS] [SECONDS]    (needs a release build and ffmpeg on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-30}
out=$(mktemp -d /tmp/bench-package.XXXXXX)
trap 'rm -rf "$out"' EXIT
cargo build --release --quiet || {
  [ -x target/release/cdn ] || exit 1
  echo "warning: the release build failed; timing the existing target/release/cdn" >&2
}
command -v ffmpeg >/dev/null || { echo "ffmpeg is not on PATH (Debian package ffmpeg)" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

echo "nproc=$(nproc) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wall seconds (cpu seconds = user+sys); ratio = ffmpeg wall / cdn wall"
echo "run  cdn_wall  cdn_cpu  ffmpeg_wall  ffmpeg_cpu  ratio"
for run in $(seq 1 "$runs"); do
  rm -rf "$out/cdn" "$out/ff"
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$out/cdn.time" \
    ./target/release/cdn package --out "$out/cdn/vod/demo" --duration "$secs" --quiet >/dev/null
  t1=$(now)
  mkdir -p "$out/ff"
  /usr/bin/time -f "%U %S" -o "$out/ff.time" ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=220:sample_rate=48000" -t "$secs" \
    -filter_complex "[0:v]split=4[a][b][c][d];[a]scale=426:240[a1];[b]scale=640:360[b1];[c]scale=854:480[c1];[d]null[d1]" \
    -map "[a1]" -map "[b1]" -map "[c1]" -map "[d1]" -map 1:a \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p \
    -b:v:0 400k -b:v:1 800k -b:v:2 1400k -b:v:3 2800k \
    -g 60 -keyint_min 60 -sc_threshold 0 \
    -c:a aac -b:a 128k -ac 2 -ar 48000 \
    -f dash -seg_duration 2 -use_template 1 -use_timeline 0 -hls_playlist 1 \
    -adaptation_sets "id=0,streams=v id=1,streams=a" "$out/ff/manifest.mpd"
  t2=$(now)
  for m in "$out/cdn/vod/demo/manifest.mpd" "$out/cdn/vod/demo/master.m3u8" "$out/ff/manifest.mpd" "$out/ff/master.m3u8"; do
    [ -s "$m" ] || { echo "missing output: $m" >&2; exit 1; }
  done
  for m in "$out/ff/manifest.mpd" "$out/cdn/vod/demo/manifest.mpd"; do
    grep -q 'audio/mp4' "$m" || { echo "no audio in $m" >&2; exit 1; }
  done
  a=$(elapsed "$t0" "$t1"); b=$(elapsed "$t1" "$t2")
  ca=$(awk '{print $1 + $2}' "$out/cdn.time"); cb=$(awk '{print $1 + $2}' "$out/ff.time")
  printf "%3d  %8.2f  %7.2f  %11.2f  %10.2f  %5.2f\n" "$run" "$a" "$ca" "$b" "$cb" "$(echo "$b / $a" | bc -l)"
done
