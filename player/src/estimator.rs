//! Bandwidth estimators: a dual half-life EWMA (dash.js style: the lower of a fast and a slow
//! average wins) and a sliding-window harmonic mean, both fed with completed downloads and
//! weighted either by the bytes or by the time each sample took.

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
}
