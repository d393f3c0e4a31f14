//! The packager's output checked by third-party tools: the MPD validates against the DASH
//! schema (xmllint), ffmpeg/ffprobe read it over HTTP and decode every representation and the
//! audio with the expected frame counts, every media segment starts with an IDR picture, the
//! manifest agrees with the files (our own MPD parser, init segments' avcC and esds, tfdt
//! timing). A/V sync is measured through the whole stack (`tests/tests/origin_ffmpeg.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::tools::require;
use mp4_atom::{Any, Decode};
use mpd::{Mpd, SegmentsAt};
use packager::ladder::Ladder;
use packager::{package, Options, Report};

const SECONDS: f64 = 6.0;
const FPS: u32 = 30;
const FRAMES: u64 = 180;
const SEGMENTS: usize = 3;
/// AAC frames of the audio: 6 s at 48 kHz is 281.25 frames; the track ends at the nearest.
const AUDIO_FRAMES: u64 = 281;
/// The default audio rung's id (and folder).
const AUDIO_ID: &str = "audio";
/// A small ladder keeps the debug-build test fast.
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

struct Fixture {
    root: PathBuf,
    title: PathBuf,
    report: Report,
}

/// Packages the clip once for all tests of this file, under ROOT/vod/demo.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("media-package-dash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let title = root.join("vod/demo");
        let opts = Options {
            duration: Some(SECONDS),
            fps: FPS,
            segment: 2.0,
            ladder: Ladder::parse(LADDER, "test ladder").unwrap(),
            progress: false,
            // One encoder per segment, so segment boundaries are also encoder boundaries.
            chunk_frames: 60,
            ..Options::new(&title)
        };
        let report = package(&opts).unwrap();
        Fixture {
            root,
            title,
            report,
        }
    })
}

/// Runs a command with stdout/stderr captured in files, killing it after `limit`.
fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = std::env::temp_dir();
    let tag =
        format!("{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], "");
    let (out_path, err_path) = (
        dir.join(format!("pkg-test-{tag}.out")),
        dir.join(format!("pkg-test-{tag}.err")),
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    (status.success(), out, err)
}

/// A static file server over `root` on 127.0.0.1:0 that records every request and its status.
struct FileServer {
    runtime: tokio::runtime::Runtime,
    handle: Option<common::http::ServerHandle>,
    requests: Arc<Mutex<Vec<(String, u16)>>>,
}

impl FileServer {
    fn start(root: &Path) -> FileServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let root = Arc::new(root.to_path_buf());
        let log = requests.clone();
        let handle = runtime.block_on(async move {
            let listener = common::http::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            common::http::serve(
                listener,
                Default::default(),
                Default::default(),
                move |req, _| {
                    let root = root.clone();
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let file = (!path.split('/').any(|s| s == ".."))
                            .then(|| root.join(path.trim_start_matches('/')));
                        let body = match file {
                            Some(f) => tokio::fs::read(f).await.ok(),
                            None => None,
                        };
                        let status = if body.is_some() { 200 } else { 404 };
                        log.lock().unwrap().push((path.clone(), status));
                        let content_type = if path.ends_with(".mpd") {
                            "application/dash+xml"
                        } else if path.ends_with(".m3u8") {
                            "application/vnd.apple.mpegurl"
                        } else {
                            "video/mp4"
                        };
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", content_type)
                            .body(common::http::full(body.unwrap_or_default()))
                            .unwrap()
                    }
                },
            )
            .unwrap()
        });
        FileServer {
            runtime,
            handle: Some(handle),
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        let addr = self.handle.as_ref().unwrap().local_addr();
        format!("http://{addr}{path}")
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.runtime.block_on(h.shutdown());
        }
    }
}

fn representation_ids(f: &Fixture) -> Vec<String> {
    f.report
        .representations
        .iter()
        .map(|r| r.id.clone())
        .collect()
}

/// Video and audio representation ids.
fn all_ids(f: &Fixture) -> Vec<String> {
    let mut ids = representation_ids(f);
    ids.extend(f.report.audio.iter().map(|a| a.id.clone()));
    ids
}

#[test]
fn manifest_validates_against_the_dash_schema() {
    let f = fixture();
    let xmllint = require("xmllint");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mpd/tests/schema");
    let (ok, out, err) = run(
        Command::new(xmllint)
            .env("XML_CATALOG_FILES", schema.join("catalog.xml"))
            .args(["--nonet", "--noout", "--schema"])
            .arg(schema.join("DASH-MPD.xsd"))
            .arg(f.title.join("manifest.mpd")),
        Duration::from_secs(60),
    );
    assert!(ok, "xmllint rejected the MPD:\n{out}\n{err}");
    assert!(err.contains("validates"), "{err}");
}

#[test]
fn ffmpeg_decodes_every_representation_over_http() {
    let f = fixture();
    let ffprobe = require("ffprobe");
    let ffmpeg = require("ffmpeg");
    let server = FileServer::start(&f.root);
    let mpd_url = server.url("/vod/demo/manifest.mpd");

    // ffprobe decodes every stream (one per Representation) and counts the frames.
    let (ok, out, err) = run(
        Command::new(&ffprobe)
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .args(["stream=index,codec_type,codec_name,width,height,nb_read_frames,sample_rate,channels:stream_tags=id"])
            .args(["-of", "json"])
            .arg(&mpd_url),
        Duration::from_secs(120),
    );
    assert!(ok, "ffprobe failed: {err}");
    let probe: serde_json::Value = serde_json::from_str(&out).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let mut seen = BTreeMap::new();
    let mut audio = Vec::new();
    for s in streams {
        let id = s["tags"]["id"].as_str().unwrap().to_string();
        if s["codec_type"] == "audio" {
            audio.push((
                id,
                s["codec_name"].as_str().unwrap().to_string(),
                s["sample_rate"].as_str().unwrap().to_string(),
                s["channels"].as_u64().unwrap(),
                s["nb_read_frames"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            ));
            continue;
        }
        assert_eq!(s["codec_name"], "h264");
        let frames: u64 = s["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert_eq!(frames, FRAMES, "representation {id}");
        seen.insert(
            id,
            (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()),
        );
    }
    for r in &f.report.representations {
        assert_eq!(
            seen.get(&r.id),
            Some(&(u64::from(r.width), u64::from(r.height))),
            "ffprobe streams: {seen:?}"
        );
    }
    // The sound, next to the pictures: AAC, 48 kHz, stereo. (Counting all streams at once,
    // ffprobe 5.1 misses the first audio packet of a DASH input, which it reads while probing;
    // the count of the audio stream alone is exact.)
    let [(id, codec, rate, channels, frames)] = audio.as_slice() else {
        panic!("ffprobe audio streams: {audio:?}");
    };
    assert_eq!(
        (id.as_str(), codec.as_str(), rate.as_str(), *channels),
        (AUDIO_ID, "aac", "48000", 2)
    );
    assert!(
        (AUDIO_FRAMES - 1..=AUDIO_FRAMES).contains(frames),
        "{frames} AAC frames"
    );
    let (ok, out, err) = run(
        Command::new(&ffprobe)
            .args(["-v", "error", "-count_frames", "-select_streams", "a"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(&mpd_url),
        Duration::from_secs(120),
    );
    assert!(ok, "ffprobe failed: {err}");
    // The stream's line, repeated under its program.
    let counts: Vec<&str> = out.split_whitespace().collect();
    assert!(!counts.is_empty(), "ffprobe printed nothing");
    assert!(
        counts.iter().all(|c| *c == AUDIO_FRAMES.to_string()),
        "AAC frames decoded: {out}"
    );

    // ffmpeg decodes all representations with error detection on. Its DASH demuxer asks for
    // one segment past the end (seg-00004), gets a 404 and logs that it could not load it; that
    // is the only message allowed.
    let (ok, _out, err) = run(
        Command::new(&ffmpeg)
            .args([
                "-nostdin",
                "-v",
                "error",
                "-err_detect",
                "explode+bitstream+buffer",
                "-i",
            ])
            .arg(&mpd_url)
            .args(["-map", "0", "-f", "null", "-"]),
        Duration::from_secs(120),
    );
    assert!(ok, "ffmpeg failed: {err}");
    let unexpected: Vec<&str> = err
        .lines()
        .filter(|l| {
            !(l.contains("Error when loading first fragment of playlist")
                || l.contains("Last message repeated")
                || l.ends_with("manifest.mpd: Invalid data found when processing input"))
        })
        .collect();
    assert!(unexpected.is_empty(), "ffmpeg reported: {unexpected:#?}");

    let requests = server.requests.lock().unwrap().clone();
    for id in all_ids(f) {
        for n in 1..=SEGMENTS {
            let path = format!("/vod/demo/{id}/seg-{n:05}.m4s");
            assert!(
                requests.contains(&(path.clone(), 200)),
                "{path} never served"
            );
        }
    }
    let past_end: Vec<String> = all_ids(f)
        .iter()
        .map(|id| format!("/vod/demo/{id}/seg-{:05}.m4s", SEGMENTS + 1))
        .collect();
    for (path, status) in &requests {
        if *status != 200 {
            assert!(past_end.contains(path), "{path} answered {status}");
        }
    }
}

/// The HLS playlists beside the MPD name the same files: every media segment and init segment
/// the MPD resolves to, with EXTINF durations adding up to the title.
#[test]
fn hls_playlists_reference_the_mpd_segments() {
    let f = fixture();
    let text = std::fs::read_to_string(f.title.join("master.m3u8")).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
    else {
        panic!("not a multivariant playlist:\n{text}");
    };
    assert_eq!(master.variants.len(), f.report.representations.len());
    let audio_peak = f.report.audio.iter().map(|a| a.bandwidth).max().unwrap();
    for (v, r) in master.variants.iter().zip(&f.report.representations) {
        assert_eq!(v.uri, format!("{}.m3u8", r.id));
        assert_eq!(
            v.bandwidth,
            r.bandwidth + audio_peak,
            "BANDWIDTH counts the audio"
        );
        assert_eq!(
            v.codecs.as_deref(),
            Some(format!("{},{}", r.codecs, f.report.audio[0].codecs).as_str())
        );
        assert_eq!(v.audio.as_deref(), Some("audio"));
    }
    assert_eq!(master.alternatives.len(), 1);
    let mpd_text = std::fs::read_to_string(f.title.join("manifest.mpd")).unwrap();
    let mpd = Mpd::parse(&mpd_text).unwrap();
    let base = mpd::Url::parse("http://x/vod/demo/manifest.mpd").unwrap();
    let resolved = mpd.resolve(&base, SegmentsAt::Vod).unwrap();
    for set in &resolved[0].adaptation_sets {
        for rep in &set.representations {
            let id = &rep.id;
            let text = std::fs::read_to_string(f.title.join(format!("{id}.m3u8"))).unwrap();
            let m3u8_rs::Playlist::MediaPlaylist(p) =
                m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
            else {
                panic!("{id}.m3u8 is not a media playlist");
            };
            assert!(p.end_list);
            assert_eq!(p.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
            let media = &rep.segments.media;
            assert_eq!(p.segments.len(), media.len(), "{id}");
            let map = p.segments[0].map.as_ref().expect("EXT-X-MAP");
            assert_eq!(
                base.join(&map.uri).unwrap(),
                rep.segments.init.as_ref().unwrap().url
            );
            let mut total = 0.0;
            for (s, d) in p.segments.iter().zip(media) {
                assert_eq!(base.join(&s.uri).unwrap(), d.url, "{id}");
                assert!(f64::from(s.duration).round() as u64 <= p.target_duration);
                total += f64::from(s.duration);
            }
            assert!((total - SECONDS).abs() < 0.05, "{id}: {total} s");
        }
    }
}

/// ffprobe on `master.m3u8` over HTTP sees every video rung and the sound; ffmpeg decodes the
/// HLS title with error detection on and reports nothing.
#[test]
fn ffmpeg_decodes_the_hls_title_over_http() {
    let f = fixture();
    let ffprobe = require("ffprobe");
    let ffmpeg = require("ffmpeg");
    let server = FileServer::start(&f.root);
    let url = server.url("/vod/demo/master.m3u8");
    let (ok, out, err) = run(
        Command::new(&ffprobe)
            .args(["-v", "error", "-show_entries"])
            .args(["stream=index,codec_type,codec_name,width,height,sample_rate,channels"])
            .args(["-of", "json"])
            .arg(&url),
        Duration::from_secs(120),
    );
    assert!(ok, "ffprobe failed: {err}");
    let probe: serde_json::Value = serde_json::from_str(&out).unwrap();
    let streams = probe["streams"].as_array().unwrap();
    let mut sizes = std::collections::BTreeSet::new();
    let mut audio = 0;
    for s in streams {
        match s["codec_type"].as_str() {
            Some("video") => {
                assert_eq!(s["codec_name"], "h264");
                sizes.insert((s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()));
            }
            Some("audio") => {
                assert_eq!(s["codec_name"], "aac");
                assert_eq!(s["sample_rate"], "48000");
                audio += 1;
            }
            other => panic!("unexpected stream {other:?}: {out}"),
        }
    }
    let want: std::collections::BTreeSet<(u64, u64)> = f
        .report
        .representations
        .iter()
        .map(|r| (u64::from(r.width), u64::from(r.height)))
        .collect();
    assert_eq!(sizes, want, "{out}");
    assert!(audio >= 1, "no audio stream: {out}");

    let (ok, _out, err) = run(
        Command::new(&ffmpeg)
            .args([
                "-nostdin",
                "-v",
                "error",
                "-err_detect",
                "explode+bitstream+buffer",
            ])
            .arg("-i")
            .arg(&url)
            .args(["-map", "0", "-f", "null", "-"]),
        Duration::from_secs(120),
    );
    assert!(ok, "ffmpeg failed: {err}");
    assert!(err.trim().is_empty(), "ffmpeg reported: {err}");
    let requests = server.requests.lock().unwrap().clone();
    for (path, status) in &requests {
        assert_eq!(*status, 200, "{path}");
    }
    for id in all_ids(f) {
        for n in 1..=SEGMENTS {
            let path = format!("/vod/demo/{id}/seg-{n:05}.m4s");
            assert!(
                requests.contains(&(path.clone(), 200)),
                "{path} never served"
            );
        }
    }
}

#[test]
fn every_segment_starts_with_an_idr_frame() {
    let f = fixture();
    let ffprobe = require("ffprobe");
    let scratch = f.root.join("idr-check");
    std::fs::create_dir_all(&scratch).unwrap();
    for id in representation_ids(f) {
        let init = std::fs::read(f.title.join(&id).join("init.mp4")).unwrap();
        for n in 1..=SEGMENTS {
            let seg = std::fs::read(f.title.join(format!("{id}/seg-{n:05}.m4s"))).unwrap();
            // Our own look: the first NAL unit of the first sample is an IDR slice (type 5),
            // and the trun marks that sample as a sync sample.
            let (first_nal_type, first_flags) = first_sample(&seg);
            assert_eq!(first_nal_type, 5, "{id} segment {n}: first NAL type");
            assert_eq!(
                first_flags & 0x0001_0000,
                0,
                "{id} segment {n}: first sample non-sync"
            );

            // ffprobe's look, on init + segment alone (no earlier segment to lean on).
            let joined = scratch.join(format!("{id}-{n}.mp4"));
            std::fs::write(&joined, [init.as_slice(), seg.as_slice()].concat()).unwrap();
            let (ok, out, err) = run(
                Command::new(&ffprobe)
                    .args(["-v", "error", "-select_streams", "v:0", "-show_frames"])
                    .args(["-read_intervals", "%+#1", "-show_entries"])
                    .args(["frame=key_frame,pict_type", "-of", "csv=p=0"])
                    .arg(&joined),
                Duration::from_secs(60),
            );
            assert!(
                ok && err.trim().is_empty(),
                "ffprobe on {id} segment {n}: {err}"
            );
            let first = out.lines().next().unwrap_or_default().trim().to_string();
            assert_eq!(first, "1,I", "{id} segment {n}: first frame");
        }
    }
}

/// The NAL unit type of the first sample's first NAL, and that sample's trun flags.
fn first_sample(segment: &[u8]) -> (u8, u32) {
    let mut buf = segment;
    let mut moof = None;
    let mut mdat = None;
    while !buf.is_empty() {
        match Any::decode(&mut buf).unwrap() {
            Any::Moof(m) => moof = Some(m),
            Any::Mdat(m) => mdat = Some(m),
            _ => {}
        }
    }
    let (moof, mdat) = (moof.expect("moof"), mdat.expect("mdat"));
    let trun = &moof.traf[0].trun[0];
    let flags = trun
        .samples
        .get(0)
        .and_then(|e| e.flags)
        .expect("first sample flags");
    let nal_len = u32::from_be_bytes(mdat.data[0..4].try_into().unwrap()) as usize;
    assert!(nal_len > 0 && nal_len + 4 <= mdat.data.len());
    (mdat.data[4] & 0x1f, flags)
}

#[test]
fn manifest_matches_the_files_and_init_segments() {
    let f = fixture();
    assert_eq!(f.report.frames, FRAMES);
    assert_eq!(f.report.segments, SEGMENTS);
    let xml = std::fs::read_to_string(f.title.join("manifest.mpd")).unwrap();
    let mpd = Mpd::parse(&xml).unwrap();
    assert_eq!(mpd.profiles, "urn:mpeg:dash:profile:isoff-live:2011");
    assert_eq!(
        mpd.media_presentation_duration,
        Some(Duration::from_secs(6))
    );
    let set = &mpd.periods[0].adaptation_sets[0];
    assert_eq!(set.segment_alignment, Some(true));
    assert_eq!(set.start_with_sap, Some(1));
    let base = url::Url::from_file_path(f.title.join("manifest.mpd")).unwrap();
    for (ri, rep) in set.representations.iter().enumerate() {
        let report = &f.report.representations[ri];
        assert_eq!(rep.id, report.id);
        assert_eq!(rep.sar.as_deref(), Some("1:1"));
        // @bandwidth is the measured peak: at least the average, and near the target.
        assert!(rep.bandwidth >= report.average_bitrate, "{}", rep.id);
        let target = f64::from(report.target_bitrate);
        let avg = report.average_bitrate as f64;
        assert!(
            avg > 0.5 * target && avg < 1.5 * target,
            "{}: average {avg} vs target {target}",
            rep.id
        );

        let segs = mpd.segments(0, 0, ri, &base, SegmentsAt::Vod).unwrap();
        assert_eq!(segs.media.len(), SEGMENTS);
        let init_path = segs.init.as_ref().unwrap().url.to_file_path().unwrap();
        let init = std::fs::read(&init_path).unwrap();
        let mut buf = init.as_slice();
        let _ftyp = Any::decode(&mut buf).unwrap();
        let Any::Moov(moov) = Any::decode(&mut buf).unwrap() else {
            panic!("no moov in {}", init_path.display());
        };
        assert!(moov.mvex.is_some(), "init segment without mvex");
        let mp4_atom::Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("not avc1");
        };
        let codecs = format!(
            "avc1.{:02x}{:02x}{:02x}",
            avc1.avcc.avc_profile_indication,
            avc1.avcc.profile_compatibility,
            avc1.avcc.avc_level_indication
        );
        assert_eq!(rep.codecs.as_deref(), Some(codecs.as_str()));
        assert_eq!(
            (u32::from(avc1.visual.width), u32::from(avc1.visual.height)),
            (rep.width.unwrap(), rep.height.unwrap())
        );
        let timescale = moov.trak[0].mdia.mdhd.timescale;
        assert_eq!(timescale, segs.timescale);

        // Every segment the template names exists, and its tfdt sits on the same boundary in
        // every representation: segment k starts at k * 2 s.
        for (k, seg) in segs.media.iter().enumerate() {
            let bytes = std::fs::read(seg.url.to_file_path().unwrap()).unwrap();
            let mut buf = bytes.as_slice();
            let mut tfdt = None;
            while !buf.is_empty() {
                if let Any::Moof(m) = Any::decode(&mut buf).unwrap() {
                    assert_eq!(m.mfhd.sequence_number as usize, k + 1);
                    tfdt = m.traf[0].tfdt.as_ref().map(|t| t.base_media_decode_time);
                }
            }
            assert_eq!(
                tfdt,
                Some(k as u64 * 2 * u64::from(timescale)),
                "{} segment {k}",
                rep.id
            );
        }
    }
}

#[test]
fn audio_set_matches_its_init_and_segments() {
    let f = fixture();
    let xml = std::fs::read_to_string(f.title.join("manifest.mpd")).unwrap();
    let mpd = Mpd::parse(&xml).unwrap();
    let sets = &mpd.periods[0].adaptation_sets;
    assert_eq!(sets.len(), 2, "a video and an audio AdaptationSet");
    let set = &sets[1];
    assert_eq!(set.content_type.as_deref(), Some("audio"));
    assert_eq!(set.mime_type.as_deref(), Some("audio/mp4"));
    assert_eq!(set.lang.as_deref(), Some("und"));
    assert_eq!(set.roles.len(), 1);
    assert_eq!(set.roles[0].scheme_id_uri, "urn:mpeg:dash:role:2011");
    assert_eq!(set.roles[0].value.as_deref(), Some("main"));
    let acc = &set.audio_channel_configurations;
    assert_eq!(acc.len(), 1);
    assert_eq!(
        acc[0].scheme_id_uri,
        "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
    );
    assert_eq!(acc[0].value.as_deref(), Some("2"));
    let [rep] = set.representations.as_slice() else {
        panic!("one audio Representation: {:?}", set.representations);
    };
    assert_eq!(rep.id, AUDIO_ID);
    assert_eq!(rep.audio_sampling_rate.as_deref(), Some("48000"));
    let report = &f.report.audio[0];
    assert!(rep.bandwidth >= report.average_bitrate);
    let avg = report.average_bitrate as f64;
    assert!((100_000.0..160_000.0).contains(&avg), "average {avg}");

    let base = url::Url::from_file_path(f.title.join("manifest.mpd")).unwrap();
    let segs = mpd.segments(0, 1, 0, &base, SegmentsAt::Vod).unwrap();
    assert_eq!(segs.timescale, 48_000);
    assert_eq!(segs.media.len(), SEGMENTS);
    let init = std::fs::read(segs.init.as_ref().unwrap().url.to_file_path().unwrap()).unwrap();
    let mut buf = init.as_slice();
    let _ftyp = Any::decode(&mut buf).unwrap();
    let Any::Moov(moov) = Any::decode(&mut buf).unwrap() else {
        panic!("no moov in the audio init segment");
    };
    let trak = &moov.trak[0];
    assert_eq!(trak.mdia.mdhd.timescale, 48_000);
    let mp4_atom::Codec::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("not mp4a");
    };
    assert_eq!(mp4a.audio.channel_count, 2);
    let dsi = mp4a.esds.es_desc.dec_config.dec_specific.as_ref().unwrap();
    // The codecs string is the esds object type indication (0x40, MPEG-4 Audio) and the
    // AudioSpecificConfig's object type.
    assert_eq!(mp4a.esds.es_desc.dec_config.object_type_indication, 0x40);
    let codecs = format!("mp4a.40.{}", dsi.profile);
    assert_eq!(rep.codecs.as_deref(), Some(codecs.as_str()));
    assert_eq!(codecs, "mp4a.40.2");
    assert_eq!((dsi.freq_index, dsi.chan_conf), (3, 2));

    // Segment k starts at the AAC frame nearest to k * 2 s (93.75 frames per segment): the
    // tfdts are exact, the lengths differ by at most a frame, and they add up to the track.
    let mut frames = Vec::new();
    for (k, seg) in segs.media.iter().enumerate() {
        let bytes = std::fs::read(seg.url.to_file_path().unwrap()).unwrap();
        let mut buf = bytes.as_slice();
        while !buf.is_empty() {
            if let Any::Moof(m) = Any::decode(&mut buf).unwrap() {
                assert_eq!(m.mfhd.sequence_number as usize, k + 1);
                let traf = &m.traf[0];
                let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
                let nearest = ((k as f64 * 93.75).round() as u64) * 1024;
                assert_eq!(tfdt, nearest, "audio segment {k}");
                assert!(traf.trun[0].samples.iter().all(|s| s.duration.is_none()));
                assert_eq!(traf.tfhd.default_sample_duration, Some(1024));
                frames.push(traf.trun[0].samples.len() as u64);
            }
        }
    }
    assert_eq!(frames, [94, 94, 93]);
    assert_eq!(frames.iter().sum::<u64>(), AUDIO_FRAMES);
}

#[test]
fn transcodes_a_user_video_with_ffmpeg() {
    let ffmpeg = require("ffmpeg");
    let ffprobe = require("ffprobe");
    let dir = std::env::temp_dir().join(format!("media-package-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A 2.5 s, 25 fps, 4:3 clip with English mono sound at 44.1 kHz; the packager resamples
    // the pictures to 30 fps and letterboxes them, and the sound to 48 kHz stereo.
    let input = dir.join("input.mkv");
    let (ok, _, err) = run(
        Command::new(&ffmpeg)
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .args(["testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i"])
            .args([
                "sine=frequency=440:sample_rate=44100",
                "-t",
                "2.5",
                "-c:v",
                "ffv1",
            ])
            .args(["-c:a", "flac", "-metadata:s:a:0", "language=eng"])
            .arg(&input),
        Duration::from_secs(60),
    );
    assert!(ok, "making the input clip: {err}");
    let title = dir.join("vod/clip");
    let opts = Options {
        input: Some(input),
        fps: FPS,
        segment: 1.0,
        ladder: Ladder::parse(
            "[[rendition]]\nid = \"v\"\nwidth = 256\nheight = 144\nbitrate_kbps = 200\n",
            "test",
        )
        .unwrap(),
        progress: false,
        ..Options::new(&title)
    };
    let report = package(&opts).unwrap();
    // 2.5 s at 30 fps, give or take the frame ffmpeg's fps filter adds or drops at the end.
    assert!(
        (74..=76).contains(&report.frames),
        "{} frames",
        report.frames
    );
    assert_eq!(report.segments, 3);
    let (ok, out, err) = run(
        Command::new(&ffprobe)
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .args([
                "stream=width,height,nb_read_frames",
                "-select_streams",
                "v",
                "-of",
                "csv=p=0",
            ])
            .arg(title.join("manifest.mpd")),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    // One line for the stream, repeated under its program.
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "ffprobe printed nothing");
    let expected = format!("256,144,{}", report.frames);
    assert!(lines.iter().all(|l| l.trim() == expected), "{out}");
    // The input's sound: its language (ISO 639-2 `eng` becomes BCP 47 `en`), 2.5 s of AAC.
    assert_eq!(report.audio.len(), 1);
    assert_eq!(report.audio[0].lang, "en");
    let mpd = Mpd::parse(&std::fs::read_to_string(title.join("manifest.mpd")).unwrap()).unwrap();
    let sets = &mpd.periods[0].adaptation_sets;
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[1].lang.as_deref(), Some("en"));
    let (ok, out, err) = run(
        Command::new(&ffprobe)
            .args(["-v", "error", "-count_frames", "-select_streams", "a"])
            .args([
                "-show_entries",
                "stream=codec_name,sample_rate,channels,nb_read_frames",
            ])
            .args(["-of", "csv=p=0"])
            .arg(title.join("manifest.mpd")),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    // 2.5 s of pictures at 30 fps (75 frames) is 117.19 AAC frames at 48 kHz: 117.
    let expected = format!(
        "aac,48000,2,{}",
        (report.frames * 48_000 * 2 + 30 * 1024) / (2 * 30 * 1024)
    );
    assert_eq!(
        out.lines().next().map(str::trim),
        Some(expected.as_str()),
        "{out}"
    );

    // A file without sound gives a title without audio.
    let silent = dir.join("silent.mkv");
    let (ok, _, err) = run(
        Command::new(&ffmpeg)
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .args(["testsrc2=size=320x240:rate=25", "-t", "1", "-c:v", "ffv1"])
            .arg(&silent),
        Duration::from_secs(60),
    );
    assert!(ok, "making the silent clip: {err}");
    let silent_title = dir.join("vod/silent");
    let report = package(&Options {
        input: Some(silent),
        out: silent_title.clone(),
        ..opts.clone()
    })
    .unwrap();
    assert!(report.audio.is_empty());
    let mpd =
        Mpd::parse(&std::fs::read_to_string(silent_title.join("manifest.mpd")).unwrap()).unwrap();
    assert_eq!(mpd.periods[0].adaptation_sets.len(), 1);

    // Not a video: the error carries ffmpeg's own diagnosis, and no manifest is left behind.
    let bogus = dir.join("notes.txt");
    std::fs::write(&bogus, "this is not a video\n").unwrap();
    let err = package(&Options {
        input: Some(bogus),
        ..opts.clone()
    })
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("ffmpeg could not decode"), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
    assert!(!title.join("manifest.mpd").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
