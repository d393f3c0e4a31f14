//! Re-timing an fMP4 media segment for a live loop: the segment of a VOD title is sent again
//! later on the live timeline, so its decode times (`tfdt` of every `traf`, and a leading
//! `sidx`'s earliest presentation time) move by a fixed number of ticks, and `mfhd` gets the
//! live sequence number. Only the head of the file (up to the `mdat`) is rewritten; the media
//! data is streamed unchanged after it.
//!
//! A version-0 `tfdt` whose new time no longer fits 32 bits is widened to version 1: the `tfdt`,
//! `traf` and `moof` sizes grow and every `trun` data offset that is relative to the `moof` (the
//! default-base-is-moof case, or the first `traf`) moves by the same amount.

use thiserror::Error;

/// Why a segment head could not be re-timed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RetimeError {
    #[error("truncated or malformed box structure at byte {0}")]
    Malformed(usize),
    #[error("no moof box before the media data")]
    NoMoof,
    #[error("new decode time out of range")]
    OutOfRange,
    #[error("segment head larger than {0} bytes")]
    TooLarge(usize),
}

/// Where the head of a segment ends: the offset of the first `mdat` once the head before it is
/// complete, or `None` if `bytes` does not reach it yet. Errors on malformed box headers.
pub fn head_len(bytes: &[u8]) -> Result<Option<usize>, RetimeError> {
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let (size, kind, _) = header(bytes, pos)?;
        if &kind == b"mdat" {
            return Ok(Some(pos));
        }
        let Some(size) = size else {
            return Err(RetimeError::Malformed(pos));
        };
        pos += size;
    }
    Ok(None)
}

/// Box header at `pos`: (total size, or None for "to end of file"; type; header length).
pub(crate) fn header(b: &[u8], pos: usize) -> Result<(Option<usize>, [u8; 4], usize), RetimeError> {
    let bad = RetimeError::Malformed(pos);
    let size32 = u32::from_be_bytes(
        b.get(pos..pos + 4)
            .ok_or(bad)?
            .try_into()
            .map_err(|_| RetimeError::Malformed(pos))?,
    );
    let kind: [u8; 4] = b
        .get(pos + 4..pos + 8)
        .ok_or(RetimeError::Malformed(pos))?
        .try_into()
        .map_err(|_| RetimeError::Malformed(pos))?;
    match size32 {
        0 => Ok((None, kind, 8)),
        1 => {
            let large = u64::from_be_bytes(
                b.get(pos + 8..pos + 16)
                    .ok_or(RetimeError::Malformed(pos))?
                    .try_into()
                    .map_err(|_| RetimeError::Malformed(pos))?,
            );
            if large < 16 {
                return Err(RetimeError::Malformed(pos));
            }
            Ok((
                Some(usize::try_from(large).map_err(|_| RetimeError::Malformed(pos))?),
                kind,
                16,
            ))
        }
        s if s < 8 => Err(RetimeError::Malformed(pos)),
        s => Ok((Some(s as usize), kind, 8)),
    }
}

/// Rewrites `head` (every byte of the segment before its `mdat`): decode times move by
/// `delta` ticks and `mfhd` gets `sequence`. Returns the new head, which may be longer.
pub fn retime(head: &[u8], delta: i128, sequence: u32) -> Result<Vec<u8>, RetimeError> {
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut pos = 0;
    let mut saw_moof = false;
    while pos < head.len() {
        let (size, kind, hlen) = header(head, pos)?;
        let size = size.ok_or(RetimeError::Malformed(pos))?;
        let end = pos
            .checked_add(size)
            .filter(|e| *e <= head.len())
            .ok_or(RetimeError::Malformed(pos))?;
        match &kind {
            b"moof" => {
                saw_moof = true;
                out.extend_from_slice(&moof(&head[pos..end], hlen, delta, sequence)?);
            }
            b"sidx" => {
                let mut sidx = head[pos..end].to_vec();
                retime_sidx(&mut sidx, hlen, delta, pos)?;
                out.extend_from_slice(&sidx);
            }
            _ => out.extend_from_slice(&head[pos..end]),
        }
        pos = end;
    }
    if !saw_moof {
        return Err(RetimeError::NoMoof);
    }
    Ok(out)
}

fn shift(t: u64, delta: i128) -> Result<u64, RetimeError> {
    u64::try_from(i128::from(t) + delta).map_err(|_| RetimeError::OutOfRange)
}

fn retime_sidx(b: &mut [u8], hlen: usize, delta: i128, at: usize) -> Result<(), RetimeError> {
    // FullBox: version(1) flags(3) reference_ID(4) timescale(4) then the times.
    let v = *b.get(hlen).ok_or(RetimeError::Malformed(at))?;
    let t = hlen + 12;
    if v == 0 {
        let old = u32::from_be_bytes(
            b.get(t..t + 4)
                .ok_or(RetimeError::Malformed(at))?
                .try_into()
                .map_err(|_| RetimeError::Malformed(at))?,
        );
        let new =
            u32::try_from(shift(u64::from(old), delta)?).map_err(|_| RetimeError::OutOfRange)?;
        b[t..t + 4].copy_from_slice(&new.to_be_bytes());
    } else {
        let old = u64::from_be_bytes(
            b.get(t..t + 8)
                .ok_or(RetimeError::Malformed(at))?
                .try_into()
                .map_err(|_| RetimeError::Malformed(at))?,
        );
        b[t..t + 8].copy_from_slice(&shift(old, delta)?.to_be_bytes());
    }
    Ok(())
}

fn put_size(buf: &mut [u8], hlen: usize, size: usize) -> Result<(), RetimeError> {
    if hlen == 16 {
        buf[8..16].copy_from_slice(&(size as u64).to_be_bytes());
    } else {
        let s = u32::try_from(size).map_err(|_| RetimeError::TooLarge(u32::MAX as usize))?;
        buf[0..4].copy_from_slice(&s.to_be_bytes());
    }
    Ok(())
}

/// One box inside a buffer: (offset, size, type, header length).
type BoxAt = (usize, usize, [u8; 4], usize);

/// Children of a container box body.
fn children(b: &[u8], from: usize) -> Result<Vec<BoxAt>, RetimeError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < b.len() {
        let (size, kind, hlen) = header(b, pos)?;
        let size = size.unwrap_or(b.len() - pos);
        if pos + size > b.len() || size < hlen {
            return Err(RetimeError::Malformed(pos));
        }
        out.push((pos, size, kind, hlen));
        pos += size;
    }
    Ok(out)
}

struct TrafOut {
    bytes: Vec<u8>,
    /// Offsets (within `bytes`) of trun data_offset fields that are relative to the moof.
    moof_relative_offsets: Vec<usize>,
}

fn moof(b: &[u8], hlen: usize, delta: i128, sequence: u32) -> Result<Vec<u8>, RetimeError> {
    let mut body: Vec<u8> = Vec::with_capacity(b.len() + 16);
    let mut fixups: Vec<usize> = Vec::new();
    let mut first_traf = true;
    for (pos, size, kind, ch) in children(b, hlen)? {
        let child = &b[pos..pos + size];
        match &kind {
            b"mfhd" => {
                let mut m = child.to_vec();
                let at = ch + 4;
                m.get_mut(at..at + 4)
                    .ok_or(RetimeError::Malformed(pos))?
                    .copy_from_slice(&sequence.to_be_bytes());
                body.extend_from_slice(&m);
            }
            b"traf" => {
                let t = traf(child, ch, delta, first_traf)?;
                first_traf = false;
                let base = hlen + body.len();
                fixups.extend(t.moof_relative_offsets.iter().map(|o| base + o));
                body.extend_from_slice(&t.bytes);
            }
            _ => body.extend_from_slice(child),
        }
    }
    let mut out = b[..hlen].to_vec();
    out.extend_from_slice(&body);
    let grown = out.len() as i64 - b.len() as i64;
    let total = out.len();
    put_size(&mut out, hlen, total)?;
    if grown != 0 {
        for at in fixups {
            let old = i32::from_be_bytes(
                out[at..at + 4]
                    .try_into()
                    .map_err(|_| RetimeError::Malformed(at))?,
            );
            let new = i32::try_from(i64::from(old) + grown).map_err(|_| RetimeError::OutOfRange)?;
            out[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
    }
    Ok(out)
}

fn traf(b: &[u8], hlen: usize, delta: i128, first: bool) -> Result<TrafOut, RetimeError> {
    let kids = children(b, hlen)?;
    // tfhd flags: 0x000001 base-data-offset-present, 0x020000 default-base-is-moof.
    let mut moof_relative = first;
    for (pos, _, kind, ch) in &kids {
        if kind == b"tfhd" {
            let flags = u32::from_be_bytes([0, b[pos + ch + 1], b[pos + ch + 2], b[pos + ch + 3]]);
            if flags & 0x1 != 0 {
                moof_relative = false;
            } else if flags & 0x020000 != 0 {
                moof_relative = true;
            }
        }
    }
    let mut body = Vec::with_capacity(b.len() + 4);
    let mut offsets = Vec::new();
    for (pos, size, kind, ch) in kids {
        let child = &b[pos..pos + size];
        match &kind {
            b"tfdt" => {
                let v = *child.get(ch).ok_or(RetimeError::Malformed(pos))?;
                let t = ch + 4;
                if v == 1 {
                    let old = u64::from_be_bytes(
                        child
                            .get(t..t + 8)
                            .ok_or(RetimeError::Malformed(pos))?
                            .try_into()
                            .map_err(|_| RetimeError::Malformed(pos))?,
                    );
                    let mut c = child.to_vec();
                    c[t..t + 8].copy_from_slice(&shift(old, delta)?.to_be_bytes());
                    body.extend_from_slice(&c);
                } else {
                    let old = u32::from_be_bytes(
                        child
                            .get(t..t + 4)
                            .ok_or(RetimeError::Malformed(pos))?
                            .try_into()
                            .map_err(|_| RetimeError::Malformed(pos))?,
                    );
                    let new = shift(u64::from(old), delta)?;
                    match u32::try_from(new) {
                        Ok(n32) => {
                            let mut c = child.to_vec();
                            c[t..t + 4].copy_from_slice(&n32.to_be_bytes());
                            body.extend_from_slice(&c);
                        }
                        Err(_) => {
                            // Widen to version 1: header(8) + version/flags(4) + time(8).
                            body.extend_from_slice(&20u32.to_be_bytes());
                            body.extend_from_slice(b"tfdt");
                            body.push(1);
                            body.extend_from_slice(&child[ch + 1..ch + 4]);
                            body.extend_from_slice(&new.to_be_bytes());
                        }
                    }
                }
            }
            b"trun" => {
                let flags = u32::from_be_bytes([0, child[ch + 1], child[ch + 2], child[ch + 3]]);
                if flags & 0x1 != 0 && moof_relative {
                    // version/flags(4) sample_count(4) then data_offset.
                    offsets.push(hlen + body.len() + ch + 8);
                    if child.len() < ch + 12 {
                        return Err(RetimeError::Malformed(pos));
                    }
                }
                body.extend_from_slice(child);
            }
            _ => body.extend_from_slice(child),
        }
    }
    let mut out = b[..hlen].to_vec();
    out.extend_from_slice(&body);
    let total = out.len();
    put_size(&mut out, hlen, total)?;
    Ok(TrafOut {
        bytes: out,
        moof_relative_offsets: offsets,
    })
}

/// Removes `moov/mvex/mehd` from an init segment: a live presentation has no known total
/// duration, and some demuxers take the `mehd` fragment duration as the end of the stream.
pub fn strip_mehd(init: &[u8]) -> Result<Vec<u8>, RetimeError> {
    let mut out = Vec::with_capacity(init.len());
    for (pos, size, kind, hlen) in children(init, 0)? {
        let b = &init[pos..pos + size];
        if &kind != b"moov" {
            out.extend_from_slice(b);
            continue;
        }
        let mut moov = b[..hlen].to_vec();
        for (cpos, csize, ckind, chlen) in children(b, hlen)? {
            let c = &b[cpos..cpos + csize];
            if &ckind != b"mvex" {
                moov.extend_from_slice(c);
                continue;
            }
            let mut mvex = c[..chlen].to_vec();
            for (gpos, gsize, gkind, _) in children(c, chlen)? {
                if &gkind != b"mehd" {
                    mvex.extend_from_slice(&c[gpos..gpos + gsize]);
                }
            }
            let total = mvex.len();
            put_size(&mut mvex, chlen, total)?;
            moov.extend_from_slice(&mvex);
        }
        let total = moov.len();
        put_size(&mut moov, hlen, total)?;
        out.extend_from_slice(&moov);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    /// styp + moof(mfhd, traf(tfhd, tfdt, trun)) + mdat, with a moof-relative data offset.
    fn segment(tfdt_version: u8, time: u64) -> (Vec<u8>, usize) {
        let styp = bx(b"styp", b"msdh\0\0\0\0msdhmsix");
        let mfhd = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 7]);
        let tfhd = bx(b"tfhd", &[0, 0x02, 0, 0, 0, 0, 0, 1]);
        let mut tb = vec![tfdt_version, 0, 0, 0];
        if tfdt_version == 1 {
            tb.extend_from_slice(&time.to_be_bytes());
        } else {
            tb.extend_from_slice(&(time as u32).to_be_bytes());
        }
        let tfdt = bx(b"tfdt", &tb);
        // trun: flags data-offset-present; 1 sample; data_offset patched below.
        let trun_body = vec![0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        let trun = bx(b"trun", &trun_body);
        let traf = bx(b"traf", &[tfhd, tfdt, trun].concat());
        let mut moof = bx(b"moof", &[mfhd, traf].concat());
        let data_offset = (moof.len() + 8) as u32;
        let at = moof.len() - 4;
        moof[at..].copy_from_slice(&data_offset.to_be_bytes());
        let mdat = bx(b"mdat", b"ABCD");
        let head_len = styp.len() + moof.len();
        ([styp, moof, mdat].concat(), head_len)
    }

    /// (tfdt version, time, mfhd sequence, payload the trun data offset points at).
    fn inspect(seg: &[u8]) -> (u8, u64, u32, Vec<u8>) {
        let top = children(seg, 0).unwrap();
        let (mpos, msize, _, mh) = *top.iter().find(|c| &c.2 == b"moof").unwrap();
        let moof = &seg[mpos..mpos + msize];
        let kids = children(moof, mh).unwrap();
        let (fpos, _, _, fh) = *kids.iter().find(|c| &c.2 == b"mfhd").unwrap();
        let seq = u32::from_be_bytes(moof[fpos + fh + 4..fpos + fh + 8].try_into().unwrap());
        let (tpos, tsize, _, th) = *kids.iter().find(|c| &c.2 == b"traf").unwrap();
        let traf = &moof[tpos..tpos + tsize];
        let tk = children(traf, th).unwrap();
        let (dpos, _, _, dh) = *tk.iter().find(|c| &c.2 == b"tfdt").unwrap();
        let v = traf[dpos + dh];
        let t = if v == 1 {
            u64::from_be_bytes(traf[dpos + dh + 4..dpos + dh + 12].try_into().unwrap())
        } else {
            u64::from(u32::from_be_bytes(
                traf[dpos + dh + 4..dpos + dh + 8].try_into().unwrap(),
            ))
        };
        let (rpos, _, _, rh) = *tk.iter().find(|c| &c.2 == b"trun").unwrap();
        let off = i32::from_be_bytes(traf[rpos + rh + 8..rpos + rh + 12].try_into().unwrap());
        let data = seg[mpos + off as usize..mpos + off as usize + 4].to_vec();
        (v, t, seq, data)
    }

    #[test]
    fn shifts_v1_tfdt_in_place() {
        let (seg, head) = segment(1, 90_000);
        assert_eq!(head_len(&seg).unwrap(), Some(head));
        let new_head = retime(&seg[..head], 1_000_000_000_000, 42).unwrap();
        assert_eq!(new_head.len(), head);
        let out = [&new_head[..], &seg[head..]].concat();
        assert_eq!(inspect(&out), (1, 1_000_000_090_000, 42, b"ABCD".to_vec()));
    }

    #[test]
    fn shifts_v0_and_widens_when_needed() {
        let (seg, head) = segment(0, 1000);
        let small = retime(&seg[..head], -500, 1).unwrap();
        assert_eq!(small.len(), head);
        assert_eq!(
            inspect(&[&small[..], &seg[head..]].concat()),
            (0, 500, 1, b"ABCD".to_vec())
        );
        let big = retime(&seg[..head], 1 << 40, 2).unwrap();
        assert_eq!(big.len(), head + 4, "tfdt widened by 4 bytes");
        let out = [&big[..], &seg[head..]].concat();
        assert_eq!(
            inspect(&out),
            (1, 1000 + (1 << 40), 2, b"ABCD".to_vec()),
            "data offset follows the moof growth"
        );
    }

    #[test]
    fn strips_mehd() {
        let mvhd = bx(b"mvhd", &[0; 20]);
        let mehd = bx(b"mehd", &[0, 0, 0, 0, 0, 0, 1, 0]);
        let trex = bx(b"trex", &[0; 24]);
        let mvex = bx(b"mvex", &[mehd, trex.clone()].concat());
        let moov = bx(b"moov", &[mvhd.clone(), mvex].concat());
        let ftyp = bx(b"ftyp", b"iso6\0\0\0\0");
        let init = [ftyp.clone(), moov].concat();
        let out = strip_mehd(&init).unwrap();
        let expected = [ftyp, bx(b"moov", &[mvhd, bx(b"mvex", &trex)].concat())].concat();
        assert_eq!(out, expected);
        assert!(strip_mehd(&init[..init.len() - 1]).is_err());
    }

    #[test]
    fn refuses_bad_input() {
        let (seg, head) = segment(1, 10);
        assert_eq!(retime(&seg[..head], -11, 1), Err(RetimeError::OutOfRange));
        assert!(retime(&seg[..head - 3], 0, 1).is_err());
        assert_eq!(
            retime(&bx(b"styp", b"abcd"), 0, 1),
            Err(RetimeError::NoMoof)
        );
        assert!(head_len(&[0, 0, 0, 3, b'a', b'b', b'c', b'd']).is_err());
        assert_eq!(head_len(&seg[..10]).unwrap(), None);
    }
}
