//! Low-latency live channels: the channel's segments leave as CMAF chunks while they are
//! "produced" on the wall clock, as a live encoder's do.
//!
//! Timeline (from the channel's availabilityStartTime, segment duration d, chunk duration c):
//! chunk `i` of segment `k` (0-based, `$Number$` = k + 1) is out at `k*d + min((i+1)*c, d)`.
//!
//! - LL-DASH: the MPD's SegmentTemplate has `availabilityTimeOffset` = d - c and
//!   `availabilityTimeComplete="false"`; a ServiceDescription gives the target latency and the
//!   playback-rate bounds; every AdaptationSet has a ProducerReferenceTime (media time 0 is
//!   availabilityStartTime) and every chunk a `prft` box. `<rep>/<N>.m4s` requested from one
//!   segment duration before its first chunk is out: 200 at once, the chunks already out
//!   immediately and the rest as they are produced (chunked transfer). Earlier: 404.
//! - LL-HLS: `<rep>/<N>.<i>.m4s` is chunk `i` alone (a part); a request for a part that is not
//!   out yet (the preload hint) is held until it is, from up to one segment duration ahead. The
//!   media playlist lists parts for the last segments and for the one being produced, a preload
//!   hint for the next part, rendition reports, and honours blocking reloads
//!   (`_HLS_msn`/`_HLS_part`): the answer waits for that part and is the playlist as of the
//!   instant it came out, so it is the same bytes for every client asking the same question.
//!
//! The chunks of segment `N` concatenated are the bytes of `<N>.m4s`. A chunk slot holding no
//! sample (a chunk shorter than a frame) has no part; configuration keeps chunks at 0.05 s or
//! more.

use std::fmt::Write as _;

use mpd::{Latency, PlaybackRate, ProducerReferenceTime, ServiceDescription};

use super::*;
use crate::chunk::{self, Placement, Split};

/// DASH-IF low-latency profile, added to the channel's profiles.
const PROFILE_LL: &str = "http://www.dashif.org/guidelines/low-latency-live-v5";
/// Playback rate bounds the ServiceDescription offers players for holding the target latency.
const RATE_MIN: f64 = 0.9;
const RATE_MAX: f64 = 1.1;
/// Segments of the playlist, counted back from the newest, whose parts are listed (LL-HLS
/// asks for the parts of the last three target durations at least).
const PART_SEGMENTS: u64 = 3;
/// VOD segments kept read into chunks (a loop of a title is a few dozen).
const MAX_SPLITS: usize = 256;
/// Largest VOD segment read into memory for chunking.
const MAX_SEGMENT: u64 = 64 << 20;

/// Adds the low-latency signalling to a channel's MPD.
pub(super) fn signal(mpd: &mut Mpd, ll: LowLatency) {
    let target_ms = (ll.target.as_secs_f64() * 1000.0).round() as u32;
    mpd.service_descriptions = vec![ServiceDescription {
        id: Some(0),
        latency: Some(Latency {
            target: Some(target_ms),
            min: Some(((ll.chunk.as_secs_f64() * 1000.0).round() as u32).min(target_ms)),
            max: Some(target_ms.saturating_mul(2)),
        }),
        playback_rate: Some(PlaybackRate {
            min: Some(RATE_MIN),
            max: Some(RATE_MAX),
        }),
    }];
    // Players without low-latency support play the target latency behind too.
    mpd.suggested_presentation_delay = Some(ll.target);
    if !mpd.profiles.split(',').any(|p| p.trim() == PROFILE_LL) {
        mpd.profiles = format!("{},{PROFILE_LL}", mpd.profiles);
    }
}

/// Gives every AdaptationSet its ProducerReferenceTime: media time 0 was produced at the
/// availabilityStartTime, on the clock `timing` serves.
pub(super) fn producer_reference(mpd: &mut Mpd, ast: SystemTime, timing: &Descriptor) {
    for period in &mut mpd.periods {
        for set in &mut period.adaptation_sets {
            set.producer_reference_times = vec![ProducerReferenceTime {
                id: 0,
                kind: Some("encoder".into()),
                wall_clock_time: xs_datetime(ast),
                presentation_time: 0,
                utc_timing: Some(timing.clone()),
            }];
        }
    }
}

/// VOD segments read into chunks, by storage key, ETag and chunk length.
#[derive(Default)]
pub(super) struct Splits(Mutex<HashMap<String, Arc<Split>>>);

impl Splits {
    async fn get(
        &self,
        storage: &dyn Storage,
        key: &str,
        chunk_ticks: u64,
        segment_ticks: u64,
    ) -> Result<Option<Arc<Split>>, Answer<'static>> {
        let obj = match storage.open(key).await {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Answer::Storage(e)),
        };
        let meta = obj.meta().clone();
        let id = format!("{key}\n{}\n{chunk_ticks}", meta.etag);
        if let Some(s) = lock(&self.0).get(&id) {
            return Ok(Some(s.clone()));
        }
        if meta.len > MAX_SEGMENT {
            tracing::error!(%key, "VOD segment too large to chunk");
            return Err(Answer::Failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "media segment too large\n",
            ));
        }
        let bytes = storage::read_to_vec(obj.as_ref(), 0..meta.len)
            .await
            .map_err(|source| {
                Answer::Storage(storage::StorageError::Io {
                    key: key.to_string(),
                    source,
                })
            })?;
        let split = chunk::split(&Bytes::from(bytes), chunk_ticks, segment_ticks).map_err(|e| {
            tracing::error!(%key, error = %format!("{e:#}"), "cannot cut a VOD segment into chunks");
            Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "bad media segment\n")
        })?;
        let split = Arc::new(split);
        let mut map = lock(&self.0);
        if map.len() >= MAX_SPLITS {
            map.clear();
        }
        map.insert(id, split.clone());
        Ok(Some(split))
    }
}

/// A representation's timing in nanoseconds and chunk slots.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timing {
    /// Segment duration.
    seg_ns: i128,
    /// Chunk duration.
    chunk_ns: i128,
    /// Chunk duration in the representation's ticks.
    chunk_ticks: u64,
    /// Chunks per segment.
    slots: u64,
}

impl Timing {
    fn of(r: &RepPlan, ll: LowLatency) -> Timing {
        let seg_ns = (i128::from(r.duration) * 1_000_000_000) / i128::from(r.timescale.max(1));
        let chunk_ns = (ll.chunk.as_nanos() as i128).clamp(1, seg_ns.max(1));
        let chunk_ticks = ((chunk_ns * i128::from(r.timescale)) / 1_000_000_000).max(1) as u64;
        Timing {
            seg_ns,
            chunk_ns,
            chunk_ticks,
            slots: r.duration.div_ceil(chunk_ticks).max(1),
        }
    }

    /// When chunk `i` of segment `k` is out, in nanoseconds after availabilityStartTime.
    fn ready(&self, k: u64, i: u64) -> i128 {
        i128::from(k) * self.seg_ns + (i128::from(i + 1) * self.chunk_ns).min(self.seg_ns)
    }

    /// The segment being produced at `elapsed` and how many of its chunks are out.
    fn edge(&self, elapsed: i128) -> (u64, u64) {
        if elapsed < 0 || self.seg_ns <= 0 {
            return (0, 0);
        }
        let k = (elapsed / self.seg_ns) as u64;
        let into = elapsed - i128::from(k) * self.seg_ns;
        (k, ((into / self.chunk_ns) as u64).min(self.slots))
    }
}

/// `<N>.m4s` (the segment) or `<N>.<i>.m4s` (part `i`).
fn parse_media(file: &str) -> Option<(u64, Option<u64>)> {
    let stem = file.strip_suffix(".m4s")?;
    let digits = |s: &str| {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match stem.split_once('.') {
        None => Some((digits(stem)?, None)),
        Some((n, i)) => Some((digits(n)?, Some(digits(i)?))),
    }
}

/// A media request of a low-latency channel: a whole segment (streamed as it is produced) or
/// one part.
pub(super) async fn media<'a>(
    live: &Live,
    ctx: &Ctx<'a>,
    ch: &Channel,
    ll: LowLatency,
    plan: &Plan,
    rep: &str,
    file: &str,
) -> Answer<'a> {
    let Some(r) = plan.reps.get(rep) else {
        return Answer::NotFound;
    };
    let Some((number, part)) = parse_media(file).filter(|(n, _)| *n >= START_NUMBER) else {
        return Answer::NotFound;
    };
    let k = number - START_NUMBER;
    let t = Timing::of(r, ll);
    let elapsed = nanos_between(ch.ast, ctx.now);
    let unavailable = Answer::NotFoundFor(&ctx.config.cache_control.live_unavailable);
    if part.is_some_and(|i| i >= t.slots) {
        return Answer::NotFound;
    }
    // Out of the time-shift window, or more than a segment before its first bytes exist.
    let end = i128::from(k + 1) * t.seg_ns;
    let first = t.ready(k, part.unwrap_or(0));
    if end < elapsed - ch.tsbd.as_nanos() as i128 || elapsed < first - t.seg_ns {
        return unavailable;
    }
    let j = k % plan.count;
    let key = vod_key(ch, r, rep, j);
    let split = match live
        .splits
        .get(ctx.storage, &key, t.chunk_ticks, r.duration)
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::error!(%key, "VOD segment of a live channel is missing");
            return Answer::NotFound;
        }
        Err(answer) => return answer,
    };
    // As for the normal channel: the live decode time is k*d plus the segment's own offset.
    let delta = i128::from(k - j) * i128::from(r.duration) - i128::from(r.pto);
    let Ok(decode_time) = u64::try_from(i128::from(split.base_decode_time()) + delta) else {
        return Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "bad media segment\n");
    };
    let epoch_ns = ch
        .ast
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let place = |i: u64| Placement {
        decode_time,
        sequence: (k.wrapping_mul(t.slots).wrapping_add(i).wrapping_add(1)) as u32,
        timescale: r.timescale,
        epoch_ns,
    };
    let chunk_at = |i: u64| split.chunk(i as usize, place(i));
    let etag_base = split_etag(&key, &number);
    match part {
        Some(i) => {
            if !split.has(i as usize) {
                return Answer::NotFound;
            }
            // The preload hint's part: held until it is out.
            let wait = t.ready(k, i) - elapsed;
            if wait > 0 {
                tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
            }
            let bytes = match chunk_at(i) {
                Ok(b) => b,
                Err(e) => return chunk_failed(&key, e),
            };
            let modified = ch.ast + Duration::from_nanos(t.ready(k, i).max(0) as u64);
            Answer::Object {
                obj: Arc::new(MemoryObject::new(
                    bytes,
                    modified,
                    format!("\"{etag_base}.{i}\""),
                )),
                content_type: mp4_type(r),
                cache_control: Cow::Borrowed(&ctx.config.cache_control.segment),
            }
        }
        None => {
            let mut chunks = Vec::with_capacity(t.slots as usize);
            for i in (0..t.slots).filter(|i| split.has(*i as usize)) {
                let bytes = match chunk_at(i) {
                    Ok(b) => b,
                    Err(e) => return chunk_failed(&key, e),
                };
                let wait = (t.ready(k, i) - elapsed).max(0) as u64;
                chunks.push((Duration::from_nanos(wait), bytes));
            }
            let etag = format!("\"{etag_base}\"");
            let modified = ch.ast + Duration::from_nanos(end.max(0) as u64);
            if chunks.iter().all(|(wait, _)| wait.is_zero()) {
                // Complete: an ordinary object, with its length and ranges.
                let mut whole = Vec::with_capacity(chunks.iter().map(|(_, b)| b.len()).sum());
                for (_, b) in &chunks {
                    whole.extend_from_slice(b);
                }
                return Answer::Object {
                    obj: Arc::new(MemoryObject::new(Bytes::from(whole), modified, etag)),
                    content_type: mp4_type(r),
                    cache_control: Cow::Borrowed(&ctx.config.cache_control.segment),
                };
            }
            Answer::Paced {
                chunks,
                etag,
                modified,
                content_type: mp4_type(r),
                cache_control: Cow::Borrowed(&ctx.config.cache_control.segment),
            }
        }
    }
}

/// The opaque part of a low-latency segment's ETag: the VOD segment's storage key (its
/// content) and the live number.
fn split_etag(key: &str, number: &u64) -> String {
    format!("{:016x}-n{number:x}", common::hash::fnv1a(key.as_bytes()))
}

fn chunk_failed<'a>(key: &str, e: anyhow::Error) -> Answer<'a> {
    tracing::error!(%key, error = %format!("{e:#}"), "cannot write a chunk");
    Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "bad media segment\n")
}

/// A blocking playlist request: wait for part `part` of the segment with media sequence
/// number `msn` (`part` absent: for the whole segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    msn: u64,
    part: Option<u64>,
}

/// Reads `_HLS_msn` and `_HLS_part` from a query (other parameters are ignored).
fn parse_block(query: Option<&str>) -> Result<Option<Block>, &'static str> {
    let mut msn = None;
    let mut part = None;
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            (!value.is_empty() && value.len() <= 19 && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
        };
        match name {
            "_HLS_msn" => msn = Some(number().ok_or("_HLS_msn is not a number\n")?),
            "_HLS_part" => part = Some(number().ok_or("_HLS_part is not a number\n")?),
            _ => {}
        }
    }
    match (msn, part) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err("_HLS_part without _HLS_msn\n"),
        (Some(msn), part) => Ok(Some(Block { msn, part })),
    }
}

/// A low-latency media playlist, after waiting for a blocking request's part.
pub(super) async fn hls_media<'a>(
    ctx: &Ctx<'a>,
    req: &Req,
    ch: &Channel,
    ll: LowLatency,
    plan: &Plan,
    rep: &str,
) -> Answer<'a> {
    let Some(r) = plan.reps.get(rep) else {
        return Answer::NotFound;
    };
    let t = Timing::of(r, ll);
    let elapsed = nanos_between(ch.ast, ctx.now);
    let block = match parse_block(req.query.as_deref()) {
        Ok(b) => b,
        Err(why) => return Answer::Failed(StatusCode::BAD_REQUEST, why),
    };
    let at = match block {
        None => elapsed,
        Some(b) => {
            // The newest complete segment has MSN k (numbers are 1-based) while k+1 is made.
            let (k, _) = t.edge(elapsed);
            if b.msn > k + 2 {
                return Answer::Failed(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn is more than two segments ahead\n",
                );
            }
            let Some(seg) = b.msn.checked_sub(START_NUMBER) else {
                return Answer::Failed(StatusCode::BAD_REQUEST, "_HLS_msn is below the first\n");
            };
            let ready = match b.part {
                // A part index past the segment's last part means part 0 of the next one.
                Some(p) if p >= t.slots => t.ready(seg + 1, 0),
                Some(p) => t.ready(seg, p),
                None => t.ready(seg, t.slots - 1),
            };
            if ready > elapsed {
                tokio::time::sleep(Duration::from_nanos((ready - elapsed) as u64)).await;
            }
            ready.max(elapsed)
        }
    };
    let body = playlist(ch, ll, plan, rep, r, t, at);
    let etag = format!("\"{:016x}\"", common::hash::fnv1a(body.as_bytes()));
    let modified = ch.ast + Duration::from_nanos(at.max(0) as u64);
    // A blocking answer is the playlist as of its part: the same for everyone asking, for good.
    let cache_control = if block.is_some() {
        format!("public, max-age={}", 3 * target_duration(plan))
    } else {
        "public, max-age=0".to_string()
    };
    Answer::Object {
        obj: Arc::new(MemoryObject::new(Bytes::from(body), modified, etag)),
        content_type: HLS_CONTENT_TYPE,
        cache_control: Cow::Owned(cache_control),
    }
}

/// The LL-HLS media playlist of `rep` at `at` nanoseconds after availabilityStartTime.
fn playlist(
    ch: &Channel,
    ll: LowLatency,
    plan: &Plan,
    rep: &str,
    r: &RepPlan,
    t: Timing,
    at: i128,
) -> String {
    let (k, parts) = t.edge(at);
    let mut listed = window(r.duration, r.timescale, at, ch.tsbd);
    if listed.end - listed.start > mpd::MAX_SEGMENTS {
        let newest = window(r.duration, r.timescale, at, mpd::LIVE_TRIM);
        listed = newest.start.max(listed.end - mpd::MAX_SEGMENTS)..listed.end;
    }
    let part_s = t.chunk_ns as f64 / 1e9;
    let seg_s = t.seg_ns as f64 / 1e9;
    let pdt = |k: u64| {
        let at: chrono::DateTime<chrono::Utc> =
            (ch.ast + Duration::from_nanos((i128::from(k) * t.seg_ns) as u64)).into();
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    // Parts: duration c, the last of a segment what remains of it; independent when it starts
    // with a key frame (a segment's first part; every audio part).
    let part_line = |out: &mut String, k: u64, i: u64| {
        let start = i128::from(i) * t.chunk_ns;
        let dur = ((start + t.chunk_ns).min(t.seg_ns) - start) as f64 / 1e9;
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={dur:.5},URI=\"{rep}/{}.{i}.m4s\"",
            k + START_NUMBER
        );
        if i == 0 || r.hls.audio {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    };
    let mut out = String::with_capacity(4096);
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{HLS_VERSION}");
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", target_duration(plan));
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
        (3.0 * part_s).max(ll.target.as_secs_f64())
    );
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_s:.5}");
    let first = if listed.is_empty() { k } else { listed.start };
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", first + START_NUMBER);
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{rep}/init.mp4\"");
    for s in listed.clone() {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(s));
        if s + PART_SEGMENTS >= k {
            for i in 0..t.slots {
                part_line(&mut out, s, i);
            }
        }
        let _ = writeln!(out, "#EXTINF:{seg_s:.5},\n{rep}/{}.m4s", s + START_NUMBER);
    }
    // The segment being produced: its parts so far, then the next part's hint.
    let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(k));
    for i in 0..parts {
        part_line(&mut out, k, i);
    }
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{rep}/{}.{parts}.m4s\"",
        k + START_NUMBER
    );
    // Every other rendition is on the same timeline: the same last segment and part.
    let (last_msn, last_part) = if parts > 0 {
        (k + START_NUMBER, parts - 1)
    } else {
        (k, t.slots - 1)
    };
    let mut others: Vec<(&String, &RepPlan)> =
        plan.reps.iter().filter(|(id, _)| *id != rep).collect();
    others.sort_by_key(|(_, o)| o.hls.order);
    if k > 0 || parts > 0 {
        for (id, _) in others {
            let _ = writeln!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{id}.m3u8\",LAST-MSN={last_msn},LAST-PART={last_part}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        // 2 s segments at 90 kHz, 0.5 s chunks.
        Timing {
            seg_ns: 2_000_000_000,
            chunk_ns: 500_000_000,
            chunk_ticks: 45_000,
            slots: 4,
        }
    }

    #[test]
    fn chunks_come_out_on_the_wall_clock() {
        let t = timing();
        let s = 1_000_000_000i128;
        assert_eq!(t.ready(0, 0), s / 2);
        assert_eq!(t.ready(0, 3), 2 * s);
        assert_eq!(t.ready(5, 1), 11 * s);
        assert_eq!(t.edge(0), (0, 0));
        assert_eq!(t.edge(s / 2), (0, 1));
        assert_eq!(t.edge(2 * s - 1), (0, 3));
        assert_eq!(t.edge(2 * s), (1, 0));
        assert_eq!(t.edge(-5), (0, 0));
        // A chunk that does not divide the segment: the last one is shorter.
        let odd = Timing {
            seg_ns: 2_000_000_000,
            chunk_ns: 600_000_000,
            chunk_ticks: 54_000,
            slots: 4,
        };
        assert_eq!(odd.ready(0, 3), 2 * s);
        assert_eq!(odd.edge(19 * s / 10), (0, 3));
    }

    #[test]
    fn media_names_and_blocking_queries() {
        assert_eq!(parse_media("12.m4s"), Some((12, None)));
        assert_eq!(parse_media("12.3.m4s"), Some((12, Some(3))));
        for bad in [
            "x.m4s",
            "12.m4",
            ".m4s",
            "1..m4s",
            "1.2.3.m4s",
            "-1.m4s",
            "1.+2.m4s",
        ] {
            assert_eq!(parse_media(bad), None, "{bad}");
        }
        assert_eq!(parse_block(None), Ok(None));
        assert_eq!(parse_block(Some("a=b")), Ok(None));
        assert_eq!(
            parse_block(Some("_HLS_msn=7&_HLS_part=2")),
            Ok(Some(Block {
                msn: 7,
                part: Some(2)
            }))
        );
        assert_eq!(
            parse_block(Some("_HLS_msn=7&_HLS_skip=YES")),
            Ok(Some(Block { msn: 7, part: None }))
        );
        assert!(parse_block(Some("_HLS_part=2")).is_err());
        assert!(parse_block(Some("_HLS_msn=x")).is_err());
        assert!(parse_block(Some("_HLS_msn=")).is_err());
        assert!(parse_block(Some("_HLS_msn=99999999999999999999")).is_err());
    }
}
