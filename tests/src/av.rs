//! Audio/video sync measured from decoded output. The test pattern's picture shows a white box
//! on the frame at each whole second and its sound a 1 kHz beep starting at each whole second
//! over a steady 220 Hz tone (`packager::pattern`). One ffmpeg run decodes a video and an audio
//! stream of a URL (an MPD or an HLS playlist, VOD or live) on one timeline: the video's marker
//! frames come from the mean luma of the box (`signalstats`), the beep onsets from the ends of
//! the silences left once the tone is filtered out (`silencedetect`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What one decoding found, in seconds of the decoded timeline.
#[derive(Debug)]
pub struct AvSync {
    /// Times of the marker frames.
    pub markers: Vec<f64>,
    /// Times of the beep onsets.
    pub onsets: Vec<f64>,
    /// Time of the first decoded video frame.
    pub first_frame: f64,
    /// Audio minus video, per marker that has a beep within half a second.
    pub offsets: Vec<f64>,
    /// Markers without a beep within half a second (other than at the very start, where the
    /// decoding may begin inside a beep).
    pub unmatched: Vec<f64>,
}

impl AvSync {
    pub fn mean(&self) -> f64 {
        self.offsets.iter().sum::<f64>() / self.offsets.len().max(1) as f64
    }

    pub fn worst(&self) -> f64 {
        self.offsets.iter().fold(0.0f64, |a, o| a.max(o.abs()))
    }

    /// Offsets in milliseconds, rounded to 0.01 ms, for messages.
    pub fn offsets_ms(&self) -> Vec<f64> {
        self.offsets
            .iter()
            .map(|o| (o * 1e5).round() / 100.0)
            .collect()
    }
}

/// Decodes the first video and the first audio stream of `url` with ffmpeg (`-re` when
/// `realtime`, as live input needs; at most `media_secs` of input) and pairs each marker frame
/// with the nearest beep onset. Panics with ffmpeg's output if ffmpeg fails or overruns
/// `timeout`.
pub fn measure(
    url: &str,
    media_secs: Option<f64>,
    realtime: bool,
    scratch: &Path,
    timeout: Duration,
) -> AvSync {
    let ffmpeg = common::tools::require("ffmpeg");
    // Scaled to the lowest rung's size first, so that the box is where `marker_rect` says
    // whichever rung ffmpeg picks as the first video stream.
    let (w, h) = (320, 180);
    let (x0, y0, x1, y1) = packager::pattern::marker_rect(w, h);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let log = scratch.join(format!("marker-yavg-{}-{run}.txt", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let graph = format!(
        "[0:v:0]scale={w}:{h},crop={}:{}:{}:{},signalstats,\
         metadata=print:key=lavfi.signalstats.YAVG:file={}[v];\
         [0:a:0]highpass=f=600,highpass=f=600,silencedetect=n=-30dB:d=0.3[a]",
        x1 - x0 - 8,
        y1 - y0 - 8,
        x0 + 4,
        y0 + 4,
        log.display()
    );
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-nostdin", "-hide_banner", "-v", "info"]);
    if realtime {
        cmd.arg("-re");
    }
    if let Some(s) = media_secs {
        cmd.args(["-t", &format!("{s}")]);
    }
    cmd.args(["-i", url, "-filter_complex", &graph])
        .args([
            "-map", "[v]", "-f", "null", "-", "-map", "[a]", "-f", "null", "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting ffmpeg");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for ffmpeg") {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ffmpeg on {url} ran longer than {timeout:?}: {}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = reader.join().unwrap_or_default();
    assert!(status.success(), "ffmpeg on {url} failed: {err}");

    let yavg = metadata_values(
        &std::fs::read_to_string(&log).unwrap_or_default(),
        "lavfi.signalstats.YAVG",
    );
    let _ = std::fs::remove_file(&log);
    assert!(
        !yavg.is_empty(),
        "ffmpeg decoded no video frame of {url}: {err}"
    );
    let first_frame = yavg[0].0;
    let last_frame = yavg[yavg.len() - 1].0;
    let markers: Vec<f64> = yavg
        .iter()
        .filter(|(_, y)| *y > 200.0)
        .map(|(t, _)| *t)
        .collect();
    let onsets: Vec<f64> = err
        .lines()
        .filter_map(|l| {
            let i = l.find("silence_end:")?;
            l[i + 12..].split('|').next()?.trim().parse::<f64>().ok()
        })
        // The end of the stream also ends a silence.
        .filter(|&t| t < last_frame - 0.1)
        .collect();
    let mut offsets = Vec::new();
    let mut unmatched = Vec::new();
    for &m in &markers {
        let nearest = onsets
            .iter()
            .copied()
            .min_by(|a, b| (a - m).abs().total_cmp(&(b - m).abs()));
        match nearest {
            Some(o) if (o - m).abs() < 0.5 => offsets.push(o - m),
            // A beep that started before the first decoded sample has no silence before it.
            _ if m < first_frame + 0.5 => {}
            _ => unmatched.push(m),
        }
    }
    AvSync {
        markers,
        onsets,
        first_frame,
        offsets,
        unmatched,
    }
}

/// `(pts_time, value)` of every frame from the log of ffmpeg's `metadata=print` filter.
fn metadata_values(text: &str, key: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut pts = None;
    let prefix = format!("{key}=");
    for line in text.lines() {
        if let Some(i) = line.find("pts_time:") {
            pts = line[i + 9..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok());
        } else if let (Some(v), Some(t)) = (line.strip_prefix(&prefix), pts) {
            if let Ok(v) = v.trim().parse::<f64>() {
                out.push((t, v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_log_lines_pair_with_their_frame() {
        let log = "frame:0    pts:0       pts_time:0\nlavfi.signalstats.YAVG=235.5\n\
                   frame:1    pts:512     pts_time:0.0333\nlavfi.signalstats.YAVG=16\n\
                   lavfi.other=3\n";
        assert_eq!(
            metadata_values(log, "lavfi.signalstats.YAVG"),
            vec![(0.0, 235.5), (0.0333, 16.0)]
        );
    }
}
