//! The summary `cdn mpd` prints, for files and for MPDs fetched over HTTP from a real server on
//! a loopback port (relative BaseURLs then resolve against the http:// URL).

use std::net::SocketAddr;
use std::path::PathBuf;

use mpd::{Addressing, ContentKind, SegmentsAt};
use player::inspect as cli;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../media/mpd/tests/fixtures/mpd")
        .join(name)
}

#[test]
fn file_summary_text_and_json() {
    let path = fixture("audio_video_text.mpd");
    let summary = cli::summarize(path.to_str().unwrap()).unwrap();
    assert!(summary.url.starts_with("file:///") && summary.url.ends_with("/audio_video_text.mpd"));
    assert_eq!(summary.duration, Some(6.0));
    let sets = &summary.periods[0].adaptation_sets;
    assert_eq!(
        sets.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [
            ContentKind::Video,
            ContentKind::Audio,
            ContentKind::Audio,
            ContentKind::Text
        ]
    );
    let v720 = &sets[0].representations[2];
    assert_eq!(
        (v720.id.as_str(), v720.bandwidth, v720.width, v720.height),
        ("v720", 2_800_000, Some(1280), Some(720))
    );
    assert_eq!(
        (v720.segment_count, v720.duration, v720.addressing),
        (3, 6.0, Addressing::TemplateDuration)
    );
    assert_eq!(v720.codecs.as_deref(), Some("avc1.64001f"));

    let text = summary.to_text();
    let line = text.lines().find(|l| l.contains("v720")).unwrap();
    for part in [
        "2800000 b/s",
        "1280x720",
        "avc1.64001f",
        "3 segments",
        "6.000 s",
    ] {
        assert!(line.contains(part), "`{part}` missing in `{line}`");
    }
    assert!(
        text.contains("AdaptationSet 2 id=3 audio lang=fr-CA"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["type"], "static");
    assert_eq!(json["periods"][0]["adaptation_sets"][3]["kind"], "text");
    assert_eq!(
        json["periods"][0]["adaptation_sets"][0]["representations"][0]["segment_count"],
        3
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let missing = cli::summarize("/nonexistent/dir/manifest.mpd").unwrap_err();
    assert!(format!("{missing:#}").contains("cannot read /nonexistent/dir/manifest.mpd"));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mpd-summary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.mpd");
    std::fs::write(&bad, "<MPD>\n  <Period>\n").unwrap();
    let err = format!("{:#}", cli::summarize(bad.to_str().unwrap()).unwrap_err());
    assert!(
        err.contains("line 2, column 3: element <Period> is never closed"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Serves the fixtures under /vod/demo/ on 127.0.0.1:0 from a thread with its own runtime.
fn serve_fixtures() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = common::http::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let server = common::http::serve(
                listener,
                Default::default(),
                Default::default(),
                |req, _info| async move {
                    let name = req
                        .uri()
                        .path()
                        .strip_prefix("/vod/demo/")
                        .unwrap_or("")
                        .to_string();
                    let path = fixture(&name);
                    match std::fs::read(&path) {
                        Ok(body) if !name.is_empty() && !name.contains("..") => {
                            http::Response::builder()
                                .header("content-type", "application/dash+xml")
                                .body(common::http::full(body))
                                .unwrap()
                        }
                        _ => http::Response::builder()
                            .status(404)
                            .body(common::http::empty())
                            .unwrap(),
                    }
                },
            )
            .unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            let _ = stop_rx.await;
            server.shutdown().await;
        });
    });
    (addr_rx.recv().unwrap(), stop_tx)
}

#[test]
fn mpd_over_http_resolves_against_its_url() {
    let (addr, stop) = serve_fixtures();
    let source = format!("http://{addr}/vod/demo/baseurl_relative_chain.mpd");
    let (mpd, url) = cli::load(&source).unwrap();
    assert_eq!(url.as_str(), source);
    let segs = mpd.segments(0, 0, 0, &url, SegmentsAt::Vod).unwrap();
    assert_eq!(
        segs.media[0].url.as_str(),
        format!("http://{addr}/vod/demo/content/video/720p/1.m4s")
    );
    assert_eq!(
        mpd.segments(0, 0, 1, &url, SegmentsAt::Vod).unwrap().media[1]
            .url
            .as_str(),
        format!("http://{addr}/abs/360p/2.m4s")
    );
    let summary = cli::summarize(&source).unwrap();
    assert_eq!(
        summary.periods[0].adaptation_sets[0].representations.len(),
        2
    );
    let err = format!(
        "{:#}",
        cli::summarize(&format!("http://{addr}/vod/demo/missing.mpd")).unwrap_err()
    );
    assert!(err.contains("404"), "{err}");
    let _ = stop.send(());
}

#[test]
fn repairs_are_printed_as_warnings_with_their_place() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mpd-repairs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("repaired.mpd");
    std::fs::write(
        &path,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" minBufferTime=\"PT2S\" mediaPresentationDuration=\"PT4S\">\n\
         <Period><AdaptationSet mimeType=\"video/mp4\" frameRate=\"15.00\">\n\
         <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"-40\" duration=\"2000\" media=\"$RepresentationID$/$Number$.m4s\"/>\n\
         <Representation id=\"ok\" bandwidth=\"1000\"/>\n\
         <Representation id=\"broken\" bandwidth=\"2000\"><SegmentTemplate media=\"$Nubmer$.m4s\"/></Representation>\n\
         </AdaptationSet></Period></MPD>\n",
    )
    .unwrap();
    let summary = cli::summarize(path.to_str().unwrap()).unwrap();
    assert_eq!(
        summary.warnings,
        [
            "line 2, column 45: <AdaptationSet> @frameRate: decimal frame rate `15.00` read as 15",
            "line 3, column 35: <SegmentTemplate> @presentationTimeOffset: negative presentationTimeOffset `-40` clamped to 0",
            "line 5, column 63: @media: unknown identifier `$Nubmer$` in template `$Nubmer$.m4s`; the Representations using this SegmentTemplate are unplayable",
        ]
    );
    let reps = &summary.periods[0].adaptation_sets[0].representations;
    assert_eq!(
        (reps[0].segment_count, reps[0].unplayable.as_deref()),
        (2, None)
    );
    assert!(reps[1].unplayable.as_deref().unwrap().contains("$Nubmer$"));
    let text = summary.to_text();
    assert!(
        text.contains("warning: line 5, column 63: @media: unknown identifier"),
        "{text}"
    );
    assert!(text.contains("      unplayable: Period 0 AdaptationSet 0 Representation 1: unknown identifier `$Nubmer$`"), "{text}");
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(dir);
}
