//! `cdn demo`: the stack of `cdn up`, then five players at once, resolved through the router:
//! VOD from region 1, VOD from region 2 throttled to a varying trace (the ABR visibly adapts),
//! a second VOD player in region 1 a few seconds later (served from that edge's cache), and in
//! region 3 a live player and a low-latency live player. Prints what each saw (live players:
//! their latency behind live) and the edges' cache figures, writes JSON reports and SVG plots
//! under `DATA/reports/`, and stops everything.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use player::play::{PlayConfig, PlayReport};
use player::trace::Trace;

use crate::stack::{Stack, StackConfig};
use crate::up::StackArgs;

/// Flags of `cdn demo`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DemoArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Seconds the live player plays.
    #[arg(long, default_value_t = 20.0)]
    pub live_seconds: f64,
}

/// One player of the demo.
struct Player {
    name: &'static str,
    path: String,
    bind: IpAddr,
    delay: Duration,
    shape: Option<Trace>,
    duration_s: Option<f64>,
}

/// The throttled player's link: plenty, then a dip well under the top rung, then recovery.
fn varying_trace() -> Result<Trace> {
    Trace::new(
        "demo: 4 Mb/s, 0.7 Mb/s, 1.6 Mb/s, 4 Mb/s",
        vec![(6.0, 4.0e6), (9.0, 0.7e6), (7.0, 1.6e6), (30.0, 4.0e6)],
    )
}

/// Runs `cdn demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    let cfg = args.stack.config()?;
    tokio::runtime::Runtime::new()?.block_on(demo(cfg, args.live_seconds))
}

/// The demo on a given stack configuration (tests run it on free addresses).
pub async fn demo(cfg: StackConfig, live_seconds: f64) -> Result<()> {
    let started = Instant::now();
    let data = cfg.data.clone();
    println!("== cdn demo: packaging (first run only) and starting the stack");
    let stack = Stack::start(cfg).await?;
    println!("{}", stack.banner_short());
    // Players' futures are not Send (their download watchers borrow the session); they share
    // one thread, which is plenty for I/O-bound work.
    let outcome = tokio::task::LocalSet::new()
        .run_until(play_all(&stack, &data, live_seconds))
        .await;
    stack.shutdown().await;
    let failures = outcome?;
    println!("demo finished in {:.0} s", started.elapsed().as_secs_f64());
    if failures > 0 {
        bail!("{failures} player(s) did not play cleanly (see above)");
    }
    Ok(())
}

/// A client address in the region of the stack's edge `i`: `.10 + n` in its first client subnet.
fn client_of(cfg: &StackConfig, i: usize, n: u8) -> IpAddr {
    let net = cfg
        .edges
        .get(i)
        .and_then(|e| e.clients.first())
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .unwrap_or(Ipv4Addr::LOCALHOST);
    let o = net.octets();
    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 10 + n))
}

async fn play_all(stack: &Stack, data: &Path, live_seconds: f64) -> Result<usize> {
    let cfg = &stack.config;
    let dns = stack.dns.dns_addr();
    wait_for_steering(stack).await?;

    let vod = format!("/vod/{}/manifest.mpd", cfg.title);
    let live = format!("/live/{}/manifest.mpd", cfg.live_channel);
    let low_latency = format!("/live/{}/manifest.mpd", cfg.low_latency_channel());
    let players = vec![
        Player {
            name: "vod-region1",
            path: vod.clone(),
            bind: client_of(cfg, 0, 0),
            delay: Duration::ZERO,
            shape: None,
            duration_s: None,
        },
        Player {
            name: "vod-region2-throttled",
            path: vod.clone(),
            bind: client_of(cfg, 1, 0),
            delay: Duration::ZERO,
            shape: Some(varying_trace()?),
            duration_s: None,
        },
        Player {
            name: "live-region3",
            path: live,
            bind: client_of(cfg, 2, 0),
            delay: Duration::ZERO,
            shape: None,
            duration_s: Some(live_seconds),
        },
        Player {
            name: "live-ll-region3",
            path: low_latency,
            bind: client_of(cfg, 2, 1),
            delay: Duration::ZERO,
            shape: None,
            duration_s: Some(live_seconds),
        },
        Player {
            name: "vod-region1-second",
            path: vod,
            bind: client_of(cfg, 0, 1),
            delay: Duration::from_secs(4),
            shape: None,
            duration_s: None,
        },
    ];
    println!(
        "== playing: {} players at once, in real time (the buffer drains at wall-clock speed)",
        players.len()
    );
    for p in &players {
        println!(
            "   {:<22} {}{} from {}{}{}",
            p.name,
            stack.content_base(),
            p.path,
            p.bind,
            if p.delay.is_zero() {
                String::new()
            } else {
                format!(", starting {} s later", p.delay.as_secs())
            },
            p.shape
                .as_ref()
                .map(|t| format!(", throttled to [{}]", t.name))
                .unwrap_or_default()
        );
    }

    let mut tasks = Vec::new();
    for p in players {
        let url = url::Url::parse(&format!("{}{}", stack.content_base(), p.path))?;
        let mut pc = PlayConfig::new(url);
        pc.dns = Some(dns);
        pc.bind = Some(p.bind);
        pc.shape = p.shape;
        pc.duration_s = p.duration_s;
        pc.ca = stack.config.tls_root().into_iter().collect();
        // A short buffer keeps the players fetching throughout, so the throttle shows.
        pc.session.buffer.max_s = 8.0;
        let name = p.name;
        let delay = p.delay;
        tasks.push((
            name,
            tokio::task::spawn_local(async move {
                tokio::time::sleep(delay).await;
                player::play::play(&pc).await
            }),
        ));
    }

    // Progress while they play.
    let edges = stack.edge_addrs();
    let scraper = crate::stack::Scraper::new(&stack.config)?;
    let ticker = {
        let edges = edges.clone();
        let scraper = scraper.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let mut parts = Vec::new();
                for (name, addr) in &edges {
                    let s = EdgeStats::scrape(&scraper, *addr).await;
                    parts.push(format!("{name} {} req ({} hits)", s.requests, s.hits));
                }
                println!(
                    "   ... {:>3.0} s  {}",
                    t0.elapsed().as_secs_f64(),
                    parts.join(", ")
                );
            }
        })
    };

    let reports_dir = data.join("reports");
    std::fs::create_dir_all(&reports_dir)
        .with_context(|| format!("cannot create {}", reports_dir.display()))?;
    let mut failures = 0;
    let mut results = Vec::new();
    for (name, task) in tasks {
        let result = task.await.context("player task panicked")?;
        results.push((name, result));
    }
    ticker.abort();

    println!("\n== what each player saw");
    for (name, result) in &results {
        match result {
            Ok(report) => {
                if !print_player(name, report) {
                    failures += 1;
                }
                let json = reports_dir.join(format!("{name}.json"));
                std::fs::write(&json, serde_json::to_vec_pretty(report)?)
                    .with_context(|| format!("cannot write {}", json.display()))?;
                let svg = reports_dir.join(format!("{name}.svg"));
                player::plot::write_svg(&report.session, &svg)?;
            }
            Err(e) => {
                failures += 1;
                println!("{name}: FAILED: {e:#}");
            }
        }
    }

    println!("\n== the edges, from their /metrics");
    let mut total_hits = 0.0;
    let mut total_requests = 0.0;
    for (name, addr) in &edges {
        let s = EdgeStats::scrape(&scraper, *addr).await;
        total_hits += s.hits;
        total_requests += s.requests;
        println!(
            "   {name:<8} {:>4} requests, hit ratio {:>5.1}%, origin offload {:>5.1}% of {:.1} MB served",
            s.requests,
            100.0 * s.hit_ratio(),
            100.0 * s.offload(),
            s.bytes / 1e6
        );
    }
    let origin_text = scraper
        .scrape(stack.origin.local_addr())
        .await
        .unwrap_or_default();
    println!(
        "   all edges: hit ratio {:.1}%; the origin answered {} requests",
        if total_requests > 0.0 {
            100.0 * total_hits / total_requests
        } else {
            0.0
        },
        common::metrics::sum(&origin_text, "origin_http_requests_total", &[])
    );
    println!(
        "\nreports: {}/*.json, plots: {}/*.svg",
        reports_dir.display(),
        reports_dir.display()
    );
    Ok(failures)
}

/// Waits until the router steers each region's clients to that region's edge (its health checks
/// need a couple of rounds to see the edges up).
async fn wait_for_steering(stack: &Stack) -> Result<()> {
    let cfg = &stack.config;
    let deadline = Instant::now() + Duration::from_secs(15);
    for (i, (_, edge)) in stack.edge_addrs().iter().enumerate() {
        let dns = player::play::Dns::new(Some(stack.dns.dns_addr()), Some(client_of(cfg, i, 0)))?;
        loop {
            let host = "video.example.test";
            let ok = matches!(dns.resolve(host, edge.port()).await, Ok(r) if r.addrs.contains(&edge.ip()));
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the DNS router did not steer region {} to {edge} within 15 s",
                    i + 1
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Prints one player's story; returns whether it played cleanly.
fn print_player(name: &str, r: &PlayReport) -> bool {
    let s = &r.session.summary;
    let mut edges: Vec<&str> = r
        .session
        .segments
        .iter()
        .filter_map(|x| x.edge.as_deref())
        .collect();
    edges.sort();
    edges.dedup();
    println!("{name}");
    println!(
        "   dns     {} -> {}",
        r.dns_chain.join(" -> "),
        r.addresses.join(", ")
    );
    println!(
        "   edge    {}",
        if edges.is_empty() {
            "-".to_string()
        } else {
            edges.join(", ")
        }
    );
    println!("   rungs   {}", timeline(r));
    println!(
        "   summary {} segments, startup {:.2} s, mean {:.0} kb/s, {} switches, {} stalls ({:.2} s), QoE_lin {:.2}{}",
        s.segments,
        s.startup_delay_s.unwrap_or(f64::NAN),
        s.bitrate_kbps,
        s.switches,
        s.rebuffer_count,
        s.rebuffer_s,
        s.qoe_lin,
        if s.missing_segments > 0 { format!(", {} MISSING", s.missing_segments) } else { String::new() }
    );
    if let (Some(p50), Some(p95)) = (s.live_latency_p50_s, s.live_latency_p95_s) {
        println!(
            "   latency {p50:.2} s behind live (p50), {p95:.2} s (p95){}",
            if r.low_latency.is_some() {
                ", low-latency mode"
            } else {
                ""
            }
        );
    }
    for e in &r.session.errors {
        println!("   error   {e}");
    }
    s.missing_segments == 0 && s.segments > 0
}

/// One character per segment: the rung as a bar height, `!` after a stall, `x` if missing.
fn timeline(r: &PlayReport) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = r
        .session
        .segments
        .iter()
        .map(|x| x.rung)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut line = String::new();
    for seg in &r.session.segments {
        if seg.missing {
            line.push('x');
            continue;
        }
        line.push(BARS[(seg.rung * (BARS.len() - 1) / top).min(BARS.len() - 1)]);
        if seg.rebuffer_s > 0.0 {
            line.push('!');
        }
    }
    let mut rates: Vec<u64> = r
        .session
        .segments
        .iter()
        .map(|x| x.bitrate_kbps as u64)
        .collect();
    rates.sort_unstable();
    rates.dedup();
    let rates: Vec<String> = rates.iter().map(|k| format!("{k}k")).collect();
    format!("{line}  ({})", rates.join(" "))
}

/// An edge's cache figures, read from its `/metrics`.
struct EdgeStats {
    requests: f64,
    hits: f64,
    cache_bytes: f64,
    bytes: f64,
}

impl EdgeStats {
    async fn scrape(scraper: &crate::stack::Scraper, addr: SocketAddr) -> EdgeStats {
        let text = scraper.scrape(addr).await.unwrap_or_default();
        let m = |name: &str, labels: &[(&str, &str)]| common::metrics::sum(&text, name, labels);
        EdgeStats {
            requests: m("edge_requests_total", &[]),
            hits: m("edge_requests_total", &[("cache_status", "hit")]),
            cache_bytes: m("edge_served_bytes_total", &[("source", "cache")]),
            bytes: m("edge_served_bytes_total", &[]),
        }
    }

    fn hit_ratio(&self) -> f64 {
        if self.requests > 0.0 {
            self.hits / self.requests
        } else {
            0.0
        }
    }

    fn offload(&self) -> f64 {
        if self.bytes > 0.0 {
            self.cache_bytes / self.bytes
        } else {
            0.0
        }
    }
}
