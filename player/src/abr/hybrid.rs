//! The default algorithm: a buffer-aware robust MPC.

use std::collections::VecDeque;

use super::mpc::{Plan, REBUF_PENALTY, SMOOTH_PENALTY};
use super::{abandonment_rule, start_rung, Abr, AbrContext, Decision, Download, Progress};
use crate::estimator::{Estimator, Ewma, HarmonicWindow, Weighting};

#[derive(Debug, Clone)]
pub struct Hybrid {
    pub horizon: usize,
    pub end_buffer_s: f64,
    pub end_weight: f64,
    pub err_scale: f64,
    pub use_ewma: bool,
    pub window_len: usize,
    pub spend_min_buffer_s: f64,
    pub spend_reserve_s: f64,
    pub spend_margin: f64,
    last_bps: Option<f64>,
    pub outage_factor: f64,
    pub hoard_mode: u8,
    pub hoard_safety: f64,
    outage_seen: bool,
    pub hoard_end_s: f64,
    pub hoard_end_w: f64,
    window: HarmonicWindow,
    ewma: Ewma,
    errors: VecDeque<f64>,
    last_prediction: Option<f64>,
    prediction: Option<f64>,
}

impl Default for Hybrid {
    fn default() -> Self {
        let p: Vec<f64> = std::env::var("HYBRID")
            .unwrap_or_default()
            .split(',')
            .filter_map(|x| x.parse().ok())
            .collect();
        let g = |i: usize, d: f64| p.get(i).copied().unwrap_or(d);
        let window_len = g(5, 5.0) as usize;
        Hybrid {
            horizon: g(0, 5.0) as usize,
            end_buffer_s: g(1, 0.0),
            end_weight: g(2, 0.0),
            err_scale: g(3, 1.0),
            use_ewma: g(4, 0.0) > 0.0,
            window_len,
            spend_min_buffer_s: g(6, 1e9),
            spend_reserve_s: g(7, 5.0),
            spend_margin: g(8, 0.1),
            last_bps: None,
            outage_factor: g(9, 0.0),
            hoard_mode: g(10, 0.0) as u8,
            hoard_safety: g(11, 0.9),
            outage_seen: false,
            hoard_end_s: g(12, 10.0),
            hoard_end_w: g(13, 1.0),
            window: HarmonicWindow::new(Weighting::Equal, window_len),
            ewma: Ewma::dash_js(),
            errors: VecDeque::new(),
            last_prediction: None,
            prediction: None,
        }
    }
}

impl Abr for Hybrid {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        let Some(h) = self.window.estimate_bps() else {
            return Decision::now(start_rung(ctx.video));
        };
        let max_err = self.errors.iter().copied().fold(0.0, f64::max);
        let mut bps = h / (1.0 + self.err_scale * max_err);
        if self.use_ewma {
            if let Some(e) = self.ewma.estimate_bps() {
                bps = bps.min(e);
            }
        }
        self.last_prediction = Some(h);
        self.prediction = Some(bps);
        let plan = Plan {
            video: ctx.video,
            first_segment: ctx.segment,
            horizon: self.horizon,
            bps,
            latency_s: 0.0,
            rebuf_penalty: REBUF_PENALTY,
            smooth_penalty: SMOOTH_PENALTY,
            buffer_cap_s: ctx.buffer_max_s,
            end_buffer_s: if self.outage_seen { self.hoard_end_s } else { self.end_buffer_s },
            end_weight: if self.outage_seen { self.hoard_end_w } else { self.end_weight },
        };
        let last = ctx.last_rung.unwrap_or_else(|| start_rung(ctx.video));
        let mut q = plan.best(ctx.buffer_s, last).0;
        if ctx.buffer_s >= self.spend_min_buffer_s && q < last {
            // Spend the buffer: keep the highest rung (no higher than the last) whose download
            // at a cautious rate fits in what is buffered beyond the reserve.
            let c = self.last_bps.map_or(h, |l| l.min(h));
            let budget = (ctx.buffer_s - self.spend_reserve_s) / (1.0 + self.spend_margin);
            let fits = (0..=last)
                .rev()
                .find(|&r| ctx.video.size(ctx.segment, r) as f64 * 8.0 / c <= budget);
            if let Some(r) = fits {
                q = q.max(r);
            }
        }
        if self.outage_seen {
            let e = self.ewma.estimate_bps().unwrap_or(h);
            let qt = ctx.video.rung_for(e * self.hoard_safety);
            q = match self.hoard_mode {
                0 => qt,
                1 => q.min(qt),
                _ => q,
            };
        }
        Decision::now(q)
    }

    fn on_download(&mut self, d: &Download) {
        let Some(actual) = d.bps() else { return };
        if let Some(pred) = self.last_prediction {
            if self.errors.len() == self.window_len {
                self.errors.pop_front();
            }
            self.errors.push_back((pred - actual).abs() / actual);
        }
        self.last_bps = Some(actual);
        if d.bytes > 20_000 && actual < self.outage_factor * 300_000.0 {
            self.outage_seen = true;
        }
        self.window.add(d.sample());
        self.ewma.add(d.sample());
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.prediction.or_else(|| self.window.estimate_bps())
    }

    fn abandon(&mut self, ctx: &AbrContext, p: &Progress) -> Option<usize> {
        abandonment_rule(ctx, p)
    }
}
