//! Cutting a CMAF media segment into chunks for low-latency live: one `moof`+`mdat` per chunk
//! of a fixed media duration, as a live encoder writes them while the segment is being made.
//!
//! [`split`] reads a segment (optional `styp`/`sidx`, then `moof`+`mdat` pairs, one track) once
//! into [`Split`]: every sample with its decode offset from the segment start, its size, flags
//! and composition offset, and its bytes. [`Split::chunk`] then writes chunk `i` for a given
//! place on the live timeline: `prft` (the wall-clock time the chunk was "produced", so players
//! measure latency from the encoder's clock), `moof` (new `mfhd` sequence number and `tfdt`,
//! every sample's duration, size and flags explicit), `mdat`. The segment's `styp`, if any,
//! leads chunk 0, so the chunks concatenated are the whole segment (LL-HLS parts and the
//! segment are the same bytes). A `sidx` is dropped: it would index a layout that changed.
//!
//! Sample `s` goes to chunk `floor(offset(s) / chunk_ticks)` (at most the last chunk), so a
//! chunk covers media `[i*c, (i+1)*c)` of the segment; a chunk with no sample is absent.

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use mp4_atom::{
    Decode, Encode, Mfhd, Moof, Prft, ReferenceTime, Tfdt, Tfhd, Traf, Trun, TrunEntry,
};

use crate::retime;

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One sample of a segment.
#[derive(Debug, Clone)]
struct SampleRef {
    /// Decode time from the segment's first sample, in ticks.
    offset: u64,
    duration: u32,
    flags: Option<u32>,
    cts: Option<i64>,
    data: Bytes,
}

/// A segment read into samples, ready to be written as chunks.
#[derive(Debug)]
pub struct Split {
    /// Bytes before the first `moof` that stay (a `styp`).
    prefix: Bytes,
    track_id: u32,
    /// Sample description index of the track fragment header, when it names one.
    sample_description_index: Option<u32>,
    /// The segment's own first decode time (its `tfdt`).
    base_decode_time: u64,
    /// Samples per chunk index (empty vectors for chunks with no sample).
    chunks: Vec<Vec<SampleRef>>,
}

/// The place of one chunk on the live timeline.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// `tfdt` of the segment's first sample on the live timeline.
    pub decode_time: u64,
    /// `mfhd` sequence number of the chunk.
    pub sequence: u32,
    /// Track timescale (ticks per second).
    pub timescale: u64,
    /// Wall-clock time of decode time 0 (the channel's availabilityStartTime), Unix nanoseconds.
    pub epoch_ns: u128,
}

impl Split {
    /// Whether chunk slot `i` holds samples.
    pub fn has(&self, i: usize) -> bool {
        self.chunks.get(i).is_some_and(|c| !c.is_empty())
    }

    /// The segment's first decode time in its source (`tfdt`).
    pub fn base_decode_time(&self) -> u64 {
        self.base_decode_time
    }

    /// Writes chunk `i` placed at `at`: `[styp]` (chunk 0 only), `prft`, `moof`, `mdat`.
    pub fn chunk(&self, i: usize, at: Placement) -> Result<Bytes> {
        let samples = self
            .chunks
            .get(i)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| anyhow!("chunk {i} of the segment has no samples"))?;
        let first = samples[0].offset;
        let decode_time = at
            .decode_time
            .checked_add(first)
            .ok_or_else(|| anyhow!("decode time out of range"))?;
        let any_flags = samples.iter().any(|s| s.flags.is_some());
        let any_cts = samples.iter().any(|s| s.cts.is_some());
        let entries: Vec<TrunEntry> = samples
            .iter()
            .map(|s| TrunEntry {
                duration: Some(s.duration),
                size: Some(s.data.len() as u32),
                flags: if any_flags { s.flags } else { None },
                cts: if any_cts {
                    Some(s.cts.unwrap_or(0))
                } else {
                    None
                },
            })
            .collect();
        if any_flags && entries.iter().any(|e| e.flags.is_none()) {
            bail!("chunk {i}: some samples have flags and others none");
        }
        let payload: usize = samples.iter().map(|s| s.data.len()).sum();
        let mut moof = Moof {
            mfhd: Mfhd {
                sequence_number: at.sequence,
            },
            traf: vec![Traf {
                tfhd: Tfhd {
                    track_id: self.track_id,
                    sample_description_index: self.sample_description_index,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: entries.into(),
                }],
                ..Default::default()
            }],
        };
        let mut probe = Vec::new();
        moof.encode(&mut probe).context("encoding moof")?;
        let mdat_header = if payload + 8 > u32::MAX as usize {
            16
        } else {
            8
        };
        moof.traf[0].trun[0].data_offset =
            Some(i32::try_from(probe.len() + mdat_header).context("moof too large")?);

        // The chunk is produced when its first sample is: AST + decode time.
        let wall_ns =
            at.epoch_ns + u128::from(decode_time) * 1_000_000_000 / u128::from(at.timescale.max(1));
        let prft = Prft {
            reference_track_id: self.track_id,
            ntp_timestamp: ntp(wall_ns),
            media_time: decode_time,
            utc_time_semantics: ReferenceTime::Input,
        };
        let mut out = BytesMut::with_capacity(payload + probe.len() + 64 + self.prefix.len());
        let mut head = Vec::with_capacity(probe.len() + 64);
        if i == 0 {
            head.extend_from_slice(&self.prefix);
        }
        prft.encode(&mut head).context("encoding prft")?;
        moof.encode(&mut head).context("encoding moof")?;
        out.extend_from_slice(&head);
        if mdat_header == 8 {
            out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
            out.extend_from_slice(b"mdat");
        } else {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(b"mdat");
            out.extend_from_slice(&((payload + 16) as u64).to_be_bytes());
        }
        for s in samples {
            out.extend_from_slice(&s.data);
        }
        Ok(out.freeze())
    }
}

/// A 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, the fraction in the low).
fn ntp(unix_ns: u128) -> u64 {
    let secs = (unix_ns / 1_000_000_000) as u64 + NTP_UNIX_OFFSET;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    (secs << 32) | frac as u64
}

/// Reads `segment` into samples grouped by chunk: `chunk_ticks` per chunk and `segment_ticks`
/// per segment, both in the track's timescale.
pub fn split(segment: &Bytes, chunk_ticks: u64, segment_ticks: u64) -> Result<Split> {
    ensure!(
        chunk_ticks > 0 && segment_ticks > 0,
        "zero chunk or segment duration"
    );
    let slots = segment_ticks.div_ceil(chunk_ticks) as usize;
    ensure!(
        (1..=1000).contains(&slots),
        "{slots} chunks per segment is out of range"
    );
    let mut chunks: Vec<Vec<SampleRef>> = vec![Vec::new(); slots];
    let mut prefix = BytesMut::new();
    let mut track: Option<(u32, Option<u32>)> = None;
    let mut base: Option<u64> = None;
    let mut next_offset = 0u64;
    let mut pos = 0usize;
    let bytes = &segment[..];
    while pos < bytes.len() {
        let (size, kind, _) = retime::header(bytes, pos).map_err(|e| anyhow!("segment: {e}"))?;
        let end = size
            .map(|s| pos + s)
            .unwrap_or(bytes.len())
            .min(bytes.len());
        ensure!(
            end > pos && size.is_none_or(|s| pos + s <= bytes.len()),
            "segment: box at byte {pos} runs past the end"
        );
        match &kind {
            b"moof" => {
                let moof = Moof::decode(&mut &bytes[pos..end])
                    .map_err(|e| anyhow!("segment: moof at byte {pos}: {e}"))?;
                let [traf] = moof.traf.as_slice() else {
                    bail!(
                        "segment: a moof with {} track fragments (one track per segment)",
                        moof.traf.len()
                    );
                };
                let tfhd = &traf.tfhd;
                match track {
                    None => track = Some((tfhd.track_id, tfhd.sample_description_index)),
                    Some((id, _)) if id != tfhd.track_id => {
                        bail!("segment: more than one track")
                    }
                    _ => {}
                }
                ensure!(
                    tfhd.base_data_offset.is_none(),
                    "segment: explicit base data offsets are not supported"
                );
                let tfdt = traf
                    .tfdt
                    .as_ref()
                    .map(|t| t.base_media_decode_time)
                    .ok_or_else(|| anyhow!("segment: a track fragment without tfdt"))?;
                let base = *base.get_or_insert(tfdt);
                let mut t = tfdt
                    .checked_sub(base)
                    .ok_or_else(|| anyhow!("segment: decode times go backwards"))?;
                ensure!(
                    t >= next_offset,
                    "segment: fragments overlap in decode time"
                );
                // Without default-base-is-moof, the first track fragment's base is the moof too.
                let mut data = pos;
                for trun in &traf.trun {
                    if let Some(off) = trun.data_offset {
                        data = usize::try_from(pos as i64 + i64::from(off))
                            .map_err(|_| anyhow!("segment: negative data offset"))?;
                    }
                    for (idx, e) in trun.samples.iter().enumerate() {
                        let duration = e
                            .duration
                            .or(tfhd.default_sample_duration)
                            .ok_or_else(|| anyhow!("segment: a sample without a duration"))?;
                        let len = e
                            .size
                            .or(tfhd.default_sample_size)
                            .ok_or_else(|| anyhow!("segment: a sample without a size"))?
                            as usize;
                        let first_flags = match &trun.samples {
                            mp4_atom::TrunSamples::Inherited { first_flags, .. } if idx == 0 => {
                                *first_flags
                            }
                            _ => None,
                        };
                        let flags = e.flags.or(first_flags).or(tfhd.default_sample_flags);
                        let stop = data
                            .checked_add(len)
                            .filter(|s| *s <= bytes.len())
                            .ok_or_else(|| {
                                anyhow!("segment: sample data runs past the end of the segment")
                            })?;
                        let slot = ((t / chunk_ticks) as usize).min(slots - 1);
                        chunks[slot].push(SampleRef {
                            offset: t,
                            duration,
                            flags,
                            cts: e.cts,
                            data: segment.slice(data..stop),
                        });
                        data = stop;
                        t += u64::from(duration);
                    }
                }
                next_offset = t;
            }
            b"styp" if track.is_none() => prefix.extend_from_slice(&bytes[pos..end]),
            _ => {}
        }
        pos = end;
    }
    let (track_id, sample_description_index) = track.ok_or_else(|| anyhow!("segment: no moof"))?;
    ensure!(chunks.iter().any(|c| !c.is_empty()), "segment: no samples");
    Ok(Split {
        prefix: prefix.freeze(),
        track_id,
        sample_description_index,
        base_decode_time: base.unwrap_or(0),
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Mdat, Styp};

    /// A segment as the packager writes it: `styp`, one `moof` (durations from tfhd, flags per
    /// sample), `mdat`; sample `n` is `n` repeated `10 + n` times.
    fn segment(count: u32, duration: u32, tfdt: u64) -> Bytes {
        let entries: Vec<TrunEntry> = (0..count)
            .map(|n| TrunEntry {
                duration: None,
                size: Some(10 + n),
                flags: Some(if n % 15 == 0 {
                    0x0200_0000
                } else {
                    0x0101_0000
                }),
                cts: None,
            })
            .collect();
        let mut moof = Moof {
            mfhd: Mfhd { sequence_number: 7 },
            traf: vec![Traf {
                tfhd: Tfhd {
                    track_id: 1,
                    default_sample_duration: Some(duration),
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: tfdt,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: entries.into(),
                }],
                ..Default::default()
            }],
        };
        let mut probe = Vec::new();
        moof.encode(&mut probe).unwrap();
        moof.traf[0].trun[0].data_offset = Some(probe.len() as i32 + 8);
        let mut out = Vec::new();
        Styp {
            major_brand: b"msdh".into(),
            minor_version: 0,
            compatible_brands: vec![b"msdh".into()],
        }
        .encode(&mut out)
        .unwrap();
        moof.encode(&mut out).unwrap();
        let data: Vec<u8> = (0..count)
            .flat_map(|n| std::iter::repeat_n(n as u8, 10 + n as usize))
            .collect();
        Mdat { data }.encode(&mut out).unwrap();
        Bytes::from(out)
    }

    fn boxes(mut b: &[u8]) -> Vec<Any> {
        let mut out = Vec::new();
        while !b.is_empty() {
            out.push(Any::decode(&mut b).unwrap());
        }
        out
    }

    fn at(decode_time: u64, sequence: u32) -> Placement {
        Placement {
            decode_time,
            sequence,
            timescale: 30,
            epoch_ns: 1_700_000_000 * 1_000_000_000,
        }
    }

    #[test]
    fn a_segment_splits_into_chunks_that_carry_every_sample_in_order() {
        // 60 frames of 1 tick at timescale 30: a 2 s segment, 0.5 s chunks of 15 frames.
        let seg = segment(60, 1, 300);
        let split = split(&seg, 15, 60).unwrap();
        assert_eq!(split.chunks.len(), 4);
        assert_eq!(split.base_decode_time(), 300);
        let mut payload = Vec::new();
        for i in 0..4 {
            let chunk = split.chunk(i, at(3000, 100 + i as u32)).unwrap();
            let parts = boxes(&chunk);
            let kinds: Vec<_> = parts.iter().map(|b| b.kind().to_string()).collect();
            if i == 0 {
                assert_eq!(kinds, ["styp", "prft", "moof", "mdat"]);
            } else {
                assert_eq!(kinds, ["prft", "moof", "mdat"]);
            }
            let moof = parts
                .iter()
                .find_map(|b| match b {
                    Any::Moof(m) => Some(m.clone()),
                    _ => None,
                })
                .unwrap();
            let prft = parts
                .iter()
                .find_map(|b| match b {
                    Any::Prft(p) => Some(p.clone()),
                    _ => None,
                })
                .unwrap();
            assert_eq!(moof.mfhd.sequence_number, 100 + i as u32);
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
            assert_eq!(tfdt, 3000 + 15 * i as u64);
            assert_eq!(prft.media_time, tfdt);
            // NTP seconds of AST + tfdt/30.
            assert_eq!(
                prft.ntp_timestamp >> 32,
                1_700_000_000 + NTP_UNIX_OFFSET + tfdt / 30
            );
            let entries: Vec<_> = traf.trun[0].samples.iter().collect();
            assert_eq!(entries.len(), 15);
            // The chunk's first frame is a key frame only in chunk 0 (every 15th frame here).
            assert_eq!(entries[0].flags, Some(0x0200_0000));
            assert_eq!(entries[1].flags, Some(0x0101_0000));
            // Data offset from the moof start points at the first payload byte.
            let moof_pos = chunk.windows(4).position(|w| w == b"moof").unwrap() - 4;
            let off = traf.trun[0].data_offset.unwrap() as usize;
            assert_eq!(chunk[moof_pos + off], (15 * i) as u8);
            let mdat = parts
                .iter()
                .find_map(|b| match b {
                    Any::Mdat(m) => Some(m.data.clone()),
                    _ => None,
                })
                .unwrap();
            payload.extend_from_slice(&mdat);
        }
        let expected: Vec<u8> = (0..60u32)
            .flat_map(|n| std::iter::repeat_n(n as u8, 10 + n as usize))
            .collect();
        assert_eq!(payload, expected, "the chunks carry every sample in order");
    }

    #[test]
    fn samples_past_the_nominal_end_go_to_the_last_chunk_and_empty_slots_are_absent() {
        // 5 samples of 10 ticks, chunks of 15: slot 0 gets offsets 0 and 10, slot 1 gets 20,
        // slot 2 gets 30 and 40; a 40-tick segment has 3 slots, the 5th sample (40) goes to 2.
        let seg = segment(5, 10, 0);
        let split = split(&seg, 15, 40).unwrap();
        assert_eq!(split.chunks.len(), 3);
        assert!(split.has(0) && split.has(1) && split.has(2));
        // Chunks of 1 tick in a 50-tick segment: most slots are empty.
        let split = super::split(&seg, 1, 50).unwrap();
        assert!(split.has(0) && !split.has(1) && split.has(10));
        assert!(split.chunk(1, at(0, 1)).is_err());
    }

    #[test]
    fn malformed_segments_are_errors_not_panics() {
        let seg = segment(10, 1, 0);
        assert!(split(&Bytes::new(), 1, 10).is_err());
        assert!(split(&seg.slice(..seg.len() - 5), 1, 10).is_err());
        assert!(split(&seg.slice(..40), 1, 10).is_err());
        assert!(split(&seg, 0, 10).is_err());
        assert!(split(&seg, 1, 0).is_err());
        let mut junk = seg.to_vec();
        junk[30] ^= 0xff;
        let _ = split(&Bytes::from(junk), 1, 10);
        for cut in 0..seg.len() {
            let _ = split(&seg.slice(..cut), 3, 10);
        }
    }
}
