//! One playback session, generic over its transport and clock: the same loop (pause while the
//! buffer is full, ask the ABR, fetch with abandonment checks, feed the buffer) runs in virtual
//! time against a trace (the simulator) and in real time over HTTP (real playback); this module
//! depends on neither. Its live-stream behaviour is tested in `tests/live_session.rs`.

use std::future::Future;

use serde::Serialize;

use crate::abr::{Abr, AbrContext, Download, Progress};
use crate::buffer::{BufferConfig, PlayoutBuffer};
use crate::report::{SegmentRow, SessionReport};
use crate::video::Video;

/// Seconds since the session's epoch; sleeping moves it forward.
pub trait Clock {
    fn now(&self) -> f64;
    fn sleep(&self, secs: f64) -> impl Future<Output = ()>;
}

/// One segment to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub segment: usize,
    pub rung: usize,
    /// Size the video model expects (the real size may differ).
    pub expected_bytes: u64,
}

/// What a fetch gave back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fetched {
    /// Bytes received (all of them when `complete`).
    pub bytes: u64,
    pub complete: bool,
    /// Which server answered (an edge address, for reports).
    pub edge: Option<String>,
}

/// Called during a download with (bytes done, bytes expected in total, seconds since the
/// request); returning `false` abandons the download.
pub type Watch<'a> = dyn FnMut(u64, u64, f64) -> bool + 'a;

/// Moves segments. Failover and retries are the transport's job; an error here means the
/// segment could not be had at all.
pub trait Transport {
    fn fetch(
        &mut self,
        req: Request,
        watch: &mut Watch<'_>,
    ) -> impl Future<Output = anyhow::Result<Fetched>>;

    /// For live streams: the time (on the session clock) at which `segment` becomes
    /// available, if it is not yet.
    fn available_at(&self, _segment: usize) -> Option<f64> {
        None
    }
}

/// Session knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionConfig {
    pub buffer: BufferConfig,
    /// Whether the ABR may abandon downloads.
    pub abandonment: bool,
    /// Play out what is buffered after the last segment (real playback does; the result is
    /// the same either way).
    pub play_out: bool,
    /// Stop requesting new segments after this much session time.
    pub max_session_s: Option<f64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            buffer: BufferConfig::default(),
            abandonment: true,
            play_out: false,
            max_session_s: None,
        }
    }
}

/// Plays `video` (segments `first..video.num_segments`) through `transport`.
pub async fn run<T: Transport, C: Clock>(
    video: &Video,
    abr: &mut dyn Abr,
    transport: &mut T,
    clock: &C,
    cfg: &SessionConfig,
) -> SessionReport {
    let t0 = clock.now();
    let mut buffer = PlayoutBuffer::new(cfg.buffer, t0);
    let mut history: Vec<Download> = Vec::with_capacity(video.num_segments + 8);
    let mut rows: Vec<SegmentRow> = Vec::with_capacity(video.num_segments);
    let mut last_rung: Option<usize> = None;
    let mut errors: Vec<String> = Vec::new();
    for segment in 0..video.num_segments {
        if let Some(limit) = cfg.max_session_s {
            if clock.now() - t0 >= limit {
                break;
            }
        }
        buffer.advance(clock.now());
        let rebuf_before = buffer.rebuffer_s();
        let wait = buffer.time_until_fetch();
        if wait > 0.0 {
            clock.sleep(wait).await;
            buffer.advance(clock.now());
        }
        if let Some(at) = transport.available_at(segment) {
            let wait = at - clock.now();
            if wait > 0.0 {
                clock.sleep(wait).await;
                buffer.advance(clock.now());
            }
            // A live segment published after the session's end is not fetched.
            if cfg
                .max_session_s
                .is_some_and(|limit| clock.now() - t0 >= limit)
            {
                break;
            }
        }
        let ctx = AbrContext {
            video,
            segment,
            now_s: clock.now() - t0,
            buffer_s: buffer.level_s(),
            buffer_max_s: cfg.buffer.max_s,
            last_rung,
            playing: buffer.is_playing(),
            history: &history,
        };
        let decision = abr.choose(&ctx);
        let mut rung = decision.rung.min(video.top());
        if decision.delay_s > 0.0 {
            clock.sleep(decision.delay_s).await;
            buffer.advance(clock.now());
        }
        let estimate_bps = abr.estimate_bps();
        let seg_start = clock.now();
        let mut abandoned = 0u32;
        let mut wasted_bytes = 0u64;
        let outcome = loop {
            let start = clock.now();
            let req = Request {
                segment,
                rung,
                expected_bytes: video.size(segment, rung),
            };
            let mut abandon_to: Option<usize> = None;
            let result = {
                let ctx = AbrContext {
                    video,
                    segment,
                    now_s: start - t0,
                    buffer_s: buffer.level_s(),
                    buffer_max_s: cfg.buffer.max_s,
                    last_rung,
                    playing: buffer.is_playing(),
                    history: &history,
                };
                let buf = &buffer;
                let abr_ref = &mut *abr;
                let abandon_to = &mut abandon_to;
                let mut watch = |done: u64, total: u64, elapsed: f64| -> bool {
                    if !cfg.abandonment || rung == 0 {
                        return true;
                    }
                    let p = Progress {
                        rung,
                        bytes_total: total,
                        bytes_done: done,
                        elapsed_s: elapsed,
                        buffer_s: buf.level_at(start + elapsed),
                    };
                    match abr_ref.abandon(&ctx, &p) {
                        Some(r) if r < rung => {
                            *abandon_to = Some(r);
                            false
                        }
                        _ => true,
                    }
                };
                transport.fetch(req, &mut watch).await
            };
            let end = clock.now();
            buffer.advance(end);
            match result {
                Ok(f) => {
                    let d = Download {
                        segment,
                        rung,
                        bytes: f.bytes,
                        duration_s: end - start,
                        end_s: end - t0,
                        abandoned: !f.complete,
                    };
                    abr.on_download(&d);
                    history.push(d);
                    if f.complete {
                        break Ok((f, end - start));
                    }
                    abandoned += 1;
                    wasted_bytes += f.bytes;
                    match abandon_to {
                        Some(r) if r < rung => rung = r,
                        _ => break Err(anyhow::anyhow!("download of segment {segment} stopped")),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let now = clock.now();
        match outcome {
            Ok((f, download_s)) => {
                buffer.push(now, video.segment_duration_s);
                rows.push(SegmentRow {
                    index: segment,
                    rung,
                    bitrate_kbps: video.bitrates_bps[rung] / 1000.0,
                    bytes: f.bytes,
                    start_s: seg_start - t0,
                    download_s,
                    throughput_kbps: if download_s > 0.0 {
                        f.bytes as f64 * 8.0 / download_s / 1000.0
                    } else {
                        0.0
                    },
                    estimate_kbps: estimate_bps.map(|e| e / 1000.0),
                    buffer_s: buffer.level_s(),
                    rebuffer_s: buffer.rebuffer_s() - rebuf_before,
                    abandoned,
                    wasted_bytes,
                    edge: f.edge,
                    missing: false,
                });
                last_rung = Some(rung);
            }
            Err(e) => {
                errors.push(format!("segment {segment}: {e:#}"));
                rows.push(SegmentRow {
                    index: segment,
                    rung,
                    bitrate_kbps: 0.0,
                    bytes: 0,
                    start_s: seg_start - t0,
                    download_s: now - seg_start,
                    throughput_kbps: 0.0,
                    estimate_kbps: estimate_bps.map(|e| e / 1000.0),
                    buffer_s: buffer.level_s(),
                    rebuffer_s: buffer.rebuffer_s() - rebuf_before,
                    abandoned,
                    wasted_bytes,
                    edge: None,
                    missing: true,
                });
            }
        }
    }
    let end = clock.now();
    buffer.finish(end);
    if cfg.play_out {
        let rest = buffer.level_s();
        if rest > 0.0 {
            clock.sleep(rest).await;
        }
        buffer.advance(clock.now());
    }
    SessionReport::new(abr.name(), video, &buffer, rows, errors, clock.now() - t0)
}
