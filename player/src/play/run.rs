//! The orchestration of a real playback: resolve and connect ([`Net`]), read the MPD, for a live
//! one ask UTCTiming for the server clock and join the [`LiveSchedule`], then run the same
//! [`session::run`] loop as the simulator against the wall clock, and report what the network
//! did (CNAME chain, addresses, failovers, resolutions).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use mpd::{Mpd, SegmentsAt};
use serde::Serialize;
use url::Url;

use super::clock::WallClock;
use super::config::PlayConfig;
use super::live::{self, LiveSchedule};
use super::net::Net;
use super::transport::{HttpTransport, Live};
use crate::abr;
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
    let text = String::from_utf8(text).map_err(|_| anyhow!("{}: MPD is not UTF-8", cfg.url))?;
    let mpd = Mpd::parse(&text).map_err(|e| anyhow!("{}: {e}", cfg.url))?;
    let dynamic = mpd.is_dynamic();
    let mut session_cfg = cfg.session;
    let mut live = None;
    let offset_s = if dynamic {
        clock_offset(&mut net, &clock, &mpd, &cfg.url).await
    } else {
        0.0
    };
    let title = if dynamic {
        let server_now = live::epoch_s(clock.wall_now()) + offset_s;
        let at = live::at_epoch(server_now)?;
        let mut title = Title::from_mpd(&mpd, &cfg.url, SegmentsAt::Live(at))?;
        let Some(ast) = mpd.availability_start_time else {
            bail!("cannot play this MPD: dynamic without availabilityStartTime");
        };
        let ast_s = ast.timestamp_millis() as f64 / 1000.0;
        let delay_s = live::presentation_delay_s(&mpd, title.video.segment_duration_s);
        let duration = cfg.duration_s.unwrap_or(30.0);
        let Some(schedule) =
            LiveSchedule::join(&title.rungs[0].media, ast_s, delay_s, duration, server_now)
        else {
            bail!("cannot play this MPD: no live segment is available yet");
        };
        session_cfg.max_session_s = Some(duration);
        title.video.num_segments = schedule.count;
        title.video.sizes = None;
        live = Some(Live {
            schedule,
            offset_s,
            update_every_s: live::update_period_s(&mpd),
            fetched_at_s: clock.now(),
        });
        title
    } else {
        let mut t = Title::from_mpd(&mpd, &cfg.url, SegmentsAt::Vod)?;
        if let Some(d) = cfg.duration_s {
            session_cfg.max_session_s = Some(d);
            let n = ((d / t.video.segment_duration_s).ceil() as usize).max(1);
            t.video.truncate(n);
        }
        t
    };
    let mut abr = abr::by_name(&cfg.abr)?;
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
        failovers: net.failovers,
        resolutions: net.resolutions,
        session,
    })
}
