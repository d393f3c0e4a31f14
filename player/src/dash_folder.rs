//! A packaged DASH title on disk (`manifest.mpd` plus segment files) read as a [`Video`] with
//! the real size of every segment file (or byte range).

use std::path::Path;

use anyhow::{bail, Context, Result};
use mpd::{MediaSegment, Mpd, SegmentsAt};
use url::Url;

use crate::manifest::Title;
use crate::video::Video;

/// Reads `dir/manifest.mpd` and the sizes of the segment files it names.
pub fn load(dir: &Path) -> Result<Video> {
    let path = dir.join("manifest.mpd");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mpd = Mpd::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let abs = path
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve path", path.display()))?;
    let Ok(url) = Url::from_file_path(&abs) else {
        bail!("{}: not an absolute path", abs.display());
    };
    let mut title = Title::from_mpd(&mpd, &url, SegmentsAt::Vod)
        .with_context(|| format!("{}", path.display()))?;
    for (track, part, src) in title.pending_indexes() {
        let bytes = read_range(&src.index.url, src.index.range)?;
        title.load_index(track, part, &bytes)?;
    }
    let n = title.video.num_segments;
    let mut sizes = vec![Vec::with_capacity(title.rungs.len()); n];
    for rung in &title.rungs {
        for (i, seg) in rung.media.iter().take(n).enumerate() {
            sizes[i].push(segment_size(seg)?);
        }
    }
    let mut video = title.video;
    video.name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    video.sizes = Some(sizes);
    Ok(video)
}

/// The bytes of a local file (all of them without a range), at most 16 MiB.
fn read_range(url: &Url, range: Option<mpd::ByteRange>) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    const MAX: u64 = 16 << 20;
    let Ok(p) = url.to_file_path() else {
        bail!("{url}: the index is not a local file");
    };
    let mut f = std::fs::File::open(&p).with_context(|| format!("{}: cannot open", p.display()))?;
    let (first, len) = match range {
        Some(r) => (r.first, r.len().unwrap_or(MAX)),
        None => (0, MAX),
    };
    if len > MAX {
        bail!("{}: an index of {len} bytes is too large", p.display());
    }
    f.seek(SeekFrom::Start(first))?;
    let mut out = Vec::new();
    f.take(len).read_to_end(&mut out)?;
    Ok(out)
}

fn segment_size(seg: &MediaSegment) -> Result<u64> {
    if let Some(len) = seg.range.as_ref().and_then(|r| r.len()) {
        return Ok(len);
    }
    let Ok(p) = seg.url.to_file_path() else {
        bail!("{}: segment is not a local file", seg.url);
    };
    let meta =
        std::fs::metadata(&p).with_context(|| format!("{}: missing segment", p.display()))?;
    Ok(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_sizes() {
        let dir = std::env::temp_dir().join(format!("player-dash-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (rep, base) in [("lo", 100usize), ("hi", 1000)] {
            std::fs::create_dir_all(dir.join(rep)).unwrap();
            std::fs::write(dir.join(rep).join("init.mp4"), b"init").unwrap();
            for n in 1..=3 {
                std::fs::write(dir.join(rep).join(format!("{n}.m4s")), vec![0u8; base * n])
                    .unwrap();
            }
        }
        std::fs::write(
            dir.join("manifest.mpd"),
            r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
              minBufferTime="PT4S" mediaPresentationDuration="PT6S"><Period id="p0">
              <AdaptationSet mimeType="video/mp4" codecs="avc1.64001f">
              <SegmentTemplate timescale="1000" duration="2000" initialization="$RepresentationID$/init.mp4"
                media="$RepresentationID$/$Number$.m4s"/>
              <Representation id="hi" bandwidth="2000000"/><Representation id="lo" bandwidth="200000"/>
              </AdaptationSet></Period></MPD>"#,
        )
        .unwrap();
        let v = load(&dir).unwrap();
        assert_eq!(v.num_segments, 3);
        assert_eq!(v.segment_duration_s, 2.0);
        assert_eq!(v.size(2, 0), 300);
        assert_eq!(v.size(1, 1), 2000);
        std::fs::remove_file(dir.join("hi").join("2.m4s")).unwrap();
        let err = format!("{:#}", load(&dir).unwrap_err());
        assert!(err.contains("missing segment"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
