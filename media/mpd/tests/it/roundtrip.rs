//! Write then parse gives the same model, for models built in code and for every fixture; and
//! writing is deterministic (write, parse, write gives the same text).

use std::path::PathBuf;

use mpd::{Mpd, MpdError, SegmentsAt};

fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mpd");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mpd"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn models_round_trip() {
    for (name, model) in crate::models::all() {
        let xml = model.to_xml().unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = Mpd::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
        assert_eq!(back, model, "{name}\n{xml}");
        assert_eq!(
            back.to_xml().unwrap(),
            xml,
            "{name}: writing is not deterministic"
        );
    }
}

#[test]
fn fixtures_round_trip() {
    let mut checked = 0;
    for (name, text) in fixtures() {
        let mpd = Mpd::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("lenient_") {
            assert!(matches!(mpd.to_xml(), Err(MpdError::Model(_))), "{name}");
            continue;
        }
        let xml = mpd.to_xml().unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = Mpd::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
        assert_eq!(back, mpd, "{name}\n{xml}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} fixtures round-tripped");
}

#[test]
fn written_text_declares_the_namespace_and_keeps_schema_order() {
    let xml = crate::models::static_live_profile().to_xml().unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" "), "{xml}");
    let pos = |s: &str| {
        xml.find(s)
            .unwrap_or_else(|| panic!("{s} missing in\n{xml}"))
    };
    assert!(pos("<ProgramInformation") < pos("<Period"));
    assert!(pos("<AudioChannelConfiguration") < pos("<Role"));
    assert!(pos("<Role") < pos("<SegmentTemplate timescale=\"48000\""));
    assert!(pos("&lt;30 s&gt; &amp; more") > 0);
    let live = crate::models::dynamic_timeline().to_xml().unwrap();
    assert!(
        live.contains("publishTime=\"2026-01-01T00:10:00.125Z\""),
        "{live}"
    );
    assert!(
        live.contains("suggestedPresentationDelay=\"PT6.5S\""),
        "{live}"
    );
    assert!(live.contains("<S n=\"9\" d=\"1000\" r=\"-1\"/>"), "{live}");
    assert!(live.find("<Location>").unwrap() < live.find("<Period").unwrap());
    assert!(live.find("</Period>\n  <UTCTiming").is_some(), "{live}");
}

#[test]
fn written_models_resolve() {
    let url = url::Url::parse("http://127.0.0.1:8000/vod/demo/manifest.mpd").unwrap();
    let mpd = Mpd::parse(&crate::models::static_live_profile().to_xml().unwrap()).unwrap();
    let s = mpd.segments(0, 0, 1, &url, SegmentsAt::Vod).unwrap();
    assert_eq!(s.media.len(), 15);
    assert_eq!(
        s.media[14].url.as_str(),
        "http://127.0.0.1:8000/vod/demo/720p/00015.m4s"
    );
    let audio = mpd.segments(0, 1, 0, &url, SegmentsAt::Vod).unwrap();
    assert_eq!(audio.media.len(), 15);
    assert_eq!(
        audio.media[14].url.as_str(),
        "http://127.0.0.1:8000/vod/demo/aac/1344000.m4s"
    );
}

/// Makes a valid model invalid in one way.
type Breaker = Box<dyn Fn(&mut Mpd)>;

#[test]
fn writer_refuses_invalid_models() {
    let cases: Vec<(&str, Breaker)> = vec![
        ("profiles", Box::new(|m| m.profiles.clear())),
        ("minBufferTime", Box::new(|m| m.min_buffer_time = None)),
        ("at least one Period", Box::new(|m| m.periods.clear())),
        (
            "mediaPresentationDuration",
            Box::new(|m| m.media_presentation_duration = None),
        ),
        (
            "availabilityStartTime",
            Box::new(|m| m.presentation_type = mpd::PresentationType::Dynamic),
        ),
        (
            "duplicate Representation id",
            Box::new(|m| m.periods[0].adaptation_sets[0].representations[1].id = "240p".into()),
        ),
        (
            "without whitespace",
            Box::new(|m| m.periods[0].adaptation_sets[0].representations[1].id = "a b".into()),
        ),
        (
            "unsigned integer",
            Box::new(|m| m.periods[0].adaptation_sets[0].id = Some("video".into())),
        ),
        (
            "$Number$ or $Time$",
            Box::new(|m| {
                m.periods[0].adaptation_sets[0]
                    .segment_template
                    .as_mut()
                    .unwrap()
                    .media = Some("x.m4s".into())
            }),
        ),
        (
            "timescale must not be zero",
            Box::new(|m| {
                m.periods[0].adaptation_sets[0]
                    .segment_template
                    .as_mut()
                    .unwrap()
                    .timescale = Some(0)
            }),
        ),
        (
            "contentType",
            Box::new(|m| m.periods[0].adaptation_sets[0].content_type = Some("movie".into())),
        ),
        (
            "SAP type",
            Box::new(|m| m.periods[0].adaptation_sets[0].start_with_sap = Some(9)),
        ),
        (
            "ratio",
            Box::new(|m| m.periods[0].adaptation_sets[0].par = Some("wide".into())),
        ),
        (
            "unsignedInt",
            Box::new(|m| m.periods[0].adaptation_sets[0].representations[0].bandwidth = 1 << 40),
        ),
        (
            "language tag",
            Box::new(|m| m.periods[0].adaptation_sets[1].lang = Some("english please".into())),
        ),
        (
            "schemeIdUri",
            Box::new(|m| {
                m.periods[0].adaptation_sets[1].roles[0]
                    .scheme_id_uri
                    .clear()
            }),
        ),
    ];
    for (want, break_it) in cases {
        let mut m = crate::models::static_live_profile();
        break_it(&mut m);
        match m.to_xml() {
            Err(MpdError::Model(msg)) => {
                assert!(msg.contains(want), "expected `{want}` in `{msg}`")
            }
            other => panic!("{want}: expected a model error, got {other:?}"),
        }
    }
}
