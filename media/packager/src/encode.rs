//! H.264 encoding of one rendition with OpenH264 (built from its bundled C++ source by the
//! `openh264` crate): bitrate rate control, no frame skipping, an IDR frame forced at every
//! segment start, and access units converted to length-prefixed (AVCC) samples for fMP4.
//!
//! Speed settings (measured on the 720p rung): low complexity, no adaptive quantization and no
//! background detection cut the encoder's CPU time by about a fifth against the defaults.

use anyhow::{bail, Context, Result};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use openh264::{OpenH264API, Timestamp};

use super::h264::{nal_type, nal_unit_type, split_annex_b, Sps};
use super::pattern::Yuv420;

/// One encoded picture, ready to be an fMP4 sample.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// NAL units, each prefixed by its 4-byte big-endian length; parameter sets removed (they
    /// live in the init segment's avcC).
    pub sample: Vec<u8>,
    /// True for an IDR picture (a sync sample, SAP type 1).
    pub is_idr: bool,
}

/// The parameter sets of a stream and what they say.
#[derive(Debug, Clone)]
pub struct ParameterSets {
    /// The SPS NAL unit (header byte included).
    pub sps: Vec<u8>,
    /// The PPS NAL unit.
    pub pps: Vec<u8>,
    /// The parsed SPS.
    pub info: Sps,
}

/// Encodes the pictures of one rendition.
pub struct H264Encoder {
    encoder: Encoder,
    width: usize,
    height: usize,
    fps: u32,
    params: Option<ParameterSets>,
    annex_b: Vec<u8>,
}

impl H264Encoder {
    /// An encoder for `width`x`height` at `fps`, aiming at `bitrate` bits/s, with an IDR every
    /// `gop_frames` pictures (callers also force one at each segment start).
    pub fn new(
        width: usize,
        height: usize,
        fps: u32,
        bitrate: u32,
        gop_frames: u32,
    ) -> Result<H264Encoder> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::Low)
            .adaptive_quantization(false)
            .background_detection(false)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(gop_frames))
            .num_threads(1)
            .vui(VuiConfig::bt709());
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| anyhow::anyhow!("cannot create the OpenH264 encoder: {e}"))?;
        // OpenH264 logs to stderr while it initializes (at the first picture), before the
        // crate applies its quiet trace level; the trace level is the one option OpenH264
        // accepts before initialization, so set it now.
        let mut level: std::os::raw::c_int = openh264_sys2::WELS_LOG_QUIET;
        // SAFETY: the encoder exists; SetOption copies the int behind the pointer, which
        // outlives the call; TRACE_LEVEL is allowed before Initialize (welsEncoderExt.cpp).
        let rc = unsafe {
            encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
                std::ptr::addr_of_mut!(level).cast(),
            )
        };
        if rc != 0 {
            bail!("OpenH264 refused its trace level (error {rc})");
        }
        Ok(H264Encoder {
            encoder,
            width,
            height,
            fps,
            params: None,
            annex_b: Vec::new(),
        })
    }

    /// The SPS and PPS, known after the first encoded picture.
    pub fn parameter_sets(&self) -> Option<&ParameterSets> {
        self.params.as_ref()
    }

    /// Encodes picture number `index`; `force_idr` makes it an IDR picture.
    pub fn encode(&mut self, frame: &Yuv420, index: u64, force_idr: bool) -> Result<EncodedFrame> {
        if (frame.width(), frame.height()) != (self.width, self.height) {
            bail!(
                "picture is {}x{}, the encoder expects {}x{}",
                frame.width(),
                frame.height(),
                self.width,
                self.height
            );
        }
        if force_idr {
            self.encoder.force_intra_frame();
        }
        let (y, u, v) = frame.planes();
        let source = YUVSlices::new(
            (y, u, v),
            (self.width, self.height),
            (self.width, self.width / 2, self.width / 2),
        );
        let millis = index * 1000 / u64::from(self.fps);
        let bitstream = self
            .encoder
            .encode_at(&source, Timestamp::from_millis(millis))
            .map_err(|e| anyhow::anyhow!("OpenH264 failed on picture {index}: {e}"))?;
        let frame_type = bitstream.frame_type();
        let mut annex_b = std::mem::take(&mut self.annex_b);
        annex_b.clear();
        bitstream.write_vec(&mut annex_b);
        let result = self.make_sample(&annex_b, frame_type, index);
        self.annex_b = annex_b;
        result
    }

    /// Turns one Annex B access unit into a length-prefixed sample, taking out the parameter sets.
    fn make_sample(
        &mut self,
        annex_b: &[u8],
        frame_type: FrameType,
        index: u64,
    ) -> Result<EncodedFrame> {
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) || annex_b.is_empty() {
            bail!("OpenH264 produced no picture for frame {index} ({frame_type:?})");
        }

        let mut sample = Vec::with_capacity(annex_b.len() + 16);
        let mut is_idr = false;
        let mut sps = None;
        let mut pps = None;
        for nal in split_annex_b(annex_b) {
            match nal_unit_type(nal) {
                nal_type::SPS => sps = Some(nal),
                nal_type::PPS => pps = Some(nal),
                nal_type::AUD => {}
                t => {
                    if t == nal_type::IDR {
                        is_idr = true;
                    }
                    let len = u32::try_from(nal.len()).context("NAL unit larger than 4 GiB")?;
                    sample.extend_from_slice(&len.to_be_bytes());
                    sample.extend_from_slice(nal);
                }
            }
        }
        self.check_parameter_sets(sps, pps, index)?;
        if is_idr && self.params.is_none() {
            bail!("IDR picture {index} came without SPS/PPS");
        }
        if sample.is_empty() {
            bail!("picture {index} has no slice data");
        }
        Ok(EncodedFrame { sample, is_idr })
    }

    /// Records the first SPS/PPS and insists later ones are identical: the samples carry none,
    /// so a change would make the stream undecodable with the init segment's avcC.
    fn check_parameter_sets(
        &mut self,
        sps: Option<&[u8]>,
        pps: Option<&[u8]>,
        index: u64,
    ) -> Result<()> {
        match (&self.params, sps, pps) {
            (_, None, None) => Ok(()),
            (None, Some(sps), Some(pps)) => {
                let info = Sps::parse(sps).context("the encoder's SPS")?;
                if (info.width as usize, info.height as usize) != (self.width, self.height) {
                    bail!(
                        "SPS says {}x{}, expected {}x{}",
                        info.width,
                        info.height,
                        self.width,
                        self.height
                    );
                }
                self.params = Some(ParameterSets {
                    sps: sps.to_vec(),
                    pps: pps.to_vec(),
                    info,
                });
                Ok(())
            }
            (Some(p), sps, pps) => {
                if sps.is_some_and(|s| s != p.sps.as_slice())
                    || pps.is_some_and(|s| s != p.pps.as_slice())
                {
                    bail!("the encoder changed its SPS/PPS at picture {index}");
                }
                Ok(())
            }
            (None, _, _) => bail!("picture {index} carried only one of SPS and PPS"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Pattern;

    #[test]
    fn forced_idr_at_every_segment_start_and_constant_parameter_sets() {
        let (w, h, fps) = (160, 96, 30);
        let mut enc = H264Encoder::new(w, h, fps, 200_000, 10).unwrap();
        let mut pattern = Pattern::new(w, h, fps, "T");
        let mut frame = Yuv420::new(w, h);
        let mut idr = Vec::new();
        for i in 0..25u64 {
            pattern.render(i, &mut frame);
            // Segment starts every 8 frames: forcing must win over the 10-frame GOP.
            let out = enc.encode(&frame, i, i % 8 == 0).unwrap();
            assert!(!out.sample.is_empty());
            // Every NAL length prefix must add up to the sample size.
            let mut pos = 0;
            while pos < out.sample.len() {
                let len = u32::from_be_bytes(out.sample[pos..pos + 4].try_into().unwrap());
                let t = out.sample[pos + 4] & 0x1f;
                assert!(t != nal_type::SPS && t != nal_type::PPS);
                pos += 4 + len as usize;
            }
            assert_eq!(pos, out.sample.len());
            if out.is_idr {
                idr.push(i);
            }
        }
        for start in [0, 8, 16, 24] {
            assert!(idr.contains(&start), "no IDR at {start}: {idr:?}");
        }
        let params = enc.parameter_sets().unwrap();
        assert_eq!((params.info.width, params.info.height), (160, 96));
        assert!(params.info.codecs().starts_with("avc1."));
    }

    #[test]
    fn wrong_picture_size_is_an_error() {
        let mut enc = H264Encoder::new(64, 64, 30, 100_000, 30).unwrap();
        assert!(enc.encode(&Yuv420::new(32, 32), 0, true).is_err());
    }
}
