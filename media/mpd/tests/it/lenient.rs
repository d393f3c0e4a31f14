//! The lenient reading: what real-world MPDs get wrong and browser players accept is repaired
//! with a warning naming the line and column, and what cannot be repaired makes only the
//! Representation concerned unplayable. Each case is a minimal MPD written here.

use std::time::{Duration, SystemTime};

use mpd::{FrameRate, Mpd, SegmentsAt, Summary, Url, Warning, LIVE_TRIM, MAX_SEGMENTS};

const HEAD: &str = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2S" mediaPresentationDuration="PT10S">"#;

fn url() -> Url {
    Url::parse("http://cdn.example.test/vod/t/manifest.mpd").unwrap()
}

#[track_caller]
fn parse(text: &str) -> (Mpd, Vec<Warning>) {
    Mpd::parse_with_warnings(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The one warning whose message contains `needle`, checked to be at `line`, `column`.
#[track_caller]
fn warned(warnings: &[Warning], line: usize, column: usize, needle: &str) {
    let found: Vec<&Warning> = warnings
        .iter()
        .filter(|w| w.message.contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "`{needle}` in {warnings:#?}");
    assert_eq!(
        (found[0].line, found[0].column),
        (line, column),
        "{}",
        found[0]
    );
    assert_eq!(
        found[0].to_string(),
        format!("line {line}, column {column}: {}", found[0].message)
    );
}

#[test]
fn a_decimal_frame_rate_is_read_as_a_fraction() {
    let text = format!(
        "{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\" frameRate=\"15.00\">\n\
         <SegmentTemplate duration=\"2\" media=\"$Number$.m4s\"/>\n\
         <Representation id=\"a\" bandwidth=\"1\"/>\n\
         <Representation id=\"b\" bandwidth=\"2\"  frameRate=\"29.97\"/>\n\
         </AdaptationSet></Period></MPD>"
    );
    let (mpd, warnings) = parse(&text);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    warned(&warnings, 2, 45, "decimal frame rate `15.00` read as 15");
    warned(
        &warnings,
        5,
        39,
        "decimal frame rate `29.97` read as 2997/100",
    );
    let p = &mpd.resolve(&url(), SegmentsAt::Vod).unwrap()[0];
    let reps = &p.adaptation_sets[0].representations;
    assert_eq!(reps[0].frame_rate, Some(FrameRate::new(15, 1)));
    assert_eq!(reps[1].frame_rate, Some(FrameRate::new(2997, 100)));
    // Written back as the schema wants it.
    let xml = mpd.to_xml().unwrap();
    assert!(xml.contains("frameRate=\"15\""), "{xml}");
    assert!(xml.contains("frameRate=\"2997/100\""), "{xml}");
    // Not a number at all is still an error.
    assert!(Mpd::parse(&text.replace("15.00", "15.x")).is_err());
}

#[test]
fn a_negative_presentation_time_offset_is_clamped_to_zero() {
    let text = format!(
        "{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"-1000\" duration=\"2000\" media=\"$Number$.m4s\"/>\n\
         <Representation id=\"a\" bandwidth=\"1\"/>\n\
         </AdaptationSet></Period></MPD>"
    );
    let (mpd, warnings) = parse(&text);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    warned(
        &warnings,
        3,
        35,
        "negative presentationTimeOffset `-1000` clamped to 0",
    );
    let t = mpd.periods[0].adaptation_sets[0]
        .segment_template
        .as_ref()
        .unwrap();
    assert_eq!(t.presentation_time_offset, Some(0));
    let segs = mpd.segments(0, 0, 0, &url(), SegmentsAt::Vod).unwrap();
    assert_eq!(segs.media.len(), 5);
    assert_eq!(segs.media[0].start, 0.0);
    assert_eq!(segs.media[0].time, 0);
    // Garbage stays an error.
    assert!(Mpd::parse(&text.replace("\"-1000\"", "\"-x\"")).is_err());
}

fn timeline(entries: &str) -> String {
    format!(
        "{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate timescale=\"10\" media=\"$Time$-$Number$.m4s\"><SegmentTimeline>\n\
         {entries}\n\
         </SegmentTimeline></SegmentTemplate>\n\
         <Representation id=\"a\" bandwidth=\"1\"/>\n\
         </AdaptationSet></Period></MPD>"
    )
}

fn times_and_numbers(mpd: &Mpd) -> Vec<(u64, u64)> {
    mpd.segments(0, 0, 0, &url(), SegmentsAt::Vod)
        .unwrap()
        .media
        .iter()
        .map(|s| (s.time, s.number))
        .collect()
}

#[test]
fn timeline_entries_that_overlap_or_go_back_keep_their_times_as_dash_js_does() {
    // Overlap: 0..40 in four segments, then one at 35 (before 40) that ends after 40: listed
    // at its own time, so `$Time$` names the file the packager wrote.
    let (mpd, warnings) = parse(&timeline(
        "<S t=\"0\" d=\"10\" r=\"3\"/>\n<S t=\"35\" d=\"10\"/>",
    ));
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    warned(
        &warnings,
        5,
        4,
        "S@t=35 starts before the previous segment ends (40)",
    );
    assert_eq!(
        times_and_numbers(&mpd),
        [(0, 1), (10, 2), (20, 3), (30, 4), (35, 5)]
    );
    let segs = mpd.segments(0, 0, 0, &url(), SegmentsAt::Vod).unwrap();
    assert_eq!(segs.media[4].start, 3.5);
    assert_eq!(
        segs.media[4].url.as_str(),
        "http://cdn.example.test/vod/t/35-5.m4s"
    );

    // Going back: the entry at 10 lists two segments that end by 40, so neither is played
    // (dash.js plays forward by time); numbering goes on counting them, and so does an entry
    // without @t that follows; the next one at 40 continues.
    let (mpd, warnings) = parse(&timeline(
        "<S t=\"0\" d=\"10\" r=\"3\"/>\n<S t=\"10\" d=\"10\" r=\"1\"/>\n<S d=\"10\"/>\n<S t=\"40\" d=\"10\"/>",
    ));
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    warned(
        &warnings,
        5,
        4,
        "S@t=10 starts before the previous segment ends (40)",
    );
    assert_eq!(
        times_and_numbers(&mpd),
        [(0, 1), (10, 2), (20, 3), (30, 4), (40, 8)]
    );
    // The writer refuses such a timeline.
    assert!(mpd.to_xml().is_err());
}

#[test]
fn period_starts_are_inferred_from_the_previous_period_or_zero_for_the_first() {
    let text = format!(
        "{HEAD}\n<Period id=\"a\"><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate timescale=\"1000\" media=\"a-$Number$.m4s\"><SegmentTimeline><S d=\"2000\" r=\"2\"/></SegmentTimeline></SegmentTemplate>\n\
         <Representation id=\"a\" bandwidth=\"1\"/></AdaptationSet></Period>\n\
         <Period id=\"b\"><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate timescale=\"1000\" media=\"b-$Number$.m4s\"><SegmentTimeline><S d=\"2000\" r=\"1\"/></SegmentTimeline></SegmentTemplate>\n\
         <Representation id=\"b\" bandwidth=\"1\"/></AdaptationSet></Period></MPD>"
    );
    let (mpd, warnings) = parse(&text);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    warned(
        &warnings,
        5,
        1,
        "Period 1 has no @start and Period 0 no @duration: its start is inferred",
    );
    let periods = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    assert_eq!(periods[0].start, 0.0);
    assert_eq!(periods[0].duration, Some(6.0));
    assert_eq!(periods[1].start, 6.0);
    assert_eq!(periods[1].duration, Some(4.0));
    let starts: Vec<f64> = periods
        .iter()
        .flat_map(|p| &p.adaptation_sets[0].representations[0].segments.media)
        .map(|s| s.start)
        .collect();
    assert_eq!(starts, [0.0, 2.0, 4.0, 6.0, 8.0]);

    // The first Period of a dynamic MPD without @start starts at 0, with a warning.
    let live = text
        .replace(
            "<MPD ",
            "<MPD type=\"dynamic\" availabilityStartTime=\"2026-01-01T00:00:00Z\" ",
        )
        .replace("<Period id=\"b\">", "<Period id=\"b\" start=\"PT6S\">");
    let (mpd, warnings) = parse(&live);
    warned(
        &warnings,
        2,
        1,
        "first Period of a dynamic MPD has no @start: taken as 0",
    );
    assert_eq!(mpd.period_timings()[0].unwrap().start, Duration::ZERO);
}

#[test]
fn a_dynamic_mpd_without_availability_start_time_is_summarised() {
    let text = format!(
        "{HEAD}\n<Period id=\"p\"><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate timescale=\"1000\" media=\"$Time$.m4s\"><SegmentTimeline><S t=\"0\" d=\"2000\" r=\"2\"/></SegmentTimeline></SegmentTemplate>\n\
         <Representation id=\"tl\" bandwidth=\"1\"/></AdaptationSet>\n\
         <AdaptationSet mimeType=\"audio/mp4\">\n\
         <SegmentTemplate duration=\"2\" media=\"$Number$.m4s\"/>\n\
         <Representation id=\"num\" bandwidth=\"1\"/></AdaptationSet></Period></MPD>"
    )
    .replace("<MPD ", "<MPD type=\"dynamic\" ")
    .replace(" mediaPresentationDuration=\"PT10S\"", "");
    let (mpd, warnings) = parse(&text);
    warned(&warnings, 1, 1, "dynamic MPD without availabilityStartTime");
    let summary = Summary::new(&mpd, &url(), SegmentsAt::Live(SystemTime::now())).unwrap();
    let sets = &summary.periods[0].adaptation_sets;
    assert_eq!(sets[0].representations[0].segment_count, 3);
    assert_eq!(sets[0].representations[0].unplayable, None);
    let why = sets[1].representations[0].unplayable.as_deref().unwrap();
    assert!(why.contains("unbounded"), "{why}");
    assert!(
        summary.to_text().contains("unplayable: "),
        "{}",
        summary.to_text()
    );
    // Asking for one Representation's live segments still says why there are none.
    let err = mpd
        .segments(0, 0, 0, &url(), SegmentsAt::Live(SystemTime::now()))
        .unwrap_err();
    assert!(err.to_string().contains("availabilityStartTime"), "{err}");
}

#[test]
fn a_live_window_beyond_the_segment_cap_lists_only_its_newest_part() {
    // 1 s segments since 1970 and no timeShiftBufferDepth: 1.7 billion segments in the window.
    let text = format!(
        "{HEAD}\n<Period id=\"p\" start=\"PT0S\"><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate duration=\"1\" media=\"$Number$.m4s\"/>\n\
         <Representation id=\"v\" bandwidth=\"1\"/></AdaptationSet></Period></MPD>"
    )
    .replace(
        "<MPD ",
        "<MPD type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" ",
    )
    .replace(" mediaPresentationDuration=\"PT10S\"", "");
    let mpd = Mpd::parse(&text).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let periods = mpd.resolve(&url(), SegmentsAt::Live(now)).unwrap();
    let rep = &periods[0].adaptation_sets[0].representations[0];
    assert_eq!(rep.unplayable, None);
    assert_eq!(rep.segments.media.len() as u64, LIVE_TRIM.as_secs());
    let last = rep.segments.media.last().unwrap();
    assert_eq!(last.number, 1_750_000_000, "the segment ending now");
    assert_eq!(rep.segments.media[0].number, 1_750_000_000 - 3599);
    assert!(
        rep.warnings[0].contains(&format!("more than {MAX_SEGMENTS} segments")),
        "{:?}",
        rep.warnings
    );
    let summary = Summary::new(&mpd, &url(), SegmentsAt::Live(now)).unwrap();
    assert!(
        summary.warnings[0].starts_with("Representation v: the live window holds more than"),
        "{:?}",
        summary.warnings
    );

    // Segments shorter than LIVE_TRIM / MAX_SEGMENTS: the newest MAX_SEGMENTS of the hour.
    let tiny = text.replace(
        "<SegmentTemplate duration=\"1\"",
        "<SegmentTemplate timescale=\"1000\" duration=\"1\"",
    );
    let mpd = Mpd::parse(&tiny).unwrap();
    let periods = mpd.resolve(&url(), SegmentsAt::Live(now)).unwrap();
    let media = &periods[0].adaptation_sets[0].representations[0]
        .segments
        .media;
    assert_eq!(media.len() as u64, MAX_SEGMENTS);
    assert_eq!(media.last().unwrap().number, 1_750_000_000_000);

    // On demand, too many segments is still refused, for that Representation only.
    let vod = format!(
        "{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate timescale=\"1000\" duration=\"1\" media=\"$Number$.m4s\"/>\n\
         <Representation id=\"v\" bandwidth=\"1\"/></AdaptationSet></Period></MPD>"
    )
    .replace("PT10S", "PT1000S");
    let mpd = Mpd::parse(&vod).unwrap();
    let err = mpd.segments(0, 0, 0, &url(), SegmentsAt::Vod).unwrap_err();
    assert!(
        err.to_string().contains("more than 500000 segments"),
        "{err}"
    );
    let periods = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    let why = periods[0].adaptation_sets[0].representations[0]
        .unplayable
        .as_deref()
        .unwrap();
    assert!(why.contains("more than 500000 segments"), "{why}");
}

#[test]
fn a_malformed_template_makes_its_representation_unplayable_not_the_mpd() {
    let text = format!(
        "{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\">\n\
         <SegmentTemplate duration=\"2\" media=\"$RepresentationID$/$Number$.m4s\"/>\n\
         <Representation id=\"good\" bandwidth=\"1\"/>\n\
         <Representation id=\"bad\" bandwidth=\"2\"><SegmentTemplate media=\"$Foo$.m4s\"/></Representation>\n\
         </AdaptationSet></Period></MPD>"
    );
    let (mpd, warnings) = parse(&text);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    warned(&warnings, 5, 57, "unknown identifier `$Foo$`");
    assert!(
        warnings[0].message.contains("unplayable"),
        "{}",
        warnings[0]
    );
    let periods = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
    let reps = &periods[0].adaptation_sets[0].representations;
    assert_eq!(reps[0].unplayable, None);
    assert_eq!(reps[0].segments.media.len(), 5);
    assert_eq!(
        reps[0].segments.media[0].url.as_str(),
        "http://cdn.example.test/vod/t/good/1.m4s"
    );
    let why = reps[1].unplayable.as_deref().unwrap();
    assert!(why.contains("unknown identifier `$Foo$`"), "{why}");
    assert!(reps[1].segments.media.is_empty());
    let summary = Summary::new(&mpd, &url(), SegmentsAt::Vod).unwrap();
    let text_summary = summary.to_text();
    assert!(
        text_summary
            .contains("unplayable: Period 0 AdaptationSet 0 Representation 1: unknown identifier"),
        "{text_summary}"
    );
    // The writer refuses what the reader set aside.
    assert!(mpd.to_xml().is_err());

    // Every kind of malformed template is a warning at its attribute.
    let line3 = |l: &str| {
        format!("{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\">\n{l}\n<Representation id=\"v\" bandwidth=\"1\"/></AdaptationSet></Period></MPD>\n")
    };
    for (l, column, needle) in [
        (
            "<SegmentTemplate duration=\"2\" media=\"$RepresentationID%03d$-$Number$\"/>",
            31,
            "takes no width",
        ),
        (
            "<SegmentTemplate duration=\"2\" media=\"$Number%3d$\"/>",
            31,
            "bad width tag",
        ),
        (
            "<SegmentTemplate duration=\"2\" media=\"$Number$\" initialization=\"i$Number$.mp4\"/>",
            48,
            "must not use $Number$",
        ),
        (
            "<SegmentTemplate duration=\"2\" media=\"seg-$Number.m4s\"/>",
            31,
            "unterminated `$`",
        ),
    ] {
        let (mpd, warnings) = parse(&line3(l));
        warned(&warnings, 3, column, needle);
        let periods = mpd.resolve(&url(), SegmentsAt::Vod).unwrap();
        let rep = &periods[0].adaptation_sets[0].representations[0];
        assert!(
            rep.unplayable
                .as_deref()
                .is_some_and(|w| w.contains(needle)),
            "{l}: {:?}",
            rep.unplayable
        );
    }
}

#[test]
fn broken_xml_is_still_an_error_with_line_and_column() {
    let err = Mpd::parse_with_warnings("<MPD>\n  <Period>\n</MPD>").unwrap_err();
    assert_eq!(err.position(), Some((3, 1)));
}
