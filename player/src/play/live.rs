//! The live schedule, as pure functions of the MPD's segment list and the time (no I/O, no clock
//! reads: the caller passes `now`): where a live session joins the stream, when each of its
//! segments is out, how many it may fetch, when the MPD is due again, and the server clock's
//! offset from a UTCTiming answer. Times named `*_epoch_s` or `now_s` here are seconds since the
//! Unix epoch on the server's clock.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Result};
use mpd::{ContentKind, MediaSegment, Mpd};

use crate::lowlat::{LowLatency, DEFAULT_TARGET_LATENCY_S};

/// Where a live session starts and when each of its segments is complete on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSchedule {
    /// `$Number$` of the session's segment 0.
    pub first_number: u64,
    /// When segment 0 ends (is complete on the server).
    pub first_end_epoch_s: f64,
    /// Duration of every segment, seconds.
    pub segment_s: f64,
    /// Segments the session may fetch (see [`live_segment_count`]).
    pub count: usize,
}

impl LiveSchedule {
    /// The schedule of a session lasting `duration_s` that joins, at `now_s`, a stream whose
    /// availabilityStartTime is `ast_s`, whose listed segments are `media` (ascending) and whose
    /// players keep `delay_s` behind the live edge: it starts at the last segment starting at or
    /// before `now_s - ast_s - delay_s` (at the newest one when none does). `None` when no
    /// segment is listed yet.
    pub fn join(
        media: &[MediaSegment],
        ast_s: f64,
        delay_s: f64,
        duration_s: f64,
        now_s: f64,
    ) -> Option<LiveSchedule> {
        let last = media.last()?;
        let target = now_s - ast_s - delay_s;
        let first = media
            .iter()
            .rev()
            .find(|s| s.start <= target)
            .unwrap_or(last);
        let segment_s = first.duration.max(0.01);
        Some(LiveSchedule {
            first_number: first.number,
            first_end_epoch_s: ast_s + first.start + first.duration,
            segment_s,
            count: live_segment_count(first.number, last.number, duration_s, segment_s),
        })
    }

    /// The schedule of a track played beside the video (audio) whose listed segments are
    /// `media` (ascending) on a timeline whose zero is at `zero_epoch_s`, in a session whose
    /// video starts at `video_start_epoch_s` and lasts `duration_s`: it starts at the last
    /// segment starting at or before the video (up to [`BESIDE_SLACK_S`] after it, as
    /// packagers cut audio at the first frame after the video's cut), at the oldest listed
    /// when the video starts before them, at the newest when after. Its segment duration is
    /// the median of those listed (a packager's first AAC segment is often shorter). `None` when none is listed.
    pub fn beside(
        media: &[MediaSegment],
        zero_epoch_s: f64,
        video_start_epoch_s: f64,
        duration_s: f64,
    ) -> Option<LiveSchedule> {
        let (oldest, last) = (media.first()?, media.last()?);
        let target = video_start_epoch_s - zero_epoch_s + BESIDE_SLACK_S;
        let first = media
            .iter()
            .rev()
            .find(|s| s.start <= target)
            .unwrap_or(oldest);
        let mut durations: Vec<f64> = media.iter().map(|s| s.duration).collect();
        durations.sort_by(f64::total_cmp);
        let segment_s = durations[durations.len() / 2].max(0.01);
        // Plus one segment to cover the end of the video's last.
        Some(LiveSchedule {
            first_number: first.number,
            first_end_epoch_s: zero_epoch_s + first.start + first.duration,
            segment_s,
            count: live_segment_count(first.number, last.number, duration_s, segment_s) + 1,
        })
    }

    /// `$Number$` of the session's segment `segment`.
    pub fn number(&self, segment: usize) -> u64 {
        self.first_number + segment as u64
    }

    /// Seconds from `now_s` until the session's segment `segment` is complete on the server
    /// (zero or less when it already is).
    pub fn available_in(&self, segment: usize, now_s: f64) -> f64 {
        let end_epoch_s = self.first_end_epoch_s + segment as f64 * self.segment_s;
        end_epoch_s - now_s
    }
}

/// How far after the video's first segment a companion segment may start and still be taken
/// as starting with it, seconds.
pub const BESIDE_SLACK_S: f64 = 0.05;

/// Segments a live session of `duration_s` may fetch from `first` on: those already published
/// (through `last`, the live edge) and those published while it runs. The session's clock stops
/// it at `duration_s`; this only bounds the loop.
pub fn live_segment_count(first: u64, last: u64, duration_s: f64, segment_s: f64) -> usize {
    let published = last.saturating_sub(first).saturating_add(1);
    let upcoming = (duration_s.max(0.0) / segment_s.max(0.01)).ceil() as u64;
    usize::try_from(published.saturating_add(upcoming))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// How long players stay behind the live edge: suggestedPresentationDelay, else three segments.
pub fn presentation_delay_s(mpd: &Mpd, segment_s: f64) -> f64 {
    mpd.suggested_presentation_delay()
        .map(|d| d.as_secs_f64())
        .unwrap_or(3.0 * segment_s)
}

/// The low-latency signalling of a live MPD's video: the availabilityTimeOffset and
/// availabilityTimeComplete of its first Period's first video Representation's
/// SegmentTemplate (all levels merged).
pub fn low_latency_signal(mpd: &Mpd) -> (Option<f64>, Option<bool>) {
    let Some(period) = mpd.periods.first() else {
        return (None, None);
    };
    let Some((set, rep)) = period
        .adaptation_sets
        .iter()
        .filter(|s| s.kind() == ContentKind::Video)
        .find_map(|s| s.representations.first().map(|r| (s, r)))
    else {
        return (None, None);
    };
    match mpd::effective_template(period, set, rep) {
        Some(t) => (t.availability_time_offset, t.availability_time_complete),
        None => (None, None),
    }
}

/// Whether and how to play a live MPD with `segment_s` segments in low-latency mode: when
/// `forced`, or when its SegmentTemplate says `availabilityTimeComplete="false"` with an
/// availabilityTimeOffset. The knobs (target latency: `target_s`, else the ServiceDescription's,
/// else [`DEFAULT_TARGET_LATENCY_S`]; chunk duration: segment minus offset; rate bounds
/// narrowed to the ServiceDescription's PlaybackRate) and the availabilityTimeOffset used
/// (seconds a segment is requested before it is complete). `None`: normal live.
pub fn low_latency(
    mpd: &Mpd,
    segment_s: f64,
    forced: bool,
    target_s: Option<f64>,
) -> Result<Option<(LowLatency, f64)>> {
    let (offset, complete) = low_latency_signal(mpd);
    let offset = offset.filter(|o| o.is_finite() && *o > 0.0);
    let signalled = complete == Some(false) && offset.is_some();
    if !forced && !signalled {
        return Ok(None);
    }
    if let Some(t) = target_s {
        if !(t.is_finite() && t > 0.0 && t <= 60.0) {
            bail!("the target latency must be between 0 and 60 seconds (got {t})");
        }
    }
    // An offset of a whole segment or more would ask for segments before anything of them
    // exists.
    let offset = offset
        .map(|o| o.min(segment_s * 0.99))
        .filter(|o| *o > 0.0)
        .unwrap_or(0.0);
    let chunk_s = segment_s - offset;
    let service = mpd.service_descriptions.first();
    let latency = service.and_then(|s| s.latency.as_ref());
    let target = target_s
        .or_else(|| {
            latency
                .and_then(|l| l.target)
                .map(|ms| ms as f64 / 1000.0)
                .filter(|t| *t > 0.0)
        })
        .unwrap_or(DEFAULT_TARGET_LATENCY_S);
    let mut ll = LowLatency::new(target, chunk_s);
    if let Some(min) = latency.and_then(|l| l.min) {
        ll.min_latency_s = (min as f64 / 1000.0).min(target);
    }
    let rate = service.and_then(|s| s.playback_rate.as_ref());
    ll = ll.with_rate_bounds(rate.and_then(|r| r.min), rate.and_then(|r| r.max));
    Ok(Some((ll, offset)))
}

/// How often a live MPD is re-read: minimumUpdatePeriod, at least 0.5 s (`None`: never).
pub fn update_period_s(mpd: &Mpd) -> Option<f64> {
    mpd.minimum_update_period()
        .map(|d| d.as_secs_f64().max(0.5))
}

/// Whether an MPD read at session time `fetched_at_s` is due again at session time `now_s`.
pub fn refresh_due(update_every_s: Option<f64>, fetched_at_s: f64, now_s: f64) -> bool {
    update_every_s
        .map(|p| now_s - fetched_at_s >= p)
        .unwrap_or(false)
}

/// Server minus local clock, seconds, from a server time `server_s` read between the local times
/// `local_before_s` and `local_after_s`; `Err` with that offset when the server clock is a day
/// or more away from ours (broken, not skewed).
pub fn clock_offset_s(server_s: f64, local_before_s: f64, local_after_s: f64) -> Result<f64, f64> {
    let offset = server_s - (local_before_s + local_after_s) / 2.0;
    if offset.abs() < 86_400.0 {
        Ok(offset)
    } else {
        Err(offset)
    }
}

/// A point in time from seconds since the Unix epoch; an error for values before it or absurd.
pub fn at_epoch(secs: f64) -> Result<SystemTime> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .ok_or_else(|| anyhow!("time {secs} s since the Unix epoch is out of range"))
}

/// Seconds since the Unix epoch (0 before it).
pub fn epoch_s(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AST: f64 = 1_700_000_000.0;

    /// Segments `numbers` of 2 s, number 1 starting at the availabilityStartTime.
    fn window(numbers: std::ops::RangeInclusive<u64>) -> Vec<MediaSegment> {
        numbers
            .map(|number| MediaSegment {
                url: format!("http://x.test/{number}.m4s").parse().unwrap(),
                range: None,
                number,
                time: (number - 1) * 2000,
                start: (number - 1) as f64 * 2.0,
                duration: 2.0,
            })
            .collect()
    }

    #[test]
    fn a_live_session_joins_the_delay_behind_the_edge_and_waits_for_each_segment() {
        // 20.5 s in, segments 1..=10 are out (10 ends at 20 s); 6 s behind the edge is 14.5 s,
        // inside segment 8 (14..16 s).
        let now = AST + 20.5;
        let s = LiveSchedule::join(&window(1..=10), AST, 6.0, 30.0, now).unwrap();
        assert_eq!(s.first_number, 8);
        assert_eq!(s.first_end_epoch_s, AST + 16.0);
        assert_eq!(s.segment_s, 2.0);
        // 8, 9, 10 published, then 15 during 30 s.
        assert_eq!(s.count, 18);
        assert_eq!(s.number(3), 11);
        assert_eq!(s.available_in(0, now), -4.5);
        assert_eq!(s.available_in(2, now), -0.5);
        // Number 11 ends at 22 s; later it is already out.
        assert_eq!(s.available_in(3, now), 1.5);
        assert_eq!(s.available_in(3, now + 1.5), 0.0);
        // The same stream joined 4 s later starts 2 segments further.
        let later = LiveSchedule::join(&window(3..=12), AST, 6.0, 30.0, now + 4.0).unwrap();
        assert_eq!(later.first_number, 10);
    }

    #[test]
    fn a_delay_beyond_the_window_joins_at_the_newest_segment_and_nothing_listed_is_none() {
        let s = LiveSchedule::join(&window(5..=10), AST, 60.0, 8.0, AST + 20.5).unwrap();
        assert_eq!(s.first_number, 10);
        assert_eq!(s.count, 1 + 4);
        assert_eq!(LiveSchedule::join(&[], AST, 6.0, 30.0, AST + 20.5), None);
    }

    /// Audio segments of `d` seconds numbered from `first`, the first one starting at `t0`.
    fn audio(first: u64, t0: f64, d: f64, n: usize) -> Vec<MediaSegment> {
        (0..n)
            .map(|i| MediaSegment {
                url: format!("http://x.test/a{i}.m4s").parse().unwrap(),
                range: None,
                number: first + i as u64,
                time: 0,
                start: t0 + i as f64 * d,
                duration: d,
            })
            .collect()
    }

    #[test]
    fn the_audio_beside_a_live_video_starts_with_it_and_is_scheduled_on_its_own_durations() {
        // ffmpeg's AAC segments: 1.002667 s (47 frames of 1024 at 48 kHz) beside 1 s of video.
        let d = 1.002_667;
        let media = audio(1, 0.0, d, 10);
        // The video starts at 6.5 s: the audio segment starting at 6.016 s holds it.
        let s = LiveSchedule::beside(&media, AST, AST + 6.5, 8.0).unwrap();
        assert_eq!(s.first_number, 7);
        assert!((s.segment_s - d).abs() < 1e-9);
        assert!((s.first_end_epoch_s - (AST + 7.0 * d)).abs() < 1e-6);
        // 7..=10 listed, 8 s more, and one to cover the video's end.
        assert_eq!(s.count, 4 + 8 + 1);
        assert!((s.available_in(2, AST) - 9.0 * d).abs() < 1e-6);
        // ffmpeg's first AAC segment is short (priming): the median duration ignores it.
        let mut primed = audio(1, 0.0, d, 6);
        primed[0].duration = 0.981;
        for (i, s) in primed.iter_mut().enumerate().skip(1) {
            s.start = 0.981 + (i - 1) as f64 * d;
        }
        let s = LiveSchedule::beside(&primed, AST, AST + 4.0, 8.0).unwrap();
        assert_eq!(s.first_number, 5);
        assert_eq!(s.segment_s, d);
        // An audio cut a frame after the video's still starts with it.
        let late = audio(1, 0.021, 1.0, 10);
        assert_eq!(
            LiveSchedule::beside(&late, AST, AST + 4.0, 8.0)
                .unwrap()
                .first_number,
            5
        );
        // A video starting before the oldest audio listed takes the oldest; after the newest,
        // the newest; nothing listed is none.
        let window = audio(20, 19.0, 1.0, 5);
        let s = LiveSchedule::beside(&window, AST, AST + 10.0, 4.0).unwrap();
        assert_eq!(s.first_number, 20);
        assert_eq!(s.count, 5 + 4 + 1);
        let s = LiveSchedule::beside(&window, AST, AST + 40.0, 4.0).unwrap();
        assert_eq!(s.first_number, 24);
        assert_eq!(LiveSchedule::beside(&[], AST, AST, 4.0), None);
    }

    #[test]
    fn a_live_session_counts_published_and_upcoming_segments() {
        // Starting 3 segments behind the edge (numbers 10..=12 out) for 8 s of 2-s segments:
        // the 3 published ones, then the 4 published during the session.
        assert_eq!(live_segment_count(10, 12, 8.0, 2.0), 7);
        assert_eq!(live_segment_count(12, 12, 8.0, 2.0), 5);
        assert_eq!(live_segment_count(12, 12, 0.0, 2.0), 1);
        assert_eq!(live_segment_count(20, 12, 1.0, 2.0), 2);
    }

    #[test]
    fn the_mpd_is_due_again_after_its_update_period_only() {
        assert!(!refresh_due(None, 0.0, 1e9));
        assert!(!refresh_due(Some(2.0), 10.0, 11.9));
        assert!(refresh_due(Some(2.0), 10.0, 12.0));
    }

    #[test]
    fn the_clock_offset_is_taken_at_the_middle_of_the_request_unless_absurd() {
        assert_eq!(clock_offset_s(AST + 3.0, AST, AST + 2.0), Ok(2.0));
        assert_eq!(clock_offset_s(AST - 10.0, AST, AST), Ok(-10.0));
        assert_eq!(clock_offset_s(AST + 86_400.0, AST, AST), Err(86_400.0));
        assert_eq!(clock_offset_s(0.0, AST, AST), Err(-AST));
    }

    #[test]
    fn times_before_the_epoch_or_absurd_are_errors_not_panics() {
        assert!(at_epoch(-315_619_200.0).is_err());
        assert!(at_epoch(f64::NAN).is_err());
        assert!(at_epoch(f64::INFINITY).is_err());
        assert!(at_epoch(1e300).is_err());
        let t = at_epoch(1_700_000_000.5).unwrap();
        assert_eq!(epoch_s(t), 1_700_000_000.5);
    }

    const LL_MPD: &str = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"
        profiles="urn:mpeg:dash:profile:isoff-live:2011" availabilityStartTime="2026-01-01T00:00:00Z"
        minBufferTime="PT1S">
      <ServiceDescription id="0"><Latency target="1200" min="800" max="3000"/>
        <PlaybackRate min="0.95" max="1.2"/></ServiceDescription>
      <Period id="p0" start="PT0S">
        <AdaptationSet mimeType="video/mp4" codecs="avc1.64001f">
          <SegmentTemplate timescale="1000" duration="2000" startNumber="1"
              availabilityTimeOffset="1.5" availabilityTimeComplete="false"
              initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s"/>
          <Representation id="v" bandwidth="800000"/>
        </AdaptationSet></Period></MPD>"#;

    #[test]
    fn low_latency_follows_the_mpd_signalling_and_its_service_description() {
        let mpd = Mpd::parse(LL_MPD).unwrap();
        assert_eq!(low_latency_signal(&mpd), (Some(1.5), Some(false)));
        let (ll, offset) = low_latency(&mpd, 2.0, false, None).unwrap().unwrap();
        assert_eq!(offset, 1.5);
        assert!((ll.chunk_s - 0.5).abs() < 1e-12);
        assert!((ll.target_latency_s - 1.2).abs() < 1e-12);
        assert!((ll.min_latency_s - 0.8).abs() < 1e-12);
        assert_eq!((ll.rate_min, ll.rate_max), (0.95, 1.1));
        // A target asked for wins; a bad one is an error.
        let (ll, _) = low_latency(&mpd, 2.0, false, Some(2.5)).unwrap().unwrap();
        assert_eq!(ll.target_latency_s, 2.5);
        assert!(low_latency(&mpd, 2.0, false, Some(-1.0)).is_err());
        // A complete template is normal live unless forced; forced without an offset, the
        // chunk is the segment and the target the default.
        let plain = Mpd::parse(
            &LL_MPD
                .replace(" availabilityTimeOffset=\"1.5\" availabilityTimeComplete=\"false\"", "")
                .replace("<ServiceDescription id=\"0\"><Latency target=\"1200\" min=\"800\" max=\"3000\"/>\n        <PlaybackRate min=\"0.95\" max=\"1.2\"/></ServiceDescription>", ""),
        )
        .unwrap();
        assert_eq!(low_latency_signal(&plain), (None, None));
        assert_eq!(low_latency(&plain, 2.0, false, None).unwrap(), None);
        let (ll, offset) = low_latency(&plain, 2.0, true, None).unwrap().unwrap();
        assert_eq!((offset, ll.chunk_s, ll.target_latency_s), (0.0, 2.0, 1.5));
    }
}
