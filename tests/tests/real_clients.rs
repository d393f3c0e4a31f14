//! Third-party clients against the whole stack, over real sockets: ffprobe and ffmpeg read the
//! MPDs through an edge; dash.js, hls.js and Shaka Player play DASH and HLS, VOD and live, with
//! sound in headless Chromium from a page on another origin (so CORS is exercised), and dash.js
//! and hls.js in their low-latency modes hold the low-latency channel's latency; GStreamer's
//! playbin plays the HLS title to its end; and a real Prometheus server scrapes every service.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdn_tests::{fetch, metric_sum, run_tool, scrape, TestStack, TITLE_SECONDS};

#[tokio::test(flavor = "multi_thread")]
async fn ffprobe_and_ffmpeg_read_vod_and_live_through_an_edge() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[1].1;
    let vod = format!("http://{edge}/vod/demo/manifest.mpd");
    let live = format!("http://{edge}/live/demo/manifest.mpd");

    let streams = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
                &vod,
            ],
        )
    });
    let mut sizes: Vec<&str> = streams
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The DASH demuxer lists each stream under its program too.
    sizes.sort();
    sizes.dedup();
    assert_eq!(
        sizes,
        vec!["320,180", "426,240", "640,360"],
        "ffprobe saw: {streams}"
    );

    // ffmpeg decodes the top rendition through the edge: no error, every frame.
    let frames = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:2",
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
                &vod,
            ],
        )
    });
    let want = (TITLE_SECONDS * 30.0) as u64;
    let counts: Vec<Option<u64>> = frames
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().ok())
        .collect();
    assert!(
        !counts.is_empty() && counts.iter().all(|c| *c == Some(want)),
        "frames decoded: {frames} (want {want})"
    );

    let live_streams = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
                &live,
            ],
        )
    });
    assert!(
        live_streams.lines().filter(|l| l.trim() == "h264").count() >= 3,
        "ffprobe found no H.264 streams in the live MPD: {live_streams}"
    );

    let text = scrape(edge).await.unwrap();
    assert!(metric_sum(&text, "edge_requests_total", &[]) > 0.0);
    t.stack.shutdown().await;
}

/// One playback of tests/js/play.mjs: a player (`dashjs`, `hlsjs` or `shaka`), the stream's URL,
/// the most seconds it may play, an optional throttle (kb/s for the first seconds), whether
/// a stream that ends is played once more from the start, and whether the player runs in its
/// low-latency mode.
struct Session {
    player: &'static str,
    url: String,
    seconds: u32,
    throttle: Option<(u32, u32)>,
    replay: bool,
    low_latency: bool,
}

impl Session {
    fn new(player: &'static str, url: String, seconds: u32) -> Session {
        Session {
            player,
            url,
            seconds,
            throttle: None,
            replay: false,
            low_latency: false,
        }
    }

    /// A live session with the player in its low-latency mode.
    fn low_latency(player: &'static str, url: String, seconds: u32) -> Session {
        Session {
            low_latency: true,
            ..Session::new(player, url, seconds)
        }
    }

    /// A VOD session that plays the title twice (a seek back to the start after its end), so
    /// that the 12 s test title plays more than 15 s.
    fn twice(player: &'static str, url: String) -> Session {
        Session {
            replay: true,
            ..Session::new(player, url, 60)
        }
    }
}

/// Runs `cmd` in its own process group and returns its output; fails the test, after killing the
/// whole group (a browser included), when it has not exited within `limit`.
fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let collect = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let Some(status) = status else {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
        let err = stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        panic!(
            "{what} did not finish within {limit:?}: {}",
            String::from_utf8_lossy(&err)
        );
    };
    let grace = Duration::from_secs(10);
    std::process::Output {
        status,
        stdout: stdout.recv_timeout(grace).unwrap_or_default(),
        stderr: stderr.recv_timeout(grace).unwrap_or_default(),
    }
}

/// Runs tests/js/play.mjs with these sessions at once (one headless Chromium, a page each, served
/// from another origin than the streams) and returns one JSON report per session, in order.
fn play_in_chromium(sessions: &[Session]) -> Vec<serde_json::Value> {
    play_in_chromium_with(sessions, &[])
}

/// [`play_in_chromium`] with `env` set for play.mjs (e.g. QUIC_ORIGINS and TRUST_CERT).
fn play_in_chromium_with(sessions: &[Session], env: &[(&str, String)]) -> Vec<serde_json::Value> {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    for module in ["dashjs", "hls.js", "shaka-player", "playwright-core"] {
        assert!(
            js.join("node_modules").join(module).is_dir(),
            "tests/js/node_modules/{module} is missing: run `npm ci` in tests/js (scripts/test.sh does)"
        );
    }
    common::tools::require("chromium");
    let node = common::tools::require("node");
    let mut cmd = Command::new(node);
    cmd.current_dir(&js).arg("play.mjs");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (i, s) in sessions.iter().enumerate() {
        if i > 0 {
            cmd.arg("--");
        }
        assert!(
            !(s.replay && s.low_latency),
            "a session replays VOD or plays live"
        );
        cmd.args([s.player, &s.url, &s.seconds.to_string()]);
        if s.throttle.is_some() || s.replay || s.low_latency {
            let (kbps, secs) = s.throttle.unwrap_or((0, 0));
            cmd.args([kbps.to_string(), secs.to_string()]);
        }
        if s.replay {
            cmd.arg("replay");
        }
        if s.low_latency {
            cmd.arg("lowlatency");
        }
    }
    // The longest session, plus the browser's start and stop and the page loads.
    let longest = sessions.iter().map(|s| s.seconds).max().unwrap_or(0);
    let out = output_within(cmd, Duration::from_secs(u64::from(longest) + 90));
    assert!(
        out.status.success(),
        "play.mjs failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let reports: Vec<serde_json::Value> = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("play.mjs printed no JSON ({e}): {stdout}"));
    assert_eq!(reports.len(), sessions.len(), "{stdout}");
    reports
}

/// Recoverable player warnings that only say the local buffer ran low (expected while throttled or
/// on a busy machine); any other warning is a defect the player worked around.
const BUFFERING_WARNINGS: [&str; 2] = ["bufferStalledError", "bufferNudgeOnStall"];

/// What every session must show: no player error nor unexpected warning, video frames decoded,
/// and sound: an audio SourceBuffer that held media and audio bytes through the decoder.
fn assert_played_with_sound(r: &serde_json::Value) {
    let what = format!("{} {}", r["player"], r["url"]);
    assert_eq!(
        r["errors"].as_array().map(Vec::len),
        Some(0),
        "{what}: player errors: {r}"
    );
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| !BUFFERING_WARNINGS.iter().any(|b| w.contains(b)))
        .collect();
    assert!(
        warnings.is_empty(),
        "{what}: player warnings: {warnings:?}\n{r}"
    );
    assert!(
        r["decoded_frames"].as_u64().unwrap_or(0) > 0,
        "{what}: no video frame decoded: {r}"
    );
    let audio_buffers: Vec<&serde_json::Value> = r["source_buffers"]
        .as_array()
        .expect("source_buffers")
        .iter()
        .filter(|b| b["mime"].as_str().unwrap_or("").contains("mp4a.40.2"))
        .collect();
    assert!(
        audio_buffers
            .iter()
            .any(|b| b["max_seconds"].as_f64().unwrap_or(0.0) > 1.0),
        "{what}: no AAC SourceBuffer held audio: {r}"
    );
    assert!(
        r["audio_decoded_bytes"].as_u64().unwrap_or(0) > 0,
        "{what}: no audio decoded: {r}"
    );
}

/// A VOD session: the whole title played with sound, to its end.
fn assert_played_vod_to_the_end(r: &serde_json::Value) {
    assert_played_with_sound(r);
    let what = format!("{} {}", r["player"], r["url"]);
    assert_eq!(
        r["ended"], true,
        "{what}: playback did not reach the end: {r}"
    );
    let at = r["current_time"].as_f64().unwrap_or(0.0);
    assert!(
        at >= TITLE_SECONDS - 0.5,
        "{what}: ended at {at} s of a {TITLE_SECONDS} s title: {r}"
    );
    let played = r["played"].as_f64().unwrap_or(0.0);
    assert!(
        played >= TITLE_SECONDS - 1.0,
        "{what}: played {played} s of a {TITLE_SECONDS} s title: {r}"
    );
}

/// A VOD session played twice ([`Session::twice`]): it reached the title's end both times,
/// and the playhead advanced at least 15 s in all, with sound.
fn assert_played_vod_twice(r: &serde_json::Value) {
    assert_played_with_sound(r);
    let what = format!("{} {}", r["player"], r["url"]);
    assert_eq!(r["ends"], 2, "{what}: the title did not end twice: {r}");
    let at = r["end_time"].as_f64().unwrap_or(0.0);
    assert!(
        at >= TITLE_SECONDS - 0.5,
        "{what}: ended first at {at} s of a {TITLE_SECONDS} s title: {r}"
    );
    let played = r["played"].as_f64().unwrap_or(0.0);
    assert!(
        played >= (2.0 * TITLE_SECONDS - 2.0).max(15.0),
        "{what}: played {played} s of twice a {TITLE_SECONDS} s title: {r}"
    );
}

/// Seconds of a live session, and the least of them the playhead must advance by.
const LIVE_SECONDS: u32 = 25;
const LIVE_MIN_PLAYED: f64 = 15.0;

/// A live session: the playhead followed the wall clock with sound and never stopped.
fn assert_played_live(r: &serde_json::Value) {
    assert_played_with_sound(r);
    let what = format!("{} {}", r["player"], r["url"]);
    let played = r["played"].as_f64().unwrap_or(0.0);
    assert!(
        played >= LIVE_MIN_PLAYED,
        "{what}: live playback advanced {played} s in {LIVE_SECONDS} s: {r}"
    );
    assert_eq!(r["ended"], false, "{what}: a live stream ended: {r}");
    assert_eq!(r["paused"], false, "{what}: live playback paused: {r}");
}

/// Seconds of a low-latency session, and the first of them (start-up and catch-up) whose latency
/// is not judged.
const LL_SECONDS: u32 = 30;
const LL_SETTLE: f64 = 10.0;
/// The latency target the stack's low-latency channel signals (ServiceDescription, and
/// PART-HOLD-BACK), seconds.
const LL_TARGET: f64 = 1.5;

/// p50, p95 and max of `values` (nearest rank), `None` when empty.
fn percentiles(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (!v.is_empty()).then(|| (rank(0.5), rank(0.95), v[v.len() - 1]))
}

/// A low-latency live session: [`assert_played_live`], the player's latency target is `target`
/// seconds (the channel's signalled target), and after the first [`LL_SETTLE`] seconds the
/// player's own latency was sampled throughout and never above `max_latency` seconds. Prints the
/// latency figures, the stalls and the requests per second by kind, and returns them as JSON.
fn assert_low_latency(r: &serde_json::Value, target: f64, max_latency: f64) -> serde_json::Value {
    assert_played_live(r);
    let what = format!("{} {}", r["player"], r["url"]);
    let samples: Vec<&Vec<serde_json::Value>> = r["latency"]
        .as_array()
        .expect("latency samples in the report")
        .iter()
        .filter_map(|s| s.as_array())
        .filter(|s| s[0].as_f64().is_some_and(|t| t >= LL_SETTLE))
        .collect();
    let column = |i: usize| -> Vec<Option<f64>> { samples.iter().map(|s| s[i].as_f64()).collect() };
    let latency = column(1);
    let wall: Vec<f64> = column(2).into_iter().flatten().collect();
    let rates: Vec<f64> = column(3).into_iter().flatten().collect();
    // Sampled every 250 ms: most of the samples of the judged seconds are there.
    let expected = (f64::from(LL_SECONDS) - LL_SETTLE) * 4.0;
    assert!(
        latency.len() as f64 >= 0.75 * expected,
        "{what}: {} latency samples after {LL_SETTLE} s, want about {expected}: {r}",
        latency.len()
    );
    assert!(
        latency.iter().all(Option::is_some),
        "{what}: the player gave no latency for some samples after {LL_SETTLE} s: {:?}",
        r["latency"]
    );
    let latency: Vec<f64> = latency.into_iter().flatten().collect();
    let (p50, p95, max) = percentiles(&latency).expect("latency samples");
    let wall_stats = percentiles(&wall);
    let stalls = r["stalls"].as_array().expect("stalls in the report");
    let stalled = stalls
        .iter()
        .filter_map(|s| s[1].as_f64())
        .fold(0.0, |a, b| a + b);
    let requests: serde_json::Map<String, serde_json::Value> = r["requests"]
        .as_object()
        .expect("requests in the report")
        .iter()
        .map(|(kind, k)| (kind.clone(), k["after_10s_per_second"].clone()))
        .collect();
    let summary = serde_json::json!({
        "player": r["player"],
        "url": r["url"],
        "target_latency_s": r["target_latency"],
        "latency_after_10s_s": { "p50": p50, "p95": p95, "max": max, "samples": latency.len() },
        "wall_clock_latency_after_10s_s": wall_stats.map(|(p50, p95, max)| {
            serde_json::json!({ "p50": p50, "p95": p95, "max": max })
        }),
        "playback_rate_min_max": [
            rates.iter().copied().reduce(f64::min),
            rates.iter().copied().reduce(f64::max),
        ],
        "stalls": stalls.len(),
        "stalled_s": stalled,
        "bandwidths": r["bandwidths"],
        "requests_per_second_after_10s": requests,
        "requests": r["requests"],
        "failed_requests": r["failed_requests"],
    });
    eprintln!("low-latency playback: {summary}");
    // Cancelled fetches are the player's choice; an HTTP error means it asked for what the
    // channel does not have (e.g. a segment before the MPD says it is available).
    let http_errors: Vec<&str> = r["failed_requests"]
        .as_array()
        .expect("failed_requests in the report")
        .iter()
        .filter_map(|f| f.as_str())
        .filter(|f| f.contains(": HTTP "))
        .collect();
    assert!(
        http_errors.is_empty(),
        "{what}: requests answered with an HTTP error: {http_errors:?}"
    );
    let got_target = r["target_latency"].as_f64();
    assert!(
        got_target.is_some_and(|t| (t - target).abs() < 0.01),
        "{what}: the player's latency target is {got_target:?} s, the channel signals {target} s: {summary}"
    );
    assert!(
        max <= max_latency,
        "{what}: live latency above {max_latency} s after the first {LL_SETTLE} s: {summary}\n{:?}",
        r["latency"]
    );
    summary
}

/// The test title's HLS playlists are in the content root the stack serves.
fn assert_title_has_hls(t: &TestStack) {
    let master = t.content.path().join("vod/demo/master.m3u8");
    assert!(
        master.is_file(),
        "{} is missing: the packaged test title has no HLS playlists (a stale copy under \
         target/test-content/?)",
        master.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dashjs_plays_vod_and_live_with_sound_through_an_edge_cross_origin() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[0].1;

    // VOD, throttled to 350 kb/s for 8 s and then released: dash.js must use two qualities.
    let vod = Session {
        throttle: Some((350, 8)),
        ..Session::twice("dashjs", format!("http://{edge}/vod/demo/manifest.mpd"))
    };
    // Live: the playhead follows the wall clock.
    let live = Session::new(
        "dashjs",
        format!("http://{edge}/live/demo/manifest.mpd"),
        LIVE_SECONDS,
    );
    let reports = tokio::task::block_in_place(|| play_in_chromium(&[vod, live]));

    assert_played_vod_twice(&reports[0]);
    let qualities = reports[0]["bandwidths"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(
        qualities >= 2,
        "dash.js used fewer than two qualities under throttling: {}",
        reports[0]
    );
    assert_played_live(&reports[1]);

    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hlsjs_plays_hls_vod_and_live_with_sound_through_an_edge_cross_origin() {
    let t = TestStack::start().await.expect("stack starts");
    assert_title_has_hls(&t);
    let edge = t.stack.edge_addrs()[1].1;
    let sessions = [
        Session::twice("hlsjs", format!("http://{edge}/vod/demo/master.m3u8")),
        Session::new(
            "hlsjs",
            format!("http://{edge}/live/demo/master.m3u8"),
            LIVE_SECONDS,
        ),
    ];
    let reports = tokio::task::block_in_place(|| play_in_chromium(&sessions));
    assert_played_vod_twice(&reports[0]);
    assert_played_live(&reports[1]);
    t.stack.shutdown().await;
}

/// dash.js in its low-latency mode (live catch-up, the throughput rule with the chunk-burst
/// estimate) on the LL-DASH channel through an edge: its latency target comes from the MPD's
/// ServiceDescription, and it stays within 2.5 s of the live edge with sound.
#[tokio::test(flavor = "multi_thread")]
async fn dashjs_plays_low_latency_dash_within_2_5_s_through_an_edge() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[0].1;
    let channel = t.stack.config.low_latency_channel();
    let session = Session::low_latency(
        "dashjs",
        format!("http://{edge}/live/{channel}/manifest.mpd"),
        LL_SECONDS,
    );
    let reports = tokio::task::block_in_place(|| play_in_chromium(&[session]));
    assert_low_latency(&reports[0], LL_TARGET, 2.5);
    t.stack.shutdown().await;
}

/// hls.js with `lowLatencyMode` on the LL-HLS channel through an edge: parts, preload hints and
/// blocking playlist reloads keep it within 3 s of the live edge with sound, its target being
/// the playlist's PART-HOLD-BACK.
#[tokio::test(flavor = "multi_thread")]
async fn hlsjs_plays_low_latency_hls_within_3_s_through_an_edge() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[1].1;
    let channel = t.stack.config.low_latency_channel();
    let session = Session::low_latency(
        "hlsjs",
        format!("http://{edge}/live/{channel}/master.m3u8"),
        LL_SECONDS,
    );
    let reports = tokio::task::block_in_place(|| play_in_chromium(&[session]));
    let summary = assert_low_latency(&reports[0], LL_TARGET, 3.0);
    let parts = summary["requests_per_second_after_10s"]["part"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        parts > 0.0,
        "hls.js fetched no LL-HLS parts after the first {LL_SETTLE} s: {summary}"
    );
    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shaka_plays_hls_and_dash_vod_and_live_with_sound_through_an_edge_cross_origin() {
    let t = TestStack::start().await.expect("stack starts");
    assert_title_has_hls(&t);
    let edge = t.stack.edge_addrs()[2].1;
    let sessions = [
        Session::twice("shaka", format!("http://{edge}/vod/demo/master.m3u8")),
        Session::twice("shaka", format!("http://{edge}/vod/demo/manifest.mpd")),
        Session::new(
            "shaka",
            format!("http://{edge}/live/demo/master.m3u8"),
            LIVE_SECONDS,
        ),
        Session::new(
            "shaka",
            format!("http://{edge}/live/demo/manifest.mpd"),
            LIVE_SECONDS,
        ),
    ];
    let reports = tokio::task::block_in_place(|| play_in_chromium(&sessions));
    assert_played_vod_twice(&reports[0]);
    assert_played_vod_twice(&reports[1]);
    assert_played_live(&reports[2]);
    assert_played_live(&reports[3]);
    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gstreamer_plays_hls_vod_with_sound_to_the_end_through_an_edge() {
    let t = TestStack::start().await.expect("stack starts");
    assert_title_has_hls(&t);
    let edge = t.stack.edge_addrs()[0].1;
    let uri = format!("http://{edge}/vod/demo/master.m3u8");
    let gst = common::tools::find("gst-launch-1.0").unwrap_or_else(|| {
        panic!(
            "gst-launch-1.0 is not on PATH: install the Debian packages gstreamer1.0-tools, \
             gstreamer1.0-plugins-base, -good, -bad and gstreamer1.0-libav \
             (scripts/apt-packages.txt; scripts/test.sh installs them)"
        )
    });
    // Decoded frames, scaled down to 32x18 I420 (864 bytes each), and decoded sound as 48 kHz
    // stereo S16 (192,000 bytes a second) go to files as fast as they come (file sinks don't sync
    // to the clock), so their sizes count what playbin decoded.
    let out_dir = tempfile::tempdir().unwrap();
    let video_file = out_dir.path().join("video.i420");
    let audio_file = out_dir.path().join("audio.s16");
    let mut cmd = Command::new(gst);
    cmd.args([
        "playbin".to_string(),
        format!("uri={uri}"),
        format!(
            "video-sink=videoscale ! video/x-raw,format=I420,width=32,height=18 ! filesink location={}",
            video_file.display()
        ),
        format!(
            "audio-sink=audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=2,rate=48000 \
             ! filesink location={}",
            audio_file.display()
        ),
    ]);
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| output_within(cmd, Duration::from_secs(120)));
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "gst-launch-1.0 failed ({}): {stderr}\n{stdout}",
        out.status
    );
    assert!(
        !stdout.contains("ERROR") && !stderr.contains("ERROR"),
        "GStreamer reported an error: {stderr}\n{stdout}"
    );
    assert!(
        stdout.contains("Got EOS from element \"playbin"),
        "playbin never reached the end of the stream: {stderr}\n{stdout}"
    );

    // Every frame of the title, and its sound from start to end.
    let video_bytes = std::fs::metadata(&video_file).map(|m| m.len()).unwrap_or(0);
    let want = (TITLE_SECONDS * 30.0) as u64;
    assert_eq!(
        (video_bytes / 864, video_bytes % 864),
        (want, 0),
        "video frames decoded by playbin (want {want}): {stdout}"
    );
    let audio_bytes = std::fs::metadata(&audio_file).map(|m| m.len()).unwrap_or(0);
    let audio_seconds = audio_bytes as f64 / 192_000.0;
    assert!(
        (TITLE_SECONDS - 0.05..=TITLE_SECONDS + 0.1).contains(&audio_seconds),
        "playbin decoded {audio_seconds} s of sound from a {TITLE_SECONDS} s title: {stdout}"
    );
    eprintln!(
        "playbin: {want} frames and {audio_seconds:.3} s of sound in {:.1} s",
        took.as_secs_f64()
    );

    t.stack.shutdown().await;
}

/// Queries Prometheus' HTTP API and returns the first sample's value per `name` label.
async fn prom_query(prom: &str, query: &str) -> Vec<(String, f64)> {
    let url = format!("http://{prom}/api/v1/query?query={}", urlencode(query));
    let Ok(body) = common::http::get(&url).await else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let name = r["metric"]["name"].as_str().unwrap_or("").to_string();
                    let value = r["value"][1].as_str()?.parse().ok()?;
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_every_service_and_sees_counters_move() {
    let t = TestStack::start().await.expect("stack starts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, t.stack.prometheus_config(1)).unwrap();
    let port = cdn::stack::free_port_on(&[t.edge_ip(1)]).unwrap();
    let listen = format!("{}:{port}", t.edge_ip(1));
    let bin = common::tools::require("prometheus");
    let mut prom = tokio::process::Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={listen}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting prometheus");

    // Every target up: origin, three edges, the router.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut up = Vec::new();
    while Instant::now() < deadline {
        up = prom_query(&listen, "up").await;
        if up.len() == 5 && up.iter().all(|(_, v)| *v == 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(up.len(), 5, "targets seen by Prometheus: {up:?}");
    assert!(
        up.iter().all(|(_, v)| *v == 1.0),
        "a target is down: {up:?}"
    );

    let edge_requests = |name: &'static str| {
        let listen = listen.clone();
        async move {
            prom_query(&listen, "sum by (name) (edge_requests_total)")
                .await
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .unwrap_or(0.0)
        }
    };
    let before = edge_requests("region2").await;
    let edge = t.stack.edge_addrs()[1].1;
    for path in [
        "/vod/demo/manifest.mpd",
        "/vod/demo/manifest.mpd",
        "/vod/demo/180p/init.mp4",
    ] {
        let r = fetch(edge, "video.example.test", path, &[]).await.unwrap();
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = before;
    while Instant::now() < deadline && after < before + 3.0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = edge_requests("region2").await;
    }
    assert!(
        after >= before + 3.0,
        "edge_requests_total did not move in Prometheus: {before} -> {after}"
    );
    // The origin is scraped on its own schedule: wait for a scrape after the edge's misses.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut origin_requests = Vec::new();
    while Instant::now() < deadline {
        origin_requests = prom_query(&listen, "sum(origin_http_requests_total)").await;
        if origin_requests.first().is_some_and(|(_, v)| *v >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        origin_requests.first().is_some_and(|(_, v)| *v >= 1.0),
        "origin_http_requests_total never reached 1 in Prometheus: {origin_requests:?}"
    );

    // Every query of the shipped Grafana dashboard is valid PromQL over the stack's metrics.
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 8, "dashboard has too few queries");
    for expr in &exprs {
        let url = format!("http://{listen}/api/v1/query?query={}", urlencode(expr));
        let body = common::http::get(&url)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e:#}"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["status"], "success",
            "dashboard query failed: {expr}: {v}"
        );
        let metric = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| w.starts_with("edge_") || w.starts_with("origin_") || w.starts_with("dns_"))
            .unwrap_or("");
        let series = prom_query(&listen, &format!("count({{__name__=~\"{metric}.*\"}})")).await;
        assert!(
            !series.is_empty(),
            "dashboard metric {metric} is not exported by any service"
        );
    }

    let _ = prom.kill().await;
    t.stack.shutdown().await;
}

/// An edge protecting `/vod/` with signed URLs in front of an origin serving the test title.
async fn signed_edge() -> (
    origin::Origin,
    edge::Edge,
    tempfile::TempDir,
    tempfile::TempDir,
    Vec<u8>,
) {
    let content = cdn_tests::content_root().unwrap();
    let origin = origin::spawn(origin::Config {
        root: content.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..origin::Config::default()
    })
    .await
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let secret = b"signed-url-test-secret-0123456789".to_vec();
    std::fs::write(keys.path().join("k1"), &secret).unwrap();
    let edge = edge::spawn(edge::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: origin.url(),
        name: "signed".into(),
        signed_urls: Some(edge::signed::SignedUrlsConfig {
            prefixes: vec!["/vod/".into()],
            keys: vec![edge::signed::KeyConfig {
                id: "k1".into(),
                file: keys.path().join("k1"),
            }],
        }),
        ..edge::Config::default()
    })
    .await
    .unwrap();
    (origin, edge, content, keys, secret)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_urls_play_in_ffprobe_dashjs_and_cdn_play_and_nothing_plays_without() {
    let (origin, edge, _content, _keys, secret) = signed_edge().await;
    let plain = format!("http://{}/vod/demo/manifest.mpd", edge.local_addr());
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let signed = edge::signed::sign_url(&plain, "k1", &secret, expires).unwrap();

    // Without a token: refused, and ffprobe cannot open it.
    let got = fetch(
        edge.local_addr(),
        "edge.test",
        "/vod/demo/manifest.mpd",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(got.status, 403);
    let out = Command::new(common::tools::require("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width",
            "-of",
            "csv=p=0",
            &plain,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "ffprobe opened an unsigned URL");

    // With it: ffprobe sees every rung, whose segment URLs are relative to the signed one.
    let streams = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=width",
                "-of",
                "csv=p=0",
                &signed,
            ],
        )
    });
    assert!(streams.lines().count() >= 2, "ffprobe saw: {streams}");

    // cdn play plays the whole title, every segment through the token.
    let cfg = player::play::PlayConfig::new(signed.parse().unwrap());
    let report = tokio::time::timeout(Duration::from_secs(90), player::play::play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    let mpd_text = String::from_utf8(
        fetch(
            edge.local_addr(),
            "edge.test",
            signed.split_once(&edge.local_addr().to_string()).unwrap().1,
            &[],
        )
        .await
        .unwrap()
        .body
        .to_vec(),
    )
    .unwrap();
    let url: mpd::Url = signed.parse().unwrap();
    let listed = mpd::Mpd::parse(&mpd_text)
        .unwrap()
        .segments(0, 0, 0, &url, mpd::SegmentsAt::Vod)
        .unwrap()
        .media
        .len();
    assert_eq!(s.segments.len(), listed, "{}", report.table());

    // dash.js in Chromium, cross-origin, with sound.
    let session = Session::new("dashjs", signed.clone(), 40);
    let reports = tokio::task::block_in_place(|| play_in_chromium(&[session]));
    assert_played_vod_to_the_end(&reports[0]);

    edge.shutdown().await;
    origin.shutdown().await;
}

/// HTTP/3 from a browser: Chromium, told to speak QUIC to an edge of a stack with TLS, plays the
/// title with dash.js over HTTP/3 (Resource Timing says `h3` for every fetch from the edge), and
/// the edge counts those requests as h3; `cdn play --http3` plays it too.
#[tokio::test(flavor = "multi_thread")]
async fn dashjs_in_chromium_and_the_player_play_over_http3_through_an_edge() {
    let t = TestStack::start_with(|c| c.tls = true)
        .await
        .expect("TLS stack starts");
    let root = t.stack.config.tls_root().expect("a TLS stack has a root");
    let edge = t.stack.edge_addrs()[1].1;
    let url = format!("https://{edge}/vod/demo/manifest.mpd");
    let env = [
        ("QUIC_ORIGINS", edge.to_string()),
        ("TRUST_CERT", root.display().to_string()),
    ];
    let reports = tokio::task::block_in_place(|| {
        play_in_chromium_with(&[Session::new("dashjs", url.clone(), 20)], &env)
    });
    let r = &reports[0];
    // The whole title played with sound; whether the element then reports `ended` is the
    // end-of-stream behaviour the VOD tests above check, not the transport's.
    assert_played_with_sound(r);
    let played = r["played"].as_f64().unwrap_or(0.0);
    assert!(
        played >= TITLE_SECONDS - 1.0,
        "played {played} s of a {TITLE_SECONDS} s title over HTTP/3: {r}"
    );
    let protocols = r["protocols"].as_object().expect("protocols in the report");
    let h3 = protocols.get("h3").and_then(|n| n.as_u64()).unwrap_or(0);
    assert!(
        h3 >= 8 && protocols.keys().all(|p| p == "h3"),
        "fetches by protocol: {protocols:?}"
    );

    // The edge saw them as HTTP/3, and `cdn play --http3` plays through it too.
    let fetcher = common::http::Fetcher::new(&common::tls::Roots {
        ca_files: vec![root.clone()],
        system: false,
    })
    .unwrap();
    let h3_count = |text: &str| {
        metric_sum(
            text,
            "edge_requests_by_protocol_total",
            &[("protocol", "h3")],
        )
    };
    let metrics_url = format!("https://{edge}/metrics");
    let before = h3_count(&String::from_utf8_lossy(
        &fetcher.get(&metrics_url).await.unwrap(),
    ));
    assert!(before >= h3 as f64, "the edge counted {before} h3 requests");
    let mut cfg = player::play::PlayConfig::new(url.parse().unwrap());
    cfg.resolve = Some(vec![edge.ip()]);
    cfg.ca = vec![root.clone()];
    cfg.system_roots = false;
    cfg.http3 = true;
    cfg.session.play_out = false;
    let report = tokio::time::timeout(Duration::from_secs(60), player::play::play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback over HTTP/3 works");
    assert_eq!(
        report.session.summary.missing_segments,
        0,
        "{}",
        report.table()
    );
    let after = h3_count(&String::from_utf8_lossy(
        &fetcher.get(&metrics_url).await.unwrap(),
    ));
    assert!(
        after - before >= report.session.segments.len() as f64,
        "{after} - {before} h3 requests for {} segments",
        report.session.segments.len()
    );
    t.stack.shutdown().await;
}
