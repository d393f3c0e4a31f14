//! Cache safety under attack: a cache-busting flood of 100,000 unique query strings against
//! the real origin must keep the edge's stored bytes within capacity, its memory bounded and
//! the popular objects cached; responses carrying Set-Cookie, or answering an Authorization
//! request, are not shared unless the origin says public.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// Edge cache capacity for the flood.
const CAPACITY: u64 = 8 << 20;
/// Flood requests (each with a unique query string).
const FLOOD: usize = 100_000;
/// One popular request every this many flood requests.
const POPULAR_EVERY: usize = 10;
/// Concurrent clients.
const CONCURRENCY: usize = 32;
/// The whole flood must finish within this.
const TIME_LIMIT: Duration = Duration::from_secs(400);

/// A content root with an MPD and four 256 KiB segments, removed when dropped.
struct Root(PathBuf);

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn content() -> Root {
    let root = std::env::temp_dir().join(format!("edge-flood-{}", std::process::id()));
    let seg_dir = root.join("vod/demo/v0");
    std::fs::create_dir_all(&seg_dir).unwrap();
    std::fs::write(
        root.join("vod/demo/manifest.mpd"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011"><Period/></MPD>
"#,
    )
    .unwrap();
    for i in 1..=4u32 {
        let body: Vec<u8> = (0..256u32 << 10)
            .map(|b| (b.wrapping_mul(i) % 251) as u8)
            .collect();
        std::fs::write(seg_dir.join(format!("{i}.m4s")), body).unwrap();
    }
    Root(root)
}

/// This process's resident set size in bytes (the edge and origin run in it).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

async fn stored_bytes(addr: std::net::SocketAddr) -> f64 {
    let m = send(addr, "GET", "/metrics", &[]).await;
    metric(std::str::from_utf8(&m.body).unwrap(), "edge_stored_bytes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_busting_flood_keeps_memory_bounded_and_popular_objects_hot() {
    let root = content();
    let mut oc = origin::Config {
        root: root.0.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        ..origin::Config::default()
    };
    oc.cache_control.mpd = "public, max-age=600".to_string();
    let origin = origin::spawn(oc).await.unwrap();
    let edge = edge(&origin.url(), |c| {
        c.cache_size = edge::config::ByteSize(CAPACITY);
    })
    .await;
    let addr = edge.local_addr();

    let popular: Vec<String> = (1..=4).map(|i| format!("/vod/demo/v0/{i}.m4s")).collect();
    for p in &popular {
        assert_eq!(send(addr, "GET", p, &[]).await.status, 200);
    }
    let rss_before = rss_bytes();

    let next = Arc::new(AtomicUsize::new(0));
    let popular_hits = Arc::new(AtomicU64::new(0));
    let popular_total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let peak_stored = Arc::new(AtomicU64::new(0));
    // RSS once the cache is full (a fifth of the way in) and at the end: the difference shows
    // whether memory grows with the number of unique URLs or settles.
    let rss_settled = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (next, hits, total, errors, peak) = (
            next.clone(),
            popular_hits.clone(),
            popular_total.clone(),
            errors.clone(),
            peak_stored.clone(),
        );
        let settled = rss_settled.clone();
        let popular = popular.clone();
        workers.spawn(async move {
            let c = client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= FLOOD || start.elapsed() > TIME_LIMIT {
                    break;
                }
                let r = send_with(
                    &c,
                    addr,
                    "GET",
                    &format!("/vod/demo/manifest.mpd?bust={i}"),
                    &[],
                )
                .await;
                if r.status != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                if i % POPULAR_EVERY == 0 {
                    let p = &popular[(i / POPULAR_EVERY) % popular.len()];
                    let r = send_with(&c, addr, "GET", p, &[]).await;
                    total.fetch_add(1, Ordering::Relaxed);
                    if r.status == 200 && r.cache_status().contains("; hit") {
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if i % 5_000 == 0 {
                    let s = stored_bytes(addr).await as u64;
                    peak.fetch_max(s, Ordering::Relaxed);
                    if i == FLOOD / 5 {
                        settled.store(rss_bytes(), Ordering::Relaxed);
                    }
                    if std::env::var_os("FLOOD_TRACE").is_some() {
                        eprintln!("at {i}: stored {s} RSS {} MiB", rss_bytes() >> 20);
                    }
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let elapsed = start.elapsed();
    let done = next.load(Ordering::Relaxed).min(FLOOD);
    let final_stored = stored_bytes(addr).await as u64;
    let peak = peak_stored.load(Ordering::Relaxed).max(final_stored);
    let rss_after = rss_bytes();
    let growth = rss_after.saturating_sub(rss_before);
    let late_growth = rss_after.saturating_sub(rss_settled.load(Ordering::Relaxed));
    let (hits, total) = (
        popular_hits.load(Ordering::Relaxed),
        popular_total.load(Ordering::Relaxed),
    );
    let ratio = hits as f64 / total.max(1) as f64;
    eprintln!(
        "flood: {done} unique URLs + {total} popular in {elapsed:.1?} ({:.0} req/s), errors {}; \
         stored peak {peak} final {final_stored} (capacity {CAPACITY}); RSS {} -> {} MiB \
         (+{} MiB, +{} MiB over the last 80%); popular hit ratio {:.2}%",
        (done as u64 + total) as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        rss_before >> 20,
        rss_after >> 20,
        growth >> 20,
        late_growth >> 20,
        ratio * 100.0
    );
    assert_eq!(done, FLOOD, "the flood finished within {TIME_LIMIT:?}");
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "every flood request answered 200"
    );
    // moka applies evictions in maintenance passes; /metrics syncs first, so the figure is
    // the settled size. Allow one large object of slack for an in-progress insert.
    assert!(
        peak <= CAPACITY + (256 << 10) + 4096,
        "stored bytes {peak} exceed capacity"
    );
    // Once the cache is full, more unique URLs must not cost more memory.
    assert!(
        late_growth < 16 << 20,
        "RSS grew by {late_growth} bytes after the cache filled"
    );
    // Total growth: measured 75-82 MiB for 8 MiB of weighted entries (small entries cost
    // several times their weight in real memory), bounded here at capacity + 128 MiB.
    assert!(
        growth < CAPACITY + (128 << 20),
        "RSS grew by {growth} bytes"
    );
    assert!(ratio >= 0.90, "popular hit ratio {ratio}");
    edge.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_and_authorization_are_not_shared_unless_public() {
    let upstream = Upstream::start(|seen| {
        let cc = if seen.path.contains("public") {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        if seen.path.starts_with("/cookie") {
            Reply::ok(
                format!("for {}", seen.path),
                &[("cache-control", cc), ("set-cookie", "sid=alice")],
            )
        } else {
            let who = seen
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody")
                .to_string();
            Reply::ok(format!("secret of {who}"), &[("cache-control", cc)])
        }
    })
    .await;
    let edge = edge(&upstream.url(), |_| {}).await;
    let addr = edge.local_addr();

    // Set-Cookie: every request goes upstream; the cookie is never handed to another client.
    for path in ["/cookie", "/cookie-public"] {
        let before = upstream.count();
        for _ in 0..3 {
            let r = send(addr, "GET", path, &[]).await;
            assert_eq!(r.status, 200);
            assert!(
                !r.cache_status().contains("; hit"),
                "{path}: {}",
                r.cache_status()
            );
        }
        assert_eq!(
            upstream.count() - before,
            3,
            "{path}: a Set-Cookie response is never stored"
        );
    }

    // Authorization: each user's answer comes from upstream, never another user's, with or
    // without public (the edge bypasses its cache for any request carrying Authorization,
    // which is stricter than RFC 9111 section 3.5 allows).
    for path in ["/private", "/public"] {
        let before = upstream.count();
        let a = send(addr, "GET", path, &[("authorization", "Bearer alice")]).await;
        assert_eq!(&a.body[..], b"secret of Bearer alice");
        let b = send(addr, "GET", path, &[("authorization", "Bearer bob")]).await;
        assert_eq!(
            &b.body[..],
            b"secret of Bearer bob",
            "{path}: bob never gets alice's"
        );
        let anon = send(addr, "GET", path, &[]).await;
        assert_eq!(
            &anon.body[..],
            b"secret of nobody",
            "{path}: no one gets alice's"
        );
        assert!(!b.cache_status().contains("; hit") && !anon.cache_status().contains("; hit"));
        assert_eq!(
            upstream.count() - before,
            3,
            "{path}: every request went upstream"
        );
    }
    edge.shutdown().await;
}
