//! Bandwidth estimators: a dual half-life EWMA (dash.js style: the lower of a fast and a slow
//! average wins) and a sliding-window harmonic mean, both fed with completed downloads and
//! weighted either by the bytes or by the time each sample took; and, for low-latency live, the
//! burst estimator ([`BurstWindow`]) fed with the chunks of paced downloads.

/// One completed (or abandoned) download: `bytes` moved in `duration_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub bytes: u64,
    pub duration_s: f64,
}

impl Sample {
    pub fn new(bytes: u64, duration_s: f64) -> Self {
        Sample { bytes, duration_s }
    }

    /// Throughput in bits per second (`None` for an empty or instantaneous sample).
    pub fn bps(&self) -> Option<f64> {
        if self.bytes == 0 || self.duration_s <= 0.0 || !self.duration_s.is_finite() {
            None
        } else {
            Some(self.bytes as f64 * 8.0 / self.duration_s)
        }
    }
}

/// How much each sample counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// By the sample's size in bytes (dash.js weights its EWMA by download duration; Sabre's
    /// harmonic mean is unweighted; both are common).
    Bytes,
    /// By the time the sample took, in seconds.
    Time,
    /// Every sample counts the same.
    Equal,
}

/// A throughput estimator fed with download samples.
pub trait Estimator {
    fn add(&mut self, sample: Sample);
    /// Current estimate in bits per second, `None` before the first usable sample.
    fn estimate_bps(&self) -> Option<f64>;
}

/// Exponentially weighted moving average with a fast and a slow half-life; the estimate is the
/// lower of the two (reacts fast to drops, slowly to rises). Half-lives are in the weighting's
/// unit: seconds for [`Weighting::Time`], bytes for [`Weighting::Bytes`]. Bias-corrected as in
/// dash.js so the first samples are not pulled towards zero.
#[derive(Debug, Clone)]
pub struct Ewma {
    weighting: Weighting,
    fast: EwmaTrack,
    slow: EwmaTrack,
}

#[derive(Debug, Clone)]
struct EwmaTrack {
    alpha_per_unit: f64,
    value: f64,
    total_weight: f64,
}

impl EwmaTrack {
    fn new(half_life: f64) -> Self {
        EwmaTrack {
            alpha_per_unit: 0.5f64.powf(1.0 / half_life.max(1e-9)),
            value: 0.0,
            total_weight: 0.0,
        }
    }

    fn add(&mut self, weight: f64, bps: f64) {
        let a = self.alpha_per_unit.powf(weight);
        self.value = a * self.value + (1.0 - a) * bps;
        self.total_weight += weight;
    }

    fn get(&self) -> Option<f64> {
        if self.total_weight <= 0.0 {
            return None;
        }
        let zero_factor = 1.0 - self.alpha_per_unit.powf(self.total_weight);
        if zero_factor <= 0.0 {
            None
        } else {
            Some(self.value / zero_factor)
        }
    }
}

impl Ewma {
    /// dash.js defaults: half-lives of 3 s and 8 s, weighted by time.
    pub fn dash_js() -> Self {
        Ewma::new(Weighting::Time, 3.0, 8.0)
    }

    pub fn new(weighting: Weighting, fast_half_life: f64, slow_half_life: f64) -> Self {
        Ewma {
            weighting,
            fast: EwmaTrack::new(fast_half_life),
            slow: EwmaTrack::new(slow_half_life),
        }
    }
}

impl Estimator for Ewma {
    fn add(&mut self, sample: Sample) {
        let Some(bps) = sample.bps() else { return };
        let w = match self.weighting {
            Weighting::Time => sample.duration_s,
            Weighting::Bytes => sample.bytes as f64,
            Weighting::Equal => 1.0,
        };
        self.fast.add(w, bps);
        self.slow.add(w, bps);
    }

    fn estimate_bps(&self) -> Option<f64> {
        match (self.fast.get(), self.slow.get()) {
            (Some(f), Some(s)) => Some(f.min(s)),
            (f, s) => f.or(s),
        }
    }
}

/// Weighted harmonic mean of the last `window` samples: sum(w) / sum(w / bps). With byte weights
/// this is the window's total bytes over its total time; with equal weights it is the plain
/// harmonic mean of the throughputs (robustMPC's predictor).
#[derive(Debug, Clone)]
pub struct HarmonicWindow {
    weighting: Weighting,
    window: usize,
    samples: std::collections::VecDeque<(f64, f64)>,
}

impl HarmonicWindow {
    pub fn new(weighting: Weighting, window: usize) -> Self {
        HarmonicWindow {
            weighting,
            window: window.max(1),
            samples: std::collections::VecDeque::with_capacity(window.max(1)),
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The throughputs in the window, oldest first, b/s.
    pub fn rates_bps(&self) -> impl Iterator<Item = f64> + '_ {
        self.samples.iter().map(|&(_, bps)| bps)
    }

    /// Forgets all but the newest `n` samples.
    pub fn keep_newest(&mut self, n: usize) {
        while self.samples.len() > n {
            self.samples.pop_front();
        }
    }
}

impl Estimator for HarmonicWindow {
    fn add(&mut self, sample: Sample) {
        let Some(bps) = sample.bps() else { return };
        let w = match self.weighting {
            Weighting::Time => sample.duration_s,
            Weighting::Bytes => sample.bytes as f64,
            Weighting::Equal => 1.0,
        };
        if self.samples.len() == self.window {
            self.samples.pop_front();
        }
        self.samples.push_back((w, bps));
    }

    fn estimate_bps(&self) -> Option<f64> {
        let (mut sw, mut inv) = (0.0, 0.0);
        for &(w, bps) in &self.samples {
            sw += w;
            inv += w / bps;
        }
        if sw > 0.0 && inv > 0.0 {
            Some(sw / inv)
        } else {
            None
        }
    }
}

/// The shortest time a burst is taken to have lasted: a chunk that came in one read (its
/// arrival time unmeasurable) counts as this fast at most.
pub const MIN_BURST_S: f64 = 0.001;

/// A chunk's bytes over the time they took on the wire, idle time before them excluded. Under
/// paced delivery (a low-latency live segment is sent as it is produced) the download of a
/// segment lasts as long as its production whatever the link; within one chunk, sent at once,
/// the bytes move at the link's pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub bytes: u64,
    pub duration_s: f64,
}

impl Burst {
    /// The burst of a chunk of `bytes` whose first read (of `first_bytes`) arrived at
    /// `first_s` and last at `last_s`: the bytes after the first read over the time from the
    /// first read to the last (the first read's own bytes arrived at an unknown time before
    /// it). A chunk that came in one read is taken to have lasted [`MIN_BURST_S`].
    pub fn from_reads(bytes: u64, first_s: f64, first_bytes: u64, last_s: f64) -> Burst {
        let span = last_s - first_s;
        if span > MIN_BURST_S && bytes > first_bytes {
            Burst {
                bytes: bytes - first_bytes,
                duration_s: span,
            }
        } else {
            Burst {
                bytes,
                duration_s: MIN_BURST_S,
            }
        }
    }

    pub fn bps(&self) -> Option<f64> {
        Sample::new(self.bytes, self.duration_s.max(MIN_BURST_S)).bps()
    }
}

/// The link rate from chunk bursts (dash.js's low-latency throughput rule, LoL+): over the
/// last `window` bursts, their bytes over their durations (a byte-weighted harmonic mean), the
/// idle gaps between chunks left out. Bursts of fewer than `min_bytes` (a tiny chunk's rate
/// says more about the round trip than the link) are ignored.
#[derive(Debug, Clone)]
pub struct BurstWindow {
    window: usize,
    min_bytes: u64,
    bursts: std::collections::VecDeque<Burst>,
}

impl BurstWindow {
    pub fn new(window: usize, min_bytes: u64) -> Self {
        BurstWindow {
            window: window.max(1),
            min_bytes,
            bursts: std::collections::VecDeque::with_capacity(window.max(1)),
        }
    }

    pub fn add(&mut self, b: Burst) {
        if b.bytes < self.min_bytes || b.bytes == 0 || !b.duration_s.is_finite() {
            return;
        }
        if self.bursts.len() == self.window {
            self.bursts.pop_front();
        }
        self.bursts.push_back(Burst {
            bytes: b.bytes,
            duration_s: b.duration_s.max(MIN_BURST_S),
        });
    }

    pub fn len(&self) -> usize {
        self.bursts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bursts.is_empty()
    }

    /// Bits per second over the window; `None` before the first burst.
    pub fn estimate_bps(&self) -> Option<f64> {
        let bytes: u64 = self.bursts.iter().map(|b| b.bytes).sum();
        let secs: f64 = self.bursts.iter().map(|b| b.duration_s).sum();
        Sample::new(bytes, secs).bps()
    }

    /// The estimate over the newest `n` bursts only.
    pub fn newest_bps(&self, n: usize) -> Option<f64> {
        let skip = self.bursts.len().saturating_sub(n);
        let (bytes, secs) = self
            .bursts
            .iter()
            .skip(skip)
            .fold((0u64, 0.0), |(b, s), x| (b + x.bytes, s + x.duration_s));
        Sample::new(bytes, secs).bps()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbps(x: Option<f64>) -> f64 {
        x.expect("estimate") / 1e6
    }

    #[test]
    fn sample_rate() {
        assert_eq!(Sample::new(1_000_000, 2.0).bps(), Some(4e6));
        assert_eq!(Sample::new(0, 2.0).bps(), None);
        assert_eq!(Sample::new(10, 0.0).bps(), None);
    }

    #[test]
    fn ewma_constant_input_is_exact_from_first_sample() {
        let mut e = Ewma::dash_js();
        assert_eq!(e.estimate_bps(), None);
        e.add(Sample::new(1_250_000, 1.0)); // 10 Mb/s
        assert!((mbps(e.estimate_bps()) - 10.0).abs() < 1e-9);
        for _ in 0..20 {
            e.add(Sample::new(1_250_000, 1.0));
        }
        assert!((mbps(e.estimate_bps()) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn ewma_takes_the_lower_track() {
        let mut e = Ewma::dash_js();
        for _ in 0..30 {
            e.add(Sample::new(1_250_000, 1.0)); // 10 Mb/s for 30 s
        }
        // A drop to 1 Mb/s for 3 s: the fast track (3 s half-life) has moved half-way.
        for _ in 0..3 {
            e.add(Sample::new(125_000, 1.0));
        }
        let est = mbps(e.estimate_bps());
        assert!(
            (est - 5.5).abs() < 0.01,
            "fast track after one half-life: {est}"
        );
        // A rise back to 10 Mb/s: the slow track (still low-ish) now dictates.
        let mut up = Ewma::dash_js();
        for _ in 0..80 {
            up.add(Sample::new(125_000, 1.0));
        }
        for _ in 0..8 {
            up.add(Sample::new(1_250_000, 1.0));
        }
        let est = mbps(up.estimate_bps());
        assert!(
            (est - 5.5).abs() < 0.01,
            "slow track after one half-life: {est}"
        );
    }

    #[test]
    fn ewma_weighted_by_bytes() {
        let mut e = Ewma::new(Weighting::Bytes, 1_000_000.0, 1_000_000.0);
        e.add(Sample::new(10_000_000, 8.0)); // 10 Mb/s, many half-lives: fully converged
        e.add(Sample::new(1_000_000, 8.0)); // 1 Mb/s, exactly one half-life of bytes
        assert!((mbps(e.estimate_bps()) - 5.5).abs() < 0.01);
    }

    #[test]
    fn harmonic_mean_of_window() {
        let mut h = HarmonicWindow::new(Weighting::Equal, 3);
        assert_eq!(h.estimate_bps(), None);
        h.add(Sample::new(125_000, 1.0)); // 1 Mb/s
        h.add(Sample::new(250_000, 1.0)); // 2 Mb/s
        h.add(Sample::new(500_000, 1.0)); // 4 Mb/s
                                          // 3 / (1 + 1/2 + 1/4) = 12/7
        assert!((mbps(h.estimate_bps()) - 12.0 / 7.0).abs() < 1e-9);
        h.add(Sample::new(500_000, 1.0)); // the 1 Mb/s sample leaves the window
        assert_eq!(h.len(), 3);
        assert!((mbps(h.estimate_bps()) - 3.0 / (0.5 + 0.25 + 0.25)).abs() < 1e-9);
    }

    #[test]
    fn harmonic_by_bytes_is_total_bytes_over_total_time() {
        let mut h = HarmonicWindow::new(Weighting::Bytes, 10);
        h.add(Sample::new(1_000_000, 1.0));
        h.add(Sample::new(3_000_000, 2.0));
        assert!((mbps(h.estimate_bps()) - 32.0 / 3.0 / 1.0).abs() < 1e-9);
        let mut t = HarmonicWindow::new(Weighting::Time, 10);
        t.add(Sample::new(1_000_000, 1.0)); // 8 Mb/s for 1 s
        t.add(Sample::new(3_000_000, 2.0)); // 12 Mb/s for 2 s
                                            // time-weighted harmonic: 3 / (1/8 + 2/12)
        assert!((mbps(t.estimate_bps()) - 3.0 / (1.0 / 8.0 + 2.0 / 12.0)).abs() < 1e-9);
    }

    #[test]
    fn harmonic_window_keeps_the_newest() {
        let mut h = HarmonicWindow::new(Weighting::Equal, 4);
        for bps in [1e6, 2e6, 4e6, 8e6, 16e6] {
            h.add(Sample::new((bps / 8.0) as u64, 1.0));
        }
        let rates: Vec<f64> = h.rates_bps().collect();
        assert_eq!(rates, vec![2e6, 4e6, 8e6, 16e6]);
        h.keep_newest(2);
        assert_eq!(h.len(), 2);
        assert!((mbps(h.estimate_bps()) - 2.0 / (1.0 / 8.0 + 1.0 / 16.0)).abs() < 1e-9);
        h.keep_newest(5);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn a_burst_excludes_the_first_read_and_idle_time() {
        // 100 kB: 10 kB in the first read at 1.0 s, the rest by 1.09 s: 90 kB in 90 ms.
        let b = Burst::from_reads(100_000, 1.0, 10_000, 1.09);
        assert_eq!(b.bytes, 90_000);
        assert!((b.bps().unwrap() - 8e6).abs() < 1.0);
        // One read: at most MIN_BURST_S.
        let one = Burst::from_reads(50_000, 2.0, 50_000, 2.0);
        assert_eq!(one.duration_s, MIN_BURST_S);
        assert!((one.bps().unwrap() - 400e6).abs() < 1.0);
    }

    #[test]
    fn paced_segments_estimate_the_link_not_the_production() {
        // A 2-s segment of four 0.5-s chunks of 250 kB (4 Mb/s of media) over a 20 Mb/s link:
        // each chunk takes 0.1 s on the wire, the segment 2 s (its production). The download
        // rate says 4 Mb/s; the bursts say 20.
        let mut w = BurstWindow::new(8, 1000);
        let mut whole = HarmonicWindow::new(Weighting::Bytes, 4);
        for seg in 0..3 {
            let t0 = seg as f64 * 2.0;
            for i in 0..4 {
                let produced = t0 + (i + 1) as f64 * 0.5;
                // Reads of 25 kB every 10 ms from the chunk's production on.
                let (first, last) = (produced + 0.01, produced + 0.1);
                w.add(Burst::from_reads(250_000, first, 25_000, last));
            }
            whole.add(Sample::new(1_000_000, 2.0));
        }
        assert!((mbps(w.estimate_bps()) - 20.0).abs() < 1e-6);
        assert!((mbps(whole.estimate_bps()) - 4.0).abs() < 1e-6);
        // A slower link now: the newest bursts show it first.
        for _ in 0..2 {
            w.add(Burst {
                bytes: 250_000,
                duration_s: 0.4,
            });
        }
        assert!((mbps(w.newest_bps(2)) - 5.0).abs() < 1e-6);
        assert!(mbps(w.estimate_bps()) < 20.0 && mbps(w.estimate_bps()) > 5.0);
        assert_eq!(w.len(), 8);
        // Tiny bursts are ignored.
        let mut t = BurstWindow::new(4, 1000);
        t.add(Burst {
            bytes: 10,
            duration_s: 1.0,
        });
        assert!(t.is_empty());
        assert_eq!(t.estimate_bps(), None);
    }
}
