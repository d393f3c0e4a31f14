//! Miss-storm client for `bench/bench.sh`: opens N keep-alive connections, then sends N
//! concurrent GETs for one URL at the same instant and reports latencies (to the response head
//! and to the full body) and, given the origin's /metrics URL, how many segment requests reached
//! the origin.
//!
//! `cargo run --release -p edge --example storm -- URL N [ORIGIN_METRICS_URL] [WARM_URL]`

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn origin_segment_requests(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("origin_http_requests_total{") && l.contains("kind=\"segment\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: storm URL N [ORIGIN_METRICS_URL] [WARM_URL]");
    }
    let url: hyper::Uri = args[1].parse().context("URL")?;
    let n: usize = args[2].parse().context("N")?;
    let metrics = args.get(3).filter(|s| !s.is_empty()).cloned();
    let warm: Option<hyper::Uri> = match args.get(4) {
        Some(w) => Some(w.parse().context("WARM_URL")?),
        None => None,
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(n)
        .build_http::<Empty<Bytes>>();

    // Open N connections first, so the storm measures the cache, not TCP handshakes.
    if let Some(w) = warm {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (c, w) = (client.clone(), w.clone());
            tasks.push(tokio::spawn(async move {
                let r = c.get(w).await?;
                r.into_body().collect().await?;
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    let before = match &metrics {
        Some(m) => origin_segment_requests(&String::from_utf8_lossy(&common::http::get(m).await?)),
        None => 0,
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, u) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let resp = tokio::time::timeout(Duration::from_secs(30), c.get(u)).await??;
            let head = start.elapsed();
            let status = resp.status().as_u16();
            let len = resp.into_body().collect().await?.to_bytes().len();
            Ok::<_, anyhow::Error>((status, len, head, start.elapsed()))
        }));
    }
    let (mut heads, mut bodies) = (Vec::new(), Vec::new());
    let mut ok = 0;
    for t in tasks {
        let (status, _len, head, full) = t.await??;
        if status == 200 {
            ok += 1;
        }
        heads.push(head.as_secs_f64() * 1000.0);
        bodies.push(full.as_secs_f64() * 1000.0);
    }
    heads.sort_by(|a, b| a.total_cmp(b));
    bodies.sort_by(|a, b| a.total_cmp(b));
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    let after = match &metrics {
        Some(m) => origin_segment_requests(&String::from_utf8_lossy(&common::http::get(m).await?)),
        None => 0,
    };
    println!(
        "{{\"n\":{n},\"ok\":{ok},\"origin_fetches\":{},\"head_p50_ms\":{:.1},\"head_p99_ms\":{:.1},\"head_max_ms\":{:.1},\"body_p50_ms\":{:.1},\"body_p99_ms\":{:.1}}}",
        after.saturating_sub(before),
        pct(&heads, 0.5),
        pct(&heads, 0.99),
        heads[heads.len() - 1],
        pct(&bodies, 0.5),
        pct(&bodies, 0.99),
    );
    Ok(())
}
