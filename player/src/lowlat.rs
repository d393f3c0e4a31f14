//! Low-latency live: the knobs ([`LowLatency`]: target latency, chunk duration, playback-rate
//! bounds), the playback-rate rule that holds the latency ([`playback_rate`]), where a session
//! joins ([`join_point`]) and live-latency statistics. Pure functions of their inputs.
//!
//! Live latency is the server's time now minus the wall-clock time at which the media at the
//! playhead was live: availabilityStartTime + its media time (the `prft` boxes and
//! ProducerReferenceTime give the same mapping for a channel whose media time 0 is its
//! availabilityStartTime). A session knows it as a [`LiveTimeline`]: the session time at which
//! the start of its first segment was live, and how much of that segment it skipped to join.

use serde::Serialize;

/// The latency held when the MPD names none (its ServiceDescription), seconds.
pub const DEFAULT_TARGET_LATENCY_S: f64 = 1.5;

/// The widest playback-rate bounds used, whatever the MPD allows: faster or slower than this
/// is audible (pitch) and visible (motion).
pub const RATE_MIN: f64 = 0.9;
pub const RATE_MAX: f64 = 1.1;

/// How far under the target the rate rule aims: a latency held exactly at the target would sit
/// above it half of the time.
pub const AIM_UNDER_TARGET_S: f64 = 0.1;

/// Latency within this of the aim is left alone (no rate change for noise).
pub const DEAD_BAND_S: f64 = 0.05;

/// Rate change per second of latency off the aim (0.5: 0.2 s late plays at 1.1x).
pub const RATE_GAIN: f64 = 0.5;

/// How often live latency is sampled, seconds of session time.
pub const LATENCY_SAMPLE_S: f64 = 0.2;

/// How a low-latency session plays.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LowLatency {
    /// The latency to hold, seconds (ServiceDescription `Latency@target`, else
    /// [`DEFAULT_TARGET_LATENCY_S`]).
    pub target_latency_s: f64,
    /// Never aim under this (`Latency@min`), seconds.
    pub min_latency_s: f64,
    /// Duration of one CMAF chunk, seconds (segment duration minus availabilityTimeOffset).
    pub chunk_s: f64,
    /// Playback-rate bounds: the narrower of [`RATE_MIN`]..[`RATE_MAX`] and the MPD's
    /// `PlaybackRate`.
    pub rate_min: f64,
    pub rate_max: f64,
}

impl LowLatency {
    /// Knobs for a `target_s` latency with `chunk_s` chunks, default rate bounds.
    pub fn new(target_s: f64, chunk_s: f64) -> Self {
        LowLatency {
            target_latency_s: if target_s.is_finite() && target_s > 0.0 {
                target_s
            } else {
                DEFAULT_TARGET_LATENCY_S
            },
            min_latency_s: 0.0,
            chunk_s: if chunk_s.is_finite() && chunk_s > 0.0 {
                chunk_s
            } else {
                1.0
            },
            rate_min: RATE_MIN,
            rate_max: RATE_MAX,
        }
    }

    /// Narrows the rate bounds to the MPD's `PlaybackRate` (ignored where it would allow
    /// more, or where it is not a range around 1x).
    pub fn with_rate_bounds(mut self, min: Option<f64>, max: Option<f64>) -> Self {
        if let Some(m) = min.filter(|m| m.is_finite() && *m > 0.0 && *m <= 1.0) {
            self.rate_min = self.rate_min.max(m);
        }
        if let Some(m) = max.filter(|m| m.is_finite() && *m >= 1.0) {
            self.rate_max = self.rate_max.min(m);
        }
        self
    }

    /// The latency the rate rule aims at: a little under the target, never under the minimum
    /// nor under one chunk (a chunk must be produced before it can play).
    pub fn aim_s(&self) -> f64 {
        (self.target_latency_s - AIM_UNDER_TARGET_S)
            .max(self.min_latency_s)
            .max(self.chunk_s)
    }

    /// Below this much buffer the rule slows playback down: one chunk (what arrives next),
    /// between 0.25 and 1 s.
    pub fn low_buffer_s(&self) -> f64 {
        self.chunk_s.clamp(0.25, 1.0)
    }
}

/// The playback rate that holds the latency, given the live latency and the buffer now.
///
/// - A buffer under [`LowLatency::low_buffer_s`] slows playback down, down to `rate_min` at an
///   empty buffer (a stall costs more latency, and more QoE, than playing slowly).
/// - Otherwise latency off the aim by more than [`DEAD_BAND_S`] changes the rate by
///   [`RATE_GAIN`] per second off: faster when late (catching up spends buffer, so only while
///   the buffer stays above the low mark), slower when early.
/// - Always within `rate_min..=rate_max`.
pub fn playback_rate(ll: &LowLatency, latency_s: f64, buffer_s: f64) -> f64 {
    let low = ll.low_buffer_s();
    if !latency_s.is_finite() || !buffer_s.is_finite() {
        return 1.0;
    }
    if buffer_s < low {
        let r = 1.0 - (1.0 - ll.rate_min) * (1.0 - buffer_s.max(0.0) / low);
        return r.clamp(ll.rate_min, 1.0);
    }
    let off = latency_s - ll.aim_s();
    if off.abs() <= DEAD_BAND_S {
        return 1.0;
    }
    let mut r = 1.0 + RATE_GAIN * (off - DEAD_BAND_S * off.signum());
    if r > 1.0 {
        // Catching up must not take the buffer under the low mark before the next chunk.
        let spare = buffer_s - low;
        let cap = 1.0 + (spare / ll.chunk_s.max(0.1)).max(0.0);
        r = r.min(cap);
    }
    r.clamp(ll.rate_min, ll.rate_max)
}

/// Where a live session meets the media: the session time at which the start of its first
/// segment was live, and the seconds of that segment skipped to join (the playhead starts
/// there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveTimeline {
    pub origin_s: f64,
    pub skip_s: f64,
}

impl LiveTimeline {
    /// Latency at session time `now_s` with `played_s` of media played since the start.
    pub fn latency_s(&self, now_s: f64, played_s: f64) -> f64 {
        now_s - self.origin_s - self.skip_s - played_s
    }
}

/// The join of a low-latency session at live-edge media time `edge_s` (seconds from
/// availabilityStartTime) with `segment_s` segments, `latency_s` behind the edge: the index
/// (from 0) of the segment holding that point and the seconds into it.
pub fn join_point(edge_s: f64, latency_s: f64, segment_s: f64) -> (u64, f64) {
    let p = (edge_s - latency_s).max(0.0);
    let d = segment_s.max(0.01);
    let k = (p / d).floor();
    let skip = (p - k * d).clamp(0.0, d);
    (k as u64, skip)
}

/// Nearest-rank percentile of unsorted values (`None` when empty).
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll() -> LowLatency {
        LowLatency::new(1.5, 0.5)
    }

    #[test]
    fn the_mpd_can_only_narrow_the_rate_bounds() {
        let l = ll().with_rate_bounds(Some(0.95), Some(1.5));
        assert_eq!((l.rate_min, l.rate_max), (0.95, 1.1));
        let l = ll().with_rate_bounds(Some(0.5), Some(1.04));
        assert_eq!((l.rate_min, l.rate_max), (0.9, 1.04));
        let l = ll().with_rate_bounds(Some(1.2), Some(0.8));
        assert_eq!((l.rate_min, l.rate_max), (0.9, 1.1));
        let l = ll().with_rate_bounds(Some(f64::NAN), None);
        assert_eq!(l.rate_min, 0.9);
        assert_eq!(LowLatency::new(-1.0, 0.0).target_latency_s, 1.5);
    }

    #[test]
    fn the_rate_rule_slows_down_on_a_thin_buffer_and_catches_up_when_late() {
        let l = ll();
        assert!((l.aim_s() - 1.4).abs() < 1e-12);
        // On target with a healthy buffer: 1x.
        assert_eq!(playback_rate(&l, 1.42, 1.0), 1.0);
        // Late by 0.3 s beyond the band: faster, within the bound.
        let r = playback_rate(&l, 1.75, 1.2);
        assert!((r - 1.1).abs() < 1e-12, "{r}");
        assert!((playback_rate(&l, 1.55, 1.2) - 1.05).abs() < 1e-12);
        // Late but the buffer is thin: no catching up; empty: the slowest.
        assert!(playback_rate(&l, 3.0, 0.4) < 1.0);
        assert_eq!(playback_rate(&l, 3.0, 0.0), 0.9);
        // Late with barely more than the low mark: catching up is capped.
        let r = playback_rate(&l, 3.0, 0.52);
        assert!(r > 1.0 && r < 1.05, "{r}");
        // Early: slower.
        assert!((playback_rate(&l, 1.15, 1.0) - 0.9).abs() < 1e-12);
        assert_eq!(playback_rate(&l, f64::NAN, 1.0), 1.0);
        // Tighter MPD bounds hold.
        let tight = l.with_rate_bounds(Some(0.97), Some(1.03));
        assert_eq!(playback_rate(&tight, 5.0, 5.0), 1.03);
        assert_eq!(playback_rate(&tight, 1.4, 0.0), 0.97);
    }

    #[test]
    fn joins_inside_the_segment_holding_the_target_point() {
        // Edge at 21.3 s, 1.5 s behind: 19.8 s, in segment 9 (18..20 s), 1.8 s in.
        let (k, skip) = join_point(21.3, 1.5, 2.0);
        assert_eq!(k, 9);
        assert!((skip - 1.8).abs() < 1e-9);
        assert_eq!(join_point(0.5, 1.5, 2.0), (0, 0.0));
        let t = LiveTimeline {
            origin_s: -3.3,
            skip_s: 1.8,
        };
        // At session time 0 nothing played: 1.5 s behind; 1 s later with 0.9 s played: 1.6 s.
        assert!((t.latency_s(0.0, 0.0) - 1.5).abs() < 1e-9);
        assert!((t.latency_s(1.0, 0.9) - 1.6).abs() < 1e-9);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[f64::NAN, 2.0], 50.0), Some(2.0));
    }
}
