//! One playback session, generic over its transport and clock: the same loop (pause while the
//! buffer is full, ask the ABR, fetch with abandonment checks, feed the buffer) runs in virtual
//! time against a trace (the simulator) and in real time over HTTP (real playback); this module
//! depends on neither. Its live-stream behaviour is tested in `tests/live_session.rs`.
//!
//! With a [`Companion`] track (audio) the transport offers, each video segment is followed by
//! the audio segments that cover it (a live one waits for each to be available, as the video
//! does); the buffer holds what both tracks hold (it grows by the
//! growth of the shorter one), so a stall is when either runs dry; the ABR sees each rung's
//! bitrate plus the audio's, so it picks the video knowing the audio's share of the link.

use std::borrow::Cow;
use std::future::Future;

use serde::Serialize;

use crate::abr::{Abr, AbrContext, Download, Progress};
use crate::buffer::{BufferConfig, PlayoutBuffer};
use crate::report::{SegmentRow, SessionReport, TrackReport, TrackRow};
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

    /// A track to play beside the video (audio), if any.
    fn companion(&self) -> Option<Companion> {
        None
    }

    /// For live streams: the time (on the session clock) at which segment `index` of the
    /// companion track becomes available, if it is not yet.
    fn companion_available_at(&self, _index: usize) -> Option<f64> {
        None
    }

    /// Fetches segment `index` of the companion track.
    fn fetch_companion(&mut self, index: usize) -> impl Future<Output = anyhow::Result<Fetched>> {
        async move { Err(anyhow::anyhow!("no companion track (segment {index})")) }
    }
}

/// A track played beside the video: what it is and how long each of its segments lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct Companion {
    /// Representation id.
    pub id: String,
    pub bandwidth_bps: u64,
    pub durations_s: Vec<f64>,
}

/// The companion's state in a session.
struct Beside {
    c: Companion,
    next: usize,
    /// Seconds of media of each track received (or skipped, for a missing audio segment).
    video_end: f64,
    audio_end: f64,
    /// Seconds of media both hold, pushed into the buffer so far.
    pushed: f64,
    rows: Vec<TrackRow>,
}

impl Beside {
    /// Pushes into the buffer what both tracks now hold beyond what was pushed.
    fn push_joint(&mut self, buffer: &mut PlayoutBuffer, now: f64) {
        let joint = self.video_end.min(self.audio_end);
        if joint > self.pushed {
            buffer.push(now, joint - self.pushed);
            self.pushed = joint;
        } else {
            buffer.advance(now);
        }
    }

    /// Seconds of audio buffered ahead of the playhead.
    fn audio_level(&self, buffer: &PlayoutBuffer) -> f64 {
        let played = self.pushed - buffer.level_s();
        (self.audio_end - played).max(0.0)
    }
}

/// Fetches the companion's segments while its media ends before `until` seconds; a live one
/// waits for each to be available, and none published after the session's end (`limit`
/// seconds after `t0`) is fetched.
#[allow(clippy::too_many_arguments)]
async fn fetch_beside<T: Transport, C: Clock>(
    beside: &mut Beside,
    until: f64,
    transport: &mut T,
    clock: &C,
    t0: f64,
    limit: Option<f64>,
    buffer: &mut PlayoutBuffer,
    errors: &mut Vec<String>,
) {
    while beside.next < beside.c.durations_s.len() && beside.audio_end < until - 1e-6 {
        let index = beside.next;
        if let Some(at) = transport.companion_available_at(index) {
            let wait = at - clock.now();
            if wait > 0.0 {
                clock.sleep(wait).await;
                buffer.advance(clock.now());
            }
            if limit.is_some_and(|l| clock.now() - t0 >= l) {
                break;
            }
        }
        let start = clock.now();
        let result = transport.fetch_companion(index).await;
        let now = clock.now();
        // A missing audio segment is a gap played as silence, not a stall for ever.
        beside.audio_end += beside.c.durations_s[index];
        beside.next += 1;
        beside.push_joint(buffer, now);
        let (bytes, missing) = match result {
            Ok(f) => (f.bytes, false),
            Err(e) => {
                errors.push(format!("audio {} segment {index}: {e:#}", beside.c.id));
                (0, true)
            }
        };
        beside.rows.push(TrackRow {
            index,
            bytes,
            start_s: start - t0,
            download_s: now - start,
            buffer_s: beside.audio_level(buffer),
            missing,
        });
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
    let mut beside = transport.companion().map(|c| Beside {
        c,
        next: 0,
        video_end: 0.0,
        audio_end: 0.0,
        pushed: 0.0,
        rows: Vec::new(),
    });
    // What the ABR sees: with audio, every rung costs its bitrate plus the audio's.
    let abr_video: Cow<'_, Video> = match &beside {
        None => Cow::Borrowed(video),
        Some(b) => {
            let audio_bps = b.c.bandwidth_bps as f64;
            let mut v = video.clone();
            for r in &mut v.bitrates_bps {
                *r += audio_bps;
            }
            if let Some(sizes) = &mut v.sizes {
                let audio_bytes = (audio_bps * video.segment_duration_s / 8.0) as u64;
                for s in sizes.iter_mut().flatten() {
                    *s += audio_bytes;
                }
            }
            Cow::Owned(v)
        }
    };
    let abr_video: &Video = &abr_video;
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
            video: abr_video,
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
                    video: abr_video,
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
        if outcome.is_ok() {
            match &mut beside {
                None => buffer.push(now, video.segment_duration_s),
                Some(b) => {
                    b.video_end += video.segment_duration_s;
                    b.push_joint(&mut buffer, now);
                }
            }
        }
        if let Some(b) = &mut beside {
            let until = b.video_end;
            fetch_beside(
                b,
                until,
                transport,
                clock,
                t0,
                cfg.max_session_s,
                &mut buffer,
                &mut errors,
            )
            .await;
        }
        match outcome {
            Ok((f, download_s)) => {
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
    // The audio left after the last video segment (a shorter last one), unless the session
    // was cut short.
    if let Some(b) = &mut beside {
        if cfg
            .max_session_s
            .is_none_or(|limit| clock.now() - t0 < limit)
        {
            fetch_beside(
                b,
                f64::INFINITY,
                transport,
                clock,
                t0,
                cfg.max_session_s,
                &mut buffer,
                &mut errors,
            )
            .await;
        }
    }
    if let Some(b) = &mut beside {
        // Once the audio is all in, the video plays to its own end.
        if b.next == b.c.durations_s.len() && b.video_end > b.pushed {
            buffer.push(clock.now(), b.video_end - b.pushed);
            b.pushed = b.video_end;
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
    let mut report = SessionReport::new(abr.name(), video, &buffer, rows, errors, clock.now() - t0);
    report.audio =
        beside.map(|b| TrackReport::new(&b.c.id, b.c.bandwidth_bps as f64 / 1000.0, b.rows));
    report
}
