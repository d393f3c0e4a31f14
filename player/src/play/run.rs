//! The orchestration of a real playback: resolve and connect ([`Net`]), read the MPD (or HLS
//! playlist, see `hls`), read the `sidx` of SegmentBase Representations, for a live one ask
//! UTCTiming for the server clock and join the [`LiveSchedule`], then run the same
//! [`session::run`] loop as the simulator against the wall clock, and report what the network
//! did (CNAME chain, addresses, failovers, resolutions).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use mpd::{Mpd, SegmentsAt};
use serde::Serialize;
use url::Url;

use super::clock::WallClock;
use super::config::PlayConfig;
use super::hls;
use super::live::{self, LiveSchedule};
use super::net::Net;
use super::transport::{HttpTransport, Live};
use crate::abr;
use crate::lowlat::LowLatency;
use crate::manifest::Title;
use crate::report::SessionReport;
use crate::session::{self, Clock};

/// What a real playback saw, beyond the session report.
#[derive(Debug, Clone, Serialize)]
pub struct PlayReport {
    pub url: String,
    /// Names from the URL's host through each CNAME target.
    pub dns_chain: Vec<String>,
    /// Addresses the last resolution gave.
    pub addresses: Vec<String>,
    pub live: bool,
    pub clock_offset_s: f64,
    /// Low-latency mode: the latency held, the chunk duration and the playback-rate bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_latency: Option<LowLatency>,
    pub failovers: u32,
    pub resolutions: u32,
    pub session: SessionReport,
}

impl PlayReport {
    pub fn table(&self) -> String {
        format!(
            "url {} | dns {} -> [{}] | live {} | failovers {} | resolutions {}\n{}",
            self.url,
            self.dns_chain.join(" -> "),
            self.addresses.join(", "),
            self.live,
            self.failovers,
            self.resolutions,
            self.session.table()
        )
    }
}

/// Asks the MPD's UTCTiming sources for the server clock; returns server minus local seconds
/// (0 when there is none or none answers).
async fn clock_offset(net: &mut Net, clock: &WallClock, mpd: &Mpd, mpd_url: &Url) -> f64 {
    for t in mpd.utc_timings() {
        let scheme = t.scheme_id_uri.as_str();
        let Some(value) = t.value.as_deref() else {
            continue;
        };
        let local_before = live::epoch_s(clock.wall_now());
        let text = match scheme {
            "urn:mpeg:dash:utc:direct:2014" => value.to_string(),
            "urn:mpeg:dash:utc:http-iso:2014" | "urn:mpeg:dash:utc:http-xsdate:2014" => {
                let Ok(u) = mpd_url.join(value) else { continue };
                match net.get_bytes(&u).await {
                    Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
                    Err(e) => {
                        tracing::warn!("UTCTiming {u}: {e:#}");
                        continue;
                    }
                }
            }
            _ => continue,
        };
        let local_after = live::epoch_s(clock.wall_now());
        if let Ok(server) = mpd::parse_datetime(&text) {
            let server_s = server.timestamp_millis() as f64 / 1000.0;
            match live::clock_offset_s(server_s, local_before, local_after) {
                Ok(offset) => return offset,
                Err(offset) => tracing::warn!(
                    "UTCTiming {scheme}: server time {text} is {offset:.0} s off; ignored"
                ),
            }
        }
    }
    0.0
}

/// Reads the `sidx` of every SegmentBase Representation (its index range), so that its
/// subsegments can be fetched by byte range.
async fn load_indexes(net: &mut Net, title: &mut Title) -> Result<()> {
    for (track, part, src) in title.pending_indexes() {
        let range = src.index.range.as_ref().map(|r| r.to_header());
        let body = net
            .get(&src.index.url, range.as_deref(), true, None, 0)
            .await
            .with_context(|| format!("cannot fetch the segment index {}", src.index.url))?;
        title.load_index(track, part, &body.data.unwrap_or_default())?;
    }
    Ok(())
}

/// Plays `cfg.url` to the end (or for `cfg.duration_s`), in real time.
pub async fn play(cfg: &PlayConfig) -> Result<PlayReport> {
    play_with_clock(cfg, Arc::new(WallClock::new())).await
}

/// [`play`] with session and wall time read from `clock` (the only clock it reads).
pub async fn play_with_clock(cfg: &PlayConfig, clock: Arc<WallClock>) -> Result<PlayReport> {
    let mut net = Net::new(cfg, clock.clone()).await?;
    let text = net
        .get_bytes(&cfg.url)
        .await
        .with_context(|| format!("cannot fetch the MPD {}", cfg.url))?;
    if hls::is_hls(&cfg.url, &text) {
        let (mut title, hls_live) =
            hls::title(&mut net, &cfg.url, &text, cfg.lang.as_deref()).await?;
        let Some(hls_live) = hls_live else {
            return run_title(cfg, clock, net, title, None, false, 0.0, None).await;
        };
        // Live HLS: the newest segment listed has just been completed; play three target
        // durations behind it (RFC 8216 6.3.3).
        let now_s = live::epoch_s(clock.wall_now());
        let media = &title.rungs[0].media;
        let Some(last) = media.last() else {
            bail!("{}: the live playlist lists no segment yet", cfg.url);
        };
        let start_s = now_s - (last.start + last.duration);
        let duration = cfg.duration_s.unwrap_or(30.0);
        let Some(schedule) =
            LiveSchedule::join(media, start_s, 3.0 * hls_live.target_s, duration, now_s)
        else {
            bail!("{}: the live playlist lists no segment yet", cfg.url);
        };
        title.video.num_segments = schedule.count;
        title.video.sizes = None;
        // The audio playlist's newest segment is taken to end now too.
        let audio = title.audio.as_ref().and_then(|a| {
            let last = a.media.last()?;
            let zero_s = now_s - (last.start + last.duration);
            let video_start_s = schedule.first_end_epoch_s - schedule.segment_s;
            LiveSchedule::beside(&a.media, zero_s, video_start_s, duration)
        });
        if audio.is_none() {
            title.audio = None;
        }
        let live = Live {
            schedule,
            offset_s: 0.0,
            update_every_s: Some((hls_live.target_s / 2.0).max(0.5)),
            fetched_at_s: clock.now(),
            hls_variants: Some(hls_live.variants),
            audio,
            hls_audio: hls_live.audio,
            lang: cfg.lang.clone(),
            chunked: None,
            skip_s: 0.0,
        };
        return run_title(cfg, clock, net, title, Some(live), true, 0.0, None).await;
    }
    let text = String::from_utf8(text).map_err(|_| anyhow!("{}: MPD is not UTF-8", cfg.url))?;
    let mpd = Mpd::parse(&text).map_err(|e| anyhow!("{}: {e}", cfg.url))?;
    let dynamic = mpd.is_dynamic();
    let mut live = None;
    let mut low_latency = None;
    let offset_s = if dynamic {
        clock_offset(&mut net, &clock, &mpd, &cfg.url).await
    } else {
        0.0
    };
    let title = if dynamic {
        let server_now = live::epoch_s(clock.wall_now()) + offset_s;
        let at = live::at_epoch(server_now)?;
        let mut title =
            Title::from_mpd_lang(&mpd, &cfg.url, SegmentsAt::Live(at), cfg.lang.as_deref())?;
        let Some(ast) = mpd.availability_start_time else {
            bail!("cannot play this MPD: dynamic without availabilityStartTime");
        };
        let ast_s = ast.timestamp_millis() as f64 / 1000.0;
        let segment_s = title.video.segment_duration_s;
        low_latency = live::low_latency(&mpd, segment_s, cfg.low_latency, cfg.target_latency_s)?;
        let delay_s = match &low_latency {
            Some((ll, _)) => ll.aim_s(),
            None => live::presentation_delay_s(&mpd, segment_s),
        };
        let duration = cfg.duration_s.unwrap_or(30.0);
        let Some(schedule) =
            LiveSchedule::join(&title.rungs[0].media, ast_s, delay_s, duration, server_now)
        else {
            bail!("cannot play this MPD: no live segment is available yet");
        };
        // Low latency joins inside the segment, `delay_s` behind the edge.
        let skip_s = match &low_latency {
            Some(_) => {
                let start = schedule.first_end_epoch_s - schedule.segment_s;
                (server_now - delay_s - start).clamp(0.0, schedule.segment_s)
            }
            None => 0.0,
        };
        title.video.num_segments = schedule.count;
        title.video.sizes = None;
        let video_start_s = schedule.first_end_epoch_s - schedule.segment_s;
        let audio = title
            .audio
            .as_ref()
            .and_then(|a| LiveSchedule::beside(&a.media, ast_s, video_start_s, duration));
        if audio.is_none() {
            title.audio = None;
        }
        live = Some(Live {
            schedule,
            offset_s,
            update_every_s: live::update_period_s(&mpd),
            fetched_at_s: clock.now(),
            hls_variants: None,
            audio,
            hls_audio: None,
            lang: cfg.lang.clone(),
            chunked: low_latency.as_ref().map(|(_, offset)| *offset),
            skip_s,
        });
        title
    } else {
        let mut t = Title::from_mpd_lang(&mpd, &cfg.url, SegmentsAt::Vod, cfg.lang.as_deref())?;
        load_indexes(&mut net, &mut t).await?;
        t
    };
    run_title(
        cfg,
        clock,
        net,
        title,
        live,
        dynamic,
        offset_s,
        low_latency.map(|(ll, _)| ll),
    )
    .await
}

/// Plays a title (from an MPD or an HLS playlist) and reports; `low_latency` for a live MPD
/// played in low-latency mode.
#[allow(clippy::too_many_arguments)]
async fn run_title(
    cfg: &PlayConfig,
    clock: Arc<WallClock>,
    net: Net,
    mut title: Title,
    live: Option<Live>,
    dynamic: bool,
    offset_s: f64,
    low_latency: Option<LowLatency>,
) -> Result<PlayReport> {
    // Live: the session's length; on demand: as many segments as the duration asked for.
    let mut session_cfg = cfg.session;
    if let (None, Some(d)) = (&live, cfg.duration_s) {
        session_cfg.max_session_s = Some(d);
        let n = ((d / title.video.segment_duration_s).ceil() as usize).max(1);
        title.video.truncate(n);
    }
    if live.is_some() {
        session_cfg.max_session_s = Some(cfg.duration_s.unwrap_or(30.0));
    }
    session_cfg.low_latency = low_latency;
    let name = match (&low_latency, cfg.abr.as_str()) {
        (Some(_), "default") => abr::DEFAULT_LOW_LATENCY,
        (_, name) => name,
    };
    let mut abr = abr::by_name(name)?;
    let video = title.video.clone();
    let mut transport = HttpTransport::new(net, title, cfg.url.clone(), live, clock.clone());
    let session = session::run(
        &video,
        abr.as_mut(),
        &mut transport,
        clock.as_ref(),
        &session_cfg,
    )
    .await;
    let net = transport.net();
    let resolved = net.resolved().clone();
    Ok(PlayReport {
        url: cfg.url.to_string(),
        dns_chain: resolved.chain,
        addresses: resolved.addrs.iter().map(|a| a.to_string()).collect(),
        live: dynamic,
        clock_offset_s: offset_s,
        low_latency,
        failovers: net.failovers,
        resolutions: net.resolutions,
        session,
    })
}
