//! The default algorithm (placeholder while it is designed): robustMPC.

use super::{Abr, AbrContext, Decision, Download, RobustMpc};

#[derive(Debug, Clone, Default)]
pub struct Hybrid {
    mpc: RobustMpc,
}

impl Abr for Hybrid {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        self.mpc.choose(ctx)
    }

    fn on_download(&mut self, d: &Download) {
        self.mpc.on_download(d)
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.mpc.estimate_bps()
    }
}
