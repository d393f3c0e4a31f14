//! Bad MPDs: malformed XML and impossible values are errors that name the line and column of
//! the offending element or attribute. (What the lenient parser repairs instead, malformed
//! templates and overlapping timelines among them, is in `lenient.rs`.)

use mpd::{Mpd, MpdError};

const HEAD: &str = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2S" mediaPresentationDuration="PT10S">"#;

/// An MPD whose line 3 is `line3` (inside an AdaptationSet inside a Period).
fn with_line3(line3: &str) -> String {
    format!("{HEAD}\n<Period><AdaptationSet mimeType=\"video/mp4\">\n{line3}\n</AdaptationSet></Period></MPD>\n")
}

#[track_caller]
fn expect(text: &str, want_line: usize, want_col: usize, want_msg: &str) {
    match Mpd::parse(text) {
        Ok(_) => panic!("parsed without error:\n{text}"),
        Err(e) => {
            let (line, col) = e.position().unwrap_or_else(|| panic!("no position in {e}"));
            assert_eq!((line, col), (want_line, want_col), "position of: {e}");
            assert!(
                !want_msg.is_empty(),
                "every case names the message it expects"
            );
            assert!(
                e.to_string().contains(want_msg),
                "message `{e}` lacks `{want_msg}`"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("line {want_line}, column {want_col}: ")),
                "{e}"
            );
        }
    }
}

#[test]
fn malformed_xml() {
    expect(
        "<MPD>\n  <Period>\n</MPD>",
        3,
        1,
        "expected `</Period>`, but `</MPD>` was found",
    );
    expect(
        "<MPD>\n<Period a=\"1\" a=\"2\"/></MPD>",
        2,
        15,
        "duplicated attribute",
    );
    expect(
        "<MPD>\n\n<Period id=1/></MPD>",
        3,
        12,
        "attribute value must be enclosed in `\"` or `'`",
    );
    expect("<Foo/>", 1, 1, "expected <MPD>");
    expect("<MPD>\n<Period>\n", 2, 1, "<Period> is never closed");
    expect(
        "<MPD>\n  <Title>&bogus;</Title></MPD>",
        2,
        10,
        "unknown entity",
    );
    expect("", 1, 1, "no root element");
    expect("<MPD/>\n<MPD/>", 2, 1, "after the root");
    expect("<MPD/>trailing", 1, 7, "text outside");
    expect(
        "<?xml version=\"1.0\"?>\n<MPD\n  profiles=\"x\" <Period/></MPD>",
        3,
        23,
        "followed by `=`",
    );
}

#[test]
fn impossible_values_point_at_the_attribute() {
    let bad_duration = format!("{HEAD}\n<Period duration=\"-PT5S\"/></MPD>");
    expect(&bad_duration, 2, 9, "negative duration");
    expect(
        &format!("{HEAD}\n<Period   start=\"PT5X\"/></MPD>"),
        2,
        11,
        "PT5X",
    );
    expect(
        &with_line3("  <SegmentTemplate timescale=\"0\" duration=\"2\" media=\"$Number$.m4s\"/>"),
        3,
        20,
        "timescale must not be zero",
    );
    expect(
        &with_line3("<SegmentTemplate duration=\"0\" media=\"$Number$\"/>"),
        3,
        18,
        "must not be zero",
    );
    expect(
        &with_line3("<SegmentTemplate timescale=\"abc\" media=\"$Number$\"/>"),
        3,
        18,
        "invalid value `abc`",
    );
    expect(
        &with_line3("<Representation id=\"v\" bandwidth=\"-5\"/>"),
        3,
        24,
        "invalid value `-5`",
    );
    expect(
        &with_line3("<Representation id=\"v\" frameRate=\"30/0\" bandwidth=\"1\"/>"),
        3,
        24,
        "zero denominator",
    );
    expect(
        &with_line3("<SegmentBase indexRange=\"900-100\"/>"),
        3,
        14,
        "ends before it starts",
    );
    expect(
        &format!("{HEAD}\n<Period/></MPD>")
            .replace("minBufferTime=\"PT2S\"", "minBufferTime=\"soon\""),
        1,
        93,
        "invalid value `soon`",
    );
    let bad_ast = HEAD.replace("<MPD ", "<MPD availabilityStartTime=\"yesterday\" ");
    expect(&format!("{bad_ast}\n<Period/></MPD>"), 1, 6, "xs:dateTime");
}

#[test]
fn impossible_timelines() {
    let timeline = |entries: &str| {
        with_line3(&format!("<SegmentTemplate media=\"$Time$\"><SegmentTimeline>\n{entries}\n</SegmentTimeline></SegmentTemplate>"))
    };
    expect(
        &timeline("<S t=\"0\" d=\"10\" r=\"-1\"/>\n<S d=\"10\"/>"),
        4,
        17,
        "r=\"-1\" must be on the last S",
    );
    expect(
        &timeline("<S t=\"0\" d=\"10\" r=\"-2\"/>"),
        4,
        17,
        "r=-2 is impossible",
    );
    expect(
        &timeline("<S t=\"0\" d=\"10\"/>\n<S d=\"0\"/>"),
        5,
        4,
        "d must not be zero",
    );
    expect(&timeline("<S t=\"0\"/>"), 4, 1, "@d");
    // r="-1" is fine when the next S has @t.
    assert!(Mpd::parse(&timeline(
        "<S t=\"0\" d=\"10\" r=\"-1\"/>\n<S t=\"50\" d=\"10\"/>"
    ))
    .is_ok());
}

#[test]
fn errors_are_single_line() {
    let e = Mpd::parse("<MPD>\n<Period>\n").unwrap_err();
    assert!(!e.to_string().contains('\n'), "{e}");
    assert!(matches!(e, MpdError::Syntax { .. }));
    let e = Mpd::parse(&with_line3("<SegmentTemplate timescale=\"0\"/>")).unwrap_err();
    assert!(matches!(e, MpdError::Invalid { .. }));
}

#[test]
fn missing_required_representation_attributes() {
    expect(&with_line3("<Representation id=\"v\"/>"), 3, 1, "bandwidth");
    expect(&with_line3("<Representation bandwidth=\"5\"/>"), 3, 1, "id");
}

#[test]
fn errors_in_interleaved_elements_still_point_at_them() {
    // The SegmentTemplate sits between Representations, so the deserializer reads it out of order.
    let text = with_line3("<Representation id=\"a\" bandwidth=\"1\"/>\n<SegmentTemplate timescale=\"x9\"/>\n<Representation id=\"b\" bandwidth=\"2\"/>");
    expect(&text, 4, 18, "invalid value `x9`");
}

#[test]
fn live_timeline_needs_availability_start_time() {
    let text = with_line3("<SegmentTemplate duration=\"2\" media=\"$Number$.m4s\"/><Representation id=\"v\" bandwidth=\"1\"/>")
        .replace("<MPD ", "<MPD type=\"dynamic\" ");
    let mpd = Mpd::parse(&text).unwrap();
    let url = url::Url::parse("http://o.test/live/m.mpd").unwrap();
    let err = mpd
        .segments(
            0,
            0,
            0,
            &url,
            mpd::SegmentsAt::Live(std::time::SystemTime::now()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("availabilityStartTime"), "{err}");
}
