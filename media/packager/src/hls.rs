//! The HLS playlists of a packaged title (RFC 8216), written with `m3u8-rs` over the same CMAF
//! segments as the MPD: a multivariant playlist `master.m3u8` (one EXT-X-STREAM-INF per video
//! rung, the audio rungs as EXT-X-MEDIA of one group) and one media playlist `<id>.m3u8` per
//! rung beside it, whose URIs are the MPD's `<id>/init.mp4` and `<id>/seg-NNNNN.m4s`.
//!
//! Rules clients rely on, each checked by a unit test: EXT-X-VERSION 6 (the lowest allowing
//! EXT-X-MAP outside an I-frame playlist; 3 would do for the decimal EXTINF), EXT-X-MAP before the
//! first segment, EXT-X-TARGETDURATION at least every EXTINF rounded to the nearest integer, a
//! BANDWIDTH that counts the audio a variant plays with, quoted string attributes.

use anyhow::{Context, Result};
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, Map, MasterPlaylist, MediaPlaylist, MediaPlaylistType,
    MediaSegment, Resolution, VariantStream,
};

use crate::manifest;

/// File name of the multivariant playlist in the output folder.
pub const MASTER_NAME: &str = "master.m3u8";
/// EXT-X-VERSION of every playlist written: 6 for EXT-X-MAP in a media playlist (RFC 8216 7).
pub const VERSION: usize = 6;
/// GROUP-ID of the audio renditions.
pub const AUDIO_GROUP: &str = "audio";

/// The media playlist file name of a rung, relative to the output folder.
pub fn media_playlist_name(id: &str) -> String {
    format!("{id}.m3u8")
}

/// One rung as HLS sees it: its segments' real durations and its rates.
#[derive(Debug, Clone)]
pub struct Rung {
    /// Representation id (and folder of its segments).
    pub id: String,
    /// RFC 6381 codecs string.
    pub codecs: String,
    /// Peak rate, bits/s (the MPD's @bandwidth).
    pub bandwidth: u64,
    /// Average rate over the title, bits/s.
    pub average_bandwidth: u64,
    /// Duration of each media segment in seconds, in order (segment k is number k + 1).
    pub durations: Vec<f64>,
}

/// A video rung: a rung and its picture.
#[derive(Debug, Clone)]
pub struct VideoRung {
    /// Segments and rates.
    pub rung: Rung,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
}

/// An audio rung: a rung and its channel count.
#[derive(Debug, Clone)]
pub struct AudioRung {
    /// Segments and rates.
    pub rung: Rung,
    /// Channel count.
    pub channels: u32,
}

/// Every playlist of a title.
#[derive(Debug, Clone)]
pub struct Title {
    /// Video rungs, one variant each.
    pub video: Vec<VideoRung>,
    /// Audio rungs, one EXT-X-MEDIA each in [`AUDIO_GROUP`] (the first is the default).
    pub audio: Vec<AudioRung>,
    /// BCP 47 language of the sound.
    pub lang: String,
}

/// EXT-X-TARGETDURATION for segments of these durations: the largest rounded to the nearest
/// integer (RFC 8216 4.3.3.1), at least 1.
pub fn target_duration(durations: impl IntoIterator<Item = f64>) -> u64 {
    durations
        .into_iter()
        .map(|d| d.round() as u64)
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The media segments of a rung, numbered from `first` (1-based), `durations[i]` being segment
/// `first + i`; the first carries EXT-X-MAP.
pub fn segments(id: &str, first: u32, durations: &[f64]) -> Vec<MediaSegment> {
    durations
        .iter()
        .enumerate()
        .map(|(i, &d)| MediaSegment {
            uri: manifest::segment_path(id, first + i as u32),
            duration: d as f32,
            map: (i == 0).then(|| Map {
                uri: manifest::init_path(id),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// The VOD media playlist of a rung.
pub fn media_playlist(rung: &Rung) -> MediaPlaylist {
    let segments = segments(&rung.id, 1, &rung.durations);
    MediaPlaylist {
        version: Some(VERSION),
        target_duration: target_duration(segments.iter().map(|s| f64::from(s.duration))),
        media_sequence: 0,
        independent_segments: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        end_list: true,
        segments,
        ..Default::default()
    }
}

/// The multivariant playlist: the audio group, then one variant per video rung whose
/// BANDWIDTH and AVERAGE-BANDWIDTH add the richest audio rung's.
pub fn master_playlist(title: &Title) -> MasterPlaylist {
    let audio_peak = title.audio.iter().map(|a| a.rung.bandwidth).max();
    let audio_average = title.audio.iter().map(|a| a.rung.average_bandwidth).max();
    let audio_codecs = title.audio.first().map(|a| a.rung.codecs.clone());
    let alternatives = title
        .audio
        .iter()
        .enumerate()
        .map(|(i, a)| AlternativeMedia {
            media_type: AlternativeMediaType::Audio,
            uri: Some(media_playlist_name(&a.rung.id)),
            group_id: AUDIO_GROUP.into(),
            language: Some(title.lang.clone()),
            name: a.rung.id.clone(),
            default: i == 0,
            autoselect: true,
            channels: Some(a.channels.to_string()),
            ..Default::default()
        })
        .collect();
    let variants = title
        .video
        .iter()
        .map(|v| VariantStream {
            uri: media_playlist_name(&v.rung.id),
            bandwidth: v.rung.bandwidth + audio_peak.unwrap_or(0),
            average_bandwidth: Some(v.rung.average_bandwidth + audio_average.unwrap_or(0)),
            codecs: Some(match &audio_codecs {
                Some(a) => format!("{},{a}", v.rung.codecs),
                None => v.rung.codecs.clone(),
            }),
            resolution: Some(Resolution {
                width: u64::from(v.width),
                height: u64::from(v.height),
            }),
            frame_rate: Some(v.frame_rate),
            audio: audio_codecs.as_ref().map(|_| AUDIO_GROUP.into()),
            ..Default::default()
        })
        .collect();
    MasterPlaylist {
        version: Some(VERSION),
        independent_segments: true,
        alternatives,
        variants,
        ..Default::default()
    }
}

/// A playlist as text.
pub fn text(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Result<String> {
    let mut out = Vec::new();
    write(&mut out).context("writing a playlist")?;
    String::from_utf8(out).context("a playlist is not UTF-8")
}

/// Every playlist of the title as (file name, text): the media playlists, then `master.m3u8`.
pub fn playlists(title: &Title) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let rungs = title
        .video
        .iter()
        .map(|v| &v.rung)
        .chain(title.audio.iter().map(|a| &a.rung));
    for r in rungs {
        let p = media_playlist(r);
        files.push((media_playlist_name(&r.id), text(|w| p.write_to(w))?));
    }
    let master = master_playlist(title);
    files.push((MASTER_NAME.into(), text(|w| master.write_to(w))?));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title() -> Title {
        let rung = |id: &str, codecs: &str, bw, avg, d: &[f64]| Rung {
            id: id.into(),
            codecs: codecs.into(),
            bandwidth: bw,
            average_bandwidth: avg,
            durations: d.to_vec(),
        };
        Title {
            video: vec![
                VideoRung {
                    rung: rung("240p", "avc1.42c015", 400_000, 300_000, &[2.0, 2.0, 1.5]),
                    width: 426,
                    height: 240,
                    frame_rate: 30.0,
                },
                VideoRung {
                    rung: rung(
                        "720p",
                        "avc1.64001f",
                        2_000_000,
                        1_500_000,
                        &[2.0, 2.0, 1.5],
                    ),
                    width: 1280,
                    height: 720,
                    frame_rate: 30.0,
                },
            ],
            audio: vec![AudioRung {
                rung: rung("audio", "mp4a.40.2", 130_000, 128_000, &[2.005, 1.99, 1.5]),
                channels: 2,
            }],
            lang: "en".into(),
        }
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn media_playlist_tags_are_in_rfc_8216_order() {
        let t = title();
        let p = text(|w| media_playlist(&t.audio[0].rung).write_to(w)).unwrap();
        let l = lines(&p);
        assert_eq!(l[0], "#EXTM3U");
        assert_eq!(l[1], "#EXT-X-VERSION:6");
        assert!(l.contains(&"#EXT-X-TARGETDURATION:2"));
        assert!(l.contains(&"#EXT-X-PLAYLIST-TYPE:VOD"));
        assert_eq!(*l.last().unwrap(), "#EXT-X-ENDLIST");
        // Header tags before the first segment; EXT-X-MAP before the first EXTINF.
        let map = l.iter().position(|x| x.starts_with("#EXT-X-MAP:")).unwrap();
        let first_inf = l.iter().position(|x| x.starts_with("#EXTINF:")).unwrap();
        let target = l
            .iter()
            .position(|x| x.starts_with("#EXT-X-TARGETDURATION"))
            .unwrap();
        assert!(target < map && map < first_inf);
        assert_eq!(l[map], "#EXT-X-MAP:URI=\"audio/init.mp4\"");
        assert_eq!(l.iter().filter(|x| x.starts_with("#EXT-X-MAP")).count(), 1);
        // Each EXTINF is followed by its URI, the MPD's segment file.
        let infs: Vec<usize> = (0..l.len())
            .filter(|&i| l[i].starts_with("#EXTINF:"))
            .collect();
        assert_eq!(infs.len(), 3);
        for (k, &i) in infs.iter().enumerate() {
            assert_eq!(l[i + 1], manifest::segment_path("audio", k as u32 + 1));
        }
        assert!(l[infs[0]].starts_with("#EXTINF:2.005"));
    }

    #[test]
    fn target_duration_covers_every_extinf_rounded() {
        assert_eq!(target_duration([2.0, 2.0, 1.2]), 2);
        assert_eq!(target_duration([2.0, 2.5]), 3);
        assert_eq!(target_duration([2.49, 2.0]), 2);
        assert_eq!(target_duration([0.3]), 1);
        assert_eq!(target_duration([]), 1);
        let t = title();
        for r in t.video.iter().map(|v| &v.rung).chain([&t.audio[0].rung]) {
            let p = media_playlist(r);
            for s in &p.segments {
                assert!((f64::from(s.duration).round() as u64) <= p.target_duration);
            }
        }
    }

    #[test]
    fn master_bandwidth_includes_audio_and_attributes_are_quoted() {
        let p = text(|w| master_playlist(&title()).write_to(w)).unwrap();
        let l = lines(&p);
        assert_eq!(l[0], "#EXTM3U");
        assert_eq!(l[1], "#EXT-X-VERSION:6");
        assert_eq!(l[2], "#EXT-X-INDEPENDENT-SEGMENTS");
        let media = l
            .iter()
            .position(|x| x.starts_with("#EXT-X-MEDIA:"))
            .unwrap();
        let inf = l
            .iter()
            .position(|x| x.starts_with("#EXT-X-STREAM-INF:"))
            .unwrap();
        // The group is declared before the variants that name it.
        assert!(media < inf);
        let m = l[media];
        for attr in [
            "TYPE=AUDIO",
            "GROUP-ID=\"audio\"",
            "NAME=\"audio\"",
            "LANGUAGE=\"en\"",
            "DEFAULT=YES",
            "AUTOSELECT=YES",
            "URI=\"audio.m3u8\"",
            "CHANNELS=\"2\"",
        ] {
            assert!(m.contains(attr), "{attr} in {m}");
        }
        let v = l[inf];
        for attr in [
            "BANDWIDTH=530000",
            "AVERAGE-BANDWIDTH=428000",
            "CODECS=\"avc1.42c015,mp4a.40.2\"",
            "RESOLUTION=426x240",
            "FRAME-RATE=30",
            "AUDIO=\"audio\"",
        ] {
            assert!(v.contains(attr), "{attr} in {v}");
        }
        assert_eq!(l[inf + 1], "240p.m3u8");
        assert_eq!(
            l.iter()
                .filter(|x| x.starts_with("#EXT-X-STREAM-INF:"))
                .count(),
            2
        );
    }

    #[test]
    fn playlists_parse_back_with_m3u8_rs() {
        for (name, body) in playlists(&title()).unwrap() {
            let parsed = m3u8_rs::parse_playlist_res(body.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            match parsed {
                m3u8_rs::Playlist::MasterPlaylist(m) => {
                    assert_eq!(name, MASTER_NAME);
                    assert_eq!(m.variants.len(), 2);
                    assert_eq!(m.alternatives.len(), 1);
                }
                m3u8_rs::Playlist::MediaPlaylist(m) => {
                    assert!(m.end_list, "{name}");
                    assert_eq!(m.segments.len(), 3, "{name}");
                }
            }
        }
    }
}
