//! The bitrate ladder: which renditions (size and target bitrate) the packager encodes. Read
//! from a TOML file (`--ladder FILE`) or the default `media/packager/ladder.toml` embedded at build time.

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
}

impl Ladder {
    /// The ladder embedded from `media/packager/ladder.toml`.
    pub fn default_ladder() -> Ladder {
        match Ladder::parse(DEFAULT_LADDER_TOML, "ladder.toml (built in)") {
            Ok(ladder) => ladder,
            Err(e) => unreachable!("the embedded ladder is checked by a unit test: {e:#}"),
        }
    }

    /// Reads and validates a ladder file.
    pub fn from_file(path: &Path) -> Result<Ladder> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read ladder file {}", path.display()))?;
        Ladder::parse(&text, &path.display().to_string())
    }

    /// Parses ladder TOML; `origin` names the source in error messages (which also carry the
    /// line and column of the offending entry).
    pub fn parse(text: &str, origin: &str) -> Result<Ladder> {
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
        Ok(Ladder { renditions })
    }
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
