//! The packager: renders a synthetic test pattern (or reads a user's video through ffmpeg),
//! encodes an H.264 bitrate ladder with OpenH264 and the sound with an AAC-LC encoder (FDK),
//! cuts both into fMP4 segments (video with an IDR at every segment start, audio at the AAC
//! frame nearest to each video segment start), and writes an `isoff-live` DASH manifest over
//! them, and HLS playlists over the same segments ([`hls`]).
//!
//! Output layout under the output folder: `manifest.mpd`, `master.m3u8` and one `<id>.m3u8` per
//! representation (written before the MPD, which is last), and per representation (video or
//! audio) `<id>/init.mp4` and `<id>/seg-00001.m4s`, `<id>/seg-00002.m4s`, ... Every video
//! representation has its segment boundaries at the same frames (the same multiple of the
//! segment length), so a player can switch between them at any segment; audio segment `k`
//! starts within half an AAC frame of video segment `k`.
//!
//! Parts: [`ladder`] (the renditions and audio rungs, from TOML), [`source`] (the test pattern
//! or ffmpeg's decoded frames and sound), [`pattern`] (the test pattern's pictures and sound),
//! [`encode`] (OpenH264), [`audio`] (AAC encoding, priming, segment alignment), [`h264`]
//! (Annex B and SPS parsing), [`fmp4`] (init and media segments with mp4-atom), [`manifest`]
//! (the MPD, through the `mpd` crate), [`hls`] (the playlists, with `m3u8-rs`), [`cli`] (`cdn package`).

pub mod audio;
pub mod cli;
pub mod encode;
pub mod fmp4;
pub mod h264;
pub mod hls;
pub mod ladder;
pub mod manifest;
pub mod pattern;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use audio::{AacEncoder, Asc, AudioPlan, FRAME_SAMPLES};
use encode::{EncodedFrame, H264Encoder, ParameterSets};
use ladder::{AudioRendition, Ladder, Rendition};
use manifest::{AudioInfo, AudioRepresentationInfo, RepresentationInfo, Timing};
use pattern::Yuv420;
use source::SourceSpec;

/// What to package and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Output folder (created if needed); gets `manifest.mpd` and one folder per representation.
    pub out: PathBuf,
    /// Seconds of video: the test pattern's length, or a cut of `input` (whole file if `None`).
    pub duration: Option<f64>,
    /// Frames per second of the output.
    pub fps: u32,
    /// Segment duration in seconds; must be a whole number of frames.
    pub segment: f64,
    /// The renditions to encode.
    pub ladder: Ladder,
    /// The audio rungs to encode (none: a silent title). With `input`, a file without an audio
    /// track gives a silent title.
    pub audio: Vec<AudioRendition>,
    /// A user's video to transcode instead of the test pattern (needs ffmpeg on PATH).
    pub input: Option<PathBuf>,
    /// Renditions encoded at once (0 = one per CPU core).
    pub threads: usize,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Frames per independently encoded piece of a rendition (rounded up to whole segments).
    /// Every segment starts with an IDR picture that nothing before it refers to, so separate
    /// encoders can make consecutive pieces, which spreads the largest rendition over all cores.
    /// Longer pieces give the rate control more room to settle.
    pub chunk_frames: u64,
}

impl Options {
    /// The defaults of `cdn package`: 30 s of test pattern at 30 fps, 2 s segments, the default
    /// ladder.
    pub fn new(out: impl Into<PathBuf>) -> Options {
        Options {
            out: out.into(),
            duration: None,
            fps: 30,
            segment: 2.0,
            ladder: Ladder::default_ladder(),
            audio: ladder::default_audio(),
            input: None,
            threads: 0,
            progress: true,
            chunk_frames: 300,
        }
    }
}

/// Test pattern length when no duration is given.
pub const DEFAULT_PATTERN_SECONDS: f64 = 30.0;

/// What one representation came out as.
#[derive(Debug, Clone)]
pub struct RepresentationReport {
    /// Representation@id.
    pub id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// codecs string from the SPS.
    pub codecs: String,
    /// The encoder's target bitrate, bits/s.
    pub target_bitrate: u32,
    /// @bandwidth written to the MPD (measured peak), bits/s.
    pub bandwidth: u64,
    /// Average bitrate of the media segments, bits/s.
    pub average_bitrate: u64,
    /// Bytes of the media segments.
    pub bytes: u64,
}

/// What one audio rung came out as.
#[derive(Debug, Clone)]
pub struct AudioReport {
    /// Representation@id.
    pub id: String,
    /// codecs string from the AudioSpecificConfig.
    pub codecs: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// The encoder's target bitrate, bits/s.
    pub target_bitrate: u32,
    /// @bandwidth written to the MPD (measured peak), bits/s.
    pub bandwidth: u64,
    /// Average bitrate of the media segments, bits/s.
    pub average_bitrate: u64,
    /// Bytes of the media segments.
    pub bytes: u64,
    /// The encoder delay compensated at the start, in samples.
    pub encoder_delay: u32,
    /// AdaptationSet@lang.
    pub lang: String,
}

/// The result of a packaging run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Path of the manifest written.
    pub manifest: PathBuf,
    /// Frames per representation.
    pub frames: u64,
    /// Media segments per representation.
    pub segments: usize,
    /// Frames per second.
    pub fps: u32,
    /// Per-representation figures, in ladder order.
    pub representations: Vec<RepresentationReport>,
    /// Per-audio-rung figures, in ladder order (empty for a silent title).
    pub audio: Vec<AudioReport>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Marks the error of a worker stopped because another one failed.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Frame timing shared by all renditions of a run.
#[derive(Debug, Clone, Copy)]
struct Clock {
    fps: u32,
    timescale: u32,
    frame_ticks: u32,
    segment_frames: u32,
}

impl Clock {
    fn new(fps: u32, segment: f64) -> Result<Clock> {
        if !(1..=120).contains(&fps) {
            bail!("--fps {fps} is outside 1..=120");
        }
        if !segment.is_finite() || segment <= 0.0 || segment > 60.0 {
            bail!("--segment {segment} must be more than 0 and at most 60 seconds");
        }
        let frames = segment * f64::from(fps);
        let whole = frames.round();
        if whole < 1.0 || (frames - whole).abs() > 1e-6 {
            bail!("--segment {segment} s is not a whole number of frames at {fps} fps");
        }
        let (timescale, frame_ticks) = if 90_000 % fps == 0 {
            (90_000, 90_000 / fps)
        } else {
            (fps * 1000, 1000)
        };
        Ok(Clock {
            fps,
            timescale,
            frame_ticks,
            segment_frames: whole as u32,
        })
    }
}

/// What a rendition worker produced.
struct Encoded {
    info: RepresentationInfo,
    target_bitrate: u32,
    frames: u64,
    segment_bytes: Vec<u64>,
    /// Duration of each media segment, seconds.
    durations: Vec<f64>,
}

/// Packages the ladder into `opts.out`: init and media segments for every rendition, then the
/// manifest (written last, so a present manifest means a complete title).
pub fn package(opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let clock = Clock::new(opts.fps, opts.segment)?;
    if let Some(d) = opts.duration {
        if !d.is_finite() || d <= 0.0 || d > 86_400.0 {
            bail!("--duration {d} must be more than 0 and at most 86400 seconds");
        }
    }
    let (spec, expected_frames) = match &opts.input {
        None => {
            let secs = opts.duration.unwrap_or(DEFAULT_PATTERN_SECONDS);
            let frames = (secs * f64::from(opts.fps)).round() as u64;
            if frames == 0 {
                bail!("--duration {secs} is shorter than one frame");
            }
            (SourceSpec::Pattern { frames }, Some(frames))
        }
        Some(path) => {
            if !path.is_file() {
                bail!("--input {}: no such file", path.display());
            }
            let ffmpeg = ffmpeg_for(path, common::tools::find("ffmpeg"))?;
            let estimate = common::tools::find("ffprobe")
                .and_then(|probe| source::probe_duration(&probe, path))
                .map(|d| opts.duration.map_or(d, |max| max.min(d)))
                .map(|d| (d * f64::from(opts.fps)).round() as u64);
            (
                SourceSpec::File {
                    ffmpeg,
                    path: path.clone(),
                    max_seconds: opts.duration,
                },
                estimate,
            )
        }
    };

    let sound = plan_sound(opts, clock)?;

    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let renditions = &opts.ladder.renditions;
    let progress = progress_bar(
        opts.progress,
        expected_frames.map(|f| f * renditions.len() as u64),
    );

    // An earlier title's manifest must not describe the segments about to be rewritten.
    let manifest_path = opts.out.join(manifest::MANIFEST_NAME);
    if manifest_path.exists() {
        std::fs::remove_file(&manifest_path)
            .with_context(|| format!("cannot remove {}", manifest_path.display()))?;
    }
    let master_path = opts.out.join(hls::MASTER_NAME);
    if master_path.exists() {
        std::fs::remove_file(&master_path)
            .with_context(|| format!("cannot remove {}", master_path.display()))?;
    }
    for r in renditions {
        prepare_dir(&opts.out.join(&r.id))?;
    }
    for a in &sound.rungs {
        prepare_dir(&opts.out.join(&a.id))?;
    }
    let jobs = plan_jobs(renditions, &spec, clock, expected_frames, opts.chunk_frames);
    // The sound is encoded in one piece per rung, beside the pictures when the title's length
    // is known up front (the test pattern), else once the pictures are counted.
    let early_plan = match expected_frames {
        Some(frames) if spec.is_seekable() => Some(frames),
        _ => None,
    };
    let mut work: Vec<Work> = jobs.iter().copied().map(Work::Video).collect();
    if let Some(frames) = early_plan {
        work.extend((0..sound.rungs.len()).map(|i| Work::Audio(i, frames)));
    }
    let cancel = AtomicBool::new(false);
    let slots = run_pool(work.len(), opts.threads, &cancel, |k| match work[k] {
        Work::Video(job) => encode_chunk(
            &renditions[job.rendition],
            &spec,
            clock,
            &job,
            &opts.out,
            &progress,
            &cancel,
        )
        .map(Done::Video),
        Work::Audio(i, frames) => encode_audio(
            &sound.rungs[i],
            &spec,
            clock,
            frames,
            &sound,
            &opts.out,
            &cancel,
        )
        .map(Done::Audio),
    })?;
    progress.finish_and_clear();

    let mut chunks: Vec<Vec<Chunk>> = renditions.iter().map(|_| Vec::new()).collect();
    let mut audio_done: Vec<Option<EncodedAudio>> = sound.rungs.iter().map(|_| None).collect();
    let mut errors = Vec::new();
    for (slot, w) in slots.into_iter().zip(&work) {
        match (slot, w) {
            (Some(Ok(Done::Video(c))), Work::Video(job)) => chunks[job.rendition].push(c),
            (Some(Ok(Done::Audio(a))), Work::Audio(i, _)) => audio_done[*i] = Some(a),
            (Some(Err(e)), w) => errors.push(e.context(w.label(renditions, &sound.rungs))),
            (_, w) => bail!("{} was never encoded", w.label(renditions, &sound.rungs)),
        }
    }
    // Report the failure that stopped the run, not the workers it cancelled.
    errors.sort_by_key(|e| e.downcast_ref::<Cancelled>().is_some());
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut encoded = Vec::with_capacity(renditions.len());
    for (r, pieces) in renditions.iter().zip(chunks) {
        encoded.push(
            finish_rendition(r, pieces, clock, &opts.out)
                .with_context(|| format!("rendition {}", r.id))?,
        );
    }

    let frames = encoded[0].frames;
    for e in &encoded {
        if e.frames != frames {
            bail!(
                "renditions disagree on the frame count ({} has {}, {} has {})",
                encoded[0].info.id,
                frames,
                e.info.id,
                e.frames
            );
        }
    }
    if let Some(planned) = early_plan {
        if planned != frames {
            bail!("the pattern made {frames} frames, not the {planned} planned for its sound");
        }
    }
    // A file's sound, now that the pictures are counted.
    let late: Vec<usize> = (0..sound.rungs.len())
        .filter(|&i| audio_done[i].is_none())
        .collect();
    if !late.is_empty() {
        let slots = run_pool(late.len(), opts.threads, &cancel, |k| {
            encode_audio(
                &sound.rungs[late[k]],
                &spec,
                clock,
                frames,
                &sound,
                &opts.out,
                &cancel,
            )
        })?;
        for (slot, &i) in slots.into_iter().zip(&late) {
            match slot {
                Some(Ok(a)) => audio_done[i] = Some(a),
                Some(Err(e)) => return Err(e.context(format!("audio {}", sound.rungs[i].id))),
                None => bail!("audio {} was never encoded", sound.rungs[i].id),
            }
        }
    }
    let audio_encoded: Vec<EncodedAudio> = audio_done.into_iter().flatten().collect();

    let timing = Timing {
        fps: clock.fps,
        timescale: clock.timescale,
        frame_ticks: clock.frame_ticks,
        segment_frames: clock.segment_frames,
        total_frames: frames,
    };
    let infos: Vec<RepresentationInfo> = encoded.iter().map(|e| e.info.clone()).collect();
    let audio_info = (!audio_encoded.is_empty()).then(|| AudioInfo {
        lang: sound.lang.clone(),
        representations: audio_encoded.iter().map(|a| a.info.clone()).collect(),
    });
    let xml = manifest::to_xml(&timing, &infos, audio_info.as_ref())?;
    let seconds = frames as f64 / f64::from(clock.fps);
    // The HLS playlists over the same segments, written before the MPD (the MPD is last).
    let title = hls::Title {
        video: encoded
            .iter()
            .map(|e| hls::VideoRung {
                rung: hls::Rung {
                    id: e.info.id.clone(),
                    codecs: e.info.codecs.clone(),
                    bandwidth: e.info.bandwidth,
                    average_bandwidth: (e.segment_bytes.iter().sum::<u64>() as f64 * 8.0 / seconds)
                        .round() as u64,
                    durations: e.durations.clone(),
                },
                width: e.info.width,
                height: e.info.height,
                frame_rate: f64::from(clock.fps),
            })
            .collect(),
        audio: audio_encoded
            .iter()
            .map(|a| hls::AudioRung {
                rung: hls::Rung {
                    id: a.info.id.clone(),
                    codecs: a.info.codecs.clone(),
                    bandwidth: a.info.bandwidth,
                    average_bandwidth: a.report.average_bitrate,
                    durations: a.durations.clone(),
                },
                channels: a.info.channels,
            })
            .collect(),
        lang: sound.lang.clone(),
    };
    // The master last of the playlists, so a present master names complete media playlists.
    for (name, body) in hls::playlists(&title)? {
        write_atomically(&opts.out.join(name), body.as_bytes())?;
    }
    write_atomically(&manifest_path, xml.as_bytes())?;

    let representations = encoded
        .iter()
        .map(|e| {
            let bytes: u64 = e.segment_bytes.iter().sum();
            RepresentationReport {
                id: e.info.id.clone(),
                width: e.info.width,
                height: e.info.height,
                codecs: e.info.codecs.clone(),
                target_bitrate: e.target_bitrate,
                bandwidth: e.info.bandwidth,
                average_bitrate: (bytes as f64 * 8.0 / seconds).round() as u64,
                bytes,
            }
        })
        .collect();
    Ok(Report {
        manifest: manifest_path,
        frames,
        segments: encoded[0].segment_bytes.len(),
        fps: clock.fps,
        representations,
        audio: audio_encoded.into_iter().map(|a| a.report).collect(),
        elapsed: started.elapsed(),
    })
}

/// The ffmpeg that decodes `input` (as found on PATH), or an error saying what to install.
fn ffmpeg_for(input: &Path, found: Option<PathBuf>) -> Result<PathBuf> {
    match found {
        Some(ffmpeg) => Ok(ffmpeg),
        None => bail!(
            "--input needs ffmpeg to decode {}, and ffmpeg is not on PATH (install the Debian \
             package `ffmpeg`); without --input the test pattern needs no external tool",
            input.display()
        ),
    }
}

fn progress_bar(enabled: bool, total: Option<u64>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40.cyan/blue}] {pos}/{len} frames ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed_precise} {spinner} {pos} frames ({per_sec})")
            {
                bar.set_style(style);
            }
            bar
        }
    }
}

/// The sound of a run: the rungs to encode and the language.
struct Sound {
    rungs: Vec<AudioRendition>,
    /// BCP 47, for AdaptationSet@lang.
    lang: String,
    /// ISO 639-2/T, for `mdhd`.
    mdhd_lang: String,
}

/// Decides what sound the title gets: the test pattern's, the input's first audio track (with
/// its language), or none; checks the audio rungs against the video ladder and segment length.
fn plan_sound(opts: &Options, clock: Clock) -> Result<Sound> {
    let mut sound = Sound {
        rungs: opts.audio.clone(),
        lang: "und".into(),
        mdhd_lang: "und".into(),
    };
    if let (Some(path), false) = (&opts.input, sound.rungs.is_empty()) {
        let probed = match common::tools::find("ffprobe") {
            Some(ffprobe) => match source::probe_audio(&ffprobe, path) {
                Ok(p) => p,
                Err(e) => {
                    // The picture decoder reports what is wrong with the file.
                    tracing::warn!("cannot tell whether {} has sound: {e:#}", path.display());
                    None
                }
            },
            None => {
                tracing::warn!(
                    "ffprobe is not on PATH (Debian package `ffmpeg`): packaging {} without \
                     its sound",
                    path.display()
                );
                None
            }
        };
        match probed {
            None => {
                tracing::info!(
                    "{} has no audio track: the title has no audio",
                    path.display()
                );
                sound.rungs.clear();
            }
            Some(tag) => {
                if let Some(lang) = tag.as_deref().and_then(source::bcp47_language) {
                    sound.lang = lang;
                }
                if let Some(code) = tag.filter(|t| {
                    t.len() == 3 && t.bytes().all(|b| b.is_ascii_lowercase()) && t != "und"
                }) {
                    sound.mdhd_lang = code;
                }
            }
        }
    }
    let mut ids: std::collections::HashSet<&str> = opts
        .ladder
        .renditions
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    for a in &sound.rungs {
        if !ids.insert(&a.id) {
            bail!("audio rung id {:?} is also used by another rendition", a.id);
        }
        AudioPlan::nominal_duration(clock.fps, clock.segment_frames, a.sample_rate)?;
    }
    Ok(sound)
}

/// One unit of work of the pool.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A piece of a video rendition.
    Video(Job),
    /// A whole audio rung (index), for a title of this many video frames.
    Audio(usize, u64),
}

impl Work {
    fn label(&self, renditions: &[Rendition], audio: &[AudioRendition]) -> String {
        match self {
            Work::Video(job) => format!("rendition {}", renditions[job.rendition].id),
            Work::Audio(i, _) => format!("audio {}", audio[*i].id),
        }
    }
}

/// What a unit of work produced.
enum Done {
    Video(Chunk),
    Audio(EncodedAudio),
}

/// Runs `f(0..count)` on `threads` threads (0 = one per core), in order of index; after a
/// failure the others are told to stop through `cancel`. Returns each index's result.
fn run_pool<R: Send>(
    count: usize,
    threads: usize,
    cancel: &AtomicBool,
    f: impl Fn(usize) -> Result<R> + Sync,
) -> Result<Vec<Option<Result<R>>>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let workers = match threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .clamp(1, count);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= count {
                    break;
                }
                let result = f(k);
                if result.is_err() {
                    cancel.store(true, Ordering::SeqCst);
                }
                if let Ok(mut slots) = results.lock() {
                    slots[k] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a packaging worker panicked"))
}

/// What an audio rung came out as.
struct EncodedAudio {
    info: AudioRepresentationInfo,
    report: AudioReport,
    /// Duration of each media segment, seconds.
    durations: Vec<f64>,
}

/// Encodes the whole sound of one audio rung with one encoder, cutting a segment at each
/// boundary of the [`AudioPlan`] for a title of `video_frames` pictures, then writes its init
/// segment.
fn encode_audio(
    a: &AudioRendition,
    spec: &SourceSpec,
    clock: Clock,
    video_frames: u64,
    sound: &Sound,
    out: &Path,
    cancel: &AtomicBool,
) -> Result<EncodedAudio> {
    let plan = AudioPlan::new(clock.fps, clock.segment_frames, a.sample_rate, video_frames);
    let segment_duration =
        AudioPlan::nominal_duration(clock.fps, clock.segment_frames, a.sample_rate)?;
    let frame = FRAME_SAMPLES as usize;
    let ch = a.channels as usize;
    let mut encoder = AacEncoder::new(a.sample_rate, a.channels, a.bitrate)?;
    // The test pattern's sound ends with its pictures (silence to the end of the last frame).
    let video_samples =
        (u128::from(video_frames) * u128::from(a.sample_rate) / u128::from(clock.fps)) as u64;
    let mut source = spec.open_audio(a.sample_rate, a.channels, video_samples)?;
    let mut pcm = vec![0i16; 4 * frame * ch];
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut ended = false;
    // Sample frames fed; more than the plan plus the encoder's delay means it stopped working.
    let mut fed = 0u64;
    let limit = (plan.frames + 8) * frame as u64 + u64::from(encoder.flush_samples());
    let mut sizes = Vec::with_capacity(plan.segments as usize);
    let mut largest = 0usize;
    for k in 0..plan.segments {
        let range = plan.segment(k);
        let need = (range.end - range.start) as usize;
        while units.len() < need {
            if cancel.load(Ordering::Relaxed) {
                return Err(Cancelled.into());
            }
            if fed > limit {
                bail!("the AAC encoder stopped producing access units");
            }
            let n = if ended { 0 } else { source.read(&mut pcm)? };
            let n = if n == 0 {
                // The sound has ended: silence to the end of the pictures, and to flush.
                ended = true;
                pcm.fill(0);
                frame * ch
            } else {
                n
            };
            encoder.feed(&pcm[..n], &mut units)?;
            fed += (n / ch) as u64;
        }
        let rest = units.split_off(need);
        largest = largest.max(units.iter().map(Vec::len).max().unwrap_or(0));
        let number = u32::try_from(k + 1).context("too many segments")?;
        let samples: Vec<fmp4::Sample<'_>> = units
            .iter()
            .map(|u| fmp4::Sample {
                data: u,
                duration: FRAME_SAMPLES,
                is_sync: true,
            })
            .collect();
        let bytes = fmp4::media_segment(number, range.start * frame as u64, &samples)?;
        let path = out.join(manifest::segment_path(&a.id, number));
        std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        sizes.push((
            bytes.len() as u64,
            need as f64 * f64::from(FRAME_SAMPLES) / f64::from(a.sample_rate),
        ));
        units = rest;
    }
    // Stops ffmpeg when the sound is longer than the pictures.
    drop(source);

    let min_buffer = 2.0 * f64::from(clock.segment_frames) / f64::from(clock.fps);
    let bandwidth = manifest::measured_bandwidth(&sizes, min_buffer);
    let bytes: u64 = sizes.iter().map(|s| s.0).sum();
    let seconds = plan.frames as f64 * f64::from(FRAME_SAMPLES) / f64::from(a.sample_rate);
    let average = (bytes as f64 * 8.0 / seconds).round() as u64;
    let config = encoder.config().clone();
    let asc = Asc::parse(&config.asc)?;
    let init = fmp4::audio_init_segment(&fmp4::AudioTrackInfo {
        sample_rate: a.sample_rate,
        channels: u16::try_from(a.channels).context("channels")?,
        duration: plan.frames * frame as u64,
        asc: &config.asc,
        language: &sound.mdhd_lang,
        buffer_size: u32::try_from(largest).unwrap_or(u32::MAX),
        max_bitrate: u32::try_from(bandwidth).unwrap_or(u32::MAX),
        avg_bitrate: u32::try_from(average).unwrap_or(u32::MAX),
    })?;
    let init_file = out.join(manifest::init_path(&a.id));
    std::fs::write(&init_file, init)
        .with_context(|| format!("cannot write {}", init_file.display()))?;
    Ok(EncodedAudio {
        info: AudioRepresentationInfo {
            id: a.id.clone(),
            codecs: asc.codecs(),
            sample_rate: a.sample_rate,
            channels: a.channels,
            segment_duration,
            bandwidth,
        },
        report: AudioReport {
            id: a.id.clone(),
            codecs: asc.codecs(),
            sample_rate: a.sample_rate,
            channels: a.channels,
            target_bitrate: a.bitrate,
            bandwidth,
            average_bitrate: average,
            bytes,
            encoder_delay: config.delay,
            lang: sound.lang.clone(),
        },
        durations: sizes.iter().map(|s| s.1).collect(),
    })
}

/// One unit of work: segments `[first_segment, end_segment)` of one rendition.
#[derive(Debug, Clone, Copy)]
struct Job {
    rendition: usize,
    first_segment: u64,
    end_segment: u64,
}

/// Splits the work into jobs of about `chunk_frames` pictures, largest pictures first so the
/// long jobs start early. Only a seekable source of known length is split.
fn plan_jobs(
    renditions: &[Rendition],
    spec: &SourceSpec,
    clock: Clock,
    frames: Option<u64>,
    chunk_frames: u64,
) -> Vec<Job> {
    let seg = u64::from(clock.segment_frames);
    let split = match frames {
        Some(frames) if spec.is_seekable() => {
            Some((frames.div_ceil(seg), chunk_frames.div_ceil(seg).max(1)))
        }
        _ => None,
    };
    let mut jobs = Vec::new();
    for (i, _) in renditions.iter().enumerate() {
        match split {
            Some((segments, per_job)) => {
                let mut first = 0;
                while first < segments {
                    let end = (first + per_job).min(segments);
                    jobs.push(Job {
                        rendition: i,
                        first_segment: first,
                        end_segment: end,
                    });
                    first = end;
                }
            }
            None => jobs.push(Job {
                rendition: i,
                first_segment: 0,
                end_segment: u64::MAX,
            }),
        }
    }
    jobs.sort_by_key(|j| {
        let r = &renditions[j.rendition];
        (
            std::cmp::Reverse(u64::from(r.width) * u64::from(r.height)),
            j.first_segment,
        )
    });
    jobs
}

/// What one job produced.
struct Chunk {
    first_segment: u64,
    frames: u64,
    segment_bytes: Vec<u64>,
    params: ParameterSets,
}

/// Encodes one piece of a rendition with its own encoder and source, writing its segments as
/// they complete.
fn encode_chunk(
    r: &Rendition,
    spec: &SourceSpec,
    clock: Clock,
    job: &Job,
    out: &Path,
    progress: &ProgressBar,
    cancel: &AtomicBool,
) -> Result<Chunk> {
    let (w, h) = (r.width as usize, r.height as usize);
    let seg_frames = u64::from(clock.segment_frames);
    let first_frame = job.first_segment * seg_frames;
    let end_frame = job.end_segment.saturating_mul(seg_frames);
    let mut label = format!("{} {}K", r.id, r.bitrate / 1000);
    label.truncate(24);
    let mut source = spec.open(w, h, clock.fps, &label, first_frame..end_frame)?;
    let mut encoder = H264Encoder::new(w, h, clock.fps, r.bitrate, clock.segment_frames)?;
    let mut frame = Yuv420::new(w, h);
    let mut pending: Vec<EncodedFrame> = Vec::with_capacity(clock.segment_frames as usize);
    let mut segment_bytes = Vec::new();
    let mut index = first_frame;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled.into());
        }
        if !source.next_frame(index, &mut frame)? {
            break;
        }
        let segment_start = index.is_multiple_of(seg_frames);
        let coded = encoder.encode(&frame, index, segment_start)?;
        if segment_start && !coded.is_idr {
            bail!("the encoder did not make frame {index} an IDR frame at a segment start");
        }
        pending.push(coded);
        index += 1;
        if pending.len() as u64 == seg_frames {
            let number = job.first_segment + segment_bytes.len() as u64;
            segment_bytes.push(write_segment(out, &r.id, clock, number, &pending)?);
            pending.clear();
        }
        progress.inc(1);
    }
    if !pending.is_empty() {
        let number = job.first_segment + segment_bytes.len() as u64;
        segment_bytes.push(write_segment(out, &r.id, clock, number, &pending)?);
    }
    let Some(params) = encoder.parameter_sets() else {
        bail!("no frames were encoded from frame {first_frame} on");
    };
    Ok(Chunk {
        first_segment: job.first_segment,
        frames: index - first_frame,
        segment_bytes,
        params: params.clone(),
    })
}

/// Joins the pieces of a rendition, checks they fit together, measures its bandwidth and
/// writes its init segment.
fn finish_rendition(
    r: &Rendition,
    mut chunks: Vec<Chunk>,
    clock: Clock,
    out: &Path,
) -> Result<Encoded> {
    chunks.sort_by_key(|c| c.first_segment);
    let seg_frames = u64::from(clock.segment_frames);
    let Some(params) = chunks.first().map(|c| c.params.clone()) else {
        bail!("nothing was encoded");
    };
    let mut frames = 0u64;
    let mut segment_bytes = Vec::new();
    for c in &chunks {
        if c.first_segment * seg_frames != frames || segment_bytes.len() as u64 != c.first_segment {
            bail!(
                "the pieces do not join up: segment {} follows {} frames",
                c.first_segment + 1,
                frames
            );
        }
        if c.params.sps != params.sps || c.params.pps != params.pps {
            bail!("the encoders of different pieces wrote different SPS/PPS");
        }
        frames += c.frames;
        segment_bytes.extend_from_slice(&c.segment_bytes);
    }
    let fps = f64::from(clock.fps);
    let sizes: Vec<(u64, f64)> = segment_bytes
        .iter()
        .enumerate()
        .map(|(k, &b)| {
            let n = (frames - k as u64 * seg_frames).min(seg_frames);
            (b, n as f64 / fps)
        })
        .collect();
    let min_buffer = 2.0 * seg_frames as f64 / fps;
    let bandwidth = manifest::measured_bandwidth(&sizes, min_buffer);
    let average = segment_bytes.iter().sum::<u64>() as f64 * 8.0 / (frames as f64 / fps);
    let init = fmp4::init_segment(&fmp4::TrackInfo {
        width: u16::try_from(r.width).context("width")?,
        height: u16::try_from(r.height).context("height")?,
        timescale: clock.timescale,
        duration: frames * u64::from(clock.frame_ticks),
        params: &params,
        max_bitrate: u32::try_from(bandwidth).unwrap_or(u32::MAX),
        avg_bitrate: average.round().min(f64::from(u32::MAX)) as u32,
    })?;
    let init_file = out.join(manifest::init_path(&r.id));
    std::fs::write(&init_file, init)
        .with_context(|| format!("cannot write {}", init_file.display()))?;
    Ok(Encoded {
        info: RepresentationInfo {
            id: r.id.clone(),
            width: r.width,
            height: r.height,
            codecs: params.info.codecs(),
            bandwidth,
        },
        target_bitrate: r.bitrate,
        frames,
        segment_bytes,
        durations: sizes.iter().map(|s| s.1).collect(),
    })
}

/// Writes media segment `index` (0-based; file and `mfhd` numbers are 1-based) of a
/// representation; returns its size in bytes.
fn write_segment(
    out: &Path,
    id: &str,
    clock: Clock,
    index: u64,
    frames: &[EncodedFrame],
) -> Result<u64> {
    let number = u32::try_from(index + 1).context("too many segments")?;
    let first_frame = index * u64::from(clock.segment_frames);
    let samples: Vec<fmp4::Sample<'_>> = frames
        .iter()
        .map(|f| fmp4::Sample {
            data: &f.sample,
            duration: clock.frame_ticks,
            is_sync: f.is_idr,
        })
        .collect();
    let bytes = fmp4::media_segment(number, first_frame * u64::from(clock.frame_ticks), &samples)?;
    let path = out.join(manifest::segment_path(id, number));
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes.len() as u64)
}

/// Creates a representation's folder and removes segments a previous run left there.
fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name == "init.mp4" || (name.starts_with("seg-") && name.ends_with(".m4s"));
        if ours && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Writes a file through a temporary name and a rename, so readers never see half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_picks_a_timescale_and_whole_frame_segments() {
        let c = Clock::new(30, 2.0).unwrap();
        assert_eq!(
            (c.timescale, c.frame_ticks, c.segment_frames),
            (90_000, 3000, 60)
        );
        let c = Clock::new(7, 1.0).unwrap();
        assert_eq!(
            (c.timescale, c.frame_ticks, c.segment_frames),
            (7000, 1000, 7)
        );
        assert!(Clock::new(30, 0.05).is_err(), "1.5 frames");
        assert!(Clock::new(0, 2.0).is_err());
        assert!(Clock::new(30, f64::NAN).is_err());
        assert!(Clock::new(30, -2.0).is_err());
    }

    #[test]
    fn package_writes_aligned_segments_and_a_manifest() {
        let dir = std::env::temp_dir().join(format!("media-package-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ladder = Ladder::parse(
            "[[rendition]]\nid = \"a\"\nwidth = 96\nheight = 64\nbitrate_kbps = 100\n\
             [[rendition]]\nid = \"b\"\nwidth = 160\nheight = 96\nbitrate_kbps = 200\n",
            "test",
        )
        .unwrap();
        // A stale segment from an earlier, longer run must disappear.
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/seg-00009.m4s"), b"old").unwrap();
        let opts = Options {
            duration: Some(1.1),
            fps: 10,
            segment: 0.5,
            ladder,
            progress: false,
            // Two segments per piece: segments 1-2 and 3 come from separate encoders.
            chunk_frames: 10,
            ..Options::new(&dir)
        };
        let report = package(&opts).unwrap();
        assert_eq!(report.frames, 11);
        assert_eq!(report.segments, 3);
        for id in ["a", "b"] {
            assert!(dir.join(id).join("init.mp4").is_file());
            for n in 1..=3 {
                assert!(dir.join(format!("{id}/seg-{n:05}.m4s")).is_file());
            }
        }
        assert!(!dir.join("a/seg-00009.m4s").exists());
        // The default audio rung: 1.1 s = 51.56 AAC frames at 48 kHz, cut at the frames nearest
        // 0.5 s (23.44) and 1 s (46.88).
        assert_eq!(report.audio.len(), 1);
        assert_eq!(report.audio[0].codecs, "mp4a.40.2");
        let mut tfdts = Vec::new();
        for n in 1..=3 {
            let seg = std::fs::read(dir.join(format!("audio/seg-{n:05}.m4s"))).unwrap();
            let mut buf = seg.as_slice();
            while !buf.is_empty() {
                if let mp4_atom::Any::Moof(m) =
                    <mp4_atom::Any as mp4_atom::Decode>::decode(&mut buf).unwrap()
                {
                    let t = m.traf[0].tfdt.as_ref().unwrap().base_media_decode_time;
                    tfdts.push((t, m.traf[0].trun[0].samples.len()));
                }
            }
        }
        assert_eq!(tfdts, [(0, 23), (23 * 1024, 24), (47 * 1024, 5)]);
        assert!(dir.join("audio/init.mp4").is_file());
        let xml = std::fs::read_to_string(dir.join("manifest.mpd")).unwrap();
        let mpd = mpd::Mpd::parse(&xml).unwrap();
        let reps = &mpd.periods[0].adaptation_sets[0].representations;
        assert_eq!(reps.len(), 2);
        for (rep, r) in reps.iter().zip(&report.representations) {
            assert_eq!(rep.bandwidth, r.bandwidth);
            assert!(r.bandwidth >= r.average_bitrate);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jobs_split_seekable_sources_largest_first() {
        let ladder = Ladder::default_ladder();
        let clock = Clock::new(30, 2.0).unwrap();
        let spec = SourceSpec::Pattern { frames: 900 };
        let jobs = plan_jobs(&ladder.renditions, &spec, clock, Some(900), 300);
        assert_eq!(jobs.len(), 12);
        let first: Vec<_> = jobs[..3]
            .iter()
            .map(|j| {
                (
                    ladder.renditions[j.rendition].id.as_str(),
                    j.first_segment,
                    j.end_segment,
                )
            })
            .collect();
        assert_eq!(first, [("720p", 0, 5), ("720p", 5, 10), ("720p", 10, 15)]);
        assert_eq!(ladder.renditions[jobs[11].rendition].id, "240p");
        // A partial last segment still gets a job.
        let jobs = plan_jobs(&ladder.renditions[..1], &spec, clock, Some(301), 300);
        assert_eq!(
            jobs.iter()
                .map(|j| (j.first_segment, j.end_segment))
                .collect::<Vec<_>>(),
            [(0, 5), (5, 6)]
        );
        // A pipe from ffmpeg is read in one piece per rendition.
        let file = SourceSpec::File {
            ffmpeg: "ffmpeg".into(),
            path: "x.mp4".into(),
            max_seconds: None,
        };
        let jobs = plan_jobs(&ladder.renditions, &file, clock, Some(900), 300);
        assert_eq!(jobs.len(), 4);
        assert!(jobs
            .iter()
            .all(|j| j.first_segment == 0 && j.end_segment == u64::MAX));
    }

    #[test]
    fn audio_rungs_must_fit_the_title() {
        let clock = Clock::new(30, 2.0).unwrap();
        let mut opts = Options::new(std::env::temp_dir().join("media-package-never"));
        opts.audio[0].id = "720p".into();
        let err = format!("{:#}", plan_sound(&opts, clock).err().unwrap());
        assert!(err.contains("also used"), "{err}");
        let opts = Options::new(std::env::temp_dir().join("media-package-never"));
        let err = format!(
            "{:#}",
            plan_sound(&opts, Clock::new(60, 1.0 / 60.0).unwrap())
                .err()
                .unwrap()
        );
        assert!(err.contains("shorter than one AAC frame"), "{err}");
        let sound = plan_sound(&opts, clock).unwrap();
        assert_eq!((sound.lang.as_str(), sound.rungs.len()), ("und", 1));
        // A silent title needs nothing of the segment length.
        let silent = Options {
            audio: Vec::new(),
            ..opts
        };
        assert!(plan_sound(&silent, Clock::new(60, 1.0 / 60.0).unwrap()).is_ok());
    }

    #[test]
    fn missing_ffmpeg_is_a_clear_error() {
        let err = format!("{:#}", ffmpeg_for(Path::new("talk.mov"), None).unwrap_err());
        assert!(err.contains("talk.mov"), "{err}");
        assert!(err.contains("ffmpeg is not on PATH"), "{err}");
        assert!(err.contains("Debian package `ffmpeg`"), "{err}");
        assert_eq!(
            ffmpeg_for(Path::new("x"), Some("/usr/bin/ffmpeg".into())).unwrap(),
            PathBuf::from("/usr/bin/ffmpeg")
        );
    }

    #[test]
    fn missing_input_is_a_clear_error() {
        let opts = Options {
            input: Some("/definitely/not/here.mp4".into()),
            progress: false,
            ..Options::new(std::env::temp_dir().join("media-package-never"))
        };
        let err = format!("{:#}", package(&opts).unwrap_err());
        assert!(err.contains("no such file"), "{err}");
    }
}
