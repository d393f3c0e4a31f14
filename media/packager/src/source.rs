//! Where pictures come from: the synthetic test pattern, or a user's video decoded and scaled by
//! an `ffmpeg` child process that writes raw YUV 4:2:0 frames to a pipe.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

use super::pattern::{Pattern, Yuv420};

/// The kind of source, shared by all renditions.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// The moving test pattern, `frames` pictures long.
    Pattern {
        /// Number of pictures.
        frames: u64,
    },
    /// A video file decoded by ffmpeg, optionally cut to `max_seconds`.
    File {
        /// Path of the ffmpeg binary.
        ffmpeg: PathBuf,
        /// The user's video.
        path: PathBuf,
        /// Stop after this many seconds of input.
        max_seconds: Option<f64>,
    },
}

/// Pictures of one rendition, in order.
pub trait FrameSource {
    /// Fills `out` with picture `index`; false when the source has ended.
    fn next_frame(&mut self, index: u64, out: &mut Yuv420) -> Result<bool>;
}

impl SourceSpec {
    /// Opens the source for one rendition size, delivering pictures `frames.start` up to (not
    /// including) `frames.end`. Only the test pattern can start later than picture 0.
    pub fn open(
        &self,
        width: usize,
        height: usize,
        fps: u32,
        label: &str,
        frames: std::ops::Range<u64>,
    ) -> Result<Box<dyn FrameSource + Send>> {
        Ok(match self {
            SourceSpec::Pattern { frames: total } => Box::new(PatternSource {
                pattern: Pattern::new(width, height, fps, label),
                end: frames.end.min(*total),
            }),
            SourceSpec::File {
                ffmpeg,
                path,
                max_seconds,
            } => {
                if frames.start != 0 || frames.end != u64::MAX {
                    bail!("a file source is read from start to end in one piece");
                }
                Box::new(FfmpegSource::spawn(
                    ffmpeg,
                    path,
                    *max_seconds,
                    width,
                    height,
                    fps,
                )?)
            }
        })
    }

    /// True if pictures can be produced from any starting point (so a rendition can be encoded
    /// in independent pieces).
    pub fn is_seekable(&self) -> bool {
        matches!(self, SourceSpec::Pattern { .. })
    }
}

struct PatternSource {
    pattern: Pattern,
    end: u64,
}

impl FrameSource for PatternSource {
    fn next_frame(&mut self, index: u64, out: &mut Yuv420) -> Result<bool> {
        if index >= self.end {
            return Ok(false);
        }
        self.pattern.render(index, out);
        Ok(true)
    }
}

/// An ffmpeg process decoding a file to `width`x`height` raw I420 at `fps`, letterboxed to keep
/// the picture's aspect ratio.
struct FfmpegSource {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    path: PathBuf,
    finished: bool,
}

impl FfmpegSource {
    fn spawn(
        ffmpeg: &Path,
        path: &Path,
        max_seconds: Option<f64>,
        width: usize,
        height: usize,
        fps: u32,
    ) -> Result<FfmpegSource> {
        let filter = format!(
            "fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
        );
        let mut cmd = Command::new(ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(path);
        if let Some(secs) = max_seconds {
            cmd.args(["-t", &format!("{secs}")]);
        }
        cmd.args(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", &filter])
            .args(["-pix_fmt", "yuv420p", "-f", "rawvideo", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", ffmpeg.display()))?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            bail!("ffmpeg started without its pipes");
        };
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(FfmpegSource {
            child,
            stdout,
            stderr: Some(stderr),
            path: path.to_path_buf(),
            finished: false,
        })
    }

    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        let status = self.child.wait().context("waiting for ffmpeg")?;
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() {
            bail!(
                "ffmpeg could not decode {} ({status}): {}",
                self.path.display(),
                stderr.trim()
            );
        }
        Ok(())
    }
}

impl FrameSource for FfmpegSource {
    fn next_frame(&mut self, index: u64, out: &mut Yuv420) -> Result<bool> {
        if self.finished {
            return Ok(false);
        }
        let buf = out.data_mut();
        let mut filled = 0;
        while filled < buf.len() {
            let n = self
                .stdout
                .read(&mut buf[filled..])
                .context("reading frames from ffmpeg")?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == buf.len() {
            return Ok(true);
        }
        self.finish()?;
        if filled > 0 {
            bail!(
                "ffmpeg stopped in the middle of frame {index} of {}",
                self.path.display()
            );
        }
        if index == 0 {
            bail!("{} has no video frames", self.path.display());
        }
        Ok(false)
    }
}

impl Drop for FfmpegSource {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The duration of a media file in seconds according to ffprobe (next to ffmpeg), if it can tell.
pub fn probe_duration(ffprobe: &Path, path: &Path) -> Option<f64> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0)
}
