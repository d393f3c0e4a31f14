//! The player plays what others package: DASH content made here by ffmpeg's muxer (H.264 ladder
//! of two rungs plus an AAC track), in every addressing ffmpeg writes (SegmentTemplate with
//! `$Number$`, with a SegmentTimeline and `$Time$`, SegmentList of files, SegmentList of byte
//! ranges of one file) and in two shapes written here over ffmpeg's files (SegmentBase with a
//! `sidx`, the onDemand profile; two Periods with different ladders), served by a server that is
//! not ours (python's http.server on a free loopback port), played to the end through the
//! player's library API with no segment missing, video and audio; the server's log shows the
//! audio segments requested beside the video. A server that delays only the audio makes the
//! player stall. Live, ffmpeg encoding in real time: HLS in fMP4 video only, then a dynamic MPD
//! and a live HLS with an audio rendition, played with their audio.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tools::require;
use player::play::{play, PlayConfig, PlayReport};

/// Seconds of content, in 1 s segments.
const SECONDS: usize = 4;

/// Packages the test pattern and a tone with ffmpeg's DASH muxer into `dir/out.mpd`: video at
/// 320x180 / 300 kb/s and 160x90 / 100 kb/s (one AdaptationSet), audio at 64 kb/s.
fn ffmpeg_dash(dir: &Path, extra: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(require("ffmpeg"))
        .current_dir(dir)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &SECONDS.to_string()])
        .args(["-map", "0:v", "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"])
        .args(["-g", "15", "-keyint_min", "15", "-sc_threshold", "0"])
        .args(["-b:v:0", "300k", "-s:v:1", "160x90", "-b:v:1", "100k"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-adaptation_sets", "id=0,streams=v id=1,streams=a"])
        .args(["-f", "dash", "-seg_duration", "1"])
        .args(extra)
        .arg("out.mpd")
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// python's http.server extended with single byte ranges (206), which the stock one lacks; with
/// a second argument, requests whose path contains it wait that many seconds (the third).
const RANGE_SERVER: &str = r#"
import functools, http.server, io, os, re, sys, time
class H(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        if len(sys.argv) > 3 and sys.argv[2] in self.path:
            time.sleep(float(sys.argv[3]))
        r = self.headers.get("Range")
        if r is None:
            return super().send_head()
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", r.strip())
        path = self.translate_path(self.path)
        if m is None or not os.path.isfile(path):
            self.send_error(416 if m is None else 404)
            return None
        size = os.path.getsize(path)
        first = int(m[1])
        last = min(int(m[2]) if m[2] else size - 1, size - 1)
        if first > last:
            self.send_error(416)
            return None
        with open(path, "rb") as f:
            f.seek(first)
            data = f.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print("Serving HTTP on 127.0.0.1 port %d" % srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// A python http.server serving a folder on a free loopback port; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    /// Its request log (standard error), one line per request.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The stock `python3 -m http.server` (no Range support), or with [`RANGE_SERVER`].
    fn start(root: &Path, ranges: bool) -> Server {
        Server::spawn(root, ranges, None)
    }

    /// [`RANGE_SERVER`] delaying by `delay.1` seconds the requests whose path contains
    /// `delay.0`.
    fn spawn(root: &Path, ranges: bool, delay: Option<(&str, f64)>) -> Server {
        let mut cmd = Command::new(require("python3"));
        cmd.arg("-u");
        if ranges {
            cmd.args(["-c", RANGE_SERVER]).arg(root);
            if let Some((pattern, secs)) = delay {
                cmd.arg(pattern).arg(secs.to_string());
            }
        } else {
            cmd.args([
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(root);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = first
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("no port in python's first line `{first}`")
            });
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Request lines (`GET /path HTTP/1.1" 206`) logged so far.
    fn requests(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.split_once("\"GET ").map(|(_, r)| r.to_string()))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn play_url(url: &str) -> anyhow::Result<PlayReport> {
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.timeout = Duration::from_secs(10);
    tokio::time::timeout(Duration::from_secs(60), play(&cfg))
        .await
        .expect("playback ends")
}

/// Checks that every video segment came, and every audio segment (at least as many as video
/// segments: AAC frames do not end on the video's boundaries, ffmpeg adds a short last one).
#[track_caller]
fn assert_complete(report: &PlayReport, segments: usize) {
    let s = &report.session;
    assert_eq!(s.segments.len(), segments, "{}", report.table());
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    assert!(s.segments.iter().all(|r| r.bytes > 0), "{}", report.table());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let audio = s.audio.as_ref().expect("the audio track played");
    assert_eq!(audio.id, "2", "{}", report.table());
    assert!(
        (segments..=segments + 2).contains(&audio.segments),
        "{}",
        report.table()
    );
    assert_eq!(audio.missing_segments, 0, "{}", report.table());
    assert!(audio.rows.iter().all(|r| r.bytes > 0), "{}", report.table());
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["audio"]["segments"], audio.segments);
}

/// How many requests have a path starting with one of `prefixes`.
fn count(requests: &[String], prefixes: &[&str]) -> usize {
    requests
        .iter()
        .filter(|r| prefixes.iter().any(|p| r.starts_with(p)))
        .count()
}

/// The top-level boxes of an MP4 file: (type, offset, size).
fn boxes(path: &Path) -> Vec<(String, u64, u64)> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8,
            "box at {pos} of {} has size {size}",
            path.display()
        );
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        out.push((kind, pos as u64, size as u64));
        pos += size;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_templates_from_ffmpeg_play_to_the_end() {
    let root = tempfile::tempdir().unwrap();
    // $Number$ with @duration, and a SegmentTimeline with $Time$.
    ffmpeg_dash(&root.path().join("number"), &["-use_timeline", "0"]);
    ffmpeg_dash(
        &root.path().join("time"),
        &[
            "-use_timeline",
            "1",
            "-media_seg_name",
            "chunk-$RepresentationID$-$Time$.$ext$",
        ],
    );
    let time_mpd = std::fs::read_to_string(root.path().join("time/out.mpd")).unwrap();
    assert!(
        time_mpd.contains("<SegmentTimeline>") && time_mpd.contains("$Time$"),
        "{time_mpd}"
    );
    // ffmpeg 5.1 names the first audio file after the AAC priming's negative time
    // (`chunk-2--1024.m4s`) while its MPD says t="0": a player following the MPD gets a 404,
    // dash.js as well. Named here as the MPD says, as a fixed packager would.
    for entry in std::fs::read_dir(root.path().join("time")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("chunk-2--") {
            std::fs::rename(&path, root.path().join("time/chunk-2-0.m4s")).unwrap();
        }
    }
    let server = Server::start(root.path(), false);
    let mut audio = 0;
    for dir in ["number", "time"] {
        let report = play_url(&server.url(&format!("{dir}/out.mpd")))
            .await
            .expect("playback works");
        assert_complete(&report, SECONDS);
        audio += report.session.audio.unwrap().segments;
    }
    let requests = server.requests();
    assert_eq!(
        count(&requests, &["/number/chunk-stream2-", "/time/chunk-2-"]),
        audio,
        "{requests:#?}"
    );
    let video: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.contains("/chunk-stream0-") || r.contains("/chunk-stream1-"))
        .collect();
    assert_eq!(video.len(), SECONDS, "{video:#?}");
    let video_t: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("/time/chunk-0-") || r.starts_with("/time/chunk-1-"))
        .collect();
    assert_eq!(video_t.len(), SECONDS, "{video_t:#?}");
    assert!(video_t.iter().all(|r| r.contains("\" 200")), "{video_t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_list_of_files_from_ffmpeg_plays_to_the_end() {
    let root = tempfile::tempdir().unwrap();
    ffmpeg_dash(root.path(), &["-use_template", "0"]);
    let mpd = std::fs::read_to_string(root.path().join("out.mpd")).unwrap();
    assert!(
        mpd.contains("<SegmentList") && mpd.contains("SegmentURL media="),
        "{mpd}"
    );
    let server = Server::start(root.path(), false);
    let report = play_url(&server.url("out.mpd"))
        .await
        .expect("playback works");
    assert_complete(&report, SECONDS);
    let requests = server.requests();
    let media = count(&requests, &["/chunk-stream0-", "/chunk-stream1-"]);
    assert_eq!(media, SECONDS, "{requests:#?}");
    let audio = report.session.audio.as_ref().unwrap().segments;
    assert_eq!(
        count(&requests, &["/chunk-stream2-"]),
        audio,
        "{requests:#?}"
    );
    assert_eq!(count(&requests, &["/init-stream2.m4s"]), 1, "{requests:#?}");

    // Cut to 2 s, the session fetches the audio of those 2 s, not the whole title's.
    let mut cfg = PlayConfig::new(server.url("out.mpd").parse().unwrap());
    cfg.duration_s = Some(2.0);
    let short = tokio::time::timeout(Duration::from_secs(60), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    assert_eq!(short.session.segments.len(), 2, "{}", short.table());
    let audio = short.session.audio.as_ref().unwrap();
    assert!((2..=3).contains(&audio.segments), "{}", short.table());
    assert_eq!(audio.missing_segments, 0);
    assert!(
        requests.iter().any(|r| r.starts_with("/init-stream")),
        "{requests:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_list_of_byte_ranges_plays_by_range_and_a_server_without_ranges_is_named() {
    let root = tempfile::tempdir().unwrap();
    ffmpeg_dash(root.path(), &["-single_file", "1"]);
    let mpd = std::fs::read_to_string(root.path().join("out.mpd")).unwrap();
    assert!(mpd.contains("mediaRange="), "{mpd}");
    // The stock http.server answers a Range request with the whole file: a clear error, not a
    // playback that counts whole files as segments.
    {
        let stock = Server::start(root.path(), false);
        let report = play_url(&stock.url("out.mpd"))
            .await
            .expect("the MPD is read");
        let s = &report.session;
        assert_eq!(s.summary.missing_segments, SECONDS, "{}", report.table());
        assert!(
            s.errors
                .iter()
                .all(|e| e.contains("got HTTP 200 OK: the server does not honour Range requests")),
            "{:?}",
            s.errors
        );
    }
    let server = Server::start(root.path(), true);
    let report = play_url(&server.url("out.mpd"))
        .await
        .expect("playback works");
    assert_complete(&report, SECONDS);
    let ranged = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("/out-stream0.mp4") || r.starts_with("/out-stream1.mp4"))
        .filter(|r| r.contains("\" 206"))
        .count();
    // One init and SECONDS media ranges at least (one more init per rung switched to).
    assert!(ranged > SECONDS, "{:#?}", server.requests());
    let audio = report.session.audio.as_ref().unwrap().segments;
    let audio_ranges = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("/out-stream2.mp4") && r.contains("\" 206"))
        .count();
    assert_eq!(audio_ranges, 1 + audio, "init and segments");
    let sizes: u64 = report.session.segments.iter().map(|r| r.bytes).sum();
    let files: u64 = ["out-stream0.mp4", "out-stream1.mp4"]
        .iter()
        .map(|f| std::fs::metadata(root.path().join(f)).unwrap().len())
        .sum();
    assert!(sizes < files, "ranges, not whole files: {sizes} of {files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_base_with_a_sidx_plays_its_subsegments_by_range() {
    let root = tempfile::tempdir().unwrap();
    ffmpeg_dash(root.path(), &["-single_file", "1", "-global_sidx", "1"]);
    // The onDemand-profile MPD GPAC or Shaka Packager would write over these files.
    let rep = |id: &str, file: &str, attrs: &str| {
        let b = boxes(&root.path().join(file));
        let (_, at, size) = b
            .iter()
            .find(|(k, _, _)| k == "sidx")
            .cloned()
            .unwrap_or_else(|| panic!("no sidx in {file}: {b:?}"));
        format!(
            "<Representation id=\"{id}\" {attrs}><BaseURL>{file}</BaseURL>\
             <SegmentBase indexRange=\"{at}-{}\"><Initialization range=\"0-{}\"/></SegmentBase>\
             </Representation>",
            at + size - 1,
            at - 1
        )
    };
    let mpd = format!(
        "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" \
         profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\" minBufferTime=\"PT2S\" \
         mediaPresentationDuration=\"PT{SECONDS}S\"><Period>\n\
         <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\" subsegmentAlignment=\"true\">\n{}\n{}\n</AdaptationSet>\n\
         <AdaptationSet contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"en\">\n{}\n</AdaptationSet>\n\
         </Period></MPD>\n",
        rep("0", "out-stream0.mp4", "bandwidth=\"300000\" codecs=\"avc1.42c00d\""),
        rep("1", "out-stream1.mp4", "bandwidth=\"100000\" codecs=\"avc1.42c00c\""),
        rep("2", "out-stream2.mp4", "bandwidth=\"64000\" codecs=\"mp4a.40.2\""),
    );
    std::fs::write(root.path().join("ondemand.mpd"), &mpd).unwrap();
    let server = Server::start(root.path(), true);
    let report = play_url(&server.url("ondemand.mpd"))
        .await
        .expect("playback works");
    assert_complete(&report, SECONDS);
    let requests = server.requests();
    let video: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("/out-stream0.mp4") || r.starts_with("/out-stream1.mp4"))
        .collect();
    assert!(video.iter().all(|r| r.contains("\" 206")), "{video:#?}");
    // Per rung: the index; per rung played: the init; then one range per subsegment.
    let rungs_played: std::collections::BTreeSet<usize> =
        report.session.segments.iter().map(|r| r.rung).collect();
    assert_eq!(video.len(), 2 + rungs_played.len() + SECONDS, "{video:#?}");
    // The audio: its index, its init, its subsegments.
    let audio = report.session.audio.as_ref().unwrap().segments;
    let audio_requests = count(&requests, &["/out-stream2.mp4"]);
    assert_eq!(audio_requests, 2 + audio, "{requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_periods_with_different_ladders_play_in_order() {
    let root = tempfile::tempdir().unwrap();
    ffmpeg_dash(&root.path().join("one"), &["-use_timeline", "0"]);
    ffmpeg_dash(&root.path().join("two"), &["-use_timeline", "0"]);
    let template = "<SegmentTemplate timescale=\"1000\" duration=\"1000\" startNumber=\"1\" \
        initialization=\"init-stream$RepresentationID$.m4s\" \
        media=\"chunk-stream$RepresentationID$-$Number%05d$.m4s\"/>";
    // Period one has both rungs; period two only the small one, so both rungs play it.
    let mpd = format!(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" \
         minBufferTime=\"PT2S\" mediaPresentationDuration=\"PT{total}S\">\n\
         <Period id=\"one\" duration=\"PT{SECONDS}S\"><BaseURL>one/</BaseURL>\n\
         <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\">{template}\n\
         <Representation id=\"0\" bandwidth=\"300000\"/><Representation id=\"1\" bandwidth=\"100000\"/>\n\
         </AdaptationSet>\n\
         <AdaptationSet contentType=\"audio\" mimeType=\"audio/mp4\">{template}<Representation id=\"2\" bandwidth=\"64000\"/></AdaptationSet>\n\
         </Period>\n\
         <Period id=\"two\"><BaseURL>two/</BaseURL>\n\
         <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\">{template}\n\
         <Representation id=\"1\" bandwidth=\"100000\"/>\n\
         </AdaptationSet>\n\
         <AdaptationSet contentType=\"audio\" mimeType=\"audio/mp4\">{template}<Representation id=\"2\" bandwidth=\"64000\"/></AdaptationSet>\n\
         </Period></MPD>\n",
        total = 2 * SECONDS
    );
    std::fs::write(root.path().join("two-periods.mpd"), &mpd).unwrap();
    let server = Server::start(root.path(), false);
    let report = play_url(&server.url("two-periods.mpd"))
        .await
        .expect("playback works");
    assert_complete(&report, 2 * SECONDS);
    let requests = server.requests();
    let period = |p: &str| {
        requests
            .iter()
            .filter(|r| {
                r.starts_with(&format!("/{p}/chunk-stream0-"))
                    || r.starts_with(&format!("/{p}/chunk-stream1-"))
            })
            .count()
    };
    assert_eq!(
        (period("one"), period("two")),
        (SECONDS, SECONDS),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/two/init-stream1.m4s")),
        "the second Period's init is fetched: {requests:#?}"
    );
    // The MPD's template lists SECONDS audio segments per Period (ffmpeg's short extra one is
    // not in it).
    assert_eq!(report.session.audio.as_ref().unwrap().segments, 2 * SECONDS);
    assert_eq!(
        (
            count(&requests, &["/one/chunk-stream2-"]),
            count(&requests, &["/two/chunk-stream2-"]),
            count(
                &requests,
                &["/one/init-stream2.m4s", "/two/init-stream2.m4s"]
            )
        ),
        (SECONDS, SECONDS, 2),
        "{requests:#?}"
    );
    let last_one = requests
        .iter()
        .rposition(|r| r.starts_with("/one/chunk-"))
        .unwrap();
    let first_two = requests
        .iter()
        .position(|r| r.starts_with("/two/chunk-"))
        .unwrap();
    assert!(last_one < first_two, "in order: {requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_delays_only_the_audio_makes_the_player_stall() {
    let root = tempfile::tempdir().unwrap();
    ffmpeg_dash(root.path(), &["-use_timeline", "0"]);
    // Every audio segment (and the audio init) takes 1.5 s for 1 s of media; video is instant.
    let server = Server::spawn(root.path(), true, Some(("-stream2", 1.5)));
    let report = play_url(&server.url("out.mpd"))
        .await
        .expect("playback works");
    let s = &report.session;
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    assert!(
        s.summary.rebuffer_count >= 2 && s.summary.rebuffer_s > 1.0,
        "{}",
        report.table()
    );
    assert!(
        s.segments.iter().all(|r| r.download_s < 1.0),
        "the video came fast: {}",
        report.table()
    );
    let audio = s.audio.as_ref().unwrap();
    assert_eq!(audio.missing_segments, 0);
    assert!(audio.rows.iter().all(|r| r.download_s >= 1.4), "{audio:?}");
}

/// Packages the same content with ffmpeg's HLS muxer into `dir/master.m3u8`: two video
/// variants and an audio rendition in group `aud` (English, default), in `segment_type`.
fn ffmpeg_hls(dir: &Path, segment_type: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(require("ffmpeg"))
        .current_dir(dir)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &SECONDS.to_string()])
        .args(["-map", "0:v", "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"])
        .args(["-g", "15", "-keyint_min", "15", "-sc_threshold", "0"])
        .args(["-b:v:0", "300k", "-s:v:1", "160x90", "-b:v:1", "100k"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"])
        .args(["-hls_segment_type", segment_type])
        .args(["-master_pl_name", "master.m3u8"])
        .args([
            "-var_stream_map",
            "v:0,agroup:aud v:1,agroup:aud a:0,agroup:aud,language:en,default:yes",
        ])
        .arg("stream_%v/index.m3u8")
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_hls_in_fmp4_plays_with_its_audio_and_what_cannot_play_says_why() {
    let root = tempfile::tempdir().unwrap();
    ffmpeg_hls(&root.path().join("fmp4"), "fmp4");
    ffmpeg_hls(&root.path().join("ts"), "mpegts");
    let vod = std::fs::read_to_string(root.path().join("fmp4/stream_0/index.m3u8")).unwrap();
    assert!(vod.contains("#EXT-X-MAP:"), "{vod}");
    let server = Server::start(root.path(), false);

    let report = play_url(&server.url("fmp4/master.m3u8"))
        .await
        .expect("playback works");
    let s = &report.session;
    assert_eq!(s.segments.len(), SECONDS, "{}", report.table());
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let audio = s.audio.as_ref().expect("the audio rendition played");
    assert_eq!(audio.missing_segments, 0, "{}", report.table());
    assert!(audio.segments >= SECONDS, "{}", report.table());
    let requests = server.requests();
    let segments = |dirs: &[&str]| {
        requests
            .iter()
            .filter(|r| dirs.iter().any(|d| r.starts_with(d)) && r.contains(".m4s "))
            .count()
    };
    assert_eq!(
        segments(&["/fmp4/stream_0/", "/fmp4/stream_1/"]),
        SECONDS,
        "{requests:#?}"
    );
    assert_eq!(
        segments(&["/fmp4/stream_2/"]),
        audio.segments,
        "{requests:#?}"
    );
    assert_eq!(
        count(&requests, &["/fmp4/stream_2/init"]),
        1,
        "{requests:#?}"
    );

    let ts = format!(
        "{:#}",
        play_url(&server.url("ts/master.m3u8")).await.unwrap_err()
    );
    assert!(ts.contains("MPEG-TS segments are not supported"), "{ts}");
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_hls_from_ffmpeg_is_followed_as_it_grows() {
    let root = tempfile::tempdir().unwrap();
    // ffmpeg encoding in real time (-re), two variants, a sliding window of 6 segments of 1 s.
    let ffmpeg = Command::new(require("ffmpeg"))
        .current_dir(root.path())
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-re",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=15",
            "-t",
            "40",
        ])
        .args(["-map", "0:v", "-map", "0:v"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"])
        .args(["-g", "15", "-keyint_min", "15", "-sc_threshold", "0"])
        .args(["-b:v:0", "300k", "-s:v:1", "160x90", "-b:v:1", "100k"])
        .args(["-f", "hls", "-hls_time", "1", "-hls_list_size", "6"])
        .args(["-hls_segment_type", "fmp4", "-hls_flags", "delete_segments"])
        .args([
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            "v:0 v:1",
        ])
        .arg("stream_%v/live.m3u8")
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg starts");
    let _ffmpeg = Running(ffmpeg);
    // Until both playlists list 4 segments (at most 20 s).
    let listed = |v: usize| {
        std::fs::read_to_string(root.path().join(format!("stream_{v}/live.m3u8")))
            .map(|t| t.matches("#EXTINF").count())
            .unwrap_or(0)
    };
    for _ in 0..100 {
        if listed(0) >= 4 && listed(1) >= 4 && root.path().join("master.m3u8").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(listed(0) >= 4, "ffmpeg wrote no live playlist in 20 s");
    let playlist = std::fs::read_to_string(root.path().join("stream_0/live.m3u8")).unwrap();
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let server = Server::start(root.path(), false);
    let mut cfg = PlayConfig::new(server.url("master.m3u8").parse().unwrap());
    cfg.duration_s = Some(6.0);
    let report = tokio::time::timeout(Duration::from_secs(60), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    assert!(report.live, "{}", report.table());
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    // Joined 3 segments behind the newest, then about one new segment a second for 6 s.
    assert!(s.segments.len() >= 7, "{}", report.table());
    let requests = server.requests();
    let reloads = count(&requests, &["/stream_0/live.m3u8", "/stream_1/live.m3u8"]);
    assert!(reloads >= 6, "the playlists are reloaded: {requests:#?}");
    let segments = requests
        .iter()
        .filter(|r| r.starts_with("/stream_") && r.contains(".m4s "))
        .count();
    assert_eq!(segments, s.segments.len(), "{requests:#?}");
}

/// ffmpeg encoding the test pattern and a tone in real time (-re) for 40 s into `dir`: two
/// video rungs and an AAC track, muxed by `muxer` (its options and output name).
fn ffmpeg_live_with_audio(dir: &Path, muxer: &[&str]) -> Running {
    let ffmpeg = Command::new(require("ffmpeg"))
        .current_dir(dir)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-re",
        ])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "40"])
        .args(["-map", "0:v", "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"])
        .args(["-g", "15", "-keyint_min", "15", "-sc_threshold", "0"])
        .args(["-b:v:0", "300k", "-s:v:1", "160x90", "-b:v:1", "100k"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(muxer)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg starts");
    Running(ffmpeg)
}

/// Waits (at most 20 s) until `ready` holds.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..100 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("ffmpeg did not get {what} in 20 s");
}

/// Plays a live `url` for 6 s and checks that video and audio played with nothing missing.
async fn play_live_with_audio(url: &str) -> PlayReport {
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.duration_s = Some(6.0);
    cfg.timeout = Duration::from_secs(10);
    let report = tokio::time::timeout(Duration::from_secs(60), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    assert!(report.live, "{}", report.table());
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // Joined a few segments behind the edge, then about one new segment a second for 6 s.
    assert!(s.segments.len() >= 6, "{}", report.table());
    let audio = s.audio.as_ref().expect("the audio track played");
    assert_eq!(audio.missing_segments, 0, "{}", report.table());
    assert!(audio.segments >= 5, "{}", report.table());
    assert!(audio.rows.iter().all(|r| r.bytes > 0), "{}", report.table());
    // The audio kept up with the video: at most one segment apart.
    assert!(
        audio.segments + 1 >= s.segments.len() && audio.segments <= s.segments.len() + 1,
        "{}",
        report.table()
    );
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["audio"]["segments"], audio.segments);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_dash_from_ffmpeg_plays_its_audio_beside_the_video() {
    let root = tempfile::tempdir().unwrap();
    // A dynamic MPD with SegmentTimelines, a window of 6 segments of 1 s.
    let _ffmpeg = ffmpeg_live_with_audio(
        root.path(),
        &[
            "-adaptation_sets",
            "id=0,streams=v id=1,streams=a",
            "-f",
            "dash",
            "-seg_duration",
            "1",
            "-streaming",
            "0",
            "-ldash",
            "0",
            "-window_size",
            "6",
            "-extra_window_size",
            "4",
            "live.mpd",
        ],
    );
    let mpd = root.path().join("live.mpd");
    wait_for("4 segments listed", || {
        root.path().join("chunk-stream2-00004.m4s").exists()
            && std::fs::read_to_string(&mpd).is_ok_and(|t| t.contains("type=\"dynamic\""))
    });
    let text = std::fs::read_to_string(&mpd).unwrap();
    assert!(text.contains("contentType=\"audio\""), "{text}");
    let server = Server::start(root.path(), false);
    let report = play_live_with_audio(&server.url("live.mpd")).await;
    let s = &report.session;
    let audio = s.audio.as_ref().unwrap();
    assert_eq!(audio.id, "2");
    let requests = server.requests();
    assert_eq!(
        count(&requests, &["/chunk-stream0-", "/chunk-stream1-"]),
        s.segments.len(),
        "{requests:#?}"
    );
    assert_eq!(
        count(&requests, &["/chunk-stream2-"]),
        audio.segments,
        "{requests:#?}"
    );
    assert_eq!(count(&requests, &["/init-stream2.m4s"]), 1, "{requests:#?}");
    assert!(
        count(&requests, &["/live.mpd"]) >= 4,
        "the MPD is re-read: {requests:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_hls_from_ffmpeg_plays_its_audio_rendition_beside_the_video() {
    let root = tempfile::tempdir().unwrap();
    let _ffmpeg = ffmpeg_live_with_audio(
        root.path(),
        &[
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "6",
            "-hls_segment_type",
            "fmp4",
            "-hls_flags",
            "delete_segments",
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            "v:0,agroup:aud v:1,agroup:aud a:0,agroup:aud,language:en,default:yes",
            "stream_%v/live.m3u8",
        ],
    );
    let listed = |v: usize| {
        std::fs::read_to_string(root.path().join(format!("stream_{v}/live.m3u8")))
            .map(|t| t.matches("#EXTINF").count())
            .unwrap_or(0)
    };
    wait_for("4 segments listed", || {
        (0..3).all(|v| listed(v) >= 4) && root.path().join("master.m3u8").exists()
    });
    let master = std::fs::read_to_string(root.path().join("master.m3u8")).unwrap();
    assert!(
        master.contains("TYPE=AUDIO") && master.contains("URI=\"stream_2/live.m3u8\""),
        "{master}"
    );
    let server = Server::start(root.path(), false);
    let report = play_live_with_audio(&server.url("master.m3u8")).await;
    let s = &report.session;
    let audio = s.audio.as_ref().unwrap();
    assert_eq!(audio.id, "audio_2");
    let requests = server.requests();
    let segments = |dirs: &[&str]| {
        requests
            .iter()
            .filter(|r| dirs.iter().any(|d| r.starts_with(d)) && r.contains(".m4s "))
            .count()
    };
    assert_eq!(
        segments(&["/stream_0/", "/stream_1/"]),
        s.segments.len(),
        "{requests:#?}"
    );
    assert_eq!(segments(&["/stream_2/"]), audio.segments, "{requests:#?}");
    assert_eq!(count(&requests, &["/stream_2/init"]), 1, "{requests:#?}");
    assert!(
        count(&requests, &["/stream_2/live.m3u8"]) >= 6,
        "the audio playlist is reloaded: {requests:#?}"
    );
}
