//! Fragmented MP4 (ISO/IEC 14496-12) for DASH, written with `mp4-atom`: one init segment per
//! representation (`ftyp` + `moov` with `mvex`/`trex` and an `avc1`/`avcC` sample entry, or an
//! `mp4a`/`esds` one for AAC audio, no samples) and media segments (`styp` + `moof` with
//! `mfhd`/`traf`(`tfhd`, `tfdt`, `trun`) + `mdat`).

use anyhow::{bail, Context, Result};
use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{
    Audio, Avc1, Avcc, AvccExt, Btrt, Colr, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdat, Mdhd, Mdia,
    Mehd, Mfhd, Minf, Moof, Moov, Mp4a, Mvex, Mvhd, Pasp, Smhd, Stbl, Stco, Stsd, Styp, Tfdt, Tfhd,
    Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Url, Visual, Vmhd,
};

use super::encode::ParameterSets;

/// Sample flags of a sync sample: sample_depends_on = 2 (an I picture), is_non_sync = 0.
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags of other samples: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// The track the init segment describes.
pub struct TrackInfo<'a> {
    /// Picture width in pixels.
    pub width: u16,
    /// Picture height in pixels.
    pub height: u16,
    /// Media timescale (ticks per second) of `mdhd`, `tfdt` and sample durations.
    pub timescale: u32,
    /// Total duration in timescale ticks (written to `mehd`).
    pub duration: u64,
    /// SPS and PPS for `avcC`.
    pub params: &'a ParameterSets,
    /// Peak bitrate for `btrt`, bits/s.
    pub max_bitrate: u32,
    /// Average bitrate for `btrt`, bits/s.
    pub avg_bitrate: u32,
}

/// One sample of a media segment.
pub struct Sample<'a> {
    /// Length-prefixed NAL units.
    pub data: &'a [u8],
    /// Duration in timescale ticks.
    pub duration: u32,
    /// True for a sync sample (IDR).
    pub is_sync: bool,
}

/// The track id of our single-track files.
pub const TRACK_ID: u32 = 1;

/// Writes the init segment: `ftyp` and a `moov` declaring one fragmented H.264 video track.
pub fn init_segment(track: &TrackInfo<'_>) -> Result<Vec<u8>> {
    let sps = &track.params.info;
    let avcc = Avcc {
        configuration_version: 1,
        avc_profile_indication: sps.profile_idc,
        profile_compatibility: sps.constraint_flags,
        avc_level_indication: sps.level_idc,
        length_size: 4,
        sequence_parameter_sets: vec![track.params.sps.clone()],
        picture_parameter_sets: vec![track.params.pps.clone()],
        // The avcC extension is defined for the High profiles only (ISO/IEC 14496-15 5.3.3.1.2).
        ext: matches!(sps.profile_idc, 100 | 110 | 122 | 144).then(|| AvccExt {
            chroma_format: sps.chroma_format_idc as u8,
            bit_depth_luma: sps.bit_depth_luma as u8,
            bit_depth_chroma: sps.bit_depth_chroma as u8,
            sequence_parameter_sets_ext: Vec::new(),
        }),
    };
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: track.width,
            height: track.height,
            compressor: "".into(),
            ..Default::default()
        },
        avcc,
        btrt: Some(Btrt {
            buffer_size_db: 0,
            max_bitrate: track.max_bitrate,
            avg_bitrate: track.avg_bitrate,
        }),
        colr: Some(Colr::Nclx {
            colour_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            full_range_flag: false,
        }),
        pasp: Some(Pasp {
            h_spacing: 1,
            v_spacing: 1,
        }),
        taic: None,
        fiel: None,
        spatial: None,
    };
    write_init(
        Track {
            timescale: track.timescale,
            duration: track.duration,
            default_sample_flags: NON_SYNC_SAMPLE_FLAGS,
            tkhd: Tkhd {
                width: track.width.into(),
                height: track.height.into(),
                ..Default::default()
            },
            language: "und",
            handler: (*b"vide", "VideoHandler"),
            vmhd: Some(Vmhd::default()),
            smhd: None,
        },
        avc1.into(),
    )
}

/// The audio track an init segment describes.
pub struct AudioTrackInfo<'a> {
    /// Samples per second; also the media timescale.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Total duration in samples (written to `mehd`).
    pub duration: u64,
    /// The AudioSpecificConfig from the encoder (the `esds` DecoderSpecificInfo).
    pub asc: &'a [u8],
    /// ISO 639-2/T language code for `mdhd` (`und` when unknown).
    pub language: &'a str,
    /// Largest access unit in bytes (`bufferSizeDB`).
    pub buffer_size: u32,
    /// Peak bitrate, bits/s.
    pub max_bitrate: u32,
    /// Average bitrate, bits/s.
    pub avg_bitrate: u32,
}

/// MPEG-4 Audio (ISO/IEC 14496-3) in the `esds` objectTypeIndication.
pub const OTI_MPEG4_AUDIO: u8 = 0x40;
/// AudioStream in the `esds` streamType.
pub const STREAM_TYPE_AUDIO: u8 = 0x05;

/// Writes an audio init segment: `ftyp` and a `moov` declaring one fragmented AAC track with an
/// `mp4a` sample entry whose `esds` carries the encoder's AudioSpecificConfig.
pub fn audio_init_segment(track: &AudioTrackInfo<'_>) -> Result<Vec<u8>> {
    let sample_rate = u16::try_from(track.sample_rate)
        .context("sample rates above 65535 Hz do not fit the mp4a sample entry")?;
    let mp4a = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: track.channels,
            sample_size: 16,
            sample_rate: sample_rate.into(),
        },
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: 0,
                dec_config: DecoderConfig {
                    object_type_indication: OTI_MPEG4_AUDIO,
                    stream_type: STREAM_TYPE_AUDIO,
                    up_stream: 0,
                    buffer_size_db: track
                        .buffer_size
                        .min(mp4_atom::u24::MAX)
                        .try_into()
                        .context("bufferSizeDB")?,
                    max_bitrate: track.max_bitrate,
                    avg_bitrate: track.avg_bitrate,
                    dec_specific: Some(DecoderSpecific {
                        raw: track.asc.to_vec(),
                        ..Default::default()
                    }),
                },
                sl_config: SLConfig {},
                ..Default::default()
            },
        },
        btrt: Some(Btrt {
            buffer_size_db: track.buffer_size,
            max_bitrate: track.max_bitrate,
            avg_bitrate: track.avg_bitrate,
        }),
        taic: None,
    };
    write_init(
        Track {
            timescale: track.sample_rate,
            duration: track.duration,
            default_sample_flags: SYNC_SAMPLE_FLAGS,
            tkhd: Tkhd {
                alternate_group: 1,
                volume: 1.into(),
                ..Default::default()
            },
            language: track.language,
            handler: (*b"soun", "SoundHandler"),
            vmhd: None,
            smhd: Some(Smhd::default()),
        },
        mp4a.into(),
    )
}

/// What differs between the video and the audio init segments' `moov`.
struct Track<'a> {
    timescale: u32,
    /// Total duration in timescale ticks (`mehd`).
    duration: u64,
    /// `trex` default sample flags.
    default_sample_flags: u32,
    /// `tkhd` fields other than the track id and flags (size, volume, alternate group).
    tkhd: Tkhd,
    /// ISO 639-2/T language of `mdhd`.
    language: &'a str,
    /// `hdlr` type and name.
    handler: ([u8; 4], &'a str),
    vmhd: Option<Vmhd>,
    smhd: Option<Smhd>,
}

/// Writes `ftyp` and a `moov` declaring one fragmented track (`track`) with sample entry `codec`.
fn write_init(track: Track<'_>, codec: mp4_atom::Codec) -> Result<Vec<u8>> {
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"dash".into(), b"mp41".into()],
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: track.timescale,
            duration: 0,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: Some(Mehd {
                fragment_duration: track.duration,
            }),
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: track.default_sample_flags,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK_ID,
                enabled: true,
                in_movie: true,
                ..track.tkhd
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: track.timescale,
                    duration: 0,
                    language: track.language.into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: track.handler.0.into(),
                    name: track.handler.1.into(),
                },
                minf: Minf {
                    vmhd: track.vmhd,
                    smhd: track.smhd,
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![Url::default().into()],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![codec],
                        },
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out).context("encoding ftyp")?;
    moov.encode(&mut out).context("encoding moov")?;
    Ok(out)
}

/// Writes media segment number `sequence` (1-based `mfhd` sequence number) whose first sample
/// is decoded at `base_decode_time` ticks: `styp`, `moof`, `mdat`.
pub fn media_segment(
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample<'_>],
) -> Result<Vec<u8>> {
    let Some(first) = samples.first() else {
        bail!("a media segment needs at least one sample");
    };
    let default_duration = first.duration;
    let mut entries = Vec::with_capacity(samples.len());
    let mut payload = 0usize;
    for s in samples {
        entries.push(TrunEntry {
            duration: (s.duration != default_duration).then_some(s.duration),
            size: Some(u32::try_from(s.data.len()).context("sample larger than 4 GiB")?),
            flags: Some(if s.is_sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            }),
            cts: None,
        });
        payload += s.data.len();
    }
    // Any differing duration makes the trun carry every duration: fill them all in.
    if entries.iter().any(|e| e.duration.is_some()) {
        for (e, s) in entries.iter_mut().zip(samples) {
            e.duration = Some(s.duration);
        }
    }
    // All sync samples (audio): one default in tfhd instead of flags per sample.
    let all_sync = samples.iter().all(|s| s.is_sync);
    if all_sync {
        for e in &mut entries {
            e.flags = None;
        }
    }
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_sample_duration: Some(default_duration),
                default_sample_flags: all_sync.then_some(SYNC_SAMPLE_FLAGS),
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: entries.into(),
            }],
            ..Default::default()
        }],
    };
    // The data offset counts from the start of moof to the first payload byte, past the mdat
    // header; its value does not change the moof size, so measure once and patch.
    let mut probe = Vec::new();
    moof.encode(&mut probe).context("encoding moof")?;
    let mdat_header = if payload + 8 > u32::MAX as usize {
        16
    } else {
        8
    };
    let data_offset = i32::try_from(probe.len() + mdat_header).context("moof too large")?;
    moof.traf[0].trun[0].data_offset = Some(data_offset);

    let styp = Styp {
        major_brand: b"msdh".into(),
        minor_version: 0,
        compatible_brands: vec![b"msdh".into()],
    };
    let mut out = Vec::with_capacity(probe.len() + payload + 64);
    styp.encode(&mut out).context("encoding styp")?;
    moof.encode(&mut out).context("encoding moof")?;
    let mut data = Vec::with_capacity(payload);
    for s in samples {
        data.extend_from_slice(s.data);
    }
    Mdat { data }.encode(&mut out).context("encoding mdat")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::Sps;
    use mp4_atom::{Any, Decode};

    const SPS: [u8; 28] = [
        103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2, 128, 0, 0, 3, 0, 128, 0, 0,
        30, 7, 140, 24, 205,
    ];
    const PPS: [u8; 5] = [104, 233, 123, 44, 139];

    fn params() -> ParameterSets {
        ParameterSets {
            sps: SPS.to_vec(),
            pps: PPS.to_vec(),
            info: Sps::parse(&SPS).unwrap(),
        }
    }

    fn boxes(mut bytes: &[u8]) -> Vec<Any> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            out.push(Any::decode(&mut bytes).unwrap());
        }
        out
    }

    #[test]
    fn init_segment_declares_a_fragmented_avc1_track() {
        let params = params();
        let init = init_segment(&TrackInfo {
            width: 1280,
            height: 720,
            timescale: 90_000,
            duration: 90_000 * 6,
            params: &params,
            max_bitrate: 3_000_000,
            avg_bitrate: 2_500_000,
        })
        .unwrap();
        assert_eq!(&init[4..8], b"ftyp");
        let parsed = boxes(&init);
        assert_eq!(parsed.len(), 2);
        let Any::Moov(moov) = &parsed[1] else {
            panic!("second box is not moov: {:?}", parsed[1]);
        };
        let mvex = moov.mvex.as_ref().expect("mvex");
        assert_eq!(mvex.trex[0].track_id, TRACK_ID);
        assert_eq!(mvex.mehd.as_ref().unwrap().fragment_duration, 540_000);
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.timescale, 90_000);
        assert_eq!(trak.mdia.hdlr.handler, b"vide".into());
        let mp4_atom::Codec::Avc1(avc1) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("sample entry is not avc1");
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (1280, 720));
        assert_eq!(avc1.avcc.sequence_parameter_sets, vec![SPS.to_vec()]);
        assert_eq!(avc1.avcc.picture_parameter_sets, vec![PPS.to_vec()]);
        assert_eq!(
            (
                avc1.avcc.avc_profile_indication,
                avc1.avcc.profile_compatibility,
                avc1.avcc.avc_level_indication
            ),
            (100, 0, 31)
        );
        // The avcC bytes 1..3 are what the codecs string is made of.
        let pos = init.windows(4).position(|w| w == b"avcC").unwrap();
        assert_eq!(&init[pos + 4..pos + 8], &[1, 100, 0, 31]);
        assert_eq!(avc1.pasp.as_ref().unwrap().h_spacing, 1);
        assert!(trak.mdia.minf.stbl.stts.entries.is_empty());
    }

    #[test]
    fn media_segment_offsets_flags_and_timing() {
        let a = [0, 0, 0, 3, 0x65, 1, 2];
        let b = [0, 0, 0, 2, 0x41, 9];
        let c = [0, 0, 0, 1, 0x41];
        let samples = [
            Sample {
                data: &a,
                duration: 3000,
                is_sync: true,
            },
            Sample {
                data: &b,
                duration: 3000,
                is_sync: false,
            },
            Sample {
                data: &c,
                duration: 3000,
                is_sync: false,
            },
        ];
        let seg = media_segment(7, 180_000, &samples).unwrap();
        let parsed = boxes(&seg);
        let kinds: Vec<String> = parsed.iter().map(|b| b.kind().to_string()).collect();
        assert_eq!(kinds, ["styp", "moof", "mdat"]);
        let Any::Moof(moof) = &parsed[1] else {
            unreachable!()
        };
        assert_eq!(moof.mfhd.sequence_number, 7);
        let traf = &moof.traf[0];
        assert!(traf.tfhd.default_base_is_moof);
        assert_eq!(traf.tfhd.default_sample_duration, Some(3000));
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 180_000);
        let trun = &traf.trun[0];
        let entries: Vec<_> = trun.samples.iter().collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].flags, Some(SYNC_SAMPLE_FLAGS));
        assert_eq!(entries[1].flags, Some(NON_SYNC_SAMPLE_FLAGS));
        assert_eq!(
            entries.iter().map(|e| e.size.unwrap()).collect::<Vec<_>>(),
            [7, 6, 5]
        );
        // data_offset (from the start of moof) lands on the first sample byte in mdat.
        let styp_len = u32::from_be_bytes(seg[0..4].try_into().unwrap()) as usize;
        let offset = trun.data_offset.unwrap() as usize;
        assert_eq!(&seg[styp_len + offset..styp_len + offset + 7], &a);
        assert_eq!(&seg[seg.len() - 5..], &c);
    }

    #[test]
    fn shorter_last_sample_writes_explicit_durations() {
        let d = [0, 0, 0, 1, 0x65];
        let samples = [
            Sample {
                data: &d,
                duration: 3000,
                is_sync: true,
            },
            Sample {
                data: &d,
                duration: 1500,
                is_sync: false,
            },
        ];
        let seg = media_segment(1, 0, &samples).unwrap();
        let parsed = boxes(&seg);
        let Any::Moof(moof) = &parsed[1] else {
            unreachable!()
        };
        let durations: Vec<_> = moof.traf[0].trun[0]
            .samples
            .iter()
            .map(|e| e.duration)
            .collect();
        assert_eq!(durations, [Some(3000), Some(1500)]);
    }

    #[test]
    fn audio_init_segment_declares_mp4a_with_the_encoders_config() {
        let asc = [0x11, 0x90];
        let init = audio_init_segment(&AudioTrackInfo {
            sample_rate: 48_000,
            channels: 2,
            duration: 48_000 * 6,
            asc: &asc,
            language: "eng",
            buffer_size: 1500,
            max_bitrate: 140_000,
            avg_bitrate: 128_000,
        })
        .unwrap();
        let parsed = boxes(&init);
        let Any::Moov(moov) = &parsed[1] else {
            panic!("second box is not moov");
        };
        let trak = &moov.trak[0];
        assert_eq!(trak.mdia.mdhd.timescale, 48_000);
        assert_eq!(trak.mdia.hdlr.handler, b"soun".into());
        assert!(trak.mdia.minf.smhd.is_some() && trak.mdia.minf.vmhd.is_none());
        let mp4_atom::Codec::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("sample entry is not mp4a");
        };
        assert_eq!(mp4a.audio.channel_count, 2);
        assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        let dc = &mp4a.esds.es_desc.dec_config;
        assert_eq!((dc.object_type_indication, dc.stream_type), (0x40, 5));
        let ds = dc.dec_specific.as_ref().unwrap();
        assert_eq!(ds.raw, asc);
        assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 3, 2));
        assert_eq!(dc.max_bitrate, 140_000);
        assert_eq!(
            moov.mvex
                .as_ref()
                .unwrap()
                .mehd
                .as_ref()
                .unwrap()
                .fragment_duration,
            288_000
        );
    }

    #[test]
    fn all_sync_samples_share_the_tfhd_flags() {
        let d = [1u8, 2, 3];
        let samples: Vec<Sample<'_>> = (0..3)
            .map(|_| Sample {
                data: &d,
                duration: 1024,
                is_sync: true,
            })
            .collect();
        let seg = media_segment(2, 94 * 1024, &samples).unwrap();
        let Any::Moof(moof) = &boxes(&seg)[1] else {
            unreachable!()
        };
        let traf = &moof.traf[0];
        assert_eq!(traf.tfhd.default_sample_flags, Some(SYNC_SAMPLE_FLAGS));
        assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 96_256);
        assert!(traf.trun[0].samples.iter().all(|e| e.flags.is_none()));
    }

    #[test]
    fn empty_segment_is_an_error() {
        assert!(media_segment(1, 0, &[]).is_err());
    }
}
