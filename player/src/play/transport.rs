//! The HTTP [`Transport`] the session drives in real playback: each init segment once (per rung
//! and Period), then each media segment through [`Net`], the audio's beside; for a live stream,
//! segment numbers and availability times from the [`LiveSchedule`]s (the video's and the
//! audio's) and MPD (or HLS playlist) refreshes when minimumUpdatePeriod has passed (or when
//! a wanted number is not listed yet). Wall time is read from the injected [`WallClock`] only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use mpd::{Mpd, SegmentsAt};
use url::Url;

use super::clock::WallClock;
use super::live::{self, LiveSchedule};
use super::net::Net;
use crate::cmaf::{ChunkReader, InitInfo};
use crate::lowlat::LiveTimeline;
use crate::manifest::{Title, Track};
use crate::session::{
    ChunkEvent, ChunkedFetch, Clock, Companion, Fetched, OnChunk, Request, Transport, Watch,
};

/// A segment's URL, its byte range (a `Range` header value) and the init segment it needs.
type Located = (Url, Option<String>, Option<mpd::SegmentRef>);

/// Live-stream bookkeeping: the schedule and the MPD's refresh state.
pub struct Live {
    pub schedule: LiveSchedule,
    /// Server clock minus local clock, seconds.
    pub offset_s: f64,
    /// minimumUpdatePeriod (see [`live::update_period_s`]).
    pub update_every_s: Option<f64>,
    /// Session time at which the MPD was last read.
    pub fetched_at_s: f64,
    /// Live HLS: the media playlists to reload, one per rung (`None`: a live MPD).
    pub hls_variants: Option<Vec<Url>>,
    /// The audio's own schedule (its segment numbers and availability), when audio plays.
    pub audio: Option<LiveSchedule>,
    /// Live HLS: the audio rendition's media playlist, reloaded with the variants'.
    pub hls_audio: Option<Url>,
    /// The audio language asked for (`--lang`), for the MPD's refreshes.
    pub lang: Option<String>,
    /// Low latency: each segment is requested this long before it is complete (its
    /// availabilityTimeOffset) and read chunk by chunk; `None`: requested once complete.
    pub chunked: Option<f64>,
    /// Seconds of the first segment skipped to join (low latency).
    pub skip_s: f64,
}

/// The HTTP transport the session drives.
pub struct HttpTransport {
    net: Net,
    title: Title,
    url: Url,
    /// Init segments already fetched (URL and byte range).
    inits: HashSet<(Url, Option<String>)>,
    live: Option<Live>,
    clock: Arc<WallClock>,
    /// Low latency: what each init segment says (by URL and range), read once.
    init_infos: HashMap<(Url, Option<String>), Option<InitInfo>>,
}

impl HttpTransport {
    /// Plays `title`, read from the MPD at `url`, through `net`; `live` for a dynamic MPD.
    pub fn new(
        net: Net,
        title: Title,
        url: Url,
        live: Option<Live>,
        clock: Arc<WallClock>,
    ) -> Self {
        HttpTransport {
            net,
            title,
            url,
            inits: HashSet::new(),
            live,
            clock,
            init_infos: HashMap::new(),
        }
    }

    /// Low latency: fetches an init segment once and reads its tracks; the bytes fetched
    /// (0 when it already was) and its tracks (`None` when unreadable: the segment is then
    /// credited whole).
    async fn init_info(
        &mut self,
        init: Option<mpd::SegmentRef>,
    ) -> Result<(u64, Option<InitInfo>)> {
        let Some(init) = init else {
            return Ok((0, None));
        };
        let range = init.range.as_ref().map(|r| r.to_header());
        let key = (init.url.clone(), range.clone());
        if let Some(info) = self.init_infos.get(&key) {
            return Ok((0, info.clone()));
        }
        let b = self
            .net
            .get(&init.url, range.as_deref(), true, None, 0)
            .await?;
        let info = match InitInfo::parse(b.data.as_deref().unwrap_or_default()) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!("{}: {e:#}; its segments are credited whole", init.url);
                None
            }
        };
        self.inits.insert(key.clone());
        self.init_infos.insert(key, info.clone());
        Ok((b.bytes, info))
    }

    /// Low latency: streams `streams` (video first, then the audio) side by side, reading
    /// their chunks as they arrive and passing each to `on_chunk`. A stream that fails after
    /// some bytes is fetched again once, crediting only what the first try had not.
    async fn stream_chunks(
        &mut self,
        streams: Vec<(Url, Option<String>, Option<InitInfo>)>,
        on_chunk: &mut OnChunk<'_>,
    ) -> Result<Vec<Result<Fetched>>> {
        let n = streams.len();
        let reqs: Vec<(Url, Option<String>)> = streams
            .iter()
            .map(|(u, r, _)| (u.clone(), r.clone()))
            .collect();
        let mut credited = vec![0.0f64; n];
        let mut results: Vec<Option<Result<Fetched>>> = (0..n).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..n).collect();
        for attempt in 0..2 {
            let mut readers: Vec<Option<ChunkReader>> = streams
                .iter()
                .map(|(_, _, info)| info.clone().map(ChunkReader::new))
                .collect();
            let these: Vec<(Url, Option<String>)> = todo.iter().map(|&i| reqs[i].clone()).collect();
            let ends = {
                let mut sink = |k: usize, data: &[u8], at: f64| {
                    let i = todo[k];
                    let Some(r) = &mut readers[i] else { return };
                    match r.feed(data, at) {
                        Ok(done) => {
                            for mut c in done {
                                // A refetch credits only the media the first try had not.
                                let fresh = (r.media_s - credited[i]).min(c.media_s);
                                if fresh <= 1e-9 {
                                    continue;
                                }
                                c.media_s = fresh;
                                credited[i] += fresh;
                                on_chunk(ChunkEvent {
                                    companion: i > 0,
                                    chunk: c,
                                });
                            }
                        }
                        Err(e) => {
                            tracing::warn!("{}: {e:#}; the segment is credited whole", reqs[i].0);
                            readers[i] = None;
                        }
                    }
                };
                self.net.get_streams(&these, &mut sink).await?
            };
            let mut again = Vec::new();
            for (k, end) in ends.into_iter().enumerate() {
                let i = todo[k];
                match end {
                    Ok(e) => {
                        results[i] = Some(Ok(Fetched {
                            bytes: e.bytes,
                            complete: true,
                            edge: Some(e.edge.to_string()),
                        }))
                    }
                    Err(e) if attempt == 0 => {
                        tracing::warn!("{e:#}; fetching it again");
                        again.push(i);
                    }
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow!("not fetched"))))
            .collect())
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The server's time now, seconds since the epoch.
    fn server_now_s(&self, offset_s: f64) -> f64 {
        live::epoch_s(self.clock.wall_now()) + offset_s
    }

    /// The URL and range of `segment` of `track`, with the init segment that goes with it.
    fn media_url(&self, segment: usize, track: Track) -> Result<Located> {
        let (rung, kind) = match track {
            Track::Video(r) => (self.title.rungs.get(r), "segment"),
            Track::Audio => (self.title.audio.as_ref(), "audio segment"),
        };
        let rung = rung.ok_or_else(|| anyhow!("no {track:?} track"))?;
        let index = match &self.live {
            Some(live) => {
                let schedule = match track {
                    Track::Video(_) => &live.schedule,
                    Track::Audio => live
                        .audio
                        .as_ref()
                        .ok_or_else(|| anyhow!("no live audio schedule"))?,
                };
                let number = schedule.number(segment);
                rung.media
                    .iter()
                    .position(|s| s.number == number)
                    .ok_or_else(|| anyhow!("live {kind} number {number} is not listed"))?
            }
            None => segment,
        };
        let s = rung
            .media
            .get(index)
            .ok_or_else(|| anyhow!("{kind} {segment} is not in the MPD"))?;
        Ok((
            s.url.clone(),
            s.range.as_ref().map(|r| r.to_header()),
            rung.init_for(index).cloned(),
        ))
    }

    /// Where `segment` of `track` is; for a live stream one not listed yet is waited for. The
    /// schedule is an estimate (a packager writes its playlist or SegmentTimeline MPD a little
    /// after the segment's end, and audio segments are not all alike): the playlist is reloaded
    /// every half target duration (live MPD: every 0.5 s) four times before giving up.
    async fn locate(&mut self, segment: usize, track: Track) -> Result<Located> {
        let poll = match &self.live {
            None => return self.media_url(segment, track),
            Some(Live {
                hls_variants: Some(_),
                update_every_s: Some(p),
                ..
            }) => *p,
            Some(Live {
                chunked: Some(_), ..
            }) => 0.1,
            Some(_) => 0.5,
        };
        if let Ok(u) = self.media_url(segment, track) {
            return Ok(u);
        }
        self.refresh(true).await?;
        for _ in 0..4 {
            match self.media_url(segment, track) {
                Ok(u) => return Ok(u),
                // Gone from the window already: waiting will not bring it back.
                Err(e) if self.behind_window(segment, track) => return Err(e),
                Err(_) => {}
            }
            self.clock.sleep(poll).await;
            self.refresh(true).await?;
        }
        self.media_url(segment, track)
    }

    /// Whether live `segment` of `track` is older than every segment listed.
    fn behind_window(&self, segment: usize, track: Track) -> bool {
        let Some(live) = &self.live else {
            return false;
        };
        let (schedule, rung) = match track {
            Track::Video(r) => (Some(&live.schedule), self.title.rungs.get(r)),
            Track::Audio => (live.audio.as_ref(), self.title.audio.as_ref()),
        };
        match (schedule, rung.and_then(|r| r.media.first())) {
            (Some(schedule), Some(oldest)) => schedule.number(segment) < oldest.number,
            _ => false,
        }
    }

    /// Fetches an init segment unless it already was; the bytes fetched.
    async fn init(&mut self, init: Option<mpd::SegmentRef>) -> Result<u64> {
        let Some(init) = init else { return Ok(0) };
        let range = init.range.as_ref().map(|r| r.to_header());
        let key = (init.url.clone(), range.clone());
        if self.inits.contains(&key) {
            return Ok(0);
        }
        let b = self
            .net
            .get(&init.url, range.as_deref(), false, None, 0)
            .await?;
        self.inits.insert(key);
        Ok(b.bytes)
    }

    /// Re-reads a live MPD when minimumUpdatePeriod has passed, or when `force`.
    async fn refresh(&mut self, force: bool) -> Result<()> {
        let Some(live) = &self.live else {
            return Ok(());
        };
        let now = self.clock.now();
        if !live::refresh_due(live.update_every_s, live.fetched_at_s, now) && !force {
            return Ok(());
        }
        let offset = live.offset_s;
        let lang = live.lang.clone();
        if let Some(audio_url) = live.hls_audio.clone() {
            let m = super::hls::fetch_media(&mut self.net, &audio_url).await?;
            if let Some(audio) = &mut self.title.audio {
                let fresh = super::hls::media_rung(&audio.id, 0, &audio_url, &m, true)?;
                audio.media = fresh.media;
                audio.parts = fresh.parts;
            }
        }
        if let Some(variants) = live.hls_variants.clone() {
            for (i, u) in variants.iter().enumerate() {
                let m = super::hls::fetch_media(&mut self.net, u).await?;
                let Some(rung) = self.title.rungs.get_mut(i) else {
                    break;
                };
                let fresh = super::hls::media_rung(&rung.id, rung.bandwidth_bps, u, &m, true)?;
                rung.media = fresh.media;
                rung.parts = fresh.parts;
            }
            if let Some(live) = &mut self.live {
                live.fetched_at_s = now;
            }
            return Ok(());
        }
        let text = self.net.get_bytes(&self.url).await?;
        let mpd = Mpd::parse(&String::from_utf8_lossy(&text))
            .map_err(|e| anyhow!("{}: {e}", self.url))?;
        // Low latency asks for each segment the moment its first chunk is out: list a little
        // ahead so that clock jitter does not hide it (it is requested on schedule anyway).
        let ahead = if self.live.as_ref().and_then(|l| l.chunked).is_some() {
            0.25
        } else {
            0.0
        };
        let at = live::at_epoch(self.server_now_s(offset) + ahead)?;
        let title = Title::from_mpd_lang(&mpd, &self.url, SegmentsAt::Live(at), lang.as_deref())?;
        if title.rungs.len() == self.title.rungs.len() {
            self.title.rungs = title.rungs;
        }
        if let (Some(fresh), Some(audio)) = (title.audio, &mut self.title.audio) {
            if fresh.id == audio.id {
                *audio = fresh;
            }
        }
        if let Some(live) = &mut self.live {
            live.update_every_s = live::update_period_s(&mpd);
            live.fetched_at_s = now;
        }
        Ok(())
    }
}

impl Transport for HttpTransport {
    async fn fetch(&mut self, req: Request, watch: &mut Watch<'_>) -> Result<Fetched> {
        if self.live.is_some() {
            self.refresh(false).await?;
        }
        let (url, range, init) = self.locate(req.segment, Track::Video(req.rung)).await?;
        let extra = self.init(init).await?;
        let b = self
            .net
            .get(
                &url,
                range.as_deref(),
                false,
                Some(watch),
                req.expected_bytes,
            )
            .await?;
        Ok(Fetched {
            bytes: b.bytes + extra,
            complete: b.complete,
            edge: Some(b.edge.to_string()),
        })
    }

    fn companion(&self) -> Option<Companion> {
        let a = self.title.audio.as_ref()?;
        if let Some(live) = &self.live {
            // Live: as many segments as the audio's schedule may fetch, of its median duration.
            let schedule = live.audio.as_ref()?;
            return Some(Companion {
                id: a.id.clone(),
                bandwidth_bps: a.bandwidth_bps,
                durations_s: vec![schedule.segment_s; schedule.count],
            });
        }
        // The audio that plays with the video segments played (all, or the first ones when
        // the session is cut to a duration).
        let video = &self.title.rungs.first()?.media;
        let n = self.title.video.num_segments.min(video.len());
        let end = video[..n].last().map_or(0.0, |s| s.start + s.duration);
        Some(Companion {
            id: a.id.clone(),
            bandwidth_bps: a.bandwidth_bps,
            durations_s: a
                .media
                .iter()
                .take_while(|s| s.start < end - 1e-3)
                .map(|s| s.duration)
                .collect(),
        })
    }

    async fn fetch_companion(&mut self, index: usize) -> Result<Fetched> {
        if self.live.is_some() {
            self.refresh(false).await?;
        }
        let (url, range, init) = self.locate(index, Track::Audio).await?;
        let extra = self.init(init).await?;
        let b = self.net.get(&url, range.as_deref(), false, None, 0).await?;
        Ok(Fetched {
            bytes: b.bytes + extra,
            complete: b.complete,
            edge: Some(b.edge.to_string()),
        })
    }

    fn companion_available_at(&self, index: usize) -> Option<f64> {
        let live = self.live.as_ref()?;
        let server_now = self.server_now_s(live.offset_s);
        let schedule = live.audio.as_ref()?;
        // Low latency: the audio's chunks are as long as the video's.
        let early = live.chunked.map_or(0.0, |offset| {
            let chunk_s = live.schedule.segment_s - offset;
            (schedule.segment_s - chunk_s).max(0.0)
        });
        Some(self.clock.now() + schedule.available_in(index, server_now) - early)
    }

    fn available_at(&self, segment: usize) -> Option<f64> {
        let live = self.live.as_ref()?;
        let server_now = self.server_now_s(live.offset_s);
        let early = live.chunked.unwrap_or(0.0);
        Some(self.clock.now() + live.schedule.available_in(segment, server_now) - early)
    }

    fn live_timeline(&self) -> Option<LiveTimeline> {
        let live = self.live.as_ref()?;
        let server_now = self.server_now_s(live.offset_s);
        let first_start = live.schedule.first_end_epoch_s - live.schedule.segment_s;
        Some(LiveTimeline {
            origin_s: self.clock.now() - (server_now - first_start),
            skip_s: live.skip_s,
        })
    }

    async fn fetch_chunked(
        &mut self,
        req: Request,
        companion: Option<usize>,
        on_chunk: &mut OnChunk<'_>,
    ) -> Result<ChunkedFetch> {
        if self.live.as_ref().and_then(|l| l.chunked).is_none() {
            let mut keep = |_: u64, _: u64, _: f64| true;
            let video = self.fetch(req, &mut keep).await?;
            let companion = match companion {
                Some(i) => Some(self.fetch_companion(i).await),
                None => None,
            };
            return Ok(ChunkedFetch { video, companion });
        }
        self.refresh(false).await?;
        let (url, range, init) = self.locate(req.segment, Track::Video(req.rung)).await?;
        let (video_init, info) = self.init_info(init).await?;
        let mut streams = vec![(url, range, info)];
        let mut audio_init = 0;
        let mut audio_err = None;
        if let Some(index) = companion {
            let found = match self.locate(index, Track::Audio).await {
                Ok((u, r, init)) => self.init_info(init).await.map(|(b, i)| (u, r, b, i)),
                Err(e) => Err(e),
            };
            match found {
                Ok((u, r, b, i)) => {
                    audio_init = b;
                    streams.push((u, r, i));
                }
                Err(e) => audio_err = Some(e),
            }
        }
        let mut ends = self.stream_chunks(streams, on_chunk).await?.into_iter();
        let video = ends
            .next()
            .unwrap_or_else(|| Err(anyhow!("segment {} not fetched", req.segment)))?;
        let companion = companion.map(|_| match (audio_err, ends.next()) {
            (Some(e), _) => Err(e),
            (None, Some(Ok(f))) => Ok(Fetched {
                bytes: f.bytes + audio_init,
                ..f
            }),
            (None, Some(Err(e))) => Err(e),
            (None, None) => Err(anyhow!("the audio was not fetched")),
        });
        Ok(ChunkedFetch {
            video: Fetched {
                bytes: video.bytes + video_init,
                ..video
            },
            companion,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use common::clock::ManualClock;

    use super::*;
    use crate::play::config::PlayConfig;
    use crate::video::Video;

    const AST: f64 = 1_700_000_000.0;

    #[tokio::test]
    async fn live_segments_are_scheduled_by_the_injected_wall_clock() {
        let wall = Arc::new(ManualClock::new(live::at_epoch(AST + 20.5).unwrap()));
        let clock = Arc::new(WallClock::with_wall(wall.clone()));
        let mut cfg = PlayConfig::new("http://video.test/live.mpd".parse().unwrap());
        cfg.resolve = Some(vec![Ipv4Addr::LOCALHOST.into()]);
        let net = Net::new(&cfg, clock.clone()).await.unwrap();
        let title = Title {
            rungs: Vec::new(),
            video: Video::nominal("live", vec![1e6], 2.0, 18).unwrap(),
            dynamic: true,
            url: cfg.url.clone(),
            audio: None,
        };
        let schedule = LiveSchedule {
            first_number: 8,
            first_end_epoch_s: AST + 16.0,
            segment_s: 2.0,
            count: 18,
        };
        let live = Live {
            schedule,
            offset_s: 1.0,
            update_every_s: None,
            fetched_at_s: 0.0,
            hls_variants: None,
            audio: None,
            hls_audio: None,
            lang: None,
            chunked: None,
            skip_s: 0.0,
        };
        let vod = HttpTransport::new(
            Net::new(&cfg, clock.clone()).await.unwrap(),
            title.clone(),
            cfg.url.clone(),
            None,
            clock.clone(),
        );
        assert_eq!(vod.available_at(3), None);
        let t = HttpTransport::new(net, title, cfg.url.clone(), Some(live), clock.clone());
        // Server time is the wall clock plus 1 s, AST + 21.5 s; segment 3 (number 11) ends at
        // AST + 22 s.
        let wait = t.available_at(3).unwrap() - clock.now();
        assert!((wait - 0.5).abs() < 0.05, "{wait}");
        wall.advance(Duration::from_secs(10));
        let wait = t.available_at(3).unwrap() - clock.now();
        assert!((wait + 9.5).abs() < 0.05, "{wait}");
    }
}
