//! Faults injected into a running stack over real sockets, with real players: an edge stopped
//! during playback, the DNS router restarted during playback, every edge down (the router's
//! origin fallback), and an origin that is stopped, answers 500 or is slower than the edges'
//! first-byte timeout (through the fault-injecting interposer between the edges and the origin),
//! and a client flooding an edge with live segments that do not exist yet while a live player
//! plays through it.
//! Each test prints what it measured (`cargo test -p cdn-tests --test faults -- --nocapture`).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use cdn_tests::{fetch, Fault, Fetched, Interposer, TestStack};
use player::play::{Dns, PlayConfig, PlayReport};

const HOST: &str = "video.example.test";
const MPD: &str = "/vod/demo/manifest.mpd";

/// A player of the test title from `bind`, resolving through `dns`, that keeps only a few
/// seconds of buffer so it is still fetching when the fault strikes.
fn player_config(t: &TestStack, bind: IpAddr) -> PlayConfig {
    let url = mpd::Url::parse(&t.content_url(MPD)).expect("content URL");
    let mut pc = PlayConfig::new(url);
    pc.dns = Some(t.stack.dns.dns_addr());
    pc.bind = Some(bind);
    pc.timeout = Duration::from_secs(2);
    pc.session.buffer.max_s = 4.0;
    pc
}

/// The addresses the router gives `bind` for the content name right now (empty on failure).
async fn resolve(dns: SocketAddr, bind: IpAddr, port: u16) -> Vec<IpAddr> {
    match Dns::new(Some(dns), Some(bind)) {
        Ok(d) => d
            .resolve(HOST, port)
            .await
            .map(|r| r.addrs)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Waits (bounded) until the router answers `bind` with exactly `want`.
async fn wait_for_answer(dns: SocketAddr, bind: IpAddr, port: u16, want: IpAddr) -> Duration {
    let t0 = Instant::now();
    loop {
        if resolve(dns, bind, port).await == vec![want] {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the router never answered {bind} with {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Segments of a report that came from `ip`.
fn segments_from(report: &PlayReport, ip: IpAddr) -> usize {
    let prefix = format!("{ip}:");
    report
        .session
        .segments
        .iter()
        .filter(|s| s.edge.as_deref().is_some_and(|e| e.starts_with(&prefix)))
        .count()
}

/// The player got segments from `stopped` and then moved off it: the last segment came from
/// elsewhere.
fn assert_moved_off(report: &PlayReport, stopped: IpAddr) {
    assert!(segments_from(report, stopped) >= 1, "{}", report.table());
    let last = report.session.segments.last().expect("segments");
    assert!(
        !last
            .edge
            .as_deref()
            .unwrap_or("")
            .starts_with(&format!("{stopped}:")),
        "the last segment still came from the stopped edge\n{}",
        report.table()
    );
}

fn assert_complete(report: &PlayReport, what: &str) {
    let s = &report.session.summary;
    assert!(
        s.segments >= 6 && s.missing_segments == 0,
        "{what}: {} segments, {} missing; errors {:?}\n{}",
        s.segments,
        s.missing_segments,
        report.session.errors,
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_stopped_mid_playback_router_drops_it_and_player_moves_on() {
    let mut t = TestStack::start().await.expect("stack starts");
    let dns = t.stack.dns.dns_addr();
    let port = t.stack.config.edges[0].listen.port();
    let client = t.client_in_region(1);
    let edge1 = t.edge_ip(1);
    wait_for_answer(dns, client, port, edge1).await;

    let pc = player_config(&t, client);
    let local = tokio::task::LocalSet::new();
    let player = local.spawn_local(async move { player::play::play(&pc).await });
    let (report, drop_after) = local
        .run_until(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let stopped = Instant::now();
            t.stack.stop_edge(0).await;
            // The router stops returning the edge within its health window.
            let deadline = stopped + Duration::from_secs(5);
            loop {
                let addrs = resolve(dns, client, port).await;
                if !addrs.is_empty() && !addrs.contains(&edge1) {
                    break;
                }
                assert!(Instant::now() < deadline, "router still answers {addrs:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let drop_after = stopped.elapsed();
            (player.await.expect("player task"), drop_after)
        })
        .await;
    let report = report.expect("playback");
    let s = &report.session.summary;
    println!(
        "edge stopped: router dropped it after {:.0} ms (interval {} ms x fall 2); player: {} failovers, {} resolutions, {} rebuffers, {:.3} s stalled, longest segment download {:.3} s",
        drop_after.as_secs_f64() * 1e3,
        t.stack.config.health_interval_ms,
        report.failovers,
        report.resolutions,
        s.rebuffer_count,
        s.rebuffer_s,
        report
            .session
            .segments
            .iter()
            .map(|r| r.download_s)
            .fold(0.0, f64::max)
    );
    // Health window: interval x fall, plus one check timeout and a scheduling margin.
    let interval = t.stack.config.health_interval_ms as f64 / 1e3;
    assert!(
        drop_after.as_secs_f64() < interval * 2.0 + interval + 1.0,
        "router took {drop_after:?} to drop the stopped edge"
    );
    assert_complete(&report, "edge stopped");
    assert_moved_off(&report, edge1);
    assert_eq!(
        s.rebuffer_count,
        0,
        "the buffer ({} s) outlasts the failover, yet playback stalled {:.3} s\n{}",
        4.0,
        s.rebuffer_s,
        report.table()
    );
    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_router_restarted_mid_playback_players_keep_playing_and_re_resolve() {
    let t = TestStack::start().await.expect("stack starts");
    let dns = t.stack.dns.dns_addr();
    let port = t.stack.config.edges[0].listen.port();
    let client = t.client_in_region(2);
    let edge2 = t.edge_ip(2);
    wait_for_answer(dns, client, port, edge2).await;

    let pc = player_config(&t, client);
    let TestStack {
        stack,
        content: _content,
        ..
    } = t;
    let local = tokio::task::LocalSet::new();
    let player = local.spawn_local(async move { player::play::play(&pc).await });
    let (report, stack, answered) = local
        .run_until(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            // Down for 3 s: the player lives on the address it resolved.
            let mut stack = stack
                .restart_dns(Duration::from_secs(3))
                .await
                .expect("router restarts");
            assert_eq!(stack.dns.dns_addr(), dns, "restarted on another address");
            // The new router answers at once.
            let answered = resolve(dns, client, port).await;
            // Now the player's edge goes away: it must re-resolve through the new router.
            stack.stop_edge(1).await;
            (player.await.expect("player task"), stack, answered)
        })
        .await;
    let report = report.expect("playback");
    let text = cdn_tests::scrape(stack.dns.metrics_addr())
        .await
        .expect("router metrics");
    let queries = cdn_tests::metric_sum(&text, "dns_queries_total", &[]);
    println!(
        "router restart: new router answered {answered:?}; player: {} resolutions, {} failovers, {} rebuffers, {:.3} s stalled; new router served {queries} queries",
        report.resolutions,
        report.failovers,
        report.session.summary.rebuffer_count,
        report.session.summary.rebuffer_s
    );
    assert_eq!(answered, vec![edge2], "the restarted router's answer");
    assert_complete(&report, "router restart");
    assert!(
        report.resolutions >= 2,
        "the player never re-resolved\n{}",
        report.table()
    );
    assert!(queries >= 2.0, "the new router saw {queries} queries");
    assert_moved_off(&report, edge2);
    stack.shutdown().await;
}

/// Runs `dig` and returns its answer section as (type, data) pairs.
fn dig_answers(dns: SocketAddr, bind: IpAddr, name: &str) -> Vec<(String, String)> {
    let dig = common::tools::require("dig");
    let out = Command::new(dig)
        .args([
            format!("@{}", dns.ip()),
            "-p".into(),
            dns.port().to_string(),
            "-b".into(),
            bind.to_string(),
            name.into(),
            "A".into(),
            "+noall".into(),
            "+answer".into(),
            "+tries=1".into(),
            "+time=2".into(),
        ])
        .output()
        .expect("running dig");
    assert!(out.status.success(), "dig failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| (f[3].to_string(), f[4].to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_edge_down_router_falls_back_to_the_origin_and_playback_continues() {
    // The origin listens on the edges' port, so a player following the fallback address finds it.
    let mut t = TestStack::start_with(|c| {
        let port = c.edges[0].listen.port();
        c.origin = SocketAddr::new(c.origin.ip(), port);
    })
    .await
    .expect("stack starts");
    let dns = t.stack.dns.dns_addr();
    let origin = t.stack.origin.local_addr();
    let client = t.client_in_region(3);
    wait_for_answer(dns, client, origin.port(), t.edge_ip(3)).await;

    let stopped = Instant::now();
    for i in 0..3 {
        t.stack.stop_edge(i).await;
    }
    let want = vec![
        ("CNAME".to_string(), "video.cdn.example.test.".to_string()),
        ("A".to_string(), origin.ip().to_string()),
    ];
    let answers = tokio::task::block_in_place(|| loop {
        let a = dig_answers(dns, client, HOST);
        if a == want || stopped.elapsed() > Duration::from_secs(10) {
            return a;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    let fallback_after = stopped.elapsed();
    assert_eq!(answers, want, "no fallback to the origin");
    // The CDN name alone falls back too, from every region.
    for region in 1..=3 {
        let a = tokio::task::block_in_place(|| {
            dig_answers(dns, t.client_in_region(region), "video.cdn.example.test")
        });
        assert_eq!(
            a,
            vec![("A".to_string(), origin.ip().to_string())],
            "region {region}"
        );
    }

    let pc = player_config(&t, client);
    let report = player::play::play(&pc)
        .await
        .expect("playback via fallback");
    println!(
        "every edge down: fallback answer after {:.0} ms; player via {:?}: {} segments, {} rebuffers",
        fallback_after.as_secs_f64() * 1e3,
        report.addresses,
        report.session.summary.segments,
        report.session.summary.rebuffer_count
    );
    assert_complete(&report, "fallback playback");
    assert_eq!(
        segments_from(&report, origin.ip()),
        report.session.segments.len(),
        "{}",
        report.table()
    );
    t.stack.shutdown().await;
}

/// How long the failing origin makes the edges wait: past their 10 s first-byte timeout.
const SLOW: Duration = Duration::from_secs(15);

/// GET through an edge, timed.
async fn timed(edge: SocketAddr, path: &str) -> (Fetched, Duration) {
    let t0 = Instant::now();
    let r = fetch(edge, HOST, path, &[]).await.expect("edge answers");
    (r, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_down_500_and_slow_stale_served_misses_fail_fast_edge_recovers() {
    let mut proxy = Interposer::start(IpAddr::from([127, 0, 0, 1]))
        .await
        .expect("interposer starts");
    let proxy_url = proxy.url();
    // MPDs go stale after a second, so only stale-if-error can serve them while the origin fails.
    let t = TestStack::start_with(|c| {
        c.edge_upstream = Some(proxy_url);
        c.mpd_cache_control = "public, max-age=1".into();
    })
    .await
    .expect("stack starts");
    proxy.forward_to(t.stack.origin.local_addr());
    let edge = t.stack.edge_addrs()[0].1;

    let seg = |n: u32| format!("/vod/demo/180p/seg-{n:05}.m4s");
    let (warm, _) = timed(edge, MPD).await;
    assert_eq!(warm.status, 200);
    assert_eq!(timed(edge, &seg(1)).await.0.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Origin stopped (nothing listens): stale MPD served, cached segment a hit, a miss is a
    // fast 502.
    proxy.stop();
    let (m, m_t) = timed(edge, MPD).await;
    assert_eq!(m.status, 200, "stale MPD while the origin is down");
    assert!(
        m.header("cache-status").contains("stale-if-error"),
        "{:?}",
        m.headers
    );
    assert_eq!(m.body, warm.body);
    let (hit, _) = timed(edge, &seg(1)).await;
    assert_eq!(hit.status, 200);
    assert!(
        hit.header("cache-status").contains("hit"),
        "{:?}",
        hit.headers
    );
    let (miss, miss_down_t) = timed(edge, &seg(2)).await;
    assert_eq!(miss.status, 502, "{:?}", miss.headers);
    assert!(
        miss_down_t < Duration::from_secs(3),
        "miss took {miss_down_t:?}"
    );
    println!(
        "origin stopped: stale MPD in {:.0} ms, miss 502 in {:.0} ms",
        m_t.as_secs_f64() * 1e3,
        miss_down_t.as_secs_f64() * 1e3
    );

    // Origin answering 500: stale served, the miss fails at once with a 5xx.
    proxy.resume().await.expect("interposer listens again");
    proxy.set_fault(Fault::Error500);
    let (m, m_t) = timed(edge, MPD).await;
    assert_eq!(m.status, 200, "stale MPD while the origin says 500");
    assert!(
        m.header("cache-status").contains("stale-if-error"),
        "{:?}",
        m.headers
    );
    let (miss, miss_500_t) = timed(edge, &seg(2)).await;
    assert!(
        (500..600).contains(&miss.status),
        "miss during 500s: {}",
        miss.status
    );
    assert!(
        miss_500_t < Duration::from_secs(2),
        "miss took {miss_500_t:?}"
    );
    println!(
        "origin 500: stale MPD in {:.0} ms, miss {} in {:.0} ms",
        m_t.as_secs_f64() * 1e3,
        miss.status,
        miss_500_t.as_secs_f64() * 1e3
    );

    // Origin slower than the edge's first-byte timeout (10 s in the stack): the miss gets a 504
    // bounded by that timeout, the stale MPD is served once its revalidation has taken the
    // edge's `stale_if_slow_secs` (2 s), and a cached segment is not delayed.
    proxy.set_fault(Fault::Delay(SLOW));
    let slow_mpd = tokio::spawn(timed(edge, MPD));
    let seg3 = seg(3);
    let slow_miss = tokio::spawn(async move { timed(edge, &seg3).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (hit, hit_t) = timed(edge, &seg(1)).await;
    assert_eq!(hit.status, 200);
    assert!(hit_t < Duration::from_millis(500), "hit delayed {hit_t:?}");
    let (m, slow_mpd_t) = slow_mpd.await.unwrap();
    let (miss, slow_miss_t) = slow_miss.await.unwrap();
    println!(
        "origin slow ({} s): stale MPD {} in {:.2} s, miss {} in {:.2} s, cached hit in {:.0} ms",
        SLOW.as_secs(),
        m.status,
        slow_mpd_t.as_secs_f64(),
        miss.status,
        slow_miss_t.as_secs_f64(),
        hit_t.as_secs_f64() * 1e3
    );
    assert_eq!(m.status, 200, "stale MPD while the origin is slow");
    assert!(
        m.header("cache-status").contains("stale-if-error"),
        "{:?}",
        m.headers
    );
    assert_eq!(miss.status, 504, "{:?}", miss.headers);
    assert!(
        slow_miss_t < Duration::from_secs(12),
        "504 after {slow_miss_t:?}"
    );
    assert!(
        slow_mpd_t < Duration::from_secs(4),
        "stale MPD only after {slow_mpd_t:?}"
    );

    // The origin is back: the edge recovers by itself.
    proxy.set_fault(Fault::Pass);
    let (miss, _) = timed(edge, &seg(4)).await;
    assert_eq!(miss.status, 200, "miss after recovery");
    let (again, _) = timed(edge, &seg(2)).await;
    assert_eq!(again.status, 200, "earlier failed miss after recovery");
    let (m, _) = timed(edge, MPD).await;
    assert_eq!(m.status, 200);
    assert!(
        !m.header("cache-status").contains("stale-if-error"),
        "MPD still stale after recovery: {:?}",
        m.headers
    );
    let asked = proxy.counts();
    println!("origin requests through the interposer: {asked:?}");
    proxy.shutdown().await;
    t.stack.shutdown().await;
}

/// Right after an edge dies the router still returns it for up to one health window
/// (interval x fall): the player keeps failing over and re-resolving, with growing pauses,
/// until the router answers with a live edge.
#[tokio::test(flavor = "multi_thread")]
async fn player_starting_right_after_its_edge_died_still_plays() {
    let mut t = TestStack::start().await.expect("stack starts");
    let dns = t.stack.dns.dns_addr();
    let port = t.stack.config.edges[0].listen.port();
    let client = t.client_in_region(1);
    wait_for_answer(dns, client, port, t.edge_ip(1)).await;
    // The router still answers with the dead edge for up to its health window.
    t.stack.stop_edge(0).await;
    let pc = player_config(&t, client);
    let report = player::play::play(&pc).await;
    let report = report.expect("playback starting inside the health window");
    println!(
        "start inside the health window: {} resolutions, {} failovers, startup {:?} s",
        report.resolutions, report.failovers, report.session.summary.startup_delay_s
    );
    assert_complete(&report, "start after edge death");
    assert_eq!(segments_from(&report, t.edge_ip(1)), 0);
    t.stack.shutdown().await;
}

/// Segment numbers the flood asks for: far beyond the live edge (the channel's
/// availabilityStartTime is a fixed date, so today's segment numbers are in the tens of
/// millions; this one is 60,000 years of 2 s segments away).
const UNPUBLISHED: u64 = 1_000_000_000_000;
const FLOOD: Duration = Duration::from_secs(20);
const FLOOD_RATE: u64 = 2_000;

/// The flood's segment number in an origin-side path, if it is one of the flood's.
fn flood_number(path: &str) -> Option<u64> {
    let n: u64 = path
        .rsplit('/')
        .next()?
        .strip_suffix(".m4s")?
        .parse()
        .ok()?;
    (n >= UNPUBLISHED).then_some(n)
}

#[tokio::test(flavor = "multi_thread")]
async fn live_player_plays_through_an_edge_flooded_with_unpublished_segments() {
    let proxy = Interposer::start(IpAddr::from([127, 0, 0, 1]))
        .await
        .expect("interposer starts");
    let proxy_url = proxy.url();
    let upstream = proxy_url.clone();
    let mut t = TestStack::start_with(|c| c.edge_upstream = Some(upstream))
        .await
        .expect("stack starts");
    proxy.forward_to(t.stack.origin.local_addr());
    // Region 1's edge again, on its address, with the default limits and no exemption for
    // loopback, where every client of the test stack is.
    let spec = t.stack.config.edges[0].clone();
    t.stack.stop_edge(0).await;
    let limited = edge::spawn(edge::Config {
        listen: spec.listen,
        upstream: proxy_url,
        name: spec.name.clone(),
        rate_limit: edge::limits::RateLimitConfig {
            exempt: vec![],
            ..Default::default()
        },
        ..edge::Config::default()
    })
    .await
    .expect("the limited edge starts");
    t.stack.edges[0] = Some(limited);
    let edge_addr = spec.listen;
    let dns = t.stack.dns.dns_addr();
    let player_ip = t.client_in_region(1);
    wait_for_answer(dns, player_ip, edge_addr.port(), t.edge_ip(1)).await;
    let IpAddr::V4(v4) = player_ip else {
        unreachable!()
    };
    let flooder = IpAddr::from([127, v4.octets()[1], 1, 11]);

    // The flood: distinct unpublished segments of every rendition, FLOOD_RATE a second.
    let start = tokio::time::Instant::now();
    let total = FLOOD_RATE * FLOOD.as_secs();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::BTreeMap::<u16, u64>::new(),
    ));
    let ended_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (next, statuses, ended_ms) = (next.clone(), statuses.clone(), ended_ms.clone());
        let client = client_from(flooder);
        flood.spawn(async move {
            use std::sync::atomic::Ordering;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || start.elapsed() >= FLOOD {
                    break;
                }
                tokio::time::sleep_until(start + Duration::from_micros(i * 1_000_000 / FLOOD_RATE))
                    .await;
                let rep = ["180p", "240p", "360p"][i as usize % 3];
                let path = format!("/live/demo/{rep}/{}.m4s", UNPUBLISHED + i);
                let status = get_from(&client, edge_addr, &path).await;
                *statuses.lock().unwrap().entry(status).or_default() += 1;
            }
            ended_ms.fetch_max(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        });
    }

    // Meanwhile a live player in the same region plays through that edge.
    let mut pc = player_config(&t, player_ip);
    pc.url = mpd::Url::parse(&t.content_url("/live/demo/manifest.mpd")).expect("live URL");
    pc.duration_s = Some(FLOOD.as_secs_f64() - 2.0);
    let local = tokio::task::LocalSet::new();
    let report = local
        .run_until(async move { player::play::play(&pc).await })
        .await
        .expect("live playback");
    while let Some(r) = flood.join_next().await {
        r.expect("flood worker");
    }
    let flood_secs = ended_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e3;
    let statuses = statuses.lock().unwrap().clone();
    let sent: u64 = statuses.values().sum();
    let counts = proxy.counts();
    let at_origin: u64 = counts
        .iter()
        .filter(|(p, _)| flood_number(p).is_some())
        .map(|(_, n)| n)
        .sum();
    let player_at_origin: u64 = counts
        .iter()
        .filter(|(p, _)| p.starts_with("/live/") && flood_number(p).is_none())
        .map(|(_, n)| n)
        .sum();
    let text = cdn_tests::scrape(edge_addr).await.expect("edge metrics");
    let by =
        |limit: &str| cdn_tests::metric_sum(&text, "edge_rate_limited_total", &[("limit", limit)]);
    let defaults = edge::limits::RateLimitConfig::default();
    let bound = defaults.miss_burst + defaults.misses_per_sec * flood_secs;
    let s = &report.session.summary;
    println!(
        "live flood: {sent} requests for unpublished segments in {flood_secs:.1} s ({:.0}/s): \
         {statuses:?}; 429s by the request limit {}, by the miss limit {}; {at_origin} reached \
         the origin (bound {bound:.0}); live player: {} segments, {} missing, {} rebuffers \
         ({:.3} s), {player_at_origin} of its requests reached the origin",
        sent as f64 / flood_secs,
        by("requests"),
        by("misses"),
        s.segments,
        s.missing_segments,
        s.rebuffer_count,
        s.rebuffer_s,
    );
    assert!(
        sent as f64 >= 0.5 * (FLOOD_RATE * FLOOD.as_secs()) as f64,
        "the flood reached only {sent} requests"
    );
    assert!(
        (at_origin as f64) <= bound,
        "{at_origin} flood requests reached the origin"
    );
    assert!(
        at_origin > 0,
        "the flood never reached the origin: the test proves nothing"
    );
    let refused = statuses.get(&429).copied().unwrap_or(0);
    assert!(refused > 0 && by("misses") > 0.0, "{statuses:?}");
    assert_eq!(
        sent,
        refused + statuses.get(&404).copied().unwrap_or(0),
        "{statuses:?}"
    );
    assert!(report.live, "the live MPD was not played as live");
    assert!(
        s.segments >= 6 && s.missing_segments == 0,
        "{} segments, {} missing; errors {:?}\n{}",
        s.segments,
        s.missing_segments,
        report.session.errors,
        report.table()
    );
    assert_eq!(
        s.rebuffer_count,
        0,
        "playback stalled {:.3} s\n{}",
        s.rebuffer_s,
        report.table()
    );
    assert_eq!(
        segments_from(&report, t.edge_ip(1)),
        report.session.segments.len(),
        "every segment from the flooded edge\n{}",
        report.table()
    );
    proxy.shutdown().await;
    t.stack.shutdown().await;
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// A keep-alive HTTP client whose connections come from `ip`.
fn client_from(ip: IpAddr) -> Client {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(ip));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// GETs `path` of the content name from `edge`; the status (body read), 0 on failure.
async fn get_from(client: &Client, edge: SocketAddr, path: &str) -> u16 {
    use http_body_util::BodyExt;
    let Ok(req) = http::Request::get(format!("http://{edge}{path}"))
        .header("host", HOST)
        .body(http_body_util::Empty::new())
    else {
        return 0;
    };
    let exchange = async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.ok()?;
        Some(status)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}
