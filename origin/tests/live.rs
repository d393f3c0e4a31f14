//! Live channels over real sockets, on an injected clock: the dynamic MPD's fields, the
//! availability window (404 before and after, 200 inside), continuous numbering across loops of
//! the VOD title, re-timed decode times, and the UTCTiming endpoint.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpd::{Mpd, PresentationType};
use support::*;

const TIMESCALE: u64 = 1000;
const SEG: u64 = 2000; // 2 s
const COUNT: u64 = 3;

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

/// A media segment: styp + moof(mfhd, traf(tfhd default-base-is-moof, tfdt v1, trun)) + mdat.
fn media_segment(seq: u32, tfdt: u64, payload: &[u8]) -> Vec<u8> {
    let styp = bx(b"styp", b"msdh\0\0\0\0msdhmsix");
    let mfhd = bx(b"mfhd", &[&[0u8, 0, 0, 0][..], &seq.to_be_bytes()].concat());
    let tfhd = bx(b"tfhd", &[0, 0x02, 0, 0, 0, 0, 0, 1]);
    let tfdt = bx(
        b"tfdt",
        &[&[1u8, 0, 0, 0][..], &tfdt.to_be_bytes()].concat(),
    );
    let trun = bx(b"trun", &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    let traf = bx(b"traf", &[tfhd, tfdt, trun].concat());
    let mut moof = bx(b"moof", &[mfhd, traf].concat());
    let off = (moof.len() + 8) as u32;
    let at = moof.len() - 4;
    moof[at..].copy_from_slice(&off.to_be_bytes());
    [styp, moof, bx(b"mdat", payload)].concat()
}

fn init_segment() -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"iso6\0\0\0\0iso6dash");
    let mvhd = bx(b"mvhd", &[0; 100]);
    let mehd = bx(b"mehd", &[0, 0, 0, 0, 0, 0, 0x17, 0x70]);
    let trex = bx(b"trex", &[0; 24]);
    let moov = bx(
        b"moov",
        &[mvhd, bx(b"mvex", &[mehd, trex].concat())].concat(),
    );
    [ftyp, moov].concat()
}

/// Reads (mfhd sequence, tfdt) of a segment.
fn timing(seg: &[u8]) -> (u32, u64) {
    let find = |b: &[u8], kind: &[u8; 4]| -> usize {
        b.windows(4)
            .position(|w| w == kind)
            .unwrap_or_else(|| panic!("no {kind:?}"))
    };
    let m = find(seg, b"mfhd");
    let seq = u32::from_be_bytes(seg[m + 8..m + 12].try_into().unwrap());
    let t = find(seg, b"tfdt");
    assert_eq!(seg[t + 4], 1);
    let tfdt = u64::from_be_bytes(seg[t + 8..t + 16].try_into().unwrap());
    (seq, tfdt)
}

fn vod_mpd() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011"
     minBufferTime="PT4S" mediaPresentationDuration="PT6S">
  <Period id="p0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="{TIMESCALE}" duration="{SEG}" startNumber="1"
          initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number%05d$.m4s"/>
      <Representation id="v1" bandwidth="500000" codecs="avc1.64001e" width="640" height="360"/>
      <Representation id="v2" bandwidth="1500000" codecs="avc1.64001f" width="1280" height="720"/>
    </AdaptationSet>
  </Period>
</MPD>
"#
    )
}

fn payload(rep: &str, n: u64) -> Vec<u8> {
    format!("{rep}-segment-{n}-").repeat(50).into_bytes()
}

fn live_content() -> Content {
    let c = content("live");
    c.dir
        .write("root/vod/loop/manifest.mpd", vod_mpd().as_bytes());
    for rep in ["v1", "v2"] {
        c.dir
            .write(&format!("root/vod/loop/{rep}/init.mp4"), &init_segment());
        for n in 1..=COUNT {
            let seg = media_segment(n as u32, (n - 1) * SEG, &payload(rep, n));
            c.dir
                .write(&format!("root/vod/loop/{rep}/seg-{n:05}.m4s"), &seg);
        }
    }
    c
}

fn ast() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_689_600) // 2025-01-01T00:00:00Z
}

async fn start_live(c: &Content, clock: Arc<origin::ManualClock>) -> origin::Origin {
    let mut cfg = config(&c.root);
    cfg.channels.insert(
        "news".into(),
        origin::config::ChannelConfig::Title("loop".into()),
    );
    cfg.live.time_shift_buffer_depth_secs = 30.0;
    cfg.live.suggested_presentation_delay_secs = 6.0;
    cfg.live.minimum_update_period_secs = 2.0;
    origin::spawn_with_clock(cfg, clock).await.unwrap()
}

#[tokio::test]
async fn dynamic_mpd() {
    let c = live_content();
    let clock = Arc::new(origin::ManualClock::new(
        ast() + Duration::from_millis(100_500),
    ));
    let o = start_live(&c, clock.clone()).await;
    let a = o.local_addr();
    let r = get(a, "/live/news/manifest.mpd", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.h("content-type"), "application/dash+xml");
    let max_age: u64 = r
        .h("cache-control")
        .strip_prefix("public, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age <= 1,
        "live MPD max-age {max_age} is more than half a 2 s segment"
    );
    let mpd = Mpd::parse(&r.text()).unwrap();
    assert_eq!(mpd.presentation_type, PresentationType::Dynamic);
    let ast_field: SystemTime = mpd.availability_start_time.unwrap().into();
    assert_eq!(ast_field, ast());
    let publish: SystemTime = mpd.publish_time.unwrap().into();
    assert_eq!(
        publish,
        ast() + Duration::from_secs(100),
        "publishTime = start of the newest segment"
    );
    assert_eq!(mpd.minimum_update_period, Some(Duration::from_secs(2)));
    assert_eq!(mpd.time_shift_buffer_depth, Some(Duration::from_secs(30)));
    assert_eq!(
        mpd.suggested_presentation_delay,
        Some(Duration::from_secs(6))
    );
    assert!(mpd.media_presentation_duration.is_none());
    assert_eq!(mpd.utc_timings.len(), 1);
    assert_eq!(
        mpd.utc_timings[0].scheme_id_uri,
        "urn:mpeg:dash:utc:http-iso:2014"
    );
    assert_eq!(
        mpd.utc_timings[0].value.as_deref(),
        Some("http://origin.test/time")
    );
    let period = &mpd.periods[0];
    assert!(period.id.is_some());
    assert_eq!(period.start, Some(Duration::ZERO));
    let t = period.adaptation_sets[0].segment_template.as_ref().unwrap();
    assert_eq!(t.duration, Some(SEG as u32));
    assert_eq!(t.timescale, Some(TIMESCALE as u32));
    assert_eq!(t.start_number, Some(1));
    assert_eq!(t.media.as_deref(), Some("$RepresentationID$/$Number$.m4s"));

    // The same segment period gives the same document: revalidation works.
    let again = get(
        a,
        "/live/news/manifest.mpd",
        &[("If-None-Match", r.h("etag"))],
    )
    .await;
    assert_eq!(again.status, 304);

    // Later: AST fixed, publishTime moves.
    clock.advance(Duration::from_secs(7));
    let later = get(
        a,
        "/live/news/manifest.mpd",
        &[("If-None-Match", r.h("etag"))],
    )
    .await;
    assert_eq!(later.status, 200);
    let mpd2 = Mpd::parse(&later.text()).unwrap();
    assert_eq!(mpd2.availability_start_time, mpd.availability_start_time);
    let publish2: SystemTime = mpd2.publish_time.unwrap().into();
    assert_eq!(publish2, ast() + Duration::from_secs(106));

    // The advertised time endpoint follows the injected clock.
    let t = get(a, "/time", &[]).await;
    assert_eq!(t.text(), "2025-01-01T00:01:47.500Z");

    // A channel that is not configured falls through to storage (and is not there).
    assert_eq!(get(a, "/live/other/manifest.mpd", &[]).await.status, 404);
    o.shutdown().await;
}

/// Validates an MPD file against the DASH schema with xmllint.
fn assert_schema_valid(file: &std::path::Path) {
    let xmllint = common::tools::require("xmllint");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/mpd/tests/schema");
    let out = std::process::Command::new(xmllint)
        .env("XML_CATALOG_FILES", format!("{schema}/catalog.xml"))
        .args([
            "--nonet",
            "--noout",
            "--schema",
            &format!("{schema}/DASH-MPD.xsd"),
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmllint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn live_mpd_is_schema_valid() {
    let c = live_content();
    let clock = Arc::new(origin::ManualClock::new(ast() + Duration::from_secs(1000)));
    let o = start_live(&c, clock).await;
    let r = get(o.local_addr(), "/live/news/manifest.mpd", &[]).await;
    let file = c.dir.path().join("live.mpd");
    std::fs::write(&file, &r.body).unwrap();
    assert_schema_valid(&file);
    o.shutdown().await;
}

#[tokio::test]
async fn availability_window_and_continuous_numbers() {
    let c = live_content();
    // 100.5 s after AST: segments ending in [70.5 s, 100.5 s] are available, i.e. N = 36..=50.
    let clock = Arc::new(origin::ManualClock::new(
        ast() + Duration::from_millis(100_500),
    ));
    let o = start_live(&c, clock.clone()).await;
    let a = o.local_addr();

    let future = get(a, "/live/news/v1/51.m4s", &[]).await;
    assert_eq!(
        future.status, 404,
        "segment 51 ends at 102 s, not yet available"
    );
    assert_eq!(future.h("cache-control"), "public, max-age=1");
    let expired = get(a, "/live/news/v1/35.m4s", &[]).await;
    assert_eq!(
        expired.status, 404,
        "segment 35 ended at 70 s, outside the 30 s window"
    );
    for n in [36u64, 49, 50] {
        let r = get(a, &format!("/live/news/v1/{n}.m4s"), &[]).await;
        assert_eq!(r.status, 200, "segment {n}");
        assert_eq!(r.h("content-type"), "video/mp4");
        assert_eq!(r.h("cache-control"), "public, max-age=31536000, immutable");
        assert_eq!(r.h("content-length"), r.body.len().to_string());
        let (seq, tfdt) = timing(&r.body);
        assert_eq!(seq, n as u32);
        assert_eq!(
            tfdt,
            (n - 1) * SEG,
            "segment {n} decode time on the live timeline"
        );
        let vod = (n - 1) % COUNT + 1;
        assert!(
            r.body.ends_with(&payload("v1", vod)),
            "segment {n} carries VOD segment {vod}"
        );
    }

    // Time passes: 51 becomes available, 36 leaves the window.
    clock.advance(Duration::from_secs(2));
    assert_eq!(get(a, "/live/news/v2/51.m4s", &[]).await.status, 200);
    assert_eq!(get(a, "/live/news/v2/36.m4s", &[]).await.status, 404);

    // Consecutive numbers are consecutive in time across the loop boundary.
    let mut last = None;
    for n in 44..=51u64 {
        let (_, t) = timing(&get(a, &format!("/live/news/v2/{n}.m4s"), &[]).await.body);
        if let Some(prev) = last {
            assert_eq!(t, prev + SEG, "gap before segment {n}");
        }
        last = Some(t);
    }

    // Validators, conditionals and ranges apply to live segments too.
    let full = get(a, "/live/news/v1/50.m4s", &[]).await;
    let reval = get(
        a,
        "/live/news/v1/50.m4s",
        &[("If-None-Match", full.h("etag"))],
    )
    .await;
    assert_eq!(reval.status, 304);
    let other = get(a, "/live/news/v1/47.m4s", &[]).await;
    assert_ne!(
        other.h("etag"),
        full.h("etag"),
        "the same VOD segment under two numbers has two ETags"
    );
    let part = get(a, "/live/news/v1/50.m4s", &[("Range", "bytes=10-199")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &full.body[10..200]);
    let tail = get(a, "/live/news/v1/50.m4s", &[("Range", "bytes=-20")]).await;
    assert_eq!(tail.body, &full.body[full.body.len() - 20..]);

    // Bad numbers and unknown representations are plain 404s.
    for p in [
        "/live/news/v1/0.m4s",
        "/live/news/v1/abc.m4s",
        "/live/news/v9/50.m4s",
        "/live/news/v1/99999999999999999999.m4s",
    ] {
        assert_eq!(get(a, p, &[]).await.status, 404, "{p}");
    }
    let live404 = metric(
        a,
        "origin_http_requests_total",
        &[("status", "404"), ("kind", "segment")],
    )
    .await;
    assert!(live404 >= 3.0);
    o.shutdown().await;
}

#[tokio::test]
async fn live_init_has_no_total_duration() {
    let c = live_content();
    let clock = Arc::new(origin::ManualClock::new(ast() + Duration::from_secs(50)));
    let o = start_live(&c, clock).await;
    let r = get(o.local_addr(), "/live/news/v1/init.mp4", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.h("cache-control"), "public, max-age=31536000, immutable");
    assert!(
        r.body.windows(4).all(|w| w != b"mehd"),
        "mehd left in the live init segment"
    );
    assert!(r.body.windows(4).any(|w| w == b"trex"));
    assert_eq!(r.body.len(), init_segment().len() - 16);
    o.shutdown().await;
}

#[tokio::test]
async fn before_availability_start_nothing_is_available() {
    let c = live_content();
    let clock = Arc::new(origin::ManualClock::new(ast() - Duration::from_secs(5)));
    let o = start_live(&c, clock.clone()).await;
    let a = o.local_addr();
    assert_eq!(get(a, "/live/news/manifest.mpd", &[]).await.status, 200);
    assert_eq!(get(a, "/live/news/v1/1.m4s", &[]).await.status, 404);
    clock.set(ast() + Duration::from_secs(2));
    assert_eq!(
        get(a, "/live/news/v1/1.m4s", &[]).await.status,
        200,
        "segment 1 ends at AST + 2 s"
    );
    o.shutdown().await;
}

#[tokio::test]
async fn broken_vod_title_is_a_clear_error() {
    let c = live_content();
    c.dir
        .write("root/vod/bad/manifest.mpd", b"<MPD><Period><oops");
    let mut cfg = config(&c.root);
    cfg.channels.insert(
        "bad".into(),
        origin::config::ChannelConfig::Title("bad".into()),
    );
    cfg.channels.insert(
        "gone".into(),
        origin::config::ChannelConfig::Title("gone".into()),
    );
    let o = origin::spawn(cfg).await.unwrap();
    assert_eq!(
        get(o.local_addr(), "/live/bad/manifest.mpd", &[])
            .await
            .status,
        500
    );
    assert_eq!(
        get(o.local_addr(), "/live/gone/manifest.mpd", &[])
            .await
            .status,
        404
    );
    o.shutdown().await;
}

/// The looped title with a sound track: an audio AdaptationSet (48 kHz, 2 s segments).
fn live_content_with_audio() -> Content {
    let c = live_content();
    let audio_set = r#"    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="en" segmentAlignment="true" startWithSAP="1">
      <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
      <SegmentTemplate timescale="48000" duration="96000" startNumber="1"
          initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number%05d$.m4s"/>
      <Representation id="audio" bandwidth="130000" codecs="mp4a.40.2" audioSamplingRate="48000"/>
    </AdaptationSet>
  </Period>"#;
    let mpd = vod_mpd().replace("  </Period>", audio_set);
    c.dir.write("root/vod/loop/manifest.mpd", mpd.as_bytes());
    c.dir.write("root/vod/loop/audio/init.mp4", &init_segment());
    for n in 1..=COUNT {
        let seg = media_segment(n as u32, (n - 1) * 96_000, &payload("audio", n));
        c.dir
            .write(&format!("root/vod/loop/audio/seg-{n:05}.m4s"), &seg);
    }
    c
}

/// (media sequence, [(uri, EXTINF, PROGRAM-DATE-TIME)]) of a live media playlist.
fn media_playlist(text: &str) -> (u64, u64, Vec<(String, f32, SystemTime)>) {
    let m3u8_rs::Playlist::MediaPlaylist(p) =
        m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
    else {
        panic!("not a media playlist:\n{text}");
    };
    assert!(!p.end_list, "a live playlist has no EXT-X-ENDLIST");
    assert!(p.playlist_type.is_none());
    let segs = p
        .segments
        .iter()
        .map(|s| {
            let pdt = s.program_date_time.expect("EXT-X-PROGRAM-DATE-TIME");
            (s.uri.clone(), s.duration, SystemTime::from(pdt))
        })
        .collect();
    (p.media_sequence, p.target_duration, segs)
}

#[tokio::test]
async fn hls_live_matches_the_mpd_timeline() {
    let c = live_content_with_audio();
    let clock = Arc::new(origin::ManualClock::new(
        ast() + Duration::from_millis(100_500),
    ));
    let o = start_live(&c, clock.clone()).await;
    let a = o.local_addr();

    let master = get(a, "/live/news/master.m3u8", &[]).await;
    assert_eq!(master.status, 200, "{}", master.text());
    assert_eq!(master.h("content-type"), "application/vnd.apple.mpegurl");
    let text = master.text();
    let m3u8_rs::Playlist::MasterPlaylist(m) =
        m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap()
    else {
        panic!("not a multivariant playlist:\n{text}");
    };
    assert!(m.independent_segments);
    assert_eq!(m.variants.len(), 2, "{text}");
    assert_eq!(m.variants[0].uri, "v1.m3u8");
    assert_eq!(m.variants[0].bandwidth, 500_000 + 130_000, "audio counted");
    assert_eq!(
        m.variants[0].codecs.as_deref(),
        Some("avc1.64001e,mp4a.40.2")
    );
    assert_eq!(m.variants[0].audio.as_deref(), Some("audio"));
    assert_eq!(m.alternatives.len(), 1);
    assert_eq!(m.alternatives[0].uri.as_deref(), Some("audio.m3u8"));
    assert!(m.alternatives[0].default && m.alternatives[0].autoselect);
    assert_eq!(m.alternatives[0].language.as_deref(), Some("en"));
    assert_eq!(m.alternatives[0].channels.as_deref(), Some("2"), "{text}");

    let mpd_resp = get(a, "/live/news/manifest.mpd", &[]).await;
    let mpd = Mpd::parse(&mpd_resp.text()).unwrap();
    let base = mpd::Url::parse(&format!("http://{a}/live/news/manifest.mpd")).unwrap();
    let now = clock_now(&clock);
    for (ai, ri, rep) in [(0, 0, "v1"), (0, 1, "v2"), (1, 0, "audio")] {
        let r = get(a, &format!("/live/news/{rep}.m3u8"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.h("content-type"), "application/vnd.apple.mpegurl");
        let max_age: u64 = r
            .h("cache-control")
            .strip_prefix("public, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        let (seq, target, segs) = media_playlist(&r.text());
        assert!(max_age * 2 <= target, "max-age {max_age}, target {target}");
        let dash = mpd
            .segments(0, ai, ri, &base, mpd::SegmentsAt::Live(now))
            .unwrap()
            .media;
        assert_eq!(segs.len(), dash.len(), "{rep}: the same window as the MPD");
        assert_eq!(seq, dash[0].number, "{rep}: media sequence = first number");
        for ((uri, extinf, pdt), d) in segs.iter().zip(&dash) {
            assert_eq!(
                format!("http://{a}/live/news/{uri}"),
                d.url.as_str(),
                "{rep}: same segment URL"
            );
            assert!(f64::from(*extinf).round() as u64 <= target);
            // The segment's start on the MPD's wall clock, to the millisecond; it becomes
            // available (in both) when it ends.
            let start = ast() + Duration::from_secs_f64(d.start);
            let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
            assert_eq!(ms(*pdt), ms(start), "{rep} segment {}", d.number);
            let available = start + Duration::from_secs_f64(d.duration);
            assert!(available <= now);
            assert_eq!(
                ms(*pdt + Duration::from_secs_f64(f64::from(*extinf))),
                ms(available)
            );
        }
        // The newest segment is fetchable, one past it is not yet.
        let (last_uri, _, _) = segs.last().unwrap();
        let seg = get(a, &format!("/live/news/{last_uri}"), &[]).await;
        assert_eq!(seg.status, 200);
        let want = if rep == "audio" {
            "audio/mp4"
        } else {
            "video/mp4"
        };
        assert_eq!(seg.h("content-type"), want);
    }
}

fn clock_now(clock: &origin::ManualClock) -> SystemTime {
    use common::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn hls_live_playlist_revalidates_and_slides() {
    let c = live_content_with_audio();
    let clock = Arc::new(origin::ManualClock::new(
        ast() + Duration::from_millis(100_100),
    ));
    let o = start_live(&c, clock.clone()).await;
    let a = o.local_addr();
    let first = get(a, "/live/news/v1.m3u8", &[]).await;
    assert_eq!(first.status, 200);
    let etag = first.h("etag").to_string();
    assert!(!first.h("last-modified").is_empty());
    let (seq0, _, segs0) = media_playlist(&first.text());
    // 30 s of time shift over 2 s segments: 15 listed.
    assert_eq!(segs0.len(), 15);

    // Within the same segment: the same document, 304.
    clock.advance(Duration::from_millis(1_800));
    let again = get(a, "/live/news/v1.m3u8", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert_eq!(again.h("etag"), etag);

    // Across refreshes the window slides and the media sequence never goes back.
    let mut prev = seq0;
    for _ in 0..10 {
        clock.advance(Duration::from_millis(730));
        let r = get(a, "/live/news/v1.m3u8", &[]).await;
        let (seq, _, segs) = media_playlist(&r.text());
        assert!(seq >= prev, "media sequence {seq} after {prev}");
        assert_eq!(segs.len(), 15);
        assert_eq!(segs[0].0, format!("v1/{seq}.m4s"));
        prev = seq;
    }
    assert!(prev > seq0);
    let moved = get(a, "/live/news/v1.m3u8", &[("If-None-Match", &etag)]).await;
    assert_eq!(moved.status, 200);
}

/// A real title made by ffmpeg (two H.264 rungs, AAC), looped as channel `news`: ffprobe on the
/// live `master.m3u8` over HTTP sees both video rungs and the audio stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_the_live_hls_channel() {
    let ffmpeg = common::tools::require("ffmpeg");
    let ffprobe = common::tools::require("ffprobe");
    let c = content("live-hls-ffprobe");
    let title = c.root.join("vod/loop");
    std::fs::create_dir_all(&title).unwrap();
    let status = tokio::process::Command::new(&ffmpeg)
        .current_dir(&title)
        .args(["-nostdin", "-v", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "6", "-map", "0:v", "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            "60",
            "-keyint_min",
            "60",
        ])
        .args(["-sc_threshold", "0", "-b:v:0", "200k", "-b:v:1", "400k"])
        .args([
            "-s:v:1", "480x270", "-c:a", "aac", "-ac", "2", "-b:a", "128k",
        ])
        .args(["-f", "dash", "-seg_duration", "2", "-use_timeline", "0"])
        .args([
            "-use_template",
            "1",
            "-adaptation_sets",
            "id=0,streams=v id=1,streams=a",
        ])
        .arg("manifest.mpd")
        .status()
        .await
        .unwrap();
    assert!(status.success(), "ffmpeg could not make the title");
    // ffmpeg's templates count in microseconds; the origin re-times tfdt in the template's
    // timescale, so state the tracks' own (15360 for 30 fps video, the sample rate for AAC).
    let mpd = std::fs::read_to_string(title.join("manifest.mpd")).unwrap();
    let at = mpd
        .find(r#"<Representation id="2""#)
        .expect("audio Representation");
    let micro = r#"timescale="1000000" duration="2000000""#;
    let mpd = mpd[..at].replace(micro, r#"timescale="15360" duration="30720""#)
        + &mpd[at..].replace(micro, r#"timescale="48000" duration="96000""#);
    std::fs::write(title.join("manifest.mpd"), mpd).unwrap();

    let clock = Arc::new(origin::ManualClock::new(
        ast() + Duration::from_millis(100_500),
    ));
    let o = start_live(&c, clock).await;
    let url = format!("http://{}/live/news/master.m3u8", o.local_addr());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&ffprobe)
            .args(["-v", "error", "-show_entries"])
            .args([
                "stream=codec_type,codec_name,width,height,sample_rate",
                "-of",
                "csv=p=0",
            ])
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finished")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l.starts_with("h264,video,320,180")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("h264,video,480,270")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("aac,audio")), "{text}");
}

/// A 2 s segment of 20 samples of 100 ticks (timescale 1000), sample `s` being 40 bytes of
/// `s` after a marker of the representation and number: what a low-latency channel cuts into
/// 0.5 s chunks of 5 samples.
fn ll_segment(seq: u32, tfdt: u64, rep: &str, n: u64) -> Vec<u8> {
    let styp = bx(b"styp", b"msdh\0\0\0\0msdhmsix");
    let mfhd = bx(b"mfhd", &[&[0u8, 0, 0, 0][..], &seq.to_be_bytes()].concat());
    let tfhd = bx(b"tfhd", &[0, 0x02, 0, 0, 0, 0, 0, 1]);
    let tfdt = bx(
        b"tfdt",
        &[&[1u8, 0, 0, 0][..], &tfdt.to_be_bytes()].concat(),
    );
    // trun flags: data offset, duration, size.
    let mut trun = vec![0u8, 0, 0x03, 0x01];
    trun.extend_from_slice(&20u32.to_be_bytes());
    trun.extend_from_slice(&0u32.to_be_bytes());
    for _ in 0..20 {
        trun.extend_from_slice(&100u32.to_be_bytes());
        trun.extend_from_slice(&40u32.to_be_bytes());
    }
    let trun = bx(b"trun", &trun);
    let traf = bx(b"traf", &[tfhd, tfdt, trun].concat());
    let mut moof = bx(b"moof", &[mfhd, traf].concat());
    let off = (moof.len() + 8) as u32;
    // The data offset is the trun's first field after the sample count.
    let trun_at = moof.windows(4).position(|w| w == b"trun").unwrap() + 12;
    moof[trun_at..trun_at + 4].copy_from_slice(&off.to_be_bytes());
    let mut payload = Vec::new();
    for s in 0..20u8 {
        let mut sample = format!("{rep}:{n}:{s:02}:").into_bytes();
        sample.resize(40, s);
        payload.extend_from_slice(&sample);
    }
    [styp, moof, bx(b"mdat", &payload)].concat()
}

fn ll_content() -> Content {
    let c = content("ll");
    c.dir
        .write("root/vod/loop/manifest.mpd", vod_mpd().as_bytes());
    for rep in ["v1", "v2"] {
        c.dir
            .write(&format!("root/vod/loop/{rep}/init.mp4"), &init_segment());
        for n in 1..=COUNT {
            let seg = ll_segment(n as u32, (n - 1) * SEG, rep, n);
            c.dir
                .write(&format!("root/vod/loop/{rep}/seg-{n:05}.m4s"), &seg);
        }
    }
    c
}

/// An origin with the low-latency channel `ll` of `c`, on a clock `ms` after its
/// availabilityStartTime.
async fn start_ll(c: &Content, ms: u64) -> (origin::Origin, Arc<origin::ManualClock>) {
    let clock = Arc::new(origin::ManualClock::new(ast() + Duration::from_millis(ms)));
    let mut cfg = config(&c.root);
    cfg.channels.insert(
        "ll".into(),
        origin::config::ChannelConfig::Full(origin::config::ChannelTable {
            title: "loop".into(),
            time_shift_buffer_depth_secs: None,
            suggested_presentation_delay_secs: None,
            minimum_update_period_secs: None,
            availability_start_time: None,
            chunk_secs: Some(0.5),
            target_latency_secs: None,
        }),
    );
    (
        origin::spawn_with_clock(cfg, clock.clone()).await.unwrap(),
        clock,
    )
}

/// The top-level boxes of `b`: (type, start, end).
fn top_boxes(b: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= b.len() {
        let size = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && pos + size <= b.len(), "bad box at {pos}");
        out.push((
            String::from_utf8_lossy(&b[pos + 4..pos + 8]).into_owned(),
            pos,
            pos + size,
        ));
        pos += size;
    }
    assert_eq!(pos, b.len(), "trailing bytes");
    out
}

/// A GET over HTTP/1.1 whose body is read as it arrives: the head, the decoded body, and when
/// (since the request) each decoded byte count was reached.
async fn timed_get(addr: std::net::SocketAddr, target: &str) -> (Resp, Vec<(Duration, usize)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t0 = std::time::Instant::now();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("response stalled for 10 s")
            .unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        arrivals.push((t0.elapsed(), raw.len()));
    }
    let mut resp = parse_response(&raw);
    let head_len = raw.len() - resp.body.len();
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        // Decode, mapping each raw arrival to the decoded bytes complete by then.
        let body = resp.body.clone();
        let mut decoded = Vec::new();
        let mut marks = Vec::new(); // (raw end offset of a chunk, decoded len)
        let mut pos = 0;
        loop {
            let line_end = pos + body[pos..].windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[pos..line_end]).unwrap(), 16)
                    .unwrap();
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&body[pos..pos + size]);
            pos += size + 2;
            marks.push((head_len + pos, decoded.len()));
        }
        resp.body = decoded;
        let timed = arrivals
            .iter()
            .map(|(t, raw_len)| {
                let done = marks
                    .iter()
                    .filter(|(end, _)| end <= raw_len)
                    .map(|(_, d)| *d)
                    .max()
                    .unwrap_or(0);
                (*t, done)
            })
            .collect();
        return (resp, timed);
    }
    let timed = arrivals
        .iter()
        .map(|(t, n)| (*t, n.saturating_sub(head_len)))
        .collect();
    (resp, timed)
}

#[tokio::test]
async fn low_latency_mpd_signals_chunked_availability() {
    let c = ll_content();
    let (o, _) = start_ll(&c, 100_000).await;
    let r = get(o.local_addr(), "/live/ll/manifest.mpd", &[]).await;
    assert_eq!(r.status, 200);
    let mpd = Mpd::parse(&r.text()).unwrap();
    let t = mpd.periods[0].adaptation_sets[0]
        .segment_template
        .as_ref()
        .unwrap();
    assert_eq!(t.availability_time_offset, Some(1.5));
    assert_eq!(t.availability_time_complete, Some(false));
    let sd = &mpd.service_descriptions[0];
    assert_eq!(sd.latency.as_ref().unwrap().target, Some(1500));
    assert_eq!(sd.playback_rate.as_ref().unwrap().min, Some(0.9));
    assert_eq!(sd.playback_rate.as_ref().unwrap().max, Some(1.1));
    let prt = &mpd.periods[0].adaptation_sets[0].producer_reference_times[0];
    assert_eq!(prt.wall_clock_time, "2025-01-01T00:00:00.000Z");
    assert_eq!(prt.presentation_time, 0);
    assert!(!mpd.utc_timings.is_empty());
    let file = c.dir.path().join("ll.mpd");
    std::fs::write(&file, &r.body).unwrap();
    assert_schema_valid(&file);
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_latency_segment_streams_its_chunks_as_they_are_produced() {
    let c = ll_content();
    // 0.6 s into segment 51 (k = 50): its first chunk is out, the second at +0.4 s.
    let (o, clock) = start_ll(&c, 100_600).await;
    let addr = o.local_addr();
    let (r, timed) = timed_get(addr, "/live/ll/v1/51.m4s").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_none(), "{:?}", r.headers);
    assert_eq!(r.h("transfer-encoding"), "chunked");
    assert_eq!(r.h("content-type"), "video/mp4");
    let boxes = top_boxes(&r.body);
    let kinds: Vec<&str> = boxes.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "styp", "prft", "moof", "mdat", "prft", "moof", "mdat", "prft", "moof", "mdat", "prft",
            "moof", "mdat"
        ]
    );
    // Chunk i ends at the end of the (3i+3)-th box after styp; it arrives at 0.5i - 0.1 s.
    let chunk_end = |i: usize| boxes[1 + 3 * i + 2].2;
    let at = |bytes: usize| {
        timed
            .iter()
            .find(|(_, n)| *n >= bytes)
            .map(|(t, _)| *t)
            .unwrap()
    };
    assert!(at(chunk_end(0)) < Duration::from_millis(250), "{timed:?}");
    for i in 1..4 {
        let due = Duration::from_millis(500 * i as u64 - 100);
        let got = at(chunk_end(i));
        assert!(
            got + Duration::from_millis(60) >= due && got < due + Duration::from_millis(300),
            "chunk {i} at {got:?}, due {due:?}: {timed:?}"
        );
        // And not a byte of it before it was due.
        assert!(at(chunk_end(i - 1) + 1) + Duration::from_millis(60) >= due);
    }
    // Decode times: segment 51 starts at 50 * 2000 ticks; chunks every 500.
    for i in 0..4 {
        let (_, start, end) = boxes[1 + 3 * i + 1];
        let (seq, tfdt) = timing(&r.body[start..end]);
        assert_eq!(tfdt, 100_000 + 500 * i as u64);
        assert_eq!(seq, 50 * 4 + i as u32 + 1);
    }
    // The VOD segment looped here is 50 % 3 + 1 = 3: every sample in order.
    let samples: Vec<u8> = (0..4)
        .flat_map(|i| {
            let (_, s, e) = boxes[1 + 3 * i + 2];
            r.body[s + 8..e].to_vec()
        })
        .collect();
    assert_eq!(samples.len(), 800);
    assert!(samples.starts_with(b"v1:3:00:"));
    assert!(samples[760..].starts_with(b"v1:3:19:"));

    // The parts are the same bytes: chunk i alone, with a length, once out.
    clock.set(ast() + Duration::from_millis(102_000));
    let mut parts = Vec::new();
    for i in 0..4 {
        let p = get(addr, &format!("/live/ll/v1/51.{i}.m4s"), &[]).await;
        assert_eq!(p.status, 200);
        assert_eq!(p.h("content-length"), p.body.len().to_string());
        parts.extend_from_slice(&p.body);
    }
    assert_eq!(parts, r.body);
    // Once complete, the segment is an ordinary object with a length, and ranges.
    let whole = get(addr, "/live/ll/v1/51.m4s", &[]).await;
    assert_eq!(whole.h("content-length"), r.body.len().to_string());
    assert_eq!(whole.body, r.body);
    assert_eq!(whole.h("etag"), r.h("etag"));
    let ranged = get(addr, "/live/ll/v1/51.m4s", &[("range", "bytes=0-99")]).await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, r.body[..100]);
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_latency_early_requests_are_held_or_refused() {
    let c = ll_content();
    // 0.6 s into segment 51.
    let (o, _) = start_ll(&c, 100_600).await;
    let addr = o.local_addr();
    // More than a segment before its first chunk: 404 at once, with a short max-age.
    let t0 = std::time::Instant::now();
    let r = get(addr, "/live/ll/v1/53.m4s", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.h("cache-control"), "public, max-age=1");
    assert!(t0.elapsed() < Duration::from_millis(200));
    for bad in ["51.4.m4s", "51.x.m4s", "0.m4s", "v9/51.m4s"] {
        let path = if bad.contains('/') {
            format!("/live/ll/{bad}")
        } else {
            format!("/live/ll/v1/{bad}")
        };
        assert_eq!(get(addr, &path, &[]).await.status, 404, "{path}");
    }
    // The preload hint's part (51.1, out in 0.4 s) is held until it is out.
    let t0 = std::time::Instant::now();
    let r = get(addr, "/live/ll/v1/51.1.m4s", &[]).await;
    let waited = t0.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        waited >= Duration::from_millis(340) && waited < Duration::from_millis(700),
        "{waited:?}"
    );
    // The next segment's first chunk (out in 1.9 s): the head comes at once, the body then.
    let (r, timed) = timed_get(addr, "/live/ll/v2/52.m4s").await;
    assert_eq!(r.status, 200);
    let first_byte = timed.iter().find(|(_, n)| *n > 0).unwrap().0;
    assert!(first_byte >= Duration::from_millis(1800), "{timed:?}");
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_latency_hls_lists_parts_and_blocks_reloads() {
    let c = ll_content();
    // 1.2 s into segment 51: parts 51.0 and 51.1 are out.
    let (o, _) = start_ll(&c, 101_200).await;
    let addr = o.local_addr();
    let r = get(addr, "/live/ll/v1.m3u8", &[]).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    for line in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500",
        "#EXT-X-PART-INF:PART-TARGET=0.50000",
        "#EXT-X-PART:DURATION=0.50000,URI=\"v1/51.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-PART:DURATION=0.50000,URI=\"v1/51.1.m4s\"",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"v1/51.2.m4s\"",
        "#EXT-X-RENDITION-REPORT:URI=\"v2.m3u8\",LAST-MSN=51,LAST-PART=1",
        "#EXT-X-PART:DURATION=0.50000,URI=\"v1/50.3.m4s\"",
        "v1/50.m4s",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    assert!(!text.contains("v1/51.2.m4s\","), "{text}");
    assert!(!text.contains("v1/51.m4s"), "{text}");
    // The parts of old segments are not listed: only the last three's.
    assert!(
        text.contains("v1/48.3.m4s") && !text.contains("v1/47.0.m4s"),
        "{text}"
    );
    // m3u8-rs reads it (the LL tags are kept as unknown tags).
    match m3u8_rs::parse_playlist_res(&r.body) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => {
            assert_eq!(p.segments.last().unwrap().uri, "v1/50.m4s");
        }
        other => panic!("not a media playlist: {other:?}"),
    }

    // Blocking reload for the next part: answered when it is out (0.3 s), listing it.
    let t0 = std::time::Instant::now();
    let r = get(addr, "/live/ll/v1.m3u8?_HLS_msn=51&_HLS_part=2", &[]).await;
    let waited = t0.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        waited >= Duration::from_millis(240) && waited < Duration::from_millis(600),
        "{waited:?}"
    );
    assert!(
        r.text().contains("URI=\"v1/51.2.m4s\"\n")
            || r.text().contains("v1/51.2.m4s\",INDEPENDENT"),
        "{}",
        r.text()
    );
    assert!(r
        .text()
        .contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"v1/51.3.m4s\""));
    assert!(r.h("cache-control").starts_with("public, max-age="));
    // The same question twice gets the same playlist (cacheable, coalescable).
    let again = get(addr, "/live/ll/v1.m3u8?_HLS_msn=51&_HLS_part=2", &[]).await;
    assert_eq!(again.body, r.body);
    // A part index past the segment's last part means the next segment's first part.
    let r = get(addr, "/live/ll/v1.m3u8?_HLS_msn=50&_HLS_part=9", &[]).await;
    assert!(r.text().contains("v1/51.0.m4s"));
    // Too far ahead, or malformed: 400 at once.
    for q in [
        "_HLS_msn=60",
        "_HLS_part=1",
        "_HLS_msn=x",
        "_HLS_msn=51&_HLS_part=-1",
    ] {
        let t0 = std::time::Instant::now();
        let r = get(addr, &format!("/live/ll/v1.m3u8?{q}"), &[]).await;
        assert_eq!(r.status, 400, "{q}");
        assert!(t0.elapsed() < Duration::from_millis(200));
    }
    o.shutdown().await;
}
