//! HLS (RFC 8216) on demand, parsed with `m3u8-rs`: a multivariant playlist's variants become
//! the ladder (ascending BANDWIDTH, which in HLS already counts the audio the variant plays
//! with) and its audio rendition (the LANGUAGE asked for, else DEFAULT=YES, else the first of the
//! variants' AUDIO group) the track beside it; each media playlist's fMP4/CMAF segments
//! (EXTINF, BYTERANGE, EXT-X-MAP) become a [`Rung`] of the same [`Title`] the DASH path plays,
//! so the ABR, buffer, failover and report are the same. A live playlist (no EXT-X-ENDLIST) plays
//! with its audio too, joined three target durations behind its newest segment, the audio at
//! the segment holding the video's start (each playlist's newest segment taken to end now), and
//! every playlist reloaded every half target duration (see `run` and `transport`). What it
//! cannot play is a one-line error: MPEG-TS segments, encryption, several EXT-X-MAPs in one
//! playlist.

use anyhow::{anyhow, bail, Context, Result};
use m3u8_rs::{AlternativeMediaType, KeyMethod, MediaPlaylist, MediaPlaylistType, Playlist};
use mpd::{ByteRange, MediaSegment, SegmentRef};
use url::Url;

use super::net::Net;
use crate::manifest::{Part, Rung, Title};

/// Whether a document fetched from `url` is an HLS playlist rather than an MPD.
pub fn is_hls(url: &Url, body: &[u8]) -> bool {
    url.path().ends_with(".m3u8") || body.trim_ascii_start().starts_with(b"#EXTM3U")
}

/// Parses a playlist; the error is one line.
fn parse(url: &Url, body: &[u8]) -> Result<Playlist> {
    if !body.trim_ascii_start().starts_with(b"#EXTM3U") {
        bail!("{url}: not an HLS playlist (it does not start with #EXTM3U)");
    }
    m3u8_rs::parse_playlist_res(body).map_err(|_| anyhow!("{url}: malformed HLS playlist"))
}

/// A live HLS stream: its media playlists (one per rung, and the audio rendition's) and target
/// duration.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsLive {
    pub variants: Vec<Url>,
    pub audio: Option<Url>,
    pub target_s: f64,
}

/// The title of the HLS playlist `body` fetched from `url`, fetching its media playlists; with
/// what a live one needs to be reloaded.
pub async fn title(
    net: &mut Net,
    url: &Url,
    body: &[u8],
    lang: Option<&str>,
) -> Result<(Title, Option<HlsLive>)> {
    let master = match parse(url, body)? {
        Playlist::MediaPlaylist(m) => {
            // A lone media playlist: one rung of unknown rate.
            let rung = media_rung("0", 1, url, &m, true)?;
            let live = (!m.end_list).then(|| HlsLive {
                variants: vec![url.clone()],
                audio: None,
                target_s: m.target_duration as f64,
            });
            let title = Title::from_rungs(url, vec![rung], None, live.is_some())?;
            return Ok((title, live));
        }
        Playlist::MasterPlaylist(m) => m,
    };
    let mut variants: Vec<_> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && v.bandwidth > 0)
        .collect();
    variants.sort_by_key(|v| v.bandwidth);
    variants.dedup_by(|a, b| a.uri == b.uri);
    if variants.is_empty() {
        bail!("{url}: the multivariant playlist has no variant with a BANDWIDTH");
    }
    let mut rungs = Vec::with_capacity(variants.len());
    let mut variant_urls = Vec::with_capacity(variants.len());
    let mut live = false;
    let mut target_s: f64 = 0.0;
    for (i, v) in variants.iter().enumerate() {
        let media_url = url
            .join(&v.uri)
            .with_context(|| format!("{url}: bad variant URI `{}`", v.uri))?;
        let m = fetch_media(net, &media_url).await?;
        live |= !m.end_list;
        target_s = target_s.max(m.target_duration as f64);
        rungs.push(media_rung(
            &i.to_string(),
            v.bandwidth,
            &media_url,
            &m,
            true,
        )?);
        variant_urls.push(media_url);
    }
    let audio = match variants[0].audio.as_deref() {
        None => None,
        Some(group) => {
            let in_group: Vec<_> = master
                .alternatives
                .iter()
                .filter(|a| a.media_type == AlternativeMediaType::Audio && a.group_id == group)
                .collect();
            let chosen = match lang {
                Some(want) => {
                    let want = want.to_ascii_lowercase();
                    let found = in_group.iter().find(|a| {
                        a.language.as_deref().is_some_and(|l| {
                            let l = l.to_ascii_lowercase();
                            l == want || l.starts_with(&format!("{want}-"))
                        })
                    });
                    match found {
                        Some(a) => Some(*a),
                        None => bail!("{url}: no audio rendition in language `{want}`"),
                    }
                }
                None => in_group
                    .iter()
                    .find(|a| a.default)
                    .or(in_group.first())
                    .copied(),
            };
            // A rendition without URI is muxed into the variants: nothing to fetch beside.
            match chosen.and_then(|a| a.uri.as_deref().map(|u| (a, u))) {
                None => None,
                Some((a, uri)) => {
                    let media_url = url
                        .join(uri)
                        .with_context(|| format!("{url}: bad audio URI `{uri}`"))?;
                    let m = fetch_media(net, &media_url).await?;
                    // Its rate is already in each variant's BANDWIDTH.
                    Some((media_rung(&a.name, 0, &media_url, &m, live)?, media_url))
                }
            }
        }
    };
    let (audio, audio_url) = audio.unzip();
    let title = Title::from_rungs(url, rungs, audio, live)?;
    let live = live.then_some(HlsLive {
        variants: variant_urls,
        audio: audio_url,
        target_s,
    });
    Ok((title, live))
}

/// Fetches and parses a media playlist.
pub async fn fetch_media(net: &mut Net, url: &Url) -> Result<MediaPlaylist> {
    let body = net
        .get_bytes(url)
        .await
        .with_context(|| format!("cannot fetch the media playlist {url}"))?;
    match parse(url, &body)? {
        Playlist::MediaPlaylist(m) => Ok(m),
        Playlist::MasterPlaylist(_) => {
            bail!("{url}: a multivariant playlist where a media playlist was expected")
        }
    }
}

/// The segments of a media playlist (fetched from `url`) as one rung; a live one (no
/// EXT-X-ENDLIST) only when `live_ok`. Segment numbers are media sequence numbers; starts count
/// from the first segment listed.
pub fn media_rung(
    id: &str,
    bandwidth_bps: u64,
    url: &Url,
    m: &MediaPlaylist,
    live_ok: bool,
) -> Result<Rung> {
    if !m.end_list && !live_ok {
        let kind = match m.playlist_type {
            Some(MediaPlaylistType::Event) => "an EVENT",
            _ => "a live",
        };
        bail!("{url}: {kind} playlist (no EXT-X-ENDLIST) where an on-demand one was expected");
    }
    if m.segments.is_empty() {
        bail!("{url}: the media playlist lists no segment");
    }
    let mut init: Option<SegmentRef> = None;
    let mut media = Vec::with_capacity(m.segments.len());
    let mut start = 0.0;
    // Where the previous BYTERANGE of each URI ended (a BYTERANGE without @offset follows it).
    let mut next_offset: Option<(Url, u64)> = None;
    for (i, s) in m.segments.iter().enumerate() {
        if let Some(key) = &s.key {
            if key.method != KeyMethod::None {
                bail!("{url}: encrypted segments (EXT-X-KEY) are not supported");
            }
        }
        if let Some(map) = &s.map {
            let map_url = url
                .join(&map.uri)
                .with_context(|| format!("{url}: bad EXT-X-MAP URI `{}`", map.uri))?;
            let range = map
                .byte_range
                .as_ref()
                .map(|b| range_of(b.length, b.offset.unwrap_or(0)))
                .transpose()?;
            let this = SegmentRef {
                url: map_url,
                range,
            };
            match &init {
                Some(prev) if *prev != this => {
                    bail!("{url}: several EXT-X-MAPs in one playlist are not supported")
                }
                _ => init = Some(this),
            }
        }
        let seg_url = url
            .join(&s.uri)
            .with_context(|| format!("{url}: bad segment URI `{}`", s.uri))?;
        if init.is_none() {
            bail!(
                "{url}: segment `{}` has no EXT-X-MAP: MPEG-TS segments are not supported, only fMP4/CMAF",
                s.uri
            );
        }
        let range = match &s.byte_range {
            None => None,
            Some(b) => {
                let offset = match (b.offset, &next_offset) {
                    (Some(o), _) => o,
                    (None, Some((u, o))) if *u == seg_url => *o,
                    (None, _) => bail!(
                        "{url}: BYTERANGE without offset for `{}` follows no range of it",
                        s.uri
                    ),
                };
                let r = range_of(b.length, offset)?;
                next_offset = r
                    .last
                    .and_then(|l| l.checked_add(1))
                    .map(|n| (seg_url.clone(), n));
                Some(r)
            }
        };
        let duration = f64::from(s.duration);
        if !(duration.is_finite() && duration > 0.0) {
            bail!("{url}: segment `{}` has EXTINF {duration}", s.uri);
        }
        media.push(MediaSegment {
            url: seg_url,
            range,
            number: m.media_sequence + i as u64,
            time: 0,
            start,
            duration,
        });
        start += duration;
    }
    Ok(Rung {
        id: id.to_string(),
        bandwidth_bps,
        init: init.clone(),
        media: media.clone(),
        parts: vec![Part {
            period: 0,
            representation: id.to_string(),
            first: 0,
            init,
            pending_index: None,
            segments: media,
        }],
    })
}

fn range_of(length: u64, offset: u64) -> Result<ByteRange> {
    if length == 0 {
        bail!("empty BYTERANGE");
    }
    let last = offset
        .checked_add(length - 1)
        .ok_or_else(|| anyhow!("BYTERANGE {length}@{offset} overflows"))?;
    Ok(ByteRange::new(offset, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(text: &str) -> MediaPlaylist {
        match m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap() {
            Playlist::MediaPlaylist(m) => m,
            Playlist::MasterPlaylist(_) => panic!("not a media playlist"),
        }
    }

    fn url() -> Url {
        "http://h.test/v/a/index.m3u8".parse().unwrap()
    }

    #[test]
    fn fmp4_segments_with_byte_ranges_and_a_map() {
        let m = media(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"800@0\"\n\
             #EXTINF:2.0,\n#EXT-X-BYTERANGE:1000@800\nall.mp4\n\
             #EXTINF:1.5,\n#EXT-X-BYTERANGE:500\nall.mp4\n#EXT-X-ENDLIST\n",
        );
        let r = media_rung("0", 300_000, &url(), &m, false).unwrap();
        let segs = &r.parts[0].segments;
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].url.as_str(), "http://h.test/v/a/all.mp4");
        assert_eq!(segs[0].range, Some(ByteRange::new(800, 1799)));
        assert_eq!(segs[1].range, Some(ByteRange::new(1800, 2299)));
        assert_eq!(
            (segs[1].start, segs[1].duration, segs[1].number),
            (2.0, 1.5, 6)
        );
        let init = r.parts[0].init.clone().unwrap();
        assert_eq!(init.url.as_str(), "http://h.test/v/a/init.mp4");
        assert_eq!(init.range, Some(ByteRange::new(0, 799)));
        let t = Title::from_rungs(&url(), vec![r], None, false).unwrap();
        assert_eq!(t.video.num_segments, 2);
        assert_eq!(t.rungs[0].init_for(1), Some(&init));
    }

    #[test]
    fn what_cannot_play_says_why() {
        let vod = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n";
        for (text, want) in [
            (vod.to_string(), "MPEG-TS segments are not supported"),
            (
                vod.replace("#EXT-X-ENDLIST\n", ""),
                "where an on-demand one was expected",
            ),
            (
                vod.replace(
                    "#EXTINF",
                    "#EXT-X-MAP:URI=\"i.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF",
                ),
                "encrypted segments",
            ),
            (
                vod.replace("#EXTINF", "#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF")
                    .replace(
                        "#EXT-X-ENDLIST",
                        "#EXT-X-MAP:URI=\"j.mp4\"\n#EXTINF:2.0,\ns1.m4s\n#EXT-X-ENDLIST",
                    ),
                "several EXT-X-MAPs",
            ),
            (
                vod.replace("#EXTINF", "#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF")
                    .replace("#EXTINF:2.0,\n", "#EXTINF:2.0,\n#EXT-X-BYTERANGE:10\n"),
                "BYTERANGE without offset",
            ),
        ] {
            let err = media_rung("0", 1, &url(), &media(&text), false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        let err = parse(&url(), b"<MPD/>").unwrap_err().to_string();
        assert!(err.contains("not an HLS playlist"), "{err}");
        assert!(is_hls(&url(), b""));
        assert!(is_hls(
            &"http://h.test/live".parse().unwrap(),
            b"  #EXTM3U\n"
        ));
        assert!(!is_hls(&"http://h.test/m.mpd".parse().unwrap(), b"<MPD/>"));
    }
}
