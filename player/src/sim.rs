//! Trace-driven simulation: a virtual clock and a transport that moves each segment through a
//! looping [`Trace`] after a fixed request latency (Pensieve's conventions: 80 ms per request,
//! 60-s buffer cap). Deterministic; sessions run in parallel on all cores. With
//! [`SimConfig::audio_bps`], an audio track of that rate is fetched beside the video over the
//! same link (the A/V model of [`crate::session`]).
//!
//! With [`SessionConfig::low_latency`] set, the trace plays a low-latency live channel: segment
//! `k` of the session is produced on a clock, chunk `i` (of `c` seconds) out at the segment's
//! start plus `(i + 1) c`; a segment is requestable once its first chunk is out, and each chunk
//! moves over the link once it is out and the link is free (production and the trace both
//! limit the download), the audio's chunk after the video's. The session joins
//! [`LowLatency::aim_s`] behind the live edge, [`LL_JOIN_PHASE`] of a segment into it.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};

use anyhow::{bail, Result};

use crate::abr::Abr;
use crate::cmaf::ChunkDone;
use crate::estimator::Burst;
use crate::lowlat::{self, LiveTimeline, LowLatency};
use crate::report::SessionReport;
use crate::session::{
    self, ChunkEvent, ChunkedFetch, Clock, Companion, Fetched, OnChunk, Request, SessionConfig,
    Transport, Watch,
};
use crate::trace::{Link, Trace, Transfer};
use crate::video::Video;

/// Simulation knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Added to every request before the first byte moves.
    pub rtt_s: f64,
    /// Share of the trace rate that carries payload (1.0: the trace rate; Pensieve uses 0.95).
    pub efficiency: f64,
    /// How often (transfer time) a download in flight is offered for abandonment.
    pub check_every_s: f64,
    /// An audio track of this rate beside the video (one segment per video segment, of the
    /// same duration, over the same link); `None`: video only.
    pub audio_bps: Option<f64>,
    pub session: SessionConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            rtt_s: 0.08,
            efficiency: 1.0,
            check_every_s: 0.25,
            audio_bps: None,
            session: SessionConfig::default(),
        }
    }
}

/// Virtual time: sleeping returns at once and moves the clock.
#[derive(Debug, Default)]
pub struct SimClock {
    now: Cell<f64>,
}

impl SimClock {
    pub fn set(&self, t: f64) {
        self.now.set(t);
    }
}

impl Clock for SimClock {
    fn now(&self) -> f64 {
        self.now.get()
    }

    fn sleep(&self, secs: f64) -> impl Future<Output = ()> {
        if secs > 0.0 {
            self.now.set(self.now.get() + secs);
        }
        std::future::ready(())
    }
}

/// Where the live edge is in its segment when a simulated low-latency session joins, as a
/// share of the segment duration.
pub const LL_JOIN_PHASE: f64 = 0.3;

/// A simulated low-latency channel: the session clock's time at which the start of the
/// session's first segment was produced, and the chunking.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SimLive {
    timeline: LiveTimeline,
    segment_s: f64,
    chunk_s: f64,
}

impl SimLive {
    /// The channel a session starting at time 0 joins with `ll`, `segment_s` segments.
    fn join(ll: &LowLatency, segment_s: f64) -> SimLive {
        let d = segment_s.max(0.01);
        // The live edge at time 0: some whole segments in, plus the phase.
        let edge = 10.0 * d + LL_JOIN_PHASE * d;
        let (k0, skip) = lowlat::join_point(edge, ll.aim_s(), d);
        SimLive {
            timeline: LiveTimeline {
                origin_s: k0 as f64 * d - edge,
                skip_s: skip,
            },
            segment_s: d,
            chunk_s: ll.chunk_s.clamp(0.01, d),
        }
    }

    /// The media seconds of each chunk of a segment.
    fn chunks(&self) -> Vec<f64> {
        let n = ((self.segment_s / self.chunk_s) - 1e-9).ceil().max(1.0) as usize;
        (0..n)
            .map(|i| {
                let start = i as f64 * self.chunk_s;
                (self.segment_s - start).min(self.chunk_s)
            })
            .collect()
    }

    /// When chunk `i` of the session's segment `segment` is out.
    fn chunk_out(&self, segment: usize, i: usize) -> f64 {
        let seg_start = self.timeline.origin_s + segment as f64 * self.segment_s;
        (seg_start + (i + 1) as f64 * self.chunk_s).min(seg_start + self.segment_s)
    }
}

/// A link over a trace sharing the session's virtual clock.
pub struct SimTransport<'a> {
    link: Link<&'a Trace>,
    clock: &'a SimClock,
    rtt_s: f64,
    check_every_s: f64,
    audio: Option<Companion>,
    live: Option<SimLive>,
}

impl<'a> SimTransport<'a> {
    pub fn new(trace: &'a Trace, clock: &'a SimClock, cfg: &SimConfig) -> Self {
        SimTransport {
            link: Link::new(trace, cfg.efficiency),
            clock,
            rtt_s: cfg.rtt_s.max(0.0),
            check_every_s: cfg.check_every_s,
            audio: None,
            live: None,
        }
    }

    /// Plays a low-latency live channel of `segment_s` segments (see the module doc).
    pub fn low_latency(mut self, ll: &LowLatency, segment_s: f64) -> Self {
        self.live = Some(SimLive::join(ll, segment_s));
        self
    }

    /// Moves `bytes` produced at `out_s` once the link is free at `free_s`; (start, end).
    fn move_chunk(&mut self, free_s: f64, out_s: f64, bytes: u64) -> (f64, f64) {
        let start = free_s.max(out_s + self.rtt_s / 2.0);
        let end = match self.link.transfer(start, bytes, 0.0, &mut |_, _| true) {
            Transfer::Done { end_s } => end_s,
            Transfer::Stopped { at_s, .. } => at_s,
        };
        (start, end)
    }

    /// Plays an audio track of `bps` beside `video`: one segment per video segment.
    pub fn with_audio(mut self, bps: f64, video: &Video) -> Self {
        self.audio = Some(Companion {
            id: "audio".into(),
            bandwidth_bps: bps.max(0.0) as u64,
            durations_s: vec![video.segment_duration_s; video.num_segments],
        });
        self
    }
}

impl Transport for SimTransport<'_> {
    fn fetch(
        &mut self,
        req: Request,
        watch: &mut Watch<'_>,
    ) -> impl Future<Output = Result<Fetched>> {
        let start = self.clock.now();
        let total = req.expected_bytes;
        let rtt = self.rtt_s;
        let out = self.link.transfer(
            start + rtt,
            total,
            self.check_every_s,
            &mut |done, elapsed| watch(done, total, elapsed + rtt),
        );
        let fetched = match out {
            Transfer::Done { end_s } => {
                self.clock.set(end_s);
                Fetched {
                    bytes: total,
                    complete: true,
                    edge: None,
                }
            }
            Transfer::Stopped { at_s, bytes_done } => {
                self.clock.set(at_s);
                Fetched {
                    bytes: bytes_done,
                    complete: false,
                    edge: None,
                }
            }
        };
        std::future::ready(Ok(fetched))
    }

    fn companion(&self) -> Option<Companion> {
        self.audio.clone()
    }

    fn available_at(&self, segment: usize) -> Option<f64> {
        self.live.map(|l| l.chunk_out(segment, 0))
    }

    fn companion_available_at(&self, index: usize) -> Option<f64> {
        self.live.map(|l| l.chunk_out(index, 0))
    }

    fn live_timeline(&self) -> Option<LiveTimeline> {
        self.live.map(|l| l.timeline)
    }

    fn fetch_chunked(
        &mut self,
        req: Request,
        companion: Option<usize>,
        on_chunk: &mut OnChunk<'_>,
    ) -> impl Future<Output = Result<ChunkedFetch>> {
        let Some(live) = self.live else {
            return std::future::ready(Err(anyhow::anyhow!(
                "chunked fetches need a low-latency channel"
            )));
        };
        let chunks = live.chunks();
        let audio_bytes_per_s = match (&self.audio, companion) {
            (Some(a), Some(_)) => Some(a.bandwidth_bps as f64 / 8.0),
            _ => None,
        };
        let mut free = self.clock.now() + self.rtt_s;
        let (mut video_done, mut audio_done) = (0u64, 0u64);
        let mut media_done = 0.0;
        for (i, &media_s) in chunks.iter().enumerate() {
            media_done += media_s;
            // Equal shares of the segment per second of media; the last takes the rest.
            let upto = if i + 1 == chunks.len() {
                req.expected_bytes
            } else {
                (req.expected_bytes as f64 * media_done / live.segment_s).round() as u64
            };
            let bytes = upto.saturating_sub(video_done);
            video_done = upto;
            let out = live.chunk_out(req.segment, i);
            let (start, end) = self.move_chunk(free, out, bytes);
            free = end;
            on_chunk(moved(false, media_s, bytes, start, end));
            if let (Some(bps), Some(index)) = (audio_bytes_per_s, companion) {
                let bytes = (bps * media_s).round() as u64;
                audio_done += bytes;
                let (start, end) = self.move_chunk(free, live.chunk_out(index, i), bytes);
                free = end;
                on_chunk(moved(true, media_s, bytes, start, end));
            }
        }
        self.clock.set(free);
        std::future::ready(Ok(ChunkedFetch {
            video: Fetched {
                bytes: req.expected_bytes,
                complete: true,
                edge: None,
            },
            companion: audio_bytes_per_s.map(|_| {
                Ok(Fetched {
                    bytes: audio_done,
                    complete: true,
                    edge: None,
                })
            }),
        }))
    }

    fn fetch_companion(&mut self, index: usize) -> impl Future<Output = Result<Fetched>> {
        let Some(audio) = &self.audio else {
            return std::future::ready(Err(anyhow::anyhow!("no audio track")));
        };
        let seconds = audio.durations_s.get(index).copied().unwrap_or(0.0);
        let bytes = (audio.bandwidth_bps as f64 * seconds / 8.0).round() as u64;
        let start = self.clock.now();
        let out = self
            .link
            .transfer(start + self.rtt_s, bytes, 0.0, &mut |_, _| true);
        let end_s = match out {
            Transfer::Done { end_s } => end_s,
            Transfer::Stopped { at_s, .. } => at_s,
        };
        self.clock.set(end_s);
        std::future::ready(Ok(Fetched {
            bytes,
            complete: true,
            edge: None,
        }))
    }
}

/// Drives a future that never waits (the simulation's) to completion.
pub fn run_ready<F: Future>(f: F) -> Result<F::Output> {
    let mut f = pin!(f);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => bail!("a simulated session tried to wait on real I/O"),
    }
}

/// Plays `video` over `trace` with `abr`.
pub fn simulate(
    trace: &Trace,
    video: &Video,
    abr: &mut dyn Abr,
    cfg: &SimConfig,
) -> Result<SessionReport> {
    let clock = SimClock::default();
    let mut transport = SimTransport::new(trace, &clock, cfg);
    if let Some(bps) = cfg.audio_bps {
        transport = transport.with_audio(bps, video);
    }
    if let Some(ll) = &cfg.session.low_latency {
        transport = transport.low_latency(ll, video.segment_duration_s);
    }
    let mut report = run_ready(session::run(
        video,
        abr,
        &mut transport,
        &clock,
        &cfg.session,
    ))?;
    report.trace = Some(trace.name.clone());
    Ok(report)
}

/// The algorithm `name` for a session over `trace`: the offline optimum is planned over it.
pub fn build(name: &str, trace: &Trace, video: &Video, cfg: &SimConfig) -> Result<Box<dyn Abr>> {
    if name == crate::abr::OPTIMAL {
        let conv = crate::abr::optimal::Conventions {
            rtt_s: cfg.rtt_s,
            efficiency: cfg.efficiency,
            buffer_max_s: cfg.session.buffer.max_s,
        };
        let rungs = crate::abr::optimal::plan(trace, video, &conv);
        return Ok(Box::new(crate::abr::optimal::Scripted::new(rungs)));
    }
    crate::abr::by_name(name)
}

/// Runs every (trace, algorithm) pair on `threads` threads; results are ordered by algorithm,
/// then trace, whatever the scheduling.
pub fn simulate_many(
    traces: &[Trace],
    video: &Video,
    abrs: &[&str],
    cfg: &SimConfig,
    threads: usize,
) -> Result<Vec<Vec<SessionReport>>> {
    for a in abrs {
        crate::abr::by_name(a)?;
    }
    let jobs = traces.len() * abrs.len();
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, jobs.max(1));
    let mut results: Vec<Option<Result<SessionReport>>> = (0..jobs).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        if j >= jobs {
                            break;
                        }
                        let (a, t) = (j / traces.len(), j % traces.len());
                        let r = build(abrs[a], &traces[t], video, cfg)
                            .and_then(|mut abr| simulate(&traces[t], video, abr.as_mut(), cfg));
                        out.push((j, r));
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(out) => {
                    for (j, r) in out {
                        results[j] = Some(r);
                    }
                }
                Err(_) => {
                    results.push(Some(Err(anyhow::anyhow!("a simulation thread panicked"))));
                }
            }
        }
    });
    let mut by_abr: Vec<Vec<SessionReport>> = (0..abrs.len()).map(|_| Vec::new()).collect();
    for (j, r) in results.into_iter().enumerate() {
        let Some(r) = r else {
            bail!("simulation job {j} did not run");
        };
        if j < jobs {
            by_abr[j / traces.len()].push(r?);
        } else {
            r?;
        }
    }
    Ok(by_abr)
}

/// A chunk of `bytes` holding `media_s` seconds that moved over the link from `start` to `end`.
fn moved(companion: bool, media_s: f64, bytes: u64, start: f64, end: f64) -> ChunkEvent {
    ChunkEvent {
        companion,
        chunk: ChunkDone {
            media_s,
            bytes,
            burst: Burst {
                bytes,
                duration_s: end - start,
            },
            at_s: end,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abr::{by_name, NAMES};

    fn pensieve_ladder(n: usize) -> Video {
        Video::nominal(
            "ladder",
            vec![300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3],
            4.0,
            n,
        )
        .unwrap()
    }

    #[test]
    fn constant_10_mbps_reaches_the_top_and_stays() {
        let trace = Trace::constant("10M", 10e6, 1000.0).unwrap();
        let video = pensieve_ladder(48);
        for name in NAMES {
            let mut abr = by_name(name).unwrap();
            let r = simulate(&trace, &video, abr.as_mut(), &SimConfig::default()).unwrap();
            let rungs: Vec<usize> = r.segments.iter().map(|s| s.rung).collect();
            let first_top = rungs
                .iter()
                .position(|&q| q == 5)
                .unwrap_or_else(|| panic!("{name} never reaches the top: {rungs:?}"));
            assert!(first_top <= 12, "{name} reaches the top late: {rungs:?}");
            assert!(
                rungs[first_top..].iter().all(|&q| q == 5),
                "{name} leaves the top: {rungs:?}"
            );
            assert_eq!(r.summary.rebuffer_s, 0.0, "{name} stalls");
        }
    }

    #[test]
    fn drop_to_500_kbps_reaches_the_lowest_rung_before_the_buffer_empties() {
        // 10 Mb/s for 40 s, then 500 kb/s for good.
        let trace = Trace::new("drop", vec![(40.0, 10e6), (1e6, 500e3)]).unwrap();
        let video = pensieve_ladder(48);
        for name in NAMES.iter().filter(|n| **n != "bba" && **n != "bola") {
            let mut abr = by_name(name).unwrap();
            let r = simulate(&trace, &video, abr.as_mut(), &SimConfig::default()).unwrap();
            let rungs: Vec<usize> = r.segments.iter().map(|s| s.rung).collect();
            assert_eq!(r.summary.rebuffer_s, 0.0, "{name} stalls: {rungs:?}");
            let climbed = rungs
                .iter()
                .position(|&q| q == 5)
                .unwrap_or_else(|| panic!("{name} never climbed: {rungs:?}"));
            let lowest = rungs[climbed..]
                .iter()
                .position(|&q| q == 0)
                .map(|i| i + climbed)
                .unwrap_or_else(|| panic!("{name} never reaches the lowest rung: {rungs:?}"));
            assert!(
                r.segments[lowest].buffer_s > 0.0
                    && r.segments[..=lowest].iter().all(|s| s.rebuffer_s == 0.0),
                "{name} emptied the buffer first: {rungs:?}"
            );
        }
    }

    #[test]
    fn bba_and_bola_without_abandonment_ride_the_buffer_down() {
        // Pure buffer-based rules keep the top rung while the buffer is deep; with a shallower
        // drop (to 2 Mb/s) they step down to a sustainable rung without stalling.
        let trace = Trace::new("drop", vec![(40.0, 10e6), (1e6, 2e6)]).unwrap();
        let video = pensieve_ladder(48);
        for name in ["bba", "bola"] {
            let mut abr = by_name(name).unwrap();
            let r = simulate(&trace, &video, abr.as_mut(), &SimConfig::default()).unwrap();
            let rungs: Vec<usize> = r.segments.iter().map(|s| s.rung).collect();
            assert_eq!(r.summary.rebuffer_s, 0.0, "{name} stalls: {rungs:?}");
            assert!(rungs[40..].iter().all(|&q| q < 5), "{name}: {rungs:?}");
        }
    }

    #[test]
    fn hybrid_climbs_back_two_segments_after_the_network_recovers() {
        // Two minutes at 8 Mb/s, one at 400 kb/s (the lowest rung still fits, so no outage),
        // repeated. After each rise robustMPC keeps the slow samples and the drop's error for 5
        // downloads; the hybrid's predictor sees the level shift after 2.
        let trace = Trace::new("square", vec![(120.0, 8e6), (60.0, 400e3)]).unwrap();
        let video = pensieve_ladder(100);
        let low_after_rise = |name: &str| {
            let mut abr = by_name(name).unwrap();
            let r = simulate(&trace, &video, abr.as_mut(), &SimConfig::default()).unwrap();
            assert_eq!(r.summary.rebuffer_s, 0.0, "{name} stalls");
            let after: Vec<usize> = r
                .segments
                .iter()
                .filter(|s| (180.0..200.0).contains(&s.start_s))
                .map(|s| s.rung)
                .collect();
            after
                .iter()
                .position(|&q| q == 5)
                .unwrap_or_else(|| panic!("{name} does not climb back: {after:?}"))
        };
        assert!(low_after_rise("hybrid") <= 2);
        assert!(low_after_rise("mpc") >= 4);
    }

    #[test]
    fn deterministic_and_parallel_results_match_serial() {
        let traces: Vec<Trace> = (1..6)
            .map(|i| {
                Trace::new(format!("t{i}"), vec![(3.0, i as f64 * 1e6), (2.0, 0.4e6)]).unwrap()
            })
            .collect();
        let video = pensieve_ladder(20);
        let cfg = SimConfig::default();
        let par = simulate_many(&traces, &video, &["bola-e", "hybrid"], &cfg, 3).unwrap();
        for (ai, name) in ["bola-e", "hybrid"].iter().enumerate() {
            for (ti, t) in traces.iter().enumerate() {
                let mut abr = by_name(name).unwrap();
                let serial = simulate(t, &video, abr.as_mut(), &cfg).unwrap();
                assert_eq!(serial, par[ai][ti]);
            }
        }
    }

    #[test]
    fn rtt_is_added_per_request() {
        let trace = Trace::constant("8M", 8e6, 100.0).unwrap();
        let video = Video::nominal("v", vec![8e6], 1.0, 3).unwrap();
        let mut abr = by_name("throughput").unwrap();
        let cfg = SimConfig {
            rtt_s: 0.1,
            ..SimConfig::default()
        };
        let r = simulate(&trace, &video, abr.as_mut(), &cfg).unwrap();
        for s in &r.segments {
            assert!((s.download_s - 1.1).abs() < 1e-9, "{s:?}");
        }
        assert_eq!(r.summary.startup_delay_s, Some(1.1));
    }
}

#[cfg(test)]
mod av_simulation_tests {
    use super::*;
    use crate::abr::by_name;

    #[test]
    fn an_audio_track_shares_the_link_with_the_video() {
        // 1.2 Mb/s: video alone reaches 1000 kb/s, not beside 256 kb/s of audio.
        let trace = Trace::constant("1.2M", 1.2e6, 100.0).unwrap();
        let video = Video::nominal("v", vec![300e3, 600e3, 1000e3], 2.0, 20).unwrap();
        let mut top = Vec::new();
        for audio_bps in [None, Some(256e3)] {
            let cfg = SimConfig {
                audio_bps,
                ..SimConfig::default()
            };
            let mut abr = by_name("throughput").unwrap();
            let r = simulate(&trace, &video, abr.as_mut(), &cfg).unwrap();
            assert_eq!(r.summary.missing_segments, 0);
            assert_eq!(r.summary.rebuffer_count, 0, "{}", r.table());
            match &r.audio {
                None => assert!(audio_bps.is_none()),
                Some(a) => {
                    assert_eq!((a.segments, a.missing_segments), (20, 0));
                    assert_eq!(a.bytes, 20 * 64_000);
                    assert_eq!(a.bitrate_kbps, 256.0);
                }
            }
            top.push(r.segments[4..].iter().map(|s| s.rung).max().unwrap());
        }
        assert_eq!(top, [2, 1]);
    }
}

/// The session loop against a live source in virtual time: it waits for each segment to be
/// published and stops at its duration. (Here rather than in `session`, so that the session module
/// does not depend on the simulator.)
#[cfg(test)]
mod live_session_tests {
    use std::future::Future;

    use crate::session::{run, Clock, Fetched, Request, SessionConfig, Transport, Watch};
    use crate::sim::{run_ready, SimClock};
    use crate::video::Video;

    /// A live source: `ready` segments are out at the start, then one every `period_s`;
    /// every fetch takes `fetch_s`.
    struct LiveFeed<'a> {
        clock: &'a SimClock,
        ready: usize,
        period_s: f64,
        fetch_s: f64,
        fetched: Vec<(usize, f64)>,
    }

    impl Transport for LiveFeed<'_> {
        fn fetch(
            &mut self,
            req: Request,
            _watch: &mut Watch<'_>,
        ) -> impl Future<Output = anyhow::Result<Fetched>> {
            let start = self.clock.now();
            assert!(
                self.available_at(req.segment).unwrap_or(0.0) <= start + 1e-9,
                "segment {} fetched before it was published",
                req.segment
            );
            self.fetched.push((req.segment, start));
            self.clock.set(start + self.fetch_s);
            std::future::ready(Ok(Fetched {
                bytes: req.expected_bytes,
                complete: true,
                edge: None,
            }))
        }

        fn available_at(&self, segment: usize) -> Option<f64> {
            let late = segment.saturating_sub(self.ready - 1);
            Some(late as f64 * self.period_s)
        }
    }

    #[test]
    fn a_live_session_keeps_fetching_new_segments_until_its_duration() {
        let video = Video::nominal("live", vec![1e6], 2.0, 1000).unwrap();
        for play_out in [false, true] {
            let clock = SimClock::default();
            let mut feed = LiveFeed {
                clock: &clock,
                ready: 3,
                period_s: 2.0,
                fetch_s: 0.1,
                fetched: Vec::new(),
            };
            let cfg = SessionConfig {
                play_out,
                max_session_s: Some(20.0),
                ..SessionConfig::default()
            };
            let mut abr = crate::abr::by_name("throughput").unwrap();
            let r = run_ready(run(&video, abr.as_mut(), &mut feed, &clock, &cfg)).unwrap();
            // 3 at once, then one every 2 s up to 20 s (published at 2, 4, ..., 18 s).
            let numbers: Vec<usize> = feed.fetched.iter().map(|f| f.0).collect();
            assert_eq!(numbers, (0..12).collect::<Vec<_>>(), "play_out {play_out}");
            assert!(feed.fetched.iter().all(|f| f.1 < 20.0));
            assert_eq!(r.segments.len(), 12);
            assert_eq!(r.summary.rebuffer_s, 0.0, "play_out {play_out}");
        }
    }
}

/// A live session with audio beside the video: each audio segment waits for its own
/// publication, and none is fetched after the session's end.
#[cfg(test)]
mod live_av_session_tests {
    use std::future::Future;

    use crate::session::{
        run, Clock, Companion, Fetched, Request, SessionConfig, Transport, Watch,
    };
    use crate::sim::{run_ready, SimClock};
    use crate::video::Video;

    /// Video segment `i` is out at `i` seconds, audio segment `i` at `i + lag_s`; every fetch
    /// takes 0.1 s.
    struct LiveAv<'a> {
        clock: &'a SimClock,
        lag_s: f64,
        log: Vec<(char, usize, f64)>,
    }

    impl LiveAv<'_> {
        fn take(&mut self, track: char, index: usize, out_at: f64) -> Fetched {
            let start = self.clock.now();
            assert!(
                out_at <= start + 1e-9,
                "{track}{index} fetched before it was out"
            );
            self.log.push((track, index, start));
            self.clock.set(start + 0.1);
            Fetched {
                bytes: 1000,
                complete: true,
                edge: None,
            }
        }
    }

    impl Transport for LiveAv<'_> {
        fn fetch(
            &mut self,
            req: Request,
            _watch: &mut Watch<'_>,
        ) -> impl Future<Output = anyhow::Result<Fetched>> {
            std::future::ready(Ok(self.take('v', req.segment, req.segment as f64)))
        }

        fn available_at(&self, segment: usize) -> Option<f64> {
            Some(segment as f64)
        }

        fn companion(&self) -> Option<Companion> {
            Some(Companion {
                id: "aac".into(),
                bandwidth_bps: 64_000,
                durations_s: vec![1.0; 100],
            })
        }

        fn companion_available_at(&self, index: usize) -> Option<f64> {
            Some(index as f64 + self.lag_s)
        }

        fn fetch_companion(
            &mut self,
            index: usize,
        ) -> impl Future<Output = anyhow::Result<Fetched>> {
            let out_at = index as f64 + self.lag_s;
            std::future::ready(Ok(self.take('a', index, out_at)))
        }
    }

    #[test]
    fn live_audio_waits_for_its_own_segments_and_delays_what_can_play() {
        let video = Video::nominal("live", vec![300e3], 1.0, 100).unwrap();
        let mut startups = Vec::new();
        for lag_s in [0.0, 0.6] {
            let clock = SimClock::default();
            let mut feed = LiveAv {
                clock: &clock,
                lag_s,
                log: Vec::new(),
            };
            let cfg = SessionConfig {
                max_session_s: Some(10.0),
                ..SessionConfig::default()
            };
            let mut abr = crate::abr::by_name("throughput").unwrap();
            let r = run_ready(run(&video, abr.as_mut(), &mut feed, &clock, &cfg)).unwrap();
            // Each video segment, then the audio that covers it, nothing after 10 s.
            let order: Vec<String> = feed.log.iter().map(|(t, i, _)| format!("{t}{i}")).collect();
            let want: Vec<String> = (0..10)
                .flat_map(|i| [format!("v{i}"), format!("a{i}")])
                .collect();
            assert_eq!(order, want, "lag {lag_s}");
            assert!(feed.log.iter().all(|l| l.2 < 10.0));
            let a = r.audio.as_ref().unwrap();
            assert_eq!((a.segments, a.missing_segments), (10, 0));
            startups.push(r.summary.startup_delay_s.unwrap());
        }
        // What can play is what both tracks hold: audio out 0.6 s later starts play later.
        assert!(startups[1] - startups[0] > 0.4, "{startups:?}");
    }
}

/// The session loop with an audio track beside the video, in virtual time: a stall when either
/// track runs dry, the ABR choosing with the audio's share, the audio in the report.
#[cfg(test)]
mod av_session_tests {
    use std::future::Future;

    use crate::session::{
        run, Clock, Companion, Fetched, Request, SessionConfig, Transport, Watch,
    };
    use crate::sim::{run_ready, SimClock};
    use crate::video::Video;

    /// Video segments arrive at `link_bps`; audio segments take `audio_s` each.
    struct AvFeed<'a> {
        clock: &'a SimClock,
        link_bps: f64,
        audio: Option<Companion>,
        audio_s: f64,
        log: Vec<String>,
    }

    impl Transport for AvFeed<'_> {
        fn fetch(
            &mut self,
            req: Request,
            _watch: &mut Watch<'_>,
        ) -> impl Future<Output = anyhow::Result<Fetched>> {
            let now = self.clock.now();
            self.clock
                .set(now + req.expected_bytes as f64 * 8.0 / self.link_bps);
            self.log.push(format!("v{}", req.segment));
            std::future::ready(Ok(Fetched {
                bytes: req.expected_bytes,
                complete: true,
                edge: None,
            }))
        }

        fn companion(&self) -> Option<Companion> {
            self.audio.clone()
        }

        fn fetch_companion(
            &mut self,
            index: usize,
        ) -> impl Future<Output = anyhow::Result<Fetched>> {
            let now = self.clock.now();
            self.clock.set(now + self.audio_s);
            self.log.push(format!("a{index}"));
            std::future::ready(if index == 2 {
                Err(anyhow::anyhow!("HTTP 404"))
            } else {
                Ok(Fetched {
                    bytes: 16_000,
                    complete: true,
                    edge: None,
                })
            })
        }
    }

    fn audio(n: usize) -> Companion {
        Companion {
            id: "aac".into(),
            bandwidth_bps: 128_000,
            durations_s: vec![1.0; n],
        }
    }

    fn play(
        feed: &mut AvFeed<'_>,
        clock: &SimClock,
        video: &Video,
    ) -> crate::report::SessionReport {
        let mut abr = crate::abr::by_name("throughput").unwrap();
        run_ready(run(
            video,
            abr.as_mut(),
            feed,
            clock,
            &SessionConfig::default(),
        ))
        .unwrap()
    }

    #[test]
    fn a_stall_caused_by_audio_alone_is_a_stall() {
        let video = Video::nominal("v", vec![300e3], 1.0, 6).unwrap();
        let mut stalls = Vec::new();
        for audio_s in [0.1, 1.5] {
            let clock = SimClock::default();
            let mut feed = AvFeed {
                clock: &clock,
                link_bps: 3e6,
                audio: Some(audio(7)),
                audio_s,
                log: Vec::new(),
            };
            let r = play(&mut feed, &clock, &video);
            // Each video segment, then the audio that covers it; the last (7th) audio after.
            assert_eq!(
                feed.log.join(" "),
                "v0 a0 v1 a1 v2 a2 v3 a3 v4 a4 v5 a5 a6",
                "audio {audio_s} s"
            );
            let a = r.audio.as_ref().unwrap();
            assert_eq!((a.segments, a.missing_segments), (7, 1));
            assert_eq!(a.bytes, 6 * 16_000);
            assert!(a.rows[2].missing && !a.rows[3].missing);
            assert_eq!(r.summary.missing_segments, 0);
            assert!(
                r.errors
                    .iter()
                    .any(|e| e.contains("audio aac segment 2: HTTP 404")),
                "{:?}",
                r.errors
            );
            assert!(
                r.table()
                    .contains("audio aac 128 kb/s | segments 7 (missing 1)"),
                "{}",
                r.table()
            );
            stalls.push((r.summary.rebuffer_count, r.summary.rebuffer_s));
        }
        // Video alone takes 0.1 s a segment; audio at 0.1 s keeps up, at 1.5 s it does not.
        assert_eq!(stalls[0], (0, 0.0), "{stalls:?}");
        assert!(stalls[1].0 >= 3 && stalls[1].1 > 1.0, "{stalls:?}");
    }

    #[test]
    fn the_abr_leaves_room_for_the_audio() {
        // 1.1 Mb/s: 900 kb/s video fits the 0.9 safety margin alone, not with 128 kb/s audio.
        let video = Video::nominal("v", vec![300e3, 900e3], 1.0, 8).unwrap();
        let mut top = Vec::new();
        for with_audio in [false, true] {
            let clock = SimClock::default();
            let mut feed = AvFeed {
                clock: &clock,
                link_bps: 1.1e6,
                audio: with_audio.then(|| audio(8)),
                audio_s: 0.0,
                log: Vec::new(),
            };
            let r = play(&mut feed, &clock, &video);
            assert_eq!(r.audio.is_some(), with_audio);
            top.push(r.segments[2..].iter().map(|s| s.rung).max().unwrap());
            // The report's bitrate is the video's.
            assert!(r
                .segments
                .iter()
                .all(|s| s.bitrate_kbps == 300.0 || s.bitrate_kbps == 900.0));
        }
        assert_eq!(top, [1, 0]);
    }
}

#[cfg(test)]
mod shaped_dip_tests {
    use super::*;

    #[test]
    fn the_default_dips_with_a_short_drop_and_climbs_back() {
        // The real-player shaping test in virtual time: 1-s segments, a 6-s buffer cap, 8 Mb/s
        // with 5 s at 400 kb/s after 6 s.
        let trace = Trace::new("step", vec![(6.0, 8e6), (5.0, 0.4e6), (1000.0, 8e6)]).unwrap();
        let video = Video::nominal("v", vec![150e3, 500e3, 1200e3], 1.0, 30).unwrap();
        let mut cfg = SimConfig::default();
        cfg.session.buffer.max_s = 6.0;
        let mut abr = crate::abr::by_name("default").unwrap();
        let r = simulate(&trace, &video, abr.as_mut(), &cfg).unwrap();
        let rungs: Vec<usize> = r.segments.iter().map(|s| s.rung).collect();
        assert_eq!(r.summary.rebuffer_count, 0, "{rungs:?}");
        let top = rungs.iter().position(|&q| q == 2).unwrap();
        let dip = top + rungs[top..].iter().position(|&q| q < 2).unwrap();
        assert!(rungs[dip..].contains(&2), "{rungs:?}");
    }
}

/// Low-latency live in virtual time: chunked delivery on a production clock, the `ll` rule
/// against the throughput baseline.
#[cfg(test)]
mod low_latency_tests {
    use super::*;
    use crate::abr::by_name;

    /// The packager's default ladder, 2-s segments.
    fn ladder(n: usize) -> Video {
        Video::nominal("ll", vec![400e3, 800e3, 1400e3, 2800e3], 2.0, n).unwrap()
    }

    fn cfg() -> SimConfig {
        let mut c = SimConfig {
            audio_bps: Some(128e3),
            ..SimConfig::default()
        };
        c.session.low_latency = Some(LowLatency::new(1.5, 0.5));
        c
    }

    fn run(name: &str, trace: &Trace, n: usize) -> SessionReport {
        let mut abr = by_name(name).unwrap();
        simulate(trace, &ladder(n), abr.as_mut(), &cfg()).unwrap()
    }

    #[test]
    fn chunks_are_produced_on_a_clock_and_requested_at_the_availability_start() {
        let ll = LowLatency::new(1.5, 0.5);
        let live = SimLive::join(&ll, 2.0);
        // The edge at 20.6 s of media, 1.4 s behind: 19.2 s, 1.2 s into segment 9.
        assert!((live.timeline.skip_s - 1.2).abs() < 1e-9);
        assert!((live.timeline.origin_s + 2.6).abs() < 1e-9);
        assert_eq!(live.chunks(), vec![0.5; 4]);
        // Chunk 0 of segment 1 is out 0.5 s after its start; the last at its end.
        assert!((live.chunk_out(1, 0) - (-2.6 + 2.5)).abs() < 1e-9);
        assert!((live.chunk_out(1, 3) - (-2.6 + 4.0)).abs() < 1e-9);
        let odd = SimLive::join(&LowLatency::new(1.5, 0.6), 2.0);
        let c = odd.chunks();
        assert_eq!(c.len(), 4);
        assert!((c[3] - 0.2).abs() < 1e-9);
    }

    #[test]
    fn a_link_always_above_one_and_a_half_times_the_top_rung_never_stalls_and_holds_latency() {
        // 4.4 Mb/s: 1.5x the top rung plus the audio; a steady link; and a rate that dips to
        // 4.4 Mb/s for a second every 5 s from 8 Mb/s.
        let steady = Trace::constant("1.5x", 1.5 * (2800e3 + 128e3), 1000.0).unwrap();
        let fast = Trace::constant("fast", 50e6, 1000.0).unwrap();
        let dips = Trace::new("dips", vec![(4.0, 8e6), (1.0, 4.4e6)]).unwrap();
        for trace in [&steady, &fast, &dips] {
            let r = run("ll", trace, 30);
            let s = &r.summary;
            assert_eq!(s.rebuffer_count, 0, "{}: {}", trace.name, r.table());
            let (p50, p95) = (s.live_latency_p50_s.unwrap(), s.live_latency_p95_s.unwrap());
            assert!(p50 <= 1.5 && p95 <= 2.0, "{}: {p50} {p95}", trace.name);
            // The top rung is reached and held from the second half on.
            assert!(
                r.segments[15..].iter().all(|x| x.rung == 3),
                "{}: {}",
                trace.name,
                r.table()
            );
        }
    }

    #[test]
    fn the_throughput_rule_fed_paced_downloads_underestimates_the_link() {
        // 10 Mb/s: every download takes as long as its production, so the throughput rule
        // measures about the bitrate it fetched and stays low; the burst estimate sees the link.
        let trace = Trace::constant("10M", 10e6, 1000.0).unwrap();
        let ll = run("ll", &trace, 30);
        let tput = run("throughput", &trace, 30);
        let last_est = |r: &SessionReport| r.segments.last().unwrap().estimate_kbps.unwrap();
        assert!((last_est(&ll) - 10_000.0).abs() < 100.0, "{}", ll.table());
        assert!(last_est(&tput) < 5_000.0, "{}", tput.table());
    }

    #[test]
    fn on_the_fixture_traces_it_stalls_no_more_than_the_baseline_at_a_higher_bitrate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traces");
        let traces = crate::trace::load_traces(&dir).unwrap();
        assert!(!traces.is_empty());
        let (mut ll_stalls, mut tput_stalls, mut ll_kbps, mut tput_kbps) = (0, 0, 0.0, 0.0);
        for t in &traces {
            let a = run("ll", t, 60);
            let b = run("throughput", t, 60);
            ll_stalls += a.summary.rebuffer_count;
            tput_stalls += b.summary.rebuffer_count;
            ll_kbps += a.summary.bitrate_kbps;
            tput_kbps += b.summary.bitrate_kbps;
            // Latency stays bounded: the rate rule catches up after what stalls cost.
            let stall_s = a.summary.rebuffer_s;
            assert!(
                a.summary.live_latency_p50_s.unwrap() <= 1.5 + stall_s,
                "{}: {}",
                t.name,
                a.table()
            );
        }
        assert!(ll_stalls <= tput_stalls, "{ll_stalls} > {tput_stalls}");
        assert!(ll_kbps > tput_kbps, "{ll_kbps} <= {tput_kbps}");
    }
}
