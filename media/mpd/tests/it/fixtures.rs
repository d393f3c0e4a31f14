//! Hand-written fixture MPDs: each is parsed, resolved against an MPD URL and checked value by
//! value (segment URLs, numbers, times, inheritance, BaseURL chains, live windows).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mpd::{
    parse_datetime, Addressing, ByteRange, ContentKind, FrameRate, Mpd, MpdError, Segments,
    SegmentsAt,
};
use url::Url;

const MPD_URL: &str = "http://origin.example.test/vod/demo/manifest.mpd";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mpd")
        .join(name)
}

fn load(name: &str) -> Mpd {
    let text =
        std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Mpd::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn url() -> Url {
    Url::parse(MPD_URL).unwrap()
}

fn segs(mpd: &Mpd, p: usize, a: usize, r: usize, at: SegmentsAt) -> Segments {
    mpd.segments(p, a, r, &url(), at)
        .unwrap_or_else(|e| panic!("segments {p}/{a}/{r}: {e}"))
}

fn urls(s: &Segments) -> Vec<String> {
    s.media.iter().map(|m| m.url.to_string()).collect()
}

fn at(ast: &str, secs_after: f64) -> SegmentsAt {
    let t = parse_datetime(ast).unwrap();
    let base: SystemTime = t.into();
    if secs_after >= 0.0 {
        SegmentsAt::Live(base + Duration::from_secs_f64(secs_after))
    } else {
        SegmentsAt::Live(base - Duration::from_secs_f64(-secs_after))
    }
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn vod_number_duration() {
    let mpd = load("vod_number_duration.mpd");
    assert!(!mpd.is_dynamic());
    let first = segs(&mpd, 0, 0, 0, SegmentsAt::Vod).media[0].clone();
    assert_eq!(mpd.availability_time(&first), None);
    assert_eq!(
        mpd.media_presentation_duration,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        mpd.program_information[0].title.as_deref(),
        Some("Test pattern")
    );
    let period = &mpd.periods[0];
    assert_eq!(period.video_adaptation_sets().count(), 1);
    let set = &period.adaptation_sets[0];
    assert_eq!(set.kind(), ContentKind::Video);
    let order: Vec<&str> = set
        .representations_by_bandwidth()
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(order, ["240p", "360p", "480p", "720p"]);
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(s.addressing, Addressing::TemplateDuration);
    assert_eq!(s.timescale, 90000);
    assert_eq!(
        s.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/240p/init.mp4"
    );
    assert_eq!(s.media.len(), 15);
    assert_eq!(
        s.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/240p/1.m4s"
    );
    let last = s.media.last().unwrap();
    assert_eq!((last.number, last.time), (15, 14 * 180000));
    assert!(approx(last.start, 28.0) && approx(last.duration, 2.0));
    assert!(approx(s.total_duration(), 30.0));
    let resolved = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    let r720 = &resolved[0].adaptation_sets[0].representations[3];
    assert_eq!(
        (r720.id.as_str(), r720.width, r720.height),
        ("720p", Some(1280), Some(720))
    );
    assert_eq!(r720.codecs.as_deref(), Some("avc1.64001f"));
    assert_eq!(r720.mime_type.as_deref(), Some("video/mp4"));
    assert_eq!(r720.frame_rate, Some(FrameRate::new(30, 1)));
}

#[test]
fn number_width_and_short_last_segment() {
    let mpd = load("number_width.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    let names: Vec<String> = s
        .media
        .iter()
        .map(|m| m.url.path().rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "chunk-a-00000.m4s",
            "chunk-a-00001.m4s",
            "chunk-a-00002.m4s",
            "chunk-a-00003.m4s",
            "chunk-a-00004.m4s"
        ]
    );
    assert_eq!(
        s.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/init-a.mp4"
    );
    assert!(approx(s.media[4].duration, 1.0));
    assert!(approx(s.total_duration(), 9.0));
}

#[test]
fn timeline_with_repeats_and_time() {
    let mpd = load("timeline_repeats.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(s.addressing, Addressing::TemplateTimeline);
    let times: Vec<u64> = s.media.iter().map(|m| m.time).collect();
    assert_eq!(times, [0, 96000, 192000, 288000, 336000, 408000]);
    let starts: Vec<f64> = s.media.iter().map(|m| m.start).collect();
    assert_eq!(starts, [0.0, 2.0, 4.0, 6.0, 7.0, 8.5]);
    let numbers: Vec<u64> = s.media.iter().map(|m| m.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        s.media[5].url.as_str(),
        "http://origin.example.test/vod/demo/aac/t408000.m4s"
    );
    assert!(approx(s.total_duration(), 10.0));
    assert_eq!(mpd.periods[0].audio_adaptation_sets().count(), 1);
}

#[test]
fn timeline_r_minus_one_to_period_end() {
    let mpd = load("timeline_r_minus1.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    let numbers: Vec<u64> = s.media.iter().map(|m| m.number).collect();
    assert_eq!(numbers, [10, 11, 12, 13, 14]);
    assert_eq!(
        s.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/v-10.m4s"
    );
    assert_eq!(
        s.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/v-init.mp4"
    );
    assert!(approx(s.media[4].duration, 1.0));
    assert_eq!(mpd.periods[0].segment_template.as_ref().map(|_| ()), None);
    let tl = mpd.periods[0].adaptation_sets[0]
        .segment_template
        .as_ref()
        .unwrap()
        .segment_timeline
        .as_ref()
        .unwrap();
    assert_eq!(tl.entries[0].r, Some(-1));
}

#[test]
fn timeline_r_minus_one_until_next_t() {
    let mpd = load("timeline_r_minus1_next_t.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(
        urls(&s)
            .iter()
            .map(|u| u.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["0.m4s", "20.m4s", "40.m4s", "60.m4s", "80.m4s"]
    );
    let durs: Vec<f64> = s.media.iter().map(|m| m.duration).collect();
    assert_eq!(durs, [2.0, 2.0, 2.0, 2.0, 4.0]);
}

#[test]
fn bandwidth_identifier_and_dollar_escape() {
    let mpd = load("bandwidth_and_dollar.mpd");
    let lo = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(
        lo.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/b350000/init$.mp4"
    );
    assert_eq!(
        urls(&lo),
        [
            "http://origin.example.test/vod/demo/b00350000/seg$001.m4s",
            "http://origin.example.test/vod/demo/b00350000/seg$002.m4s"
        ]
    );
    let hi = segs(&mpd, 0, 0, 1, SegmentsAt::Vod);
    assert_eq!(
        hi.media[1].url.as_str(),
        "http://origin.example.test/vod/demo/b01200000/seg$002.m4s"
    );
}

#[test]
fn multi_period_timing() {
    let mpd = load("multi_period.mpd");
    let t = mpd.period_timings();
    let secs: Vec<(f64, Option<f64>)> = t
        .iter()
        .map(|p| {
            let p = p.unwrap();
            (p.start.as_secs_f64(), p.duration.map(|d| d.as_secs_f64()))
        })
        .collect();
    assert_eq!(
        secs,
        [(0.0, Some(10.0)), (10.0, Some(20.0)), (30.0, Some(30.0))]
    );
    let periods = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    let counts: Vec<usize> = periods
        .iter()
        .map(|p| p.adaptation_sets[0].representations[0].segments.media.len())
        .collect();
    assert_eq!(counts, [2, 5, 5]);
    let ad = &periods[1].adaptation_sets[0].representations[0].segments;
    assert!(approx(ad.media[0].start, 10.0) && approx(ad.media[4].start, 26.0));
    assert_eq!(
        ad.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/ad/v_1.m4s"
    );
    let main = &periods[2].adaptation_sets[0].representations[0].segments;
    assert_eq!(main.media[0].number, 100);
    assert!(approx(main.media[0].start, 30.0));
    assert_eq!(
        main.media[4].url.as_str(),
        "http://origin.example.test/vod/demo/main/v_104.m4s"
    );
    assert_eq!(
        main.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/main/v_init.mp4"
    );
}

#[test]
fn baseurl_relative_chain() {
    let mpd = load("baseurl_relative_chain.mpd");
    let r720 = mpd
        .resolve_representation(0, 0, 0, &url(), SegmentsAt::Vod)
        .unwrap();
    assert_eq!(
        r720.base_url.as_str(),
        "http://origin.example.test/vod/demo/content/video/720p/"
    );
    assert_eq!(
        r720.segments.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/content/video/720p/1.m4s"
    );
    assert_eq!(
        r720.segments.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/content/video/720p/init.mp4"
    );
    let r360 = segs(&mpd, 0, 0, 1, SegmentsAt::Vod);
    assert_eq!(
        urls(&r360),
        [
            "http://origin.example.test/abs/360p/1.m4s",
            "http://origin.example.test/abs/360p/2.m4s"
        ]
    );
    let file = Url::parse("file:///srv/media/manifest.mpd").unwrap();
    let s = mpd.segments(0, 0, 0, &file, SegmentsAt::Vod).unwrap();
    assert_eq!(
        s.media[1].url.as_str(),
        "file:///srv/media/content/video/720p/2.m4s"
    );
}

#[test]
fn baseurl_absolute_levels() {
    let mpd = load("baseurl_absolute.mpd");
    assert_eq!(mpd.base_urls.len(), 2);
    assert_eq!(mpd.base_urls[1].service_location.as_deref(), Some("b"));
    assert_eq!(
        segs(&mpd, 0, 0, 0, SegmentsAt::Vod).media[0].url.as_str(),
        "http://cdn-a.example.test/root/x/1.m4s"
    );
    assert_eq!(
        segs(&mpd, 0, 0, 1, SegmentsAt::Vod).media[1].url.as_str(),
        "https://other.example.test/y-files/y/2.m4s"
    );
    let p1 = segs(&mpd, 1, 0, 0, SegmentsAt::Vod);
    assert_eq!(urls(&p1), ["http://cdn-c.example.test/p1/x/1.m4s"]);
    assert!(approx(p1.media[0].start, 4.0));
}

#[test]
fn segment_base_with_index_range() {
    let mpd = load("segment_base_on_demand.mpd");
    let v = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(v.addressing, Addressing::Base);
    assert_eq!(v.timescale, 12800);
    let file = "http://origin.example.test/vod/demo/video_720.mp4";
    let init = v.init.as_ref().unwrap();
    assert_eq!(
        (init.url.as_str(), init.range),
        (file, Some(ByteRange::new(0, 853)))
    );
    let index = v.index.as_ref().unwrap();
    assert_eq!(
        (index.url.as_str(), index.range),
        (file, Some(ByteRange::new(854, 1185)))
    );
    assert_eq!(v.media.len(), 1);
    assert_eq!(v.media[0].url.as_str(), file);
    assert!(approx(v.media[0].duration, 94.72));
    let a = segs(&mpd, 0, 1, 0, SegmentsAt::Vod);
    assert_eq!(
        a.index.as_ref().unwrap().range,
        Some(ByteRange::new(700, 999))
    );
    assert_eq!(
        a.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/audio.mp4"
    );
    assert_eq!(
        mpd.periods[0].adaptation_sets[0].subsegment_starts_with_sap,
        Some(1)
    );
}

#[test]
fn segment_list_urls() {
    let mpd = load("segment_list.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(s.addressing, Addressing::List);
    assert_eq!(
        s.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/list/sd/init.mp4"
    );
    assert_eq!(
        urls(&s),
        [
            "http://origin.example.test/vod/demo/list/sd/a.m4s",
            "http://origin.example.test/vod/demo/list/sd/b.m4s",
            "http://origin.example.test/vod/demo/list/sd/c.m4s"
        ]
    );
    let durs: Vec<f64> = s.media.iter().map(|m| m.duration).collect();
    assert_eq!(durs, [4.0, 4.0, 2.0]);
}

#[test]
fn segment_list_byte_ranges_with_timeline() {
    let mpd = load("segment_list_ranges.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    let file = "http://origin.example.test/vod/demo/audio/all.mp4";
    assert_eq!(s.init.as_ref().unwrap().range, Some(ByteRange::new(0, 599)));
    assert!(s.media.iter().all(|m| m.url.as_str() == file));
    let ranges: Vec<Option<ByteRange>> = s.media.iter().map(|m| m.range).collect();
    assert_eq!(
        ranges,
        [
            Some(ByteRange::new(600, 10599)),
            Some(ByteRange::new(10600, 20599)),
            Some(ByteRange::new(20600, 25599))
        ]
    );
    let starts: Vec<f64> = s.media.iter().map(|m| m.start).collect();
    assert_eq!(starts, [0.0, 2.0, 4.0]);
    assert!(approx(s.total_duration(), 5.0));
    let list = mpd.periods[0].adaptation_sets[0].representations[0]
        .segment_list
        .as_ref()
        .unwrap();
    assert_eq!(
        list.segment_urls[2].index_range,
        Some(ByteRange::new(20600, 20699))
    );
}

#[test]
fn template_inheritance_merges_attributes() {
    let mpd = load("inherit_template_levels.mpd");
    let a = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(
        a.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/inherits/init.mp4"
    );
    assert_eq!(
        a.media.iter().map(|m| m.number).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    assert_eq!(
        a.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/inherits/5.m4s"
    );
    let b = segs(&mpd, 0, 0, 1, SegmentsAt::Vod);
    assert_eq!(b.timescale, 90000);
    assert_eq!(
        urls(&b),
        [
            "http://origin.example.test/vod/demo/overrides/1.m4s",
            "http://origin.example.test/vod/demo/overrides/2.m4s"
        ]
    );
    let c = segs(&mpd, 0, 1, 0, SegmentsAt::Vod);
    assert_eq!(
        c.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/period/5.m4s"
    );
    assert_eq!(
        c.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/period-only/init.mp4"
    );
}

#[test]
fn attribute_and_segment_base_inheritance() {
    let mpd = load("inherit_attributes.mpd");
    let periods = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    let reps = &periods[0].adaptation_sets[0].representations;
    let a = &reps[0];
    assert_eq!(
        (a.codecs.as_deref(), a.width, a.height),
        (Some("avc1.64001f"), Some(1280), Some(720))
    );
    assert_eq!(a.frame_rate, Some(FrameRate::new(30000, 1001)));
    assert_eq!(a.mime_type.as_deref(), Some("video/mp4"));
    assert_eq!(
        a.segments.index.as_ref().unwrap().range,
        Some(ByteRange::new(800, 1199))
    );
    assert_eq!(
        a.segments.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/a.mp4"
    );
    let b = &reps[1];
    assert_eq!(
        (b.codecs.as_deref(), b.width, b.height),
        (Some("avc1.640028"), Some(1920), Some(1080))
    );
    assert_eq!(b.frame_rate.map(|f| f.as_f64()), Some(60.0));
    assert_eq!(
        b.segments.index.as_ref().unwrap().range,
        Some(ByteRange::new(900, 1299))
    );
    assert_eq!(
        b.segments.init.as_ref().unwrap().range,
        Some(ByteRange::new(0, 899))
    );
    assert_eq!(b.segments.timescale, 1000);
}

#[test]
fn unknown_elements_and_attributes_are_ignored() {
    let mpd = load("unknown_elements.mpd");
    assert_eq!(mpd.periods.len(), 1);
    let set = &mpd.periods[0].adaptation_sets[0];
    assert_eq!(set.id.as_deref(), Some("1"));
    assert_eq!(set.representations.len(), 1);
    assert_eq!(set.representations[0].id, "v");
    assert_eq!(set.roles[0].value.as_deref(), Some("main"));
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(s.media.len(), 3);
}

#[test]
fn dynamic_number_window() {
    let mpd = load("dynamic_tsbd.mpd");
    assert!(mpd.is_dynamic());
    assert_eq!(mpd.minimum_update_period(), Some(Duration::from_secs(2)));
    assert_eq!(
        mpd.suggested_presentation_delay(),
        Some(Duration::from_secs(6))
    );
    assert_eq!(mpd.time_shift_buffer_depth(), Some(Duration::from_secs(30)));
    assert_eq!(
        mpd.utc_timings()[0].scheme_id_uri,
        "urn:mpeg:dash:utc:http-xsdate:2014"
    );
    assert_eq!(
        mpd.utc_timings()[0].value.as_deref(),
        Some("http://127.0.0.1:8000/time")
    );
    let ast = "2026-01-01T00:00:00Z";
    let s = segs(&mpd, 0, 0, 0, at(ast, 100.0));
    let numbers: Vec<u64> = s.media.iter().map(|m| m.number).collect();
    assert_eq!(numbers, (35..=50).collect::<Vec<u64>>());
    assert!(approx(s.media[0].start, 68.0));
    let ready = mpd.availability_time(s.media.last().unwrap()).unwrap();
    assert_eq!(
        ready,
        SystemTime::from(parse_datetime("2026-01-01T00:01:40Z").unwrap())
    );
    assert_eq!(
        s.media.last().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/v1/50.m4s"
    );
    // The segment ending exactly at now is available; one ending a moment later is not.
    assert_eq!(
        segs(&mpd, 0, 0, 0, at(ast, 101.999))
            .media
            .last()
            .unwrap()
            .number,
        50
    );
    assert_eq!(
        segs(&mpd, 0, 0, 0, at(ast, 102.0))
            .media
            .last()
            .unwrap()
            .number,
        51
    );
    assert!(segs(&mpd, 0, 0, 0, at(ast, 1.0)).media.is_empty());
    assert_eq!(segs(&mpd, 0, 0, 0, at(ast, 2.0)).media.len(), 1);
    assert!(segs(&mpd, 0, 0, 0, at(ast, -10.0)).media.is_empty());
    assert!(matches!(
        mpd.segments(0, 0, 0, &url(), SegmentsAt::Vod),
        Err(MpdError::Resolve(_))
    ));
}

#[test]
fn dynamic_timeline_window() {
    let mpd = load("dynamic_timeline.mpd");
    assert_eq!(mpd.utc_timings().len(), 2);
    let s = segs(&mpd, 0, 0, 0, at("2026-01-01T00:00:00Z", 160.0));
    let times: Vec<u64> = s.media.iter().map(|m| m.time).collect();
    assert_eq!(
        times,
        (24..30)
            .map(|j| 900_000 + j * 180_000)
            .collect::<Vec<u64>>()
    );
    assert_eq!(
        s.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/v/5220000.m4s"
    );
    assert!(approx(s.media[0].start, 148.0));
    assert_eq!(s.media[0].number, 25);
    assert!(segs(&mpd, 0, 0, 0, at("2026-01-01T00:00:00Z", 99.0))
        .media
        .is_empty());
}

#[test]
fn dynamic_multi_period_without_tsbd() {
    let mpd = load("dynamic_multi_period.mpd");
    let periods = mpd
        .resolve(&url(), at("2026-01-01T00:00:00Z", 30.0))
        .unwrap();
    let pre = &periods[0].adaptation_sets[0].representations[0].segments;
    assert_eq!(
        pre.media.iter().map(|m| m.number).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let show = &periods[1].adaptation_sets[0].representations[0].segments;
    assert_eq!(show.media.len(), 5);
    assert!(approx(show.media[0].start, 10.0));
    assert_eq!(
        show.media[4].url.as_str(),
        "http://origin.example.test/vod/demo/show/5.m4s"
    );
    assert_eq!(periods[1].duration, None);
    assert_eq!(mpd.utc_timings()[0].value.as_deref(), Some("/time"));
}

#[test]
fn iso_durations() {
    let mpd = load("iso_durations.mpd");
    assert_eq!(
        mpd.media_presentation_duration,
        Some(Duration::from_millis(93_784_500))
    );
    assert_eq!(mpd.min_buffer_time, Some(Duration::from_millis(1500)));
    assert_eq!(mpd.max_segment_duration, Some(Duration::from_secs(2)));
    assert_eq!(mpd.max_subsegment_duration, Some(Duration::new(2, 1)));
    assert_eq!(mpd.periods[0].duration, Some(Duration::from_millis(90_500)));
    assert_eq!(mpd.periods[1].duration, Some(Duration::from_secs(93_600)));
    let a = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(a.media.len(), 46);
    assert!(approx(a.media[45].duration, 0.5));
    let b = segs(&mpd, 1, 0, 0, SegmentsAt::Vod);
    assert_eq!(b.media.len(), 26);
    assert!(approx(b.media[0].start, 90.5));
}

#[test]
fn audio_video_text_sets() {
    let mpd = load("audio_video_text.mpd");
    let p = &mpd.periods[0];
    let kinds: Vec<ContentKind> = p.adaptation_sets.iter().map(|a| a.kind()).collect();
    assert_eq!(
        kinds,
        [
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::Audio,
            ContentKind::Text
        ]
    );
    assert_eq!(p.audio_adaptation_sets().count(), 2);
    let ids: Vec<&str> = p.adaptation_sets[0]
        .representations_by_bandwidth()
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["v360", "v720", "v1080"]);
    assert_eq!(
        p.adaptation_sets[1].audio_channel_configurations[0]
            .value
            .as_deref(),
        Some("2")
    );
    assert_eq!(p.adaptation_sets[2].lang.as_deref(), Some("fr-CA"));
    assert_eq!(p.adaptation_sets[2].accessibilities.len(), 1);
    let resolved = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    let by_bw: Vec<&str> = resolved[0].adaptation_sets[0]
        .by_bandwidth()
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(by_bw, ["v360", "v720", "v1080"]);
    assert_eq!(
        resolved[0].adaptation_sets[3].representations[0]
            .segments
            .media[2]
            .url
            .as_str(),
        "http://origin.example.test/vod/demo/sub-en/3.m4s"
    );
}

#[test]
fn ffmpeg_style_manifest() {
    let mpd = load("ffmpeg_style.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(s.media.len(), 10);
    assert_eq!(
        s.init.as_ref().unwrap().url.as_str(),
        "http://origin.example.test/vod/demo/init-stream0.m4s"
    );
    assert_eq!(
        s.media[9].url.as_str(),
        "http://origin.example.test/vod/demo/chunk-stream0-00010.m4s"
    );
    assert!(approx(s.total_duration(), 20.0));
    let set = &mpd.periods[0].adaptation_sets[0];
    assert_eq!(set.frame_rate, Some(FrameRate::new(30, 1)));
    assert_eq!(set.bitstream_switching, Some(true));
    assert_eq!(mpd.program_information.len(), 1);
}

#[test]
fn end_number_caps_the_template() {
    let mpd = load("end_number.mpd");
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(
        s.media.iter().map(|m| m.number).collect::<Vec<_>>(),
        [3, 4, 5, 6]
    );
    assert_eq!(
        s.media[3].url.as_str(),
        "http://origin.example.test/vod/demo/6.m4s"
    );
}

#[test]
fn bom_crlf_and_entities() {
    let mpd = load("bom_crlf_entities.mpd");
    assert_eq!(
        mpd.program_information[0].title.as_deref(),
        Some("Café & crème <live>")
    );
    assert_eq!(mpd.program_information[0].lang.as_deref(), Some("fr"));
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(
        s.media[0].url.as_str(),
        "http://origin.example.test/vod/demo/a&b/1.m4s"
    );
}

#[test]
fn lenient_parse_strict_write() {
    let mpd = load("lenient_real_world.mpd");
    assert_eq!(mpd.profiles, "");
    assert_eq!(mpd.min_buffer_time, None);
    assert_eq!(
        mpd.periods[0].adaptation_sets[0].id.as_deref(),
        Some("video")
    );
    let s = segs(&mpd, 0, 0, 0, SegmentsAt::Vod);
    assert_eq!(
        urls(&s),
        [
            "http://media.example.test/1.m4s",
            "http://media.example.test/2.m4s"
        ]
    );
    match mpd.to_xml() {
        Err(MpdError::Model(m)) => assert!(m.contains("profiles"), "{m}"),
        other => panic!("the writer must refuse it, got {other:?}"),
    }
}

#[test]
fn there_are_at_least_twenty_fixtures() {
    let n = std::fs::read_dir(fixture_path(""))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "mpd")
        })
        .count();
    assert!(n >= 20, "{n} fixtures");
}
