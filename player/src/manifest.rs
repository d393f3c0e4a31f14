//! From an MPD to what the player plays: the first Period's video AdaptationSet, its
//! Representations from the lowest to the highest bandwidth, their init and media segment URLs,
//! and the [`Video`] the ABR sees. Anything unplayable is a one-line error naming the reason.

use anyhow::{bail, Result};
use mpd::{Addressing, ContentKind, MediaSegment, Mpd, SegmentRef, SegmentsAt};
use url::Url;

use crate::video::Video;

/// One Representation as the player uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    pub id: String,
    pub bandwidth_bps: u64,
    pub init: Option<SegmentRef>,
    pub media: Vec<MediaSegment>,
}

/// A playable title: the ladder (ascending) and the ABR's view of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Title {
    pub rungs: Vec<Rung>,
    pub video: Video,
    pub dynamic: bool,
}

impl Title {
    /// Reads the playable part of `mpd` (fetched from `url`) at `at`.
    pub fn from_mpd(mpd: &Mpd, url: &Url, at: SegmentsAt) -> Result<Title> {
        let periods = mpd
            .resolve(url, at)
            .map_err(|e| anyhow::anyhow!("cannot play this MPD: {e}"))?;
        let Some(period) = periods.first() else {
            bail!("cannot play this MPD: it has no Period");
        };
        let Some(set) = period
            .adaptation_sets
            .iter()
            .find(|s| s.kind == ContentKind::Video)
        else {
            bail!("cannot play this MPD: no video AdaptationSet");
        };
        let mut rungs = Vec::new();
        for rep in set.by_bandwidth() {
            if rep.segments.addressing == Addressing::Base {
                bail!(
                    "cannot play this MPD: Representation {} uses SegmentBase (indexed) addressing",
                    rep.id
                );
            }
            if rep.bandwidth == 0 {
                bail!(
                    "cannot play this MPD: Representation {} has no bandwidth",
                    rep.id
                );
            }
            rungs.push(Rung {
                id: rep.id.clone(),
                bandwidth_bps: rep.bandwidth,
                init: rep.segments.init.clone(),
                media: rep.segments.media.clone(),
            });
        }
        if rungs.is_empty() {
            bail!("cannot play this MPD: the video AdaptationSet has no Representation");
        }
        let n = rungs.iter().map(|r| r.media.len()).min().unwrap_or(0);
        if n == 0 && !mpd.is_dynamic() {
            bail!("cannot play this MPD: no media segments");
        }
        let first = &rungs[0].media;
        let duration = if first.is_empty() {
            2.0
        } else {
            first.iter().map(|s| s.duration).sum::<f64>() / first.len() as f64
        };
        let mut video = Video::nominal(
            url.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .unwrap_or_else(|| url.to_string())
                .as_str(),
            rungs.iter().map(|r| r.bandwidth_bps as f64).collect(),
            duration,
            n.max(1),
        )?;
        video.name = url.to_string();
        Ok(Title {
            rungs,
            video,
            dynamic: mpd.is_dynamic(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MPD: &str = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
        minBufferTime="PT4S" mediaPresentationDuration="PT6S"><Period id="p0">
      <AdaptationSet mimeType="audio/mp4" codecs="mp4a.40.2">
        <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/init.mp4"
            media="$RepresentationID$/$Number$.m4s"/>
        <Representation id="a" bandwidth="128000"/>
      </AdaptationSet>
      <AdaptationSet mimeType="video/mp4" codecs="avc1.64001f">
        <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/init.mp4"
            media="$RepresentationID$/$Number$.m4s"/>
        <Representation id="hi" bandwidth="2800000"/>
        <Representation id="lo" bandwidth="400000"/>
      </AdaptationSet></Period></MPD>"#;

    #[test]
    fn picks_video_ladder_ascending() {
        let mpd = Mpd::parse(MPD).unwrap();
        let url = Url::parse("http://video.example.test/vod/demo/manifest.mpd").unwrap();
        let t = Title::from_mpd(&mpd, &url, SegmentsAt::Vod).unwrap();
        assert_eq!(t.rungs.len(), 2);
        assert_eq!(t.rungs[0].id, "lo");
        assert_eq!(t.video.bitrates_bps, vec![400_000.0, 2_800_000.0]);
        assert_eq!(t.video.num_segments, 3);
        assert_eq!(
            t.rungs[1].media[2].url.as_str(),
            "http://video.example.test/vod/demo/hi/3.m4s"
        );
    }

    #[test]
    fn no_video_is_a_clear_error() {
        let audio_only = MPD
            .replace("video/mp4", "audio/mp4")
            .replace("avc1.64001f", "mp4a.40.2");
        let mpd = Mpd::parse(&audio_only).unwrap();
        let url = Url::parse("http://x.test/m.mpd").unwrap();
        let err = Title::from_mpd(&mpd, &url, SegmentsAt::Vod).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot play this MPD: no video AdaptationSet"
        );
    }
}
