//! Network traces: piecewise-constant link rates loaded from Sabre JSON, Pensieve
//! `time_s bandwidth_Mbps` text or Mahimahi packet-delivery files, and the arithmetic of moving
//! bytes through such a link (the trace loops when it ends, as in Sabre and Pensieve).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A link whose rate changes over time; it repeats after `period_s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub name: String,
    /// (duration in seconds, rate in bits per second), in order.
    pub steps: Vec<(f64, f64)>,
}

/// Mahimahi traces are binned to this many seconds per step.
const MAHIMAHI_BIN_S: f64 = 0.1;
const MAHIMAHI_PACKET_BYTES: f64 = 1500.0;

impl Trace {
    /// A trace from explicit steps; fails if it carries no data at all.
    pub fn new(name: impl Into<String>, steps: Vec<(f64, f64)>) -> Result<Self> {
        let name = name.into();
        let steps: Vec<(f64, f64)> = steps
            .into_iter()
            .filter(|&(d, _)| d > 0.0)
            .map(|(d, r)| (d, r.max(0.0)))
            .collect();
        if steps.iter().any(|&(d, r)| !d.is_finite() || !r.is_finite()) {
            bail!("{name}: non-finite duration or rate");
        }
        if !steps.iter().any(|&(_, r)| r > 0.0) {
            bail!("{name}: the trace never carries any data");
        }
        Ok(Trace { name, steps })
    }

    /// A constant link (for tests and examples).
    pub fn constant(name: &str, bps: f64, duration_s: f64) -> Result<Self> {
        Trace::new(name, vec![(duration_s, bps)])
    }

    pub fn period_s(&self) -> f64 {
        self.steps.iter().map(|s| s.0).sum()
    }

    /// Mean rate over one period, bits per second.
    pub fn mean_bps(&self) -> f64 {
        let bits: f64 = self.steps.iter().map(|&(d, r)| d * r).sum();
        bits / self.period_s()
    }

    /// Reads one trace file, guessing the format from its content.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read trace", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::parse(&name, &text).with_context(|| format!("{}", path.display()))
    }

    /// Parses trace text: Sabre JSON (`[{"duration_ms", "bandwidth_kbps", ...}]`), Pensieve
    /// (`time_s bandwidth_Mbps` per line) or Mahimahi (one millisecond timestamp per line, one
    /// 1500-byte packet each).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            return Self::parse_sabre(name, text);
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first.map(|l| l.split_whitespace().count()) {
            Some(2) => Self::parse_pensieve(name, text),
            Some(1) => Self::parse_mahimahi(name, text),
            Some(n) => bail!("unrecognised trace format: first line has {n} fields"),
            None => bail!("empty trace"),
        }
    }

    fn parse_sabre(name: &str, text: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Period {
            duration_ms: f64,
            bandwidth_kbps: f64,
        }
        let periods: Vec<Period> =
            serde_json::from_str(text).context("not a Sabre network trace")?;
        Trace::new(
            name,
            periods
                .iter()
                .map(|p| (p.duration_ms / 1000.0, p.bandwidth_kbps * 1000.0))
                .collect(),
        )
    }

    fn parse_pensieve(name: &str, text: &str) -> Result<Self> {
        let mut points: Vec<(f64, f64)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            let (Some(t), Some(bw), None) = (it.next(), it.next(), it.next()) else {
                bail!("line {}: expected `time_s bandwidth_Mbps`", i + 1);
            };
            let t: f64 = t
                .parse()
                .with_context(|| format!("line {}: bad time {t:?}", i + 1))?;
            let bw: f64 = bw
                .parse()
                .with_context(|| format!("line {}: bad bandwidth {bw:?}", i + 1))?;
            if let Some(&(prev, _)) = points.last() {
                if t < prev {
                    bail!("line {}: time goes backwards ({t} < {prev})", i + 1);
                }
            }
            points.push((t, bw * 1e6));
        }
        if points.len() < 2 {
            bail!("a Pensieve trace needs at least two samples");
        }
        // As in Pensieve's simulator, sample i's rate holds from time[i-1] to time[i].
        let steps = points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0, w[1].1))
            .collect();
        Trace::new(name, steps)
    }

    fn parse_mahimahi(name: &str, text: &str) -> Result<Self> {
        let mut stamps: Vec<u64> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let ms: u64 = line
                .parse()
                .with_context(|| format!("line {}: bad Mahimahi timestamp {line:?}", i + 1))?;
            if ms > 1_000_000_000 {
                bail!("line {}: timestamp {ms} ms is too large", i + 1);
            }
            if let Some(&last) = stamps.last() {
                if ms < last {
                    bail!("line {}: timestamp goes backwards ({ms} < {last})", i + 1);
                }
            }
            stamps.push(ms);
        }
        let Some(&last) = stamps.last() else {
            bail!("empty Mahimahi trace");
        };
        // Mahimahi repeats the file with a period equal to its last timestamp.
        let period_s = (last as f64 / 1000.0).max(MAHIMAHI_BIN_S);
        let n = (period_s / MAHIMAHI_BIN_S).ceil().max(1.0) as usize;
        let mut bins = vec![0u32; n];
        for ms in stamps {
            let bin = ((ms as f64 / 1000.0 / MAHIMAHI_BIN_S) as usize).min(n - 1);
            bins[bin] += 1;
        }
        let steps = bins
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let d = if i + 1 == n {
                    (period_s - i as f64 * MAHIMAHI_BIN_S).max(1e-3)
                } else {
                    MAHIMAHI_BIN_S
                };
                (d, p as f64 * MAHIMAHI_PACKET_BYTES * 8.0 / d)
            })
            .collect();
        Trace::new(name, steps)
    }
}

/// The trace files named by a path: the file itself, or every regular file in the directory
/// (sorted by name, skipping dot files and `SOURCE.txt`/`README*`).
pub fn trace_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path)
        .with_context(|| format!("{}: cannot read trace directory", path.display()))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !p.is_file()
            || name.starts_with('.')
            || name == "SOURCE.txt"
            || name.starts_with("README")
        {
            continue;
        }
        files.push(p);
    }
    files.sort();
    if files.is_empty() {
        bail!("{}: no trace files", path.display());
    }
    Ok(files)
}

/// Loads every trace under `path` (see [`trace_files`]).
pub fn load_traces(path: &Path) -> Result<Vec<Trace>> {
    trace_files(path)?.iter().map(|p| Trace::load(p)).collect()
}

/// A position on a looping trace; moves forward only. Moving bytes through the link
/// ([`Link::transfer`]) advances it.
#[derive(Debug, Clone)]
pub struct Link<T: std::ops::Deref<Target = Trace>> {
    trace: T,
    /// Fraction of the trace rate that carries payload (Pensieve uses 0.95).
    efficiency: f64,
    idx: usize,
    step_start_s: f64,
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transfer {
    Done {
        end_s: f64,
    },
    /// The watcher stopped it at `at_s` after `bytes_done` bytes.
    Stopped {
        at_s: f64,
        bytes_done: u64,
    },
}

impl<T: std::ops::Deref<Target = Trace>> Link<T> {
    pub fn new(trace: T, efficiency: f64) -> Self {
        Link {
            trace,
            efficiency: efficiency.clamp(1e-6, 1.0),
            idx: 0,
            step_start_s: 0.0,
        }
    }

    fn step_end(&self) -> f64 {
        self.step_start_s + self.trace.steps[self.idx].0
    }

    fn seek(&mut self, t: f64) {
        while self.step_end() <= t {
            self.step_start_s = self.step_end();
            self.idx = (self.idx + 1) % self.trace.steps.len();
        }
    }

    /// Rate at time `t` in bits per second (payload share applied).
    pub fn rate_at(&mut self, t: f64) -> f64 {
        self.seek(t);
        self.trace.steps[self.idx].1 * self.efficiency
    }

    /// Moves `bytes` starting at `start_s`. Every `check_every_s` of transfer time, `watch`
    /// gets (bytes done, seconds elapsed) and may stop the transfer by returning `false`.
    pub fn transfer(
        &mut self,
        start_s: f64,
        bytes: u64,
        check_every_s: f64,
        watch: &mut dyn FnMut(u64, f64) -> bool,
    ) -> Transfer {
        let total_bits = bytes as f64 * 8.0;
        let mut done_bits = 0.0;
        let mut t = start_s;
        let check = if check_every_s > 0.0 {
            check_every_s
        } else {
            f64::INFINITY
        };
        let mut next_check = start_s + check;
        loop {
            self.seek(t);
            let rate = self.trace.steps[self.idx].1 * self.efficiency;
            let horizon = self.step_end().min(next_check);
            let can = rate * (horizon - t);
            if done_bits + can >= total_bits {
                let end_s = t + (total_bits - done_bits) / rate;
                return Transfer::Done { end_s };
            }
            done_bits += can;
            t = horizon;
            if t >= next_check {
                next_check += check;
                if !watch((done_bits / 8.0) as u64, t - start_s) {
                    return Transfer::Stopped {
                        at_s: t,
                        bytes_done: (done_bits / 8.0) as u64,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pensieve_format() {
        let t = Trace::parse("p", "0.0\t1.0\n1.0\t2.0\n3.0\t4.0\n").unwrap();
        assert_eq!(t.steps, vec![(1.0, 2e6), (2.0, 4e6)]);
        let err = Trace::parse("p", "0 1\n1 x\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn sabre_format() {
        let t = Trace::parse(
            "s",
            r#"[{"duration_ms": 1000, "bandwidth_kbps": 500, "latency_ms": 20},
                {"duration_ms": 500, "bandwidth_kbps": 1000, "latency_ms": 20}]"#,
        )
        .unwrap();
        assert_eq!(t.steps, vec![(1.0, 500e3), (0.5, 1e6)]);
        assert!(Trace::parse("s", "[{\"duration_ms\": 1}]").is_err());
    }

    #[test]
    fn mahimahi_format() {
        // 10 packets in the first 100 ms, one at 200 ms, the end of the 0.2 s period.
        let mut s = String::new();
        for _ in 0..10 {
            s.push_str("5\n");
        }
        s.push_str("200\n");
        let t = Trace::parse("m", &s).unwrap();
        assert_eq!(t.steps.len(), 2, "{:?}", t.steps);
        assert!((t.steps[0].1 - 10.0 * 1500.0 * 8.0 / 0.1).abs() < 1e-6);
        assert!((t.steps[1].1 - 1500.0 * 8.0 / 0.1).abs() < 1e-6);
        assert!((t.period_s() - 0.2).abs() < 1e-9);
        assert!(Trace::parse("m", "5\n3\n").is_err());
    }

    #[test]
    fn all_zero_is_rejected() {
        assert!(Trace::parse("p", "0 0\n1 0\n").is_err());
    }

    #[test]
    fn transfer_across_steps_and_loop() {
        let t = Trace::new("t", vec![(1.0, 8e6), (1.0, 0.0)]).unwrap();
        let mut link = Link::new(&t, 1.0);
        // 1 MB at 8 Mb/s: exactly the first second.
        let r = link.transfer(0.0, 1_000_000, 0.0, &mut |_, _| true);
        assert_eq!(r, Transfer::Done { end_s: 1.0 });
        // 1.5 MB from t=1: dead second, one full second (loop), then half a second.
        let r = link.transfer(1.0, 1_500_000, 0.0, &mut |_, _| true);
        assert_eq!(r, Transfer::Done { end_s: 4.5 });
        let mut link = Link::new(&t, 0.5);
        let mut seen = Vec::new();
        let r = link.transfer(0.0, 10_000_000, 0.25, &mut |b, e| {
            seen.push((b, e));
            e < 0.6
        });
        assert_eq!(
            r,
            Transfer::Stopped {
                at_s: 0.75,
                bytes_done: 375_000
            }
        );
        assert_eq!(seen.len(), 3);
    }
}
