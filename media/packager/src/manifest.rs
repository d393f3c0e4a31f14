//! The DASH manifest of a packaged title, built with the `mpd` model: one static Period,
//! one video AdaptationSet with a `$Number$` SegmentTemplate, one Representation per rendition,
//! and (when the title has sound) one audio AdaptationSet with a Representation per audio rung;
//! `@bandwidth` measured from the segment sizes.

use std::time::Duration;

use anyhow::{Context, Result};

use mpd::{
    AdaptationSet, Descriptor, FrameRate, Mpd, Period, PresentationType, Representation,
    SegmentTemplate, PROFILE_ISOFF_LIVE,
};

/// Scheme of AudioChannelConfiguration whose value is the channel count (ISO/IEC 23009-1 5.8.5.4).
pub const CHANNEL_CONFIGURATION_SCHEME: &str =
    "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
/// Scheme of Role (ISO/IEC 23009-1 5.8.5.5).
pub const ROLE_SCHEME: &str = "urn:mpeg:dash:role:2011";

/// URL template of the init segments, relative to the manifest.
pub const INIT_TEMPLATE: &str = "$RepresentationID$/init.mp4";
/// URL template of the media segments, relative to the manifest.
pub const MEDIA_TEMPLATE: &str = "$RepresentationID$/seg-$Number%05d$.m4s";
/// File name of the manifest in the output folder.
pub const MANIFEST_NAME: &str = "manifest.mpd";

/// The init segment file name of a representation, relative to the output folder.
pub fn init_path(id: &str) -> String {
    INIT_TEMPLATE.replace("$RepresentationID$", id)
}

/// The file name of media segment `number` (1-based) of a representation.
pub fn segment_path(id: &str, number: u32) -> String {
    format!("{id}/seg-{number:05}.m4s")
}

/// What the manifest says about one encoded rendition.
#[derive(Debug, Clone)]
pub struct RepresentationInfo {
    /// Representation@id.
    pub id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RFC 6381 codecs string from the SPS.
    pub codecs: String,
    /// Measured @bandwidth, bits/s.
    pub bandwidth: u64,
}

/// What the manifest says about one encoded audio rung.
#[derive(Debug, Clone)]
pub struct AudioRepresentationInfo {
    /// Representation@id (also its folder).
    pub id: String,
    /// RFC 6381 codecs string from the AudioSpecificConfig.
    pub codecs: String,
    /// Samples per second (the timescale of its segments).
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// Nominal segment duration in samples (`SegmentTemplate@duration`).
    pub segment_duration: u32,
    /// Measured @bandwidth, bits/s.
    pub bandwidth: u64,
}

/// The title's sound: its rungs and language.
#[derive(Debug, Clone)]
pub struct AudioInfo {
    /// BCP 47 language of the AdaptationSet (`und` when unknown).
    pub lang: String,
    /// One entry per audio rung.
    pub representations: Vec<AudioRepresentationInfo>,
}

/// The timing every representation shares.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Frames per second.
    pub fps: u32,
    /// Ticks per second of the media timeline.
    pub timescale: u32,
    /// Ticks per frame.
    pub frame_ticks: u32,
    /// Frames per (full) segment.
    pub segment_frames: u32,
    /// Frames in the title.
    pub total_frames: u64,
}

impl Timing {
    /// Nominal segment duration.
    pub fn segment_duration(&self) -> Duration {
        Duration::from_nanos(u64::from(self.segment_frames) * 1_000_000_000 / u64::from(self.fps))
    }

    /// Duration of the whole title.
    pub fn total_duration(&self) -> Duration {
        Duration::from_nanos(self.total_frames * 1_000_000_000 / u64::from(self.fps))
    }

    /// minBufferTime: two segment durations (what ffmpeg writes, and enough for a client that
    /// fetches one segment while playing another).
    pub fn min_buffer_time(&self) -> Duration {
        2 * self.segment_duration()
    }
}

/// @bandwidth of a representation from its media segment sizes (bytes) and durations (seconds).
///
/// The value is the peak rate over windows of `min_buffer` seconds (consecutive segments whose
/// durations add up to at least `min_buffer`; the whole title if it is shorter), at least the
/// average rate, and never less than
/// the smallest rate satisfying DASH's definition (ISO/IEC 23009-1 5.3.5.2): starting at any
/// segment, a client that has buffered `min_buffer` seconds while receiving at @bandwidth can
/// play to the end without stalling, i.e. for all i <= k,
/// `bits(i..=k) <= bandwidth * (min_buffer + start(k) - start(i))`.
pub fn measured_bandwidth(segments: &[(u64, f64)], min_buffer: f64) -> u64 {
    let n = segments.len();
    let mut starts = Vec::with_capacity(n);
    let mut t = 0.0;
    for &(_, d) in segments {
        starts.push(t);
        t += d;
    }
    let mut peak: f64 = 0.0;
    for i in 0..n {
        let mut bits = 0.0;
        let mut dur = 0.0;
        for &(bytes, d) in &segments[i..] {
            bits += bytes as f64 * 8.0;
            dur += d;
            if dur >= min_buffer - 1e-9 {
                break;
            }
        }
        // A window cut short by the end of the title is covered by an earlier full window,
        // unless the whole title is shorter than the buffer.
        let full = dur >= min_buffer - 1e-9;
        if dur > 0.0 && (full || i == 0) {
            peak = peak.max(bits / dur);
        }
        let mut cumulative = 0.0;
        for k in i..n {
            cumulative += segments[k].0 as f64 * 8.0;
            let allowed = min_buffer + starts[k] - starts[i];
            if allowed > 0.0 {
                peak = peak.max(cumulative / allowed);
            }
        }
    }
    // The last min_buffer seconds form a window too (the forward windows stop short of them).
    let (mut bits, mut dur) = (0.0, 0.0);
    for &(bytes, d) in segments.iter().rev() {
        bits += bytes as f64 * 8.0;
        dur += d;
        if dur >= min_buffer - 1e-9 {
            break;
        }
    }
    if dur > 0.0 {
        peak = peak.max(bits / dur);
        // A peak is never below the average rate of the whole title.
        let total_bits: f64 = segments.iter().map(|s| s.0 as f64 * 8.0).sum();
        peak = peak.max(total_bits / t);
    }
    peak.ceil() as u64
}

/// The audio AdaptationSet: contentType audio, its language, Role main, the channel count as
/// AudioChannelConfiguration, and a `$Number$` SegmentTemplate in the sample-rate timescale
/// (at the set when every rung shares rate and channels, else per Representation).
fn audio_set(audio: &AudioInfo) -> AdaptationSet {
    let channel_config = |ch: u32| {
        vec![Descriptor::new(
            CHANNEL_CONFIGURATION_SCHEME,
            ch.to_string(),
        )]
    };
    let template = |r: &AudioRepresentationInfo| SegmentTemplate {
        timescale: Some(r.sample_rate),
        duration: Some(r.segment_duration),
        start_number: Some(1),
        media: Some(MEDIA_TEMPLATE.into()),
        initialization: Some(INIT_TEMPLATE.into()),
        ..Default::default()
    };
    let first = audio.representations.first();
    let uniform = audio.representations.iter().all(|r| {
        first.is_some_and(|f| {
            (r.sample_rate, r.channels, r.segment_duration)
                == (f.sample_rate, f.channels, f.segment_duration)
        })
    });
    let representations = audio
        .representations
        .iter()
        .map(|r| Representation {
            id: r.id.clone(),
            bandwidth: r.bandwidth,
            audio_sampling_rate: Some(r.sample_rate.to_string()),
            codecs: Some(r.codecs.clone()),
            audio_channel_configurations: if uniform {
                Vec::new()
            } else {
                channel_config(r.channels)
            },
            segment_template: (!uniform).then(|| template(r)),
            ..Default::default()
        })
        .collect();
    AdaptationSet {
        id: Some("1".into()),
        content_type: Some("audio".into()),
        lang: Some(audio.lang.clone()),
        segment_alignment: Some(true),
        mime_type: Some("audio/mp4".into()),
        start_with_sap: Some(1),
        audio_channel_configurations: match first {
            Some(f) if uniform => channel_config(f.channels),
            _ => Vec::new(),
        },
        roles: vec![Descriptor::new(ROLE_SCHEME, "main")],
        segment_template: first.filter(|_| uniform).map(template),
        representations,
        ..Default::default()
    }
}

/// Builds the static `isoff-live` MPD for the packaged representations (and the audio ones,
/// when there are any).
pub fn build(timing: &Timing, reps: &[RepresentationInfo], audio: Option<&AudioInfo>) -> Mpd {
    let rate = FrameRate::new(timing.fps, 1);
    let representations = reps
        .iter()
        .map(|r| Representation {
            id: r.id.clone(),
            bandwidth: r.bandwidth,
            width: Some(r.width),
            height: Some(r.height),
            sar: Some("1:1".into()),
            frame_rate: Some(rate),
            codecs: Some(r.codecs.clone()),
            ..Default::default()
        })
        .collect();
    let adaptation_set = AdaptationSet {
        id: Some("0".into()),
        content_type: Some("video".into()),
        max_width: reps.iter().map(|r| r.width).max(),
        max_height: reps.iter().map(|r| r.height).max(),
        max_frame_rate: Some(rate),
        segment_alignment: Some(true),
        mime_type: Some("video/mp4".into()),
        start_with_sap: Some(1),
        segment_template: Some(SegmentTemplate {
            timescale: Some(timing.timescale),
            duration: Some(timing.segment_frames * timing.frame_ticks),
            start_number: Some(1),
            media: Some(MEDIA_TEMPLATE.into()),
            initialization: Some(INIT_TEMPLATE.into()),
            ..Default::default()
        }),
        representations,
        ..Default::default()
    };
    Mpd {
        profiles: PROFILE_ISOFF_LIVE.into(),
        presentation_type: PresentationType::Static,
        media_presentation_duration: Some(timing.total_duration()),
        min_buffer_time: Some(timing.min_buffer_time()),
        max_segment_duration: Some(timing.segment_duration()),
        periods: vec![Period {
            id: Some("0".into()),
            start: Some(Duration::ZERO),
            adaptation_sets: std::iter::once(adaptation_set)
                .chain(
                    audio
                        .filter(|a| !a.representations.is_empty())
                        .map(audio_set),
                )
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The manifest as XML text.
pub fn to_xml(
    timing: &Timing,
    reps: &[RepresentationInfo],
    audio: Option<&AudioInfo>,
) -> Result<String> {
    build(timing, reps, audio)
        .to_xml()
        .context("writing the MPD")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a client that buffers `min_buffer` seconds at `rate` bits/s from segment
    /// `first`, then plays while downloading; true if it never runs dry.
    fn plays_without_stall(
        segments: &[(u64, f64)],
        first: usize,
        rate: f64,
        min_buffer: f64,
    ) -> bool {
        let mut received_bits = 0.0;
        let mut media_start = 0.0;
        for &(bytes, d) in &segments[first..] {
            received_bits += bytes as f64 * 8.0;
            let downloaded_at = received_bits / rate;
            let needed_at = min_buffer + media_start;
            if downloaded_at > needed_at + 1e-9 {
                return false;
            }
            media_start += d;
        }
        true
    }

    #[test]
    fn bandwidth_is_the_peak_window_not_the_average() {
        // 2 s segments, one burst in the middle.
        let segs = [
            (100_000, 2.0),
            (100_000, 2.0),
            (900_000, 2.0),
            (100_000, 2.0),
            (100_000, 2.0),
        ];
        let bw = measured_bandwidth(&segs, 4.0);
        let average = (1_300_000.0 * 8.0 / 10.0) as u64;
        // Peak 4 s window: (900k + 100k) bytes over 4 s = 2 Mbit/s.
        assert_eq!(bw, 2_000_000);
        assert!(bw > average);
    }

    #[test]
    fn bandwidth_satisfies_the_dash_buffer_guarantee() {
        let segs: Vec<(u64, f64)> = (0..30)
            .map(|i| {
                (
                    ((i * 7919) % 13 + 1) as u64 * 37_000,
                    if i == 29 { 0.7 } else { 2.0 },
                )
            })
            .collect();
        for min_buffer in [1.0, 2.0, 4.0, 8.0] {
            let bw = measured_bandwidth(&segs, min_buffer) as f64;
            for first in 0..segs.len() {
                assert!(
                    plays_without_stall(&segs, first, bw, min_buffer),
                    "stall from {first}"
                );
            }
            // And it is tight enough to be meaningful: 20% less stalls somewhere (or the
            // window peak, which is above the DASH minimum, is what set it).
            let lower = bw * 0.8;
            let stalls = (0..segs.len()).any(|f| !plays_without_stall(&segs, f, lower, min_buffer));
            let window_peak = segs
                .windows((min_buffer / 2.0).ceil() as usize)
                .map(|w| {
                    w.iter().map(|s| s.0 as f64 * 8.0).sum::<f64>()
                        / w.iter().map(|s| s.1).sum::<f64>()
                })
                .fold(0.0, f64::max);
            assert!(stalls || window_peak > lower, "min_buffer {min_buffer}");
        }
    }

    #[test]
    fn single_short_segment() {
        assert_eq!(measured_bandwidth(&[(1000, 0.5)], 4.0), 16_000);
        assert_eq!(measured_bandwidth(&[], 4.0), 0);
    }

    #[test]
    fn manifest_has_the_required_attributes() {
        let timing = Timing {
            fps: 30,
            timescale: 90_000,
            frame_ticks: 3000,
            segment_frames: 60,
            total_frames: 185,
        };
        let reps = [
            RepresentationInfo {
                id: "240p".into(),
                width: 426,
                height: 240,
                codecs: "avc1.42c015".into(),
                bandwidth: 412_345,
            },
            RepresentationInfo {
                id: "720p".into(),
                width: 1280,
                height: 720,
                codecs: "avc1.42c01f".into(),
                bandwidth: 2_912_345,
            },
        ];
        let audio = AudioInfo {
            lang: "en".into(),
            representations: vec![AudioRepresentationInfo {
                id: "audio".into(),
                codecs: "mp4a.40.2".into(),
                sample_rate: 48_000,
                channels: 2,
                segment_duration: 96_000,
                bandwidth: 131_072,
            }],
        };
        let xml = to_xml(&timing, &reps, Some(&audio)).unwrap();
        for needle in [
            r#"profiles="urn:mpeg:dash:profile:isoff-live:2011""#,
            r#"type="static""#,
            r#"mediaPresentationDuration="PT6.166666666S""#,
            r#"minBufferTime="PT4S""#,
            r#"maxSegmentDuration="PT2S""#,
            r#"segmentAlignment="true""#,
            r#"startWithSAP="1""#,
            r#"media="$RepresentationID$/seg-$Number%05d$.m4s""#,
            r#"initialization="$RepresentationID$/init.mp4""#,
            r#"duration="180000""#,
            r#"timescale="90000""#,
            r#"bandwidth="412345""#,
            r#"codecs="avc1.42c01f""#,
            r#"sar="1:1""#,
            r#"frameRate="30""#,
            r#"width="1280""#,
            r#"contentType="audio""#,
            r#"lang="en""#,
            r#"mimeType="audio/mp4""#,
            r#"<AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>"#,
            r#"<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>"#,
            r#"timescale="48000""#,
            r#"duration="96000""#,
            r#"audioSamplingRate="48000""#,
            r#"codecs="mp4a.40.2""#,
            r#"bandwidth="131072""#,
        ] {
            assert!(xml.contains(needle), "missing {needle} in\n{xml}");
        }
        let parsed = Mpd::parse(&xml).unwrap();
        assert_eq!(parsed, build(&timing, &reps, Some(&audio)));
        let sets = &parsed.periods[0].adaptation_sets;
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].content_type.as_deref(), Some("video"));
        // Without sound, one AdaptationSet as before.
        let silent = build(&timing, &reps, None);
        assert_eq!(silent.periods[0].adaptation_sets.len(), 1);
        // Rungs of different rates carry their own template and channel configuration.
        let mut mixed = audio.clone();
        mixed.representations.push(AudioRepresentationInfo {
            id: "mono".into(),
            sample_rate: 44_100,
            channels: 1,
            segment_duration: 88_200,
            ..audio.representations[0].clone()
        });
        let set = &build(&timing, &reps, Some(&mixed)).periods[0].adaptation_sets[1];
        assert!(set.segment_template.is_none() && set.audio_channel_configurations.is_empty());
        let mono = &set.representations[1];
        assert_eq!(
            mono.segment_template.as_ref().unwrap().timescale,
            Some(44_100)
        );
        assert_eq!(
            mono.audio_channel_configurations[0].value.as_deref(),
            Some("1")
        );
        assert_eq!(segment_path("720p", 7), "720p/seg-00007.m4s");
        assert_eq!(init_path("720p"), "720p/init.mp4");
    }
}
