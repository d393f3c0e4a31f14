//! Real players through the whole stack: resolved by the router, served by the edge of their
//! region, with an interposer between the edges and the origin counting what reaches the origin.
//! A second player in a region is served from that edge's cache; several live players on one
//! edge cost the origin one request per segment per edge.

use std::time::Duration;

use cdn_tests::{metric_sum, scrape, Interposer, TestStack, TITLE_SECONDS};
use player::play::{PlayConfig, PlayReport};

/// Starts the stack with its edges behind an interposer.
async fn stack_behind_interposer() -> (TestStack, Interposer) {
    let interposer = Interposer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let url = interposer.url();
    let t = TestStack::start_with(|c| c.edge_upstream = Some(url))
        .await
        .expect("stack starts");
    interposer.forward_to(t.stack.origin.local_addr());
    (t, interposer)
}

fn config(t: &TestStack, path: &str, region: u8, host_n: u8) -> PlayConfig {
    let mut pc = PlayConfig::new(url::Url::parse(&t.content_url(path)).unwrap());
    pc.dns = Some(t.stack.dns.dns_addr());
    let std::net::IpAddr::V4(ip) = t.client_in_region(region) else {
        unreachable!()
    };
    let o = ip.octets();
    pc.bind = Some(std::net::Ipv4Addr::new(o[0], o[1], o[2], o[3] + host_n).into());
    pc.session.play_out = false;
    pc
}

async fn play(pc: PlayConfig) -> PlayReport {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            // The router needs a few health checks before it steers to the edges.
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let r = player::play::play(&pc).await;
                match r {
                    Ok(r) if r.session.summary.missing_segments == 0 => return r,
                    other if std::time::Instant::now() > deadline => {
                        panic!("playback failed: {:?}", other.map(|r| r.session.errors))
                    }
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        })
        .await
}

fn served_by(r: &PlayReport) -> Vec<String> {
    let mut edges: Vec<String> = r
        .session
        .segments
        .iter()
        .filter_map(|s| s.edge.clone())
        .collect();
    edges.sort();
    edges.dedup();
    edges
}

#[tokio::test(flavor = "multi_thread")]
async fn second_player_in_a_region_is_served_from_the_edge_cache() {
    let (t, interposer) = stack_behind_interposer().await;
    let segments = (TITLE_SECONDS / 2.0) as usize;

    let first = play(config(&t, "/vod/demo/manifest.mpd", 1, 0)).await;
    assert_eq!(
        first.session.summary.segments, segments,
        "{:?}",
        first.session.errors
    );
    assert_eq!(
        first.dns_chain,
        vec!["video.example.test", "video.cdn.example.test"],
        "{:?}",
        first.dns_chain
    );
    let edge1 = format!("{}", t.stack.edge_addrs()[0].1);
    assert_eq!(served_by(&first), vec![edge1.clone()]);
    let after_first = interposer.counts();
    let origin_after_first: u64 = after_first.values().sum();
    assert!(
        after_first.keys().any(|p| p.ends_with(".m4s")),
        "{after_first:?}"
    );
    assert!(
        after_first.values().all(|&n| n == 1),
        "a path reached the origin twice: {after_first:?}"
    );

    let second = play(config(&t, "/vod/demo/manifest.mpd", 1, 1)).await;
    assert_eq!(second.session.summary.segments, segments);
    assert_eq!(second.session.summary.rebuffer_count, 0);
    assert_eq!(served_by(&second), vec![edge1]);
    let after_second = interposer.counts();
    assert_eq!(
        after_second.values().sum::<u64>(),
        origin_after_first,
        "the second player's requests reached the origin: {after_second:?}"
    );
    let edge_text = scrape(t.stack.edge_addrs()[0].1).await.unwrap();
    let hits = metric_sum(
        &edge_text,
        "edge_requests_total",
        &[("cache_status", "hit")],
    );
    assert!(
        hits >= (segments + 2) as f64,
        "edge counted {hits} hits for the second player"
    );

    // The player in region 2 is steered to its own edge, which fetches from the origin once.
    let other = play(config(&t, "/vod/demo/manifest.mpd", 2, 0)).await;
    assert_eq!(
        served_by(&other),
        vec![format!("{}", t.stack.edge_addrs()[1].1)]
    );

    t.stack.shutdown().await;
    interposer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_players_cost_the_origin_one_request_per_segment_per_edge() {
    let (t, interposer) = stack_behind_interposer().await;
    let mut handles = Vec::new();
    for (region, n) in [(1u8, 0u8), (1, 1), (1, 2), (2, 0)] {
        let mut pc = config(&t, "/live/demo/manifest.mpd", region, n);
        pc.duration_s = Some(8.0);
        pc.session.play_out = true;
        handles.push(std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(play(pc))
        }));
    }
    let reports: Vec<PlayReport> = handles
        .into_iter()
        .map(|h| h.join().expect("player thread"))
        .collect();
    // Video and audio segments alike reach the origin through the edges.
    let fetched_by_players: usize = reports
        .iter()
        .map(|r| r.session.segments.len() + r.session.audio.as_ref().map_or(0, |a| a.segments))
        .sum();
    for r in &reports {
        assert!(r.live, "the live MPD was not played as live");
        assert!(
            r.session.segments.len() >= 3,
            "a live player fetched too little: {:?}",
            r.session.errors
        );
        assert_eq!(
            r.session.summary.missing_segments, 0,
            "{:?}",
            r.session.errors
        );
    }

    let counts = interposer.counts();
    let live_segments: Vec<(&String, &u64)> = counts
        .iter()
        .filter(|(p, _)| p.starts_with("/live/") && p.ends_with(".m4s"))
        .collect();
    assert!(!live_segments.is_empty(), "{counts:?}");
    for (path, n) in &live_segments {
        assert!(**n <= 2, "{path} reached the origin {n} times from 2 edges");
    }
    let at_origin: u64 = live_segments.iter().map(|(_, n)| **n).sum();
    assert!(
        (at_origin as usize) < fetched_by_players,
        "no sharing: origin saw {at_origin} segment requests for {fetched_by_players} player fetches"
    );
    t.stack.shutdown().await;
    interposer.shutdown().await;
}
