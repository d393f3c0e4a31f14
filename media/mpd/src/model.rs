//! The MPD data model: one Rust type per MPD element we understand, mapped to XML with serde +
//! quick-xml (`@name` = attribute, `$text` = text content, other names = child elements).
//!
//! Field order is the element order of the DASH MPD schema (ISO/IEC 23009-1 5th ed.), so the
//! serializer writes schema-valid documents. Elements and attributes the model does not name
//! (ContentProtection, EventStream, vendor extensions, xlink, ...) are skipped when parsing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::values::{clamped, opt, req, ByteRange, FrameRate, PresentationType};

/// The root `MPD` element.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename = "MPD")]
pub struct Mpd {
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Comma-separated profile URNs (required by the schema; empty when absent in a parsed MPD).
    #[serde(rename = "@profiles", default)]
    pub profiles: String,
    #[serde(rename = "@type", default, with = "req")]
    pub presentation_type: PresentationType,
    #[serde(
        rename = "@availabilityStartTime",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_start_time: Option<DateTime<Utc>>,
    #[serde(
        rename = "@availabilityEndTime",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_end_time: Option<DateTime<Utc>>,
    #[serde(
        rename = "@publishTime",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub publish_time: Option<DateTime<Utc>>,
    #[serde(
        rename = "@mediaPresentationDuration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub media_presentation_duration: Option<Duration>,
    #[serde(
        rename = "@minimumUpdatePeriod",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub minimum_update_period: Option<Duration>,
    /// Required by the schema; `None` only for a parsed MPD that lacked it.
    #[serde(
        rename = "@minBufferTime",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_buffer_time: Option<Duration>,
    #[serde(
        rename = "@timeShiftBufferDepth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_shift_buffer_depth: Option<Duration>,
    #[serde(
        rename = "@suggestedPresentationDelay",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub suggested_presentation_delay: Option<Duration>,
    #[serde(
        rename = "@maxSegmentDuration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_segment_duration: Option<Duration>,
    #[serde(
        rename = "@maxSubsegmentDuration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_subsegment_duration: Option<Duration>,

    #[serde(
        rename = "ProgramInformation",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub program_information: Vec<ProgramInformation>,
    #[serde(rename = "BaseURL", default, skip_serializing_if = "Vec::is_empty")]
    pub base_urls: Vec<BaseUrl>,
    #[serde(rename = "Location", default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// What the service wants of players (latency target, playback rate bounds), low-latency DASH.
    #[serde(
        rename = "ServiceDescription",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_descriptions: Vec<ServiceDescription>,
    #[serde(rename = "Period", default)]
    pub periods: Vec<Period>,
    #[serde(
        rename = "EssentialProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub essential_properties: Vec<Descriptor>,
    #[serde(
        rename = "SupplementalProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub supplemental_properties: Vec<Descriptor>,
    #[serde(rename = "UTCTiming", default, skip_serializing_if = "Vec::is_empty")]
    pub utc_timings: Vec<UtcTiming>,
}

/// `ProgramInformation`: title and credits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProgramInformation {
    #[serde(rename = "@lang", default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(
        rename = "@moreInformationURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub more_information_url: Option<String>,
    #[serde(rename = "Title", default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(rename = "Source", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(rename = "Copyright", default, skip_serializing_if = "Option::is_none")]
    pub copyright: Option<String>,
}

/// A `BaseURL` element: a URL (absolute or relative to the level above) plus attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BaseUrl {
    #[serde(
        rename = "@serviceLocation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service_location: Option<String>,
    #[serde(
        rename = "@byteRange",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub byte_range: Option<String>,
    #[serde(
        rename = "@availabilityTimeOffset",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_offset: Option<f64>,
    #[serde(
        rename = "@availabilityTimeComplete",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_complete: Option<bool>,
    #[serde(
        rename = "@timeShiftBufferDepth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_shift_buffer_depth: Option<Duration>,
    #[serde(
        rename = "@rangeAccess",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub range_access: Option<bool>,
    #[serde(rename = "$text", default)]
    pub url: String,
}

impl BaseUrl {
    /// A plain `BaseURL` with just a URL.
    pub fn new(url: impl Into<String>) -> Self {
        BaseUrl {
            url: url.into(),
            ..Default::default()
        }
    }
}

/// A generic descriptor (`Role`, `EssentialProperty`, `AudioChannelConfiguration`, ...).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "@schemeIdUri", default)]
    pub scheme_id_uri: String,
    #[serde(rename = "@value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Descriptor {
    pub fn new(scheme_id_uri: impl Into<String>, value: impl Into<String>) -> Self {
        Descriptor {
            scheme_id_uri: scheme_id_uri.into(),
            value: Some(value.into()),
            id: None,
        }
    }
}

/// `ServiceDescription`: the service's latency target and playback rate bounds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceDescription {
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    #[serde(rename = "Latency", default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(
        rename = "PlaybackRate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub playback_rate: Option<PlaybackRate>,
}

/// `ServiceDescription/Latency`: live latency in milliseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    #[serde(rename = "@target", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    #[serde(rename = "@min", default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(rename = "@max", default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// `ServiceDescription/PlaybackRate`: bounds of the rate a player may play at to hold latency.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlaybackRate {
    #[serde(rename = "@min", default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(rename = "@max", default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// `ProducerReferenceTime`: a wall-clock time (`wallClockTime`) at which the producer made the
/// media at `presentationTime` (timescale of the Representation).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProducerReferenceTime {
    #[serde(rename = "@id", default)]
    pub id: u32,
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(rename = "@wallClockTime", default)]
    pub wall_clock_time: String,
    #[serde(rename = "@presentationTime", default)]
    pub presentation_time: u64,
    #[serde(rename = "UTCTiming", default, skip_serializing_if = "Option::is_none")]
    pub utc_timing: Option<UtcTiming>,
}

/// `UTCTiming`: how a client syncs its clock (`urn:mpeg:dash:utc:http-xsdate:2014` + URL, ...).
pub type UtcTiming = Descriptor;

/// A `Period`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Period {
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        rename = "@start",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start: Option<Duration>,
    #[serde(
        rename = "@duration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    #[serde(
        rename = "@bitstreamSwitching",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub bitstream_switching: Option<bool>,

    #[serde(rename = "BaseURL", default, skip_serializing_if = "Vec::is_empty")]
    pub base_urls: Vec<BaseUrl>,
    #[serde(
        rename = "SegmentBase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_base: Option<SegmentBase>,
    #[serde(
        rename = "SegmentList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_list: Option<SegmentList>,
    #[serde(
        rename = "SegmentTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_template: Option<SegmentTemplate>,
    #[serde(
        rename = "AssetIdentifier",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub asset_identifier: Option<Descriptor>,
    #[serde(
        rename = "AdaptationSet",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub adaptation_sets: Vec<AdaptationSet>,
    #[serde(
        rename = "SupplementalProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub supplemental_properties: Vec<Descriptor>,
}

/// An `AdaptationSet`: interchangeable encodings of one content component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AdaptationSet {
    /// `@id` (an unsignedInt in the schema; kept as text because real MPDs use names).
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        rename = "@group",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub group: Option<u32>,
    #[serde(rename = "@lang", default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(
        rename = "@contentType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    #[serde(rename = "@par", default, skip_serializing_if = "Option::is_none")]
    pub par: Option<String>,
    #[serde(
        rename = "@minBandwidth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_bandwidth: Option<u64>,
    #[serde(
        rename = "@maxBandwidth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_bandwidth: Option<u64>,
    #[serde(
        rename = "@minWidth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_width: Option<u32>,
    #[serde(
        rename = "@maxWidth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_width: Option<u32>,
    #[serde(
        rename = "@minHeight",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_height: Option<u32>,
    #[serde(
        rename = "@maxHeight",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_height: Option<u32>,
    #[serde(
        rename = "@minFrameRate",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_frame_rate: Option<FrameRate>,
    #[serde(
        rename = "@maxFrameRate",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_frame_rate: Option<FrameRate>,
    #[serde(
        rename = "@segmentAlignment",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_alignment: Option<bool>,
    #[serde(
        rename = "@subsegmentAlignment",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub subsegment_alignment: Option<bool>,
    #[serde(
        rename = "@subsegmentStartsWithSAP",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub subsegment_starts_with_sap: Option<u32>,
    #[serde(
        rename = "@bitstreamSwitching",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub bitstream_switching: Option<bool>,
    // RepresentationBase attributes, inherited by the Representations.
    #[serde(rename = "@profiles", default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<String>,
    #[serde(
        rename = "@width",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub width: Option<u32>,
    #[serde(
        rename = "@height",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub height: Option<u32>,
    #[serde(rename = "@sar", default, skip_serializing_if = "Option::is_none")]
    pub sar: Option<String>,
    #[serde(
        rename = "@frameRate",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub frame_rate: Option<FrameRate>,
    #[serde(
        rename = "@audioSamplingRate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub audio_sampling_rate: Option<String>,
    #[serde(rename = "@mimeType", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(rename = "@codecs", default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
    #[serde(
        rename = "@maximumSAPPeriod",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum_sap_period: Option<f64>,
    #[serde(
        rename = "@startWithSAP",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_with_sap: Option<u32>,
    #[serde(rename = "@scanType", default, skip_serializing_if = "Option::is_none")]
    pub scan_type: Option<String>,

    #[serde(
        rename = "AudioChannelConfiguration",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audio_channel_configurations: Vec<Descriptor>,
    #[serde(
        rename = "EssentialProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub essential_properties: Vec<Descriptor>,
    #[serde(
        rename = "SupplementalProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub supplemental_properties: Vec<Descriptor>,
    #[serde(
        rename = "ProducerReferenceTime",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub producer_reference_times: Vec<ProducerReferenceTime>,
    #[serde(
        rename = "Accessibility",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub accessibilities: Vec<Descriptor>,
    #[serde(rename = "Role", default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Descriptor>,
    #[serde(rename = "BaseURL", default, skip_serializing_if = "Vec::is_empty")]
    pub base_urls: Vec<BaseUrl>,
    #[serde(
        rename = "SegmentBase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_base: Option<SegmentBase>,
    #[serde(
        rename = "SegmentList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_list: Option<SegmentList>,
    #[serde(
        rename = "SegmentTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_template: Option<SegmentTemplate>,
    #[serde(
        rename = "Representation",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub representations: Vec<Representation>,
}

/// A `Representation`: one encoding (bitrate, resolution, codec) of the content.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Representation {
    #[serde(rename = "@id")]
    pub id: String,
    /// Bits per second (peak over minBufferTime windows).
    #[serde(rename = "@bandwidth", with = "req")]
    pub bandwidth: u64,
    #[serde(
        rename = "@qualityRanking",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub quality_ranking: Option<u32>,
    #[serde(
        rename = "@dependencyId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dependency_id: Option<String>,
    // RepresentationBase attributes; absent ones are inherited from the AdaptationSet.
    #[serde(rename = "@profiles", default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<String>,
    #[serde(
        rename = "@width",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub width: Option<u32>,
    #[serde(
        rename = "@height",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub height: Option<u32>,
    #[serde(rename = "@sar", default, skip_serializing_if = "Option::is_none")]
    pub sar: Option<String>,
    #[serde(
        rename = "@frameRate",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub frame_rate: Option<FrameRate>,
    #[serde(
        rename = "@audioSamplingRate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub audio_sampling_rate: Option<String>,
    #[serde(rename = "@mimeType", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(rename = "@codecs", default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
    #[serde(
        rename = "@maximumSAPPeriod",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub maximum_sap_period: Option<f64>,
    #[serde(
        rename = "@startWithSAP",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_with_sap: Option<u32>,
    #[serde(rename = "@scanType", default, skip_serializing_if = "Option::is_none")]
    pub scan_type: Option<String>,

    #[serde(
        rename = "AudioChannelConfiguration",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audio_channel_configurations: Vec<Descriptor>,
    #[serde(
        rename = "EssentialProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub essential_properties: Vec<Descriptor>,
    #[serde(
        rename = "SupplementalProperty",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub supplemental_properties: Vec<Descriptor>,
    #[serde(rename = "BaseURL", default, skip_serializing_if = "Vec::is_empty")]
    pub base_urls: Vec<BaseUrl>,
    #[serde(
        rename = "SegmentBase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_base: Option<SegmentBase>,
    #[serde(
        rename = "SegmentList",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_list: Option<SegmentList>,
    #[serde(
        rename = "SegmentTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_template: Option<SegmentTemplate>,
}

/// A URL with an optional byte range (`Initialization`, `RepresentationIndex`, `BitstreamSwitching`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UrlType {
    #[serde(
        rename = "@sourceURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_url: Option<String>,
    #[serde(
        rename = "@range",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub range: Option<ByteRange>,
}

/// `SegmentBase`: one self-initializing file per Representation, indexed by a `sidx` box.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SegmentBase {
    #[serde(
        rename = "@timescale",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timescale: Option<u32>,
    #[serde(
        rename = "@presentationTimeOffset",
        default,
        with = "clamped",
        skip_serializing_if = "Option::is_none"
    )]
    pub presentation_time_offset: Option<u64>,
    #[serde(
        rename = "@presentationDuration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub presentation_duration: Option<u64>,
    #[serde(
        rename = "@timeShiftBufferDepth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_shift_buffer_depth: Option<Duration>,
    #[serde(
        rename = "@indexRange",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub index_range: Option<ByteRange>,
    #[serde(
        rename = "@indexRangeExact",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub index_range_exact: Option<bool>,
    #[serde(
        rename = "@availabilityTimeOffset",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_offset: Option<f64>,
    #[serde(
        rename = "@availabilityTimeComplete",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_complete: Option<bool>,

    #[serde(
        rename = "Initialization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initialization: Option<UrlType>,
    #[serde(
        rename = "RepresentationIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representation_index: Option<UrlType>,
}

/// `SegmentTemplate`: segment URLs built from a template and either `@duration` or a timeline.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SegmentTemplate {
    #[serde(
        rename = "@timescale",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timescale: Option<u32>,
    #[serde(
        rename = "@presentationTimeOffset",
        default,
        with = "clamped",
        skip_serializing_if = "Option::is_none"
    )]
    pub presentation_time_offset: Option<u64>,
    #[serde(
        rename = "@timeShiftBufferDepth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_shift_buffer_depth: Option<Duration>,
    #[serde(
        rename = "@availabilityTimeOffset",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_offset: Option<f64>,
    #[serde(
        rename = "@availabilityTimeComplete",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_complete: Option<bool>,
    /// Segment duration in timescale units (simple addressing).
    #[serde(
        rename = "@duration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<u32>,
    #[serde(
        rename = "@startNumber",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_number: Option<u32>,
    #[serde(
        rename = "@endNumber",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_number: Option<u32>,
    #[serde(rename = "@media", default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    #[serde(rename = "@index", default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(
        rename = "@initialization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initialization: Option<String>,
    #[serde(
        rename = "@bitstreamSwitching",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bitstream_switching: Option<String>,

    #[serde(
        rename = "Initialization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initialization_element: Option<UrlType>,
    #[serde(
        rename = "RepresentationIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representation_index: Option<UrlType>,
    #[serde(
        rename = "SegmentTimeline",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_timeline: Option<SegmentTimeline>,
}

/// `SegmentList`: an explicit list of segment URLs (optionally byte ranges of one file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SegmentList {
    #[serde(
        rename = "@timescale",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timescale: Option<u32>,
    #[serde(
        rename = "@presentationTimeOffset",
        default,
        with = "clamped",
        skip_serializing_if = "Option::is_none"
    )]
    pub presentation_time_offset: Option<u64>,
    #[serde(
        rename = "@timeShiftBufferDepth",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_shift_buffer_depth: Option<Duration>,
    #[serde(
        rename = "@availabilityTimeOffset",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_time_offset: Option<f64>,
    #[serde(
        rename = "@duration",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<u32>,
    #[serde(
        rename = "@startNumber",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_number: Option<u32>,

    #[serde(
        rename = "Initialization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initialization: Option<UrlType>,
    #[serde(
        rename = "RepresentationIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representation_index: Option<UrlType>,
    #[serde(
        rename = "SegmentTimeline",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_timeline: Option<SegmentTimeline>,
    #[serde(rename = "SegmentURL", default, skip_serializing_if = "Vec::is_empty")]
    pub segment_urls: Vec<SegmentUrl>,
}

/// One `SegmentURL` of a SegmentList.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SegmentUrl {
    #[serde(rename = "@media", default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    #[serde(
        rename = "@mediaRange",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub media_range: Option<ByteRange>,
    #[serde(rename = "@index", default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(
        rename = "@indexRange",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub index_range: Option<ByteRange>,
}

/// `SegmentTimeline`: explicit segment times and durations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SegmentTimeline {
    #[serde(rename = "S", default)]
    pub entries: Vec<S>,
}

/// One `S` entry: `r + 1` segments of duration `d` starting at `t` (or where the last ended).
/// `r = -1` repeats until the next `S@t` or the end of the Period (or, live, until now).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct S {
    #[serde(
        rename = "@t",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub t: Option<u64>,
    #[serde(
        rename = "@n",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub n: Option<u64>,
    #[serde(rename = "@d", with = "req")]
    pub d: u64,
    #[serde(
        rename = "@r",
        default,
        with = "opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub r: Option<i64>,
}

impl S {
    /// `r + 1` segments of duration `d` starting at `t`.
    pub fn new(t: Option<u64>, d: u64, r: i64) -> Self {
        S {
            t,
            n: None,
            d,
            r: if r == 0 { None } else { Some(r) },
        }
    }
}
