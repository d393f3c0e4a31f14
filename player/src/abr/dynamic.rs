//! The dash.js DYNAMIC strategy: the throughput rule while the buffer is low, BOLA-E once it
//! holds the stable buffer (18 s), back to throughput below half of that; with abandonment.

use super::{
    abandonment_rule, Abr, AbrContext, Bola, Decision, Download, Progress, ThroughputRule,
};

#[derive(Debug, Clone)]
pub struct Dynamic {
    throughput: ThroughputRule,
    bola: Bola,
    using_bola: bool,
    pub stable_buffer_s: f64,
}

impl Default for Dynamic {
    fn default() -> Self {
        Dynamic {
            throughput: ThroughputRule::default(),
            bola: Bola::enhanced(),
            using_bola: false,
            stable_buffer_s: 18.0,
        }
    }
}

impl Dynamic {
    pub fn using_bola(&self) -> bool {
        self.using_bola
    }
}

impl Abr for Dynamic {
    fn name(&self) -> &'static str {
        "dynamic"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        if self.using_bola && ctx.buffer_s < self.stable_buffer_s / 2.0 {
            self.using_bola = false;
        } else if !self.using_bola && ctx.buffer_s >= self.stable_buffer_s {
            self.using_bola = true;
        }
        // Both rules see every decision so BOLA's state stays current.
        let b = self.bola.choose(ctx);
        let t = self.throughput.choose(ctx);
        if self.using_bola {
            b
        } else {
            t
        }
    }

    fn on_download(&mut self, d: &Download) {
        self.throughput.on_download(d);
        self.bola.on_download(d);
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.throughput.estimate_bps()
    }

    fn abandon(&mut self, ctx: &AbrContext, p: &Progress) -> Option<usize> {
        abandonment_rule(ctx, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::testutil::pensieve_video;

    #[test]
    fn switches_with_hysteresis() {
        let v = pensieve_video(48);
        let mut d = Dynamic::default();
        let mut ctx = AbrContext {
            video: &v,
            segment: 3,
            now_s: 10.0,
            buffer_s: 5.0,
            buffer_max_s: 60.0,
            last_rung: Some(1),
            playing: true,
            history: &[],
        };
        d.choose(&ctx);
        assert!(!d.using_bola());
        ctx.buffer_s = 18.0;
        d.choose(&ctx);
        assert!(d.using_bola());
        ctx.buffer_s = 10.0;
        d.choose(&ctx);
        assert!(d.using_bola(), "hysteresis keeps BOLA above 9 s");
        ctx.buffer_s = 8.9;
        d.choose(&ctx);
        assert!(!d.using_bola());
    }
}
