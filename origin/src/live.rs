//! Live channels: a dynamic MPD that loops a packaged VOD title on the wall clock with
//! continuous segment numbers, and the segments, served only inside the availability window.
//!
//! Timeline: segment number N (from 1) covers `[AST + (N-1)d, AST + Nd)` where d is the VOD
//! title's segment duration and AST the channel's fixed availabilityStartTime. It is VOD segment
//! `(N-1) mod count` of the title, re-timed so its decode time is `(N-1)d` (see
//! [`crate::retime`]). It is served only while its end lies in `[now - timeShiftBufferDepth,
//! now]`; before and after, 404 with a short max-age, never a wait.
//!
//! URLs: `/live/<ch>/manifest.mpd`, `/live/<ch>/<rep>/init.mp4`, `/live/<ch>/<rep>/<N>.m4s`.
//!
//! HLS over the same segments: `/live/<ch>/master.m3u8` (an audio group of the audio
//! representations, a variant per video one) and `/live/<ch>/<rep>.m3u8`, a sliding window of
//! exactly the segments the MPD lists at that instant (EXT-X-MEDIA-SEQUENCE = the first one's
//! number, EXT-X-PROGRAM-DATE-TIME = its start on the MPD's wall clock, AST + (N-1)d; it becomes
//! available, in both manifests, at AST + Nd). A playlist changes only when a segment becomes
//! available, so like the MPD it is byte-identical (same ETag, 304-able) for one segment, and
//! its max-age is at most half a target duration.
//! The VOD MPD is re-read when its ETag changes, so re-packaging a title updates the channel.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;

use futures_util::{stream, StreamExt};
use http::header::HOST;
use http::StatusCode;
use mpd::{
    effective_template, Descriptor, Mpd, PresentationType, SegmentTemplate, Template, TemplateVars,
};

use crate::answer::{Answer, Req};
use crate::config::Config;
use crate::kind::Kind;
use crate::retime;

mod ll;
use crate::storage::{self, ByteStream, MemoryObject, Object, ObjectMeta, Storage};

/// Live media segment URL template (relative to the live MPD).
const LIVE_MEDIA: &str = "$RepresentationID$/$Number$.m4s";
/// Live init segment URL template.
const LIVE_INIT: &str = "$RepresentationID$/init.mp4";
/// The number of the segment that starts at availabilityStartTime.
const START_NUMBER: u64 = 1;
/// Largest segment head (bytes before `mdat`) read into memory for re-timing.
const MAX_HEAD: u64 = 4 << 20;
/// Largest init segment read into memory.
const MAX_INIT: u64 = 4 << 20;

/// One configured channel.
#[derive(Debug, Clone)]
struct Channel {
    title: String,
    ast: SystemTime,
    tsbd: Duration,
    spd: Duration,
    mup: Duration,
    max_age_cap: Option<u64>,
    time_url: Option<String>,
    /// Set for a low-latency channel.
    ll: Option<LowLatency>,
}

/// What makes a channel low-latency: its chunk duration and target latency.
#[derive(Debug, Clone, Copy)]
struct LowLatency {
    chunk: Duration,
    target: Duration,
}

/// How a channel maps onto its VOD title (rebuilt when the VOD MPD changes).
struct Plan {
    /// The live MPD without publishTime and UTCTiming.
    base: Mpd,
    /// Segments in one loop of the title.
    count: u64,
    /// Reference segment duration `d/timescale` (all representations share it).
    seg_ticks: u64,
    seg_timescale: u64,
    reps: HashMap<String, RepPlan>,
    /// max-age of the live MPD in seconds.
    max_age: u64,
}

struct RepPlan {
    /// What HLS says about it.
    hls: HlsRep,
    init_key: String,
    media: Template,
    bandwidth: u64,
    vod_start: u64,
    timescale: u64,
    duration: u64,
    pto: u64,
}

/// The live channels of one origin.
pub struct Live {
    channels: BTreeMap<String, Channel>,
    plans: Mutex<HashMap<String, (String, Arc<Plan>)>>,
    /// VOD segments of low-latency channels read into chunks (see [`ll`]).
    splits: ll::Splits,
}

impl Live {
    /// Reads the channel table of a (validated) config.
    pub fn new(config: &Config) -> Result<Live> {
        let mut channels = BTreeMap::new();
        for (name, ch) in &config.channels {
            let live = config.live_for(name);
            let ast = chrono::DateTime::parse_from_rfc3339(&live.availability_start_time)
                .with_context(|| {
                    format!(
                        "channel `{name}`: availability_start_time `{}`",
                        live.availability_start_time
                    )
                })?;
            let ast = UNIX_EPOCH
                + Duration::from_millis(u64::try_from(ast.timestamp_millis()).map_err(|_| {
                    anyhow!("channel `{name}`: availability_start_time before 1970")
                })?);
            channels.insert(
                name.clone(),
                Channel {
                    title: ch.title().to_string(),
                    ast,
                    tsbd: Duration::from_secs_f64(live.time_shift_buffer_depth_secs),
                    spd: Duration::from_secs_f64(live.suggested_presentation_delay_secs),
                    mup: Duration::from_secs_f64(live.minimum_update_period_secs),
                    max_age_cap: live.mpd_max_age_secs,
                    time_url: live.utc_timing_url.clone(),
                    ll: ch.chunk_secs().map(|c| LowLatency {
                        chunk: Duration::from_secs_f64(c),
                        target: Duration::from_secs_f64(ch.target_latency_secs()),
                    }),
                },
            );
        }
        Ok(Live {
            channels,
            plans: Mutex::new(HashMap::new()),
            splits: ll::Splits::default(),
        })
    }
}

/// What a live request may read: the storage, the configuration and the time of the request.
pub struct Ctx<'a> {
    pub storage: &'a dyn Storage,
    pub config: &'a Config,
    pub now: SystemTime,
}

impl Live {
    /// Answers `/live/<rest>` when `rest` starts with a configured channel; `None` lets the
    /// request fall through to stored objects.
    pub async fn handle<'a>(
        &self,
        ctx: &Ctx<'a>,
        req: &Req,
        rest: &str,
    ) -> Option<(Answer<'a>, Kind)> {
        let (name, tail) = rest.split_once('/')?;
        let ch = self.channels.get(name)?;
        let kind = match tail {
            "manifest.mpd" => Kind::LiveMpd,
            t if t.ends_with(".m3u8") && !t.contains('/') => Kind::LiveMpd,
            t if t.ends_with("/init.mp4") => Kind::Init,
            _ => Kind::Segment,
        };
        let plan = match self.plan(ctx, name, ch).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::warn!(channel = name, title = %ch.title, "live channel's VOD title is missing");
                return Some((Answer::NotFound, kind));
            }
            Err(Failure::Storage(e)) => return Some((Answer::Storage(e), kind)),
            Err(Failure::Content(e)) => {
                tracing::error!(channel = name, error = %format!("{e:#}"), "live channel cannot be built");
                return Some((
                    Answer::Failed(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "live channel misconfigured\n",
                    ),
                    kind,
                ));
            }
        };
        let playlist = tail
            .strip_suffix(".m3u8")
            .filter(|t| !t.contains('/') && *t != "master");
        let answer = match (tail, playlist, tail.split_once('/')) {
            ("manifest.mpd", _, _) => manifest(ctx, req, ch, &plan),
            ("master.m3u8", _, _) => hls_master(ch, &plan),
            (_, Some(rep), _) => match ch.ll {
                Some(ll) => ll::hls_media(ctx, req, ch, ll, &plan, rep).await,
                None => hls_media(ctx, ch, &plan, rep),
            },
            (_, None, Some((rep, "init.mp4"))) => init(ctx, &plan, rep).await,
            (_, None, Some((rep, file))) => match ch.ll {
                Some(ll) => ll::media(self, ctx, ch, ll, &plan, rep, file).await,
                None => segment(ctx, ch, &plan, rep, file).await,
            },
            (_, None, None) => Answer::NotFound,
        };
        Some((answer, kind))
    }

    /// The channel's plan, rebuilt when the VOD MPD's ETag changed.
    async fn plan(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        ch: &Channel,
    ) -> Result<Option<Arc<Plan>>, Failure> {
        let key = format!("vod/{}/manifest.mpd", ch.title);
        let Some(obj) = ctx.storage.open(&key).await.map_err(Failure::Storage)? else {
            return Ok(None);
        };
        let etag = obj.meta().etag.clone();
        if let Some((tag, plan)) = lock(&self.plans).get(name) {
            if *tag == etag {
                return Ok(Some(plan.clone()));
            }
        }
        if obj.meta().len > MAX_INIT {
            return Err(Failure::Content(anyhow!("{key} is implausibly large")));
        }
        let bytes = storage::read_to_vec(obj.as_ref(), 0..obj.meta().len)
            .await
            .map_err(|e| {
                Failure::Storage(storage::StorageError::Io {
                    key: key.clone(),
                    source: e,
                })
            })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Failure::Content(anyhow!("{key} is not UTF-8")))?;
        let vod = Mpd::parse(&text).map_err(|e| Failure::Content(anyhow!("{key}: {e}")))?;
        let plan = Arc::new(
            build_plan(&ch.title, &vod, ch)
                .map_err(|e| Failure::Content(e.context(key.clone())))?,
        );
        lock(&self.plans).insert(name.to_string(), (etag, plan.clone()));
        Ok(Some(plan))
    }
}

enum Failure {
    Storage(storage::StorageError),
    Content(anyhow::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_url_safe(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Derives the live MPD and the segment mapping from the VOD MPD.
fn build_plan(title: &str, vod: &Mpd, ch: &Channel) -> Result<Plan> {
    if vod.presentation_type != PresentationType::Static {
        bail!("the looped title must be a static MPD");
    }
    let [period] = vod.periods.as_slice() else {
        bail!(
            "the looped title must have exactly one Period, it has {}",
            vod.periods.len()
        );
    };
    let total = vod
        .media_presentation_duration
        .or(period.duration)
        .ok_or_else(|| anyhow!("the title has no mediaPresentationDuration"))?;
    let total_ns = total.as_nanos();

    let mut reps = HashMap::new();
    let mut reference: Option<(u64, u64, u64)> = None; // (d, T, count)
    let mut live = vod.clone();
    live.presentation_type = PresentationType::Dynamic;
    live.availability_start_time = Some(ch.ast.into());
    live.media_presentation_duration = None;
    live.minimum_update_period = Some(ch.mup);
    live.time_shift_buffer_depth = Some(ch.tsbd);
    live.suggested_presentation_delay = Some(ch.spd);
    live.base_urls.clear();
    live.locations.clear();
    live.utc_timings.clear();
    if !live.profiles.contains(mpd::PROFILE_ISOFF_LIVE) {
        live.profiles = mpd::PROFILE_ISOFF_LIVE.to_string();
    }
    let lp = &mut live.periods[0];
    lp.id = Some(lp.id.clone().unwrap_or_else(|| "p0".into()));
    lp.start = Some(Duration::ZERO);
    lp.duration = None;
    lp.base_urls.clear();
    lp.segment_template = None;
    lp.segment_list = None;
    lp.segment_base = None;

    for (si, set) in period.adaptation_sets.iter().enumerate() {
        let mut set_timing: Option<(u64, u64)> = None;
        let mut uniform = true;
        for (rep_index, rep) in set.representations.iter().enumerate() {
            if !is_url_safe(&rep.id) {
                bail!("Representation id `{}` is not URL-safe", rep.id);
            }
            let t = effective_template(period, set, rep)
                .ok_or_else(|| anyhow!("Representation `{}` has no SegmentTemplate", rep.id))?;
            if t.segment_timeline.is_some() {
                bail!("Representation `{}` uses a SegmentTimeline; looping needs SegmentTemplate@duration", rep.id);
            }
            let d = u64::from(t.duration.ok_or_else(|| {
                anyhow!(
                    "Representation `{}` has no SegmentTemplate@duration",
                    rep.id
                )
            })?);
            let ts = u64::from(t.timescale.unwrap_or(1));
            if d == 0 || ts == 0 {
                bail!(
                    "Representation `{}` has a zero duration or timescale",
                    rep.id
                );
            }
            let media_text = t
                .media
                .as_deref()
                .ok_or_else(|| anyhow!("Representation `{}` has no @media", rep.id))?;
            let media = Template::parse(media_text).map_err(|e| anyhow!(e))?;
            if !media.uses_number() || media.uses_time() {
                bail!(
                    "Representation `{}`: @media must use $Number$ (not $Time$)",
                    rep.id
                );
            }
            let init_text = t
                .initialization
                .as_deref()
                .ok_or_else(|| anyhow!("Representation `{}` has no @initialization", rep.id))?;
            let init = Template::parse(init_text).map_err(|e| anyhow!(e))?;
            let vars = TemplateVars {
                representation_id: &rep.id,
                bandwidth: rep.bandwidth,
                number: 0,
                time: 0,
            };
            let init_key = format!("vod/{title}/{}", init.expand(&vars));
            crate::path::to_key(&format!("/{init_key}")).map_err(|_| {
                anyhow!("init segment path `{init_key}` is not a plain relative path")
            })?;
            // Whole segments in the title: a short last segment is left out of the loop.
            let count = (total_ns * u128::from(ts) / (u128::from(d) * 1_000_000_000)) as u64;
            if count == 0 {
                bail!("the title is shorter than one segment");
            }
            match reference {
                None => reference = Some((d, ts, count)),
                Some((rd, rts, rcount)) => {
                    if u128::from(d) * u128::from(rts) != u128::from(rd) * u128::from(ts)
                        || count != rcount
                    {
                        bail!("Representation `{}` has a different segment duration; a loop needs one", rep.id);
                    }
                }
            }
            match set_timing {
                None => set_timing = Some((d, ts)),
                Some(x) if x != (d, ts) => uniform = false,
                _ => {}
            }
            let audio = set.content_type.as_deref() == Some("audio")
                || set
                    .mime_type
                    .as_deref()
                    .or(rep.mime_type.as_deref())
                    .is_some_and(|m| m.starts_with("audio/"));
            reps.insert(
                rep.id.clone(),
                RepPlan {
                    hls: HlsRep {
                        audio,
                        codecs: rep.codecs.clone().or_else(|| set.codecs.clone()),
                        width: rep.width.or(set.width),
                        height: rep.height.or(set.height),
                        frame_rate: rep
                            .frame_rate
                            .or(set.frame_rate)
                            .or(set.max_frame_rate)
                            .map(|f| f.as_f64()),
                        lang: set.lang.clone(),
                        channels: rep
                            .audio_channel_configurations
                            .iter()
                            .chain(&set.audio_channel_configurations)
                            .find(|d| d.scheme_id_uri.contains("23003:3"))
                            .and_then(|d| d.value.as_deref()?.trim().parse().ok()),
                        order: (si, rep_index),
                    },
                    init_key,
                    media,
                    bandwidth: rep.bandwidth,
                    vod_start: u64::from(t.start_number.unwrap_or(1)),
                    timescale: ts,
                    duration: d,
                    pto: t.presentation_time_offset.unwrap_or(0),
                },
            );
        }
        let lset = &mut live.periods[0].adaptation_sets[si];
        lset.base_urls.clear();
        lset.segment_list = None;
        lset.segment_base = None;
        lset.segment_template = None;
        let template = |d: u64, ts: u64| SegmentTemplate {
            timescale: Some(ts as u32),
            duration: Some(d as u32),
            start_number: Some(START_NUMBER as u32),
            media: Some(LIVE_MEDIA.into()),
            initialization: Some(LIVE_INIT.into()),
            // Low latency: the segment is requestable once its first chunk exists.
            availability_time_offset: ch.ll.map(|ll| {
                let seg = d as f64 / ts as f64;
                ((seg - ll.chunk.as_secs_f64().min(seg)) * 1000.0).round() / 1000.0
            }),
            availability_time_complete: ch.ll.map(|_| false),
            ..Default::default()
        };
        for (ri, lrep) in lset.representations.iter_mut().enumerate() {
            lrep.base_urls.clear();
            lrep.segment_list = None;
            lrep.segment_base = None;
            lrep.segment_template = None;
            if !uniform {
                let r = &reps[&set.representations[ri].id];
                lrep.segment_template = Some(template(r.duration, r.timescale));
            }
        }
        if uniform {
            if let Some((d, ts)) = set_timing {
                lset.segment_template = Some(template(d, ts));
            }
        }
    }
    let (d, ts, count) = reference.ok_or_else(|| anyhow!("the title has no Representation"))?;
    if let Some(ll) = ch.ll {
        ll::signal(&mut live, ll);
    }
    let seg = Duration::from_nanos((u128::from(d) * 1_000_000_000 / u128::from(ts)) as u64);
    live.max_segment_duration = Some(seg);
    // At most half a segment, so a cached MPD is never a whole segment behind.
    let half = (seg / 2).as_secs();
    let max_age = ch.max_age_cap.map_or(half, |cap| cap.min(half));
    Ok(Plan {
        base: live,
        count,
        seg_ticks: d,
        seg_timescale: ts,
        reps,
        max_age,
    })
}

/// Nanoseconds from `a` to `b` (negative when `b` is earlier).
fn nanos_between(a: SystemTime, b: SystemTime) -> i128 {
    match b.duration_since(a) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The base URL clients should sync their clock with: configured, or this origin as the client
/// addressed it (X-Forwarded-Host, which an edge sets to its client's Host, then Host), or its
/// local address. Through a CDN the clock request then goes to the edge the player uses.
fn time_url(req: &Req, ch: &Channel) -> String {
    if let Some(u) = &ch.time_url {
        return u.clone();
    }
    let host = req
        .headers
        .get("x-forwarded-host")
        .or_else(|| req.headers.get(HOST))
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() < 256
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| req.local.to_string());
    format!("http://{host}/time")
}

fn manifest<'a>(ctx: &Ctx<'a>, req: &Req, ch: &Channel, plan: &Plan) -> Answer<'a> {
    let now = ctx.now;
    let elapsed = nanos_between(ch.ast, now);
    // publishTime: the start of the newest segment, so the document is identical (and
    // revalidates with 304) for one segment duration.
    let seg_ns = i128::from(plan.seg_ticks) * 1_000_000_000 / i128::from(plan.seg_timescale);
    let publish = if elapsed <= 0 || seg_ns <= 0 {
        ch.ast.min(now)
    } else {
        let done = elapsed - elapsed % seg_ns;
        ch.ast + Duration::from_nanos(done as u64)
    };
    let mut mpd = plan.base.clone();
    mpd.publish_time = Some(publish.into());
    let timing = Descriptor::new("urn:mpeg:dash:utc:http-iso:2014", time_url(req, ch));
    if ch.ll.is_some() {
        ll::producer_reference(&mut mpd, ch.ast, &timing);
    }
    mpd.utc_timings = vec![timing];
    let xml = match mpd.to_xml() {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "live MPD does not serialize");
            return Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "live MPD error\n");
        }
    };
    let etag = format!("\"{:016x}\"", common::hash::fnv1a(xml.as_bytes()));
    let obj: Arc<dyn Object> = Arc::new(MemoryObject::new(Bytes::from(xml), publish, etag));
    Answer::Object {
        obj,
        content_type: "application/dash+xml",
        cache_control: Cow::Owned(format!("public, max-age={}", plan.max_age)),
    }
}

async fn init<'a>(ctx: &Ctx<'a>, plan: &Plan, rep: &str) -> Answer<'a> {
    let Some(r) = plan.reps.get(rep) else {
        return Answer::NotFound;
    };
    let obj = match ctx.storage.open(&r.init_key).await {
        Ok(Some(o)) => o,
        Ok(None) => return Answer::NotFound,
        Err(e) => return Answer::Storage(e),
    };
    let meta = obj.meta().clone();
    if meta.len > MAX_INIT {
        return Answer::Failed(
            StatusCode::INTERNAL_SERVER_ERROR,
            "init segment too large\n",
        );
    }
    let bytes = match storage::read_to_vec(obj.as_ref(), 0..meta.len).await {
        Ok(b) => b,
        Err(source) => {
            return Answer::Storage(storage::StorageError::Io {
                key: r.init_key.clone(),
                source,
            })
        }
    };
    let stripped = match retime::strip_mehd(&bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(key = %r.init_key, error = %e, "bad init segment");
            return Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "bad init segment\n");
        }
    };
    let etag = format!("\"{}-live\"", meta.etag.trim_matches('"'));
    let obj: Arc<dyn Object> = Arc::new(MemoryObject::new(
        Bytes::from(stripped),
        meta.modified,
        etag,
    ));
    Answer::Object {
        obj,
        content_type: mp4_type(r),
        cache_control: Cow::Borrowed(&ctx.config.cache_control.init),
    }
}

/// The Content-Type of a representation's init and media segments.
fn mp4_type(r: &RepPlan) -> &'static str {
    if r.hls.audio {
        "audio/mp4"
    } else {
        "video/mp4"
    }
}

/// What the HLS playlists say about a representation, from the VOD MPD.
struct HlsRep {
    audio: bool,
    codecs: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    frame_rate: Option<f64>,
    lang: Option<String>,
    /// Audio channels (the MPD's AudioChannelConfiguration of scheme 23003-3).
    channels: Option<u32>,
    /// (AdaptationSet, Representation) index in the VOD MPD: the playlists' order.
    order: (usize, usize),
}

/// Content-Type of HLS playlists (RFC 8216 4).
pub const HLS_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
/// GROUP-ID of the audio renditions in the live multivariant playlist.
const AUDIO_GROUP: &str = "audio";
/// EXT-X-VERSION: 6 for EXT-X-MAP in a media playlist (RFC 8216 7).
const HLS_VERSION: usize = 6;

fn playlist_answer<'a>(
    write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    modified: SystemTime,
    max_age: u64,
) -> Answer<'a> {
    let mut body = Vec::new();
    if let Err(e) = write(&mut body) {
        tracing::error!(error = %e, "live playlist does not serialize");
        return Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "live playlist error\n");
    }
    let etag = format!("\"{:016x}\"", common::hash::fnv1a(&body));
    let obj: Arc<dyn Object> = Arc::new(MemoryObject::new(Bytes::from(body), modified, etag));
    Answer::Object {
        obj,
        content_type: HLS_CONTENT_TYPE,
        cache_control: Cow::Owned(format!("public, max-age={max_age}")),
    }
}

/// EXT-X-TARGETDURATION of a plan's segments: the segment duration rounded, at least 1.
fn target_duration(plan: &Plan) -> u64 {
    let ts = plan.seg_timescale.max(1);
    ((plan.seg_ticks + ts / 2) / ts).max(1)
}

/// At most half a target duration, and no more than the MPD's.
fn playlist_max_age(plan: &Plan) -> u64 {
    plan.max_age.min(target_duration(plan) / 2)
}

/// The live multivariant playlist: the audio representations as one EXT-X-MEDIA group, one
/// variant per video representation whose BANDWIDTH adds the richest audio's.
fn hls_master<'a>(ch: &Channel, plan: &Plan) -> Answer<'a> {
    let mut reps: Vec<(&String, &RepPlan)> = plan.reps.iter().collect();
    reps.sort_by_key(|(_, r)| r.hls.order);
    let audio: Vec<_> = reps.iter().filter(|(_, r)| r.hls.audio).collect();
    let audio_peak = audio.iter().map(|(_, r)| r.bandwidth).max().unwrap_or(0);
    let audio_codecs = audio.iter().find_map(|(_, r)| r.hls.codecs.clone());
    let alternatives = audio
        .iter()
        .enumerate()
        .map(|(i, (id, r))| m3u8_rs::AlternativeMedia {
            media_type: m3u8_rs::AlternativeMediaType::Audio,
            uri: Some(format!("{id}.m3u8")),
            group_id: AUDIO_GROUP.into(),
            language: r.hls.lang.clone(),
            channels: r.hls.channels.map(|c| c.to_string()),
            name: id.to_string(),
            default: i == 0,
            autoselect: true,
            ..Default::default()
        })
        .collect();
    let variants = reps
        .iter()
        .filter(|(_, r)| !r.hls.audio)
        .map(|(id, r)| m3u8_rs::VariantStream {
            uri: format!("{id}.m3u8"),
            bandwidth: r.bandwidth + audio_peak,
            codecs: match (&r.hls.codecs, &audio_codecs) {
                (Some(v), Some(a)) => Some(format!("{v},{a}")),
                (v, _) => v.clone(),
            },
            resolution: r
                .hls
                .width
                .zip(r.hls.height)
                .map(|(w, h)| m3u8_rs::Resolution {
                    width: u64::from(w),
                    height: u64::from(h),
                }),
            // Three decimals, as Apple's authoring guide writes it (29.970).
            frame_rate: r.hls.frame_rate.map(|f| (f * 1000.0).round() / 1000.0),
            audio: (!audio.is_empty()).then(|| AUDIO_GROUP.into()),
            ..Default::default()
        })
        .collect();
    let master = m3u8_rs::MasterPlaylist {
        version: Some(HLS_VERSION),
        independent_segments: true,
        alternatives,
        variants,
        ..Default::default()
    };
    playlist_answer(|w| master.write_to(w), ch.ast, playlist_max_age(plan))
}

/// The 0-based live segments listed at `elapsed_ns` after AST: those whose end lies in
/// `[now - tsbd, now]`, the MPD's window (empty before the first segment ends).
fn window(d: u64, ts: u64, elapsed_ns: i128, tsbd: Duration) -> Range<u64> {
    let unit = i128::from(d) * 1_000_000_000;
    if elapsed_ns <= 0 || unit <= 0 {
        return 0..0;
    }
    // Segments ended by now: k + 1 <= elapsed*ts/unit.
    let end = (elapsed_ns * i128::from(ts) / unit) as u64;
    // The first whose end is at least now - tsbd.
    let earliest = (elapsed_ns - tsbd.as_nanos() as i128) * i128::from(ts);
    let first = if earliest <= 0 {
        0
    } else {
        // ceil(earliest / unit) - 1
        ((earliest + unit - 1) / unit - 1) as u64
    };
    first.min(end)..end
}

/// A live media playlist: the MPD's window of `rep`, EXT-X-MEDIA-SEQUENCE the number of the
/// first listed segment, EXT-X-PROGRAM-DATE-TIME of each its start on the wall clock (AST plus
/// its MPD start time; it becomes available, in both manifests, one duration later).
fn hls_media<'a>(ctx: &Ctx<'a>, ch: &Channel, plan: &Plan, rep: &str) -> Answer<'a> {
    let Some(r) = plan.reps.get(rep) else {
        return Answer::NotFound;
    };
    let elapsed = nanos_between(ch.ast, ctx.now);
    let mut listed = window(r.duration, r.timescale, elapsed, ch.tsbd);
    // Bounded as the `mpd` crate bounds a live window a player resolves: beyond MAX_SEGMENTS,
    // the newest LIVE_TRIM (and at most MAX_SEGMENTS).
    if listed.end - listed.start > mpd::MAX_SEGMENTS {
        let newest = window(r.duration, r.timescale, elapsed, mpd::LIVE_TRIM);
        listed = newest.start.max(listed.end - mpd::MAX_SEGMENTS)..listed.end;
    }
    let start_ns = |k: u64| {
        (u128::from(k) * u128::from(r.duration) * 1_000_000_000 / u128::from(r.timescale)) as u64
    };
    let extinf = r.duration as f64 / r.timescale as f64;
    let segments = listed
        .clone()
        .map(|k| {
            let pdt: chrono::DateTime<chrono::Utc> =
                (ch.ast + Duration::from_nanos(start_ns(k))).into();
            m3u8_rs::MediaSegment {
                uri: format!("{rep}/{}.m4s", k + START_NUMBER),
                duration: extinf as f32,
                map: (k == listed.start).then(|| m3u8_rs::Map {
                    uri: format!("{rep}/init.mp4"),
                    ..Default::default()
                }),
                program_date_time: Some(pdt.fixed_offset()),
                ..Default::default()
            }
        })
        .collect();
    let playlist = m3u8_rs::MediaPlaylist {
        version: Some(HLS_VERSION),
        target_duration: target_duration(plan),
        media_sequence: listed.start + START_NUMBER,
        independent_segments: true,
        segments,
        ..Default::default()
    };
    // Changes only when a segment becomes available: modified at the newest one's availability.
    let modified = ch.ast + Duration::from_nanos(start_ns(listed.end));
    playlist_answer(
        |w| playlist.write_to(w),
        modified.min(ctx.now),
        playlist_max_age(plan),
    )
}

/// Whether live segment `k` (0-based from AST) of a representation is available at `elapsed_ns`
/// after AST: its end lies within `[now - tsbd, now]`.
fn available(k: u64, d: u64, ts: u64, elapsed_ns: i128, tsbd: Duration) -> bool {
    let end = (i128::from(k) + 1) * i128::from(d) * 1_000_000_000;
    let now = elapsed_ns * i128::from(ts);
    let start = (elapsed_ns - tsbd.as_nanos() as i128) * i128::from(ts);
    end <= now && end >= start
}

async fn segment<'a>(
    ctx: &Ctx<'a>,
    ch: &Channel,
    plan: &Plan,
    rep: &str,
    file: &str,
) -> Answer<'a> {
    let Some(r) = plan.reps.get(rep) else {
        return Answer::NotFound;
    };
    let number = file
        .strip_suffix(".m4s")
        .filter(|n| !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n >= START_NUMBER);
    let Some(number) = number else {
        return Answer::NotFound;
    };
    let k = number - START_NUMBER;
    let elapsed = nanos_between(ch.ast, ctx.now);
    if !available(k, r.duration, r.timescale, elapsed, ch.tsbd) {
        return Answer::NotFoundFor(&ctx.config.cache_control.live_unavailable);
    }
    let j = k % plan.count;
    let key = vod_key(ch, r, rep, j);
    let src = match ctx.storage.open(&key).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            tracing::error!(%key, "VOD segment of a live channel is missing");
            return Answer::NotFound;
        }
        Err(e) => return Answer::Storage(e),
    };
    // New decode time: k*d; the VOD segment's is about pto + j*d.
    let delta = i128::from(k - j) * i128::from(r.duration) - i128::from(r.pto);
    let seg = match retimed(src, delta, number as u32).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%key, error = %format!("{e:#}"), "cannot re-time a VOD segment");
            return Answer::Failed(StatusCode::INTERNAL_SERVER_ERROR, "bad media segment\n");
        }
    };
    let end_ns =
        (u128::from(k) + 1) * u128::from(r.duration) * 1_000_000_000 / u128::from(r.timescale);
    let mut seg = seg;
    seg.meta.modified = ch.ast + Duration::from_nanos(end_ns as u64);
    seg.meta.etag = format!("\"{}-n{number:x}\"", seg.meta.etag.trim_matches('"'));
    Answer::Object {
        obj: Arc::new(seg),
        content_type: mp4_type(r),
        cache_control: Cow::Borrowed(&ctx.config.cache_control.segment),
    }
}

/// The storage key of VOD segment `j` (0-based in the loop) of representation `rep`.
fn vod_key(ch: &Channel, r: &RepPlan, rep: &str, j: u64) -> String {
    format!(
        "vod/{}/{}",
        ch.title,
        r.media.expand(&TemplateVars {
            representation_id: rep,
            bandwidth: r.bandwidth,
            number: r.vod_start + j,
            time: 0,
        })
    )
}

/// A VOD segment whose head (before `mdat`) was rewritten; the rest streams from storage.
struct Retimed {
    head: Bytes,
    src: Arc<dyn Object>,
    tail_from: u64,
    meta: ObjectMeta,
}

async fn retimed(src: Arc<dyn Object>, delta: i128, sequence: u32) -> Result<Retimed> {
    let len = src.meta().len;
    let mut want = len.min(64 * 1024);
    let (head_bytes, head_len) = loop {
        let prefix = storage::read_to_vec(src.as_ref(), 0..want).await?;
        match retime::head_len(&prefix)? {
            Some(h) => break (prefix, h),
            None if want < len && want < MAX_HEAD => want = (want * 4).min(len).min(MAX_HEAD),
            None => bail!("no mdat within the first {want} bytes"),
        }
    };
    let head = retime::retime(&head_bytes[..head_len], delta, sequence)?;
    let meta = ObjectMeta {
        len: head.len() as u64 + (len - head_len as u64),
        modified: src.meta().modified,
        etag: src.meta().etag.clone(),
    };
    Ok(Retimed {
        head: Bytes::from(head),
        src,
        tail_from: head_len as u64,
        meta,
    })
}

impl Object for Retimed {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn read(&self, range: Range<u64>) -> ByteStream {
        let h = self.head.len() as u64;
        let mut parts: Vec<ByteStream> = Vec::new();
        if range.start < h {
            let slice = self
                .head
                .slice(range.start as usize..range.end.min(h) as usize);
            parts.push(Box::pin(stream::once(async move { Ok(slice) })));
        }
        if range.end > h {
            let from = range.start.max(h) - h + self.tail_from;
            let to = range.end - h + self.tail_from;
            parts.push(self.src.read(from..to));
        }
        Box::pin(stream::iter(parts).flatten())
    }
}

/// An xs:dateTime in UTC with milliseconds, as MPDs and the `/time` endpoint use.
pub fn xs_datetime(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_window_is_the_availability_window() {
        let tsbd = Duration::from_secs(30);
        // 2 s segments at timescale 1000; every instant over a few minutes, in 100 ms steps,
        // and the exact segment boundaries.
        for ms in (0..200_000i128)
            .step_by(100)
            .chain([2_000, 32_000, 100_000])
        {
            let elapsed = ms * 1_000_000;
            let w = window(2000, 1000, elapsed, tsbd);
            let listed: Vec<u64> = (0..200)
                .filter(|&k| available(k, 2000, 1000, elapsed, tsbd))
                .collect();
            assert_eq!(w.clone().collect::<Vec<_>>(), listed, "at {ms} ms");
        }
        assert_eq!(window(2000, 1000, -5, tsbd), 0..0);
        // Monotonic: the first listed never goes back.
        let mut prev = 0;
        for ms in (0..100_000i128).step_by(37) {
            let w = window(2000, 1000, ms * 1_000_000, tsbd);
            assert!(w.start >= prev);
            prev = w.start;
        }
    }

    #[test]
    fn availability_window() {
        let s = 1_000_000_000i128;
        let tsbd = Duration::from_secs(10);
        // 2 s segments at timescale 90000: segment 0 ends at 2 s.
        assert!(!available(0, 180_000, 90_000, 2 * s - 1, tsbd));
        assert!(available(0, 180_000, 90_000, 2 * s, tsbd));
        assert!(available(0, 180_000, 90_000, 12 * s, tsbd));
        assert!(!available(0, 180_000, 90_000, 12 * s + 1, tsbd));
        assert!(!available(5, 180_000, 90_000, 11 * s, tsbd));
        assert!(available(5, 180_000, 90_000, 12 * s, tsbd));
    }
}
