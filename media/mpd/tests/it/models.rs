//! Models built in code for the round-trip and schema tests: static and dynamic, every
//! addressing mode, every optional element the writer knows.

use std::time::Duration;

use mpd::{
    parse_datetime, AdaptationSet, BaseUrl, ByteRange, Descriptor, FrameRate, Mpd, Period,
    PresentationType, ProgramInformation, Representation, SegmentBase, SegmentList,
    SegmentTemplate, SegmentTimeline, SegmentUrl, UrlType, PROFILE_ISOFF_LIVE,
    PROFILE_ISOFF_ON_DEMAND, S,
};

pub fn video_set(id: &str, template: SegmentTemplate) -> AdaptationSet {
    AdaptationSet {
        id: Some(id.into()),
        content_type: Some("video".into()),
        mime_type: Some("video/mp4".into()),
        segment_alignment: Some(true),
        start_with_sap: Some(1),
        max_width: Some(1280),
        max_height: Some(720),
        max_frame_rate: Some(FrameRate::new(30, 1)),
        par: Some("16:9".into()),
        segment_template: Some(template),
        representations: [
            (426, 240, 400_000, "avc1.640015"),
            (1280, 720, 2_800_000, "avc1.64001f"),
        ]
        .iter()
        .map(|&(w, h, bw, codecs)| Representation {
            id: format!("{h}p"),
            bandwidth: bw,
            width: Some(w),
            height: Some(h),
            frame_rate: Some(FrameRate::new(30, 1)),
            sar: Some("1:1".into()),
            codecs: Some(codecs.into()),
            ..Default::default()
        })
        .collect(),
        ..Default::default()
    }
}

/// A VOD package as our packager writes it, plus ProgramInformation, an audio set and descriptors.
pub fn static_live_profile() -> Mpd {
    let template = SegmentTemplate {
        timescale: Some(90000),
        duration: Some(180000),
        start_number: Some(1),
        initialization: Some("$RepresentationID$/init.mp4".into()),
        media: Some("$RepresentationID$/$Number%05d$.m4s".into()),
        ..Default::default()
    };
    let audio = AdaptationSet {
        id: Some("1".into()),
        content_type: Some("audio".into()),
        lang: Some("en".into()),
        mime_type: Some("audio/mp4".into()),
        codecs: Some("mp4a.40.2".into()),
        audio_sampling_rate: Some("48000".into()),
        audio_channel_configurations: vec![Descriptor::new(
            "urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
            "2",
        )],
        roles: vec![Descriptor::new("urn:mpeg:dash:role:2011", "main")],
        segment_template: Some(SegmentTemplate {
            timescale: Some(48000),
            media: Some("$RepresentationID$/$Time$.m4s".into()),
            initialization: Some("$RepresentationID$/init.mp4".into()),
            segment_timeline: Some(SegmentTimeline {
                entries: vec![S::new(Some(0), 96000, 13), S::new(None, 48000, 0)],
            }),
            ..Default::default()
        }),
        representations: vec![Representation {
            id: "aac".into(),
            bandwidth: 128_000,
            ..Default::default()
        }],
        ..Default::default()
    };
    Mpd {
        profiles: PROFILE_ISOFF_LIVE.into(),
        presentation_type: PresentationType::Static,
        media_presentation_duration: Some(Duration::from_secs(30)),
        min_buffer_time: Some(Duration::from_secs(4)),
        max_segment_duration: Some(Duration::from_secs(2)),
        program_information: vec![ProgramInformation {
            lang: Some("en".into()),
            title: Some("Test pattern <30 s> & more".into()),
            source: Some("cdn package".into()),
            ..Default::default()
        }],
        periods: vec![Period {
            id: Some("0".into()),
            start: Some(Duration::ZERO),
            adaptation_sets: vec![video_set("0", template), audio],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A live MPD with SegmentTimeline r=-1, DVR window, UTCTiming and two Periods.
pub fn dynamic_timeline() -> Mpd {
    let template = SegmentTemplate {
        timescale: Some(1000),
        presentation_time_offset: Some(5000),
        availability_time_offset: Some(1.5),
        initialization: Some("$RepresentationID$/init.mp4".into()),
        media: Some("$RepresentationID$/$Time$.m4s".into()),
        segment_timeline: Some(SegmentTimeline {
            entries: vec![
                S::new(Some(5000), 2000, 3),
                S {
                    t: None,
                    n: Some(9),
                    d: 1000,
                    r: Some(-1),
                },
            ],
        }),
        ..Default::default()
    };
    let numbered = SegmentTemplate {
        timescale: Some(1),
        duration: Some(2),
        start_number: Some(0),
        initialization: Some("$RepresentationID$/init.mp4".into()),
        media: Some("$RepresentationID$/$Number$.m4s".into()),
        ..Default::default()
    };
    Mpd {
        id: Some("live-1".into()),
        profiles: format!("{PROFILE_ISOFF_LIVE},http://dashif.org/guidelines/dash-if-simple"),
        presentation_type: PresentationType::Dynamic,
        availability_start_time: Some(parse_datetime("2026-01-01T00:00:00Z").unwrap()),
        publish_time: Some(parse_datetime("2026-01-01T00:10:00.125Z").unwrap()),
        minimum_update_period: Some(Duration::from_secs(2)),
        min_buffer_time: Some(Duration::from_secs(4)),
        time_shift_buffer_depth: Some(Duration::from_secs(60)),
        suggested_presentation_delay: Some(Duration::from_millis(6500)),
        max_segment_duration: Some(Duration::from_secs(2)),
        base_urls: vec![BaseUrl::new("http://127.0.0.1:8000/live/demo/")],
        locations: vec!["http://127.0.0.1:8000/live/demo/manifest.mpd".into()],
        periods: vec![
            Period {
                id: Some("p0".into()),
                start: Some(Duration::ZERO),
                duration: Some(Duration::from_secs(20)),
                adaptation_sets: vec![video_set("0", numbered)],
                ..Default::default()
            },
            Period {
                id: Some("p1".into()),
                start: Some(Duration::from_secs(20)),
                adaptation_sets: vec![video_set("0", template)],
                ..Default::default()
            },
        ],
        utc_timings: vec![
            Descriptor::new(
                "urn:mpeg:dash:utc:http-xsdate:2014",
                "http://127.0.0.1:8000/time",
            ),
            Descriptor::new("urn:mpeg:dash:utc:direct:2014", "2026-01-01T00:10:00Z"),
        ],
        ..Default::default()
    }
}

/// isoff-on-demand: SegmentBase with indexRange, BaseURL per Representation, a SegmentBase at
/// AdaptationSet level inherited by the Representations.
pub fn on_demand() -> Mpd {
    let rep = |id: &str, bw: u64, file: &str, index: (u64, u64)| Representation {
        id: id.into(),
        bandwidth: bw,
        base_urls: vec![BaseUrl {
            url: file.into(),
            range_access: Some(true),
            ..Default::default()
        }],
        segment_base: Some(SegmentBase {
            index_range: Some(ByteRange::new(index.0, index.1)),
            index_range_exact: Some(true),
            initialization: Some(UrlType {
                source_url: None,
                range: Some(ByteRange::new(0, index.0 - 1)),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Mpd {
        profiles: PROFILE_ISOFF_ON_DEMAND.into(),
        media_presentation_duration: Some(Duration::new(94, 720_000_000)),
        min_buffer_time: Some(Duration::from_millis(1500)),
        periods: vec![Period {
            id: Some("0".into()),
            duration: Some(Duration::new(94, 720_000_000)),
            adaptation_sets: vec![AdaptationSet {
                id: Some("0".into()),
                mime_type: Some("video/mp4".into()),
                codecs: Some("avc1.4d401f".into()),
                subsegment_alignment: Some(true),
                subsegment_starts_with_sap: Some(1),
                segment_base: Some(SegmentBase {
                    timescale: Some(12800),
                    ..Default::default()
                }),
                representations: vec![
                    rep("1", 1_500_000, "video_720.mp4", (854, 1185)),
                    rep("2", 600_000, "video_360.mp4", (800, 1100)),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// SegmentList with byte ranges and a timeline, BaseURLs at every level, properties.
pub fn segment_list() -> Mpd {
    Mpd {
        profiles: "urn:mpeg:dash:profile:full:2011".into(),
        media_presentation_duration: Some(Duration::from_secs(5)),
        min_buffer_time: Some(Duration::from_secs(2)),
        base_urls: vec![BaseUrl::new("content/")],
        essential_properties: vec![Descriptor::new("urn:example:essential", "1")],
        supplemental_properties: vec![Descriptor::new("urn:example:supplemental", "2")],
        periods: vec![Period {
            id: Some("p".into()),
            base_urls: vec![BaseUrl::new("period/")],
            asset_identifier: Some(Descriptor::new("urn:org:dashif:asset-id:2013", "asset-1")),
            adaptation_sets: vec![AdaptationSet {
                mime_type: Some("audio/mp4".into()),
                codecs: Some("mp4a.40.2".into()),
                base_urls: vec![BaseUrl::new("audio/")],
                representations: vec![Representation {
                    id: "aud".into(),
                    bandwidth: 64000,
                    base_urls: vec![BaseUrl::new("all.mp4")],
                    segment_list: Some(SegmentList {
                        timescale: Some(100),
                        initialization: Some(UrlType {
                            source_url: None,
                            range: Some(ByteRange::new(0, 599)),
                        }),
                        segment_timeline: Some(SegmentTimeline {
                            entries: vec![S::new(Some(0), 200, 1), S::new(None, 100, 0)],
                        }),
                        segment_urls: vec![
                            SegmentUrl {
                                media_range: Some(ByteRange::new(600, 10599)),
                                ..Default::default()
                            },
                            SegmentUrl {
                                media_range: Some(ByteRange::new(10600, 20599)),
                                ..Default::default()
                            },
                            SegmentUrl {
                                media: Some("tail.mp4".into()),
                                index_range: Some(ByteRange::new(0, 99)),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            supplemental_properties: vec![Descriptor::new("urn:example:period", "x")],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn all() -> Vec<(&'static str, Mpd)> {
    vec![
        ("static_live_profile", static_live_profile()),
        ("dynamic_timeline", dynamic_timeline()),
        ("on_demand", on_demand()),
        ("segment_list", segment_list()),
    ]
}
