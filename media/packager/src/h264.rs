//! H.264 bitstream plumbing the packager needs: splitting an Annex B stream into NAL units,
//! reading the sequence parameter set (profile, constraint flags, level, coded size) and turning
//! it into the RFC 6381 `avc1.PPCCLL` codecs string.

use anyhow::{bail, Context, Result};

/// NAL unit types (ITU-T H.264 table 7-1) the packager cares about.
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The type of a NAL unit (the low five bits of its header byte); 0 for an empty unit.
pub fn nal_unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Splits an Annex B byte stream (NAL units separated by `00 00 01` or `00 00 00 01` start codes)
/// into NAL units without their start codes. Bytes before the first start code are ignored;
/// trailing zero bytes of a unit (part of the next four-byte start code) are trimmed.
pub fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let mut end = match starts.get(k + 1) {
            Some(&next) => next - 3,
            None => stream.len(),
        };
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            units.push(&stream[start..end]);
        }
    }
    units
}

/// Removes emulation prevention bytes (`00 00 03` -> `00 00`), giving the raw byte sequence
/// payload of a NAL unit.
pub fn unescape_rbsp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits MSB first, with Exp-Golomb codes, failing cleanly at the end of the data.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .context("SPS ends in the middle of a field")?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Result<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool> {
        Ok(self.bit()? == 1)
    }

    fn ue(&mut self) -> Result<u32> {
        let mut leading_zeros = 0;
        while self.bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                bail!("Exp-Golomb code longer than 32 bits in SPS");
            }
        }
        let rest = self.bits(leading_zeros)?;
        Ok(((1u64 << leading_zeros) - 1 + u64::from(rest)) as u32)
    }

    fn se(&mut self) -> Result<i32> {
        let k = self.ue()?;
        let magnitude = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { magnitude } else { -magnitude })
    }
}

/// The fields of a sequence parameter set that a packager needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The byte of `constraint_set0..5_flag` and reserved bits.
    pub constraint_flags: u8,
    /// `level_idc` (30 = level 3.0, 31 = level 3.1, ...).
    pub level_idc: u8,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u32,
    /// `bit_depth_luma_minus8 + 8`.
    pub bit_depth_luma: u32,
    /// `bit_depth_chroma_minus8 + 8`.
    pub bit_depth_chroma: u32,
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (header byte included, emulation prevention bytes allowed).
    pub fn parse(nal: &[u8]) -> Result<Sps> {
        if nal_unit_type(nal) != nal_type::SPS {
            bail!(
                "not a sequence parameter set (NAL unit type {})",
                nal_unit_type(nal)
            );
        }
        let rbsp = unescape_rbsp(&nal[1..]);
        if rbsp.len() < 4 {
            bail!("SPS is too short ({} bytes)", rbsp.len());
        }
        let (profile_idc, constraint_flags, level_idc) = (rbsp[0], rbsp[1], rbsp[2]);
        let mut r = BitReader::new(&rbsp[3..]);
        let _seq_parameter_set_id = r.ue()?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        let mut bit_depth_chroma = 8;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                bail!("SPS chroma_format_idc {chroma_format_idc} is out of range");
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            bit_depth_luma = r.ue()? + 8;
            bit_depth_chroma = r.ue()? + 8;
            let _qpprime_y_zero_transform_bypass = r.flag()?;
            if r.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num = r.ue()?;
        match r.ue()? {
            0 => {
                let _log2_max_pic_order_cnt_lsb = r.ue()?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.flag()?;
                let _offset_for_non_ref_pic = r.se()?;
                let _offset_for_top_to_bottom_field = r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    bail!("SPS num_ref_frames_in_pic_order_cnt_cycle {cycle} is out of range");
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            other => bail!("SPS pic_order_cnt_type {other} is out of range"),
        }
        let _max_num_ref_frames = r.ue()?;
        let _gaps_in_frame_num_allowed = r.flag()?;
        let width_in_mbs = u64::from(r.ue()?) + 1;
        let height_in_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.flag()?;
        }
        let _direct_8x8_inference = r.flag()?;
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
        if r.flag()? {
            crop_l = r.ue()?.into();
            crop_r = r.ue()?.into();
            crop_t = r.ue()?.into();
            crop_b = r.ue()?.into();
        }
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_unit_x, crop_unit_y) = if chroma_format_idc == 0 || separate_colour_plane {
            (1, field_factor)
        } else {
            let sub_width = if chroma_format_idc == 3 { 1 } else { 2 };
            let sub_height = if chroma_format_idc == 1 { 2 } else { 1 };
            (sub_width, sub_height * field_factor)
        };
        let coded_width = width_in_mbs * 16;
        let coded_height = height_in_map_units * 16 * field_factor;
        let crop_x = crop_unit_x * (crop_l + crop_r);
        let crop_y = crop_unit_y * (crop_t + crop_b);
        if crop_x >= coded_width || crop_y >= coded_height {
            bail!("SPS cropping ({crop_x}x{crop_y}) removes the whole {coded_width}x{coded_height} picture");
        }
        let width = u32::try_from(coded_width - crop_x).context("SPS width out of range")?;
        let height = u32::try_from(coded_height - crop_y).context("SPS height out of range")?;
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width,
            height,
        })
    }

    /// The RFC 6381 codecs parameter: `avc1.` followed by the hex of profile_idc, the constraint
    /// flags byte and level_idc (the same three bytes as avcC bytes 1..3).
    pub fn codecs(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<()> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SPS written by x264 for 1280x720 High profile level 3.1 (from mp4-atom's test file).
    const SPS_HIGH_720P: [u8; 28] = [
        103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2, 128, 0, 0, 3, 0, 128, 0, 0,
        30, 7, 140, 24, 205,
    ];

    #[test]
    fn codecs_string_of_x264_high_sps() {
        let sps = Sps::parse(&SPS_HIGH_720P).unwrap();
        assert_eq!(sps.codecs(), "avc1.64001f");
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!(sps.bit_depth_luma, 8);
    }

    #[test]
    fn codecs_string_of_constrained_baseline_with_cropping() {
        // Constrained Baseline 3.0, 27x15 macroblocks (432x240) cropped right by 3 units of 2 px
        // to 426x240.
        let mut bits = BitWriter::default();
        bits.ue(0); // seq_parameter_set_id
        bits.ue(0); // log2_max_frame_num_minus4
        bits.ue(2); // pic_order_cnt_type
        bits.ue(1); // max_num_ref_frames
        bits.flag(false); // gaps_in_frame_num_value_allowed_flag
        bits.ue(26); // pic_width_in_mbs_minus1
        bits.ue(14); // pic_height_in_map_units_minus1
        bits.flag(true); // frame_mbs_only_flag
        bits.flag(true); // direct_8x8_inference_flag
        bits.flag(true); // frame_cropping_flag
        bits.ue(0);
        bits.ue(3);
        bits.ue(0);
        bits.ue(0);
        bits.flag(false); // vui_parameters_present_flag
        let mut nal = vec![0x67, 66, 0xc0, 30];
        nal.extend(bits.finish());
        let sps = Sps::parse(&nal).unwrap();
        assert_eq!(sps.codecs(), "avc1.42c01e");
        assert_eq!((sps.width, sps.height), (426, 240));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
    }

    #[test]
    fn truncated_or_foreign_nal_is_an_error_not_a_panic() {
        assert!(Sps::parse(&[]).is_err());
        assert!(Sps::parse(&[0x68, 1, 2, 3, 4]).is_err());
        for len in 0..SPS_HIGH_720P.len() {
            let parsed = Sps::parse(&SPS_HIGH_720P[..len]);
            if len <= 6 {
                assert!(parsed.is_err(), "length {len}");
            }
        }
        let mut rubbish = vec![0x67, 100, 0, 31];
        rubbish.extend([0u8; 16]);
        assert!(Sps::parse(&rubbish).is_err());
    }

    #[test]
    fn annex_b_split_handles_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0, 4,
        ];
        let units = split_annex_b(&stream);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 0, 4][..]]
        );
        assert_eq!(nal_unit_type(units[2]), nal_type::IDR);
        assert!(split_annex_b(&[1, 2, 3]).is_empty());
    }

    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn flag(&mut self, b: bool) {
            self.bits.push(b);
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let n = 64 - x.leading_zeros();
            for _ in 1..n {
                self.bits.push(false);
            }
            for i in (0..n).rev() {
                self.bits.push((x >> i) & 1 == 1);
            }
        }
        fn finish(mut self) -> Vec<u8> {
            self.bits.push(true); // rbsp_stop_one_bit
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            self.bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b)))
                .collect()
        }
    }
}
