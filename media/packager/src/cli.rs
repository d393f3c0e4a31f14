//! `cdn package`: package the test pattern (or `--input FILE`) into a DASH title folder.

use std::path::PathBuf;

use anyhow::Result;

use super::ladder::Ladder;
use super::{package, Options};

/// Arguments of `cdn package`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Output folder, e.g. ROOT/vod/demo (an origin serving ROOT then answers
    /// /vod/demo/manifest.mpd). Gets manifest.mpd and one folder per representation.
    #[arg(long)]
    pub out: PathBuf,
    /// Seconds of video: the test pattern's length (default 30), or a cut of --input (default:
    /// the whole file).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Segment duration in seconds (a whole number of frames).
    #[arg(long, default_value_t = 2.0)]
    pub segment: f64,
    /// Ladder TOML file (default: the built-in media/packager/ladder.toml: 240p, 360p, 480p, 720p,
    /// and one stereo AAC rung at 128 kb/s, which also applies to a file without [[audio]]).
    #[arg(long)]
    pub ladder: Option<PathBuf>,
    /// Transcode this video file instead of the test pattern (needs ffmpeg on PATH).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Renditions encoded in parallel (default: one per CPU core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the packager and prints what it wrote.
pub fn run(args: Args) -> Result<()> {
    let (ladder, audio) = match &args.ladder {
        Some(path) => Ladder::from_file_with_audio(path)?,
        None => (Ladder::default_ladder(), super::ladder::default_audio()),
    };
    let opts = Options {
        duration: args.duration,
        fps: args.fps,
        segment: args.segment,
        ladder,
        audio,
        input: args.input,
        threads: args.threads,
        progress: !args.quiet,
        ..Options::new(args.out)
    };
    let report = package(&opts)?;
    let seconds = report.frames as f64 / f64::from(report.fps);
    println!(
        "wrote {} ({} frames, {:.1} s of video, {} segments per representation) in {:.1} s ({:.1}x real time)",
        report.manifest.display(),
        report.frames,
        seconds,
        report.segments,
        report.elapsed.as_secs_f64(),
        seconds / report.elapsed.as_secs_f64().max(1e-9),
    );
    println!(
        "{:<10} {:>9} {:<12} {:>10} {:>12} {:>10}",
        "id", "size", "codecs", "target", "bandwidth", "average"
    );
    for r in &report.representations {
        println!(
            "{:<10} {:>9} {:<12} {:>9}k {:>11}k {:>9}k",
            r.id,
            format!("{}x{}", r.width, r.height),
            r.codecs,
            r.target_bitrate / 1000,
            r.bandwidth / 1000,
            r.average_bitrate / 1000,
        );
    }
    for a in &report.audio {
        println!(
            "{:<10} {:>9} {:<12} {:>9}k {:>11}k {:>9}k  lang {}, {} samples of encoder delay compensated",
            a.id,
            format!("{}Hz/{}", a.sample_rate, a.channels),
            a.codecs,
            a.target_bitrate / 1000,
            a.bandwidth / 1000,
            a.average_bitrate / 1000,
            a.lang,
            a.encoder_delay,
        );
    }
    Ok(())
}
