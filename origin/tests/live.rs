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

#[tokio::test]
async fn live_mpd_is_schema_valid() {
    let xmllint = common::tools::require("xmllint");
    let c = live_content();
    let clock = Arc::new(origin::ManualClock::new(ast() + Duration::from_secs(1000)));
    let o = start_live(&c, clock).await;
    let r = get(o.local_addr(), "/live/news/manifest.mpd", &[]).await;
    let file = c.dir.path().join("live.mpd");
    std::fs::write(&file, &r.body).unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../media/mpd/tests/schema");
    let out = std::process::Command::new(xmllint)
        .env("XML_CATALOG_FILES", format!("{schema}/catalog.xml"))
        .args([
            "--nonet",
            "--noout",
            "--schema",
            &format!("{schema}/DASH-MPD.xsd"),
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xmllint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
