//! The video as the ABR sees it: a bitrate ladder, a segment duration and (when known) the size
//! of every segment at every rung. Loaded from a Sabre movie JSON or a Pensieve `video_size_*`
//! folder (a packaged DASH folder is read elsewhere, from its MPD).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A video with `num_segments` segments at `bitrates_bps.len()` rungs (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub name: String,
    /// Nominal rates of the rungs, bits per second, ascending.
    pub bitrates_bps: Vec<f64>,
    pub segment_duration_s: f64,
    pub num_segments: usize,
    /// `sizes[segment][rung]` in bytes, when known (simulation, packaged folders).
    pub sizes: Option<Vec<Vec<u64>>>,
}

impl Video {
    /// A video whose segments are exactly `bitrate x duration` (live streams, tests).
    pub fn nominal(
        name: &str,
        bitrates_bps: Vec<f64>,
        segment_duration_s: f64,
        num_segments: usize,
    ) -> Result<Self> {
        let v = Video {
            name: name.to_string(),
            bitrates_bps,
            segment_duration_s,
            num_segments,
            sizes: None,
        };
        v.validate()?;
        Ok(v)
    }

    fn validate(&self) -> Result<()> {
        if self.bitrates_bps.is_empty() {
            bail!("{}: no representations", self.name);
        }
        if self
            .bitrates_bps
            .iter()
            .any(|b| !(*b > 0.0 && b.is_finite()))
        {
            bail!("{}: bitrates must be positive", self.name);
        }
        if self.bitrates_bps.windows(2).any(|w| w[1] < w[0]) {
            bail!("{}: bitrates must be in ascending order", self.name);
        }
        if !(self.segment_duration_s > 0.0 && self.segment_duration_s.is_finite()) {
            bail!("{}: segment duration must be positive", self.name);
        }
        if self.num_segments == 0 {
            bail!("{}: no segments", self.name);
        }
        if let Some(sizes) = &self.sizes {
            if sizes.len() != self.num_segments
                || sizes.iter().any(|s| s.len() != self.bitrates_bps.len())
            {
                bail!("{}: size table does not match the ladder", self.name);
            }
        }
        Ok(())
    }

    pub fn rungs(&self) -> usize {
        self.bitrates_bps.len()
    }

    pub fn top(&self) -> usize {
        self.bitrates_bps.len() - 1
    }

    /// Size in bytes of `segment` at `rung`: the real size when known, else nominal.
    pub fn size(&self, segment: usize, rung: usize) -> u64 {
        if let Some(row) = self.sizes.as_ref().and_then(|s| s.get(segment)) {
            if let Some(&b) = row.get(rung) {
                return b;
            }
        }
        (self.bitrates_bps[rung] * self.segment_duration_s / 8.0) as u64
    }

    /// Highest rung whose nominal rate is at most `bps` (the lowest if none is).
    pub fn rung_for(&self, bps: f64) -> usize {
        self.bitrates_bps
            .iter()
            .rposition(|&b| b <= bps)
            .unwrap_or(0)
    }

    /// Keeps only the first `n` segments.
    pub fn truncate(&mut self, n: usize) {
        let n = n.max(1).min(self.num_segments);
        self.num_segments = n;
        if let Some(s) = &mut self.sizes {
            s.truncate(n);
        }
    }

    /// Loads a Sabre movie JSON file (named after the file).
    pub fn load_sabre(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read video", path.display()))?;
        Self::parse_sabre(&display_name(path), &text).with_context(|| format!("{}", path.display()))
    }

    /// Sabre movie: `{"segment_duration_ms", "bitrates_kbps": [...], "segment_sizes_bits": [[...]]}`.
    pub fn parse_sabre(name: &str, text: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Movie {
            segment_duration_ms: f64,
            bitrates_kbps: Vec<f64>,
            segment_sizes_bits: Vec<Vec<f64>>,
        }
        let m: Movie = serde_json::from_str(text).context("not a Sabre movie file")?;
        let v = Video {
            name: name.to_string(),
            bitrates_bps: m.bitrates_kbps.iter().map(|k| k * 1000.0).collect(),
            segment_duration_s: m.segment_duration_ms / 1000.0,
            num_segments: m.segment_sizes_bits.len(),
            sizes: Some(
                m.segment_sizes_bits
                    .iter()
                    .map(|row| row.iter().map(|b| (b / 8.0).round() as u64).collect())
                    .collect(),
            ),
        };
        v.validate()?;
        Ok(v)
    }

    /// Pensieve folder: `video_size_0` (lowest) .. `video_size_N`, one chunk size in bytes per
    /// line, 4-second chunks. Rung rates are the mean rates rounded to 50 kb/s (this gives
    /// Pensieve's 300 .. 4300 kb/s ladder). A last chunk far shorter than the rest in every rung
    /// is a partial chunk of unknown duration and is dropped, as Pensieve's simulator plays 48
    /// of its 49 chunks.
    pub fn load_pensieve(dir: &Path) -> Result<Self> {
        Self::load_pensieve_with(dir, 4.0)
    }

    pub fn load_pensieve_with(dir: &Path, segment_duration_s: f64) -> Result<Self> {
        let mut columns: Vec<Vec<u64>> = Vec::new();
        for i in 0.. {
            let p = dir.join(format!("video_size_{i}"));
            if !p.is_file() {
                break;
            }
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            let mut col = Vec::new();
            for (ln, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                col.push(line.parse::<u64>().with_context(|| {
                    format!("{}: line {}: bad size {line:?}", p.display(), ln + 1)
                })?);
            }
            columns.push(col);
        }
        if columns.is_empty() {
            bail!(
                "{}: not a video (no manifest.mpd, no video_size_0)",
                dir.display()
            );
        }
        let n = columns.iter().map(Vec::len).min().unwrap_or(0);
        if n == 0 {
            bail!("{}: empty video_size file", dir.display());
        }
        let mut n_use = n;
        if n > 2
            && columns.iter().all(|c| {
                let mean = c[..n - 1].iter().sum::<u64>() as f64 / (n - 1) as f64;
                (c[n - 1] as f64) < 0.75 * mean
            })
        {
            n_use = n - 1;
        }
        let bitrates_bps: Vec<f64> = columns
            .iter()
            .map(|c| {
                let mean_bytes = c[..n_use].iter().sum::<u64>() as f64 / n_use as f64;
                let bps = mean_bytes * 8.0 / segment_duration_s;
                ((bps / 50_000.0).round() * 50_000.0).max(50_000.0)
            })
            .collect();
        let sizes = (0..n_use)
            .map(|s| columns.iter().map(|c| c[s]).collect())
            .collect();
        let v = Video {
            name: display_name(dir),
            bitrates_bps,
            segment_duration_s,
            num_segments: n_use,
            sizes: Some(sizes),
        };
        v.validate()?;
        Ok(v)
    }
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sabre_movie() {
        let v = Video::parse_sabre(
            "m",
            r#"{"segment_duration_ms": 3000, "bitrates_kbps": [100, 200],
                "segment_sizes_bits": [[300000, 600000], [240000, 480000]]}"#,
        )
        .unwrap();
        assert_eq!(v.num_segments, 2);
        assert_eq!(v.size(1, 1), 60_000);
        assert_eq!(v.rung_for(150_000.0), 0);
        assert_eq!(v.rung_for(10.0), 0);
        assert_eq!(v.rung_for(1e9), 1);
        let bad = Video::parse_sabre(
            "m",
            r#"{"segment_duration_ms": 3000, "bitrates_kbps": [200, 100],
                "segment_sizes_bits": [[1, 2]]}"#,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn nominal_sizes() {
        let v = Video::nominal("n", vec![1e6, 2e6], 2.0, 3).unwrap();
        assert_eq!(v.size(0, 1), 500_000);
    }
}
