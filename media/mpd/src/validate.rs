//! Semantic checks of a model. The lenient level (run by the parser) rejects only values no
//! player could use (zero timescale, misplaced `r="-1"`, ...) and turns into warnings what
//! browser players get past (a malformed `$...$` template, which makes only the Representations
//! using it unplayable; `S@t` values that overlap or go back; a dynamic MPD without
//! availabilityStartTime; Period starts left to inference); the strict level (run by the
//! writer) refuses all of those and adds what the DASH MPD schema and DASH-IF rules require.

use std::collections::HashSet;

use super::locate::Step;
use super::model::{
    AdaptationSet, Descriptor, Mpd, Period, Representation, SegmentList, SegmentTemplate,
    SegmentTimeline,
};
use super::resolve::effective_template;
use super::template::Template;
use super::values::PresentationType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Lenient,
    Strict,
}

/// A failed check: the element (as a model path), the attribute, and what is wrong.
#[derive(Debug)]
pub(crate) struct Issue {
    pub path: Vec<Step>,
    pub attr: Option<&'static str>,
    pub message: String,
}

impl Issue {
    /// The element path as text, e.g. `MPD/Period[0]/AdaptationSet[1]/@id`.
    pub fn describe(&self) -> String {
        let mut s = String::from("MPD");
        for (name, i) in &self.path {
            s.push_str(&format!("/{name}[{i}]"));
        }
        if let Some(a) = self.attr {
            s.push_str(&format!("/@{a}"));
        }
        format!("{s}: {}", self.message)
    }
}

type Check = Result<(), Issue>;

struct Checker {
    level: Level,
    path: Vec<Step>,
    warnings: Vec<Issue>,
}

impl Checker {
    /// A failure when strict, a warning (and the check goes on) when lenient.
    fn repairable(&mut self, attr: Option<&'static str>, message: impl Into<String>) -> Check {
        if self.strict() {
            return self.fail(attr, message);
        }
        self.warnings.push(Issue {
            path: self.path.clone(),
            attr,
            message: message.into(),
        });
        Ok(())
    }

    fn fail(&self, attr: Option<&'static str>, message: impl Into<String>) -> Check {
        Err(Issue {
            path: self.path.clone(),
            attr,
            message: message.into(),
        })
    }

    fn strict(&self) -> bool {
        self.level == Level::Strict
    }

    fn within<F: FnOnce(&mut Checker) -> Check>(
        &mut self,
        name: &'static str,
        index: usize,
        f: F,
    ) -> Check {
        self.path.push((name, index));
        let r = f(self);
        self.path.pop();
        r
    }
}

/// Checks `mpd`; the warnings (lenient level only) are what the reading repaired or left
/// unplayable.
pub(crate) fn check(mpd: &Mpd, level: Level) -> Result<Vec<Issue>, Issue> {
    let mut c = Checker {
        level,
        path: Vec::new(),
        warnings: Vec::new(),
    };
    check_mpd(&mut c, mpd)?;
    Ok(c.warnings)
}

fn check_mpd(c: &mut Checker, mpd: &Mpd) -> Check {
    if !c.strict()
        && mpd.presentation_type == PresentationType::Dynamic
        && mpd.availability_start_time.is_none()
    {
        c.repairable(
            None,
            "a dynamic MPD without availabilityStartTime has no live edge: it can be summarised, not played",
        )?;
    }
    if c.strict() {
        check_profiles(c, &mpd.profiles)?;
        if mpd.min_buffer_time.is_none() {
            return c.fail(None, "minBufferTime is required");
        }
        if mpd.periods.is_empty() {
            return c.fail(None, "an MPD needs at least one Period");
        }
        match mpd.presentation_type {
            PresentationType::Dynamic => {
                if mpd.availability_start_time.is_none() {
                    return c.fail(None, "a dynamic MPD needs availabilityStartTime");
                }
                if mpd.publish_time.is_none() {
                    return c.fail(None, "a dynamic MPD needs publishTime");
                }
            }
            PresentationType::Static => {
                if mpd.media_presentation_duration.is_none() {
                    return c.fail(None, "a static MPD needs mediaPresentationDuration");
                }
            }
        }
        for (i, t) in mpd.utc_timings.iter().enumerate() {
            c.within("UTCTiming", i, |c| check_descriptor(c, t))?;
        }
        for (i, d) in mpd.essential_properties.iter().enumerate() {
            c.within("EssentialProperty", i, |c| check_descriptor(c, d))?;
        }
        for (i, d) in mpd.supplemental_properties.iter().enumerate() {
            c.within("SupplementalProperty", i, |c| check_descriptor(c, d))?;
        }
        for (i, p) in mpd.program_information.iter().enumerate() {
            if let Some(lang) = &p.lang {
                c.within("ProgramInformation", i, |c| check_lang(c, lang))?;
            }
        }
    }
    let mut period_ids = HashSet::new();
    for (i, period) in mpd.periods.iter().enumerate() {
        let previous = i.checked_sub(1).and_then(|p| mpd.periods.get(p));
        c.within("Period", i, |c| {
            if !c.strict() && period.start.is_none() {
                match previous {
                    None if mpd.presentation_type == PresentationType::Dynamic => c.repairable(
                        None,
                        "the first Period of a dynamic MPD has no @start: taken as 0",
                    )?,
                    Some(prev) if prev.duration.is_none() => c.repairable(
                        None,
                        format!(
                            "Period {i} has no @start and Period {} no @duration: its start is inferred from the end of the previous Period's segments",
                            i - 1
                        ),
                    )?,
                    _ => {}
                }
            }
            if c.strict() {
                match &period.id {
                    Some(id) if !period_ids.insert(id.clone()) => {
                        return c.fail(Some("id"), format!("duplicate Period id `{id}`"));
                    }
                    None if mpd.presentation_type == PresentationType::Dynamic => {
                        return c.fail(Some("id"), "every Period of a dynamic MPD needs an id");
                    }
                    _ => {}
                }
            }
            check_period(c, period)
        })?;
    }
    Ok(())
}

fn check_period(c: &mut Checker, period: &Period) -> Check {
    check_addressing(
        c,
        period.segment_template.as_ref(),
        period.segment_list.as_ref(),
        period.segment_base.as_ref().and_then(|b| b.timescale),
    )?;
    let mut as_ids = HashSet::new();
    let mut rep_ids = HashSet::new();
    for (i, set) in period.adaptation_sets.iter().enumerate() {
        c.within("AdaptationSet", i, |c| {
            if c.strict() {
                if let Some(id) = &set.id {
                    if id.parse::<u32>().is_err() {
                        return c.fail(
                            Some("id"),
                            format!("AdaptationSet id `{id}` must be an unsigned integer"),
                        );
                    }
                    if !as_ids.insert(id.clone()) {
                        return c.fail(Some("id"), format!("duplicate AdaptationSet id `{id}`"));
                    }
                }
                check_adaptation_set_strict(c, set)?;
            }
            check_addressing(
                c,
                set.segment_template.as_ref(),
                set.segment_list.as_ref(),
                set.segment_base.as_ref().and_then(|b| b.timescale),
            )?;
            for (k, rep) in set.representations.iter().enumerate() {
                c.within("Representation", k, |c| {
                    if c.strict() {
                        if !rep_ids.insert(rep.id.clone()) {
                            return c.fail(
                                Some("id"),
                                format!("duplicate Representation id `{}`", rep.id),
                            );
                        }
                        check_representation_strict(c, rep)?;
                        if let Some(t) = effective_template(period, set, rep) {
                            check_effective_template(c, &t)?;
                        }
                    }
                    check_addressing(
                        c,
                        rep.segment_template.as_ref(),
                        rep.segment_list.as_ref(),
                        rep.segment_base.as_ref().and_then(|b| b.timescale),
                    )
                })?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Checks of the SegmentTemplate / SegmentList / SegmentBase found at one level.
fn check_addressing(
    c: &mut Checker,
    template: Option<&SegmentTemplate>,
    list: Option<&SegmentList>,
    base_timescale: Option<u32>,
) -> Check {
    if base_timescale == Some(0) {
        return c.within("SegmentBase", 0, |c| {
            c.fail(Some("timescale"), "timescale must not be zero")
        });
    }
    if let Some(t) = template {
        c.within("SegmentTemplate", 0, |c| {
            if t.timescale == Some(0) {
                return c.fail(Some("timescale"), "timescale must not be zero");
            }
            if t.duration == Some(0) {
                return c.fail(Some("duration"), "segment duration must not be zero");
            }
            for (attr, text) in [
                ("media", &t.media),
                ("index", &t.index),
                ("initialization", &t.initialization),
                ("bitstreamSwitching", &t.bitstream_switching),
            ] {
                if let Some(text) = text {
                    let parsed = match Template::parse(text) {
                        Ok(p) => p,
                        Err(e) => {
                            c.repairable(Some(attr), format!("{e}; {UNPLAYABLE}"))?;
                            continue;
                        }
                    };
                    if attr == "initialization" && (parsed.uses_number() || parsed.uses_time()) {
                        c.repairable(
                            Some(attr),
                            format!(
                                "initialization template `{text}` must not use $Number$ or $Time$; {UNPLAYABLE}"
                            ),
                        )?;
                    }
                }
            }
            if c.strict() && t.duration.is_some() && t.segment_timeline.is_some() {
                return c.fail(
                    Some("duration"),
                    "SegmentTemplate has both @duration and a SegmentTimeline",
                );
            }
            if let Some(tl) = &t.segment_timeline {
                c.within("SegmentTimeline", 0, |c| check_timeline(c, tl))?;
            }
            Ok(())
        })?;
    }
    if let Some(l) = list {
        c.within("SegmentList", 0, |c| {
            if l.timescale == Some(0) {
                return c.fail(Some("timescale"), "timescale must not be zero");
            }
            if l.duration == Some(0) {
                return c.fail(Some("duration"), "segment duration must not be zero");
            }
            if let Some(tl) = &l.segment_timeline {
                c.within("SegmentTimeline", 0, |c| check_timeline(c, tl))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// What a lenient reading says of a Representation whose template is malformed.
const UNPLAYABLE: &str = "the Representations using this SegmentTemplate are unplayable";

fn check_timeline(c: &mut Checker, tl: &SegmentTimeline) -> Check {
    // `end`: where the previous S ends (an S without @t starts there); `latest`: the furthest
    // end listed so far, which an S@t going back is compared with.
    let mut end: Option<u64> = Some(0);
    let mut latest: Option<u64> = Some(0);
    for (i, s) in tl.entries.iter().enumerate() {
        c.within("S", i, |c| {
            if s.d == 0 {
                return c.fail(Some("d"), "segment duration d must not be zero");
            }
            let r = s.r.unwrap_or(0);
            if r < -1 {
                return c.fail(
                    Some("r"),
                    format!("repeat count r={r} is impossible (r >= -1)"),
                );
            }
            let start = match (s.t, latest) {
                (Some(t), Some(prev_end)) if i > 0 && t < prev_end => {
                    c.repairable(
                        Some("t"),
                        format!(
                            "S@t={t} starts before the previous segment ends ({prev_end}): its segments keep their own times, as dash.js does, and those ending by {prev_end} are skipped"
                        ),
                    )?;
                    Some(t)
                }
                (Some(t), _) => Some(t),
                (None, _) => end,
            };
            if r == -1 {
                let next_has_t = tl.entries.get(i + 1).is_some_and(|n| n.t.is_some());
                if i + 1 < tl.entries.len() && !next_has_t {
                    return c.fail(
                        Some("r"),
                        "r=\"-1\" must be on the last S, or the next S must have @t",
                    );
                }
                end = None;
                latest = None;
            } else {
                end = start.and_then(|st| {
                    let count = u64::try_from(r).ok()?.checked_add(1)?;
                    st.checked_add(s.d.checked_mul(count)?)
                });
                if start.is_some() && end.is_none() {
                    return c.fail(Some("r"), "segment times overflow");
                }
                latest = match (end, latest) {
                    (Some(e), Some(l)) => Some(e.max(l)),
                    (e, _) => e,
                };
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Strict rules on the template a Representation actually uses (after inheritance).
fn check_effective_template(c: &Checker, t: &SegmentTemplate) -> Check {
    let Some(media) = &t.media else {
        return c.fail(
            None,
            "the SegmentTemplate used by this Representation has no @media",
        );
    };
    let parsed = Template::parse(media).map_err(|e| Issue {
        path: c.path.clone(),
        attr: None,
        message: e,
    })?;
    if !parsed.uses_number() && !parsed.uses_time() {
        return c.fail(
            None,
            format!("SegmentTemplate@media `{media}` must contain $Number$ or $Time$"),
        );
    }
    if parsed.uses_time() && t.segment_timeline.is_none() {
        return c.fail(
            None,
            format!("SegmentTemplate@media `{media}` uses $Time$ without a SegmentTimeline"),
        );
    }
    if t.duration.is_none() && t.segment_timeline.is_none() {
        return c.fail(None, "the SegmentTemplate used by this Representation has neither @duration nor a SegmentTimeline");
    }
    Ok(())
}

fn check_profiles(c: &Checker, profiles: &str) -> Check {
    if profiles.trim().is_empty() {
        return c.fail(Some("profiles"), "profiles is required");
    }
    for p in profiles.split(',') {
        let p = p.trim();
        if p.is_empty() || !p.contains(':') || p.chars().any(char::is_whitespace) {
            return c.fail(
                Some("profiles"),
                format!("profile `{p}` is not a URN or URL"),
            );
        }
    }
    Ok(())
}

fn check_descriptor(c: &Checker, d: &Descriptor) -> Check {
    if d.scheme_id_uri.trim().is_empty() {
        return c.fail(Some("schemeIdUri"), "schemeIdUri is required");
    }
    Ok(())
}

fn check_lang(c: &Checker, lang: &str) -> Check {
    let ok = lang.split('-').enumerate().all(|(i, part)| {
        (1..=8).contains(&part.len())
            && if i == 0 {
                part.chars().all(|ch| ch.is_ascii_alphabetic())
            } else {
                part.chars().all(|ch| ch.is_ascii_alphanumeric())
            }
    });
    if ok {
        Ok(())
    } else {
        c.fail(Some("lang"), format!("lang `{lang}` is not a language tag"))
    }
}

fn check_ratio(c: &Checker, attr: &'static str, v: &Option<String>) -> Check {
    if let Some(v) = v {
        let ok = v.split_once(':').is_some_and(|(a, b)| {
            a.chars().all(|ch| ch.is_ascii_digit()) && b.chars().all(|ch| ch.is_ascii_digit())
        });
        if !ok {
            return c.fail(Some(attr), format!("`{v}` is not a ratio like 16:9"));
        }
    }
    Ok(())
}

struct BaseAttrs<'a> {
    sar: &'a Option<String>,
    audio_sampling_rate: &'a Option<String>,
    start_with_sap: Option<u32>,
    scan_type: &'a Option<String>,
    codecs: &'a Option<String>,
    descriptors: [(&'static str, &'a [Descriptor]); 3],
}

fn check_base_attrs(c: &mut Checker, b: BaseAttrs<'_>) -> Check {
    check_ratio(c, "sar", b.sar)?;
    if let Some(rate) = b.audio_sampling_rate {
        let parts: Vec<&str> = rate.split_whitespace().collect();
        if parts.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.parse::<u32>().is_err()) {
            return c.fail(
                Some("audioSamplingRate"),
                format!("`{rate}` is not one or two unsigned integers"),
            );
        }
    }
    if let Some(sap) = b.start_with_sap {
        if sap > 6 {
            return c.fail(Some("startWithSAP"), format!("SAP type {sap} is not 0..6"));
        }
    }
    if let Some(scan) = b.scan_type {
        if !matches!(scan.as_str(), "progressive" | "interlaced" | "unknown") {
            return c.fail(
                Some("scanType"),
                format!("scanType `{scan}` is not progressive, interlaced or unknown"),
            );
        }
    }
    if let Some(codecs) = b.codecs {
        if codecs.is_empty()
            || codecs
                .split(',')
                .any(|s| s.is_empty() || s.chars().any(|ch| ch.is_whitespace() || ch == '"'))
        {
            return c.fail(
                Some("codecs"),
                format!("codecs `{codecs}` is not a comma-separated list of RFC 6381 ids"),
            );
        }
    }
    for (name, list) in b.descriptors {
        for (i, d) in list.iter().enumerate() {
            c.within(name, i, |c| check_descriptor(c, d))?;
        }
    }
    Ok(())
}

fn check_adaptation_set_strict(c: &mut Checker, set: &AdaptationSet) -> Check {
    if let Some(ct) = &set.content_type {
        if !matches!(
            ct.as_str(),
            "text" | "image" | "audio" | "video" | "application" | "font"
        ) {
            return c.fail(
                Some("contentType"),
                format!(
                    "contentType `{ct}` is not one of text, image, audio, video, application, font"
                ),
            );
        }
    }
    if let Some(lang) = &set.lang {
        check_lang(c, lang)?;
    }
    check_ratio(c, "par", &set.par)?;
    for (attr, v) in [
        ("minBandwidth", set.min_bandwidth),
        ("maxBandwidth", set.max_bandwidth),
    ] {
        if v.is_some_and(|v| v > u64::from(u32::MAX)) {
            return c.fail(Some(attr), "bandwidth does not fit an unsignedInt");
        }
    }
    if set.subsegment_starts_with_sap.is_some_and(|s| s > 6) {
        return c.fail(Some("subsegmentStartsWithSAP"), "SAP type is not 0..6");
    }
    for (i, r) in set.roles.iter().enumerate() {
        c.within("Role", i, |c| check_descriptor(c, r))?;
    }
    for (i, r) in set.accessibilities.iter().enumerate() {
        c.within("Accessibility", i, |c| check_descriptor(c, r))?;
    }
    check_base_attrs(
        c,
        BaseAttrs {
            sar: &set.sar,
            audio_sampling_rate: &set.audio_sampling_rate,
            start_with_sap: set.start_with_sap,
            scan_type: &set.scan_type,
            codecs: &set.codecs,
            descriptors: [
                (
                    "AudioChannelConfiguration",
                    &set.audio_channel_configurations,
                ),
                ("EssentialProperty", &set.essential_properties),
                ("SupplementalProperty", &set.supplemental_properties),
            ],
        },
    )
}

fn check_representation_strict(c: &mut Checker, rep: &Representation) -> Check {
    if rep.id.is_empty() || rep.id.chars().any(char::is_whitespace) {
        return c.fail(
            Some("id"),
            format!(
                "Representation id `{}` must be non-empty without whitespace",
                rep.id
            ),
        );
    }
    if rep.bandwidth > u64::from(u32::MAX) {
        return c.fail(Some("bandwidth"), "bandwidth does not fit an unsignedInt");
    }
    check_base_attrs(
        c,
        BaseAttrs {
            sar: &rep.sar,
            audio_sampling_rate: &rep.audio_sampling_rate,
            start_with_sap: rep.start_with_sap,
            scan_type: &rep.scan_type,
            codecs: &rep.codecs,
            descriptors: [
                (
                    "AudioChannelConfiguration",
                    &rep.audio_channel_configurations,
                ),
                ("EssentialProperty", &rep.essential_properties),
                ("SupplementalProperty", &rep.supplemental_properties),
            ],
        },
    )
}
