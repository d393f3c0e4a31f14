//! Low-latency live, measured: for each chunk duration tried, a stack on free loopback addresses
//! whose low-latency channel uses it; our player (`cdn play`, low-latency mode, through edge 1)
//! dash.js in headless Chromium (low-latency mode, through edge 2) and hls.js (LL-HLS, through
//! edge 3) play it at once for the given time. Then the same three on the normal live channel. Prints one row per player and
//! configuration: live latency p50/p95, stalls, mean video bitrate and requests per second.
//!
//! Our player's requests are counted at its edge (`edge_requests_total`, it is alone there);
//! the browsers' from Resource Timing (tests/js/play.mjs).
//!
//! `cargo run --release -p cdn-tests --example ll_bench -- [--seconds 30] [--chunks 0.25,0.5,1.0]`
//! (`scripts/bench.sh ll`). Needs node, chromium and the npm packages of tests/js.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cdn_tests::{metric_sum, scrape, TestStack};
use player::play::{play, PlayConfig};

struct Args {
    seconds: u32,
    chunks: Vec<f64>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seconds: 30,
        chunks: vec![0.25, 0.5, 1.0],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().context("--seconds: not a number")?,
            "--chunks" => {
                a.chunks = value
                    .split(',')
                    .map(|c| c.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .context("--chunks: a comma-separated list of seconds")?
            }
            _ => bail!("unknown flag {flag} (flags: --seconds, --chunks)"),
        }
    }
    if !(10..=300).contains(&a.seconds) {
        bail!("--seconds must be 10..=300");
    }
    if a.chunks.is_empty() || a.chunks.iter().any(|c| !(0.1..=2.0).contains(c)) {
        bail!("--chunks: each in [0.1, 2.0] seconds");
    }
    Ok(a)
}

/// One player's figures for one configuration.
struct Row {
    config: String,
    player: &'static str,
    p50: Option<f64>,
    p95: Option<f64>,
    stalls: u64,
    stall_s: f64,
    kbps: Option<f64>,
    requests_per_s: Option<f64>,
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    Some(values[i.min(values.len() - 1)])
}

/// Plays `url` with `player` (dashjs, hlsjs) in Chromium for `seconds` (low-latency mode when
/// asked).
fn browser(player: &str, url: &str, seconds: u32, low_latency: bool) -> Result<serde_json::Value> {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let node = common::tools::find("node").context("node is missing (apt-get install nodejs)")?;
    let mut cmd = Command::new(node);
    cmd.current_dir(&js)
        .args(["play.mjs", player, url, &seconds.to_string()]);
    if low_latency {
        cmd.args(["0", "0", "lowlatency"]);
    }
    let out = cmd.output().context("running tests/js/play.mjs")?;
    if !out.status.success() {
        bail!("play.mjs failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .context("play.mjs printed no report")?;
    let mut reports: Vec<serde_json::Value> = serde_json::from_str(line)?;
    reports.pop().context("no session report")
}

fn browser_row(config: &str, player: &'static str, r: &serde_json::Value) -> Row {
    // Latency samples after the first 10 s: [t, player's latency, wall-clock latency, rate].
    let mut lat: Vec<f64> = r["latency"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s[0].as_f64().is_some_and(|t| t >= 10.0))
        .filter_map(|s| s[1].as_f64())
        .collect();
    let stalls = r["stalls"].as_array().map_or(0, |s| s.len() as u64);
    let stall_s = r["stalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s[1].as_f64())
        .sum::<f64>()
        + 0.0;
    let bws: Vec<f64> = r["bandwidths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b.as_f64())
        .collect();
    let requests_per_s = r["requests"].as_object().map(|kinds| {
        kinds
            .values()
            .filter_map(|k| k["per_second"].as_f64())
            .sum::<f64>()
    });
    Row {
        config: config.into(),
        player,
        p50: percentile(&mut lat.clone(), 50.0),
        p95: percentile(&mut lat, 95.0),
        stalls,
        stall_s,
        kbps: (!bws.is_empty()).then(|| bws.iter().sum::<f64>() / bws.len() as f64 / 1000.0),
        requests_per_s,
    }
}

async fn edge_requests(edge: SocketAddr) -> f64 {
    match scrape(edge).await {
        Ok(text) => metric_sum(&text, "edge_requests_total", &[]),
        Err(_) => f64::NAN,
    }
}

/// Our player, dash.js and hls.js at once on a channel of a stack: ours through edge 1, dash.js
/// through edge 2, hls.js (on the channel's HLS playlists) through edge 3.
async fn run_pair(t: &TestStack, config: &str, path: &str, seconds: u32) -> Result<Vec<Row>> {
    let low_latency = path.contains("-ll/");
    let edge1 = t.stack.config.edges[0].listen;
    let edge2 = t.stack.config.edges[1].listen;
    let edge3 = t.stack.config.edges[2].listen;
    let mut pc = PlayConfig::new(mpd::Url::parse(&t.content_url(path))?);
    pc.dns = Some(t.stack.dns.dns_addr());
    pc.bind = Some(IpAddr::V4(Ipv4Addr::new(127, t.octet, 1, 10)));
    pc.duration_s = Some(f64::from(seconds));
    let before = edge_requests(edge1).await;
    let browser_url = format!("http://{edge2}{path}");
    let hls_url = format!(
        "http://{edge3}{}",
        path.replace("manifest.mpd", "master.m3u8")
    );
    let dash =
        tokio::task::spawn_blocking(move || browser("dashjs", &browser_url, seconds, low_latency));
    let hls = tokio::task::spawn_blocking(move || browser("hlsjs", &hls_url, seconds, low_latency));
    let ours = play(&pc).await.context("our player")?;
    let after = edge_requests(edge1).await;
    let s = &ours.session.summary;
    let played = f64::from(seconds);
    let mut rows = vec![Row {
        config: config.into(),
        player: "cdn play",
        p50: s.live_latency_p50_s,
        p95: s.live_latency_p95_s,
        stalls: u64::from(s.rebuffer_count),
        stall_s: s.rebuffer_s,
        kbps: Some(s.bitrate_kbps),
        requests_per_s: Some((after - before) / played),
    }];
    let dash = dash.await?.context("dash.js")?;
    rows.push(browser_row(config, "dash.js", &dash));
    let hls = hls.await?.context("hls.js")?;
    rows.push(browser_row(config, "hls.js", &hls));
    Ok(rows)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let mut rows = Vec::new();
    for &chunk in &args.chunks {
        let t = TestStack::start_with(|c| c.low_latency_chunk_secs = chunk)
            .await
            .context("starting the stack")?;
        let path = format!(
            "/live/{}/manifest.mpd",
            t.stack.config.low_latency_channel()
        );
        eprintln!("ll_bench: chunks of {chunk} s, {} s", args.seconds);
        rows.extend(run_pair(&t, &format!("LL, {chunk} s chunks"), &path, args.seconds).await?);
        t.stack.shutdown().await;
    }
    let t = TestStack::start().await.context("starting the stack")?;
    let path = format!("/live/{}/manifest.mpd", t.stack.config.live_channel);
    eprintln!("ll_bench: normal live channel, {} s", args.seconds);
    rows.extend(run_pair(&t, "normal live (2 s segments)", &path, args.seconds).await?);
    t.stack.shutdown().await;

    println!(
        "{:<28} {:<9} {:>9} {:>9} {:>7} {:>8} {:>9} {:>10}",
        "channel", "player", "p50 (s)", "p95 (s)", "stalls", "stall s", "kbit/s", "requests/s"
    );
    for r in &rows {
        println!(
            "{:<28} {:<9} {:>9} {:>9} {:>7} {:>8.2} {:>9} {:>10}",
            r.config,
            r.player,
            fmt(r.p50, 2),
            fmt(r.p95, 2),
            r.stalls,
            r.stall_s,
            fmt(r.kbps, 0),
            fmt(r.requests_per_s, 2)
        );
    }
    println!(
        "\nLatency: now minus the wall-clock time of the media at the playhead (ours: sampled in \
         the session after its start; dash.js: getCurrentLiveLatency(), hls.js: hls.latency, \
         after the first 10 s). \
         Requests: every request of one viewer, manifests included."
    );
    Ok(())
}
