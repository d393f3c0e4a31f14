//! `--shape`: paces the bytes a real download receives along a network trace, as if they came
//! over a link following the trace from the start of playback (the socket is read only as fast
//! as the trace allows, so TCP back-pressure throttles the sender).

use std::sync::Arc;

use crate::trace::{Link, Trace, Transfer};

/// Paces received bytes along a trace (a shaped link that starts when playback starts).
pub struct Shaper {
    link: Link<Arc<Trace>>,
    free_at_s: f64,
}

impl Shaper {
    /// A link following `trace` from session time 0.
    pub fn new(trace: Trace) -> Self {
        Shaper {
            link: Link::new(Arc::new(trace), 1.0),
            free_at_s: 0.0,
        }
    }

    /// When (session time) `bytes` received at `now_s` would have arrived over the shaped link.
    pub fn pace(&mut self, now_s: f64, bytes: u64) -> f64 {
        let start = now_s.max(self.free_at_s);
        if let Transfer::Done { end_s } = self.link.transfer(start, bytes, 0.0, &mut |_, _| true) {
            self.free_at_s = end_s;
        }
        self.free_at_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_at_the_trace_rate_one_after_another() {
        // 8 Mb/s for 1 s, then 800 kb/s.
        let mut s = Shaper::new(Trace::new("t", vec![(1.0, 8e6), (100.0, 0.8e6)]).unwrap());
        // 500 kB at 1 MB/s: 0.5 s.
        assert!((s.pace(0.0, 500_000) - 0.5).abs() < 1e-9);
        // Received at 0.2 s but the link is busy until 0.5 s: 0.5 s more.
        assert!((s.pace(0.2, 500_000) - 1.0).abs() < 1e-9);
        // After the step: 100 kB at 100 kB/s.
        assert!((s.pace(2.0, 100_000) - 3.0).abs() < 1e-9);
    }
}
