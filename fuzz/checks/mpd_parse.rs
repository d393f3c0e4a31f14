//! Fuzz check: any bytes through the MPD parser, and whatever it accepts through the
//! resolver and the writer; a written MPD must parse back to the same model.

use std::time::{Duration, SystemTime};

use mpd::{Mpd, SegmentsAt};

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(mpd) = Mpd::parse(&text) else { return };
    let url = url::Url::parse("http://origin.example.test/vod/demo/manifest.mpd").unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_700);
    let _ = mpd.resolve(&url, SegmentsAt::Vod);
    let _ = mpd.resolve(&url, SegmentsAt::Live(now));
    if let Ok(xml) = mpd.to_xml() {
        let back = Mpd::parse(&xml).expect("the writer's output parses");
        assert_eq!(back, mpd);
    }
}
