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
use crate::cmaf::ChunkDone;
use crate::lowlat::{self, LiveTimeline, LowLatency};
use crate::report::{LatencyPoint, SegmentRow, SessionReport, TrackReport, TrackRow};
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

/// A chunk of a segment (of the video, or of the companion fetched beside it) that completed
/// while the segment streams in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkEvent {
    /// Of the companion track (audio), not the video.
    pub companion: bool,
    pub chunk: ChunkDone,
}

/// Called for every completed chunk of a low-latency fetch.
pub type OnChunk<'a> = dyn FnMut(ChunkEvent) + 'a;

/// What a low-latency fetch gave back: the video segment and, when asked for, the companion's
/// segment fetched beside it.
#[derive(Debug)]
pub struct ChunkedFetch {
    pub video: Fetched,
    pub companion: Option<anyhow::Result<Fetched>>,
}

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

    /// For live streams: where the session meets the media (for its latency).
    fn live_timeline(&self) -> Option<LiveTimeline> {
        None
    }

    /// Low latency: fetches a video segment and, with `companion`, that companion segment at
    /// the same time, reading each as it streams and calling `on_chunk` for every chunk
    /// completed. This default fetches them one after the other and reports no chunk (the
    /// session then credits each segment whole).
    fn fetch_chunked(
        &mut self,
        req: Request,
        companion: Option<usize>,
        _on_chunk: &mut OnChunk<'_>,
    ) -> impl Future<Output = anyhow::Result<ChunkedFetch>> {
        async move {
            let mut keep = |_: u64, _: u64, _: f64| true;
            let video = self.fetch(req, &mut keep).await?;
            let companion = match companion {
                Some(i) => Some(self.fetch_companion(i).await),
                None => None,
            };
            Ok(ChunkedFetch { video, companion })
        }
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
    /// Low-latency live: request each segment at its availability start, credit the buffer
    /// chunk by chunk, hold the latency with the playback rate.
    pub low_latency: Option<LowLatency>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            buffer: BufferConfig::default(),
            abandonment: true,
            play_out: false,
            max_session_s: None,
            low_latency: None,
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
    let ll = cfg.low_latency;
    let mut buffer_cfg = cfg.buffer;
    if let Some(ll) = &ll {
        // A thin buffer is the point; playing from a sliver of it is a stall a moment later.
        buffer_cfg.startup_s = buffer_cfg.startup_s.max(ll.low_buffer_s());
        buffer_cfg.resume_s = buffer_cfg.resume_s.max(ll.low_buffer_s());
    }
    let mut buffer = PlayoutBuffer::new(buffer_cfg, t0);
    let timeline = transport.live_timeline();
    if timeline.is_some() {
        buffer.sample_every(lowlat::LATENCY_SAMPLE_S);
    }
    // Low latency: the session joins `skip` seconds into its first segment.
    let skip = match (&ll, &timeline) {
        (Some(_), Some(t)) => t.skip_s.clamp(0.0, video.segment_duration_s),
        _ => 0.0,
    };
    let mut beside = transport.companion().map(|c| Beside {
        c,
        next: 0,
        video_end: 0.0,
        audio_end: 0.0,
        pushed: skip,
        rows: Vec::new(),
    });
    // Low latency without a companion: video media received, and pushed into the buffer.
    let mut solo = (0.0f64, skip);
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
        if let (Some(ll), Some(tl)) = (&ll, &timeline) {
            hold_latency(ll, tl, &mut buffer, clock.now());
        }
        let companion_at = match (&ll, &beside) {
            (Some(_), Some(b)) if b.next < b.c.durations_s.len() => {
                transport.companion_available_at(b.next)
            }
            _ => None,
        };
        let available = match (transport.available_at(segment), companion_at) {
            (Some(v), Some(a)) => Some(v.max(a)),
            (v, a) => v.or(a),
        };
        if let Some(at) = available {
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
        if let Some(ll) = &ll {
            let outcome = fetch_low_latency(
                LowLatencyTurn {
                    segment,
                    rung,
                    expected_bytes: video.size(segment, rung),
                    segment_s: video.segment_duration_s,
                    t0,
                    ll,
                    timeline: timeline.as_ref(),
                },
                transport,
                clock,
                abr,
                &mut buffer,
                &mut beside,
                &mut solo,
                &mut errors,
            )
            .await;
            let now = clock.now();
            if let Ok((f, download_s)) = &outcome {
                let d = Download {
                    segment,
                    rung,
                    bytes: f.bytes,
                    duration_s: *download_s,
                    end_s: now - t0,
                    abandoned: false,
                };
                abr.on_download(&d);
                history.push(d);
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
            let row = segment_row(
                video,
                segment,
                rung,
                seg_start - t0,
                now - seg_start,
                estimate_bps,
                &buffer,
                rebuf_before,
                (0, 0),
                outcome,
                &mut errors,
            );
            if !row.missing {
                last_rung = Some(rung);
            }
            rows.push(row);
            continue;
        }
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
        let row = segment_row(
            video,
            segment,
            rung,
            seg_start - t0,
            now - seg_start,
            estimate_bps,
            &buffer,
            rebuf_before,
            (abandoned, wasted_bytes),
            outcome,
            &mut errors,
        );
        if !row.missing {
            last_rung = Some(rung);
        }
        rows.push(row);
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
        let rest = buffer.time_until_level(0.0);
        if rest > 0.0 {
            clock.sleep(rest).await;
        }
        buffer.advance(clock.now());
    }
    let mut report = SessionReport::new(abr.name(), video, &buffer, rows, errors, clock.now() - t0);
    report.audio =
        beside.map(|b| TrackReport::new(&b.c.id, b.c.bandwidth_bps as f64 / 1000.0, b.rows));
    if let Some(tl) = &timeline {
        let points: Vec<LatencyPoint> = buffer
            .samples()
            .iter()
            .map(|&(t, played)| LatencyPoint {
                t_s: t - t0,
                latency_s: tl.latency_s(t, played),
            })
            .collect();
        report.set_latency(points);
    }
    report
}

/// Sets the playback rate that holds the latency (see [`lowlat::playback_rate`]) at `now`.
fn hold_latency(ll: &LowLatency, tl: &LiveTimeline, buffer: &mut PlayoutBuffer, now: f64) {
    buffer.advance(now);
    let latency = tl.latency_s(now, buffer.played_s());
    let rate = lowlat::playback_rate(ll, latency, buffer.level_s());
    buffer.set_rate(now, rate);
}

/// The report row of a segment's turn.
#[allow(clippy::too_many_arguments)]
fn segment_row(
    video: &Video,
    segment: usize,
    rung: usize,
    start_s: f64,
    turn_s: f64,
    estimate_bps: Option<f64>,
    buffer: &PlayoutBuffer,
    rebuf_before: f64,
    (abandoned, wasted_bytes): (u32, u64),
    outcome: anyhow::Result<(Fetched, f64)>,
    errors: &mut Vec<String>,
) -> SegmentRow {
    match outcome {
        Ok((f, download_s)) => SegmentRow {
            index: segment,
            rung,
            bitrate_kbps: video.bitrates_bps[rung] / 1000.0,
            bytes: f.bytes,
            start_s,
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
        },
        Err(e) => {
            errors.push(format!("segment {segment}: {e:#}"));
            SegmentRow {
                index: segment,
                rung,
                bitrate_kbps: 0.0,
                bytes: 0,
                start_s,
                download_s: turn_s,
                throughput_kbps: 0.0,
                estimate_kbps: estimate_bps.map(|e| e / 1000.0),
                buffer_s: buffer.level_s(),
                rebuffer_s: buffer.rebuffer_s() - rebuf_before,
                abandoned,
                wasted_bytes,
                edge: None,
                missing: true,
            }
        }
    }
}

/// One low-latency segment turn: what to fetch and the session's latency bookkeeping.
struct LowLatencyTurn<'a> {
    segment: usize,
    rung: usize,
    expected_bytes: u64,
    segment_s: f64,
    t0: f64,
    ll: &'a LowLatency,
    timeline: Option<&'a LiveTimeline>,
}

/// Media seconds of one track credited to the buffer: what a segment's chunks add, never more
/// than the segment holds.
fn credit_media(
    beside: &mut Option<Beside>,
    solo: &mut (f64, f64),
    buffer: &mut PlayoutBuffer,
    companion: bool,
    media_s: f64,
    at: f64,
) {
    match beside {
        Some(b) => {
            if companion {
                b.audio_end += media_s;
            } else {
                b.video_end += media_s;
            }
            b.push_joint(buffer, at);
        }
        None => {
            if companion {
                return;
            }
            solo.0 += media_s;
            if solo.0 > solo.1 {
                buffer.push(at, solo.0 - solo.1);
                solo.1 = solo.0;
            } else {
                buffer.advance(at);
            }
        }
    }
}

/// Low latency: fetches video segment `turn.segment` (and the companion's next segment beside
/// it), crediting the buffer chunk by chunk as each completes, feeding each chunk's burst to
/// the ABR and holding the latency with the playback rate at every chunk. A segment whose
/// chunks could not be read is credited whole when it ends. Returns the video's fetch and its
/// duration.
#[allow(clippy::too_many_arguments)]
async fn fetch_low_latency<T: Transport, C: Clock>(
    turn: LowLatencyTurn<'_>,
    transport: &mut T,
    clock: &C,
    abr: &mut dyn Abr,
    buffer: &mut PlayoutBuffer,
    beside: &mut Option<Beside>,
    solo: &mut (f64, f64),
    errors: &mut Vec<String>,
) -> anyhow::Result<(Fetched, f64)> {
    let companion = beside
        .as_ref()
        .filter(|b| b.next < b.c.durations_s.len())
        .map(|b| (b.next, b.c.durations_s[b.next]));
    let start = clock.now();
    let req = Request {
        segment: turn.segment,
        rung: turn.rung,
        expected_bytes: turn.expected_bytes,
    };
    let (mut video_in, mut audio_in) = (0.0f64, 0.0f64);
    let result = {
        let mut on_chunk = |ev: ChunkEvent| {
            let (got, cap) = if ev.companion {
                (&mut audio_in, companion.map_or(0.0, |c| c.1))
            } else {
                (&mut video_in, turn.segment_s)
            };
            let m = ev.chunk.media_s.min(cap - *got).max(0.0);
            *got += m;
            let at = ev.chunk.at_s.max(buffer.now_s());
            credit_media(beside, solo, buffer, ev.companion, m, at);
            abr.on_chunk(&ev.chunk.burst);
            if let Some(tl) = turn.timeline {
                hold_latency(turn.ll, tl, buffer, at);
            }
        };
        transport
            .fetch_chunked(req, companion.map(|c| c.0), &mut on_chunk)
            .await
    };
    let end = clock.now();
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            // The companion's segment was not fetched either: it plays as silence.
            if let (Some(b), Some((index, d))) = (beside.as_mut(), companion) {
                b.audio_end += d - audio_in;
                b.next += 1;
                b.rows.push(TrackRow {
                    index,
                    bytes: 0,
                    start_s: start - turn.t0,
                    download_s: end - start,
                    buffer_s: b.audio_level(buffer),
                    missing: true,
                });
                b.push_joint(buffer, end);
            }
            buffer.advance(end);
            return Err(e);
        }
    };
    if result.video.complete && video_in < turn.segment_s {
        credit_media(beside, solo, buffer, false, turn.segment_s - video_in, end);
    }
    if let (Some(b), Some((index, d))) = (beside.as_mut(), companion) {
        let (bytes, missing) = match result.companion {
            Some(Ok(f)) => (f.bytes, false),
            Some(Err(e)) => {
                errors.push(format!("audio {} segment {index}: {e:#}", b.c.id));
                (0, true)
            }
            None => (0, true),
        };
        // A missing audio segment is a gap played as silence, as in the sequential path.
        if audio_in < d {
            b.audio_end += d - audio_in;
        }
        b.next += 1;
        b.push_joint(buffer, end);
        b.rows.push(TrackRow {
            index,
            bytes,
            start_s: start - turn.t0,
            download_s: end - start,
            buffer_s: b.audio_level(buffer),
            missing,
        });
    }
    buffer.advance(end);
    if let Some(tl) = turn.timeline {
        hold_latency(turn.ll, tl, buffer, end);
    }
    if !result.video.complete {
        anyhow::bail!("download of segment {} stopped", turn.segment);
    }
    Ok((result.video, end - start))
}
