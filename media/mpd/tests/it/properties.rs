//! Property tests: no input makes the parser (or the resolver or writer on what it accepts)
//! panic, anything the writer accepts round-trips, and generated models round-trip.

use std::time::{Duration, SystemTime};

use mpd::{
    AdaptationSet, FrameRate, Mpd, Period, PresentationType, Representation, SegmentTemplate,
    SegmentTimeline, SegmentsAt, S,
};
use proptest::prelude::*;

const FIXTURES: &[&str] = &[
    include_str!("../fixtures/mpd/vod_number_duration.mpd"),
    include_str!("../fixtures/mpd/timeline_repeats.mpd"),
    include_str!("../fixtures/mpd/timeline_r_minus1_next_t.mpd"),
    include_str!("../fixtures/mpd/multi_period.mpd"),
    include_str!("../fixtures/mpd/segment_base_on_demand.mpd"),
    include_str!("../fixtures/mpd/segment_list_ranges.mpd"),
    include_str!("../fixtures/mpd/inherit_template_levels.mpd"),
    include_str!("../fixtures/mpd/unknown_elements.mpd"),
    include_str!("../fixtures/mpd/dynamic_timeline.mpd"),
    include_str!("../fixtures/mpd/dynamic_tsbd.mpd"),
    include_str!("../fixtures/mpd/bandwidth_and_dollar.mpd"),
];

/// Everything a consumer may do with a parsed MPD; none of it may panic, and whatever the
/// writer accepts must parse back to the same model.
fn exercise(text: &str) {
    let Ok(mpd) = Mpd::parse(text) else { return };
    let url = url::Url::parse("http://origin.example.test/a/b/manifest.mpd").unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_700);
    let _ = mpd.resolve(&url, SegmentsAt::Vod);
    let _ = mpd.resolve(&url, SegmentsAt::Live(now));
    let _ = mpd::Summary::new(&mpd, &url, SegmentsAt::Vod).map(|s| s.to_text());
    if let Ok(xml) = mpd.to_xml() {
        let back =
            Mpd::parse(&xml).unwrap_or_else(|e| panic!("written MPD does not parse: {e}\n{xml}"));
        assert_eq!(back, mpd, "{xml}");
    }
}

const TOKENS: &[&str] = &[
    "<MPD",
    "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"",
    "<Period",
    "<AdaptationSet",
    "<Representation",
    "<SegmentTemplate",
    "<SegmentTimeline>",
    "</SegmentTimeline>",
    "<S",
    "<SegmentList",
    "<SegmentURL",
    "<SegmentBase",
    "<BaseURL>",
    "</BaseURL>",
    "<Initialization",
    "</Period>",
    "</AdaptationSet>",
    "</Representation>",
    "</SegmentTemplate>",
    "</MPD>",
    ">",
    "/>",
    " ",
    "\n",
    " id=\"",
    " bandwidth=\"",
    " t=\"",
    " d=\"",
    " r=\"",
    " r=\"-1\"",
    " timescale=\"",
    " duration=\"",
    " startNumber=\"",
    " media=\"",
    " initialization=\"",
    " type=\"dynamic\"",
    " availabilityStartTime=\"",
    " mediaPresentationDuration=\"",
    " timeShiftBufferDepth=\"",
    " start=\"",
    " range=\"",
    " indexRange=\"",
    " mediaRange=\"",
    " frameRate=\"",
    "\"",
    "0",
    "1",
    "7",
    "-1",
    "18446744073709551615",
    "4294967296",
    "PT",
    "P1D",
    "T",
    "2S",
    "1.5S",
    "-PT1S",
    "$Number$",
    "$Number%05d$",
    "$Time$",
    "$RepresentationID$",
    "$Bandwidth$",
    "$$",
    "$",
    "%0",
    "d$",
    "0-99",
    "99-0",
    "30000/1001",
    "2026-01-01T00:00:00Z",
    "http://x.test/",
    "../",
    "&amp;",
    "&",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?xml version=\"1.0\"?>",
    "xmlns:v=\"urn:v\"",
    "<v:Period>",
    "</v:Period>",
    "é",
    "\u{feff}",
];

fn near_xml() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|v| v.concat())
}

/// A fixture with one random edit: a slice deleted, replaced or duplicated.
fn mutated_fixture() -> impl Strategy<Value = String> {
    (
        prop::sample::select(FIXTURES),
        any::<prop::sample::Index>(),
        0usize..40,
        prop::sample::select(TOKENS),
        0u8..3,
    )
        .prop_map(|(text, at, len, token, op)| {
            let bytes = text.as_bytes();
            let start = at.index(bytes.len());
            let end = (start + len).min(bytes.len());
            let mut out = bytes[..start].to_vec();
            match op {
                0 => {}
                1 => out.extend_from_slice(token.as_bytes()),
                _ => out.extend_from_slice(&bytes[start..end]),
            }
            if op == 2 {
                out.extend_from_slice(&bytes[start..]);
            } else {
                out.extend_from_slice(&bytes[end..]);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
}

fn timeline() -> impl Strategy<Value = SegmentTimeline> {
    (
        prop::option::of(0u64..1_000_000),
        prop::collection::vec((1u64..100_000, 0i64..20), 1..6),
        any::<bool>(),
    )
        .prop_map(|(t0, runs, open)| {
            let mut entries: Vec<S> = runs
                .into_iter()
                .enumerate()
                .map(|(i, (d, r))| S::new(if i == 0 { t0 } else { None }, d, r))
                .collect();
            if open {
                if let Some(last) = entries.last_mut() {
                    last.r = Some(-1);
                }
            }
            SegmentTimeline { entries }
        })
}

fn template() -> impl Strategy<Value = SegmentTemplate> {
    (
        1u32..200_000,
        prop::option::of(0u64..10_000),
        0u32..100,
        prop_oneof![Just(None), timeline().prop_map(Some)],
        1u32..1_000_000,
        0usize..4,
    )
        .prop_map(
            |(timescale, pto, start_number, timeline, duration, width)| {
                let number = if width == 0 {
                    "$Number$".to_string()
                } else {
                    format!("$Number%0{width}d$")
                };
                let media = if timeline.is_some() {
                    "$RepresentationID$/$Time$.m4s".to_string()
                } else {
                    format!("$RepresentationID$/{number}.m4s")
                };
                SegmentTemplate {
                    timescale: Some(timescale),
                    presentation_time_offset: pto,
                    start_number: Some(start_number),
                    duration: if timeline.is_some() {
                        None
                    } else {
                        Some(duration)
                    },
                    media: Some(media),
                    initialization: Some("$RepresentationID$/init-$Bandwidth$.mp4".into()),
                    segment_timeline: timeline,
                    ..Default::default()
                }
            },
        )
}

fn model() -> impl Strategy<Value = Mpd> {
    let rep = (
        1u64..50_000_000,
        prop::option::of(1u32..4000),
        prop::option::of((1u32..120_000, 1u32..1002)),
        prop::option::of("avc1\\.[0-9A-F]{6}"),
    );
    let set = (
        prop::collection::vec(rep, 1..4),
        prop::option::of(template()),
        prop::option::of("[a-z]{2}(-[A-Z]{2})?"),
    );
    let period = (
        prop::option::of(0u64..100_000_000),
        prop::option::of(1u64..100_000_000),
        prop::collection::vec(set, 1..3),
    );
    (
        any::<bool>(),
        1u64..10_000_000,
        prop::collection::vec(period, 1..3),
        0i64..2_000_000_000,
        0u32..1_000_000_000,
    )
        .prop_map(|(dynamic, mbt_ms, periods, ast, nanos)| {
            let ast = mpd::DateTime::from_timestamp(ast, nanos).unwrap();
            Mpd {
                profiles: mpd::PROFILE_ISOFF_LIVE.into(),
                presentation_type: if dynamic {
                    PresentationType::Dynamic
                } else {
                    PresentationType::Static
                },
                min_buffer_time: Some(Duration::from_millis(mbt_ms)),
                media_presentation_duration: (!dynamic).then(|| Duration::from_millis(mbt_ms * 7)),
                availability_start_time: dynamic.then_some(ast),
                publish_time: dynamic.then_some(ast),
                time_shift_buffer_depth: dynamic.then(|| Duration::from_millis(mbt_ms * 3)),
                periods: periods
                    .into_iter()
                    .enumerate()
                    .map(|(pi, (start, duration, sets))| Period {
                        id: Some(format!("p{pi}")),
                        start: start.map(Duration::from_micros),
                        duration: duration.map(Duration::from_micros),
                        adaptation_sets: sets
                            .into_iter()
                            .enumerate()
                            .map(|(ai, (reps, template, lang))| AdaptationSet {
                                id: Some(ai.to_string()),
                                lang,
                                mime_type: Some("video/mp4".into()),
                                segment_template: Some(template.unwrap_or(SegmentTemplate {
                                    duration: Some(2),
                                    media: Some("$Number$.m4s".into()),
                                    ..Default::default()
                                })),
                                representations: reps
                                    .into_iter()
                                    .enumerate()
                                    .map(|(ri, (bandwidth, width, fps, codecs))| Representation {
                                        id: format!("a{ai}r{ri}"),
                                        bandwidth,
                                        width,
                                        frame_rate: fps.map(|(n, d)| FrameRate::new(n, d)),
                                        codecs,
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_xml_never_panics(text in near_xml()) {
        exercise(&text);
    }

    #[test]
    fn mutated_fixtures_never_panic(text in mutated_fixture()) {
        exercise(&text);
    }

    #[test]
    fn generated_models_round_trip(mpd in model()) {
        let xml = mpd.to_xml().unwrap_or_else(|e| panic!("{e}"));
        let back = Mpd::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        prop_assert_eq!(back, mpd);
    }
}
