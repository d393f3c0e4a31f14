//! The offline optimum, `optimal`: dynamic programming over a trace known in advance, as an
//! upper reference for the online rules (no online rule can know the future). It plans every
//! rung of the session under the simulator's conventions (request latency, payload share,
//! pause above the buffer cap, playback from the first segment, the first segment at the same
//! rung as every online rule, QoE_lin per segment), and the simulator then replays the plan
//! through the same session loop as every other rule, so the reported figures are the
//! simulator's, not the planner's.
//!
//! The state after segment `k` is (rung, buffer level, time, score). States are merged by
//! (rung, buffer level in [`BUFFER_STEP_S`] steps), keeping the best score (then the earliest
//! time): the plan is the best one found on that grid, a feasible schedule, so it is a lower
//! bound on the exact optimum.
//!
//! Outside the simulator (`cdn play`) there is no trace to plan over: an unplanned `optimal`
//! plays the lowest rung.

use super::mpc::{REBUF_PENALTY, SMOOTH_PENALTY};
use super::{Abr, AbrContext, Decision};
use crate::trace::Trace;
use crate::video::Video;

/// Buffer levels closer than this are merged in the search.
pub const BUFFER_STEP_S: f64 = 0.1;

/// Plays a given list of rungs (the lowest rung beyond it).
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    rungs: Vec<usize>,
}

impl Scripted {
    pub fn new(rungs: Vec<usize>) -> Self {
        Scripted { rungs }
    }
}

impl Abr for Scripted {
    fn name(&self) -> &'static str {
        "optimal"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        Decision::now(self.rungs.get(ctx.segment).copied().unwrap_or(0))
    }
}

/// Cumulative bits a looping trace carries, for finding when a transfer ends in O(log steps).
struct Carried {
    /// Step start times within one period, and the period at the end.
    times: Vec<f64>,
    /// Bits carried from the period's start to each of `times`.
    bits: Vec<f64>,
    rates: Vec<f64>,
    period: f64,
}

impl Carried {
    fn new(trace: &Trace, efficiency: f64) -> Self {
        let eff = efficiency.clamp(1e-6, 1.0);
        let (mut times, mut bits, mut rates) = (vec![0.0], vec![0.0], Vec::new());
        let (mut t, mut b) = (0.0, 0.0);
        for &(d, r) in &trace.steps {
            t += d;
            b += d * r * eff;
            times.push(t);
            bits.push(b);
            rates.push(r * eff);
        }
        Carried {
            times,
            bits,
            rates,
            period: t,
        }
    }

    /// Bits carried from time 0 to `t`.
    fn at(&self, t: f64) -> f64 {
        let total = *self.bits.last().unwrap_or(&0.0);
        let loops = (t / self.period).floor();
        let s = t - loops * self.period;
        let i = self.times.partition_point(|&x| x <= s).saturating_sub(1);
        let i = i.min(self.rates.len() - 1);
        loops * total + self.bits[i] + self.rates[i] * (s - self.times[i])
    }

    /// The earliest time by which `bits` have been carried since time 0.
    fn time_of(&self, bits: f64) -> f64 {
        let total = *self.bits.last().unwrap_or(&0.0);
        let mut loops = (bits / total).floor();
        let mut rest = bits - loops * total;
        if rest <= 0.0 && loops > 0.0 {
            loops -= 1.0;
            rest += total;
        }
        let j = self.bits.partition_point(|&b| b < rest).max(1);
        let i = j - 1;
        let dt = if self.rates[i] > 0.0 {
            (rest - self.bits[i]) / self.rates[i]
        } else {
            0.0
        };
        loops * self.period + self.times[i] + dt
    }

    /// When a transfer of `bits` whose first byte may move at `start` ends.
    fn end_of(&self, start: f64, bits: f64) -> f64 {
        if bits <= 0.0 {
            return start;
        }
        self.time_of(self.at(start) + bits).max(start)
    }
}

#[derive(Debug, Clone, Copy)]
struct State {
    rung: usize,
    buffer: f64,
    time: f64,
    score: f64,
    parent: u32,
}

/// The simulator's conventions the plan must follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conventions {
    pub rtt_s: f64,
    pub efficiency: f64,
    pub buffer_max_s: f64,
}

/// The best rung for every segment of `video` over `trace`, found by dynamic programming.
pub fn plan(trace: &Trace, video: &Video, conv: &Conventions) -> Vec<usize> {
    let n = video.num_segments;
    let rungs = video.rungs();
    if n == 0 || rungs == 0 {
        return Vec::new();
    }
    let carried = Carried::new(trace, conv.efficiency);
    let seg_s = video.segment_duration_s;
    let mbps: Vec<f64> = video.bitrates_bps.iter().map(|b| b / 1e6).collect();
    let cap = conv.buffer_max_s.max(0.0);
    let buckets = ((cap + seg_s) / BUFFER_STEP_S).ceil() as usize + 2;
    let mut layers: Vec<Vec<State>> = Vec::with_capacity(n);
    let mut grid: Vec<Option<State>> = vec![None; rungs * buckets];
    // The first segment at the rung every rule starts with (the startup delay is not priced,
    // so a free first choice would buy a top-rung first segment with a long startup); it is
    // requested at time 0 and playback starts when it arrives.
    let r = super::start_rung(video);
    let end = carried.end_of(conv.rtt_s, video.size(0, r) as f64 * 8.0);
    layers.push(vec![State {
        rung: r,
        buffer: seg_s,
        time: end,
        score: mbps[r],
        parent: 0,
    }]);
    for k in 1..n {
        grid.iter_mut().for_each(|g| *g = None);
        let prev = &layers[k - 1];
        for (pi, s) in prev.iter().enumerate() {
            let wait = (s.buffer - cap).max(0.0);
            let t0 = s.time + wait;
            let b0 = s.buffer - wait;
            for r in 0..rungs {
                let end = carried.end_of(t0 + conv.rtt_s, video.size(k, r) as f64 * 8.0);
                let dt = end - t0;
                let stall = (dt - b0).max(0.0);
                let buffer = (b0 - dt).max(0.0) + seg_s;
                let score = s.score + mbps[r]
                    - REBUF_PENALTY * stall
                    - SMOOTH_PENALTY * (mbps[r] - mbps[s.rung]).abs();
                let bucket = ((buffer / BUFFER_STEP_S) as usize).min(buckets - 1);
                let slot = &mut grid[r * buckets + bucket];
                let better = match slot {
                    None => true,
                    Some(o) => score > o.score || (score == o.score && end < o.time),
                };
                if better {
                    *slot = Some(State {
                        rung: r,
                        buffer,
                        time: end,
                        score,
                        parent: pi as u32,
                    });
                }
            }
        }
        layers.push(grid.iter().flatten().copied().collect());
    }
    let last = &layers[n - 1];
    let mut best = 0;
    for (i, s) in last.iter().enumerate() {
        if s.score > last[best].score {
            best = i;
        }
    }
    let mut out = vec![0; n];
    let mut i = best;
    for k in (0..n).rev() {
        let s = layers[k][i];
        out[k] = s.rung;
        i = s.parent as usize;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::testutil::pensieve_video;
    use crate::sim::{simulate, SimConfig};

    fn conv() -> Conventions {
        let c = SimConfig::default();
        Conventions {
            rtt_s: c.rtt_s,
            efficiency: c.efficiency,
            buffer_max_s: c.session.buffer.max_s,
        }
    }

    #[test]
    fn carried_bits_match_the_link() {
        let t = Trace::new("t", vec![(1.0, 8e6), (1.0, 0.0), (0.5, 2e6)]).unwrap();
        let c = Carried::new(&t, 1.0);
        assert_eq!(c.end_of(0.0, 8e6), 1.0);
        // From 0.5 s: 4 Mb to 1 s, nothing to 2 s, 1 Mb to 2.5 s, then the loop.
        assert!((c.end_of(0.5, 5e6) - 2.5).abs() < 1e-9);
        assert!((c.end_of(0.5, 6e6) - 2.625).abs() < 1e-9);
        assert!((c.end_of(1.2, 1e6) - 2.5).abs() < 1e-9);
        let mut link = crate::trace::Link::new(&t, 1.0);
        for (start, bytes) in [(0.1, 2_000_000u64), (3.0, 400_000), (9.7, 3_000_000)] {
            let want = match link.transfer(start, bytes, 0.0, &mut |_, _| true) {
                crate::trace::Transfer::Done { end_s } => end_s,
                other => panic!("{other:?}"),
            };
            assert!((c.end_of(start, bytes as f64 * 8.0) - want).abs() < 1e-9);
        }
    }

    #[test]
    fn the_plan_beats_every_online_rule_on_a_varying_link() {
        let trace = Trace::new(
            "steps",
            vec![(30.0, 3e6), (20.0, 0.5e6), (40.0, 6e6), (15.0, 0.2e6)],
        )
        .unwrap();
        let video = pensieve_video(48);
        let cfg = SimConfig::default();
        let mut oracle = Scripted::new(plan(&trace, &video, &conv()));
        let best = simulate(&trace, &video, &mut oracle, &cfg).unwrap();
        for name in crate::abr::NAMES {
            let mut abr = crate::abr::by_name(name).unwrap();
            let r = simulate(&trace, &video, abr.as_mut(), &cfg).unwrap();
            assert!(
                best.summary.qoe_lin > r.summary.qoe_lin,
                "{name}: {} vs optimal {}",
                r.summary.qoe_lin,
                best.summary.qoe_lin
            );
        }
    }

    #[test]
    fn on_a_constant_link_the_plan_climbs_and_spends_its_buffer_at_the_end() {
        // 2 Mb/s carries the 1850 kb/s rung; the plan never steps down (a switch costs), builds
        // buffer early and spends it on the last segments, where nothing is left to protect.
        let trace = Trace::constant("2M", 2e6, 1000.0).unwrap();
        let video = pensieve_video(48);
        let rungs = plan(&trace, &video, &conv());
        assert!(rungs.windows(2).all(|w| w[0] <= w[1]), "{rungs:?}");
        assert!(rungs[47] > 3 && rungs[20] <= 3, "{rungs:?}");
        let mut oracle = Scripted::new(rungs.clone());
        let r = simulate(&trace, &video, &mut oracle, &SimConfig::default()).unwrap();
        assert_eq!(r.summary.rebuffer_s, 0.0, "{rungs:?}");
    }
}
