//! Caching through the whole stack: a second request is a hit that the origin never sees, and a
//! changed MPD reaches clients once its max-age has passed, through a conditional GET that the
//! edge sends on its own; an unchanged one is revalidated with a 304 and served from the cache.

use std::time::Duration;

use cdn_tests::{fetch, metric_sum, scrape, TestStack};

const MPD: &str = "/vod/demo/manifest.mpd";

#[tokio::test(flavor = "multi_thread")]
async fn changed_mpd_reaches_clients_after_max_age_via_conditional_get() {
    let t = TestStack::start_with(|c| c.mpd_cache_control = "public, max-age=2".into())
        .await
        .expect("stack starts");
    let edge = t.stack.edge_addrs()[0].1;
    let origin = t.stack.origin.local_addr();
    let origin_mpd_requests = || async {
        let text = scrape(origin).await.unwrap();
        metric_sum(&text, "origin_http_requests_total", &[("kind", "mpd")])
    };

    let first = fetch(edge, "video.example.test", MPD, &[]).await.unwrap();
    assert_eq!(first.status, 200);
    assert!(
        first.header("cache-status").contains("fwd=miss"),
        "{:?}",
        first.headers
    );
    let second = fetch(edge, "video.example.test", MPD, &[]).await.unwrap();
    assert!(
        second.header("cache-status").contains("hit"),
        "{:?}",
        second.headers
    );
    assert_eq!(second.body, first.body);
    assert_eq!(
        origin_mpd_requests().await,
        1.0,
        "the hit reached the origin"
    );

    // Change the MPD on the origin; within max-age the edge keeps serving the stored copy.
    let path = t.content.path().join("vod/demo/manifest.mpd");
    let original = std::fs::read_to_string(&path).unwrap();
    let changed = original.replacen("<Period", "<!-- changed on the origin -->\n  <Period", 1);
    assert_ne!(changed, original);
    std::fs::write(&path, &changed).unwrap();
    let within = fetch(edge, "video.example.test", MPD, &[]).await.unwrap();
    assert_eq!(within.body, first.body);

    // After max-age, one conditional GET: the origin sees If-None-Match, the ETag no longer
    // matches, and the client gets the new MPD.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let after = fetch(edge, "video.example.test", MPD, &[]).await.unwrap();
    assert_eq!(after.status, 200);
    assert_eq!(
        std::str::from_utf8(&after.body).unwrap(),
        changed,
        "edge still serves the old MPD"
    );
    assert!(
        after.header("cache-status").contains("fwd=stale"),
        "{:?}",
        after.headers
    );
    assert_eq!(origin_mpd_requests().await, 2.0);
    assert_ne!(after.header("etag"), first.header("etag"));

    // Unchanged this time: after max-age the origin answers 304 and the edge serves its copy.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let revalidated = fetch(edge, "video.example.test", MPD, &[]).await.unwrap();
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.body, after.body);
    let origin_text = scrape(origin).await.unwrap();
    assert_eq!(
        metric_sum(
            &origin_text,
            "origin_http_not_modified_total",
            &[("kind", "mpd")]
        ),
        1.0
    );
    let edge_text = scrape(edge).await.unwrap();
    assert!(
        metric_sum(
            &edge_text,
            "edge_requests_total",
            &[("cache_status", "revalidated")]
        ) >= 1.0,
        "edge counted no revalidation:\n{edge_text}"
    );

    t.stack.shutdown().await;
}
