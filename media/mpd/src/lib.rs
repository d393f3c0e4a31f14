//! The DASH MPD (Media Presentation Description): a typed model that parses leniently and
//! writes strictly (schema-valid, `urn:mpeg:dash:schema:mpd:2011`), URL templates, BaseURL
//! resolution, and the resolved segment lists players and origins consume. No I/O: callers hand
//! it text and URLs.
//!
//! Parts: `model` (one type per element, serde + quick-xml), `values` (durations, dates, frame
//! rates, byte ranges), `locate` (line and column of a parse error), `validate` (the lenient
//! reading and the strict writing rules), [`template`] (`$Number$`, `$Time$`, ... expansion),
//! `resolve` (inheritance, BaseURL chains, segment lists for VOD and for live at a given time),
//! `summary` (what `cdn mpd` prints).
//!
//! ```
//! use mpd::{Mpd, SegmentsAt};
//! let mpd = Mpd::parse(r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
//!     minBufferTime="PT4S" mediaPresentationDuration="PT6S"><Period id="p0">
//!   <AdaptationSet mimeType="video/mp4" codecs="avc1.64001f">
//!     <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/init.mp4"
//!         media="$RepresentationID$/$Number%05d$.m4s"/>
//!     <Representation id="v720" bandwidth="2800000" width="1280" height="720"/>
//!   </AdaptationSet></Period></MPD>"#).unwrap();
//! let url = url::Url::parse("http://cdn.example.test/vod/demo/manifest.mpd").unwrap();
//! let segs = mpd.segments(0, 0, 0, &url, SegmentsAt::Vod).unwrap();
//! assert_eq!(segs.media.len(), 3);
//! assert_eq!(segs.media[0].url.as_str(), "http://cdn.example.test/vod/demo/v720/00001.m4s");
//! let again = Mpd::parse(&mpd.to_xml().unwrap()).unwrap();
//! assert_eq!(again, mpd);
//! ```

mod locate;
mod model;
mod resolve;
mod summary;
pub mod template;
mod validate;
mod values;

use serde::{Deserialize, Serialize};

pub use chrono::{DateTime, Utc};
pub use model::{
    AdaptationSet, BaseUrl, Descriptor, Latency, Mpd, Period, PlaybackRate, ProducerReferenceTime,
    ProgramInformation, Representation, SegmentBase, SegmentList, SegmentTemplate, SegmentTimeline,
    SegmentUrl, ServiceDescription, UrlType, UtcTiming, S,
};
pub use resolve::{
    effective_base, effective_list, effective_template, resolve_base, Addressing, ContentKind,
    MediaSegment, PeriodTiming, ResolvedAdaptationSet, ResolvedPeriod, ResolvedRepresentation,
    SegmentRef, Segments, SegmentsAt, LIVE_TRIM, MAX_SEGMENTS,
};
pub use summary::{AdaptationSetSummary, PeriodSummary, RepresentationSummary, Summary};
pub use template::{Template, TemplateVars};
pub use url::Url;
pub use values::{
    format_datetime, format_duration, parse_datetime, parse_duration, ByteRange, FrameRate,
    PresentationType,
};

/// The MPD XML namespace the writer declares.
pub const MPD_NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";

/// Profile URN of the ISO BMFF live profile (used for VOD and live alike).
pub const PROFILE_ISOFF_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";

/// Profile URN of the ISO BMFF on-demand profile (SegmentBase, one file per Representation).
pub const PROFILE_ISOFF_ON_DEMAND: &str = "urn:mpeg:dash:profile:isoff-on-demand:2011";

/// Everything that can go wrong reading, writing or resolving an MPD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpdError {
    /// The text is not well-formed XML, or its root is not `MPD`.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed, but a value is impossible (bad number, negative duration, zero timescale, ...).
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        line: usize,
        column: usize,
        message: String,
    },
    /// The writer refused a model the schema would reject; names the element path.
    #[error("invalid MPD: {0}")]
    Model(String),
    /// Segments or URLs of a Representation cannot be derived.
    #[error("{0}")]
    Resolve(String),
}

impl MpdError {
    /// 1-based line and column of a parse error.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            MpdError::Syntax { line, column, .. } | MpdError::Invalid { line, column, .. } => {
                Some((*line, *column))
            }
            _ => None,
        }
    }
}

/// Something the lenient parser repaired or set aside, with where it is in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl Mpd {
    /// Parses an MPD. Unknown elements and attributes are ignored; malformed XML and
    /// impossible values are errors naming the line and column. What real-world MPDs get
    /// wrong and browser players accept is repaired; [`Mpd::parse_with_warnings`] says what.
    pub fn parse(text: &str) -> Result<Mpd, MpdError> {
        Mpd::parse_with_warnings(text).map(|(mpd, _)| mpd)
    }

    /// [`Mpd::parse`], with a warning for every repair, in document order: a decimal
    /// `frameRate` (`15.00`) read as a fraction, a negative `presentationTimeOffset` clamped
    /// to 0, `S@t` values that overlap or go back, Period starts inferred, a dynamic MPD
    /// without availabilityStartTime (summarised, not playable), a malformed `$...$` template
    /// (the Representations using it are unplayable, the MPD is not).
    pub fn parse_with_warnings(text: &str) -> Result<(Mpd, Vec<Warning>), MpdError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc = locate::Doc::scan(text)?;
        let mut de = quick_xml::de::Deserializer::from_str(text);
        let mpd = match Mpd::deserialize(&mut de) {
            Ok(m) => m,
            Err(e) => {
                let stop = de.get_ref().get_ref().buffer_position() as usize;
                return Err(serde_error(&doc, stop, &e.to_string()));
            }
        };
        let place = |issue: validate::Issue| {
            let (line, column) = doc.position(&issue.path, issue.attr);
            let message = match issue.attr {
                Some(a) => format!("@{a}: {}", issue.message),
                None => issue.message,
            };
            (line, column, message)
        };
        let issues = validate::check(&mpd, validate::Level::Lenient).map_err(|issue| {
            let (line, column, message) = place(issue);
            MpdError::Invalid {
                line,
                column,
                message,
            }
        })?;
        let mut warnings: Vec<Warning> = issues
            .into_iter()
            .map(|issue| {
                let (line, column, message) = place(issue);
                Warning {
                    line,
                    column,
                    message,
                }
            })
            .collect();
        warnings.extend(value_repairs(&doc));
        warnings.sort_by_key(|w| (w.line, w.column));
        Ok((mpd, warnings))
    }

    /// Writes the MPD as XML that validates against the DASH MPD schema, after checking the
    /// model strictly (required attributes, identifier rules, timeline sanity).
    pub fn to_xml(&self) -> Result<String, MpdError> {
        validate::check(self, validate::Level::Strict)
            .map_err(|issue| MpdError::Model(issue.describe()))?;
        let mut body = String::new();
        let mut ser = quick_xml::se::Serializer::with_root(&mut body, Some("MPD"))
            .map_err(|e| MpdError::Model(e.to_string()))?;
        ser.indent(' ', 2);
        self.serialize(ser)
            .map_err(|e| MpdError::Model(e.to_string()))?;
        let body = body.replacen("<MPD", &format!("<MPD xmlns=\"{MPD_NAMESPACE}\""), 1);
        Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}\n"
        ))
    }
}

impl std::str::FromStr for Mpd {
    type Err = MpdError;
    fn from_str(s: &str) -> Result<Mpd, MpdError> {
        Mpd::parse(s)
    }
}

/// Warnings for attribute values read leniently: decimal frame rates and negative
/// presentationTimeOffsets (the model holds the repaired value, the text the original).
fn value_repairs(doc: &locate::Doc<'_>) -> Vec<Warning> {
    use values::AttrValue;
    let mut out = Vec::new();
    for (element, attr, value, (line, column)) in doc.attributes() {
        let message = match attr {
            "frameRate" | "minFrameRate" | "maxFrameRate" if value.contains('.') => {
                match FrameRate::parse_attr(value) {
                    Ok(rate) => {
                        format!("<{element}> @{attr}: decimal frame rate `{value}` read as {rate}")
                    }
                    Err(_) => continue,
                }
            }
            "presentationTimeOffset" if value.trim().starts_with('-') => format!(
                "<{element}> @{attr}: negative presentationTimeOffset `{}` clamped to 0",
                value.trim()
            ),
            _ => continue,
        };
        out.push(Warning {
            line,
            column,
            message,
        });
    }
    out
}

fn serde_error(doc: &locate::Doc<'_>, stop: usize, message: &str) -> MpdError {
    let marked = message.find(values::VALUE_MARK).and_then(|start| {
        let rest = &message[start + values::VALUE_MARK.len_utf8()..];
        let (value, reason) = rest.split_once(values::VALUE_MARK)?;
        Some((value.to_string(), reason.to_string()))
    });
    let ((line, column), what) = doc.serde_position(stop, marked.as_ref().map(|(v, _)| v.as_str()));
    let message = match (marked, what) {
        (Some((value, reason)), Some(what)) => format!("{what}: invalid value `{value}`: {reason}"),
        (Some((value, reason)), None) => format!("invalid value `{value}`: {reason}"),
        (None, Some(what)) => format!("{what}: {message}"),
        (None, None) => message.to_string(),
    };
    MpdError::Invalid {
        line,
        column,
        message,
    }
}
