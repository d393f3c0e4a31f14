//! Real playback end to end: a title packaged by the packager, served by a real origin
//! (`origin::spawn`) on loopback, played in real time with downloads shaped to a stepped trace;
//! and failover from a dead address to a live one.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use packager::ladder::{Ladder, Rendition};
use packager::Options;
use player::play::{play, PlayConfig};
use player::trace::Trace;

fn package(root: &Path) {
    let mut opts = Options::new(root.join("vod/demo"));
    opts.duration = Some(30.0);
    opts.fps = 15;
    opts.segment = 1.0;
    opts.progress = false;
    opts.chunk_frames = 360;
    let r = |id: &str, width, height, kbps: u32| Rendition {
        id: id.into(),
        width,
        height,
        bitrate: kbps * 1000,
    };
    opts.ladder = Ladder {
        renditions: vec![
            r("low", 256, 144, 150),
            r("mid", 426, 240, 500),
            r("high", 640, 360, 1200),
        ],
    };
    packager::package(&opts).expect("packaging the test title");
}

async fn origin(root: &Path) -> origin::Origin {
    let cfg = origin::Config {
        root: root.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        ..origin::Config::default()
    };
    origin::spawn(cfg).await.expect("origin starts")
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("player-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shaped_playback_goes_down_and_up_without_stalling() {
    let root = tempdir("shape");
    package(&root);
    let origin = origin(&root).await;
    let url = format!("{}/vod/demo/manifest.mpd", origin.url());
    // 8 Mb/s for 6 s, 400 kb/s for 5 s, then 8 Mb/s again.
    let shape = Trace::new("step", vec![(6.0, 8e6), (5.0, 0.4e6), (1000.0, 8e6)]).unwrap();
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.shape = Some(shape);
    cfg.session.buffer.max_s = 6.0;
    cfg.timeout = Duration::from_secs(10);
    let report = tokio::time::timeout(Duration::from_secs(90), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    let rungs: Vec<usize> = s.segments.iter().map(|r| r.rung).collect();
    assert_eq!(s.segments.len(), 30, "{}", report.table());
    assert_eq!(s.summary.missing_segments, 0);
    assert_eq!(s.summary.rebuffer_count, 0, "stalled: {}", report.table());
    let top = 2;
    let first_top = rungs
        .iter()
        .position(|&r| r == top)
        .expect("reaches the top");
    let dip = rungs[first_top..]
        .iter()
        .position(|&r| r < top)
        .map(|i| i + first_top)
        .expect("goes down when the link drops");
    assert!(
        rungs[dip..].contains(&top),
        "comes back up when the link recovers: {rungs:?}"
    );
    let edge = origin.local_addr().to_string();
    assert!(s
        .segments
        .iter()
        .all(|r| r.edge.as_deref() == Some(edge.as_str())));
    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_address() {
    let root = tempdir("failover");
    package(&root);
    let origin = origin(&root).await;
    let port = origin.local_addr().port();
    // Nothing listens on 127.0.0.2 at the origin's port: connections are refused.
    let url = format!("http://video.example.test:{port}/vod/demo/manifest.mpd");
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.resolve = Some(vec![
        "127.0.0.2".parse::<IpAddr>().unwrap(),
        "127.0.0.1".parse::<IpAddr>().unwrap(),
    ]);
    cfg.duration_s = Some(3.0);
    let report = tokio::time::timeout(Duration::from_secs(60), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    assert!(report.failovers >= 1, "{}", report.table());
    let served = format!("127.0.0.1:{port}");
    assert!(report
        .session
        .segments
        .iter()
        .all(|r| r.edge.as_deref() == Some(served.as_str())));
    assert_eq!(report.session.summary.missing_segments, 0);
    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_mpd_is_an_error() {
    let root = tempdir("404");
    std::fs::create_dir_all(root.join("vod")).unwrap();
    let origin = origin(&root).await;
    let cfg = PlayConfig::new(
        format!("{}/vod/nope/manifest.mpd", origin.url())
            .parse()
            .unwrap(),
    );
    let err = format!("{:#}", play(&cfg).await.unwrap_err());
    assert!(err.contains("404"), "{err}");
    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_keeps_fetching_what_is_published_while_it_runs() {
    let root = tempdir("live");
    package(&root);
    let cfg = origin::Config {
        root: root.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        channels: [(
            "demo".to_string(),
            origin::config::ChannelConfig::Title("demo".into()),
        )]
        .into_iter()
        .collect(),
        ..origin::Config::default()
    };
    let origin = origin::spawn(cfg).await.expect("origin starts");
    let url = format!("{}/live/demo/manifest.mpd", origin.url());
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.duration_s = Some(5.0);
    cfg.session.play_out = false;
    let report = tokio::time::timeout(Duration::from_secs(30), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    assert!(report.live);
    assert_eq!(s.summary.missing_segments, 0, "{:?}", s.errors);
    // 1-s segments, 6 s behind the edge: the 6 or 7 already out, then about one a second for 5 s.
    assert!(
        s.segments.len() >= 10,
        "only {} segments: {}",
        s.segments.len(),
        report.table()
    );
    assert!(s.summary.session_s >= 4.0, "{}", report.table());
    assert!(
        s.segments.iter().all(|r| r.start_s < 5.0),
        "{}",
        report.table()
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The highest video and the audio `@bandwidth` of the test title, bits per second.
fn top_rung_with_audio(t: &cdn_tests::TestStack) -> f64 {
    let text = std::fs::read_to_string(t.content.path().join("vod/demo/manifest.mpd"))
        .expect("the test title's MPD");
    let mpd = mpd::Mpd::parse(&text).expect("it parses");
    let mut video = 0u64;
    let mut audio = 0u64;
    for set in &mpd.periods[0].adaptation_sets {
        let is_audio = set.content_type.as_deref() == Some("audio");
        for r in &set.representations {
            let slot = if is_audio { &mut audio } else { &mut video };
            *slot = (*slot).max(r.bandwidth);
        }
    }
    assert!(video > 0 && audio > 0, "the title has video and audio");
    (video + audio) as f64
}

fn low_latency_config(t: &cdn_tests::TestStack, region: u8, host: u8, seconds: f64) -> PlayConfig {
    let path = format!(
        "/live/{}/manifest.mpd",
        t.stack.config.low_latency_channel()
    );
    let mut cfg = PlayConfig::new(t.content_url(&path).parse().unwrap());
    cfg.dns = Some(t.stack.dns.dns_addr());
    cfg.bind = Some(IpAddr::from([127, t.octet, region, host]));
    cfg.duration_s = Some(seconds);
    cfg
}

/// `cdn play` on the low-latency channel through an edge, found through the router: low-latency
/// mode turns on from the MPD alone; on a free link it holds under two seconds behind live
/// without a stall; through a link of a constant 1.5 times the top rung (with audio), still no
/// stall and at most 2.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_latency_live_plays_under_two_seconds_behind_through_an_edge() {
    let t = cdn_tests::TestStack::start().await.expect("stack starts");
    let free = low_latency_config(&t, 1, 10, 30.0);
    let mut shaped = low_latency_config(&t, 2, 10, 30.0);
    let rate = 1.5 * top_rung_with_audio(&t);
    shaped.shape = Some(Trace::constant("1.5x top rung", rate, 1000.0).unwrap());
    let (free, shaped) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(90), play(&free)),
        tokio::time::timeout(Duration::from_secs(90), play(&shaped)),
    );
    for (name, report, p50_max, p95_max) in [
        ("free link", free, 1.5, Some(2.0)),
        ("1.5x the top rung", shaped, 2.5, None),
    ] {
        let report = report
            .unwrap_or_else(|_| panic!("{name}: playback ends"))
            .unwrap_or_else(|e| panic!("{name}: playback works: {e:#}"));
        let s = &report.session.summary;
        eprintln!(
            "low latency, {name}: p50 {:?} s, p95 {:?} s, {} stalls, {:.0} kb/s, {} segments",
            s.live_latency_p50_s,
            s.live_latency_p95_s,
            s.rebuffer_count,
            s.bitrate_kbps,
            s.segments
        );
        assert!(report.live, "{name}");
        assert!(
            report.low_latency.is_some(),
            "{name}: low-latency mode from the MPD"
        );
        assert_eq!(s.rebuffer_count, 0, "{name}: stalled\n{}", report.table());
        assert_eq!(s.missing_segments, 0, "{name}\n{}", report.table());
        assert!(
            s.segments >= 13,
            "{name}: 30 s is 15 segments of 2 s\n{}",
            report.table()
        );
        let p50 = s.live_latency_p50_s.expect("latency measured");
        let p95 = s.live_latency_p95_s.expect("latency measured");
        assert!(p50 <= p50_max, "{name}: p50 {p50} s\n{}", report.table());
        if let Some(max) = p95_max {
            assert!(p95 <= max, "{name}: p95 {p95} s\n{}", report.table());
        }
        assert!(p50 > 0.0, "{name}: a latency below zero is a clock error");
    }
    t.stack.shutdown().await;
}

/// Fifty low-latency players on one edge: the origin is asked once for each chunked segment of
/// each rung they play, however many players want it while it is being produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_low_latency_players_on_one_edge_cost_the_origin_one_request_per_segment() {
    let proxy = cdn_tests::Interposer::start(IpAddr::from([127, 0, 0, 1]))
        .await
        .expect("interposer starts");
    let upstream = proxy.url();
    let t = cdn_tests::TestStack::start_with(|c| c.edge_upstream = Some(upstream))
        .await
        .expect("stack starts");
    proxy.forward_to(t.stack.origin.local_addr());
    let players: Vec<_> = (0..50u8)
        .map(|i| {
            let mut cfg = low_latency_config(&t, 1, 10 + i, 20.0);
            // One rung for everybody would prove nothing about rungs: half are held low.
            if i % 2 == 1 {
                cfg.shape = Some(Trace::constant("low", 1.2e6, 1000.0).unwrap());
            }
            cfg
        })
        .collect();
    // The player's future stays on its thread (as `cdn play`'s does): one local set for all.
    let local = tokio::task::LocalSet::new();
    let tasks: Vec<_> = players
        .into_iter()
        .map(|cfg| {
            local.spawn_local(async move {
                tokio::time::timeout(Duration::from_secs(90), play(&cfg))
                    .await
                    .expect("playback ends")
                    .expect("playback works")
            })
        })
        .collect();
    let reports = local
        .run_until(async {
            let mut reports = Vec::new();
            for task in tasks {
                reports.push(task.await.expect("a player task"));
            }
            reports
        })
        .await;
    let channel = format!("/live/{}/", t.stack.config.low_latency_channel());
    let counts = proxy.counts();
    let segments: Vec<(&String, &u64)> = counts
        .iter()
        .filter(|(p, _)| p.starts_with(&channel) && p.ends_with(".m4s"))
        .collect();
    let repeated: Vec<_> = segments.iter().filter(|(_, n)| **n > 1).collect();
    let rungs: std::collections::BTreeSet<&str> = segments
        .iter()
        .filter_map(|(p, _)| p[channel.len()..].split('/').next())
        .collect();
    let played: usize = reports.iter().map(|r| r.session.summary.segments).sum();
    eprintln!(
        "50 low-latency players: {played} segments played, {} origin requests for {} segment URLs of {} representations",
        segments.iter().map(|(_, n)| **n).sum::<u64>(),
        segments.len(),
        rungs.len()
    );
    assert!(
        repeated.is_empty(),
        "asked the origin more than once: {repeated:?}"
    );
    assert!(rungs.len() >= 3, "video rungs and audio: {rungs:?}");
    assert!(played >= 50 * 8, "{played} segments");
    for r in &reports {
        assert_eq!(r.session.summary.missing_segments, 0, "{}", r.table());
    }
    t.stack.shutdown().await;
    proxy.shutdown().await;
}
