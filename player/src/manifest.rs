//! From an MPD to what the player plays: the video AdaptationSet of each Period (every Period of
//! an on-demand MPD, played in order on one timeline; the first of a live one), its playable
//! Representations from the lowest to the highest bandwidth, their init and media segments
//! (SegmentTemplate, SegmentList with or without byte ranges, SegmentBase once its `sidx` is
//! read), and the [`Video`] the ABR sees. Anything unplayable is a one-line error naming the
//! reason.
//!
//! Beside the video, a title (on demand or live) plays one audio track: the AdaptationSet in the
//! language asked for, else the first audio one with Role `main`, else the first audio one, in every Period (no audio at all when a Period
//! has none); of its Representations, the highest whose bandwidth does not exceed the lowest
//! video rung's (the lowest when none does), so audio never costs more than the smallest video.
//!
//! The ladder the ABR sees is the first Period's; a later Period with another ladder plays, for
//! each rung, the Representation of the same position when the ladders have as many rungs, else
//! the highest one whose bandwidth does not exceed the rung's (the lowest when none).

use anyhow::{anyhow, bail, Result};
use mpd::{
    Addressing, ByteRange, ContentKind, MediaSegment, Mpd, ResolvedAdaptationSet, ResolvedPeriod,
    ResolvedRepresentation, SegmentRef, SegmentsAt,
};
use url::Url;

use crate::sidx::{self, IndexSource};
use crate::video::Video;

/// One Representation as the player uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    pub id: String,
    pub bandwidth_bps: u64,
    /// The init segment of the first Period (see [`Rung::init_for`] for the others).
    pub init: Option<SegmentRef>,
    /// The media segments of every Period played, in order.
    pub media: Vec<MediaSegment>,
    /// What each Period contributes to `media`.
    pub parts: Vec<Part>,
}

/// The segments one Period contributes to a rung.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Index of the Period in the MPD.
    pub period: usize,
    /// The Representation played in that Period.
    pub representation: String,
    /// Index in [`Rung::media`] of the Period's first segment.
    pub first: usize,
    pub init: Option<SegmentRef>,
    /// SegmentBase: the index to read (with [`Title::load_index`]) before the Period has
    /// segments; `None` once read or for other addressing.
    pub pending_index: Option<IndexSource>,
    /// The Period's segments (all of them; `Rung::media` keeps as many as every rung has).
    pub segments: Vec<MediaSegment>,
}

impl Rung {
    /// The init segment that goes with media segment `segment`.
    pub fn init_for(&self, segment: usize) -> Option<&SegmentRef> {
        self.parts
            .iter()
            .rev()
            .find(|p| p.first <= segment)
            .and_then(|p| p.init.as_ref())
    }
}

/// A playable title: the ladder (ascending) and the ABR's view of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Title {
    pub rungs: Vec<Rung>,
    pub video: Video,
    pub dynamic: bool,
    /// The MPD's URL (names the video).
    pub url: Url,
    /// The audio played beside the video.
    pub audio: Option<Rung>,
}

/// Which track a SegmentBase index belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// A video rung.
    Video(usize),
    Audio,
}

impl Title {
    /// Reads the playable part of `mpd` (fetched from `url`) at `at`, with the first audio
    /// track. SegmentBase Representations come back with their index pending: read each of
    /// [`Title::pending_indexes`] with [`Title::load_index`] before playing.
    pub fn from_mpd(mpd: &Mpd, url: &Url, at: SegmentsAt) -> Result<Title> {
        Title::from_mpd_lang(mpd, url, at, None)
    }

    /// [`Title::from_mpd`] with the audio in language `lang` (a BCP 47 tag; `en` matches
    /// `en-GB`); an error when no audio AdaptationSet has it.
    pub fn from_mpd_lang(
        mpd: &Mpd,
        url: &Url,
        at: SegmentsAt,
        lang: Option<&str>,
    ) -> Result<Title> {
        if mpd.is_dynamic() && mpd.availability_start_time.is_none() {
            bail!(
                "cannot play this MPD: it is dynamic (live) but has no availabilityStartTime, so the live edge cannot be located"
            );
        }
        let periods = mpd
            .resolve(url, at)
            .map_err(|e| anyhow!("cannot play this MPD: {e}"))?;
        if periods.is_empty() {
            bail!("cannot play this MPD: it has no Period");
        }
        let played = if mpd.is_dynamic() {
            &periods[..1]
        } else {
            &periods[..]
        };
        let mut rungs: Vec<Rung> = Vec::new();
        for period in played {
            let Some(set) = period
                .adaptation_sets
                .iter()
                .find(|s| s.kind == ContentKind::Video)
            else {
                if played.len() == 1 {
                    bail!("cannot play this MPD: no video AdaptationSet");
                }
                bail!(
                    "cannot play this MPD: Period {} has no video AdaptationSet",
                    period.index
                );
            };
            let mut reps: Vec<&ResolvedRepresentation> = Vec::new();
            for rep in set.by_bandwidth() {
                if let Some(why) = &rep.unplayable {
                    tracing::warn!("Representation {} is skipped: {why}", rep.id);
                    continue;
                }
                if rep.bandwidth == 0 {
                    bail!(
                        "cannot play this MPD: Representation {} has no bandwidth",
                        rep.id
                    );
                }
                if rep.segments.addressing == Addressing::Base && mpd.is_dynamic() {
                    bail!(
                        "cannot play this MPD: Representation {} uses SegmentBase in a dynamic MPD",
                        rep.id
                    );
                }
                reps.push(rep);
            }
            if reps.is_empty() {
                match set
                    .representations
                    .iter()
                    .find_map(|r| r.unplayable.as_ref())
                {
                    Some(why) => {
                        bail!("cannot play this MPD: no playable video Representation ({why})")
                    }
                    None => {
                        bail!("cannot play this MPD: the video AdaptationSet has no Representation")
                    }
                }
            }
            if rungs.is_empty() {
                for rep in &reps {
                    rungs.push(Rung {
                        id: rep.id.clone(),
                        bandwidth_bps: rep.bandwidth,
                        init: None,
                        media: Vec::new(),
                        parts: Vec::new(),
                    });
                }
            }
            let same_shape = reps.len() == rungs.len();
            for (k, rung) in rungs.iter_mut().enumerate() {
                let rep = if same_shape {
                    reps[k]
                } else {
                    reps.iter()
                        .rev()
                        .find(|r| r.bandwidth <= rung.bandwidth_bps)
                        .copied()
                        .unwrap_or(reps[0])
                };
                rung.parts.push(part(period.index, rep)?);
            }
        }
        for rung in &mut rungs {
            rung.init = rung.parts.first().and_then(|p| p.init.clone());
        }
        let lowest_video = rungs.first().map_or(0, |r| r.bandwidth_bps);
        let mut audio = audio_rung(played, lang, lowest_video)?;
        if mpd.is_dynamic()
            && audio
                .as_ref()
                .is_some_and(|a| a.parts.iter().any(|p| p.pending_index.is_some()))
        {
            tracing::warn!("the live audio uses SegmentBase: the video plays alone");
            audio = None;
        }
        let mut title = Title {
            rungs,
            video: Video::nominal("pending", vec![1.0], 1.0, 1)?,
            dynamic: mpd.is_dynamic(),
            url: url.clone(),
            audio,
        };
        if title.pending_indexes().is_empty() {
            title.rebuild()?;
        }
        Ok(title)
    }

    /// The SegmentBase indexes still to read: (track, part, where).
    pub fn pending_indexes(&self) -> Vec<(Track, usize, IndexSource)> {
        let tracks = self
            .rungs
            .iter()
            .enumerate()
            .map(|(r, rung)| (Track::Video(r), rung))
            .chain(self.audio.iter().map(|a| (Track::Audio, a)));
        let mut out = Vec::new();
        for (track, rung) in tracks {
            for (p, part) in rung.parts.iter().enumerate() {
                if let Some(src) = &part.pending_index {
                    out.push((track, p, src.clone()));
                }
            }
        }
        out
    }

    /// Lists the subsegments of part `part` of `track` from its index bytes (the content of
    /// the index range); once no index is pending, the title is complete.
    pub fn load_index(&mut self, track: Track, part: usize, bytes: &[u8]) -> Result<()> {
        let rung = match track {
            Track::Video(r) => self.rungs.get_mut(r),
            Track::Audio => self.audio.as_mut(),
        };
        let p = rung
            .and_then(|r| r.parts.get_mut(part))
            .ok_or_else(|| anyhow!("no part {part} of {track:?}"))?;
        let src = p
            .pending_index
            .as_ref()
            .ok_or_else(|| anyhow!("part {part} of {track:?} has no pending index"))?;
        p.segments = sidx::subsegments(bytes, src).map_err(|e| {
            anyhow!(
                "cannot play this MPD: the index {} of Representation {}: {e:#}",
                src.index.url,
                p.representation
            )
        })?;
        p.pending_index = None;
        if self.pending_indexes().is_empty() {
            self.rebuild()?;
        }
        Ok(())
    }

    /// A title from rungs built elsewhere (HLS): `rungs` ascending, each with one part per
    /// Period (or playlist), `audio` beside them; `dynamic` for a live one.
    pub fn from_rungs(
        url: &Url,
        rungs: Vec<Rung>,
        audio: Option<Rung>,
        dynamic: bool,
    ) -> Result<Title> {
        if rungs.is_empty() {
            bail!("cannot play {url}: no variant");
        }
        let parts = rungs[0].parts.len();
        if rungs.iter().any(|r| r.parts.len() != parts) {
            bail!("cannot play {url}: the variants are not cut alike");
        }
        let mut title = Title {
            rungs,
            video: Video::nominal("pending", vec![1.0], 1.0, 1)?,
            dynamic,
            url: url.clone(),
            audio,
        };
        title.rebuild()?;
        Ok(title)
    }

    /// Lines up the rungs: in each Period, as many segments as every rung has; then the ABR's
    /// view (the first Period's ladder, the mean segment duration, the segment count).
    fn rebuild(&mut self) -> Result<()> {
        let periods = self.rungs.first().map_or(0, |r| r.parts.len());
        for rung in &mut self.rungs {
            rung.media.clear();
        }
        for p in 0..periods {
            // A live window is looked up by segment number, never truncated.
            let n = if self.dynamic {
                usize::MAX
            } else {
                self.rungs
                    .iter()
                    .map(|r| r.parts.get(p).map_or(0, |x| x.segments.len()))
                    .min()
                    .unwrap_or(0)
            };
            for rung in &mut self.rungs {
                let first = rung.media.len();
                let Some(part) = rung.parts.get_mut(p) else {
                    continue;
                };
                part.first = first;
                rung.media
                    .extend_from_slice(&part.segments[..n.min(part.segments.len())]);
            }
        }
        if let Some(audio) = &mut self.audio {
            audio.media.clear();
            for part in &mut audio.parts {
                part.first = audio.media.len();
                audio.media.extend_from_slice(&part.segments);
            }
        }
        let n = self.rungs.iter().map(|r| r.media.len()).min().unwrap_or(0);
        if n == 0 && !self.dynamic {
            bail!("cannot play this MPD: no media segments");
        }
        let first = &self.rungs[0].media;
        let duration = if first.is_empty() {
            2.0
        } else {
            first.iter().map(|s| s.duration).sum::<f64>() / first.len() as f64
        };
        let url = &self.url;
        let mut video = Video::nominal(
            url.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .unwrap_or_else(|| url.to_string())
                .as_str(),
            self.rungs.iter().map(|r| r.bandwidth_bps as f64).collect(),
            duration,
            n.max(1),
        )?;
        video.name = url.to_string();
        self.video = video;
        Ok(())
    }
}

/// The audio AdaptationSet of a Period: in language `lang` (exactly or as a prefix at a `-`),
/// else the first whose Role is `main`, else the first.
fn audio_set<'a>(
    period: &'a ResolvedPeriod,
    lang: Option<&str>,
) -> Option<&'a ResolvedAdaptationSet> {
    let mut audio = period
        .adaptation_sets
        .iter()
        .filter(|s| s.kind == ContentKind::Audio);
    match lang {
        None => {
            let all: Vec<&ResolvedAdaptationSet> = audio.collect();
            all.iter()
                .find(|s| s.roles.iter().any(|r| r == "main"))
                .or(all.first())
                .copied()
        }
        Some(want) => audio.find(|s| {
            s.lang.as_deref().is_some_and(|l| {
                let (l, want) = (l.to_ascii_lowercase(), want.to_ascii_lowercase());
                l == want || l.starts_with(&format!("{want}-"))
            })
        }),
    }
}

/// The audio rung of the played Periods (see the module doc), `None` when a Period has no
/// audio; an error when `lang` is asked for and a Period lacks it.
fn audio_rung(
    periods: &[ResolvedPeriod],
    lang: Option<&str>,
    lowest_video_bps: u64,
) -> Result<Option<Rung>> {
    let mut rung: Option<Rung> = None;
    for period in periods {
        let Some(set) = audio_set(period, lang) else {
            if let Some(want) = lang {
                let have: Vec<&str> = period
                    .adaptation_sets
                    .iter()
                    .filter(|s| s.kind == ContentKind::Audio)
                    .filter_map(|s| s.lang.as_deref())
                    .collect();
                bail!(
                    "cannot play this MPD: Period {} has no audio in language `{want}` (it has: {})",
                    period.index,
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                );
            }
            if period
                .adaptation_sets
                .iter()
                .any(|s| s.kind == ContentKind::Audio)
                || rung.is_some()
            {
                tracing::warn!(
                    "Period {} has no audio: the video plays alone",
                    period.index
                );
            }
            return Ok(None);
        };
        let reps: Vec<&ResolvedRepresentation> = set
            .by_bandwidth()
            .into_iter()
            .filter(|r| r.unplayable.is_none() && r.bandwidth > 0)
            .collect();
        let Some(&lowest) = reps.first() else {
            tracing::warn!(
                "Period {}: no playable audio Representation: the video plays alone",
                period.index
            );
            return Ok(None);
        };
        let cap = rung.as_ref().map_or(lowest_video_bps, |r| r.bandwidth_bps);
        let rep = reps
            .iter()
            .rev()
            .find(|r| r.bandwidth <= cap)
            .copied()
            .unwrap_or(lowest);
        let part = part(period.index, rep)?;
        match &mut rung {
            None => {
                rung = Some(Rung {
                    id: rep.id.clone(),
                    bandwidth_bps: rep.bandwidth,
                    init: part.init.clone(),
                    media: Vec::new(),
                    parts: vec![part],
                })
            }
            Some(r) => r.parts.push(part),
        }
    }
    Ok(rung)
}

/// What Representation `rep` of Period `period` contributes.
fn part(period: usize, rep: &ResolvedRepresentation) -> Result<Part> {
    let segs = &rep.segments;
    if segs.addressing != Addressing::Base {
        return Ok(Part {
            period,
            representation: rep.id.clone(),
            first: 0,
            init: segs.init.clone(),
            pending_index: None,
            segments: segs.media.clone(),
        });
    }
    let Some(index) = segs.index.clone() else {
        bail!(
            "cannot play this MPD: Representation {} uses SegmentBase without an index (@indexRange or RepresentationIndex), so its segments cannot be located",
            rep.id
        );
    };
    let whole = segs
        .media
        .first()
        .ok_or_else(|| anyhow!("Representation {}: no media file", rep.id))?;
    // Without an Initialization element, the init is what precedes the index in the file.
    let init = segs.init.clone().or_else(|| match index.range {
        Some(r) if r.first > 0 && index.url == whole.url => Some(SegmentRef {
            url: whole.url.clone(),
            range: Some(ByteRange::new(0, r.first - 1)),
        }),
        _ => None,
    });
    Ok(Part {
        period,
        representation: rep.id.clone(),
        first: 0,
        init,
        pending_index: Some(IndexSource {
            index,
            media_url: whole.url.clone(),
            period_start: whole.start,
            presentation_time_offset: whole.time,
        }),
        segments: Vec::new(),
    })
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

    fn url() -> Url {
        Url::parse("http://video.example.test/vod/demo/manifest.mpd").unwrap()
    }

    #[test]
    fn a_dynamic_mpd_without_availability_start_time_says_why_it_cannot_play() {
        let live = MPD
            .replace("<MPD ", "<MPD type=\"dynamic\" ")
            .replace(" mediaPresentationDuration=\"PT6S\"", "");
        let mpd = Mpd::parse(&live).unwrap();
        let now = std::time::SystemTime::now();
        let err = Title::from_mpd(&mpd, &url(), SegmentsAt::Live(now)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot play this MPD: it is dynamic (live) but has no availabilityStartTime, so the live edge cannot be located"
        );
    }

    #[test]
    fn an_unplayable_representation_is_left_out_of_the_ladder() {
        let text = MPD.replace(
            "<Representation id=\"hi\" bandwidth=\"2800000\"/>",
            "<Representation id=\"hi\" bandwidth=\"2800000\"><SegmentTemplate media=\"$Bogus$\"/></Representation>",
        );
        let mpd = Mpd::parse(&text).unwrap();
        let t = Title::from_mpd(&mpd, &url(), SegmentsAt::Vod).unwrap();
        assert_eq!(t.rungs.len(), 1);
        assert_eq!(t.rungs[0].id, "lo");
        // When none is left, the error says why.
        let none = text.replace("<Representation id=\"lo\" bandwidth=\"400000\"/>", "");
        let err = Title::from_mpd(&Mpd::parse(&none).unwrap(), &url(), SegmentsAt::Vod)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no playable video Representation"), "{err}");
        assert!(err.contains("$Bogus$"), "{err}");
    }

    #[test]
    fn a_segment_list_with_byte_ranges_plays_ranges_of_one_file() {
        let text = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
            minBufferTime="PT2S" mediaPresentationDuration="PT2S"><Period>
          <AdaptationSet contentType="video" mimeType="video/mp4">
            <Representation id="v" bandwidth="300000"><BaseURL>v.mp4</BaseURL>
              <SegmentList timescale="1000" duration="1000">
                <Initialization range="0-99"/>
                <SegmentURL mediaRange="100-599"/><SegmentURL mediaRange="600-999"/>
              </SegmentList></Representation>
          </AdaptationSet></Period></MPD>"#;
        let t = Title::from_mpd(&Mpd::parse(text).unwrap(), &url(), SegmentsAt::Vod).unwrap();
        let r = &t.rungs[0];
        assert_eq!(t.video.num_segments, 2);
        let init = r.init_for(1).unwrap();
        assert_eq!(
            init.url.as_str(),
            "http://video.example.test/vod/demo/v.mp4"
        );
        assert_eq!(init.range, Some(ByteRange::new(0, 99)));
        assert_eq!(r.media[1].range, Some(ByteRange::new(600, 999)));
        assert_eq!(r.media[1].url, init.url);
    }

    /// A sidx (version 0, timescale 1000, starting at 0) listing subsegments of these sizes
    /// and durations.
    fn sidx(refs: &[(u32, u32)]) -> Vec<u8> {
        use mp4_atom::Encode;
        let sidx = mp4_atom::Sidx {
            reference_id: 1,
            timescale: 1000,
            earliest_presentation_time: 0,
            first_offset: 0,
            references: refs
                .iter()
                .map(|&(size, d)| mp4_atom::SegmentReference {
                    reference_type: false,
                    referenced_size: size,
                    subsegment_duration: d,
                    starts_with_sap: true,
                    sap_type: 1,
                    sap_delta_time: 0,
                })
                .collect(),
        };
        let mut b = Vec::new();
        sidx.encode(&mut b).unwrap();
        b
    }

    #[test]
    fn segment_base_plays_the_subsegments_its_sidx_lists() {
        let index = sidx(&[(5000, 2000), (4000, 2000), (3000, 1000)]);
        let last = 831 + index.len() - 1;
        let text = format!(
            r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011"
            minBufferTime="PT2S" mediaPresentationDuration="PT5S"><Period>
          <AdaptationSet contentType="video" mimeType="video/mp4">
            <Representation id="lo" bandwidth="300000"><BaseURL>lo.mp4</BaseURL>
              <SegmentBase indexRange="831-{last}"/></Representation>
            <Representation id="hi" bandwidth="900000"><BaseURL>hi.mp4</BaseURL>
              <SegmentBase indexRange="831-{last}"><Initialization range="0-830"/></SegmentBase></Representation>
          </AdaptationSet></Period></MPD>"#
        );
        let mut t = Title::from_mpd(&Mpd::parse(&text).unwrap(), &url(), SegmentsAt::Vod).unwrap();
        let pending = t.pending_indexes();
        assert_eq!(pending.len(), 2);
        assert_eq!(
            (pending[0].0, pending[1].0),
            (Track::Video(0), Track::Video(1))
        );
        assert_eq!(
            pending[0].2.index.range,
            Some(ByteRange::new(831, last as u64))
        );
        assert_eq!(
            pending[0].2.media_url.as_str(),
            "http://video.example.test/vod/demo/lo.mp4"
        );
        // A broken index is a clear error and leaves the index pending.
        let err = t
            .load_index(Track::Video(0), 0, &index[..10])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut off"), "{err}");
        for (rung, part, _) in pending {
            t.load_index(rung, part, &index).unwrap();
        }
        assert!(t.pending_indexes().is_empty());
        assert_eq!(t.video.num_segments, 3);
        assert_eq!(t.video.bitrates_bps, vec![300_000.0, 900_000.0]);
        let lo = &t.rungs[0];
        // No Initialization element: the init is what precedes the index.
        assert_eq!(lo.init_for(0).unwrap().range, Some(ByteRange::new(0, 830)));
        let first = last as u64 + 1;
        assert_eq!(lo.media[0].range, Some(ByteRange::new(first, first + 4999)));
        assert_eq!(
            lo.media[2].range,
            Some(ByteRange::new(first + 9000, first + 11_999))
        );
        assert_eq!((lo.media[2].start, lo.media[2].duration), (4.0, 1.0));
        assert_eq!(
            t.rungs[1].init_for(2).unwrap().range,
            Some(ByteRange::new(0, 830))
        );
    }

    #[test]
    fn periods_play_in_order_on_one_timeline_with_their_own_ladders() {
        let text = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
            minBufferTime="PT2S" mediaPresentationDuration="PT10S">
          <Period id="one" duration="PT6S"><BaseURL>one/</BaseURL>
            <AdaptationSet mimeType="video/mp4">
              <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/init.mp4"
                  media="$RepresentationID$/$Number$.m4s"/>
              <Representation id="a-lo" bandwidth="300000"/>
              <Representation id="a-hi" bandwidth="900000"/>
            </AdaptationSet></Period>
          <Period id="two"><BaseURL>two/</BaseURL>
            <AdaptationSet mimeType="video/mp4">
              <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/init.mp4"
                  media="$RepresentationID$/$Number$.m4s"/>
              <Representation id="b-mid" bandwidth="500000"/>
            </AdaptationSet></Period></MPD>"#;
        let t = Title::from_mpd(&Mpd::parse(text).unwrap(), &url(), SegmentsAt::Vod).unwrap();
        assert_eq!(t.video.num_segments, 5);
        assert_eq!(t.video.bitrates_bps, vec![300_000.0, 900_000.0]);
        let names = |r: &Rung| -> Vec<String> {
            r.media
                .iter()
                .map(|s| s.url.path().trim_start_matches("/vod/demo/").to_string())
                .collect()
        };
        // The low rung has no Representation at or below it in Period two: the lowest.
        assert_eq!(
            names(&t.rungs[0]),
            [
                "one/a-lo/1.m4s",
                "one/a-lo/2.m4s",
                "one/a-lo/3.m4s",
                "two/b-mid/1.m4s",
                "two/b-mid/2.m4s"
            ]
        );
        assert_eq!(names(&t.rungs[1])[3], "two/b-mid/1.m4s");
        let starts: Vec<f64> = t.rungs[1].media.iter().map(|s| s.start).collect();
        assert_eq!(starts, [0.0, 2.0, 4.0, 6.0, 8.0]);
        let init = |r: usize, s: usize| t.rungs[r].init_for(s).unwrap().url.path().to_string();
        assert_eq!(init(1, 2), "/vod/demo/one/a-hi/init.mp4");
        assert_eq!(init(1, 3), "/vod/demo/two/b-mid/init.mp4");
        assert_eq!(t.rungs[1].parts[1].first, 3);
        // A Period without video cannot be played through.
        let no_video = text.replace(
            "<AdaptationSet mimeType=\"video/mp4\">\n              <SegmentTemplate timescale=\"1000\" duration=\"2000\" initialization=\"$RepresentationID$/init.mp4\"\n                  media=\"$RepresentationID$/$Number$.m4s\"/>\n              <Representation id=\"b-mid\"",
            "<AdaptationSet mimeType=\"audio/mp4\">\n              <SegmentTemplate timescale=\"1000\" duration=\"2000\" initialization=\"$RepresentationID$/init.mp4\"\n                  media=\"$RepresentationID$/$Number$.m4s\"/>\n              <Representation id=\"b-mid\"",
        );
        assert_ne!(no_video, text);
        let err = Title::from_mpd(&Mpd::parse(&no_video).unwrap(), &url(), SegmentsAt::Vod)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot play this MPD: Period 1 has no video AdaptationSet"
        );
    }

    #[test]
    fn the_audio_is_the_language_asked_for_else_the_main_one_at_the_video_floor() {
        let text = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
            minBufferTime="PT2S" mediaPresentationDuration="PT4S"><Period>
          <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/i.mp4"
              media="$RepresentationID$/$Number$.m4s"/>
          <AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="150000"/></AdaptationSet>
          <AdaptationSet mimeType="audio/mp4" lang="fr">
            <Representation id="fr" bandwidth="64000"/></AdaptationSet>
          <AdaptationSet mimeType="audio/mp4" lang="en-GB">
            <Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>
            <Representation id="en-hi" bandwidth="192000"/>
            <Representation id="en-mid" bandwidth="128000"/>
            <Representation id="en-lo" bandwidth="32000"/></AdaptationSet>
          </Period></MPD>"#;
        let mpd = Mpd::parse(text).unwrap();
        let pick = |lang: Option<&str>| {
            Title::from_mpd_lang(&mpd, &url(), SegmentsAt::Vod, lang).map(|t| {
                let a = t.audio.unwrap();
                let init = a.init_for(1).unwrap().url.path().to_string();
                (a.id, a.media.len(), init)
            })
        };
        // The main one, its highest rung not above the lowest video rung (150 kb/s).
        assert_eq!(
            pick(None).unwrap(),
            (
                "en-mid".to_string(),
                2,
                "/vod/demo/en-mid/i.mp4".to_string()
            )
        );
        assert_eq!(pick(Some("en")).unwrap().0, "en-mid");
        assert_eq!(pick(Some("FR")).unwrap().0, "fr");
        let err = pick(Some("de")).unwrap_err().to_string();
        assert!(
            err.contains("no audio in language `de` (it has: fr, en-GB)"),
            "{err}"
        );
        // A live title plays its audio too, chosen alike.
        let live = text
            .replace(
                "<MPD ",
                "<MPD type=\"dynamic\" availabilityStartTime=\"2026-01-01T00:00:00Z\" ",
            )
            .replace(" mediaPresentationDuration=\"PT4S\"", "");
        let now = std::time::SystemTime::now();
        let live = Mpd::parse(&live).unwrap();
        let t = Title::from_mpd(&live, &url(), SegmentsAt::Live(now)).unwrap();
        let a = t.audio.unwrap();
        assert_eq!(a.id, "en-mid");
        assert!(!a.media.is_empty());
        let t = Title::from_mpd_lang(&live, &url(), SegmentsAt::Live(now), Some("fr")).unwrap();
        assert_eq!(t.audio.unwrap().id, "fr");
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
