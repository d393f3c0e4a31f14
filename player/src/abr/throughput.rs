//! Throughput rule (dash.js ThroughputRule): the highest rung whose rate is within a safety
//! factor of the dual half-life EWMA estimate.

use super::{start_rung, Abr, AbrContext, Decision, Download};
use crate::estimator::{Estimator, Ewma};

#[derive(Debug, Clone)]
pub struct ThroughputRule {
    pub safety: f64,
    estimator: Ewma,
}

impl Default for ThroughputRule {
    /// dash.js: 3 s / 8 s half-lives, safety factor 0.9.
    fn default() -> Self {
        ThroughputRule {
            safety: 0.9,
            estimator: Ewma::dash_js(),
        }
    }
}

impl ThroughputRule {
    /// The rung this rule picks for a given estimate.
    pub fn rung_for(&self, ctx: &AbrContext, estimate_bps: Option<f64>) -> usize {
        match estimate_bps {
            Some(bps) => ctx.video.rung_for(bps * self.safety),
            None => start_rung(ctx.video),
        }
    }
}

impl Abr for ThroughputRule {
    fn name(&self) -> &'static str {
        "throughput"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        Decision::now(self.rung_for(ctx, self.estimator.estimate_bps()))
    }

    fn on_download(&mut self, d: &Download) {
        self.estimator.add(d.sample());
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.estimator.estimate_bps()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::testutil::pensieve_video;

    #[test]
    fn picks_below_safety_factor() {
        let v = pensieve_video(4);
        let mut t = ThroughputRule::default();
        let ctx = AbrContext {
            video: &v,
            segment: 0,
            now_s: 0.0,
            buffer_s: 0.0,
            buffer_max_s: 60.0,
            last_rung: None,
            playing: false,
            history: &[],
        };
        assert_eq!(t.choose(&ctx).rung, 1, "750 kb/s to start");
        // 2 Mb/s measured: 0.9 x 2 = 1.8 Mb/s -> 1200 kb/s, not 1850.
        t.on_download(&Download {
            segment: 0,
            rung: 1,
            bytes: 500_000,
            duration_s: 2.0,
            end_s: 2.0,
            abandoned: false,
        });
        assert_eq!(t.choose(&ctx).rung, 2);
    }
}
