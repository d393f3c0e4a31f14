//! Bounded soak of the whole stack: N real players (VOD in a loop, every fifth one live) through
//! the router and the three edges for M minutes, with edge 1 stopped for a few seconds halfway
//! and started again (empty cache). Reports plays, errors, missing segments, stalls, segment
//! latency percentiles, the edges' and origin's request figures, and the peak RSS of the one
//! process the stack and the players run in (`VmHWM` from /proc/self/status).
//!
//! `scripts/soak.sh [--players N] [--minutes M] [--restart-down-secs S]` (defaults 50, 10, 5;
//! at most 500 players and 60 minutes). Exits 1 when any playback failed or lost a segment.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cdn_tests::{metric_sum, scrape, TestStack};
use player::play::{PlayConfig, PlayReport};

struct Args {
    players: usize,
    minutes: f64,
    restart_down_secs: f64,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        players: 50,
        minutes: 10.0,
        restart_down_secs: 5.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a number: {value}");
        match flag.as_str() {
            "--players" => a.players = value.parse().with_context(bad)?,
            "--minutes" => a.minutes = value.parse().with_context(bad)?,
            "--restart-down-secs" => a.restart_down_secs = value.parse().with_context(bad)?,
            _ => bail!("unknown flag {flag} (flags: --players, --minutes, --restart-down-secs)"),
        }
    }
    if !(1..=500).contains(&a.players) {
        bail!("--players must be 1..=500");
    }
    if !(a.minutes > 0.0 && a.minutes <= 60.0) {
        bail!("--minutes must be in (0, 60]");
    }
    if !(0.0..=60.0).contains(&a.restart_down_secs) {
        bail!("--restart-down-secs must be in [0, 60]");
    }
    Ok(a)
}

/// What one player saw over all its plays.
#[derive(Default)]
struct Tally {
    plays: usize,
    failed_plays: usize,
    segments: usize,
    missing: usize,
    rebuffers: u64,
    rebuffer_s: f64,
    failovers: u64,
    latencies_s: Vec<f64>,
    errors: Vec<String>,
}

impl Tally {
    fn add(&mut self, r: Result<PlayReport>) {
        self.plays += 1;
        match r {
            Ok(r) => {
                let s = &r.session.summary;
                self.segments += s.segments;
                self.missing += s.missing_segments;
                self.rebuffers += u64::from(s.rebuffer_count);
                self.rebuffer_s += s.rebuffer_s;
                self.failovers += u64::from(r.failovers);
                self.latencies_s.extend(
                    r.session
                        .segments
                        .iter()
                        .filter(|x| !x.missing)
                        .map(|x| x.download_s),
                );
                self.errors.extend(r.session.errors.iter().cloned());
            }
            Err(e) => {
                self.failed_plays += 1;
                self.errors.push(format!("{e:#}"));
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What the running edges' caches hold, from their `edge_stored_bytes` gauges: the part of the
/// RSS that is content by design (live segments are new URLs, so caches fill until capacity).
async fn cached_mib(stack: &cdn::stack::Stack) -> f64 {
    let mut bytes = 0.0;
    for (_, addr) in stack.edge_addrs() {
        if let Ok(text) = scrape(addr).await {
            bytes += metric_sum(&text, "edge_stored_bytes", &[]);
        }
    }
    bytes / (1024.0 * 1024.0)
}

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn player_loop(pc: PlayConfig, start_delay: Duration, until: Instant) -> Tally {
    let mut tally = Tally::default();
    tokio::time::sleep(start_delay).await;
    while Instant::now() < until {
        let r = match tokio::time::timeout(Duration::from_secs(180), player::play::play(&pc)).await
        {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("playback did not end within 180 s")),
        };
        tally.add(r);
    }
    tally
}

async fn soak(args: Args) -> Result<bool> {
    let mut t = TestStack::start().await.context("starting the stack")?;
    let dns = t.stack.dns.dns_addr();
    println!(
        "soak: {} players for {} min through the stack on 127.{}.x.x (one process, pid {}):\n{}",
        args.players,
        args.minutes,
        t.octet,
        std::process::id(),
        t.stack.banner_short()
    );
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let started = Instant::now();
    let until = started + total;
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for i in 0..args.players {
        let region = (i % 3) as u8 + 1;
        let live = i % 5 == 4;
        let path = if live {
            "/live/demo/manifest.mpd"
        } else {
            "/vod/demo/manifest.mpd"
        };
        let url = mpd::Url::parse(&t.content_url(path))?;
        let mut pc = PlayConfig::new(url);
        pc.dns = Some(dns);
        pc.bind = Some(IpAddr::V4(Ipv4Addr::new(
            127,
            t.octet,
            region,
            10 + (i / 3) as u8,
        )));
        pc.session.buffer.max_s = 8.0;
        if live {
            pc.duration_s = Some(30.0);
        }
        // Spread the starts over the first ten seconds.
        let delay = Duration::from_millis((i as u64 * 10_000) / args.players as u64);
        tasks.push(local.spawn_local(player_loop(pc, delay, until)));
    }

    let restart_at = started + total / 2;
    let edge_name = t.stack.config.edges[0].name.clone();
    let down = Duration::from_secs_f64(args.restart_down_secs);
    let tallies = local
        .run_until(async {
            let mut last_print = Instant::now();
            let mut restarted = false;
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !restarted && Instant::now() >= restart_at {
                    restarted = true;
                    println!(
                        "  {:>5.0} s  stopping edge {edge_name} for {} s",
                        started.elapsed().as_secs_f64(),
                        down.as_secs_f64()
                    );
                    t.stack.stop_edge(0).await;
                    tokio::time::sleep(down).await;
                    if let Err(e) = t.stack.start_edge(0).await {
                        println!("  restarting edge {edge_name} failed: {e:#}");
                    } else {
                        println!(
                            "  {:>5.0} s  edge {edge_name} started again (empty cache)",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                if last_print.elapsed() >= Duration::from_secs(15) {
                    last_print = Instant::now();
                    let (peak, now) = rss_mib();
                    let cached = cached_mib(&t.stack).await;
                    println!(
                        "  {:>5.0} s  rss {now:.0} MiB (peak {peak:.0} MiB), edge caches hold {cached:.0} MiB",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.unwrap_or_else(|e| Tally {
                    failed_plays: 1,
                    errors: vec![format!("player task: {e}")],
                    ..Default::default()
                }));
            }
            out
        })
        .await;
    let elapsed = started.elapsed().as_secs_f64();

    let mut all = Tally::default();
    for x in tallies {
        all.plays += x.plays;
        all.failed_plays += x.failed_plays;
        all.segments += x.segments;
        all.missing += x.missing;
        all.rebuffers += x.rebuffers;
        all.rebuffer_s += x.rebuffer_s;
        all.failovers += x.failovers;
        all.latencies_s.extend(x.latencies_s);
        all.errors.extend(x.errors);
    }
    all.latencies_s.sort_by(f64::total_cmp);
    let ms = |p: f64| percentile(&all.latencies_s, p) * 1e3;
    let (peak, rss) = rss_mib();

    println!("\n== soak result ({elapsed:.0} s wall)");
    println!(
        "players {}, plays {} ({} failed), segments {} ({} missing), failovers {}",
        args.players, all.plays, all.failed_plays, all.segments, all.missing, all.failovers
    );
    println!(
        "stalls: {} rebuffer events, {:.2} s total",
        all.rebuffers, all.rebuffer_s
    );
    println!(
        "segment latency (request to last byte): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
    let mut edge_requests = 0.0;
    for (name, addr) in t.stack.edge_addrs() {
        let text = scrape(addr).await.unwrap_or_default();
        let req = metric_sum(&text, "edge_requests_total", &[]);
        let hits = metric_sum(&text, "edge_requests_total", &[("cache_status", "hit")]);
        edge_requests += req;
        println!("edge {name}: {req} requests, {hits} hits (since its last start)");
    }
    let origin_text = scrape(t.stack.origin.local_addr())
        .await
        .unwrap_or_default();
    println!(
        "origin: {} requests; edges together {edge_requests} requests",
        metric_sum(&origin_text, "origin_http_requests_total", &[])
    );
    let cached = cached_mib(&t.stack).await;
    println!(
        "peak RSS {peak:.0} MiB (VmHWM of this one process: origin, 3 edges, DNS router and all players), RSS at end {rss:.0} MiB, of which edge caches {cached:.0} MiB"
    );
    let mut distinct: Vec<&String> = all.errors.iter().collect();
    distinct.sort();
    distinct.dedup();
    if !distinct.is_empty() {
        println!("errors ({} in all, first distinct ones):", all.errors.len());
        for e in distinct.iter().take(10) {
            println!("  {e}");
        }
    }
    t.stack.shutdown().await;
    Ok(all.failed_plays == 0 && all.missing == 0)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Runtime::new()?;
    if rt.block_on(soak(args))? {
        Ok(())
    } else {
        eprintln!("error: some playbacks failed or lost segments (see above)");
        std::process::exit(1)
    }
}
