//! Where pictures and sound come from: the synthetic test pattern, or a user's video decoded and
//! scaled by an `ffmpeg` child process that writes raw YUV 4:2:0 frames to a pipe, and its first
//! audio track decoded by another `ffmpeg` to raw 16-bit PCM at the audio rung's rate.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};

use super::pattern::{Pattern, PatternAudio, Yuv420};

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
    ffmpeg: Ffmpeg,
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
            "fps={fps}:start_time=0,scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
        );
        let ffmpeg = Ffmpeg::spawn(
            ffmpeg,
            path,
            max_seconds,
            &[
                "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", &filter, "-pix_fmt", "yuv420p", "-f",
                "rawvideo", "-",
            ],
        )?;
        Ok(FfmpegSource { ffmpeg })
    }
}

impl FrameSource for FfmpegSource {
    fn next_frame(&mut self, index: u64, out: &mut Yuv420) -> Result<bool> {
        let f = &mut self.ffmpeg;
        if f.finished {
            return Ok(false);
        }
        let buf = out.data_mut();
        let filled = f.fill(buf).context("reading frames from ffmpeg")?;
        if filled == buf.len() {
            return Ok(true);
        }
        f.finish("")?;
        if filled > 0 {
            bail!(
                "ffmpeg stopped in the middle of frame {index} of {}",
                f.path.display()
            );
        }
        if index == 0 {
            bail!("{} has no video frames", f.path.display());
        }
        Ok(false)
    }
}

/// Interleaved 16-bit samples of one audio rung, in order.
pub trait PcmSource {
    /// Fills the start of `out` with the next samples (whole sample frames); returns how many
    /// values it wrote, 0 when the source has ended.
    fn read(&mut self, out: &mut [i16]) -> Result<usize>;
}

impl SourceSpec {
    /// Opens the sound of the source at `sample_rate` with `channels` (1 or 2), from the start;
    /// the test pattern's sound lasts `samples` sample frames.
    pub fn open_audio(
        &self,
        sample_rate: u32,
        channels: u32,
        samples: u64,
    ) -> Result<Box<dyn PcmSource + Send>> {
        Ok(match self {
            SourceSpec::Pattern { .. } => Box::new(PatternPcm {
                audio: PatternAudio::new(sample_rate, channels),
                channels: channels as usize,
                next: 0,
                end: samples,
            }),
            SourceSpec::File {
                ffmpeg,
                path,
                max_seconds,
            } => Box::new(FfmpegPcm::spawn(
                ffmpeg,
                path,
                *max_seconds,
                sample_rate,
                channels,
            )?),
        })
    }
}

struct PatternPcm {
    audio: PatternAudio,
    channels: usize,
    next: u64,
    end: u64,
}

impl PcmSource for PatternPcm {
    fn read(&mut self, out: &mut [i16]) -> Result<usize> {
        let frames = ((out.len() / self.channels) as u64).min(self.end - self.next);
        let n = frames as usize * self.channels;
        self.audio.fill(self.next, &mut out[..n]);
        self.next += frames;
        Ok(n)
    }
}

/// Starts ffmpeg with `args` after the input options, stdout piped, stderr collected.
/// An ffmpeg process decoding `path` to its standard output, its standard error collected by a
/// thread; killed when dropped before its output ended.
struct Ffmpeg {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    path: PathBuf,
    finished: bool,
}

impl Ffmpeg {
    /// Starts `ffmpeg -i path [-t max_seconds] args...`.
    fn spawn(
        ffmpeg: &Path,
        path: &Path,
        max_seconds: Option<f64>,
        args: &[&str],
    ) -> Result<Ffmpeg> {
        let mut cmd = Command::new(ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(path);
        if let Some(secs) = max_seconds {
            cmd.args(["-t", &format!("{secs}")]);
        }
        cmd.args(args)
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
        Ok(Ffmpeg {
            child,
            stdout,
            stderr: Some(stderr),
            path: path.to_path_buf(),
            finished: false,
        })
    }

    /// Reads until `buf` is full or the output ends; the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.stdout.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }

    /// Waits for the process at the end of its output; an error, with ffmpeg's words, when it
    /// failed. `what` names what was decoded, after "could not decode".
    fn finish(&mut self, what: &str) -> Result<()> {
        self.finished = true;
        let status = self.child.wait().context("waiting for ffmpeg")?;
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() {
            bail!(
                "ffmpeg could not decode {what}{} ({status}): {}",
                self.path.display(),
                stderr.trim()
            );
        }
        Ok(())
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An ffmpeg process decoding the first audio track of a file to interleaved s16le PCM. Gaps
/// and a late start are filled with silence (`aresample=async=1:first_pts=0`), so sample `n` is
/// at `n / rate` seconds on the same timeline as the pictures.
struct FfmpegPcm {
    ffmpeg: Ffmpeg,
    channels: usize,
    bytes: Vec<u8>,
}

impl FfmpegPcm {
    fn spawn(
        ffmpeg: &Path,
        path: &Path,
        max_seconds: Option<f64>,
        sample_rate: u32,
        channels: u32,
    ) -> Result<FfmpegPcm> {
        let filter = format!("aresample={sample_rate}:async=1:first_pts=0");
        let channels_arg = channels.to_string();
        let ffmpeg = Ffmpeg::spawn(
            ffmpeg,
            path,
            max_seconds,
            &[
                "-map",
                "0:a:0",
                "-vn",
                "-sn",
                "-dn",
                "-af",
                &filter,
                "-ac",
                &channels_arg,
                "-c:a",
                "pcm_s16le",
                "-f",
                "s16le",
                "-",
            ],
        )?;
        Ok(FfmpegPcm {
            ffmpeg,
            channels: channels as usize,
            bytes: Vec::new(),
        })
    }
}

impl PcmSource for FfmpegPcm {
    fn read(&mut self, out: &mut [i16]) -> Result<usize> {
        if self.ffmpeg.finished {
            return Ok(0);
        }
        let frame_bytes = 2 * self.channels;
        let want = out.len() / self.channels * frame_bytes;
        self.bytes.resize(want, 0);
        let filled = self
            .ffmpeg
            .fill(&mut self.bytes)
            .context("reading audio from ffmpeg")?;
        let whole = filled / frame_bytes * frame_bytes;
        for (o, b) in out.iter_mut().zip(self.bytes[..whole].chunks_exact(2)) {
            *o = i16::from_le_bytes([b[0], b[1]]);
        }
        if filled < want {
            self.ffmpeg.finish("the audio of ")?;
        }
        Ok(whole / 2)
    }
}

/// The first audio track of a media file according to ffprobe: `None` when it has none, else
/// its language as a BCP 47 tag (`None` inside when untagged or `und`).
pub fn probe_audio(ffprobe: &Path, path: &Path) -> Result<Option<Option<String>>> {
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["stream=index:stream_tags=language", "-of", "csv=p=0:nk=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", ffprobe.display()))?;
    if !out.status.success() {
        bail!(
            "ffprobe could not read {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let lang = line
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix("tag:language="))
        .and_then(bcp47_language);
    Ok(Some(lang))
}

/// A container's language code (ISO 639-2, as in Matroska and `mdhd`, or already BCP 47) as a
/// BCP 47 primary language tag: the two-letter ISO 639-1 code where one exists. `None` for
/// `und` and for anything that is not a language code.
pub fn bcp47_language(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_lowercase();
    let primary = code.split(['-', '_']).next().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    if matches!(primary, "und" | "mis" | "mul" | "zxx") {
        return None;
    }
    // ISO 639-2 (bibliographic and terminology) codes of the common languages that have an
    // ISO 639-1 code, which BCP 47 prefers.
    const TWO: &[(&str, &str)] = &[
        ("ara", "ar"),
        ("ben", "bn"),
        ("bul", "bg"),
        ("cat", "ca"),
        ("ces", "cs"),
        ("cze", "cs"),
        ("chi", "zh"),
        ("zho", "zh"),
        ("dan", "da"),
        ("deu", "de"),
        ("ger", "de"),
        ("dut", "nl"),
        ("nld", "nl"),
        ("ell", "el"),
        ("gre", "el"),
        ("eng", "en"),
        ("est", "et"),
        ("fas", "fa"),
        ("per", "fa"),
        ("fin", "fi"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("heb", "he"),
        ("hin", "hi"),
        ("hrv", "hr"),
        ("hun", "hu"),
        ("ind", "id"),
        ("isl", "is"),
        ("ice", "is"),
        ("ita", "it"),
        ("jpn", "ja"),
        ("kor", "ko"),
        ("lav", "lv"),
        ("lit", "lt"),
        ("msa", "ms"),
        ("may", "ms"),
        ("nor", "no"),
        ("nob", "nb"),
        ("nno", "nn"),
        ("pol", "pl"),
        ("por", "pt"),
        ("ron", "ro"),
        ("rum", "ro"),
        ("rus", "ru"),
        ("slk", "sk"),
        ("slo", "sk"),
        ("slv", "sl"),
        ("spa", "es"),
        ("srp", "sr"),
        ("swe", "sv"),
        ("tam", "ta"),
        ("tha", "th"),
        ("tur", "tr"),
        ("ukr", "uk"),
        ("urd", "ur"),
        ("vie", "vi"),
        ("cym", "cy"),
        ("wel", "cy"),
        ("eus", "eu"),
        ("baq", "eu"),
        ("glg", "gl"),
    ];
    Some(
        TWO.iter()
            .find(|(three, _)| *three == primary)
            .map_or(primary, |(_, two)| two)
            .to_string(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_become_bcp47() {
        assert_eq!(bcp47_language("eng").as_deref(), Some("en"));
        assert_eq!(bcp47_language("ger").as_deref(), Some("de"));
        assert_eq!(bcp47_language("FRE").as_deref(), Some("fr"));
        assert_eq!(bcp47_language("pt-BR").as_deref(), Some("pt"));
        assert_eq!(bcp47_language("haw").as_deref(), Some("haw"));
        assert_eq!(bcp47_language("und"), None);
        assert_eq!(bcp47_language(""), None);
        assert_eq!(bcp47_language("english"), None);
        assert_eq!(bcp47_language("e1"), None);
    }

    #[test]
    fn pattern_sound_ends_after_its_samples() {
        let spec = SourceSpec::Pattern { frames: 30 };
        let mut src = spec.open_audio(48_000, 2, 1500).unwrap();
        let mut buf = vec![0i16; 2 * 1024];
        assert_eq!(src.read(&mut buf).unwrap(), 2048);
        assert_eq!(src.read(&mut buf).unwrap(), 2 * 476);
        assert_eq!(src.read(&mut buf).unwrap(), 0);
    }
}
