//! What a session saw: one row per segment and a summary (startup delay, bitrate, switches,
//! rebuffering, QoE_lin as Pensieve and MPC define it), printed as a table or JSON; and
//! aggregates over many sessions (means and percentiles per algorithm).

use serde::Serialize;

use crate::abr::mpc::{REBUF_PENALTY, SMOOTH_PENALTY};
use crate::buffer::PlayoutBuffer;
use crate::video::Video;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentRow {
    pub index: usize,
    pub rung: usize,
    pub bitrate_kbps: f64,
    pub bytes: u64,
    /// When the segment's turn began (before any pause), seconds since session start.
    pub start_s: f64,
    /// Request to last byte of the download that was kept.
    pub download_s: f64,
    pub throughput_kbps: f64,
    /// The ABR's estimate when it chose.
    pub estimate_kbps: Option<f64>,
    /// Buffer level after the segment arrived.
    pub buffer_s: f64,
    /// Stall time during this segment's turn.
    pub rebuffer_s: f64,
    /// Downloads of this segment abandoned for a lower rung.
    pub abandoned: u32,
    pub wasted_bytes: u64,
    pub edge: Option<String>,
    pub missing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub segments: usize,
    pub missing_segments: usize,
    pub startup_delay_s: Option<f64>,
    pub bitrate_kbps: f64,
    pub switches: usize,
    /// Mean size of a switch, kb/s.
    pub switch_kbps: f64,
    pub rebuffer_count: u32,
    pub rebuffer_s: f64,
    /// Stall time over (stall time + played time).
    pub rebuffer_ratio: f64,
    /// Mean over segments of bitrate_Mbps - 4.3 x rebuffer_s - |bitrate change|_Mbps.
    pub qoe_lin: f64,
    pub abandoned: u32,
    pub session_s: f64,
    /// Live only: the median and 95th percentile of the live latency sampled during playback
    /// (server time minus the wall-clock time of the media at the playhead), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_latency_p50_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_latency_p95_s: Option<f64>,
}

/// Live latency at one moment of a session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPoint {
    /// Seconds since session start.
    pub t_s: f64,
    pub latency_s: f64,
}

/// One segment of a track played beside the video (audio).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRow {
    pub index: usize,
    pub bytes: u64,
    /// Request time, seconds since session start.
    pub start_s: f64,
    pub download_s: f64,
    /// Seconds of this track buffered ahead of the playhead after the segment arrived.
    pub buffer_s: f64,
    pub missing: bool,
}

/// A track played beside the video (audio): its Representation and every segment fetched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackReport {
    /// Representation id.
    pub id: String,
    pub bitrate_kbps: f64,
    pub segments: usize,
    pub missing_segments: usize,
    pub bytes: u64,
    pub rows: Vec<TrackRow>,
}

impl TrackReport {
    pub fn new(id: &str, bitrate_kbps: f64, rows: Vec<TrackRow>) -> Self {
        TrackReport {
            id: id.to_string(),
            bitrate_kbps,
            segments: rows.len(),
            missing_segments: rows.iter().filter(|r| r.missing).count(),
            bytes: rows.iter().map(|r| r.bytes).sum(),
            rows,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionReport {
    pub abr: String,
    pub video: String,
    pub trace: Option<String>,
    pub summary: Summary,
    /// The video segments; with an audio track, `buffer_s` is what both tracks hold (what
    /// can play).
    pub segments: Vec<SegmentRow>,
    pub errors: Vec<String>,
    /// The audio track, when one played beside the video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<TrackReport>,
    /// Live: the latency sampled during playback.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyPoint>,
}

/// QoE_lin of each segment: bitrate_Mbps - 4.3 x rebuffer_s - |bitrate change|_Mbps (the first
/// segment has no change; missing segments score 0 bitrate).
pub fn qoe_lin_per_segment(rows: &[SegmentRow]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len());
    let mut last: Option<f64> = None;
    for r in rows {
        let m = r.bitrate_kbps / 1000.0;
        let switch = match (last, r.missing) {
            (Some(l), false) => (m - l).abs(),
            _ => 0.0,
        };
        out.push(m - REBUF_PENALTY * r.rebuffer_s - SMOOTH_PENALTY * switch);
        if !r.missing {
            last = Some(m);
        }
    }
    out
}

impl SessionReport {
    pub fn new(
        abr: &str,
        video: &Video,
        buffer: &PlayoutBuffer,
        segments: Vec<SegmentRow>,
        errors: Vec<String>,
        session_s: f64,
    ) -> Self {
        let played: Vec<&SegmentRow> = segments.iter().filter(|r| !r.missing).collect();
        let n = played.len();
        let bitrate_kbps = if n > 0 {
            played.iter().map(|r| r.bitrate_kbps).sum::<f64>() / n as f64
        } else {
            0.0
        };
        let (mut switches, mut switch_sum) = (0usize, 0.0);
        for w in played.windows(2) {
            if w[0].rung != w[1].rung {
                switches += 1;
                switch_sum += (w[1].bitrate_kbps - w[0].bitrate_kbps).abs();
            }
        }
        let qoe = qoe_lin_per_segment(&segments);
        let rebuffer_s = buffer.rebuffer_s();
        let media_s = played.len() as f64 * video.segment_duration_s;
        let summary = Summary {
            segments: segments.len(),
            missing_segments: segments.len() - n,
            startup_delay_s: buffer.startup_delay_s(),
            bitrate_kbps,
            switches,
            switch_kbps: if switches > 0 {
                switch_sum / switches as f64
            } else {
                0.0
            },
            rebuffer_count: buffer.rebuffer_events(),
            rebuffer_s,
            rebuffer_ratio: if media_s + rebuffer_s > 0.0 {
                rebuffer_s / (media_s + rebuffer_s)
            } else {
                0.0
            },
            qoe_lin: if qoe.is_empty() {
                0.0
            } else {
                qoe.iter().sum::<f64>() / qoe.len() as f64
            },
            abandoned: segments.iter().map(|r| r.abandoned).sum(),
            session_s,
            live_latency_p50_s: None,
            live_latency_p95_s: None,
        };
        SessionReport {
            abr: abr.to_string(),
            video: video.name.clone(),
            trace: None,
            summary,
            segments,
            errors,
            audio: None,
            latency: Vec::new(),
        }
    }

    /// Records the live latency samples and their percentiles.
    pub fn set_latency(&mut self, points: Vec<LatencyPoint>) {
        let values: Vec<f64> = points.iter().map(|p| p.latency_s).collect();
        self.summary.live_latency_p50_s = crate::lowlat::percentile(&values, 50.0);
        self.summary.live_latency_p95_s = crate::lowlat::percentile(&values, 95.0);
        self.latency = points;
    }

    /// The per-segment table and the summary, for humans.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>4} {:>4} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>7} {:>6} {:>3}  edge",
            "seg",
            "rung",
            "kbps",
            "bytes",
            "start_s",
            "dl_s",
            "tput_kbps",
            "est_kbps",
            "buf_s",
            "rebuf",
            "ab"
        );
        for r in &self.segments {
            let _ =
                writeln!(
                s,
                "{:>4} {:>4} {:>8.0} {:>9} {:>8.2} {:>8.3} {:>9.0} {:>9} {:>7.2} {:>6.2} {:>3}  {}",
                r.index,
                if r.missing { "-".into() } else { r.rung.to_string() },
                r.bitrate_kbps,
                r.bytes,
                r.start_s,
                r.download_s,
                r.throughput_kbps,
                r.estimate_kbps
                    .map(|e| format!("{e:.0}"))
                    .unwrap_or_else(|| "-".into()),
                r.buffer_s,
                r.rebuffer_s,
                r.abandoned,
                r.edge.as_deref().unwrap_or(if r.missing { "MISSING" } else { "-" }),
            );
        }
        let m = &self.summary;
        let _ = writeln!(
            s,
            "abr {} | video {}{} | segments {} (missing {}) | startup {} | bitrate {:.0} kb/s | \
             switches {} (mean {:.0} kb/s) | rebuffer {} x, {:.2} s, ratio {:.4} | QoE_lin {:.3} | \
             abandoned {}",
            self.abr,
            self.video,
            self.trace
                .as_deref()
                .map(|t| format!(" | trace {t}"))
                .unwrap_or_default(),
            m.segments,
            m.missing_segments,
            m.startup_delay_s
                .map(|d| format!("{d:.2} s"))
                .unwrap_or_else(|| "never".into()),
            m.bitrate_kbps,
            m.switches,
            m.switch_kbps,
            m.rebuffer_count,
            m.rebuffer_s,
            m.rebuffer_ratio,
            m.qoe_lin,
            m.abandoned
        );
        if let (Some(p50), Some(p95)) = (m.live_latency_p50_s, m.live_latency_p95_s) {
            let _ = writeln!(s, "live latency p50 {p50:.2} s | p95 {p95:.2} s");
        }
        if let Some(a) = &self.audio {
            let last_buffer = a
                .rows
                .iter()
                .rev()
                .find(|r| !r.missing)
                .map_or(0.0, |r| r.buffer_s);
            let _ = writeln!(
                s,
                "audio {} {:.0} kb/s | segments {} (missing {}) | bytes {} | buffer after the last {:.2} s",
                a.id, a.bitrate_kbps, a.segments, a.missing_segments, a.bytes, last_buffer
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }
}

/// Means and percentiles of one algorithm over many sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    pub abr: String,
    pub default: bool,
    pub sessions: usize,
    pub qoe_lin: f64,
    pub qoe_lin_p10: f64,
    pub qoe_lin_p50: f64,
    pub qoe_lin_p90: f64,
    pub bitrate_kbps: f64,
    pub rebuffer_ratio: f64,
    pub rebuffer_s: f64,
    pub switches: f64,
    pub startup_delay_s: f64,
    /// Live: means over sessions of each session's latency median and 95th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_latency_p50_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_latency_p95_s: Option<f64>,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Aggregate {
    pub fn of(abr: &str, is_default: bool, sessions: &[Summary]) -> Self {
        let mut q: Vec<f64> = sessions.iter().map(|s| s.qoe_lin).collect();
        q.sort_by(|a, b| a.total_cmp(b));
        Aggregate {
            abr: abr.to_string(),
            default: is_default,
            sessions: sessions.len(),
            qoe_lin: mean(sessions.iter().map(|s| s.qoe_lin)),
            qoe_lin_p10: percentile(&q, 10.0),
            qoe_lin_p50: percentile(&q, 50.0),
            qoe_lin_p90: percentile(&q, 90.0),
            bitrate_kbps: mean(sessions.iter().map(|s| s.bitrate_kbps)),
            rebuffer_ratio: mean(sessions.iter().map(|s| s.rebuffer_ratio)),
            rebuffer_s: mean(sessions.iter().map(|s| s.rebuffer_s)),
            switches: mean(sessions.iter().map(|s| s.switches as f64)),
            startup_delay_s: mean(sessions.iter().filter_map(|s| s.startup_delay_s)),
            live_latency_p50_s: sessions
                .iter()
                .any(|s| s.live_latency_p50_s.is_some())
                .then(|| mean(sessions.iter().filter_map(|s| s.live_latency_p50_s))),
            live_latency_p95_s: sessions
                .iter()
                .any(|s| s.live_latency_p95_s.is_some())
                .then(|| mean(sessions.iter().filter_map(|s| s.live_latency_p95_s))),
        }
    }

    pub fn header() -> String {
        format!(
            "{:<12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
            "abr",
            "sessions",
            "QoE_lin",
            "p10",
            "p50",
            "p90",
            "kbps",
            "rebuf_ratio",
            "switches",
            "startup_s"
        )
    }

    pub fn row(&self) -> String {
        let latency = match (self.live_latency_p50_s, self.live_latency_p95_s) {
            (Some(a), Some(b)) => format!(" | latency p50 {a:.2} s, p95 {b:.2} s"),
            _ => String::new(),
        };
        let row = format!(
            "{:<12} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.0} {:>10.4}% {:>9.1} {:>9.2}",
            format!("{}{}", self.abr, if self.default { "*" } else { "" }),
            self.sessions,
            self.qoe_lin,
            self.qoe_lin_p10,
            self.qoe_lin_p50,
            self.qoe_lin_p90,
            self.bitrate_kbps,
            self.rebuffer_ratio * 100.0,
            self.switches,
            self.startup_delay_s
        );
        row + &latency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kbps: f64, rebuf: f64) -> SegmentRow {
        SegmentRow {
            index: 0,
            rung: (kbps / 1000.0) as usize,
            bitrate_kbps: kbps,
            bytes: 1,
            start_s: 0.0,
            download_s: 1.0,
            throughput_kbps: 1.0,
            estimate_kbps: None,
            buffer_s: 1.0,
            rebuffer_s: rebuf,
            abandoned: 0,
            wasted_bytes: 0,
            edge: None,
            missing: false,
        }
    }

    #[test]
    fn qoe_lin_matches_pensieve_formula() {
        let rows = vec![row(1000.0, 0.0), row(3000.0, 0.5), row(2000.0, 0.0)];
        let q = qoe_lin_per_segment(&rows);
        assert_eq!(q, vec![1.0, 3.0 - 4.3 * 0.5 - 2.0, 2.0 - 1.0]);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 10.0), 1.0);
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 90.0), 9.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
