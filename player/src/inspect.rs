//! `cdn mpd FILE_OR_URL [--json]`: parse an MPD and print its summary, with a warning line for
//! everything the lenient parser repaired (and why a Representation is unplayable).
//! `cdn hls FILE_OR_URL [--json]`: the same for an HLS playlist, multivariant or media.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use url::Url;

use mpd::{Mpd, SegmentsAt, Summary};

/// Arguments of `cdn mpd`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// An MPD file, or an http:// URL of one.
    pub source: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Reads, parses and summarizes the MPD; prints the summary to stdout.
pub fn run(args: Args) -> Result<()> {
    let summary = summarize(&args.source)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

/// The summary of an MPD file or URL; a dynamic MPD is summarized as available now. Its
/// `warnings` start with what the parser repaired (with line and column), then what the
/// resolution did.
pub fn summarize(source: &str) -> Result<Summary> {
    let (text, url) = read(source)?;
    let (mpd, warnings) = Mpd::parse_with_warnings(&text).with_context(|| source.to_string())?;
    let at = if mpd.is_dynamic() {
        SegmentsAt::Live(SystemTime::now())
    } else {
        SegmentsAt::Vod
    };
    let mut summary = Summary::new(&mpd, &url, at).with_context(|| source.to_string())?;
    summary
        .warnings
        .splice(0..0, warnings.iter().map(ToString::to_string));
    Ok(summary)
}

/// Reads and parses an MPD file or http:// URL; returns it with the URL its relative BaseURLs
/// resolve against (the file's `file://` URL or the URL fetched).
pub fn load(source: &str) -> Result<(Mpd, Url)> {
    let (text, url) = read(source)?;
    let mpd = Mpd::parse(&text).with_context(|| source.to_string())?;
    Ok((mpd, url))
}

fn read(source: &str) -> Result<(String, Url)> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let url = Url::parse(source).with_context(|| format!("invalid URL `{source}`"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let body = rt.block_on(common::http::get(source))?;
        let text = String::from_utf8(body.to_vec())
            .with_context(|| format!("{source}: not UTF-8 text"))?;
        return Ok((text, url));
    }
    let path = Path::new(source);
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {source}"))?;
    let abs = std::fs::canonicalize(path).with_context(|| format!("cannot resolve {source}"))?;
    let Ok(url) = Url::from_file_path(&abs) else {
        bail!("cannot turn {} into a file URL", abs.display());
    };
    Ok((text, url))
}

/// What `cdn hls` prints: a multivariant playlist's variants and renditions, or a media
/// playlist's segments.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HlsSummary {
    Multivariant {
        url: String,
        independent_segments: bool,
        variants: Vec<HlsVariant>,
        renditions: Vec<HlsRendition>,
    },
    Media {
        url: String,
        version: Option<usize>,
        target_duration: u64,
        media_sequence: u64,
        playlist_type: Option<String>,
        ended: bool,
        map: Option<String>,
        segments: usize,
        duration_s: f64,
        first_program_date_time: Option<String>,
    },
}

/// One EXT-X-STREAM-INF.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HlsVariant {
    pub uri: String,
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub resolution: Option<String>,
    pub frame_rate: Option<f64>,
    pub codecs: Option<String>,
    pub audio: Option<String>,
}

/// One EXT-X-MEDIA.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HlsRendition {
    pub media_type: String,
    pub group_id: String,
    pub name: String,
    pub language: Option<String>,
    pub default: bool,
    pub uri: Option<String>,
}

/// `cdn hls`: reads, parses and summarizes a playlist; prints the summary to stdout.
pub fn run_hls(args: Args) -> Result<()> {
    let summary = summarize_hls(&args.source)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

/// The summary of an HLS playlist file or URL.
pub fn summarize_hls(source: &str) -> Result<HlsSummary> {
    let (text, url) = read(source)?;
    hls_summary(&text, &url).with_context(|| source.to_string())
}

/// The summary of playlist text fetched from `url`.
pub fn hls_summary(text: &str, url: &Url) -> Result<HlsSummary> {
    if !text.trim_start_matches('\u{feff}').starts_with("#EXTM3U") {
        bail!("not an HLS playlist: it does not start with #EXTM3U");
    }
    let playlist = m3u8_rs::parse_playlist_res(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a valid HLS playlist: {e}"))?;
    Ok(match playlist {
        m3u8_rs::Playlist::MasterPlaylist(m) => HlsSummary::Multivariant {
            url: url.to_string(),
            independent_segments: m.independent_segments,
            variants: m
                .variants
                .iter()
                .filter(|v| !v.is_i_frame)
                .map(|v| HlsVariant {
                    uri: v.uri.clone(),
                    bandwidth: v.bandwidth,
                    average_bandwidth: v.average_bandwidth,
                    resolution: v.resolution.map(|r| format!("{}x{}", r.width, r.height)),
                    frame_rate: v.frame_rate,
                    codecs: v.codecs.clone(),
                    audio: v.audio.clone(),
                })
                .collect(),
            renditions: m
                .alternatives
                .iter()
                .map(|a| HlsRendition {
                    media_type: a.media_type.to_string(),
                    group_id: a.group_id.clone(),
                    name: a.name.clone(),
                    language: a.language.clone(),
                    default: a.default,
                    uri: a.uri.clone(),
                })
                .collect(),
        },
        m3u8_rs::Playlist::MediaPlaylist(m) => HlsSummary::Media {
            url: url.to_string(),
            version: m.version,
            target_duration: m.target_duration,
            media_sequence: m.media_sequence,
            playlist_type: m.playlist_type.as_ref().map(|t| t.to_string()),
            ended: m.end_list,
            map: m
                .segments
                .iter()
                .find_map(|s| s.map.as_ref().map(|m| m.uri.clone())),
            segments: m.segments.len(),
            duration_s: m.segments.iter().map(|s| f64::from(s.duration)).sum(),
            first_program_date_time: m
                .segments
                .first()
                .and_then(|s| s.program_date_time.map(|t| t.to_rfc3339())),
        },
    })
}

impl HlsSummary {
    /// The human-readable form `cdn hls` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        match self {
            HlsSummary::Multivariant {
                url,
                independent_segments,
                variants,
                renditions,
            } => {
                let _ = writeln!(s, "HLS multivariant playlist {url}");
                let _ = writeln!(s, "independent segments: {independent_segments}");
                for v in variants {
                    let _ = writeln!(
                        s,
                        "  variant {} bandwidth {} (average {}) {} {} fps codecs {} audio {}",
                        v.uri,
                        v.bandwidth,
                        v.average_bandwidth.map_or("-".into(), |b| b.to_string()),
                        v.resolution.as_deref().unwrap_or("-"),
                        v.frame_rate.map_or("-".into(), |f| format!("{f:.3}")),
                        v.codecs.as_deref().unwrap_or("-"),
                        v.audio.as_deref().unwrap_or("-"),
                    );
                }
                for r in renditions {
                    let _ = writeln!(
                        s,
                        "  {} group {} name {} language {} default {} {}",
                        r.media_type,
                        r.group_id,
                        r.name,
                        r.language.as_deref().unwrap_or("-"),
                        r.default,
                        r.uri.as_deref().unwrap_or("-"),
                    );
                }
            }
            HlsSummary::Media {
                url,
                version,
                target_duration,
                media_sequence,
                playlist_type,
                ended,
                map,
                segments,
                duration_s,
                first_program_date_time,
            } => {
                let _ = writeln!(s, "HLS media playlist {url}");
                let _ = writeln!(
                    s,
                    "version {} target duration {target_duration} s, media sequence {media_sequence}, type {}, {}",
                    version.map_or("-".into(), |v| v.to_string()),
                    playlist_type.as_deref().unwrap_or("-"),
                    if *ended { "ended" } else { "live (no EXT-X-ENDLIST)" },
                );
                let _ = writeln!(
                    s,
                    "{segments} segments, {duration_s:.3} s, map {}, first program date time {}",
                    map.as_deref().unwrap_or("-"),
                    first_program_date_time.as_deref().unwrap_or("-"),
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        "http://edge.test/vod/demo/master.m3u8".parse().unwrap()
    }

    #[test]
    fn a_multivariant_playlist_lists_variants_and_renditions() {
        let text = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1628000,AVERAGE-BANDWIDTH=1200000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud\"\n360p.m3u8\n";
        let summary = hls_summary(text, &url()).unwrap();
        let HlsSummary::Multivariant {
            independent_segments,
            variants,
            renditions,
            ..
        } = &summary
        else {
            panic!("{summary:?}");
        };
        assert!(independent_segments);
        assert_eq!(variants.len(), 1);
        assert_eq!(variants[0].bandwidth, 1_628_000);
        assert_eq!(variants[0].resolution.as_deref(), Some("640x360"));
        assert_eq!(variants[0].audio.as_deref(), Some("aud"));
        assert_eq!(renditions[0].media_type, "AUDIO");
        assert_eq!(renditions[0].language.as_deref(), Some("en"));
        let text = summary.to_text();
        assert!(
            text.contains("variant 360p.m3u8 bandwidth 1628000"),
            "{text}"
        );
    }

    #[test]
    fn a_media_playlist_counts_its_segments() {
        let text = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"v0/init.mp4\"\n\
            #EXTINF:2.0,\nv0/seg-00007.m4s\n#EXTINF:1.5,\nv0/seg-00008.m4s\n#EXT-X-ENDLIST\n";
        let summary = hls_summary(text, &url()).unwrap();
        assert_eq!(
            summary,
            HlsSummary::Media {
                url: url().to_string(),
                version: Some(6),
                target_duration: 2,
                media_sequence: 7,
                playlist_type: Some("VOD".into()),
                ended: true,
                map: Some("v0/init.mp4".into()),
                segments: 2,
                duration_s: 3.5,
                first_program_date_time: None,
            }
        );
    }

    #[test]
    fn what_is_not_a_playlist_says_so() {
        let err = hls_summary("<MPD/>", &url()).unwrap_err().to_string();
        assert!(err.contains("not an HLS playlist"), "{err}");
    }
}
