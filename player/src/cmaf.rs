//! CMAF chunks as they stream in: the init segment's track timescales (`moov/trak/mdia/mdhd`,
//! default sample durations from `mvex/trex`) and an incremental reader of a media segment's
//! top-level boxes that reports each completed chunk (a `moof` and the `mdat` after it, with
//! any `styp`/`prft`/`emsg` before them counted in the chunk's bytes) with its media duration
//! (the sum of its `trun` sample durations, or sample count times the `tfhd`/`trex` default,
//! over the track timescale; the `moof` is decoded with mp4-atom) and the timing of its bytes
//! (for the burst estimate of [`crate::estimator::Burst`]). Of the init segment only the three
//! fields above are read, leniently, so any codec's sample entries are fine.
//!
//! Pure and bounded: boxes other than `mdat` are kept only until complete and may not exceed
//! [`MAX_BOX`]; `mdat` payloads are counted, never kept. Malformed input is an error, never a
//! panic.

use anyhow::{anyhow, bail, Result};
use mp4_atom::{Decode, Moof};

use crate::estimator::Burst;

/// Largest non-`mdat` box accepted while streaming (a `moof` of a chunk is a few kilobytes).
pub const MAX_BOX: u64 = 4 << 20;

/// One track of an init segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: u32,
    /// Ticks per second of the track's media time.
    pub timescale: u32,
    /// `trex` default sample duration, ticks (0 when absent).
    pub default_sample_duration: u32,
}

/// What an init segment says about its tracks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitInfo {
    pub tracks: Vec<TrackInfo>,
}

/// A box header read from `data`: (type, header length, total length); `None` when `data` is
/// too short to hold it. A size of 0 (to the end of the file) is `u64::MAX`.
fn header(data: &[u8]) -> Result<Option<([u8; 4], usize, u64)>> {
    if data.len() < 8 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as u64;
    let kind = [data[4], data[5], data[6], data[7]];
    match size {
        1 => {
            if data.len() < 16 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[8..16]);
            let large = u64::from_be_bytes(b);
            if large < 16 {
                bail!("box `{}` has a bad size {large}", fourcc(kind));
            }
            Ok(Some((kind, 16, large)))
        }
        0 => Ok(Some((kind, 8, u64::MAX))),
        s if s < 8 => bail!("box `{}` has a bad size {s}", fourcc(kind)),
        s => Ok(Some((kind, 8, s))),
    }
}

fn fourcc(k: [u8; 4]) -> String {
    k.iter()
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
}

/// The children of a box body (complete in memory): (type, body).
fn children(mut data: &[u8]) -> Result<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some((kind, hl, size)) = header(data)? else {
            bail!("a box header is cut off");
        };
        let size = if size == u64::MAX {
            data.len() as u64
        } else {
            size
        };
        if size > data.len() as u64 {
            bail!("box `{}` is cut off", fourcc(kind));
        }
        let size = size as usize;
        out.push((kind, &data[hl..size]));
        data = &data[size..];
    }
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| anyhow!("box body cut off at byte {at}"))
}

impl InitInfo {
    /// Reads the tracks of an init segment (`ftyp` + `moov`, possibly more).
    pub fn parse(data: &[u8]) -> Result<InitInfo> {
        let top = children(data).map_err(|e| anyhow!("init segment: {e}"))?;
        let Some((_, moov)) = top.iter().find(|(k, _)| k == b"moov") else {
            bail!("init segment: no `moov` box");
        };
        let mut info = InitInfo::default();
        let mut trex: Vec<(u32, u32)> = Vec::new();
        for (kind, body) in children(moov)? {
            match &kind {
                b"trak" => {
                    let (mut id, mut timescale) = (None, None);
                    for (k, b) in children(body)? {
                        match &k {
                            b"tkhd" => {
                                let v = *b.first().ok_or_else(|| anyhow!("empty `tkhd`"))?;
                                id = Some(be32(b, if v == 1 { 20 } else { 12 })?);
                            }
                            b"mdia" => {
                                for (k2, b2) in children(b)? {
                                    if &k2 == b"mdhd" {
                                        let v =
                                            *b2.first().ok_or_else(|| anyhow!("empty `mdhd`"))?;
                                        timescale = Some(be32(b2, if v == 1 { 20 } else { 12 })?);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    match (id, timescale) {
                        (Some(track_id), Some(ts)) if ts > 0 => info.tracks.push(TrackInfo {
                            track_id,
                            timescale: ts,
                            default_sample_duration: 0,
                        }),
                        _ => bail!("init segment: a `trak` without track id or timescale"),
                    }
                }
                b"mvex" => {
                    for (k, b) in children(body)? {
                        if &k == b"trex" {
                            trex.push((be32(b, 4)?, be32(b, 12)?));
                        }
                    }
                }
                _ => {}
            }
        }
        if info.tracks.is_empty() {
            bail!("init segment: no track");
        }
        for t in &mut info.tracks {
            if let Some(&(_, d)) = trex.iter().find(|(id, _)| *id == t.track_id) {
                t.default_sample_duration = d;
            }
        }
        Ok(info)
    }

    fn track(&self, id: u32) -> Option<&TrackInfo> {
        self.tracks
            .iter()
            .find(|t| t.track_id == id)
            .or(if self.tracks.len() == 1 {
                self.tracks.first()
            } else {
                None
            })
    }
}

/// Media seconds a `moof` (the whole box, header included) describes: its first track
/// fragment's sample durations (from the `trun`, else the `tfhd` default, else the init's
/// `trex`) over its track's timescale.
fn moof_duration_s(moof: &[u8], init: &InitInfo) -> Result<f64> {
    let moof = Moof::decode(&mut &moof[..]).map_err(|e| anyhow!("`moof`: {e}"))?;
    let traf = moof
        .traf
        .first()
        .ok_or_else(|| anyhow!("`moof` without `traf`"))?;
    let id = traf.tfhd.track_id;
    let track = init
        .track(id)
        .ok_or_else(|| anyhow!("`tfhd` names track {id}, not in the init"))?;
    let default = traf
        .tfhd
        .default_sample_duration
        .unwrap_or(track.default_sample_duration);
    let ticks: u64 = traf
        .trun
        .iter()
        .flat_map(|run| run.samples.iter())
        .map(|e| u64::from(e.duration.unwrap_or(default)))
        .sum();
    Ok(ticks as f64 / f64::from(track.timescale))
}

/// A chunk completed while streaming.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkDone {
    /// Media seconds the chunk holds.
    pub media_s: f64,
    /// Bytes of the chunk (every box from the previous chunk's end through its `mdat`).
    pub bytes: u64,
    /// The chunk's bytes over its arrival time (see [`Burst::from_reads`]).
    pub burst: Burst,
    /// When its last byte arrived.
    pub at_s: f64,
}

/// Reads a media segment's top-level boxes as they arrive.
#[derive(Debug, Clone)]
pub struct ChunkReader {
    init: InitInfo,
    /// Bytes of the box being read (its header, and its body unless it is an `mdat`).
    pending: Vec<u8>,
    /// Of an `mdat` being skipped: its payload bytes still to come.
    mdat_left: u64,
    /// The `moof` whose `mdat` is awaited: its media seconds.
    moof_media_s: Option<f64>,
    /// The chunk under way: bytes, first read (time, bytes), last read time.
    chunk_bytes: u64,
    first_read: Option<(f64, u64)>,
    last_read_s: f64,
    /// Media seconds of every chunk completed so far.
    pub media_s: f64,
}

impl ChunkReader {
    pub fn new(init: InitInfo) -> Self {
        ChunkReader {
            init,
            pending: Vec::new(),
            mdat_left: 0,
            moof_media_s: None,
            chunk_bytes: 0,
            first_read: None,
            last_read_s: 0.0,
            media_s: 0.0,
        }
    }

    /// Feeds bytes that arrived at `at_s`; returns the chunks they completed.
    pub fn feed(&mut self, mut data: &[u8], at_s: f64) -> Result<Vec<ChunkDone>> {
        let mut done = Vec::new();
        while !data.is_empty() {
            let in_chunk = self.chunk_bytes;
            if self.first_read.is_none() || in_chunk == 0 {
                self.first_read = Some((at_s, 0));
            }
            if self.mdat_left > 0 {
                let n = (self.mdat_left.min(data.len() as u64)) as usize;
                self.mdat_left -= n as u64;
                self.take(n as u64, at_s);
                data = &data[n..];
                if self.mdat_left == 0 {
                    done.extend(self.end_mdat(at_s)?);
                }
                continue;
            }
            // Read a header, then the box (an mdat's header only).
            let need_header = header(&self.pending)?.is_none();
            if need_header {
                let want = if self.pending.len() < 8 {
                    8 - self.pending.len()
                } else {
                    16 - self.pending.len()
                };
                let n = want.min(data.len());
                self.pending.extend_from_slice(&data[..n]);
                self.take(n as u64, at_s);
                data = &data[n..];
                // A bad size is an error as soon as the header is in.
                if let Some((kind, _, size)) = header(&self.pending)? {
                    if &kind != b"mdat" && size > MAX_BOX {
                        bail!("box `{}` of {size} bytes is too large", fourcc(kind));
                    }
                }
                continue;
            }
            let Some((kind, hl, size)) = header(&self.pending)? else {
                continue;
            };
            if &kind == b"mdat" {
                if size == u64::MAX {
                    bail!("an `mdat` running to the end of the stream cannot be read as chunks");
                }
                if self.moof_media_s.is_none() {
                    bail!("an `mdat` without a `moof` before it");
                }
                self.mdat_left = size - hl as u64;
                self.pending.clear();
                if self.mdat_left == 0 {
                    done.extend(self.end_mdat(at_s)?);
                }
                continue;
            }
            if size > MAX_BOX {
                bail!("box `{}` of {size} bytes is too large", fourcc(kind));
            }
            let n = (size as usize - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            self.take(n as u64, at_s);
            data = &data[n..];
            if self.pending.len() as u64 == size {
                if &kind == b"moof" {
                    let d = moof_duration_s(&self.pending, &self.init)?;
                    self.moof_media_s = Some(d);
                }
                self.pending.clear();
            }
        }
        Ok(done)
    }

    /// Counts `n` bytes of the chunk under way arriving at `at_s`.
    fn take(&mut self, n: u64, at_s: f64) {
        if n == 0 {
            return;
        }
        if let Some((t, b)) = &mut self.first_read {
            if *t == at_s {
                *b += n;
            }
        }
        self.chunk_bytes += n;
        self.last_read_s = at_s;
    }

    fn end_mdat(&mut self, at_s: f64) -> Result<Option<ChunkDone>> {
        let Some(media_s) = self.moof_media_s.take() else {
            return Ok(None);
        };
        let (first_s, first_bytes) = self.first_read.unwrap_or((at_s, self.chunk_bytes));
        let c = ChunkDone {
            media_s,
            bytes: self.chunk_bytes,
            burst: Burst::from_reads(self.chunk_bytes, first_s, first_bytes, self.last_read_s),
            at_s,
        };
        self.media_s += media_s;
        self.chunk_bytes = 0;
        self.first_read = None;
        Ok(Some(c))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry};

    /// A minimal init segment: one track of `timescale`, trex default duration `default_d`.
    pub fn init(track_id: u32, timescale: u32, default_d: u32) -> Vec<u8> {
        fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(body);
            v
        }
        let mut tkhd = vec![0u8; 84];
        tkhd[12..16].copy_from_slice(&track_id.to_be_bytes());
        let mut mdhd = vec![0u8; 24];
        mdhd[12..16].copy_from_slice(&timescale.to_be_bytes());
        let mdia = boxed(b"mdia", &boxed(b"mdhd", &mdhd));
        let mut trak_body = boxed(b"tkhd", &tkhd);
        trak_body.extend(mdia);
        let mut trex = vec![0u8; 24];
        trex[4..8].copy_from_slice(&track_id.to_be_bytes());
        trex[8..12].copy_from_slice(&1u32.to_be_bytes());
        trex[12..16].copy_from_slice(&default_d.to_be_bytes());
        let mut moov = boxed(b"mvhd", &[0u8; 100]);
        moov.extend(boxed(b"trak", &trak_body));
        moov.extend(boxed(b"mvex", &boxed(b"trex", &trex)));
        let mut out = boxed(b"ftyp", b"iso6\0\0\0\0cmfc");
        out.extend(boxed(b"moov", &moov));
        out
    }

    /// A chunk: `prft`-like box, `moof` with `samples` of `dur` ticks (or default durations
    /// when `dur` is None), and an `mdat` of `payload` bytes.
    pub fn chunk(track_id: u32, samples: usize, dur: Option<u32>, payload: usize) -> Vec<u8> {
        let moof = Moof {
            mfhd: Mfhd { sequence_number: 1 },
            traf: vec![Traf {
                tfhd: Tfhd {
                    track_id,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: 0,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: (0..samples)
                        .map(|_| TrunEntry {
                            duration: dur,
                            size: Some((payload / samples.max(1)) as u32),
                            flags: None,
                            cts: None,
                        })
                        .collect::<Vec<_>>()
                        .into(),
                }],
                ..Default::default()
            }],
        };
        let mut out = Vec::new();
        // A 20-byte stand-in for the `prft` box (the reader counts it, never parses it).
        out.extend_from_slice(&20u32.to_be_bytes());
        out.extend_from_slice(b"prft");
        out.extend_from_slice(&[0u8; 12]);
        moof.encode(&mut out).unwrap();
        out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend(std::iter::repeat_n(7u8, payload));
        out
    }

    #[test]
    fn the_init_gives_the_timescale_and_default_duration() {
        let info = InitInfo::parse(&init(1, 90_000, 3000)).unwrap();
        assert_eq!(
            info.tracks,
            vec![TrackInfo {
                track_id: 1,
                timescale: 90_000,
                default_sample_duration: 3000
            }]
        );
        assert!(InitInfo::parse(b"\0\0\0\x08ftyp").is_err());
        assert!(InitInfo::parse(&init(1, 90_000, 0)[..30]).is_err());
        assert!(InitInfo::parse(&[0xff; 7]).is_err());
    }

    #[test]
    fn chunks_complete_as_their_mdat_ends_whatever_the_read_sizes() {
        let info = InitInfo::parse(&init(1, 12_800, 512)).unwrap();
        // 0.5 s chunks of 12 frames at 25 fps (512 ticks each), one with default durations.
        let mut seg = b"\0\0\0\x10stypmsdh\0\0\0\0".to_vec();
        seg.extend(chunk(1, 12, Some(512), 5000));
        seg.extend(chunk(1, 12, None, 3000));
        seg.extend(chunk(1, 13, Some(512), 4000));
        for step in [1usize, 7, 100, 4096, seg.len()] {
            let mut r = ChunkReader::new(info.clone());
            let mut got = Vec::new();
            for (i, piece) in seg.chunks(step).enumerate() {
                got.extend(r.feed(piece, i as f64).unwrap());
            }
            assert_eq!(got.len(), 3, "step {step}");
            assert!((got[0].media_s - 0.48).abs() < 1e-9);
            assert!((got[1].media_s - 0.48).abs() < 1e-9);
            assert!((got[2].media_s - 0.52).abs() < 1e-9);
            assert_eq!(got.iter().map(|c| c.bytes).sum::<u64>(), seg.len() as u64);
            assert!((r.media_s - 1.48).abs() < 1e-9);
            assert!(
                r.pending.is_empty() && r.mdat_left == 0,
                "ends between boxes"
            );
        }
    }

    #[test]
    fn a_burst_is_timed_from_the_first_read_to_the_last() {
        let info = InitInfo::parse(&init(1, 1000, 0)).unwrap();
        let c = chunk(1, 2, Some(250), 10_000);
        let mut r = ChunkReader::new(info);
        let (a, b) = c.split_at(2000);
        assert!(r.feed(a, 10.0).unwrap().is_empty());
        let done = r.feed(b, 10.1).unwrap();
        assert_eq!(done.len(), 1);
        // The bytes after the first read over the time between the reads.
        let burst = done[0].burst;
        assert_eq!(burst.bytes, (c.len() - 2000) as u64);
        assert!((burst.duration_s - 0.1).abs() < 1e-9);
        assert_eq!(done[0].at_s, 10.1);
    }

    #[test]
    fn malformed_segments_are_errors() {
        let info = InitInfo::parse(&init(1, 1000, 0)).unwrap();
        // An mdat with no moof before it.
        let mut r = ChunkReader::new(info.clone());
        assert!(r.feed(b"\0\0\0\x10mdat01234567", 0.0).is_err());
        // A box claiming a size below its header.
        let mut r = ChunkReader::new(info.clone());
        assert!(r.feed(b"\0\0\0\x03moof", 0.0).is_err());
        // A huge non-mdat box.
        let mut r = ChunkReader::new(info.clone());
        assert!(r.feed(b"\x7f\0\0\0moof", 0.0).is_err());
        // A moof naming another track (several tracks in the init).
        let mut two = InitInfo::parse(&init(1, 1000, 0)).unwrap();
        two.tracks.push(TrackInfo {
            track_id: 2,
            timescale: 1000,
            default_sample_duration: 0,
        });
        let mut r = ChunkReader::new(two);
        assert!(r.feed(&chunk(9, 1, Some(10), 10), 0.0).is_err());
        // A truncated trun.
        let mut c = chunk(1, 3, Some(10), 10);
        let bad: Vec<u8> = {
            // Shrink the stated sample count's room by cutting the moof's last bytes is
            // invalid framing; instead claim 1000 samples.
            let pos = c.windows(4).position(|w| w == b"trun").unwrap();
            c[pos + 8..pos + 12].copy_from_slice(&1000u32.to_be_bytes());
            c
        };
        let mut r = ChunkReader::new(info);
        assert!(r.feed(&bad, 0.0).is_err());
    }
}
