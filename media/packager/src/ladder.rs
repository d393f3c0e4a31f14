//! The bitrate ladder: which renditions (size and target bitrate) the packager encodes, and the
//! audio rungs (AAC-LC: sample rate, channels, bitrate). Read from a TOML file (`--ladder FILE`)
//! or the default `media/packager/ladder.toml` embedded at build time. A file without `[[audio]]`
//! entries gets the default audio rung of the embedded file; `audio = []` means no audio.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The default ladder: 426x240@400k, 640x360@800k, 854x480@1400k, 1280x720@2800k.
pub const DEFAULT_LADDER_TOML: &str = include_str!("../ladder.toml");

/// One rendition of the ladder, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// URL-safe id; also the Representation@id and the folder of its segments.
    pub id: String,
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Target bitrate of the encoder's rate control, in bits per second.
    pub bitrate: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRendition {
    id: String,
    width: u32,
    height: u32,
    bitrate_kbps: u32,
}

impl TryFrom<RawRendition> for Rendition {
    type Error = String;

    fn try_from(raw: RawRendition) -> std::result::Result<Self, String> {
        let id = raw.id;
        check_id(&id)?;
        if !raw.width.is_multiple_of(2) || !raw.height.is_multiple_of(2) {
            return Err(format!(
                "rendition {id:?}: {}x{} must have an even width and height (4:2:0 chroma)",
                raw.width, raw.height
            ));
        }
        if !(16..=3840).contains(&raw.width) || !(16..=2160).contains(&raw.height) {
            return Err(format!(
                "rendition {id:?}: {}x{} is outside 16x16..3840x2160",
                raw.width, raw.height
            ));
        }
        if !(16..=100_000).contains(&raw.bitrate_kbps) {
            return Err(format!(
                "rendition {id:?}: bitrate_kbps {} is outside 16..=100000",
                raw.bitrate_kbps
            ));
        }
        Ok(Rendition {
            id,
            width: raw.width,
            height: raw.height,
            bitrate: raw.bitrate_kbps * 1000,
        })
    }
}

/// A validated ladder: at least one rendition, unique ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    /// Renditions in file order.
    pub renditions: Vec<Rendition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderFile {
    #[serde(default)]
    rendition: Vec<toml::Spanned<RawRendition>>,
    audio: Option<Vec<toml::Spanned<RawAudio>>>,
}

/// Sample rates an audio rung may use (AAC-LC sampling frequency indexes 3 to 8).
pub const AUDIO_SAMPLE_RATES: [u32; 6] = [48_000, 44_100, 32_000, 24_000, 22_050, 16_000];

/// One audio rung of the ladder, validated: one AAC-LC Representation of the audio
/// AdaptationSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioRendition {
    /// URL-safe id; also the Representation@id and the folder of its segments.
    pub id: String,
    /// Samples per second per channel (one of [`AUDIO_SAMPLE_RATES`]); also the timescale.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u32,
    /// Target bitrate of the encoder (constant bitrate mode), in bits per second.
    pub bitrate: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudio {
    id: String,
    #[serde(default = "default_sample_rate")]
    sample_rate: u32,
    #[serde(default = "default_channels")]
    channels: u32,
    bitrate_kbps: u32,
}

fn default_sample_rate() -> u32 {
    48_000
}

fn default_channels() -> u32 {
    2
}

fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || id.starts_with('.')
    {
        return Err(format!(
            "rendition id {id:?} must be 1 to 64 URL-safe characters (letters, digits, '-', '_', '.'), not starting with '.'"
        ));
    }
    Ok(())
}

impl TryFrom<RawAudio> for AudioRendition {
    type Error = String;

    fn try_from(raw: RawAudio) -> std::result::Result<Self, String> {
        let id = raw.id;
        check_id(&id)?;
        if !AUDIO_SAMPLE_RATES.contains(&raw.sample_rate) {
            return Err(format!(
                "audio {id:?}: sample_rate {} is not one of {AUDIO_SAMPLE_RATES:?}",
                raw.sample_rate
            ));
        }
        if !(1..=2).contains(&raw.channels) {
            return Err(format!(
                "audio {id:?}: channels {} must be 1 (mono) or 2 (stereo)",
                raw.channels
            ));
        }
        let min = 16 * raw.channels;
        if !(min..=320).contains(&raw.bitrate_kbps) {
            return Err(format!(
                "audio {id:?}: bitrate_kbps {} is outside {min}..=320",
                raw.bitrate_kbps
            ));
        }
        Ok(AudioRendition {
            id,
            sample_rate: raw.sample_rate,
            channels: raw.channels,
            bitrate: raw.bitrate_kbps * 1000,
        })
    }
}

impl Ladder {
    /// The ladder embedded from `media/packager/ladder.toml`.
    pub fn default_ladder() -> Ladder {
        match Ladder::parse(DEFAULT_LADDER_TOML, "ladder.toml (built in)") {
            Ok(ladder) => ladder,
            Err(e) => unreachable!("the embedded ladder is checked by a unit test: {e:#}"),
        }
    }

    /// Reads and validates a ladder file (its audio rungs are checked and left out; see
    /// [`Ladder::from_file_with_audio`]).
    pub fn from_file(path: &Path) -> Result<Ladder> {
        Ok(Ladder::from_file_with_audio(path)?.0)
    }

    /// Reads and validates a ladder file: the video ladder and the audio rungs (the default
    /// rung when the file has no `audio` entry, none for `audio = []`).
    pub fn from_file_with_audio(path: &Path) -> Result<(Ladder, Vec<AudioRendition>)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read ladder file {}", path.display()))?;
        Ladder::parse_with_audio(&text, &path.display().to_string())
    }

    /// Parses ladder TOML; `origin` names the source in error messages (which also carry the
    /// line and column of the offending entry). Audio rungs are validated and left out.
    pub fn parse(text: &str, origin: &str) -> Result<Ladder> {
        Ok(Ladder::parse_with_audio(text, origin)?.0)
    }

    /// Parses ladder TOML into the video ladder and the audio rungs (the default rung when the
    /// text has no `audio` entry; none for `audio = []`). Audio ids must differ from video ids
    /// (each is a folder of the title).
    pub fn parse_with_audio(text: &str, origin: &str) -> Result<(Ladder, Vec<AudioRendition>)> {
        let file: LadderFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        if file.rendition.is_empty() {
            bail!("{origin}: no [[rendition]] entries");
        }
        let mut renditions: Vec<Rendition> = Vec::with_capacity(file.rendition.len());
        let mut seen = HashSet::new();
        for spanned in file.rendition {
            let line = text[..spanned.span().start.min(text.len())]
                .matches('\n')
                .count()
                + 1;
            let r = Rendition::try_from(spanned.into_inner())
                .map_err(|e| anyhow::anyhow!("{origin}, line {line}: {e}"))?;
            if !seen.insert(r.id.clone()) {
                bail!(
                    "{origin}, line {line}: rendition id {:?} appears twice",
                    r.id
                );
            }
            renditions.push(r);
        }
        let audio = match file.audio {
            None => default_audio(),
            Some(entries) => {
                let mut audio = Vec::with_capacity(entries.len());
                for spanned in entries {
                    let line = text[..spanned.span().start.min(text.len())]
                        .matches('\n')
                        .count()
                        + 1;
                    let a = AudioRendition::try_from(spanned.into_inner())
                        .map_err(|e| anyhow::anyhow!("{origin}, line {line}: {e}"))?;
                    if !seen.insert(a.id.clone()) {
                        bail!(
                            "{origin}, line {line}: rendition id {:?} appears twice",
                            a.id
                        );
                    }
                    audio.push(a);
                }
                audio
            }
        };
        Ok((Ladder { renditions }, audio))
    }
}

/// The audio rungs of the embedded default ladder: one stereo AAC-LC rung, 48 kHz, 128 kb/s.
pub fn default_audio() -> Vec<AudioRendition> {
    vec![AudioRendition {
        id: "audio".into(),
        sample_rate: 48_000,
        channels: 2,
        bitrate: 128_000,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ladder_is_the_documented_one() {
        let ladder = Ladder::default_ladder();
        let got: Vec<_> = ladder
            .renditions
            .iter()
            .map(|r| (r.id.as_str(), r.width, r.height, r.bitrate))
            .collect();
        assert_eq!(
            got,
            vec![
                ("240p", 426, 240, 400_000),
                ("360p", 640, 360, 800_000),
                ("480p", 854, 480, 1_400_000),
                ("720p", 1280, 720, 2_800_000),
            ]
        );
    }

    #[test]
    fn audio_rungs_default_parse_and_validate() {
        // The embedded file spells out the default audio rung.
        let (_, audio) = Ladder::parse_with_audio(DEFAULT_LADDER_TOML, "built in").unwrap();
        assert_eq!(audio, default_audio());
        assert_eq!(
            (
                audio[0].id.as_str(),
                audio[0].sample_rate,
                audio[0].channels,
                audio[0].bitrate
            ),
            ("audio", 48_000, 2, 128_000)
        );
        // Existing ladder files (no audio section) stay valid and get the default.
        let video_only =
            "[[rendition]]\nid = \"a\"\nwidth = 320\nheight = 180\nbitrate_kbps = 300\n";
        let (ladder, audio) = Ladder::parse_with_audio(video_only, "x.toml").unwrap();
        assert_eq!(ladder.renditions.len(), 1);
        assert_eq!(audio, default_audio());
        // `audio = []` turns sound off; rungs take defaults for rate and channels.
        let (_, audio) =
            Ladder::parse_with_audio(&format!("audio = []\n{video_only}"), "x.toml").unwrap();
        assert!(audio.is_empty());
        let two = format!(
            "{video_only}[[audio]]\nid = \"aac64\"\nbitrate_kbps = 64\nchannels = 1\n\
             [[audio]]\nid = \"aac192\"\nbitrate_kbps = 192\nsample_rate = 44100\n"
        );
        let (_, audio) = Ladder::parse_with_audio(&two, "x.toml").unwrap();
        assert_eq!(
            audio,
            vec![
                AudioRendition {
                    id: "aac64".into(),
                    sample_rate: 48_000,
                    channels: 1,
                    bitrate: 64_000
                },
                AudioRendition {
                    id: "aac192".into(),
                    sample_rate: 44_100,
                    channels: 2,
                    bitrate: 192_000
                },
            ]
        );
        // Ladder::parse accepts a file with audio and returns the video part.
        assert_eq!(Ladder::parse(&two, "x.toml").unwrap(), ladder);
        for (extra, needle) in [
            ("[[audio]]\nid = \"a\"\nbitrate_kbps = 128\n", "twice"),
            (
                "[[audio]]\nid = \"s\"\nbitrate_kbps = 128\nsample_rate = 96000\n",
                "sample_rate",
            ),
            (
                "[[audio]]\nid = \"s\"\nbitrate_kbps = 128\nchannels = 6\n",
                "channels",
            ),
            ("[[audio]]\nid = \"s\"\nbitrate_kbps = 20\n", "bitrate_kbps"),
            (
                "[[audio]]\nid = \"s\"\nbitrate_kbps = 128\nlang = \"en\"\n",
                "unknown field",
            ),
            ("[[audio]]\nid = \"s/t\"\nbitrate_kbps = 128\n", "line 6"),
        ] {
            let err = format!(
                "{:#}",
                Ladder::parse_with_audio(&format!("{video_only}{extra}"), "x.toml").unwrap_err()
            );
            assert!(err.contains(needle), "{extra:?}: {err}");
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let text = "[[rendition]]\nid = \"a\"\nwidth = 320\nheight = 180\nbitrate_kbps = 300\n\n[[rendition]]\nid = \"b\"\nwidth = 321\nheight = 180\nbitrate_kbps = 300\n";
        let err = format!("{:#}", Ladder::parse(text, "my.toml").unwrap_err());
        assert!(err.contains("my.toml"), "{err}");
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("even"), "{err}");
    }

    #[test]
    fn rejects_bad_ladders() {
        let cases = [
            ("", "no [[rendition]]"),
            ("[[rendition]]\nid = \"a/b\"\nwidth = 2\nheight = 2\nbitrate_kbps = 1\n", "URL-safe"),
            ("[[rendition]]\nid = \"a\"\nwidth = 8000\nheight = 200\nbitrate_kbps = 100\n", "outside"),
            ("[[rendition]]\nid = \"a\"\nwidth = 320\nheight = 200\nbitrate_kbps = 0\n", "bitrate_kbps"),
            ("[[rendition]]\nid = \"a\"\nwidth = 320\nheight = 200\nbitrate = 100\n", "unknown field"),
            ("[[rendition]]\nid = \"a\"\nwidth = -2\nheight = 200\nbitrate_kbps = 100\n", "line 3"),
            (
                "[[rendition]]\nid = \"a\"\nwidth = 320\nheight = 200\nbitrate_kbps = 100\n[[rendition]]\nid = \"a\"\nwidth = 320\nheight = 200\nbitrate_kbps = 200\n",
                "twice",
            ),
            ("[[rendition]\n", "line 1"),
        ];
        for (text, needle) in cases {
            let err = format!("{:#}", Ladder::parse(text, "x.toml").unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
