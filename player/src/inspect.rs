//! `cdn mpd FILE_OR_URL [--json]`: parse an MPD and print its summary, with a warning line for
//! everything the lenient parser repaired (and why a Representation is unplayable).

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
            .with_context(|| format!("{source}: the MPD is not UTF-8"))?;
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
