//! Real clients read what the origin serves: ffprobe and ffmpeg (Debian ffmpeg) open the VOD
//! MPD and decode every frame, and ffmpeg plays the live channel in real time (`-re`) for
//! longer than three minimumUpdatePeriods, across a loop of the title, with continuous
//! timestamps. The title is packaged by the packager (a 6 s test pattern, two renditions).
//! Through an edge of a whole stack: ffprobe sees the video rungs and the audio from the MPD and
//! from the HLS playlists, ffmpeg decodes them all without an error, and the beeps and marker
//! frames of the decoded output agree in time for DASH and HLS, VOD and live.

#[path = "../../origin/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use packager::ladder::Ladder;
use packager::{package, Options};
use support::*;

const LADDER: &str = r#"
[[rendition]]
id = "180p"
width = 320
height = 180
bitrate_kbps = 250

[[rendition]]
id = "270p"
width = 480
height = 270
bitrate_kbps = 500
"#;

/// Packages the title once for the tests of this file; returns the content root.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("origin-ffmpeg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let opts = Options {
            duration: Some(6.0),
            fps: 30,
            segment: 2.0,
            ladder: Ladder::parse(LADDER, "test ladder").unwrap(),
            progress: false,
            ..Options::new(root.join("vod/demo"))
        };
        package(&opts).unwrap();
        root
    })
}

/// Runs a tool with a hard time limit (the child is killed when the limit passes).
async fn run(tool: &str, args: &[&str], limit: Duration) -> (bool, String, String) {
    let bin = common::tools::require(tool);
    let child = tokio::process::Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{tool} {args:?} did not finish within {limit:?}"))
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Media segments answered with 200 or 206 (ffmpeg may ask with `Range: bytes=0-`).
async fn served_segments(a: std::net::SocketAddr) -> f64 {
    let mut n = 0.0;
    for status in ["200", "206"] {
        n += metric(
            a,
            "origin_http_requests_total",
            &[("kind", "segment"), ("status", status)],
        )
        .await;
    }
    n
}

async fn server_errors(a: std::net::SocketAddr) -> f64 {
    let mut n = 0.0;
    for (name, labels, v) in metrics(a).await {
        if name == "origin_http_requests_total"
            && labels.get("status").is_some_and(|s| s.starts_with('5'))
        {
            n += v;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_and_ffmpeg_read_the_vod_title() {
    let root = tokio::task::spawn_blocking(|| root().clone())
        .await
        .unwrap();
    let o = origin::spawn(config(&root)).await.unwrap();
    let url = format!("{}/vod/demo/manifest.mpd", o.url());

    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            &url,
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "ffprobe failed: {err}");
    let mut streams: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    streams.sort();
    // Streams are listed once per program and once more at top level.
    streams.dedup();
    let video: Vec<&str> = streams
        .iter()
        .copied()
        .filter(|s| s.starts_with("h264"))
        .collect();
    assert_eq!(video, ["h264,320,180", "h264,480,270"], "{out}");
    assert!(
        streams.iter().any(|s| s.starts_with("aac")),
        "no audio stream: {out}"
    );

    // Decode every frame of the first representation.
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            &url,
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(ok, "ffprobe -count_frames failed: {err}");
    let counts: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !counts.is_empty() && counts.iter().all(|c| c.trim() == "180"),
        "6 s at 30 fps: {out}"
    );

    let out_file = std::env::temp_dir().join(format!("origin-vod-{}.mp4", std::process::id()));
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &url,
            "-map",
            "0:v:1",
            "-c",
            "copy",
            "-y",
            out_file.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(ok, "ffmpeg failed: {err}");
    let size = std::fs::metadata(&out_file).unwrap().len();
    assert!(size > 100_000, "copied VOD output is only {size} bytes");
    let _ = std::fs::remove_file(&out_file);

    let segs = served_segments(o.local_addr()).await;
    assert!(segs >= 6.0, "ffmpeg fetched {segs} media segments");
    assert_eq!(server_errors(o.local_addr()).await, 0.0);
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_the_live_channel_past_three_mpd_updates() {
    let root = tokio::task::spawn_blocking(|| root().clone())
        .await
        .unwrap();
    let mut cfg = config(&root);
    cfg.channels.insert(
        "news".into(),
        origin::config::ChannelConfig::Title("demo".into()),
    );
    cfg.live.minimum_update_period_secs = 2.0;
    cfg.live.suggested_presentation_delay_secs = 6.0;
    cfg.live.time_shift_buffer_depth_secs = 30.0;
    let o = origin::spawn(cfg).await.unwrap();
    let a = o.local_addr();
    let url = format!("{}/live/news/manifest.mpd", o.url());

    let out_file = std::env::temp_dir().join(format!("origin-live-{}.mp4", std::process::id()));
    let started = Instant::now();
    // -re reads at the native rate, as a player does: ffmpeg's DASH demuxer does not wait for
    // segments itself, so without it it would run ahead of the live edge.
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-re",
            "-i",
            &url,
            "-map",
            "0:v:0",
            "-t",
            "9",
            "-c",
            "copy",
            "-y",
            out_file.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .await;
    let wall = started.elapsed();
    assert!(ok, "ffmpeg failed on the live MPD: {err}");
    assert!(
        wall >= Duration::from_secs(6),
        "played only {wall:?}, less than 3 x minimumUpdatePeriod"
    );

    // 9 s of 30 fps video with continuous timestamps, though the 6 s title looped.
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            out_file.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{err}");
    let pts: Vec<f64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(pts.len() >= 260, "only {} frames", pts.len());
    let mut sorted = pts.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for w in sorted.windows(2) {
        assert!(w[1] - w[0] < 0.05, "timestamp gap {} -> {}", w[0], w[1]);
    }
    let _ = std::fs::remove_file(&out_file);

    let live_segments = served_segments(a).await;
    assert!(live_segments >= 5.0, "{live_segments} live segments served");
    assert_eq!(
        metric(
            a,
            "origin_http_requests_total",
            &[("kind", "segment"), ("status", "404")]
        )
        .await,
        0.0,
        "ffmpeg asked for a segment outside the availability window"
    );
    assert_eq!(server_errors(a).await, 0.0);
    o.shutdown().await;
}

/// ffprobe sees every video rung and the audio stream of the demo title through an edge, from
/// the MPD and from the HLS multivariant playlist, decoding every frame of each, and ffmpeg
/// decodes all of them without an error.
#[tokio::test(flavor = "multi_thread")]
async fn ffprobe_and_ffmpeg_read_video_and_audio_from_mpd_and_hls_through_an_edge() {
    let t = cdn_tests::TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[1].1;
    let frames = (cdn_tests::TITLE_SECONDS * 30.0) as u64;
    // AAC frames of 1024 samples at 48 kHz: the title's 562.5 frames end inside the last one,
    // which ffmpeg's DASH demuxer drops (it ends at the Period's end) and its HLS one keeps.
    let audio_frames = cdn_tests::TITLE_SECONDS * 48_000.0 / 1024.0;
    let audio_frames = [audio_frames.floor() as u64, audio_frames.ceil() as u64];
    for path in ["/vod/demo/manifest.mpd", "/vod/demo/master.m3u8"] {
        let url = format!("http://{edge}{path}");
        let (ok, out, err) = run(
            "ffprobe",
            &[
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_type,codec_name,width,height,channels,sample_rate,nb_read_frames",
                "-of",
                "csv=p=0",
                &url,
            ],
            Duration::from_secs(120),
        )
        .await;
        assert!(ok, "ffprobe {url}: {err}");
        let mut lines: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        // Demuxers list a stream again under each program or variant that uses it.
        lines.sort();
        lines.dedup();
        let video: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("h264,video"))
            .map(|l| l.to_string())
            .collect();
        let want: Vec<String> = ["320,180", "426,240", "640,360"]
            .iter()
            .map(|size| format!("h264,video,{size},{frames}"))
            .collect();
        assert_eq!(video, want, "{url}: {out}");
        let audio = audio_frames.map(|n| format!("aac,audio,48000,2,{n}"));
        assert!(
            lines.iter().any(|l| audio.iter().any(|a| a == l)),
            "{url}: no {audio:?} in {out}"
        );

        // Every stream decoded by ffmpeg: no decoding or demuxing error. At the end of a
        // `$Number$` template ffmpeg 5.1's DASH demuxer asks for the segment after the last
        // one, gets its 404 and says so (it does with MPDs ffmpeg writes too): those lines are
        // the only ones allowed, and only for the MPD.
        let (ok, _, err) = run(
            "ffmpeg",
            &[
                "-nostdin", "-v", "error", "-i", &url, "-map", "0", "-f", "null", "-",
            ],
            Duration::from_secs(120),
        )
        .await;
        let end_of_list = [
            "Error when loading first fragment of playlist",
            "Last message repeated",
            "Invalid data found when processing input",
        ];
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| !(path.ends_with(".mpd") && end_of_list.iter().any(|m| l.contains(m))))
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(ok && errors.is_empty(), "ffmpeg decoding {url}: {err}");
    }
    t.stack.shutdown().await;
}

/// A/V sync through an edge, from ffmpeg's decoded output: each whole second's marker frame and
/// beep onset agree within a frame on average and never by more than two, for DASH and HLS,
/// VOD and live (the live channel loops the title, so the loop's seam is crossed too).
#[tokio::test(flavor = "multi_thread")]
async fn beeps_and_marker_frames_agree_through_an_edge_dash_and_hls_vod_and_live() {
    let t = cdn_tests::TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[1].1;
    let scratch = tempfile::tempdir().unwrap();
    let frame = 1.0 / 30.0;
    // (what, path, seconds of media, -re, least markers paired)
    let vod_pairs = cdn_tests::TITLE_SECONDS as usize - 1;
    let cases = [
        ("DASH VOD", "/vod/demo/manifest.mpd", None, false, vod_pairs),
        ("HLS VOD", "/vod/demo/master.m3u8", None, false, vod_pairs),
        // ffmpeg reads a live MPD in real time only with -re.
        ("DASH live", "/live/demo/manifest.mpd", Some(14.0), true, 11),
        ("HLS live", "/live/demo/master.m3u8", Some(14.0), false, 11),
    ];
    let mut runs = Vec::new();
    for (what, path, secs, realtime, least) in cases {
        let url = format!("http://{edge}{path}");
        let dir = scratch.path().to_path_buf();
        runs.push(tokio::task::spawn_blocking(move || {
            let sync = cdn_tests::av::measure(&url, secs, realtime, &dir, Duration::from_secs(90));
            (what, least, sync)
        }));
    }
    for r in runs {
        let (what, least, sync) = r.await.unwrap();
        eprintln!(
            "{what}: A/V offsets (audio minus video), ms: {:?}; mean {:.2} ms, worst {:.2} ms",
            sync.offsets_ms(),
            sync.mean() * 1e3,
            sync.worst() * 1e3
        );
        assert!(
            sync.unmatched.is_empty(),
            "{what}: marker frames without a beep: {:?} (onsets {:?})",
            sync.unmatched,
            sync.onsets
        );
        assert!(
            sync.offsets.len() >= least,
            "{what}: {} markers paired with a beep, want {least}: {sync:?}",
            sync.offsets.len()
        );
        assert!(
            sync.mean().abs() <= frame,
            "{what}: mean offset {:.4} s",
            sync.mean()
        );
        assert!(
            sync.worst() <= 2.0 * frame,
            "{what}: worst offset {:.4} s",
            sync.worst()
        );
    }
    t.stack.shutdown().await;
}
