//! The `cdn simulate` and `cdn play` command lines.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::abr;
use crate::report::{Aggregate, SessionReport};
use crate::sim::{self, SimConfig};
use crate::trace::load_traces;
use crate::video::Video;

/// `cdn simulate`: trace-driven sessions in virtual time.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A trace file (Sabre JSON, Pensieve text or Mahimahi) or a directory of them.
    #[arg(long)]
    pub trace: PathBuf,
    /// A Sabre movie JSON, a Pensieve `video_size_*` folder or a packaged DASH folder.
    #[arg(long)]
    pub video: PathBuf,
    /// ABR algorithm name, `default`, or `all`.
    #[arg(long, default_value = "default")]
    pub abr: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Request latency added to every download, milliseconds.
    #[arg(long, default_value_t = 80.0)]
    pub rtt_ms: f64,
    /// Share of the trace rate that carries payload (Pensieve's simulator uses 0.95).
    #[arg(long, default_value_t = 1.0)]
    pub efficiency: f64,
    /// Fetching pauses above this buffer level, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub buffer_max: f64,
    /// Play only the first N segments.
    #[arg(long)]
    pub segments: Option<usize>,
    /// Never abandon a download.
    #[arg(long)]
    pub no_abandon: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write an SVG plot of the (single) session.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write every session's full report (per-segment rows) as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run the trace set this many times (for measuring simulation speed).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Play an audio track of this rate (kb/s) beside the video, over the same link (one audio
    /// segment per video segment); video only when absent.
    #[arg(long)]
    pub audio_kbps: Option<f64>,
    /// Play a low-latency live channel: chunked segments produced on a clock (see `--chunk`),
    /// the session joining at `--target-latency` behind the live edge, the buffer credited per
    /// chunk and the playback rate holding the latency.
    #[arg(long)]
    pub low_latency: bool,
    /// Low latency: the chunk duration, seconds.
    #[arg(long, default_value_t = 0.5, requires = "low_latency")]
    pub chunk: f64,
    /// Low latency: the latency to hold, seconds.
    #[arg(long, default_value_t = crate::lowlat::DEFAULT_TARGET_LATENCY_S, requires = "low_latency")]
    pub target_latency: f64,
}

/// Loads the video `cdn simulate --video` names: a folder holding `manifest.mpd` is a packaged
/// DASH title (see [`crate::dash_folder`]), another folder a Pensieve `video_size_*` folder, a
/// file a Sabre movie JSON.
pub fn load_video(path: &Path) -> Result<Video> {
    if path.is_dir() {
        if path.join("manifest.mpd").is_file() {
            return crate::dash_folder::load(path);
        }
        return Video::load_pensieve(path);
    }
    Video::load_sabre(path)
}

/// Runs `cdn simulate`.
pub fn simulate(args: SimulateArgs) -> Result<()> {
    let mut traces = load_traces(&args.trace)?;
    if args.repeat > 1 {
        let one = traces.clone();
        for _ in 1..args.repeat.min(10_000) {
            traces.extend(one.iter().cloned());
        }
    }
    let mut video = load_video(&args.video)?;
    if let Some(n) = args.segments {
        video.truncate(n);
    }
    let names: Vec<&str> = if args.abr == "all" {
        abr::NAMES.to_vec()
    } else if args.abr == "default" && args.low_latency {
        vec![abr::DEFAULT_LOW_LATENCY]
    } else {
        vec![args.abr.as_str()]
    };
    let mut cfg = SimConfig {
        rtt_s: args.rtt_ms / 1000.0,
        efficiency: args.efficiency,
        ..SimConfig::default()
    };
    if !(cfg.efficiency > 0.0 && cfg.efficiency <= 1.0) {
        bail!("--efficiency must be in (0, 1]");
    }
    cfg.session.buffer.max_s = args.buffer_max;
    if let Some(kbps) = args.audio_kbps {
        if !(kbps.is_finite() && kbps > 0.0) {
            bail!("--audio-kbps must be positive");
        }
        cfg.audio_bps = Some(kbps * 1000.0);
    }
    cfg.session.abandonment = !args.no_abandon;
    if args.low_latency {
        if !(args.chunk.is_finite() && args.chunk > 0.0 && args.chunk <= video.segment_duration_s) {
            bail!(
                "--chunk must be positive and at most the segment duration ({} s)",
                video.segment_duration_s
            );
        }
        if !(args.target_latency.is_finite() && args.target_latency > 0.0) {
            bail!("--target-latency must be positive");
        }
        cfg.session.low_latency = Some(crate::lowlat::LowLatency::new(
            args.target_latency,
            args.chunk,
        ));
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let started = Instant::now();
    let reports = sim::simulate_many(&traces, &video, &names, &cfg, threads)?;
    let elapsed = started.elapsed().as_secs_f64();
    let sessions = traces.len() * names.len();
    let default_name = abr::by_name("default")?.name();
    let aggregates: Vec<Aggregate> = names
        .iter()
        .zip(&reports)
        .map(|(n, rs)| {
            let canonical = abr::by_name(n).map(|a| a.name()).unwrap_or("?");
            let summaries: Vec<_> = rs.iter().map(|r| r.summary.clone()).collect();
            Aggregate::of(canonical, canonical == default_name, &summaries)
        })
        .collect();
    let single = sessions == 1;
    if let Some(path) = &args.report {
        let all: Vec<&SessionReport> = reports.iter().flatten().collect();
        std::fs::write(path, serde_json::to_vec_pretty(&all)?)
            .with_context(|| format!("{}: cannot write report", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let Some(first) = reports.first().and_then(|r| r.first()) else {
            bail!("no session to plot");
        };
        crate::plot::write_svg(first, path)?;
    }
    if args.json {
        let results: Vec<serde_json::Value> = aggregates
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        let mut obj = serde_json::json!({
            "sessions": traces.len(),
            "segments": video.num_segments,
            "results": results,
        });
        if single {
            if let Some(r) = reports.first().and_then(|r| r.first()) {
                obj["report"] = serde_json::to_value(r)?;
            }
        }
        emit(&format!("{}\n", serde_json::to_string(&obj)?))?;
    } else if single {
        if let Some(r) = reports.first().and_then(|r| r.first()) {
            emit(&r.table())?;
        }
    } else {
        let mut out = format!(
            "{} traces from {} | video {} ({} segments of {} s, {} rungs){} | rtt {} ms\n{}\n",
            traces.len(),
            args.trace.display(),
            video.name,
            video.num_segments,
            video.segment_duration_s,
            video.rungs(),
            args.audio_kbps
                .map(|k| format!(" + audio {k} kb/s"))
                .unwrap_or_default(),
            args.rtt_ms,
            Aggregate::header()
        );
        for a in &aggregates {
            out.push_str(&a.row());
            out.push('\n');
        }
        out.push_str("(* = default)\n");
        emit(&out)?;
    }
    eprintln!(
        "{sessions} sessions of {} segments in {elapsed:.3} s on {threads} threads: {:.0} sessions/s",
        video.num_segments,
        sessions as f64 / elapsed.max(1e-9)
    );
    Ok(())
}

/// `cdn play`: real playback of a DASH URL.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// MPD URL (http:// or https://).
    pub url: String,
    /// DNS server, `IP` or `IP:PORT` (default port 53); the system resolver when absent.
    #[arg(long)]
    pub dns: Option<String>,
    /// Source address for DNS and HTTP (places the client in a region on loopback).
    #[arg(long)]
    pub bind: Option<std::net::IpAddr>,
    /// ABR algorithm name or `default`.
    #[arg(long, default_value = "default")]
    pub abr: String,
    /// Throttle downloads to this network trace (any format `cdn simulate` reads).
    #[arg(long)]
    pub shape: Option<PathBuf>,
    /// Write the full report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of bitrate, estimate and buffer.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Stop requesting segments after this many seconds (live default: 30).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Timeout for a response's headers and between body chunks, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Fetching pauses above this buffer level, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub buffer_max: f64,
    /// Speak HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    pub http2: bool,
    /// Speak HTTP/3 over QUIC (https:// URLs; UDP to the same port number).
    #[arg(long, conflicts_with = "http2")]
    pub http3: bool,
    /// Skip DNS: use these comma-separated addresses for the URL's host, in failover order.
    #[arg(long, value_delimiter = ',')]
    pub resolve: Option<Vec<std::net::IpAddr>>,
    /// PEM file of root certificates to trust for https:// URLs (repeatable), in addition to
    /// the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Trust only the --ca roots, not the system's.
    #[arg(long, requires = "ca")]
    pub no_system_roots: bool,
    /// Language of the audio track (BCP 47, e.g. `en` or `fr-CA`); the first audio
    /// AdaptationSet when absent.
    #[arg(long)]
    pub lang: Option<String>,
    /// Play a live MPD in low-latency mode: request each segment as soon as its first chunk is
    /// out, credit the buffer per chunk, hold the latency with the playback rate, the `ll`
    /// ABR by default. Automatic when the MPD's SegmentTemplate says
    /// availabilityTimeComplete="false" with an availabilityTimeOffset.
    #[arg(long)]
    pub low_latency: bool,
    /// Low latency: the live latency to hold, seconds (default: the MPD's ServiceDescription,
    /// else 1.5).
    #[arg(long)]
    pub target_latency: Option<f64>,
}

/// Parses `IP` or `IP:PORT` (port 53 by default).
pub fn parse_dns_addr(s: &str) -> Result<std::net::SocketAddr> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("--dns {s:?}: expected IP or IP:PORT"))?;
    Ok(std::net::SocketAddr::new(ip, 53))
}

impl PlayArgs {
    /// The playback configuration these flags describe.
    pub fn config(&self) -> Result<crate::play::PlayConfig> {
        let url = url::Url::parse(&self.url).with_context(|| format!("{:?}: bad URL", self.url))?;
        let mut cfg = crate::play::PlayConfig::new(url);
        cfg.dns = self.dns.as_deref().map(parse_dns_addr).transpose()?;
        cfg.bind = self.bind;
        cfg.abr = self.abr.clone();
        abr::by_name(&cfg.abr)?;
        cfg.shape = self
            .shape
            .as_deref()
            .map(crate::trace::Trace::load)
            .transpose()?;
        cfg.duration_s = self.duration;
        if !(self.timeout > 0.0 && self.timeout < 3600.0) {
            bail!("--timeout must be between 0 and 3600 seconds");
        }
        cfg.timeout = std::time::Duration::from_secs_f64(self.timeout);
        cfg.session.buffer.max_s = self.buffer_max;
        cfg.http2 = self.http2;
        cfg.http3 = self.http3;
        cfg.resolve = self.resolve.clone();
        cfg.ca = self.ca.clone();
        cfg.system_roots = !self.no_system_roots;
        cfg.lang = self.lang.clone();
        cfg.low_latency = self.low_latency;
        if let Some(t) = self.target_latency {
            if !(t.is_finite() && t > 0.0 && t <= 60.0) {
                bail!("--target-latency must be between 0 and 60 seconds");
            }
        }
        cfg.target_latency_s = self.target_latency;
        Ok(cfg)
    }
}

/// Runs `cdn play`.
pub fn play(args: PlayArgs) -> Result<()> {
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(crate::play::play(&cfg))?;
    emit(&report.table())?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("{}: cannot write report", path.display()))?;
    }
    if let Some(path) = &args.plot {
        crate::plot::write_svg(&report.session, path)?;
    }
    Ok(())
}

/// Writes `text` to stdout. A reader that went away (`| head`) ends the output quietly, as
/// command-line tools do, instead of panicking as `print!` would.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
