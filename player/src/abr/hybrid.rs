//! The default algorithm, `hybrid`: a buffer-aware robust MPC.
//!
//! 1. robustMPC's plan (5 segments, real sizes, harmonic mean of the last 5 throughputs divided by
//!    1 + the largest of the last 5 relative errors), with the buffer capped at its real maximum
//!    inside the plan and a terminal penalty for ending the plan below a buffer target, so the
//!    plan does not drain the buffer beyond its horizon.
//! 2. Buffer spending on drops: when the plan steps down while the buffer is deep, keep the
//!    highest rung (not above the current one) whose download at a cautious rate fits in the
//!    buffer beyond a reserve. One long download spends buffer once, where many low segments
//!    would each cost bitrate; a monotone descent costs no more switch penalty than one drop.
//! 3. Outage memory: once a download ran slower than half the lowest rung, the network is one
//!    with outages: the plan's buffer target rises, buffer spending stops and downloads that
//!    would stall are abandoned. Elsewhere abandonment mostly fires on short dips and costs two
//!    switches, so it stays off.

use super::mpc::{Plan, RobustPredictor, REBUF_PENALTY, SMOOTH_PENALTY};
use super::{abandonment_rule, start_rung, Abr, AbrContext, Decision, Download, Progress};

#[derive(Debug, Clone)]
pub struct Hybrid {
    pub horizon: usize,
    /// Plan's terminal buffer target and penalty per second short of it.
    pub end_buffer_s: f64,
    pub end_weight: f64,
    /// The same once an outage has been seen.
    pub outage_end_buffer_s: f64,
    /// Spending needs at least this much buffer, keeps this reserve, and a margin on the rate.
    pub spend_min_buffer_s: f64,
    pub spend_reserve_s: f64,
    pub spend_margin: f64,
    /// A download slower than this share of the lowest rung's rate is an outage.
    pub outage_share: f64,
    predictor: RobustPredictor,
    last_bps: Option<f64>,
    lowest_bps: f64,
    outage_seen: bool,
}

impl Default for Hybrid {
    fn default() -> Self {
        Hybrid {
            horizon: 5,
            end_buffer_s: 10.0,
            end_weight: 1.0,
            outage_end_buffer_s: 50.0,
            spend_min_buffer_s: 15.0,
            spend_reserve_s: 3.0,
            spend_margin: 0.1,
            outage_share: 0.5,
            predictor: RobustPredictor::default(),
            last_bps: None,
            lowest_bps: 0.0,
            outage_seen: false,
        }
    }
}

impl Hybrid {
    /// Whether a download slow enough to count as an outage has been seen.
    pub fn outage_seen(&self) -> bool {
        self.outage_seen
    }
}

impl Abr for Hybrid {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        self.lowest_bps = ctx.video.bitrates_bps[0];
        let Some((h, bps)) = self.predictor.predict() else {
            return Decision::now(start_rung(ctx.video));
        };
        let plan = Plan {
            video: ctx.video,
            first_segment: ctx.segment,
            horizon: self.horizon,
            bps,
            latency_s: 0.0,
            rebuf_penalty: REBUF_PENALTY,
            smooth_penalty: SMOOTH_PENALTY,
            buffer_cap_s: ctx.buffer_max_s,
            end_buffer_s: if self.outage_seen {
                self.outage_end_buffer_s
            } else {
                self.end_buffer_s
            },
            end_weight: self.end_weight,
        };
        let last = ctx.last_rung.unwrap_or_else(|| start_rung(ctx.video));
        let mut q = plan.best(ctx.buffer_s, last).0;
        if !self.outage_seen && ctx.buffer_s >= self.spend_min_buffer_s && q < last {
            let cautious = self.last_bps.map_or(h, |l| l.min(h));
            let budget = (ctx.buffer_s - self.spend_reserve_s) / (1.0 + self.spend_margin);
            let fits = (0..=last)
                .rev()
                .find(|&r| ctx.video.size(ctx.segment, r) as f64 * 8.0 / cautious <= budget);
            if let Some(r) = fits {
                q = q.max(r);
            }
        }
        Decision::now(q)
    }

    fn on_download(&mut self, d: &Download) {
        self.predictor.observe(d);
        let Some(actual) = d.bps() else { return };
        self.last_bps = Some(actual);
        // Tiny transfers say little about the link (latency dominates).
        if d.duration_s >= 1.0 && actual < self.outage_share * self.lowest_bps {
            self.outage_seen = true;
        }
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.predictor.estimate_bps()
    }

    fn abandon(&mut self, ctx: &AbrContext, p: &Progress) -> Option<usize> {
        if self.outage_seen {
            abandonment_rule(ctx, p)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::testutil::pensieve_video;

    fn dl(bytes: u64, secs: f64) -> Download {
        Download {
            segment: 0,
            rung: 0,
            bytes,
            duration_s: secs,
            end_s: 0.0,
            abandoned: false,
        }
    }

    #[test]
    fn spends_a_deep_buffer_on_a_drop() {
        let v = pensieve_video(48);
        let mut h = Hybrid::default();
        let ctx = AbrContext {
            video: &v,
            segment: 20,
            now_s: 100.0,
            buffer_s: 50.0,
            buffer_max_s: 60.0,
            last_rung: Some(5),
            playing: true,
            history: &[],
        };
        h.choose(&ctx);
        for _ in 0..4 {
            h.on_download(&dl(1_250_000, 1.0)); // 10 Mb/s
        }
        h.on_download(&dl(100_000, 1.6)); // 500 kb/s: a drop
        let q = h.choose(&ctx).rung;
        // The 4300 kb/s segment (2.15 MB) needs 34.4 s at 500 kb/s: within (50 - 3) / 1.1.
        assert_eq!(q, 5, "keeps the top rung while the buffer pays for it");
        let shallow = AbrContext {
            buffer_s: 12.0,
            ..ctx
        };
        assert!(h.choose(&shallow).rung < 5);
    }

    #[test]
    fn an_outage_switches_on_abandonment() {
        let v = pensieve_video(48);
        let mut h = Hybrid::default();
        let ctx = AbrContext {
            video: &v,
            segment: 3,
            now_s: 10.0,
            buffer_s: 6.0,
            buffer_max_s: 60.0,
            last_rung: Some(5),
            playing: true,
            history: &[],
        };
        h.choose(&ctx);
        let p = Progress {
            rung: 5,
            bytes_total: v.size(3, 5),
            bytes_done: 62_500,
            elapsed_s: 1.0,
            buffer_s: 6.0,
        };
        assert_eq!(h.abandon(&ctx, &p), None);
        h.on_download(&dl(10_000, 2.0)); // 40 kb/s for 2 s: below half of 300 kb/s
        assert!(h.outage_seen());
        assert_eq!(h.abandon(&ctx, &p), Some(0));
    }
}
