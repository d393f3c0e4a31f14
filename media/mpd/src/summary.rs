//! A printable digest of an MPD (what `cdn mpd` shows): Periods, AdaptationSets and
//! Representations with bandwidth, resolution, codecs, segment count and total duration.

use std::fmt::Write;

use serde::Serialize;
use url::Url;

use super::resolve::{Addressing, ContentKind, SegmentsAt};
use super::values::PresentationType;
use super::{Mpd, MpdError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub url: String,
    #[serde(rename = "type")]
    pub presentation_type: PresentationType,
    pub profiles: String,
    /// mediaPresentationDuration, seconds.
    pub duration: Option<f64>,
    pub min_buffer_time: Option<f64>,
    pub periods: Vec<PeriodSummary>,
    /// What a lenient reading repaired or set aside (the caller may add the parser's
    /// [`crate::Warning`]s in front).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodSummary {
    pub id: Option<String>,
    pub start: f64,
    pub duration: Option<f64>,
    pub adaptation_sets: Vec<AdaptationSetSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdaptationSetSummary {
    pub id: Option<String>,
    pub kind: ContentKind,
    pub lang: Option<String>,
    pub representations: Vec<RepresentationSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepresentationSummary {
    pub id: String,
    pub bandwidth: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<String>,
    pub codecs: Option<String>,
    pub mime_type: Option<String>,
    pub addressing: Addressing,
    pub segment_count: usize,
    /// Sum of the segment durations, seconds.
    pub duration: f64,
    /// Why the Representation cannot be played, when it cannot.
    pub unplayable: Option<String>,
}

impl Summary {
    /// Summarizes `mpd`, listing segments as `at` says (use `SegmentsAt::Live(now)` for a
    /// dynamic MPD to count what is available now).
    pub fn new(mpd: &Mpd, mpd_url: &Url, at: SegmentsAt) -> Result<Summary, MpdError> {
        let resolved = mpd.resolve(mpd_url, at)?;
        let mut warnings: Vec<String> = Vec::new();
        for r in resolved
            .iter()
            .flat_map(|p| &p.adaptation_sets)
            .flat_map(|a| &a.representations)
        {
            for w in &r.warnings {
                let w = format!("Representation {}: {w}", r.id);
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
        let periods = resolved
            .into_iter()
            .map(|p| PeriodSummary {
                id: p.id,
                start: p.start,
                duration: p.duration,
                adaptation_sets: p
                    .adaptation_sets
                    .into_iter()
                    .map(|a| AdaptationSetSummary {
                        id: a.id,
                        kind: a.kind,
                        lang: a.lang,
                        representations: a
                            .representations
                            .into_iter()
                            .map(|r| RepresentationSummary {
                                duration: r.segments.total_duration(),
                                segment_count: r.segments.media.len(),
                                addressing: r.segments.addressing,
                                id: r.id,
                                bandwidth: r.bandwidth,
                                width: r.width,
                                height: r.height,
                                frame_rate: r.frame_rate.map(|f| f.to_string()),
                                codecs: r.codecs,
                                mime_type: r.mime_type,
                                unplayable: r.unplayable,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Summary {
            url: mpd_url.to_string(),
            presentation_type: mpd.presentation_type,
            profiles: mpd.profiles.clone(),
            duration: mpd.media_presentation_duration.map(|d| d.as_secs_f64()),
            min_buffer_time: mpd.min_buffer_time.map(|d| d.as_secs_f64()),
            periods,
            warnings,
        })
    }

    /// Human-readable text, one line per Period, AdaptationSet and Representation.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let kind = match self.presentation_type {
            PresentationType::Static => "static",
            PresentationType::Dynamic => "dynamic",
        };
        let _ = writeln!(s, "{} ({kind}, {} period(s))", self.url, self.periods.len());
        if let Some(d) = self.duration {
            let _ = writeln!(s, "duration {d:.3} s");
        }
        if let Some(b) = self.min_buffer_time {
            let _ = writeln!(s, "minBufferTime {b:.3} s");
        }
        let _ = writeln!(s, "profiles {}", self.profiles);
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        for (pi, p) in self.periods.iter().enumerate() {
            let dur = p
                .duration
                .map_or("open".to_string(), |d| format!("{d:.3} s"));
            let _ = writeln!(
                s,
                "Period {pi} id={} start {:.3} s duration {dur}",
                p.id.as_deref().unwrap_or("-"),
                p.start
            );
            for (ai, a) in p.adaptation_sets.iter().enumerate() {
                let kind = a.kind.as_str();
                let lang = a
                    .lang
                    .as_deref()
                    .map(|l| format!(" lang={l}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  AdaptationSet {ai} id={} {kind}{lang}",
                    a.id.as_deref().unwrap_or("-")
                );
                for r in &a.representations {
                    let res = match (r.width, r.height) {
                        (Some(w), Some(h)) => format!("{w}x{h}"),
                        _ => "-".into(),
                    };
                    let _ = writeln!(
                        s,
                        "    {:<12} {:>10} b/s  {:<10} {:<8} {:<24} {:>6} segments  {:.3} s",
                        r.id,
                        r.bandwidth,
                        res,
                        r.frame_rate
                            .as_deref()
                            .map(|f| format!("{f}fps"))
                            .unwrap_or_else(|| "-".into()),
                        r.codecs.as_deref().unwrap_or("-"),
                        r.segment_count,
                        r.duration
                    );
                    if let Some(why) = &r.unplayable {
                        let _ = writeln!(s, "      unplayable: {why}");
                    }
                }
            }
        }
        s
    }
}
