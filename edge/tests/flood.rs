//! Cache safety under attack: a cache-busting flood of 100,000 unique query strings against
//! the real origin must keep the edge's stored bytes within capacity, the memory the process
//! allocates within that capacity plus a fixed overhead (and flat once the cache is full), and
//! the popular objects cached; responses carrying Set-Cookie, or answering an Authorization
//! request, are not shared unless the origin says public. A miss flood (one client asking for
//! 2,000 distinct objects that do not exist a second for 20 s) reaches the upstream only as
//! often as the client's miss budget allows while another client is served as usual; misses
//! beyond the upstream fetch slots and their queue get a prompt 503.
//!
//! Memory is measured by a counting global allocator: glibc's per-thread arenas keep freed
//! memory resident and load on the machine moves RSS, while the allocator's count moves by
//! exactly what the process holds, so its bounds can be tight. RSS gets a looser backstop.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::counting::{live_bytes, Counting};
use support::*;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The allocator's count is the whole process's: each test holds this while it runs, so that
/// no other test's allocations land in its figures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Edge cache capacity for the flood.
const CAPACITY: u64 = 8 << 20;
/// Flood requests (each with a unique query string), in phases of equal size; between phases
/// every client is idle, so memory is measured with nothing in flight.
const FLOOD: usize = 100_000;
const PHASES: usize = 5;
/// Unique URLs requested before the baseline is taken (ten per client).
const WARM_UP: usize = 320;
/// One popular request every this many flood requests.
const POPULAR_EVERY: usize = 10;
/// Concurrent clients.
const CONCURRENCY: usize = 32;
/// The whole flood must finish within this.
const TIME_LIMIT: Duration = Duration::from_secs(400);
/// Memory beyond the capacity allowed with nothing in flight: idle connections' buffers, the
/// upstream pool, tokio and hyper state that grew after the warm-up.
const IDLE_OVERHEAD: i64 = 4 << 20;
/// Memory beyond the capacity allowed at any instant: also what 32 requests in flight hold
/// (connection buffers, flights, and the test clients collecting 256 KiB bodies).
const PEAK_OVERHEAD: i64 = 32 << 20;
/// RSS growth allowed after the warm-up: this factor times the capacity plus a fixed amount.
const RSS_FACTOR: i64 = 2;
const RSS_OVERHEAD: i64 = 48 << 20;
/// Growth allowed from the end of the first phase (cache full) to the end of the last: a leak
/// of 13 bytes per unique URL would exceed it.
const FLAT: i64 = 1 << 20;

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

async fn metric_value(addr: std::net::SocketAddr, name: &str) -> f64 {
    let m = send(addr, "GET", "/metrics", &[]).await;
    metric(std::str::from_utf8(&m.body).unwrap(), name)
}

async fn stored_bytes(addr: std::net::SocketAddr) -> f64 {
    metric_value(addr, "edge_stored_bytes").await
}

/// Waits until every fetch has landed: a fetch stores its response just after its clients got
/// the body.
async fn settle(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_value(addr, "edge_inflight_fetches").await > 0.0 {
        assert!(Instant::now() < deadline, "the fetches landed within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts shared by the flood's clients.
#[derive(Default)]
struct Tally {
    popular_hits: AtomicU64,
    popular_total: AtomicU64,
    errors: AtomicU64,
}

/// Requests unique URLs `from..to` from `CONCURRENCY` clients, with a popular object every
/// `POPULAR_EVERY`; returns when all are answered (or the time limit passed).
async fn flood(
    addr: std::net::SocketAddr,
    from: usize,
    to: usize,
    popular: &[String],
    tally: &Arc<Tally>,
    start: Instant,
) {
    let next = Arc::new(AtomicUsize::new(from));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (next, tally, popular) = (next.clone(), tally.clone(), popular.to_vec());
        workers.spawn(async move {
            let c = client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to || start.elapsed() > TIME_LIMIT {
                    break;
                }
                let path = format!("/vod/demo/manifest.mpd?bust={i}");
                let r = send_with(&c, addr, "GET", &path, &[]).await;
                if r.status != 200 {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
                if i % POPULAR_EVERY == 0 {
                    let p = &popular[(i / POPULAR_EVERY) % popular.len()];
                    let r = send_with(&c, addr, "GET", p, &[]).await;
                    tally.popular_total.fetch_add(1, Ordering::Relaxed);
                    if r.status == 200 && r.cache_status().contains("; hit") {
                        tally.popular_hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
}

/// Samples the allocation count every 20 ms, keeping the highest, until stopped.
struct PeakSampler {
    peak: Arc<AtomicI64>,
    sampling: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakSampler {
    fn start(from: i64) -> PeakSampler {
        let peak = Arc::new(AtomicI64::new(from));
        let sampling = Arc::new(AtomicBool::new(true));
        let task = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(live_bytes(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        PeakSampler {
            peak,
            sampling,
            task,
        }
    }

    /// Stops sampling; the highest allocation count seen.
    async fn stop(self) -> i64 {
        self.sampling.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_busting_flood_keeps_memory_bounded_and_popular_objects_hot() {
    let _alone = ONE_AT_A_TIME.lock().await;
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
    let trace = std::env::var_os("FLOOD_TRACE").is_some();
    let start = Instant::now();

    // Warm-up: open every connection and pool and let moka allocate its fixed structures.
    let warm = Arc::new(Tally::default());
    flood(addr, FLOOD, FLOOD + WARM_UP, &popular, &warm, start).await;
    settle(addr).await;
    let stored_before = stored_bytes(addr).await as i64;
    let (live_before, rss_before) = (live_bytes(), rss_bytes());

    // A sampler records the highest allocation count during the flood.
    let sampler = PeakSampler::start(live_before);

    let tally = Arc::new(Tally::default());
    let mut peak_stored = 0u64;
    // Allocated bytes and RSS at the end of each phase.
    let mut live_at = Vec::new();
    let mut rss_at = Vec::new();
    let per_phase = FLOOD / PHASES;
    for phase in 0..PHASES {
        flood(
            addr,
            phase * per_phase,
            (phase + 1) * per_phase,
            &popular,
            &tally,
            start,
        )
        .await;
        settle(addr).await;
        let stored = stored_bytes(addr).await as u64;
        peak_stored = peak_stored.max(stored);
        live_at.push(live_bytes());
        rss_at.push(rss_bytes());
        if trace {
            eprintln!(
                "after {} URLs: stored {stored} B, allocated {:+} KiB, RSS {:+} KiB",
                (phase + 1) * per_phase,
                (live_bytes() - live_before) >> 10,
                (rss_bytes() as i64 - rss_before as i64) >> 10
            );
        }
    }
    let peak_live = sampler.stop().await;
    let elapsed = start.elapsed();

    let growth = live_at[PHASES - 1] - live_before;
    let late_growth = live_at[PHASES - 1] - live_at[0];
    let peak_growth = peak_live - live_before;
    let rss_growth = rss_at[PHASES - 1] as i64 - rss_before as i64;
    let rss_late = rss_at[PHASES - 1] as i64 - rss_at[0] as i64;
    let (hits, total) = (
        tally.popular_hits.load(Ordering::Relaxed),
        tally.popular_total.load(Ordering::Relaxed),
    );
    let errors = tally.errors.load(Ordering::Relaxed) + warm.errors.load(Ordering::Relaxed);
    let ratio = hits as f64 / total.max(1) as f64;
    let mib = |b: i64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "flood: {FLOOD} unique URLs + {total} popular in {elapsed:.1?} (with {WARM_UP} warm-up), \
         errors {errors}; stored peak {peak_stored} B (capacity {CAPACITY}, {:.1} MiB of room \
         after warm-up); allocated after warm-up {:+.1} MiB at the end ({:+.1} MiB over the last {} phases), peak {:+.1} MiB; \
         RSS {} MiB {:+.1} MiB ({:+.1} MiB over the last {} phases); popular hit ratio {:.2}%",
        mib(CAPACITY as i64 - stored_before),
        mib(growth),
        mib(late_growth),
        PHASES - 1,
        mib(peak_growth),
        rss_before >> 20,
        mib(rss_growth),
        mib(rss_late),
        PHASES - 1,
        ratio * 100.0
    );
    assert!(
        start.elapsed() <= TIME_LIMIT,
        "the flood finished within {TIME_LIMIT:?}"
    );
    assert_eq!(errors, 0, "every flood request answered 200");
    // moka applies evictions in maintenance passes; /metrics syncs first, so the figure is
    // the settled size.
    assert!(
        peak_stored <= CAPACITY,
        "stored bytes {peak_stored} exceed capacity"
    );
    // The weight is what an entry holds (tests/weigh.rs), so a full cache adds at most its
    // capacity, less what it already held at the baseline.
    let cache_room = CAPACITY as i64 - stored_before;
    assert!(
        growth <= cache_room + IDLE_OVERHEAD,
        "allocated memory grew by {:.1} MiB for {:.1} MiB of cache room",
        mib(growth),
        mib(cache_room)
    );
    assert!(
        peak_growth <= cache_room + PEAK_OVERHEAD,
        "allocated memory peaked {:.1} MiB above the baseline",
        mib(peak_growth)
    );
    // Once the cache is full, more unique URLs must not cost more memory.
    assert!(
        late_growth.abs() <= FLAT,
        "allocated memory moved by {late_growth} B after the cache filled"
    );
    // RSS as a backstop against what the allocator cannot see (arena fragmentation): measured
    // +15 to +18 MiB, also with both cores busy; a leak of the size this test once allowed
    // (+75 MiB and more) fails it.
    assert!(
        rss_growth <= RSS_FACTOR * CAPACITY as i64 + RSS_OVERHEAD,
        "RSS grew by {:.1} MiB",
        mib(rss_growth)
    );
    assert!(ratio >= 0.90, "popular hit ratio {ratio}");
    edge.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_and_authorization_are_not_shared_unless_public() {
    let _alone = ONE_AT_A_TIME.lock().await;
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

/// How long the miss flood lasts, and its target rate.
const MISS_FLOOD: Duration = Duration::from_secs(20);
const MISS_FLOOD_RATE: u64 = 2_000;
/// Requests the flooder keeps in flight at once.
const MISS_FLOOD_CONCURRENCY: usize = 32;

/// What the player-like client saw.
#[derive(Default)]
struct PlayerTally {
    answers: u64,
    not_ok: Vec<(String, u16)>,
    worst: Duration,
    latencies: Vec<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_flood_from_one_client_reaches_the_upstream_a_bounded_number_of_times() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // The upstream answers the flood's paths as an origin answers live segments that do not
    // exist yet: 404 for a second. The player's objects exist.
    let upstream = Upstream::start(|seen| {
        if seen.path.starts_with("/flood/") {
            Reply::status(404, &[("cache-control", "public, max-age=1")])
        } else {
            let body = vec![7u8; 64 << 10];
            Reply::ok(body, &[("cache-control", "public, max-age=600")])
        }
    })
    .await;
    // Default limits, without the loopback exemption (both clients are on loopback).
    let edge = edge(&upstream.url(), |c| c.rate_limit.exempt = vec![]).await;
    let defaults = edge::limits::RateLimitConfig::default();
    let addr = edge.local_addr();
    let flooder: std::net::IpAddr = "127.0.0.21".parse().unwrap();
    let player: std::net::IpAddr = "127.0.0.22".parse().unwrap();

    // Warm-up: the player's popular object is cached, connections are open.
    let pc = client_from(player);
    assert_eq!(
        send_with(&pc, addr, "GET", "/vod/popular.m4s", &[])
            .await
            .status,
        200
    );
    settle(addr).await;
    let before_upstream = upstream.count();
    let live_before = live_bytes();
    let sampler = PeakSampler::start(live_before);

    // The flood: distinct paths at MISS_FLOOD_RATE a second, each sent at its slot (or as soon
    // as a worker is free), for MISS_FLOOD.
    let start = tokio::time::Instant::now();
    let total = MISS_FLOOD_RATE * MISS_FLOOD.as_secs();
    let next = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let retry_after_ok = Arc::new(AtomicBool::new(true));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..MISS_FLOOD_CONCURRENCY {
        let (next, statuses, retry_after_ok) =
            (next.clone(), statuses.clone(), retry_after_ok.clone());
        let c = client_from(flooder);
        flood.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let at = start + Duration::from_micros(i * 1_000_000 / MISS_FLOOD_RATE);
                if i >= total || start.elapsed() >= MISS_FLOOD {
                    break;
                }
                tokio::time::sleep_until(at).await;
                let r = send_with(&c, addr, "GET", &format!("/flood/{i}.m4s"), &[]).await;
                if r.status == 429 && r.header("retry-after").parse::<u64>().is_err() {
                    retry_after_ok.store(false, Ordering::Relaxed);
                }
                *statuses.lock().unwrap().entry(r.status).or_default() += 1;
            }
        });
    }

    // Meanwhile a player from another address: the cached object four times a second and a new
    // segment (a miss) every second.
    let mut tally = PlayerTally::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut n = 0u64;
    let mut live_mid = None;
    let mut upstream_mid = None;
    while start.elapsed() < MISS_FLOOD {
        tick.tick().await;
        n += 1;
        if live_mid.is_none() && start.elapsed() >= MISS_FLOOD / 2 {
            live_mid = Some(live_bytes());
            upstream_mid = Some(upstream.count());
        }
        let path = if n.is_multiple_of(4) {
            format!("/vod/seg-{n}.m4s")
        } else {
            "/vod/popular.m4s".to_string()
        };
        let t = Instant::now();
        let r = send_with(&pc, addr, "GET", &path, &[]).await;
        let took = t.elapsed();
        tally.answers += 1;
        tally.worst = tally.worst.max(took);
        tally.latencies.push(took);
        if r.status != 200 || r.body.len() != 64 << 10 {
            tally.not_ok.push((path, r.status));
        }
    }
    while let Some(r) = flood.join_next().await {
        r.unwrap();
    }
    let flood_secs = start.elapsed().as_secs_f64();
    let peak_live = sampler.stop().await;
    settle(addr).await;

    let statuses = statuses.lock().unwrap().clone();
    let sent: u64 = statuses.values().sum();
    let refused = statuses.get(&429).copied().unwrap_or(0);
    let seen = upstream.seen();
    let flood_upstream = seen[before_upstream..]
        .iter()
        .filter(|s| s.path.starts_with("/flood/"))
        .count() as f64;
    let late_flood_upstream = seen[upstream_mid.expect("sampled at half time")..]
        .iter()
        .filter(|s| s.path.starts_with("/flood/"))
        .count() as i64;
    let player_upstream = seen[before_upstream..]
        .iter()
        .filter(|s| !s.path.starts_with("/flood/"))
        .count();
    let m = send(addr, "GET", "/metrics", &[]).await;
    let m = String::from_utf8_lossy(&m.body).into_owned();
    let limited_requests = metric(&m, r#"edge_rate_limited_total{limit="requests"}"#);
    let limited_misses = metric(&m, r#"edge_rate_limited_total{limit="misses"}"#);
    let peak_growth = peak_live - live_before;
    let end_growth = live_bytes() - live_before;
    let late_growth = live_bytes() - live_mid.expect("sampled at half time");
    tally.latencies.sort();
    let p50 = tally.latencies[tally.latencies.len() / 2];
    eprintln!(
        "miss flood: {sent} requests in {flood_secs:.1} s ({:.0}/s) from one client: {statuses:?}; \
         429s: {limited_requests} by the request limit, {limited_misses} by the miss limit; \
         {flood_upstream} reached the upstream (bound {} + {}/s x {flood_secs:.1} s); \
         player: {} answers, p50 {:.1} ms, worst {:.1} ms, {player_upstream} upstream; \
         allocated {:+.1} MiB at the end ({:+.1} MiB over the second half), peak {:+.1} MiB",
        sent as f64 / flood_secs,
        defaults.miss_burst,
        defaults.misses_per_sec,
        tally.answers,
        p50.as_secs_f64() * 1e3,
        tally.worst.as_secs_f64() * 1e3,
        end_growth as f64 / (1 << 20) as f64,
        late_growth as f64 / (1 << 20) as f64,
        peak_growth as f64 / (1 << 20) as f64,
    );
    assert!(
        sent as f64 >= 0.5 * (MISS_FLOOD_RATE as f64) * MISS_FLOOD.as_secs_f64(),
        "the flood reached only {sent} requests"
    );
    assert!(
        flood_secs < MISS_FLOOD.as_secs_f64() + 10.0,
        "{flood_secs} s"
    );
    // The miss budget alone bounds what reaches the upstream: its burst plus its rate over the
    // flood's time (the request limit alone would let 100 a second through).
    let bound = defaults.miss_burst + defaults.misses_per_sec * flood_secs;
    assert!(flood_upstream <= bound, "{flood_upstream} > {bound}");
    assert!(
        flood_upstream >= 0.5 * bound,
        "the budget was used: {flood_upstream}"
    );
    assert!(refused > 0 && limited_requests > 0.0 && limited_misses > 0.0);
    assert_eq!(
        refused as f64,
        limited_requests + limited_misses,
        "{statuses:?}"
    );
    assert!(
        retry_after_ok.load(Ordering::Relaxed),
        "a 429 without Retry-After"
    );
    // Everything the flood did not refuse is the origin's 404.
    assert_eq!(
        sent,
        refused + statuses.get(&404).copied().unwrap_or(0),
        "{statuses:?}"
    );
    // The other client was served throughout, promptly.
    assert!(tally.answers >= 60, "{} answers", tally.answers);
    assert!(
        tally.not_ok.is_empty(),
        "player answers: {:?}",
        tally.not_ok
    );
    assert!(
        tally.worst < Duration::from_secs(1),
        "worst {:?}",
        tally.worst
    );
    assert_eq!(
        player_upstream,
        (tally.answers / 4) as usize,
        "the player's misses"
    );
    // Memory: the flood's refused requests keep nothing. What stays is the player's stored
    // segments (64 KiB each), for each flood request that reached the upstream its stored 404
    // (kept for its stale-if-error window) and its entry in the test upstream's log (8 KiB
    // allowed for both), two clients' buckets. A few hundred bytes kept per refused request
    // (20,000 of them over the flood's second half) would fail the bound.
    let player_bytes = (player_upstream as i64) << 16;
    let reached = |n: i64| n * (8 << 10);
    assert!(
        end_growth <= player_bytes + reached(flood_upstream as i64) + (4 << 20),
        "allocated {end_growth} B more after the flood"
    );
    assert!(
        late_growth <= player_bytes / 2 + reached(late_flood_upstream) + (512 << 10),
        "allocated {late_growth} B more over the flood's second half \
         ({late_flood_upstream} reached the upstream)"
    );
    assert!(
        peak_growth <= 32 << 20,
        "allocated up to {peak_growth} B more during it"
    );
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_beyond_the_upstream_slots_and_queue_get_a_prompt_503_and_gauges_return_to_0() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let upstream = Upstream::start(|seen| Reply {
        head_delay: if seen.path.starts_with("/slow/") {
            Duration::from_millis(1000)
        } else {
            Duration::ZERO
        },
        ..Reply::ok(
            format!("body of {}", seen.path),
            &[("cache-control", "max-age=60")],
        )
    })
    .await;
    const SLOTS: usize = 4;
    const QUEUE: usize = 4;
    const CLIENTS: usize = 24;
    let edge = edge(&upstream.url(), |c| {
        c.max_upstream_fetches = SLOTS;
        c.upstream_queue = QUEUE;
        c.upstream_queue_wait_secs = 5.0;
    })
    .await;
    let addr = edge.local_addr();

    // CLIENTS distinct misses at once: SLOTS fetch, QUEUE wait for a slot, the rest are refused
    // at once. Meanwhile the gauges show the slots and the line full.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        tasks.spawn(async move {
            let t = Instant::now();
            let r = send(addr, "GET", &format!("/slow/{i}"), &[]).await;
            (r, t.elapsed())
        });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let (inflight, queued) = loop {
        let m = send(addr, "GET", "/metrics", &[]).await;
        let m = String::from_utf8_lossy(&m.body).into_owned();
        let g = (
            metric(&m, "edge_upstream_fetches_inflight"),
            metric(&m, "edge_upstream_queue_depth"),
        );
        if g == (SLOTS as f64, QUEUE as f64) || Instant::now() > deadline {
            break g;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut served = Vec::new();
    let mut refused = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (r, took) = r.unwrap();
        match r.status {
            200 => served.push(took),
            503 => {
                assert_eq!(r.header("retry-after"), "1", "{:?}", r.headers);
                assert_eq!(r.header("cache-control"), "no-store");
                refused.push(took);
            }
            other => panic!("unexpected {other}: {:?}", r.headers),
        }
    }
    let all = started.elapsed();
    settle(addr).await;
    let m = send(addr, "GET", "/metrics", &[]).await;
    let m = String::from_utf8_lossy(&m.body).into_owned();
    let slowest_refusal = refused.iter().max().copied().unwrap_or_default();
    eprintln!(
        "upstream cap {SLOTS} + queue {QUEUE}, {CLIENTS} concurrent misses on a 1 s origin: \
         gauges at the peak {inflight} in flight, {queued} waiting; {} served (slowest {:.2} s), \
         {} refused 503 (slowest {:.0} ms); all answered in {:.2} s",
        served.len(),
        served
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_secs_f64(),
        refused.len(),
        slowest_refusal.as_secs_f64() * 1e3,
        all.as_secs_f64()
    );
    assert_eq!((inflight, queued), (SLOTS as f64, QUEUE as f64));
    assert_eq!(served.len(), SLOTS + QUEUE);
    assert_eq!(refused.len(), CLIENTS - SLOTS - QUEUE);
    assert!(
        slowest_refusal < Duration::from_millis(500),
        "{slowest_refusal:?}"
    );
    assert!(all < Duration::from_secs(4), "{all:?}");
    assert_eq!(
        upstream.count(),
        SLOTS + QUEUE,
        "refused misses never reach the upstream"
    );
    assert_eq!(metric(&m, "edge_upstream_fetches_inflight"), 0.0);
    assert_eq!(metric(&m, "edge_upstream_queue_depth"), 0.0);
    assert_eq!(
        metric(&m, r#"edge_upstream_rejected_total{reason="queue_full"}"#),
        (CLIENTS - SLOTS - QUEUE) as f64
    );

    // Coalesced requests share one fetch and one slot: CLIENTS requests for one slow object,
    // all served, one upstream request, and the gauge never above 1.
    let before = upstream.count();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        tasks.spawn(async move { send(addr, "GET", "/slow/shared", &[]).await.status });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = send(addr, "GET", "/metrics", &[]).await;
    let during = metric(
        &String::from_utf8_lossy(&m.body),
        "edge_upstream_fetches_inflight",
    );
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap(), 200);
    }
    assert_eq!(during, 1.0);
    assert_eq!(upstream.count() - before, 1);
    edge.shutdown().await;

    // A request that waits in line longer than the queue wait gets its 503 after that wait.
    let edge = edge_with_wait(&upstream.url()).await;
    let addr = edge.local_addr();
    let first = tokio::spawn(async move { send(addr, "GET", "/slow/first", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let r = send(addr, "GET", "/slow/second", &[]).await;
    let waited = t.elapsed();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), "1");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(900),
        "{waited:?}"
    );
    assert_eq!(first.await.unwrap().status, 200);
    settle(addr).await;
    let m = send(addr, "GET", "/metrics", &[]).await;
    let m = String::from_utf8_lossy(&m.body).into_owned();
    assert_eq!(
        metric(&m, r#"edge_upstream_rejected_total{reason="timeout"}"#),
        1.0
    );
    assert_eq!(metric(&m, "edge_upstream_fetches_inflight"), 0.0);
    assert_eq!(metric(&m, "edge_upstream_queue_depth"), 0.0);
    edge.shutdown().await;
}

/// An edge with one upstream slot, one place in line and a 0.3 s wait.
async fn edge_with_wait(upstream: &str) -> edge::Edge {
    edge(upstream, |c| {
        c.max_upstream_fetches = 1;
        c.upstream_queue = 1;
        c.upstream_queue_wait_secs = 0.3;
    })
    .await
}
