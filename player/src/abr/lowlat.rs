//! The low-latency rule (`ll`): picks rungs for a 1-2 s buffer from the link rate measured in
//! chunk bursts ([`BurstWindow`]), never from paced download times (a chunked live segment
//! takes as long to download as to produce, whatever the link).
//!
//! - Estimate: the lower of the burst window's rate and its newest two bursts' (a drop shows
//!   within one chunk; a rise needs the whole window). Before any burst, the download rate (a
//!   lower bound of the link's); before anything, [`super::START_BPS`].
//! - Safety: the share of the estimate a rung may use grows with the buffer, from
//!   `safety_low` at an empty buffer to `safety_high` at `full_buffer_s` and over: with
//!   half a second of media left, a chunk that arrives late is a stall.
//! - A rung whose chunks cannot arrive as fast as they play (bitrate over the link rate) drains
//!   the buffer by `d x (bitrate / rate - 1)` over a segment of `d` seconds; besides the safety,
//!   the rung must not drain the buffer under the low mark over the segment.
//! - Up at most `up_step` rungs per segment (the estimate must first hold at the new rung);
//!   down at once.
//!
//! Tuned in virtual time on the training traces with chunked delivery (`sim`, see
//! [`LowLatencyTuning`] and `examples/ll_tune.rs`): the 64 Pensieve training traces, 120 s of
//! 2-s segments in 0.5-s chunks, the packager's ladder (400-2800 kb/s) plus 128 kb/s of audio,
//! target 1.5 s. The throughput rule (fed paced download times) averages 412 kb/s with 26
//! stall-free sessions; this rule with safety 0.5-0.7 (full at 1 s of buffer) and one rung up
//! per segment 637 kb/s with 25 (0.5-0.8: 713 kb/s, 23; 0.5-0.9: 794 kb/s, 21). The other
//! sessions stall in outages no rung survives with a 1-2 s buffer (every rule alike, about
//! 14 s of stall per 120 s on average).

use super::{start_rung, Abr, AbrContext, Decision, Download};
use crate::estimator::{Burst, BurstWindow, Sample};

/// The rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LowLatencyTuning {
    /// Share of the estimate usable with an empty buffer.
    pub safety_low: f64,
    /// Share of the estimate usable at `full_buffer_s` of buffer and over.
    pub safety_high: f64,
    /// The buffer at which `safety_high` applies, seconds (a 1.5-s latency with 0.5-s chunks
    /// holds about 1 s).
    pub full_buffer_s: f64,
    /// Never plan to drain the buffer under this over a segment, seconds.
    pub low_buffer_s: f64,
    /// Rungs up per segment at most.
    pub up_step: usize,
    /// Bursts in the estimate's window.
    pub window: usize,
}

impl Default for LowLatencyTuning {
    /// Chosen on the training traces (see the module doc).
    fn default() -> Self {
        LowLatencyTuning {
            safety_low: 0.5,
            safety_high: 0.7,
            full_buffer_s: 1.0,
            low_buffer_s: 0.5,
            up_step: 1,
            window: 8,
        }
    }
}

/// The low-latency rule.
#[derive(Debug, Clone)]
pub struct LowLatencyRule {
    tuning: LowLatencyTuning,
    bursts: BurstWindow,
    /// The rate of the last whole download, when no burst could be measured.
    download_bps: Option<f64>,
}

impl Default for LowLatencyRule {
    fn default() -> Self {
        LowLatencyRule::new(LowLatencyTuning::default())
    }
}

/// Bursts of fewer bytes than this are left out of the estimate.
const MIN_BURST_BYTES: u64 = 2_000;

impl LowLatencyRule {
    pub fn new(tuning: LowLatencyTuning) -> Self {
        LowLatencyRule {
            tuning,
            bursts: BurstWindow::new(tuning.window, MIN_BURST_BYTES),
            download_bps: None,
        }
    }

    /// The link estimate, bits per second.
    fn estimate(&self) -> Option<f64> {
        match (self.bursts.estimate_bps(), self.bursts.newest_bps(2)) {
            (Some(all), Some(new)) => Some(all.min(new)),
            _ => self.download_bps,
        }
    }

    /// Share of the estimate usable with `buffer_s` of buffer.
    fn safety(&self, buffer_s: f64) -> f64 {
        let t = &self.tuning;
        let x = (buffer_s / t.full_buffer_s.max(0.1)).clamp(0.0, 1.0);
        t.safety_low + (t.safety_high - t.safety_low) * x
    }
}

impl Abr for LowLatencyRule {
    fn name(&self) -> &'static str {
        "ll"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        let v = ctx.video;
        let Some(rate) = self.estimate() else {
            return Decision::now(start_rung(v));
        };
        let budget = rate * self.safety(ctx.buffer_s);
        let d = v.segment_duration_s.max(0.01);
        let spare = (ctx.buffer_s - self.tuning.low_buffer_s).max(0.0);
        let fits = |r: usize| {
            let bps = v.bitrates_bps[r];
            // The drain over the segment when the rung outruns the link.
            let drain = d * (bps / rate - 1.0).max(0.0);
            bps <= budget && drain <= spare
        };
        let mut rung = (0..v.rungs()).rev().find(|&r| fits(r)).unwrap_or(0);
        if let Some(last) = ctx.last_rung {
            rung = rung.min(last + self.tuning.up_step.max(1));
        }
        Decision::now(rung.min(v.top()))
    }

    fn on_download(&mut self, d: &Download) {
        if let Some(bps) = Sample::new(d.bytes, d.duration_s).bps() {
            self.download_bps = Some(bps);
        }
    }

    fn on_chunk(&mut self, burst: &Burst) {
        self.bursts.add(*burst);
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.estimate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::Video;

    fn ladder() -> Video {
        Video::nominal("ll", vec![400e3, 800e3, 1400e3, 2800e3], 2.0, 100).unwrap()
    }

    fn ctx<'a>(v: &'a Video, buffer_s: f64, last: Option<usize>) -> AbrContext<'a> {
        AbrContext {
            video: v,
            segment: 5,
            now_s: 10.0,
            buffer_s,
            buffer_max_s: 30.0,
            last_rung: last,
            playing: true,
            history: &[],
        }
    }

    fn feed(rule: &mut LowLatencyRule, bps: f64, n: usize) {
        for _ in 0..n {
            rule.on_chunk(&Burst {
                bytes: 100_000,
                duration_s: 100_000.0 * 8.0 / bps,
            });
        }
    }

    #[test]
    fn paced_downloads_do_not_hold_it_down_bursts_lift_it_one_rung_at_a_time() {
        let v = ladder();
        let mut rule = LowLatencyRule::default();
        assert_eq!(rule.choose(&ctx(&v, 0.0, None)).rung, start_rung(&v));
        // A 2-s segment at 800 kb/s downloaded in 2 s (production): 800 kb/s "measured".
        rule.on_download(&Download {
            segment: 0,
            rung: 1,
            bytes: 200_000,
            duration_s: 2.0,
            end_s: 2.0,
            abandoned: false,
        });
        assert_eq!(rule.choose(&ctx(&v, 1.2, Some(1))).rung, 0);
        // Bursts show a 20 Mb/s link: up one rung per segment.
        feed(&mut rule, 20e6, 8);
        assert_eq!(rule.choose(&ctx(&v, 1.2, Some(1))).rung, 2);
        assert_eq!(rule.choose(&ctx(&v, 1.2, Some(2))).rung, 3);
        assert!((rule.estimate_bps().unwrap() - 20e6).abs() < 1.0);
    }

    #[test]
    fn a_thin_buffer_or_a_drop_brings_it_down_at_once() {
        let v = ladder();
        let mut rule = LowLatencyRule::default();
        // 4.2 Mb/s: 1.5x the top rung.
        feed(&mut rule, 4.2e6, 8);
        assert_eq!(rule.choose(&ctx(&v, 1.5, Some(3))).rung, 3);
        // Empty buffer: half of 4.2 = 2.1 Mb/s budget, and no drain allowed.
        assert_eq!(rule.choose(&ctx(&v, 0.0, Some(3))).rung, 2);
        // Two slow bursts (1.2 Mb/s) are enough to drop.
        feed(&mut rule, 1.2e6, 2);
        assert_eq!(rule.choose(&ctx(&v, 1.5, Some(3))).rung, 1);
    }
}
