//! The consumer's view of an MPD: attribute inheritance (Period -> AdaptationSet ->
//! Representation, merged attribute by attribute), BaseURL resolution (RFC 3986, starting from
//! the MPD's own URL), Period timing, and the concrete segment list of a Representation for
//! on-demand playback or for a live MPD at a given wall-clock time.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use super::model::{
    AdaptationSet, BaseUrl, Mpd, Period, Representation, SegmentBase, SegmentList, SegmentTemplate,
    SegmentTimeline, UrlType,
};
use super::template::{Template, TemplateVars};
use super::values::{ByteRange, FrameRate, PresentationType};
use super::MpdError;

/// Most media segments one Representation may expand to; more is refused rather than
/// exhausting memory on a hostile MPD (a 24 h stream of 1 s segments has 86 400).
pub const MAX_SEGMENTS: u64 = 500_000;

/// When a live window would list more than [`MAX_SEGMENTS`] (no timeShiftBufferDepth and an
/// availabilityStartTime long ago), the lenient resolution keeps only the segments ending in
/// this last stretch before the live edge: what a player joining the stream can use.
pub const LIVE_TRIM: Duration = Duration::from_secs(3600);

const NANOS: i128 = 1_000_000_000;

/// Which segments to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentsAt {
    /// Every segment the MPD describes (on demand, or a dynamic MPD's full timeline).
    Vod,
    /// For a dynamic MPD, the segments available at this wall-clock time: those whose end
    /// lies in `[now - timeShiftBufferDepth, now + availabilityTimeOffset]`. Same as `Vod`
    /// for a static MPD.
    Live(SystemTime),
}

/// A URL with an optional byte range (init segment, index segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub url: Url,
    pub range: Option<ByteRange>,
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSegment {
    pub url: Url,
    pub range: Option<ByteRange>,
    /// `$Number$` of the segment.
    pub number: u64,
    /// Media time (`$Time$`) in timescale units.
    pub time: u64,
    /// Start on the presentation timeline, seconds from the start of the first Period.
    pub start: f64,
    /// Duration in seconds.
    pub duration: f64,
}

/// How a Representation addresses its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Addressing {
    /// SegmentTemplate with `@duration` (`$Number$`).
    TemplateDuration,
    /// SegmentTemplate with a SegmentTimeline.
    TemplateTimeline,
    /// SegmentList.
    List,
    /// SegmentBase, or a bare BaseURL: one file, indexed by its `sidx`.
    Base,
}

/// The concrete segments of one Representation.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub addressing: Addressing,
    pub timescale: u32,
    pub init: Option<SegmentRef>,
    pub index: Option<SegmentRef>,
    pub media: Vec<MediaSegment>,
}

impl Segments {
    /// Sum of the media segment durations, seconds.
    pub fn total_duration(&self) -> f64 {
        self.media.iter().map(|s| s.duration).sum()
    }
}

/// What an AdaptationSet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    Video,
    Audio,
    Text,
    Image,
    Other,
}

impl ContentKind {
    /// The lowercase name, as `contentType` spells it and as the summary serializes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Video => "video",
            ContentKind::Audio => "audio",
            ContentKind::Text => "text",
            ContentKind::Image => "image",
            ContentKind::Other => "other",
        }
    }
}

/// A Period with its timing and fully resolved content.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPeriod {
    pub index: usize,
    pub id: Option<String>,
    /// Seconds from the start of the presentation.
    pub start: f64,
    /// Seconds, when known.
    pub duration: Option<f64>,
    pub adaptation_sets: Vec<ResolvedAdaptationSet>,
}

/// An AdaptationSet with resolved Representations.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAdaptationSet {
    pub index: usize,
    pub id: Option<String>,
    pub kind: ContentKind,
    pub lang: Option<String>,
    /// Values of its `Role` descriptors (`main`, `alternate`, `commentary`, ...).
    pub roles: Vec<String>,
    pub representations: Vec<ResolvedRepresentation>,
}

impl ResolvedAdaptationSet {
    /// The Representations from the lowest to the highest bandwidth.
    pub fn by_bandwidth(&self) -> Vec<&ResolvedRepresentation> {
        let mut v: Vec<&ResolvedRepresentation> = self.representations.iter().collect();
        v.sort_by_key(|r| r.bandwidth);
        v
    }
}

/// A Representation with its inherited attributes and its segments.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRepresentation {
    pub index: usize,
    pub id: String,
    pub bandwidth: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<FrameRate>,
    pub codecs: Option<String>,
    pub mime_type: Option<String>,
    pub audio_sampling_rate: Option<String>,
    /// The resolved BaseURL segment URLs are relative to.
    pub base_url: Url,
    /// Empty when `unplayable`.
    pub segments: Segments,
    /// Why the Representation cannot be played (a malformed template, segments that cannot
    /// be derived); the rest of the MPD still resolves.
    pub unplayable: Option<String>,
    /// What the resolution repaired for this Representation (a live window trimmed to the
    /// newest segments).
    pub warnings: Vec<String>,
}

/// Start and duration of a Period on the presentation timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodTiming {
    pub start: Duration,
    pub duration: Option<Duration>,
}

impl Mpd {
    /// True for a live (`type="dynamic"`) MPD.
    pub fn is_dynamic(&self) -> bool {
        self.presentation_type == PresentationType::Dynamic
    }

    /// How often a client may re-fetch a dynamic MPD; `None` = it never changes.
    pub fn minimum_update_period(&self) -> Option<Duration> {
        self.minimum_update_period
    }

    /// How far behind the live edge a client should play.
    pub fn suggested_presentation_delay(&self) -> Option<Duration> {
        self.suggested_presentation_delay
    }

    /// The DVR window of a dynamic MPD; `None` = back to availabilityStartTime.
    pub fn time_shift_buffer_depth(&self) -> Option<Duration> {
        self.time_shift_buffer_depth
    }

    /// The clock-sync methods the MPD offers.
    pub fn utc_timings(&self) -> &[super::model::UtcTiming] {
        &self.utc_timings
    }

    /// Wall-clock time at which a media segment of a dynamic MPD becomes available (its end:
    /// availabilityStartTime + start + duration); `None` for a static MPD or without
    /// availabilityStartTime.
    pub fn availability_time(&self, segment: &MediaSegment) -> Option<SystemTime> {
        if !self.is_dynamic() {
            return None;
        }
        let ast: SystemTime = self.availability_start_time?.into();
        let end = Duration::try_from_secs_f64(segment.start + segment.duration).ok()?;
        ast.checked_add(end)
    }

    /// Start and duration of every Period: `@start`, else where the previous Period ends (0 for
    /// the first): its start plus its `@duration`, or, without one, plus the end of its
    /// segments (the longest AdaptationSet's first Representation, as listed on demand);
    /// duration from `@duration`, the next Period's start, or, for the last one,
    /// mediaPresentationDuration. A start that cannot be known is `None`.
    pub fn period_timings(&self) -> Vec<Option<PeriodTiming>> {
        let mut starts: Vec<Option<Duration>> = Vec::with_capacity(self.periods.len());
        for (i, p) in self.periods.iter().enumerate() {
            let start = match (p.start, i) {
                (Some(s), _) => Some(s),
                (None, 0) => Some(Duration::ZERO),
                (None, _) => {
                    let prev = &self.periods[i - 1];
                    match (starts[i - 1], prev.duration) {
                        (Some(s), Some(d)) => s.checked_add(d),
                        (Some(s), None) => self
                            .content_duration(prev, s)
                            .and_then(|d| s.checked_add(d)),
                        _ => None,
                    }
                }
            };
            starts.push(start);
        }
        (0..self.periods.len())
            .map(|i| {
                let start = starts[i]?;
                let duration = self.periods[i]
                    .duration
                    .or_else(|| match starts.get(i + 1) {
                        Some(next) => next.and_then(|n| n.checked_sub(start)),
                        None => self
                            .media_presentation_duration
                            .map(|m| m.saturating_sub(start)),
                    });
                Some(PeriodTiming { start, duration })
            })
            .collect()
    }

    /// How long the segments of a Period starting at `start` last, when the Period does not
    /// say: the furthest end over its AdaptationSets' first Representations (listed on
    /// demand, so an open-ended `$Number$` template gives nothing).
    fn content_duration(&self, period: &Period, start: Duration) -> Option<Duration> {
        let base = Url::parse("http://period.invalid/").ok()?;
        let mut end: Option<f64> = None;
        for set in &period.adaptation_sets {
            let Some(rep) = set.representations.first() else {
                continue;
            };
            let ctx = Ctx {
                rep,
                base: &base,
                timing: PeriodTiming {
                    start,
                    duration: None,
                },
                window: None,
                warnings: RefCell::new(Vec::new()),
            };
            let Ok(segs) = ctx.segments(period, set) else {
                continue;
            };
            if segs.addressing == Addressing::Base {
                continue;
            }
            if let Some(last) = segs.media.last() {
                let e = last.start + last.duration - start.as_secs_f64();
                end = Some(end.map_or(e, |x: f64| x.max(e)));
            }
        }
        Duration::try_from_secs_f64(end?).ok()
    }

    /// The resolved view of every Period, leniently: a Representation whose segments cannot
    /// be derived is listed with [`ResolvedRepresentation::unplayable`] saying why, a live
    /// window too long to list is trimmed to its newest [`LIVE_TRIM`], and a dynamic MPD
    /// without availabilityStartTime is listed as on demand. Only a Period whose start
    /// cannot be known fails the whole.
    pub fn resolve(&self, mpd_url: &Url, at: SegmentsAt) -> Result<Vec<ResolvedPeriod>, MpdError> {
        let timings = self.period_timings();
        let at = match at {
            SegmentsAt::Live(_) if self.is_dynamic() && self.availability_start_time.is_none() => {
                SegmentsAt::Vod
            }
            other => other,
        };
        let mut out = Vec::with_capacity(self.periods.len());
        for (pi, period) in self.periods.iter().enumerate() {
            let timing = timings[pi].ok_or_else(|| {
                MpdError::Resolve(format!("Period {pi}: its start time cannot be determined"))
            })?;
            let mut sets = Vec::with_capacity(period.adaptation_sets.len());
            for (ai, set) in period.adaptation_sets.iter().enumerate() {
                let mut reps = Vec::with_capacity(set.representations.len());
                for ri in 0..set.representations.len() {
                    let rep = match self.resolve_representation(pi, ai, ri, mpd_url, at) {
                        Ok(r) => r,
                        Err(e) => self.unplayable(pi, ai, ri, mpd_url, e.to_string()),
                    };
                    reps.push(rep);
                }
                sets.push(ResolvedAdaptationSet {
                    index: ai,
                    id: set.id.clone(),
                    kind: set.kind(),
                    lang: set.lang.clone(),
                    roles: set.roles.iter().filter_map(|r| r.value.clone()).collect(),
                    representations: reps,
                });
            }
            out.push(ResolvedPeriod {
                index: pi,
                id: period.id.clone(),
                start: timing.start.as_secs_f64(),
                duration: timing.duration.map(|d| d.as_secs_f64()),
                adaptation_sets: sets,
            });
        }
        Ok(out)
    }

    /// The segments of one Representation (indices into `periods`, `adaptation_sets`,
    /// `representations`).
    pub fn segments(
        &self,
        period: usize,
        adaptation_set: usize,
        representation: usize,
        mpd_url: &Url,
        at: SegmentsAt,
    ) -> Result<Segments, MpdError> {
        Ok(self
            .resolve_representation(period, adaptation_set, representation, mpd_url, at)?
            .segments)
    }

    /// A Representation that cannot be played: its attributes, no segments, and why.
    fn unplayable(
        &self,
        pi: usize,
        ai: usize,
        ri: usize,
        mpd_url: &Url,
        why: String,
    ) -> ResolvedRepresentation {
        let period = &self.periods[pi];
        let set = &period.adaptation_sets[ai];
        let rep = &set.representations[ri];
        let base_url = resolve_base(
            mpd_url,
            [
                &self.base_urls,
                &period.base_urls,
                &set.base_urls,
                &rep.base_urls,
            ],
        )
        .unwrap_or_else(|_| mpd_url.clone());
        let addressing = match addressing_kind(period, set, rep) {
            Kind::Template => {
                let t = effective_template(period, set, rep).unwrap_or_default();
                if t.segment_timeline.is_some() {
                    Addressing::TemplateTimeline
                } else {
                    Addressing::TemplateDuration
                }
            }
            Kind::List => Addressing::List,
            Kind::Base => Addressing::Base,
        };
        let segments = Segments {
            addressing,
            timescale: 1,
            init: None,
            index: None,
            media: Vec::new(),
        };
        inherit(ri, set, rep, base_url, segments, Some(why), Vec::new())
    }

    /// One Representation with inherited attributes and segments.
    pub fn resolve_representation(
        &self,
        pi: usize,
        ai: usize,
        ri: usize,
        mpd_url: &Url,
        at: SegmentsAt,
    ) -> Result<ResolvedRepresentation, MpdError> {
        let where_ = format!("Period {pi} AdaptationSet {ai} Representation {ri}");
        let period = self
            .periods
            .get(pi)
            .ok_or_else(|| MpdError::Resolve(format!("no Period {pi}")))?;
        let set = period
            .adaptation_sets
            .get(ai)
            .ok_or_else(|| MpdError::Resolve(format!("Period {pi} has no AdaptationSet {ai}")))?;
        let rep = set.representations.get(ri).ok_or_else(|| {
            MpdError::Resolve(format!(
                "Period {pi} AdaptationSet {ai} has no Representation {ri}"
            ))
        })?;
        let timing = self.period_timings()[pi].ok_or_else(|| {
            MpdError::Resolve(format!("Period {pi}: its start time cannot be determined"))
        })?;
        let base_url = resolve_base(
            mpd_url,
            [
                &self.base_urls,
                &period.base_urls,
                &set.base_urls,
                &rep.base_urls,
            ],
        )
        .map_err(|e| MpdError::Resolve(format!("{where_}: {e}")))?;
        let ctx = Ctx {
            rep,
            base: &base_url,
            timing,
            window: self.window(at, timing.start)?,
            warnings: RefCell::new(Vec::new()),
        };
        let segments = ctx
            .segments(period, set)
            .map_err(|e| MpdError::Resolve(format!("{where_}: {e}")))?;
        let warnings = ctx.warnings.into_inner();
        Ok(inherit(ri, set, rep, base_url, segments, None, warnings))
    }

    /// The live availability window relative to a Period's start, in nanoseconds, before the
    /// availabilityTimeOffset is added; `None` when every segment counts.
    fn window(
        &self,
        at: SegmentsAt,
        period_start: Duration,
    ) -> Result<Option<LiveWindow>, MpdError> {
        let SegmentsAt::Live(now) = at else {
            return Ok(None);
        };
        if !self.is_dynamic() {
            return Ok(None);
        }
        let ast = self.availability_start_time.ok_or_else(|| {
            MpdError::Resolve(
                "a dynamic MPD without availabilityStartTime has no live timeline".into(),
            )
        })?;
        let now: DateTime<Utc> = now.into();
        let since = now - ast;
        let since_ast = i128::from(since.num_seconds()) * NANOS + i128::from(since.subsec_nanos());
        let now_rel = since_ast - period_start.as_nanos() as i128;
        Ok(Some(LiveWindow {
            now_rel,
            tsbd: self.time_shift_buffer_depth,
        }))
    }
}

/// A resolved Representation from its model, with the AdaptationSet's attributes inherited.
fn inherit(
    index: usize,
    set: &AdaptationSet,
    rep: &Representation,
    base_url: Url,
    segments: Segments,
    unplayable: Option<String>,
    warnings: Vec<String>,
) -> ResolvedRepresentation {
    ResolvedRepresentation {
        index,
        id: rep.id.clone(),
        bandwidth: rep.bandwidth,
        width: rep.width.or(set.width),
        height: rep.height.or(set.height),
        frame_rate: rep.frame_rate.or(set.frame_rate),
        codecs: rep.codecs.clone().or_else(|| set.codecs.clone()),
        mime_type: rep.mime_type.clone().or_else(|| set.mime_type.clone()),
        audio_sampling_rate: rep
            .audio_sampling_rate
            .clone()
            .or_else(|| set.audio_sampling_rate.clone()),
        base_url,
        segments,
        unplayable,
        warnings,
    }
}

impl Period {
    /// AdaptationSets of one kind.
    pub fn adaptation_sets_of(&self, kind: ContentKind) -> impl Iterator<Item = &AdaptationSet> {
        self.adaptation_sets
            .iter()
            .filter(move |a| a.kind() == kind)
    }

    /// The video AdaptationSets.
    pub fn video_adaptation_sets(&self) -> impl Iterator<Item = &AdaptationSet> {
        self.adaptation_sets_of(ContentKind::Video)
    }

    /// The audio AdaptationSets.
    pub fn audio_adaptation_sets(&self) -> impl Iterator<Item = &AdaptationSet> {
        self.adaptation_sets_of(ContentKind::Audio)
    }
}

impl AdaptationSet {
    /// What the set carries, from `@contentType`, else `@mimeType` (its own or its first
    /// Representation's), else the codec.
    pub fn kind(&self) -> ContentKind {
        let first = self.representations.first();
        let from_type = |t: &str| match t.split('/').next().unwrap_or("") {
            "video" => Some(ContentKind::Video),
            "audio" => Some(ContentKind::Audio),
            "text" => Some(ContentKind::Text),
            "image" => Some(ContentKind::Image),
            "application" if t.contains("ttml") => Some(ContentKind::Text),
            _ => None,
        };
        if let Some(k) = self.content_type.as_deref().and_then(from_type) {
            return k;
        }
        let mime = self
            .mime_type
            .as_deref()
            .or_else(|| first.and_then(|r| r.mime_type.as_deref()));
        if let Some(k) = mime.and_then(from_type) {
            return k;
        }
        let codecs = self
            .codecs
            .as_deref()
            .or_else(|| first.and_then(|r| r.codecs.as_deref()))
            .unwrap_or("");
        let four = codecs.split('.').next().unwrap_or("");
        match four {
            "avc1" | "avc3" | "hvc1" | "hev1" | "vp08" | "vp09" | "av01" | "dvh1" | "dvhe" => {
                ContentKind::Video
            }
            "mp4a" | "ac-3" | "ec-3" | "ac-4" | "opus" | "flac" | "dtsc" => ContentKind::Audio,
            "stpp" | "wvtt" => ContentKind::Text,
            _ => ContentKind::Other,
        }
    }

    /// The Representations from the lowest to the highest bandwidth.
    pub fn representations_by_bandwidth(&self) -> Vec<&Representation> {
        let mut v: Vec<&Representation> = self.representations.iter().collect();
        v.sort_by_key(|r| r.bandwidth);
        v
    }
}

/// Resolves the first BaseURL of each level in turn against the MPD URL (RFC 3986).
pub fn resolve_base(mpd_url: &Url, levels: [&Vec<BaseUrl>; 4]) -> Result<Url, String> {
    let mut base = mpd_url.clone();
    for level in levels {
        if let Some(b) = level.first() {
            let text = b.url.trim();
            base = base
                .join(text)
                .map_err(|e| format!("bad BaseURL `{text}`: {e}"))?;
        }
    }
    Ok(base)
}

fn pick<T: Clone>(child: &Option<T>, parent: &Option<T>) -> Option<T> {
    child.clone().or_else(|| parent.clone())
}

fn merge_template(parent: &SegmentTemplate, c: &SegmentTemplate) -> SegmentTemplate {
    let p = parent;
    SegmentTemplate {
        timescale: c.timescale.or(p.timescale),
        presentation_time_offset: c.presentation_time_offset.or(p.presentation_time_offset),
        time_shift_buffer_depth: c.time_shift_buffer_depth.or(p.time_shift_buffer_depth),
        availability_time_offset: c.availability_time_offset.or(p.availability_time_offset),
        availability_time_complete: c
            .availability_time_complete
            .or(p.availability_time_complete),
        duration: c.duration.or(p.duration),
        start_number: c.start_number.or(p.start_number),
        end_number: c.end_number.or(p.end_number),
        media: pick(&c.media, &p.media),
        index: pick(&c.index, &p.index),
        initialization: pick(&c.initialization, &p.initialization),
        bitstream_switching: pick(&c.bitstream_switching, &p.bitstream_switching),
        initialization_element: pick(&c.initialization_element, &p.initialization_element),
        representation_index: pick(&c.representation_index, &p.representation_index),
        segment_timeline: pick(&c.segment_timeline, &p.segment_timeline),
    }
}

fn merge_list(parent: &SegmentList, c: &SegmentList) -> SegmentList {
    let p = parent;
    SegmentList {
        timescale: c.timescale.or(p.timescale),
        presentation_time_offset: c.presentation_time_offset.or(p.presentation_time_offset),
        time_shift_buffer_depth: c.time_shift_buffer_depth.or(p.time_shift_buffer_depth),
        availability_time_offset: c.availability_time_offset.or(p.availability_time_offset),
        duration: c.duration.or(p.duration),
        start_number: c.start_number.or(p.start_number),
        initialization: pick(&c.initialization, &p.initialization),
        representation_index: pick(&c.representation_index, &p.representation_index),
        segment_timeline: pick(&c.segment_timeline, &p.segment_timeline),
        segment_urls: if c.segment_urls.is_empty() {
            p.segment_urls.clone()
        } else {
            c.segment_urls.clone()
        },
    }
}

fn merge_base(parent: &SegmentBase, c: &SegmentBase) -> SegmentBase {
    let p = parent;
    SegmentBase {
        timescale: c.timescale.or(p.timescale),
        presentation_time_offset: c.presentation_time_offset.or(p.presentation_time_offset),
        presentation_duration: c.presentation_duration.or(p.presentation_duration),
        time_shift_buffer_depth: c.time_shift_buffer_depth.or(p.time_shift_buffer_depth),
        index_range: c.index_range.or(p.index_range),
        index_range_exact: c.index_range_exact.or(p.index_range_exact),
        availability_time_offset: c.availability_time_offset.or(p.availability_time_offset),
        availability_time_complete: c
            .availability_time_complete
            .or(p.availability_time_complete),
        initialization: pick(&c.initialization, &p.initialization),
        representation_index: pick(&c.representation_index, &p.representation_index),
    }
}

fn merge_levels<T: Clone>(levels: [Option<&T>; 3], merge: fn(&T, &T) -> T) -> Option<T> {
    let mut acc: Option<T> = None;
    for level in levels.into_iter().flatten() {
        acc = Some(match acc {
            Some(parent) => merge(&parent, level),
            None => level.clone(),
        });
    }
    acc
}

/// The SegmentTemplate a Representation uses: Period, AdaptationSet and Representation
/// templates merged attribute by attribute, the lower level winning.
pub fn effective_template(
    period: &Period,
    set: &AdaptationSet,
    rep: &Representation,
) -> Option<SegmentTemplate> {
    merge_levels(
        [
            period.segment_template.as_ref(),
            set.segment_template.as_ref(),
            rep.segment_template.as_ref(),
        ],
        merge_template,
    )
}

/// The SegmentList a Representation uses (merged like [`effective_template`]).
pub fn effective_list(
    period: &Period,
    set: &AdaptationSet,
    rep: &Representation,
) -> Option<SegmentList> {
    merge_levels(
        [
            period.segment_list.as_ref(),
            set.segment_list.as_ref(),
            rep.segment_list.as_ref(),
        ],
        merge_list,
    )
}

/// The SegmentBase a Representation uses (merged like [`effective_template`]).
pub fn effective_base(
    period: &Period,
    set: &AdaptationSet,
    rep: &Representation,
) -> Option<SegmentBase> {
    merge_levels(
        [
            period.segment_base.as_ref(),
            set.segment_base.as_ref(),
            rep.segment_base.as_ref(),
        ],
        merge_base,
    )
}

#[derive(Clone, Copy)]
enum Kind {
    Template,
    List,
    Base,
}

/// The addressing kind of the lowest level that declares one (Representation first).
fn addressing_kind(period: &Period, set: &AdaptationSet, rep: &Representation) -> Kind {
    let level = |t: bool, l: bool, b: bool| {
        if t {
            Some(Kind::Template)
        } else if l {
            Some(Kind::List)
        } else if b {
            Some(Kind::Base)
        } else {
            None
        }
    };
    level(
        rep.segment_template.is_some(),
        rep.segment_list.is_some(),
        rep.segment_base.is_some(),
    )
    .or_else(|| {
        level(
            set.segment_template.is_some(),
            set.segment_list.is_some(),
            set.segment_base.is_some(),
        )
    })
    .or_else(|| {
        level(
            period.segment_template.is_some(),
            period.segment_list.is_some(),
            period.segment_base.is_some(),
        )
    })
    .unwrap_or(Kind::Base)
}

#[derive(Clone, Copy)]
struct LiveWindow {
    /// Wall clock now minus the Period's wall-clock start, nanoseconds.
    now_rel: i128,
    tsbd: Option<Duration>,
}

/// A run of equal segments before filtering: the `j`-th (0-based) starts at `t0 + j*d`.
struct Run {
    t0: i128,
    d: i128,
    /// Number of segments; `None` = unbounded (a live `r="-1"` or `@duration` without an end).
    count: Option<i128>,
    number0: u64,
    index0: u64,
}

/// The runs' segment index ranges kept, `(run, first j, last j)`, and how many segments they
/// hold.
type Spans = (Vec<(usize, i128, i128)>, i128);

/// A segment before URL expansion.
struct Raw {
    time: u64,
    d: u64,
    number: u64,
    index: u64,
}

struct Ctx<'a> {
    rep: &'a Representation,
    base: &'a Url,
    timing: PeriodTiming,
    window: Option<LiveWindow>,
    /// What the resolution repaired.
    warnings: RefCell<Vec<String>>,
}

fn floor_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

impl Ctx<'_> {
    fn segments(&self, period: &Period, set: &AdaptationSet) -> Result<Segments, String> {
        match addressing_kind(period, set, self.rep) {
            Kind::Template => {
                let t = effective_template(period, set, self.rep).ok_or("no SegmentTemplate")?;
                self.template_segments(&t)
            }
            Kind::List => {
                let l = effective_list(period, set, self.rep).ok_or("no SegmentList")?;
                self.list_segments(&l)
            }
            Kind::Base => {
                let b = effective_base(period, set, self.rep).unwrap_or_default();
                self.base_segments(&b)
            }
        }
    }

    fn join(&self, relative: &str) -> Result<Url, String> {
        self.base
            .join(relative)
            .map_err(|e| format!("bad segment URL `{relative}`: {e}"))
    }

    fn url_ref(&self, u: &UrlType) -> Result<SegmentRef, String> {
        let url = match &u.source_url {
            Some(s) => self.join(s)?,
            None => self.base.clone(),
        };
        Ok(SegmentRef {
            url,
            range: u.range,
        })
    }

    fn vars(&self, number: u64, time: u64) -> TemplateVars<'_> {
        TemplateVars {
            representation_id: &self.rep.id,
            bandwidth: self.rep.bandwidth,
            number,
            time,
        }
    }

    /// The Period's end in media time (timescale units, presentationTimeOffset included).
    fn period_end_media(&self, timescale: u32, pto: u64) -> Option<i128> {
        self.timing.duration.map(|d| {
            ceil_div(d.as_nanos() as i128 * i128::from(timescale), NANOS) + i128::from(pto)
        })
    }

    /// Bounds on a segment's END in media time for the live window.
    fn window_media(
        &self,
        timescale: u32,
        pto: u64,
        ato: Option<f64>,
        tsbd: Option<Duration>,
    ) -> Option<(i128, i128)> {
        let w = self.window?;
        let ts = i128::from(timescale);
        let ato_ns = match ato {
            Some(a) if a.is_infinite() && a > 0.0 => i128::MAX / 4 / ts.max(1),
            Some(a) if a > 0.0 => (a * 1e9) as i128,
            _ => 0,
        };
        let hi = floor_div(w.now_rel.saturating_add(ato_ns).saturating_mul(ts), NANOS)
            .saturating_add(i128::from(pto));
        let lo = match tsbd.or(w.tsbd) {
            Some(t) => ceil_div(
                w.now_rel
                    .saturating_sub(t.as_nanos() as i128)
                    .saturating_mul(ts),
                NANOS,
            )
            .saturating_add(i128::from(pto)),
            None => i128::MIN / 4,
        };
        Some((lo, hi))
    }

    /// Expands runs into segments, keeping those inside the live window and starting before
    /// the Period ends. More than [`MAX_SEGMENTS`] is an error on demand; live, the window is
    /// cut to its newest [`LIVE_TRIM`] (and at most `MAX_SEGMENTS`), with a warning.
    fn expand(
        &self,
        runs: &[Run],
        window: Option<(i128, i128)>,
        period_end: Option<i128>,
        timescale: u32,
    ) -> Result<Vec<Raw>, String> {
        let span_of = |window: Option<(i128, i128)>| -> Result<Spans, String> {
            let mut spans = Vec::new();
            let mut total: i128 = 0;
            for (k, run) in runs.iter().enumerate() {
                let mut j_lo: i128 = 0;
                let mut j_hi: Option<i128> = run.count.map(|c| c - 1);
                if let Some(end) = period_end {
                    let last = ceil_div(end - run.t0, run.d) - 1;
                    j_hi = Some(j_hi.map_or(last, |h| h.min(last)));
                }
                if let Some((lo, hi)) = window {
                    j_lo = j_lo.max(ceil_div(lo - run.t0, run.d) - 1);
                    let last = floor_div(hi - run.t0, run.d) - 1;
                    j_hi = Some(j_hi.map_or(last, |h| h.min(last)));
                }
                let Some(j_hi) = j_hi else {
                    return Err("the number of segments is unbounded (no Period duration, no mediaPresentationDuration)".into());
                };
                if j_hi < j_lo {
                    continue;
                }
                total = total.saturating_add(j_hi - j_lo + 1);
                spans.push((k, j_lo, j_hi));
            }
            Ok((spans, total))
        };
        let (mut spans, mut total) = span_of(window)?;
        if total > MAX_SEGMENTS as i128 {
            let Some((lo, hi)) = window else {
                return Err(format!("more than {MAX_SEGMENTS} segments"));
            };
            let trim = ceil_div(LIVE_TRIM.as_nanos() as i128 * i128::from(timescale), NANOS);
            // Ends in (hi - LIVE_TRIM, hi].
            (spans, total) = span_of(Some((lo.max(hi.saturating_sub(trim) + 1), hi)))?;
            // Still too many (segments shorter than LIVE_TRIM / MAX_SEGMENTS): the newest.
            let mut excess = total - MAX_SEGMENTS as i128;
            for span in spans.iter_mut() {
                if excess <= 0 {
                    break;
                }
                let n = span.2 - span.1 + 1;
                let cut = n.min(excess);
                span.1 += cut;
                excess -= cut;
            }
            spans.retain(|s| s.1 <= s.2);
            self.warnings.borrow_mut().push(format!(
                "the live window holds more than {MAX_SEGMENTS} segments (no timeShiftBufferDepth, an old availabilityStartTime?): only those ending in the last {} s are listed",
                LIVE_TRIM.as_secs()
            ));
        }
        let mut out: Vec<Raw> = Vec::new();
        for (k, j_lo, j_hi) in spans {
            let run = &runs[k];
            for j in j_lo..=j_hi {
                let time = run.t0 + j * run.d;
                let conv =
                    |v: i128| u64::try_from(v).map_err(|_| "segment time out of range".to_string());
                out.push(Raw {
                    time: conv(time)?,
                    d: conv(run.d)?,
                    number: run
                        .number0
                        .checked_add(conv(j)?)
                        .ok_or("segment number overflows")?,
                    index: run
                        .index0
                        .checked_add(conv(j)?)
                        .ok_or("segment index overflows")?,
                });
            }
        }
        Ok(out)
    }

    /// Runs of a SegmentTimeline.
    fn timeline_runs(
        &self,
        tl: &SegmentTimeline,
        start_number: u64,
        period_end: Option<i128>,
    ) -> Result<Vec<Run>, String> {
        let mut runs = Vec::with_capacity(tl.entries.len());
        let mut next_t: i128 = 0;
        // The furthest end listed so far: an S@t going back (or overlapping) keeps its own
        // times, as dash.js does, but its segments ending by then are skipped.
        let mut latest: Option<i128> = None;
        let mut number = start_number;
        let mut index: u64 = 0;
        for (i, s) in tl.entries.iter().enumerate() {
            let t0 = s.t.map_or(next_t, i128::from);
            if let Some(n) = s.n {
                number = n;
            }
            let d = i128::from(s.d);
            if d == 0 {
                return Err(format!("S[{i}] has d=0"));
            }
            let count = match s.r.unwrap_or(0) {
                -1 => match tl.entries.get(i + 1).and_then(|n| n.t) {
                    Some(next) => Some(ceil_div(i128::from(next) - t0, d).max(0)),
                    None => period_end.map(|end| ceil_div(end - t0, d).max(0)),
                },
                r if r >= 0 => Some(i128::from(r) + 1),
                r => return Err(format!("S[{i}] has r={r}")),
            };
            if count.is_none() && self.window.is_none() {
                return Err(format!("S[{i}] has r=-1 and the Period has no known end"));
            }
            let skip = match latest {
                Some(l) if t0 < l => {
                    let behind = floor_div(l - t0, d);
                    count.map_or(behind, |c| behind.min(c))
                }
                _ => 0,
            };
            let skip64 = u64::try_from(skip).map_err(|_| "segment count out of range")?;
            runs.push(Run {
                t0: t0 + skip * d,
                d,
                count: count.map(|c| c - skip),
                number0: number
                    .checked_add(skip64)
                    .ok_or("segment number overflows")?,
                index0: index.checked_add(skip64).ok_or("segment count overflows")?,
            });
            let Some(c) = count else { break };
            latest = Some(latest.map_or(t0 + c * d, |l| l.max(t0 + c * d)));
            let c64 = u64::try_from(c).map_err(|_| "segment count out of range")?;
            next_t = t0 + c * d;
            number = number.checked_add(c64).ok_or("segment number overflows")?;
            index = index.checked_add(c64).ok_or("segment count overflows")?;
        }
        Ok(runs)
    }

    fn media_segment(
        &self,
        raw: &Raw,
        url: Url,
        range: Option<ByteRange>,
        timescale: u32,
        pto: u64,
        period_end: Option<i128>,
    ) -> MediaSegment {
        let ts = f64::from(timescale);
        let mut d = raw.d as f64;
        if let Some(end) = period_end {
            let left = end - i128::from(raw.time);
            if left > 0 && (left as f64) < d {
                d = left as f64;
            }
        }
        MediaSegment {
            url,
            range,
            number: raw.number,
            time: raw.time,
            start: self.timing.start.as_secs_f64() + (raw.time as f64 - pto as f64) / ts,
            duration: d / ts,
        }
    }

    fn template_segments(&self, t: &SegmentTemplate) -> Result<Segments, String> {
        let timescale = t.timescale.unwrap_or(1);
        if timescale == 0 {
            return Err("timescale is zero".into());
        }
        let pto = t.presentation_time_offset.unwrap_or(0);
        let start_number = u64::from(t.start_number.unwrap_or(1));
        let media = Template::parse(t.media.as_deref().ok_or("SegmentTemplate has no @media")?)?;
        let init = match (&t.initialization, &t.initialization_element) {
            (Some(text), _) => {
                let init = Template::parse(text)?;
                if init.uses_number() || init.uses_time() {
                    return Err(format!(
                        "initialization template `{text}` must not use $Number$ or $Time$"
                    ));
                }
                Some(SegmentRef {
                    url: self.join(&init.expand(&self.vars(0, 0)))?,
                    range: None,
                })
            }
            (None, Some(u)) => Some(self.url_ref(u)?),
            (None, None) => None,
        };
        let index = t
            .representation_index
            .as_ref()
            .map(|u| self.url_ref(u))
            .transpose()?;
        let period_end = self.period_end_media(timescale, pto);
        let window = self.window_media(
            timescale,
            pto,
            t.availability_time_offset,
            t.time_shift_buffer_depth,
        );
        let (addressing, runs) = match (&t.segment_timeline, t.duration) {
            (Some(tl), _) => (
                Addressing::TemplateTimeline,
                self.timeline_runs(tl, start_number, period_end)?,
            ),
            (None, Some(d)) => {
                if media.uses_time() {
                    return Err("$Time$ needs a SegmentTimeline".into());
                }
                let count = t
                    .end_number
                    .map(|e| i128::from(e) - start_number as i128 + 1);
                (
                    Addressing::TemplateDuration,
                    vec![Run {
                        t0: i128::from(pto),
                        d: i128::from(d),
                        count,
                        number0: start_number,
                        index0: 0,
                    }],
                )
            }
            (None, None) => {
                return Err("SegmentTemplate has neither @duration nor a SegmentTimeline".into())
            }
        };
        let raws = self.expand(&runs, window, period_end, timescale)?;
        let mut out = Vec::with_capacity(raws.len());
        for raw in &raws {
            let url = self.join(&media.expand(&self.vars(raw.number, raw.time)))?;
            out.push(self.media_segment(raw, url, None, timescale, pto, period_end));
        }
        Ok(Segments {
            addressing,
            timescale,
            init,
            index,
            media: out,
        })
    }

    fn list_segments(&self, l: &SegmentList) -> Result<Segments, String> {
        let timescale = l.timescale.unwrap_or(1);
        if timescale == 0 {
            return Err("timescale is zero".into());
        }
        let pto = l.presentation_time_offset.unwrap_or(0);
        let start_number = u64::from(l.start_number.unwrap_or(1));
        let init = l
            .initialization
            .as_ref()
            .map(|u| self.url_ref(u))
            .transpose()?;
        let index = l
            .representation_index
            .as_ref()
            .map(|u| self.url_ref(u))
            .transpose()?;
        let n = l.segment_urls.len() as i128;
        let period_end = self.period_end_media(timescale, pto);
        let window = self.window_media(
            timescale,
            pto,
            l.availability_time_offset,
            l.time_shift_buffer_depth,
        );
        let runs = match (&l.segment_timeline, l.duration) {
            (Some(tl), _) => self.timeline_runs(tl, start_number, period_end)?,
            (None, Some(d)) => vec![Run {
                t0: i128::from(pto),
                d: i128::from(d),
                count: Some(n),
                number0: start_number,
                index0: 0,
            }],
            (None, None) if n <= 1 => {
                let d = period_end.map_or(1, |e| (e - i128::from(pto)).max(1));
                vec![Run {
                    t0: i128::from(pto),
                    d,
                    count: Some(n),
                    number0: start_number,
                    index0: 0,
                }]
            }
            (None, None) => {
                return Err(
                    "SegmentList with several SegmentURLs needs @duration or a SegmentTimeline"
                        .into(),
                )
            }
        };
        let raws = self.expand(&runs, window, period_end, timescale)?;
        let mut out = Vec::with_capacity(raws.len());
        for raw in &raws {
            let Some(su) = usize::try_from(raw.index)
                .ok()
                .and_then(|i| l.segment_urls.get(i))
            else {
                break;
            };
            let url = match &su.media {
                Some(m) => self.join(m)?,
                None => self.base.clone(),
            };
            out.push(self.media_segment(raw, url, su.media_range, timescale, pto, period_end));
        }
        Ok(Segments {
            addressing: Addressing::List,
            timescale,
            init,
            index,
            media: out,
        })
    }

    fn base_segments(&self, b: &SegmentBase) -> Result<Segments, String> {
        let timescale = b.timescale.unwrap_or(1);
        if timescale == 0 {
            return Err("timescale is zero".into());
        }
        let init = b
            .initialization
            .as_ref()
            .map(|u| self.url_ref(u))
            .transpose()?;
        let index = match (&b.representation_index, b.index_range) {
            (Some(u), _) => Some(self.url_ref(u)?),
            (None, Some(r)) => Some(SegmentRef {
                url: self.base.clone(),
                range: Some(r),
            }),
            (None, None) => None,
        };
        let duration = self.timing.duration.map_or(0.0, |d| d.as_secs_f64());
        let media = vec![MediaSegment {
            url: self.base.clone(),
            range: None,
            number: 1,
            time: b.presentation_time_offset.unwrap_or(0),
            start: self.timing.start.as_secs_f64(),
            duration,
        }];
        Ok(Segments {
            addressing: Addressing::Base,
            timescale,
            init,
            index,
            media,
        })
    }
}
