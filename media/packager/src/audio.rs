//! Audio: AAC-LC encoding with the Fraunhofer FDK AAC library (built from its bundled C++
//! source by the `fdk-aac` crate, so no system codec library is needed), encoder priming
//! compensation, the AudioSpecificConfig and its RFC 6381 codecs string, and the arithmetic that
//! aligns audio segments with video segments.
//!
//! Priming: an AAC encoder's output lags its input by `nDelay` samples (2048 for FDK's AAC-LC),
//! because of its look-ahead and the MDCT overlap. Instead of signalling that with an edit list
//! (which MSE in browsers, dash.js and Shaka ignore for fragmented MP4, and which a live loop
//! would have to carry), the encoder is fed `P = k*1024 - nDelay` zero samples first and its first
//! `k` access units are dropped: decoded sample `n` of access unit `n / 1024` is then input sample
//! `n`, and `tfdt` alone puts audio on the video's timeline for every client. The price is that
//! a decoder starts the title without the overlap of a previous frame (the first ~21 ms fade in).
//!
//! Alignment: AAC frames are 1024 samples, so audio segment boundaries cannot fall exactly on
//! video ones (2 s is 93.75 frames at 48 kHz). Audio segment `k` starts at the AAC frame boundary
//! nearest to video segment `k`'s start; its `tfdt` is exact, so durations vary by at most one
//! frame and nothing drifts. The MPD's `SegmentTemplate@duration` is the nominal duration.

use anyhow::{bail, Result};

/// Samples per channel in one AAC-LC access unit.
pub const FRAME_SAMPLES: u32 = 1024;

/// What the encoder says about its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// The AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) for `esds`.
    pub asc: Vec<u8>,
    /// Encoder delay in samples per channel.
    pub delay: u32,
}

/// The fields of an AudioSpecificConfig the manifest and sample entry need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asc {
    /// audioObjectType (2 = AAC LC, 5 = SBR, 29 = PS).
    pub object_type: u8,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// channelConfiguration (1 = mono, 2 = stereo).
    pub channel_config: u8,
}

const FREQUENCIES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

impl Asc {
    /// Reads the start of an AudioSpecificConfig.
    pub fn parse(asc: &[u8]) -> Result<Asc> {
        let mut bits = Bits { data: asc, pos: 0 };
        let mut object_type = bits.read(5)?;
        if object_type == 31 {
            object_type = 32 + bits.read(6)?;
        }
        let index = bits.read(4)?;
        let sample_rate = if index == 15 {
            bits.read(24)?
        } else {
            match FREQUENCIES.get(index as usize) {
                Some(&f) => f,
                None => bail!("AudioSpecificConfig: reserved sampling frequency index {index}"),
            }
        };
        let channel_config = bits.read(4)?;
        Ok(Asc {
            object_type: u8::try_from(object_type)?,
            sample_rate,
            channel_config: u8::try_from(channel_config)?,
        })
    }

    /// The RFC 6381 codecs string: `mp4a.40.<audioObjectType>` (MPEG-4 Audio, ISO/IEC 14496-3).
    pub fn codecs(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let Some(byte) = self.data.get(self.pos / 8) else {
                bail!("AudioSpecificConfig is truncated");
            };
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }
}

/// An AAC-LC encoder for one audio rung, with priming compensation: the access units it returns
/// are aligned so that access unit `m` decodes to input samples `[m*1024, (m+1)*1024)`.
pub struct AacEncoder {
    encoder: fdk_aac::enc::Encoder,
    channels: usize,
    config: AudioConfig,
    /// Access units still to drop (the priming ones).
    to_drop: u32,
    out: Vec<u8>,
}

impl AacEncoder {
    /// A constant-bitrate AAC-LC encoder (raw access units, no ADTS) for interleaved 16-bit
    /// input at `sample_rate` with 1 or 2 `channels`.
    pub fn new(sample_rate: u32, channels: u32, bitrate: u32) -> Result<AacEncoder> {
        use fdk_aac::enc::{
            AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport,
        };
        let mode = match channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => bail!("{n} audio channels: only mono and stereo are supported"),
        };
        let encoder = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(bitrate),
            sample_rate,
            transport: Transport::Raw,
            channels: mode,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| anyhow::anyhow!("cannot create the AAC encoder: {e}"))?;
        let info = encoder
            .info()
            .map_err(|e| anyhow::anyhow!("AAC encoder info: {e}"))?;
        if info.frameLength != FRAME_SAMPLES {
            bail!("the AAC encoder uses {}-sample frames", info.frameLength);
        }
        let size = (info.confSize as usize).min(info.confBuf.len());
        let asc = info.confBuf[..size].to_vec();
        let parsed = Asc::parse(&asc)?;
        if parsed.sample_rate != sample_rate || u32::from(parsed.channel_config) != channels {
            bail!("the AAC encoder configured {parsed:?}, not {sample_rate} Hz x {channels}");
        }
        let delay = info.nDelay;
        let mut enc = AacEncoder {
            encoder,
            channels: channels as usize,
            config: AudioConfig { asc, delay },
            to_drop: priming_frames(delay),
            out: vec![0; (info.maxOutBufBytes as usize).max(8192)],
        };
        // Advance the signal by the delay: P zeros first, then k access units dropped.
        let pad = vec![0i16; priming_pad(delay) as usize * enc.channels];
        let mut sink = Vec::new();
        enc.feed(&pad, &mut sink)?;
        debug_assert!(sink.is_empty(), "padding yields no kept access unit");
        Ok(enc)
    }

    /// The AudioSpecificConfig and the encoder delay.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// Encodes interleaved samples (any count); pushes each completed access unit (priming ones
    /// dropped) onto `units`.
    pub fn feed(&mut self, pcm: &[i16], units: &mut Vec<Vec<u8>>) -> Result<()> {
        let mut rest = pcm;
        // FDK consumes what fits in its input buffer and emits at most one unit per call.
        let mut stalls = 0;
        while !rest.is_empty() {
            let info = self
                .encoder
                .encode(rest, &mut self.out)
                .map_err(|e| anyhow::anyhow!("AAC encoding failed: {e}"))?;
            self.take(info.output_size, units);
            if info.input_consumed == 0 && info.output_size == 0 {
                stalls += 1;
                if stalls > 2 {
                    bail!("the AAC encoder takes no more input");
                }
            } else {
                stalls = 0;
            }
            rest = &rest[info.input_consumed.min(rest.len())..];
        }
        Ok(())
    }

    fn take(&mut self, size: usize, units: &mut Vec<Vec<u8>>) {
        if size == 0 {
            return;
        }
        if self.to_drop > 0 {
            self.to_drop -= 1;
        } else {
            units.push(self.out[..size].to_vec());
        }
    }

    /// Samples per channel of silence to feed after the end of the signal so that every access
    /// unit covering it comes out (the encoder has no end-of-stream call in this binding).
    pub fn flush_samples(&self) -> u32 {
        self.config.delay + 2 * FRAME_SAMPLES
    }
}

/// Access units dropped at the start: the delay rounded up to whole frames.
pub fn priming_frames(delay: u32) -> u32 {
    delay.div_ceil(FRAME_SAMPLES)
}

/// Zero samples fed before the signal so that the delay plus them is whole frames.
pub fn priming_pad(delay: u32) -> u32 {
    priming_frames(delay) * FRAME_SAMPLES - delay
}

/// How the audio of a title is cut: `segments` segments (as many as video segments), `frames`
/// AAC frames in all, segment `k` starting at the frame nearest to video segment `k`'s start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPlan {
    /// Video frames per second.
    pub fps: u32,
    /// Video frames per (full) segment.
    pub segment_frames: u32,
    /// Audio samples per second (also the track's timescale).
    pub sample_rate: u32,
    /// Media segments, the same count as the video's.
    pub segments: u64,
    /// AAC frames in the track.
    pub frames: u64,
}

impl AudioPlan {
    /// The plan for a title of `video_frames` pictures in segments of `segment_frames`.
    pub fn new(fps: u32, segment_frames: u32, sample_rate: u32, video_frames: u64) -> AudioPlan {
        let segments = video_frames.div_ceil(u64::from(segment_frames)).max(1);
        let mut plan = AudioPlan {
            fps,
            segment_frames,
            sample_rate,
            segments,
            frames: 0,
        };
        // The track ends at the frame boundary nearest to the video's end, like every segment
        // boundary (so a live loop of the title is off by at most half a frame at its seam),
        // but the last segment keeps at least one frame.
        let num = u128::from(video_frames) * u128::from(sample_rate);
        let den = u128::from(fps) * u128::from(FRAME_SAMPLES);
        let nearest = ((2 * num + den) / (2 * den)) as u64;
        plan.frames = nearest.max(plan.segment_start(segments - 1) + 1);
        plan
    }

    /// The first AAC frame of segment `k`: the frame boundary nearest to `k * segment_frames /
    /// fps` seconds (halves round up), in exact integer arithmetic.
    pub fn segment_start(&self, k: u64) -> u64 {
        if k >= self.segments {
            return self.frames;
        }
        let num = u128::from(k) * u128::from(self.segment_frames) * u128::from(self.sample_rate);
        let den = u128::from(self.fps) * u128::from(FRAME_SAMPLES);
        ((2 * num + den) / (2 * den)) as u64
    }

    /// AAC frames `[start, end)` of segment `k`.
    pub fn segment(&self, k: u64) -> std::ops::Range<u64> {
        self.segment_start(k)..self.segment_start(k + 1)
    }

    /// The nominal segment duration in samples (`SegmentTemplate@duration` at the sample rate),
    /// or an error when the video segment is not a whole number of samples or is shorter than
    /// an AAC frame (an audio segment would be empty).
    pub fn nominal_duration(fps: u32, segment_frames: u32, sample_rate: u32) -> Result<u32> {
        let num = u64::from(segment_frames) * u64::from(sample_rate);
        if !num.is_multiple_of(u64::from(fps)) {
            bail!(
                "a segment of {segment_frames} frames at {fps} fps is not a whole number of audio \
                 samples at {sample_rate} Hz; choose another --segment or --fps"
            );
        }
        let samples = num / u64::from(fps);
        if samples < u64::from(FRAME_SAMPLES) {
            bail!(
                "segments of {samples} audio samples are shorter than one AAC frame \
                 ({FRAME_SAMPLES} samples); choose a longer --segment"
            );
        }
        u32::try_from(samples).map_err(|_| anyhow::anyhow!("segment too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_gives_the_codecs_string() {
        // AAC-LC, 48 kHz, stereo: 00010 0011 0010 000 = 0x11 0x90.
        let asc = Asc::parse(&[0x11, 0x90]).unwrap();
        assert_eq!(
            asc,
            Asc {
                object_type: 2,
                sample_rate: 48_000,
                channel_config: 2
            }
        );
        assert_eq!(asc.codecs(), "mp4a.40.2");
        // HE-AAC (SBR, object type 5) at 24 kHz core, mono.
        assert_eq!(Asc::parse(&[0x2b, 0x08]).unwrap().codecs(), "mp4a.40.5");
        // An escaped object type (31 + 6 bits): 32 + 10 = 42 (USAC), 44.1 kHz.
        let asc = Asc::parse(&[0xf9, 0x48, 0x40]).unwrap();
        assert_eq!((asc.object_type, asc.sample_rate), (42, 44_100));
        assert_eq!(asc.codecs(), "mp4a.40.42");
        assert!(Asc::parse(&[0x11]).is_err());
        assert!(Asc::parse(&[0x16, 0x90]).is_err(), "reserved index 13");
    }

    #[test]
    fn encoder_reports_lc_config_and_its_own_codecs() {
        for (rate, channels) in [(48_000, 2), (44_100, 1)] {
            let enc = AacEncoder::new(rate, channels, 64_000 * channels).unwrap();
            let asc = Asc::parse(&enc.config().asc).unwrap();
            assert_eq!(asc.object_type, 2);
            assert_eq!(asc.sample_rate, rate);
            assert_eq!(u32::from(asc.channel_config), channels);
            assert_eq!(asc.codecs(), "mp4a.40.2");
            assert!(enc.config().delay > 0 && enc.config().delay <= 4096);
        }
    }

    #[test]
    fn priming_is_whole_frames() {
        for delay in [1, 1024, 1025, 2048, 2100] {
            let (k, p) = (priming_frames(delay), priming_pad(delay));
            assert_eq!(k * FRAME_SAMPLES, delay + p, "delay {delay}");
            assert!(p < FRAME_SAMPLES);
        }
        assert_eq!((priming_frames(2048), priming_pad(2048)), (2, 0));
        assert_eq!((priming_frames(1600), priming_pad(1600)), (2, 448));
    }

    /// Encodes a signal that is silent, then a 1 kHz tone from sample `onset`; decodes the kept
    /// access units with FDK's decoder; returns the first decoded sample above half the tone's
    /// amplitude (the onset as the decoder sees it), less the decoder's own output delay (FDK's
    /// decoder delays by a frame for concealment and by its limiter's look-ahead; ffmpeg's
    /// decoder has no such delay).
    fn decoded_onset(onset: usize) -> usize {
        let rate = 48_000;
        let mut enc = AacEncoder::new(rate, 1, 96_000).unwrap();
        let total = onset + 8 * 1024;
        let pcm: Vec<i16> = (0..total + enc.flush_samples() as usize)
            .map(|n| {
                if n >= onset && n < total {
                    let t = (n - onset) as f64 / f64::from(rate);
                    (16_000.0 * (std::f64::consts::TAU * 1000.0 * t).sin()) as i16
                } else {
                    0
                }
            })
            .collect();
        let mut units = Vec::new();
        enc.feed(&pcm, &mut units).unwrap();
        let mut dec = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        dec.config_raw(&enc.config().asc).unwrap();
        let mut decoded = Vec::new();
        for unit in &units {
            dec.fill(unit).unwrap();
            let mut frame = vec![0i16; 4096];
            dec.decode_frame(&mut frame).unwrap();
            decoded.extend_from_slice(&frame[..dec.decoded_frame_size()]);
        }
        let found = decoded
            .iter()
            .position(|s| s.unsigned_abs() > 8_000)
            .expect("the tone is decoded");
        found - dec.stream_info().outputDelay as usize
    }

    #[test]
    fn priming_compensation_puts_decoded_samples_at_their_input_time() {
        for onset in [5 * 1024, 5 * 1024 + 300, 7000] {
            let got = decoded_onset(onset);
            // The tone reaches half amplitude within a quarter period (12 samples) of its start;
            // without the compensation it would be 2048 samples late.
            assert!(got.abs_diff(onset) <= 64, "onset {onset} decoded at {got}");
        }
    }

    #[test]
    fn audio_segments_start_at_the_nearest_frame_boundary() {
        // 2 s segments at 30 fps, 48 kHz: 93.75 frames per segment.
        let plan = AudioPlan::new(30, 60, 48_000, 900);
        assert_eq!(plan.segments, 15);
        assert_eq!(plan.frames, 1406, "30 s = 1406.25 frames, to the nearest");
        let starts: Vec<u64> = (0..=4).map(|k| plan.segment_start(k)).collect();
        // 0, 93.75, 187.5 (half: up), 281.25, 375.
        assert_eq!(starts, [0, 94, 188, 281, 375]);
        for k in 0..plan.segments {
            let r = plan.segment(k);
            let len = r.end - r.start;
            if k + 1 < plan.segments {
                assert!((93..=94).contains(&len), "segment {k}: {len} frames");
            }
            // Never more than half a frame from the video boundary.
            let exact = k as f64 * 2.0 * 48_000.0;
            assert!((r.start as f64 * 1024.0 - exact).abs() <= 512.0);
        }
        assert_eq!(
            plan.segment(14),
            1313..1406,
            "14 x 93.75 = 1312.5 rounds up"
        );
        assert_eq!(plan.segment_start(15), plan.frames);
        // 7.5 s is 351.56 frames: 352.
        assert_eq!(AudioPlan::new(30, 60, 48_000, 225).frames, 352);
        // A last video segment shorter than half a frame still gets a frame of audio.
        let plan = AudioPlan::new(120, 120, 48_000, 240 + 1);
        assert_eq!(plan.segments, 3);
        assert!(plan.segment(2).end > plan.segment(2).start);
        // 44.1 kHz, 1 s segments at 25 fps: 43.07 frames per segment.
        let plan = AudioPlan::new(25, 25, 44_100, 60);
        assert_eq!(
            (0..3).map(|k| plan.segment_start(k)).collect::<Vec<_>>(),
            [0, 43, 86]
        );
        assert_eq!(plan.frames, 103, "2.4 s = 103.36 frames");
    }

    #[test]
    fn nominal_duration_must_be_whole_samples_and_a_frame_long() {
        assert_eq!(AudioPlan::nominal_duration(30, 60, 48_000).unwrap(), 96_000);
        assert_eq!(AudioPlan::nominal_duration(10, 5, 44_100).unwrap(), 22_050);
        let err = AudioPlan::nominal_duration(7, 1, 48_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole number of audio samples"), "{err}");
        let err = AudioPlan::nominal_duration(60, 1, 48_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shorter than one AAC frame"), "{err}");
    }
}
