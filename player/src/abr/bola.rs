//! BOLA (Spiteri, Urgaonkar, Sitaraman, INFOCOM 2016) in the form dash.js ships it: a Lyapunov
//! score over log utilities picks the rung from the buffer level alone. BOLA-E (MMSys 2018) adds
//! a placeholder buffer (virtual seconds that let BOLA start at the throughput rung and keep its
//! rung across fetch pauses), an insufficient-buffer cap and abandonment.

use super::{abandonment_rule, start_rung, Abr, AbrContext, Decision, Download, Progress};
use crate::estimator::{Estimator, Ewma};
use crate::video::Video;

/// dash.js: BOLA's buffer target grows by 2 s per rung above a 10-s minimum.
const MINIMUM_BUFFER_S: f64 = 10.0;
const MINIMUM_BUFFER_PER_LEVEL_S: f64 = 2.0;

#[derive(Debug, Clone)]
struct Params {
    utilities: Vec<f64>,
    gp: f64,
    vp: f64,
}

impl Params {
    fn new(video: &Video, stable_buffer_s: f64) -> Self {
        let b0 = video.bitrates_bps[0];
        let utilities: Vec<f64> = video
            .bitrates_bps
            .iter()
            .map(|b| (b / b0).ln() + 1.0)
            .collect();
        let target = stable_buffer_s
            .max(MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_LEVEL_S * video.rungs() as f64);
        let top_u = utilities.last().copied().unwrap_or(1.0);
        let gp = ((top_u - 1.0) / (target / MINIMUM_BUFFER_S - 1.0)).max(1e-6);
        Params {
            utilities,
            gp,
            vp: MINIMUM_BUFFER_S / gp,
        }
    }

    fn rung_for_buffer(&self, video: &Video, buffer_s: f64) -> usize {
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (i, (&u, &b)) in self.utilities.iter().zip(&video.bitrates_bps).enumerate() {
            let score = (self.vp * (u + self.gp) - buffer_s) / b;
            if score >= best_score {
                best_score = score;
                best = i;
            }
        }
        best
    }

    /// Buffer level above which BOLA would pick a rung higher than `q`... below which lower.
    fn min_buffer_for(&self, video: &Video, q: usize) -> f64 {
        let (qb, qu) = (video.bitrates_bps[q], self.utilities[q]);
        let mut min = 0.0f64;
        for i in (0..q).rev() {
            let (ib, iu) = (video.bitrates_bps[i], self.utilities[i]);
            if iu < qu && ib < qb {
                let level = self.vp * (self.gp + (qb * iu - ib * qu) / (qb - ib));
                min = min.max(level);
            }
        }
        min
    }

    /// Buffer level above which BOLA would rather wait than fetch `q`.
    fn max_buffer_for(&self, q: usize) -> f64 {
        self.vp * (self.utilities[q] + self.gp)
    }
}

#[derive(Debug, Clone)]
pub struct Bola {
    enhanced: bool,
    safety: f64,
    stable_buffer_s: f64,
    estimator: Ewma,
    placeholder_s: f64,
    steady: bool,
    params: Option<Params>,
    last_end_s: Option<f64>,
}

impl Bola {
    fn new(enhanced: bool) -> Self {
        Bola {
            enhanced,
            safety: 0.9,
            stable_buffer_s: 18.0,
            estimator: Ewma::dash_js(),
            placeholder_s: 0.0,
            steady: false,
            params: None,
            last_end_s: None,
        }
    }

    /// Plain BOLA: the score alone, from the first segment.
    pub fn basic() -> Self {
        Self::new(false)
    }

    /// BOLA-E: placeholder buffer, throughput-based start, insufficient-buffer cap, abandonment.
    pub fn enhanced() -> Self {
        Self::new(true)
    }

    /// The buffer level at which BOLA's choice is steady (dash.js's BOLA target).
    pub fn target_buffer_s(&mut self, video: &Video) -> f64 {
        let p = self.params(video);
        p.max_buffer_for(video.top())
    }

    fn params(&mut self, video: &Video) -> &Params {
        let stable = self.stable_buffer_s;
        self.params
            .get_or_insert_with(|| Params::new(video, stable))
    }
}

impl Abr for Bola {
    fn name(&self) -> &'static str {
        if self.enhanced {
            "bola-e"
        } else {
            "bola"
        }
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        let video = ctx.video;
        let estimate = self.estimator.estimate_bps();
        let q_tput = estimate
            .map(|e| video.rung_for(e * self.safety))
            .unwrap_or_else(|| start_rung(video));
        let enhanced = self.enhanced;
        if enhanced {
            if let Some(end) = self.last_end_s {
                // Time spent not fetching (buffer-full pauses) becomes placeholder buffer.
                if self.steady {
                    self.placeholder_s += (ctx.now_s - end).max(0.0);
                }
            }
            if !ctx.playing && !ctx.history.is_empty() {
                // A stall: start over from the throughput rung.
                self.steady = false;
                self.placeholder_s = 0.0;
            }
        }
        let stable = self.stable_buffer_s;
        let p = self
            .params
            .take()
            .unwrap_or_else(|| Params::new(video, stable));
        if enhanced && !self.steady {
            let q = q_tput;
            self.placeholder_s = (p.min_buffer_for(video, q) - ctx.buffer_s).max(0.0);
            if ctx.buffer_s >= video.segment_duration_s {
                self.steady = true;
            }
            self.params = Some(p);
            return Decision::now(q);
        }
        let level = ctx.buffer_s + self.placeholder_s;
        let mut q = p.rung_for_buffer(video, level);
        if enhanced {
            if let Some(last) = ctx.last_rung {
                if q > last && q > q_tput {
                    q = q_tput.max(last);
                }
            }
            if let (Some(e), true) = (estimate, ctx.playing) {
                let cap = video.rung_for(e * 0.5 * ctx.buffer_s / video.segment_duration_s);
                q = q.min(cap);
            }
        }
        let mut delay = (level - p.max_buffer_for(q)).max(0.0);
        self.params = Some(p);
        if enhanced {
            if delay <= self.placeholder_s {
                self.placeholder_s -= delay;
                delay = 0.0;
            } else {
                delay -= self.placeholder_s;
                self.placeholder_s = 0.0;
            }
        }
        Decision {
            rung: q,
            delay_s: delay,
        }
    }

    fn on_download(&mut self, d: &Download) {
        self.estimator.add(d.sample());
        self.last_end_s = Some(d.end_s);
    }

    fn estimate_bps(&self) -> Option<f64> {
        self.estimator.estimate_bps()
    }

    fn abandon(&mut self, ctx: &AbrContext, p: &Progress) -> Option<usize> {
        if self.enhanced {
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

    #[test]
    fn score_climbs_with_buffer() {
        let v = pensieve_video(10);
        let p = Params::new(&v, 18.0);
        assert_eq!(p.rung_for_buffer(&v, 0.0), 0);
        let target = p.max_buffer_for(v.top());
        // dash.js for 6 rungs: buffer time max(18, 10 + 2 x 6) = 22 s, gp = (u_top - 1) / 1.2,
        // so the top rung is fetched up to Vp (u_top + gp) = 10 u_top / gp + 10 seconds.
        let u_top = (4300.0f64 / 300.0).ln() + 1.0;
        let expect = 10.0 * u_top / ((u_top - 1.0) / 1.2) + 10.0;
        assert!((target - expect).abs() < 1e-9, "{target} vs {expect}");
        assert!(p.min_buffer_for(&v, v.top()) < 22.0);
        let mut last = 0;
        for i in 0..250 {
            let r = p.rung_for_buffer(&v, i as f64 * 0.1);
            assert!(r >= last, "not monotone at {}", i as f64 * 0.1);
            last = r;
        }
        assert_eq!(last, v.top());
        // min_buffer_for is where the choice switches up to that rung.
        for q in 1..v.rungs() {
            let m = p.min_buffer_for(&v, q);
            assert!(p.rung_for_buffer(&v, m + 1e-6) >= q);
            assert!(p.rung_for_buffer(&v, m - 1e-3) < q);
        }
    }

    #[test]
    fn basic_waits_above_target() {
        let v = pensieve_video(10);
        let mut b = Bola::basic();
        let ctx = AbrContext {
            video: &v,
            segment: 5,
            now_s: 100.0,
            buffer_s: 30.0,
            buffer_max_s: 60.0,
            last_rung: Some(5),
            playing: true,
            history: &[],
        };
        let d = b.choose(&ctx);
        assert_eq!(d.rung, 5);
        let p = Params::new(&v, 18.0);
        assert!(
            (d.delay_s - (30.0 - p.max_buffer_for(5))).abs() < 1e-9,
            "{d:?}"
        );
        assert!(d.delay_s > 3.0);
    }
}
