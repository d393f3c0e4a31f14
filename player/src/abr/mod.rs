//! Adaptive bitrate algorithms behind one trait. An [`Abr`] sees the video (ladder and segment
//! sizes), the buffer level and the past downloads, and picks the rung of the next segment; it
//! may also abandon a download in flight. Pure: no clock, no I/O.

mod bba;
mod bola;
mod dynamic;
mod hybrid;
mod lowlat;
pub mod mpc;
pub mod optimal;
mod throughput;
pub mod train;
pub mod tuning;

pub use bba::Bba;
pub use bola::Bola;
pub use dynamic::Dynamic;
pub use hybrid::Hybrid;
pub use lowlat::{LowLatencyRule, LowLatencyTuning};
pub use mpc::RobustMpc;
pub use throughput::ThroughputRule;

use anyhow::{bail, Result};

use crate::estimator::{Burst, Sample};
use crate::video::Video;

/// One finished (or abandoned) segment download.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Download {
    pub segment: usize,
    pub rung: usize,
    /// Bytes received.
    pub bytes: u64,
    /// From request to last byte, seconds (request latency included).
    pub duration_s: f64,
    /// Time the download ended.
    pub end_s: f64,
    pub abandoned: bool,
}

impl Download {
    pub fn sample(&self) -> Sample {
        Sample::new(self.bytes, self.duration_s)
    }

    pub fn bps(&self) -> Option<f64> {
        self.sample().bps()
    }
}

/// What an ABR sees when it decides.
#[derive(Debug, Clone, Copy)]
pub struct AbrContext<'a> {
    pub video: &'a Video,
    /// Index of the segment about to be fetched.
    pub segment: usize,
    pub now_s: f64,
    /// Seconds of media buffered.
    pub buffer_s: f64,
    /// Fetching pauses above this level.
    pub buffer_max_s: f64,
    /// Rung of the previous segment.
    pub last_rung: Option<usize>,
    /// Playback has started and is not stalled.
    pub playing: bool,
    /// Every download so far, oldest first.
    pub history: &'a [Download],
}

/// The state of a download in flight, for abandonment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub rung: usize,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub elapsed_s: f64,
    /// Buffer level now (it drains while the download runs).
    pub buffer_s: f64,
}

/// The choice for the next segment: a rung, and how long to wait before requesting it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub rung: usize,
    pub delay_s: f64,
}

impl Decision {
    pub fn now(rung: usize) -> Self {
        Decision { rung, delay_s: 0.0 }
    }
}

/// An adaptive bitrate algorithm.
pub trait Abr: Send {
    fn name(&self) -> &'static str;
    /// Picks the rung of `ctx.segment`.
    fn choose(&mut self, ctx: &AbrContext) -> Decision;
    /// Learns from a finished or abandoned download.
    fn on_download(&mut self, _download: &Download) {}
    /// Learns from one chunk of a low-latency download as it completes (its burst: the bytes
    /// over their time on the wire, see [`crate::estimator::Burst`]).
    fn on_chunk(&mut self, _burst: &Burst) {}
    /// The algorithm's current throughput estimate, bits per second (for reports).
    fn estimate_bps(&self) -> Option<f64> {
        None
    }
    /// Asked periodically during a download: `Some(rung)` abandons it and refetches the
    /// segment at that (lower) rung.
    fn abandon(&mut self, _ctx: &AbrContext, _progress: &Progress) -> Option<usize> {
        None
    }
}

/// The algorithms by name; [`DEFAULT`] is the one used when none is named.
pub const NAMES: &[&str] = &[
    "throughput",
    "bba",
    "bola",
    "bola-e",
    "mpc",
    "dynamic",
    "hybrid",
    "ll",
];

/// The offline optimum (dynamic programming over the known trace): not an online rule, so not
/// in [`NAMES`]; `cdn simulate --abr optimal` plans it per trace.
pub const OPTIMAL: &str = "optimal";

/// The default algorithm.
pub const DEFAULT: &str = "hybrid";

/// The default algorithm of a low-latency live session.
pub const DEFAULT_LOW_LATENCY: &str = "ll";

/// Builds an algorithm by name (`default` means [`DEFAULT`]).
pub fn by_name(name: &str) -> Result<Box<dyn Abr>> {
    Ok(match name {
        "throughput" => Box::new(ThroughputRule::default()),
        "bba" => Box::new(Bba::default()),
        "bola" => Box::new(Bola::basic()),
        "bola-e" => Box::new(Bola::enhanced()),
        "mpc" | "robust-mpc" => Box::new(RobustMpc::default()),
        "dynamic" => Box::new(Dynamic::default()),
        "hybrid" | "default" => Box::new(Hybrid::default()),
        "ll" | "low-latency" => Box::new(LowLatencyRule::default()),
        // Planned over the trace by the simulator (see `optimal`); unplanned elsewhere.
        OPTIMAL => Box::new(optimal::Scripted::default()),
        other => bail!("unknown ABR {other:?} (known: {})", NAMES.join(", ")),
    })
}

/// Rate used to pick the first segment when nothing has been measured (Pensieve starts at
/// 750 kb/s).
pub const START_BPS: f64 = 800_000.0;

/// The rung for the first segment.
pub fn start_rung(video: &Video) -> usize {
    video.rung_for(START_BPS)
}

/// The shared abandonment rule: once playing, a download whose remaining time at the rate
/// measured so far exceeds the buffer is abandoned for the highest lower rung that would
/// arrive within 80% of the buffer, or the lowest rung if that at least beats finishing.
pub fn abandonment_rule(ctx: &AbrContext, p: &Progress) -> Option<usize> {
    if !ctx.playing || p.rung == 0 || p.bytes_done == 0 || p.elapsed_s < 0.5 {
        return None;
    }
    let rate = p.bytes_done as f64 * 8.0 / p.elapsed_s;
    let remaining_s = p.bytes_total.saturating_sub(p.bytes_done) as f64 * 8.0 / rate;
    if remaining_s <= p.buffer_s {
        return None;
    }
    let fetch_s = |r: usize| ctx.video.size(ctx.segment, r) as f64 * 8.0 / rate;
    for r in (0..p.rung).rev() {
        let t = fetch_s(r);
        if t < 0.8 * p.buffer_s && t < remaining_s {
            return Some(r);
        }
    }
    (fetch_s(0) < remaining_s).then_some(0)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Drives an ABR against a constant or stepped link without the session, for unit tests.
    use super::*;

    /// Pensieve's ladder, 4-second segments, nominal sizes.
    pub fn pensieve_video(n: usize) -> Video {
        Video::nominal(
            "pensieve",
            vec![300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3],
            4.0,
            n,
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve() {
        for n in NAMES {
            assert_eq!(by_name(n).unwrap().name(), *n);
        }
        assert_eq!(by_name("default").unwrap().name(), DEFAULT);
        assert!(by_name("nope").is_err());
    }

    #[test]
    fn abandonment_picks_a_rung_that_fits() {
        let v = testutil::pensieve_video(10);
        let ctx = AbrContext {
            video: &v,
            segment: 3,
            now_s: 50.0,
            buffer_s: 6.0,
            buffer_max_s: 60.0,
            last_rung: Some(5),
            playing: true,
            history: &[],
        };
        // Top rung (2.15 MB) at 500 kb/s: 1 s elapsed, 62.5 kB in; 33 s to go with 6 s buffered.
        let p = Progress {
            rung: 5,
            bytes_total: v.size(3, 5),
            bytes_done: 62_500,
            elapsed_s: 1.0,
            buffer_s: 6.0,
        };
        // 300 kb/s x 4 s = 150 kB: 2.4 s at 500 kb/s < 4.8 s; 750 kb/s needs 6 s: too long.
        assert_eq!(abandonment_rule(&ctx, &p), Some(0));
        let fast = Progress {
            bytes_done: 1_000_000,
            ..p
        };
        assert_eq!(abandonment_rule(&ctx, &fast), None);
        let not_playing = AbrContext {
            playing: false,
            ..ctx
        };
        assert_eq!(abandonment_rule(&not_playing, &p), None);
    }
}
