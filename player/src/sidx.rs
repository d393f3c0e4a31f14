//! The segment index of an on-demand (SegmentBase) Representation: the `sidx` box read from the
//! index range with `mp4-atom`, turned into subsegments addressed by byte range in the media
//! file. Pure: the caller fetches the bytes.

use anyhow::{anyhow, bail, Context, Result};
use mp4_atom::{Atom, Decode, DecodeMaybe, Header, Sidx};
use mpd::{ByteRange, MediaSegment, SegmentRef};
use url::Url;

/// Most subsegments one index may list (a `sidx` holds at most 65 535 references).
const MAX_SUBSEGMENTS: usize = u16::MAX as usize;

/// Where the index came from and what it indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSource {
    /// The index as the MPD gives it (`@indexRange` of the media file, or RepresentationIndex).
    pub index: SegmentRef,
    /// The media file the subsegments are byte ranges of.
    pub media_url: Url,
    /// Start of the Period on the presentation timeline, seconds.
    pub period_start: f64,
    /// `@presentationTimeOffset` in the index's timescale units (0 when absent).
    pub presentation_time_offset: u64,
}

/// The subsegments listed by the first `sidx` box of `bytes` (the index range's content; boxes
/// before it, such as a `styp`, are skipped). Offsets count from the first byte after the
/// `sidx` when the index is inside the media file, from the file's start otherwise.
pub fn subsegments(bytes: &[u8], src: &IndexSource) -> Result<Vec<MediaSegment>> {
    let (sidx, after) = find_sidx(bytes)?;
    if sidx.timescale == 0 {
        bail!("the sidx has timescale 0");
    }
    if sidx.references.is_empty() {
        bail!("the sidx lists no subsegments");
    }
    if sidx.references.len() > MAX_SUBSEGMENTS {
        bail!("the sidx lists more than {MAX_SUBSEGMENTS} subsegments");
    }
    let anchor = if src.index.url == src.media_url {
        let first = src.index.range.map_or(0, |r| r.first);
        first
            .checked_add(after as u64)
            .ok_or_else(|| anyhow!("index offset overflows"))?
    } else {
        0
    };
    let mut offset = anchor
        .checked_add(sidx.first_offset)
        .ok_or_else(|| anyhow!("sidx first_offset overflows"))?;
    let mut time = sidx.earliest_presentation_time;
    let ts = f64::from(sidx.timescale);
    let pto = src.presentation_time_offset;
    let mut out = Vec::with_capacity(sidx.references.len());
    for (i, r) in sidx.references.iter().enumerate() {
        if r.reference_type {
            bail!("the sidx refers to another sidx (a hierarchical index), which is not supported");
        }
        if r.referenced_size == 0 {
            bail!("subsegment {i} of the sidx has size 0");
        }
        let last = offset
            .checked_add(u64::from(r.referenced_size) - 1)
            .ok_or_else(|| anyhow!("subsegment offsets overflow"))?;
        out.push(MediaSegment {
            url: src.media_url.clone(),
            range: Some(ByteRange::new(offset, last)),
            number: i as u64 + 1,
            time,
            start: src.period_start + (time as f64 - pto as f64) / ts,
            duration: f64::from(r.subsegment_duration) / ts,
        });
        offset = last
            .checked_add(1)
            .ok_or_else(|| anyhow!("subsegment offsets overflow"))?;
        time = time
            .checked_add(u64::from(r.subsegment_duration))
            .ok_or_else(|| anyhow!("subsegment times overflow"))?;
    }
    Ok(out)
}

/// The first `sidx` of `bytes` and the offset just past it.
fn find_sidx(bytes: &[u8]) -> Result<(Sidx, usize)> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let mut peek = rest;
        let header = Header::decode_maybe(&mut peek)
            .context("bad box header in the index range")?
            .ok_or_else(|| anyhow!("truncated box header at byte {pos} of the index range"))?;
        let header_len = rest.len() - peek.len();
        let body = header.size.unwrap_or(peek.len());
        if body > peek.len() {
            bail!(
                "the `{}` box at byte {pos} of the index range is cut off ({} of {body} bytes): is indexRange too short?",
                header.kind,
                peek.len()
            );
        }
        let total = header_len + body;
        if header.kind == Sidx::KIND {
            let mut b = &rest[..total];
            let sidx = Sidx::decode(&mut b).context("bad sidx box")?;
            return Ok((sidx, pos + total));
        }
        pos += total;
    }
    bail!("no sidx box in the index range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Encode, SegmentReference};

    fn reference(size: u32, duration: u32) -> SegmentReference {
        SegmentReference {
            reference_type: false,
            referenced_size: size,
            subsegment_duration: duration,
            starts_with_sap: true,
            sap_type: 1,
            sap_delta_time: 0,
        }
    }

    fn sidx_bytes(refs: Vec<SegmentReference>, first_offset: u64) -> Vec<u8> {
        let sidx = Sidx {
            reference_id: 1,
            timescale: 1000,
            earliest_presentation_time: 500,
            first_offset,
            references: refs,
        };
        let mut buf = Vec::new();
        sidx.encode(&mut buf).unwrap();
        buf
    }

    fn source(index: &str, range: Option<ByteRange>) -> IndexSource {
        IndexSource {
            index: SegmentRef {
                url: index.parse().unwrap(),
                range,
            },
            media_url: "http://x.test/v.mp4".parse().unwrap(),
            period_start: 10.0,
            presentation_time_offset: 500,
        }
    }

    #[test]
    fn subsegments_are_byte_ranges_after_the_sidx() {
        let bytes = sidx_bytes(vec![reference(1000, 2000), reference(500, 1500)], 0);
        let len = bytes.len() as u64;
        let src = source(
            "http://x.test/v.mp4",
            Some(ByteRange::new(800, 800 + len - 1)),
        );
        let segs = subsegments(&bytes, &src).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(
            segs[0].range,
            Some(ByteRange::new(800 + len, 800 + len + 999))
        );
        assert_eq!(
            segs[1].range,
            Some(ByteRange::new(800 + len + 1000, 800 + len + 1499))
        );
        assert_eq!((segs[0].start, segs[0].duration), (10.0, 2.0));
        assert_eq!((segs[1].start, segs[1].duration), (12.0, 1.5));
        assert_eq!((segs[1].time, segs[1].number), (2500, 2));
        assert_eq!(segs[0].url.as_str(), "http://x.test/v.mp4");
    }

    #[test]
    fn boxes_before_the_sidx_are_skipped_and_first_offset_counts() {
        let mut bytes = vec![0, 0, 0, 12, b's', b't', b'y', b'p', 1, 2, 3, 4];
        let sidx = sidx_bytes(vec![reference(100, 1000)], 20);
        bytes.extend_from_slice(&sidx);
        let src = source("http://x.test/v.mp4", Some(ByteRange::new(0, 99_999)));
        let segs = subsegments(&bytes, &src).unwrap();
        let first = 12 + sidx.len() as u64 + 20;
        assert_eq!(segs[0].range, Some(ByteRange::new(first, first + 99)));
        // An index in a file of its own: offsets count from the media file's start.
        let src = source("http://x.test/v.sidx", None);
        let segs = subsegments(&bytes, &src).unwrap();
        assert_eq!(segs[0].range, Some(ByteRange::new(20, 119)));
    }

    #[test]
    fn bad_indexes_are_errors_not_panics() {
        let src = source("http://x.test/v.mp4", None);
        let whole = sidx_bytes(vec![reference(100, 1000)], 0);
        for (bytes, want) in [
            (Vec::new(), "no sidx box"),
            (vec![0, 0, 0], "truncated box header"),
            (whole[..whole.len() - 4].to_vec(), "cut off"),
            (vec![0, 0, 0, 8, b'f', b'r', b'e', b'e'], "no sidx box"),
            (sidx_bytes(vec![], 0), "no subsegments"),
            (sidx_bytes(vec![reference(0, 1000)], 0), "size 0"),
            (
                sidx_bytes(
                    vec![SegmentReference {
                        reference_type: true,
                        ..reference(10, 10)
                    }],
                    0,
                ),
                "hierarchical",
            ),
            (vec![0, 0, 0, 4, b's', b'i', b'd', b'x'], "bad box header"),
            (
                sidx_bytes(vec![reference(100, 1000)], u64::MAX - 10),
                "overflow",
            ),
        ] {
            let err = format!("{:#}", subsegments(&bytes, &src).unwrap_err());
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
