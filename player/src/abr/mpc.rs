//! robustMPC (Yin et al., SIGCOMM 2015), as in Pensieve's baseline: predict the throughput as
//! the harmonic mean of the last 5 downloads divided by (1 + the largest relative prediction
//! error of the last 5), then pick the first rung of the plan over the next 5 segments that
//! maximises QoE_lin (bitrate - 4.3 x rebuffer - |switch|, Mb/s), with real segment sizes.

use std::collections::VecDeque;

use super::{start_rung, Abr, AbrContext, Decision, Download};
use crate::estimator::{Estimator, HarmonicWindow, Weighting};
use crate::video::Video;

/// QoE_lin weights (Pensieve, MPC): per second of rebuffering, and per Mb/s of switch.
pub const REBUF_PENALTY: f64 = 4.3;
pub const SMOOTH_PENALTY: f64 = 1.0;

/// robustMPC's throughput prediction: the harmonic mean of the last 5 downloads, divided by
/// (1 + the largest relative error of the last 5 predictions). Shared by [`RobustMpc`] and the
/// hybrid rule.
#[derive(Debug, Clone)]
pub struct RobustPredictor {
    window: HarmonicWindow,
    errors: VecDeque<f64>,
    last_prediction: Option<f64>,
    prediction: Option<f64>,
    /// Level-shift detection (off in robustMPC): when the newest [`SHIFT_SAMPLES`] downloads
    /// all ran more than this many times faster than the harmonic mean of the older ones in the
    /// window, the older samples and their errors describe a network that is gone, and are
    /// forgotten.
    shift_factor: Option<f64>,
}

/// Downloads that must agree before a level shift is believed.
const SHIFT_SAMPLES: usize = 2;

/// Downloads (and prediction errors) the predictor remembers.
const PREDICTOR_WINDOW: usize = 5;

impl Default for RobustPredictor {
    fn default() -> Self {
        RobustPredictor {
            window: HarmonicWindow::new(Weighting::Equal, PREDICTOR_WINDOW),
            errors: VecDeque::with_capacity(PREDICTOR_WINDOW),
            last_prediction: None,
            prediction: None,
            shift_factor: None,
        }
    }
}

impl RobustPredictor {
    /// The predictor with level-shift detection at `factor` (see [`RobustPredictor`]).
    pub fn with_shift_detection(factor: f64) -> Self {
        RobustPredictor {
            shift_factor: Some(factor),
            ..RobustPredictor::default()
        }
    }

    /// The prediction for the next download as (harmonic mean, discounted rate), b/s; `None`
    /// before the first download.
    pub fn predict(&mut self) -> Option<(f64, f64)> {
        self.predict_discounted(1.0).map(|(h, _, bps)| (h, bps))
    }

    /// The prediction with `discount` x the largest recent error: (harmonic mean, largest
    /// relative error of the last predictions, `h / (1 + discount x error)`), b/s.
    pub fn predict_discounted(&mut self, discount: f64) -> Option<(f64, f64, f64)> {
        let h = self.window.estimate_bps()?;
        let max_err = self.errors.iter().copied().fold(0.0, f64::max);
        let bps = h / (1.0 + discount * max_err);
        self.last_prediction = Some(h);
        self.prediction = Some(bps);
        Some((h, max_err, bps))
    }

    /// Records a finished download: its error against the last prediction and its sample.
    pub fn observe(&mut self, d: &Download) {
        let Some(actual) = d.bps() else { return };
        if let Some(pred) = self.last_prediction {
            if self.errors.len() == PREDICTOR_WINDOW {
                self.errors.pop_front();
            }
            self.errors.push_back((pred - actual).abs() / actual);
        }
        self.window.add(d.sample());
        if let Some(f) = self.shift_factor {
            self.forget_on_rise(f);
        }
    }

    fn forget_on_rise(&mut self, factor: f64) {
        let n = self.window.len();
        if n <= SHIFT_SAMPLES {
            return;
        }
        let rates: Vec<f64> = self.window.rates_bps().collect();
        let (older, newest) = rates.split_at(n - SHIFT_SAMPLES);
        let old_estimate = older.len() as f64 / older.iter().map(|r| 1.0 / r).sum::<f64>();
        let new_min = newest.iter().copied().fold(f64::INFINITY, f64::min);
        if new_min > factor * old_estimate {
            self.window.keep_newest(SHIFT_SAMPLES);
            self.errors.clear();
        }
    }

    /// The last prediction, or the plain harmonic mean before any.
    pub fn estimate_bps(&self) -> Option<f64> {
        self.prediction.or_else(|| self.window.estimate_bps())
    }
}

#[derive(Debug, Clone)]
pub struct RobustMpc {
    pub horizon: usize,
    predictor: RobustPredictor,
}

impl Default for RobustMpc {
    fn default() -> Self {
        RobustMpc {
            horizon: 5,
            predictor: RobustPredictor::default(),
        }
    }
}

/// The plan search: the best first rung over `horizon` segments at a constant predicted rate.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub video: &'a Video,
    pub first_segment: usize,
    pub horizon: usize,
    pub bps: f64,
    /// Seconds added to every download (request latency).
    pub latency_s: f64,
    pub rebuf_penalty: f64,
    pub smooth_penalty: f64,
    /// The buffer is capped here in the plan (fetching pauses above it).
    pub buffer_cap_s: f64,
    /// Subtracted per second of buffer shortfall below this level at the plan's end.
    pub end_buffer_s: f64,
    pub end_weight: f64,
}

impl<'a> Plan<'a> {
    /// robustMPC's plan: QoE_lin's penalties, no request latency, no buffer cap and no
    /// terminal buffer target.
    pub fn qoe_lin(video: &'a Video, first_segment: usize, horizon: usize, bps: f64) -> Self {
        Plan {
            video,
            first_segment,
            horizon,
            bps,
            latency_s: 0.0,
            rebuf_penalty: REBUF_PENALTY,
            smooth_penalty: SMOOTH_PENALTY,
            buffer_cap_s: f64::INFINITY,
            end_buffer_s: 0.0,
            end_weight: 0.0,
        }
    }

    /// Returns (best first rung, its plan's score).
    pub fn best(&self, buffer_s: f64, last_rung: usize) -> (usize, f64) {
        let steps = self
            .horizon
            .min(self.video.num_segments.saturating_sub(self.first_segment))
            .max(1);
        let mbps: Vec<f64> = self.video.bitrates_bps.iter().map(|b| b / 1e6).collect();
        let top = mbps.last().copied().unwrap_or(0.0);
        let mut best = (last_rung.min(self.video.top()), f64::NEG_INFINITY);
        let mut st = Search {
            plan: self,
            mbps: &mbps,
            top,
            steps,
            best_score: f64::NEG_INFINITY,
        };
        for r in 0..self.video.rungs() {
            let s = st.step(0, r, last_rung, buffer_s, 0.0);
            if s > best.1 {
                best = (r, s);
            }
        }
        best
    }
}

struct Search<'a, 'b> {
    plan: &'a Plan<'b>,
    mbps: &'a [f64],
    top: f64,
    steps: usize,
    best_score: f64,
}

impl Search<'_, '_> {
    /// Score of the best plan that fetches rung `r` at depth `depth`.
    fn step(&mut self, depth: usize, r: usize, last: usize, buffer: f64, acc: f64) -> f64 {
        let p = self.plan;
        let seg = p.first_segment + depth;
        let dt = p.video.size(seg, r) as f64 * 8.0 / p.bps + p.latency_s;
        let rebuf = (dt - buffer).max(0.0);
        let buf = ((buffer - dt).max(0.0) + p.video.segment_duration_s).min(p.buffer_cap_s);
        let acc = acc + self.mbps[r]
            - p.rebuf_penalty * rebuf
            - p.smooth_penalty * (self.mbps[r] - self.mbps[last]).abs();
        if depth + 1 == self.steps {
            let short = (p.end_buffer_s - buf).max(0.0);
            let s = acc - p.end_weight * short;
            if s > self.best_score {
                self.best_score = s;
            }
            return s;
        }
        // Nothing below can beat the best plan found: every later step earns at most the top.
        if acc + self.top * (self.steps - depth - 1) as f64 <= self.best_score {
            return f64::NEG_INFINITY;
        }
        let mut best = f64::NEG_INFINITY;
        for n in 0..self.mbps.len() {
            best = best.max(self.step(depth + 1, n, r, buf, acc));
        }
        best
    }
}

impl Abr for RobustMpc {
    fn name(&self) -> &'static str {
        "mpc"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        let Some((_, bps)) = self.predictor.predict() else {
            return Decision::now(start_rung(ctx.video));
        };
        let plan = Plan::qoe_lin(ctx.video, ctx.segment, self.horizon, bps);
        let last = ctx.last_rung.unwrap_or_else(|| start_rung(ctx.video));
        Decision::now(plan.best(ctx.buffer_s, last).0)
    }

    fn on_download(&mut self, d: &Download) {
        self.predictor.observe(d);
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.predictor.estimate_bps()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::testutil::pensieve_video;

    #[test]
    fn plan_matches_brute_force() {
        let v = pensieve_video(10);
        for &(bps, buffer, last) in &[
            (1e6, 2.0, 0),
            (3e6, 10.0, 5),
            (0.4e6, 20.0, 3),
            (5e6, 0.0, 1),
        ] {
            let plan = Plan::qoe_lin(&v, 0, 3, bps);
            let (rung, score) = plan.best(buffer, last);
            // Brute force over all 6^3 plans.
            let mut best = (0, f64::NEG_INFINITY);
            for c in 0..216usize {
                let combo = [c / 36, (c / 6) % 6, c % 6];
                let (mut b, mut l, mut s) = (buffer, last, 0.0);
                for &r in &combo {
                    let dt = v.size(0, r) as f64 * 8.0 / bps;
                    let m = v.bitrates_bps[r] / 1e6;
                    s += m - 4.3 * (dt - b).max(0.0) - (m - v.bitrates_bps[l] / 1e6).abs();
                    b = (b - dt).max(0.0) + 4.0;
                    l = r;
                }
                if s > best.1 {
                    best = (combo[0], s);
                }
            }
            assert!((score - best.1).abs() < 1e-9, "{score} vs {best:?}");
            assert_eq!(rung, best.0);
        }
    }

    #[test]
    fn discounts_by_worst_recent_error() {
        let v = pensieve_video(48);
        let mut m = RobustMpc::default();
        let ctx = AbrContext {
            video: &v,
            segment: 2,
            now_s: 0.0,
            buffer_s: 8.0,
            buffer_max_s: 60.0,
            last_rung: Some(1),
            playing: true,
            history: &[],
        };
        let dl = |bytes| Download {
            segment: 0,
            rung: 1,
            bytes,
            duration_s: 1.0,
            end_s: 1.0,
            abandoned: false,
        };
        m.on_download(&dl(500_000)); // 4 Mb/s
        m.choose(&ctx);
        assert!((m.estimate_bps().unwrap() - 4e6).abs() < 1.0);
        m.on_download(&dl(250_000)); // 2 Mb/s: predicted 4, error 100%
        m.choose(&ctx);
        let h = 2.0 / (1.0 / 4e6 + 1.0 / 2e6);
        assert!((m.estimate_bps().unwrap() - h / 2.0).abs() < 1.0);
    }

    #[test]
    fn level_shift_detection_forgets_the_old_network() {
        let sample = |bps: f64| Download {
            segment: 0,
            rung: 0,
            bytes: (bps / 8.0) as u64,
            duration_s: 1.0,
            end_s: 0.0,
            abandoned: false,
        };
        let feed = |p: &mut RobustPredictor, rates: &[f64]| {
            for &r in rates {
                p.predict();
                p.observe(&sample(r));
            }
            p.predict().unwrap()
        };
        let slow_then_fast = [300e3, 300e3, 300e3, 5e6, 5e6];
        // robustMPC: harmonic mean of the five, divided by 1 + the 94% error of the first rise.
        let plain = feed(&mut RobustPredictor::default(), &slow_then_fast);
        let h = 5.0 / (3.0 / 300e3 + 2.0 / 5e6);
        assert!((plain.0 - h).abs() < 1.0, "{plain:?}");
        assert!(plain.1 < h / 1.9, "{plain:?}");
        // With detection the two fast downloads are all that is left, errors forgotten.
        let shifted = feed(
            &mut RobustPredictor::with_shift_detection(2.0),
            &slow_then_fast,
        );
        assert!((shifted.0 - 5e6).abs() < 1.0 && (shifted.1 - 5e6).abs() < 1.0);
        // One fast download, or a rise of less than the factor, is not a shift.
        let one = feed(
            &mut RobustPredictor::with_shift_detection(2.0),
            &[300e3, 300e3, 300e3, 300e3, 5e6],
        );
        assert!(one.0 < 400e3, "{one:?}");
        let mild = feed(
            &mut RobustPredictor::with_shift_detection(2.0),
            &[1e6, 1e6, 1e6, 1.8e6, 1.8e6],
        );
        let h = 5.0 / (3.0 / 1e6 + 2.0 / 1.8e6);
        assert!((mild.0 - h).abs() < 1.0, "{mild:?}");
    }
}
