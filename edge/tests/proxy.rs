//! The edge over real sockets against scripted upstreams: hits, revalidation, coalescing,
//! stale serving, Range/HEAD/conditionals, invalidation, Vary, purge, headers, limits, metrics.
//! Staleness comes from advancing a virtual clock the edge and its upstream share; real time
//! passes only where the network is waited on (slow heads, timeouts, background fetches).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

#[tokio::test]
async fn second_get_is_a_hit_with_age_and_one_upstream_request() {
    let up = Upstream::start(|_| {
        Reply::ok(
            "hello",
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = send(e.local_addr(), "GET", "/vod/a.mpd", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(&a.body[..], b"hello");
    let cs = a.cache_status();
    assert!(
        cs.starts_with("edge-t; fwd=miss; fwd-status=200; ttl=") && cs.ends_with("; stored"),
        "{cs}"
    );
    let b = send(e.local_addr(), "GET", "/vod/a.mpd", &[]).await;
    assert_eq!(&b.body[..], b"hello");
    assert!(
        b.cache_status().starts_with("edge-t; hit; ttl="),
        "{}",
        b.cache_status()
    );
    assert!(
        b.headers.contains_key("age"),
        "Age on every cached response"
    );
    assert!(b.header("via").contains("edge-t"));
    assert_eq!(up.count(), 1);
    e.shutdown().await;
}

#[tokio::test]
async fn age_ttl_and_expiry_follow_the_edge_clock() {
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), |s| match s.path.as_str() {
        "/short" => Reply::ok("s", &[("cache-control", "max-age=1, stale-if-error=0")]),
        _ => Reply::ok("l", &[("cache-control", "max-age=60")]),
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    let a = e.local_addr();
    send(a, "GET", "/long", &[]).await;
    // 30 virtual seconds later: Age and ttl agree with each other and with the clock, to the
    // second, however long the test really took.
    clock.advance(Duration::from_secs(30));
    let hit = send(a, "GET", "/long", &[]).await;
    assert_eq!(hit.header("age"), "30");
    assert_eq!(hit.cache_status(), "edge-t; hit; ttl=30");
    clock.advance(Duration::from_secs(31));
    let stale = send(a, "GET", "/long", &[]).await;
    assert!(
        stale
            .cache_status()
            .starts_with("edge-t; fwd=stale; fwd-status=200"),
        "{}",
        stale.cache_status()
    );
    // Without a validator or a stale window the entry is kept 1 s; past that it is gone on the
    // edge's clock as it would be from the store: a plain miss, not a revalidation.
    send(a, "GET", "/short", &[]).await;
    clock.advance(Duration::from_secs(5));
    let gone = send(a, "GET", "/short", &[]).await;
    assert!(
        gone.cache_status()
            .starts_with("edge-t; fwd=miss; fwd-status=200"),
        "{}",
        gone.cache_status()
    );
    assert_eq!(up.count(), 4);
    e.shutdown().await;
}

#[tokio::test]
async fn stale_entry_is_revalidated_once_and_304_refreshes_headers() {
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), |s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            Reply::status(
                304,
                &[
                    ("cache-control", "max-age=60"),
                    ("etag", "\"v1\""),
                    ("x-generation", "2"),
                ],
            )
        } else {
            Reply::ok(
                "segment-body",
                &[
                    ("cache-control", "max-age=1"),
                    ("etag", "\"v1\""),
                    ("x-generation", "1"),
                ],
            )
        }
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    let first = send(e.local_addr(), "GET", "/s.m4s", &[]).await;
    assert_eq!(first.header("x-generation"), "1");
    clock.advance(Duration::from_millis(2100));
    let second = send(e.local_addr(), "GET", "/s.m4s", &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        &second.body[..],
        b"segment-body",
        "full cached body after 304"
    );
    assert_eq!(
        second.header("x-generation"),
        "2",
        "stored headers refreshed from the 304"
    );
    assert!(
        second.cache_status().contains("fwd=stale; fwd-status=304"),
        "{}",
        second.cache_status()
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");
    // Refreshed to max-age=60: now a hit.
    let third = send(e.local_addr(), "GET", "/s.m4s", &[]).await;
    assert!(third.cache_status().contains("hit"));
    assert_eq!(up.count(), 2);
    e.shutdown().await;
}

#[tokio::test]
async fn a_200_on_revalidation_replaces_the_entry() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), move |_| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        Reply::ok(
            format!("v{i}"),
            &[
                ("cache-control", "max-age=1"),
                ("etag", &format!("\"{i}\"")),
            ],
        )
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    assert_eq!(
        &send(e.local_addr(), "GET", "/x", &[]).await.body[..],
        b"v0"
    );
    clock.advance(Duration::from_millis(2100));
    assert_eq!(
        &send(e.local_addr(), "GET", "/x", &[]).await.body[..],
        b"v1"
    );
    let hit = send(e.local_addr(), "GET", "/x", &[]).await;
    assert_eq!(&hit.body[..], b"v1");
    assert!(hit.cache_status().contains("hit"));
    e.shutdown().await;
}

#[tokio::test]
async fn miss_storm_makes_one_upstream_request_and_streams_to_all() {
    let body: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 251) as u8).collect();
    let b2 = body.clone();
    let up = Upstream::start(move |_| Reply {
        head_delay: Duration::from_millis(1000),
        chunks: 8,
        chunk_delay: Duration::from_millis(20),
        ..Reply::ok(
            b2.clone(),
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "video/iso.segment"),
            ],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let addr = e.local_addr();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        tasks.push(tokio::spawn(async move {
            send(addr, "GET", "/live/seg-42.m4s", &[]).await
        }));
    }
    let (mut collapsed, mut hits, mut misses) = (0, 0, 0);
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len(), body.len());
        assert!(got.body[..] == body[..], "body differs");
        let cs = got.cache_status();
        if cs.contains("collapsed") {
            collapsed += 1;
        } else if cs.contains("hit") {
            hits += 1;
        } else {
            misses += 1;
        }
    }
    assert_eq!(up.count(), 1, "exactly one upstream request for the storm");
    assert_eq!(misses, 1, "one leader");
    assert_eq!(collapsed + hits, 199);
    assert!(
        collapsed >= 50,
        "most requests waited on the shared fetch: {collapsed}"
    );
    let m = send(addr, "GET", "/metrics", &[]).await;
    let text = String::from_utf8_lossy(&m.body);
    let coalesced = metric(&text, r#"edge_requests_total{cache_status="coalesced"}"#);
    assert_eq!(coalesced, collapsed as f64, "{text}");
    e.shutdown().await;
}

#[tokio::test]
async fn waiters_get_first_bytes_before_the_body_completes() {
    let up = Upstream::start(|_| Reply {
        chunks: 4,
        chunk_delay: Duration::from_millis(600),
        ..Reply::ok(vec![1u8; 4000], &[("cache-control", "max-age=60")])
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let addr = e.local_addr();
    let leader = tokio::spawn(async move { send(addr, "GET", "/big", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A waiter joining mid-fetch: its head (and first bytes) arrive long before the 1.6 s body.
    let c = client();
    let started = Instant::now();
    let req = http::Request::get(format!("http://{addr}/big"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let head_after = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(
        head_after < Duration::from_millis(1200),
        "waiter head took {head_after:?}"
    );
    assert!(resp.headers()["cache-status"]
        .to_str()
        .unwrap()
        .contains("collapsed"));
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body.len(), 4000);
    assert_eq!(leader.await.unwrap().body.len(), 4000);
    assert_eq!(up.count(), 1);
    e.shutdown().await;
}

#[tokio::test]
async fn stale_is_served_when_the_upstream_is_down() {
    let clock = manual_clock();
    let mut up = Upstream::start_with_clock(clock.clone(), |_| {
        Reply::ok(
            "keep-me",
            &[
                ("cache-control", "max-age=1, stale-if-error=60"),
                ("etag", "\"k\""),
            ],
        )
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    assert_eq!(send(e.local_addr(), "GET", "/m.mpd", &[]).await.status, 200);
    up.stop();
    clock.advance(Duration::from_millis(2100));
    let got = send(e.local_addr(), "GET", "/m.mpd", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"keep-me");
    let cs = got.cache_status();
    assert!(
        cs.contains("fwd=stale") && cs.contains("detail=stale-if-error"),
        "{cs}"
    );
    assert!(cs.contains("ttl=-"), "{cs}");
    e.shutdown().await;
}

#[tokio::test]
async fn stale_if_error_on_5xx_and_errors_without_stale() {
    let fail = Arc::new(AtomicUsize::new(0));
    let f2 = fail.clone();
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), move |_| {
        if f2.load(Ordering::SeqCst) == 1 {
            Reply::status(503, &[])
        } else {
            Reply::ok("good", &[("cache-control", "max-age=1, stale-if-error=30")])
        }
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    send(e.local_addr(), "GET", "/p", &[]).await;
    fail.store(1, Ordering::SeqCst);
    clock.advance(Duration::from_millis(2100));
    let got = send(e.local_addr(), "GET", "/p", &[]).await;
    assert_eq!(&got.body[..], b"good");
    assert!(
        got.cache_status().contains("fwd-status=503; ttl=-"),
        "{}",
        got.cache_status()
    );
    // No stored copy: the 503 goes through.
    let other = send(e.local_addr(), "GET", "/never-stored", &[]).await;
    assert_eq!(other.status, 503);
    e.shutdown().await;

    // Nothing listening and nothing stored: 502 naming the problem.
    let dead = edge("http://127.0.0.1:9", |_| {}).await;
    let got = send(dead.local_addr(), "GET", "/x", &[]).await;
    assert_eq!(got.status, 502);
    assert!(String::from_utf8_lossy(&got.body).contains("cannot connect"));
    dead.shutdown().await;
}

#[tokio::test]
async fn a_slow_revalidation_serves_the_stale_copy_early_and_refreshes_the_cache() {
    // Fresh for 1 s, then the upstream takes 2 s to answer (with a new body).
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = slow.clone();
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply {
                head_delay: Duration::from_secs(2),
                ..Reply::ok("new", &[("cache-control", "max-age=60")])
            }
        } else {
            Reply::ok("old", &[("cache-control", "max-age=1")])
        }
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |c| c.stale_if_slow_secs = 0.3).await;
    let a = e.local_addr();
    assert_eq!(&send(a, "GET", "/live.mpd", &[]).await.body[..], b"old");
    clock.advance(Duration::from_millis(1200));
    slow.store(true, Ordering::SeqCst);

    let t0 = Instant::now();
    let stale = send(a, "GET", "/live.mpd", &[]).await;
    let took = t0.elapsed();
    assert_eq!(stale.status, 200);
    assert_eq!(&stale.body[..], b"old");
    assert!(
        stale.cache_status().contains("stale-if-error"),
        "{}",
        stale.cache_status()
    );
    assert!(
        took < Duration::from_millis(1500),
        "the client waited {took:?} for a slow revalidation"
    );

    // The fetch went on without the client and refreshed the cache.
    settle(a).await;
    let fresh = send(a, "GET", "/live.mpd", &[]).await;
    assert_eq!(&fresh.body[..], b"new");
    assert!(
        fresh.cache_status().contains("hit"),
        "{}",
        fresh.cache_status()
    );
    assert_eq!(up.count(), 2, "one revalidation, shared");
    e.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_times_out_with_504_and_waiters_share_the_error() {
    let up = Upstream::start(|_| Reply {
        head_delay: Duration::from_secs(5),
        ..Reply::ok("late", &[("cache-control", "max-age=60")])
    })
    .await;
    let e = edge(&up.url(), |c| c.first_byte_timeout_secs = 0.5).await;
    let addr = e.local_addr();
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| tokio::spawn(async move { send(addr, "GET", "/slow", &[]).await }))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 504);
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(up.count(), 1, "one attempt: timeouts are not retried");
    e.shutdown().await;
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), move |_| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        Reply {
            head_delay: if i > 0 {
                Duration::from_millis(1500)
            } else {
                Duration::ZERO
            },
            ..Reply::ok(
                format!("gen{i}"),
                &[("cache-control", "max-age=1, stale-while-revalidate=30")],
            )
        }
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    send(e.local_addr(), "GET", "/live.mpd", &[]).await;
    clock.advance(Duration::from_millis(2100));
    let started = Instant::now();
    for _ in 0..5 {
        let got = send(e.local_addr(), "GET", "/live.mpd", &[]).await;
        assert_eq!(&got.body[..], b"gen0");
        assert!(
            got.cache_status().contains("detail=stale-while-revalidate"),
            "{}",
            got.cache_status()
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "stale served without waiting"
    );
    settle(e.local_addr()).await;
    assert_eq!(up.count(), 2, "exactly one background refresh");
    let fresh = send(e.local_addr(), "GET", "/live.mpd", &[]).await;
    assert_eq!(&fresh.body[..], b"gen1");
    assert!(fresh.cache_status().contains("hit"));
    e.shutdown().await;
}

#[tokio::test]
async fn client_conditionals_range_and_head_from_cache() {
    let body: Vec<u8> = (0..100u8).collect();
    let b2 = body.clone();
    let up = Upstream::start(move |_| {
        Reply::ok(
            b2.clone(),
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"r1\""),
                ("last-modified", "Mon, 02 Jan 2023 00:00:00 GMT"),
            ],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    // A Range request on a miss fetches the full object and answers the range.
    let r = send(a, "GET", "/seg", &[("range", "bytes=10-19")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &body[10..20]);
    assert_eq!(r.header("content-range"), "bytes 10-19/100");
    assert!(
        !up.seen()[0].headers.contains_key("range"),
        "full object fetched upstream"
    );
    let r = send(a, "GET", "/seg", &[("range", "bytes=-5")]).await;
    assert_eq!((r.status, &r.body[..]), (206, &body[95..]));
    let r = send(a, "GET", "/seg", &[("range", "bytes=500-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */100");
    let r = send(a, "GET", "/seg", &[("if-none-match", "\"r1\"")]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), "\"r1\"");
    let r = send(
        a,
        "GET",
        "/seg",
        &[("if-modified-since", "Tue, 03 Jan 2023 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, 304);
    let r = send(a, "GET", "/seg", &[("if-none-match", "\"other\"")]).await;
    assert_eq!((r.status, r.body.len()), (200, 100));
    // If-Match and If-Unmodified-Since are evaluated against the stored response: 412 when
    // they fail, and a failed If-Match wins over a matching If-None-Match.
    let r = send(a, "GET", "/seg", &[("if-match", "\"r0\"")]).await;
    assert_eq!((r.status, r.body.len()), (412, 0));
    assert_eq!(r.header("etag"), "\"r1\"");
    let r = send(
        a,
        "GET",
        "/seg",
        &[("if-match", "\"r0\""), ("if-none-match", "\"r1\"")],
    )
    .await;
    assert_eq!(r.status, 412);
    let r = send(a, "GET", "/seg", &[("if-match", "\"r1\"")]).await;
    assert_eq!((r.status, r.body.len()), (200, 100));
    let r = send(
        a,
        "GET",
        "/seg",
        &[("if-unmodified-since", "Sun, 01 Jan 2023 00:00:00 GMT")],
    )
    .await;
    assert_eq!(r.status, 412);
    // Range applies to GET only; HEAD answers the whole representation's headers.
    let h = send(a, "HEAD", "/seg", &[("range", "bytes=0-9")]).await;
    assert_eq!(
        (h.status, h.header("content-length").as_str()),
        (200, "100")
    );
    let h = send(a, "HEAD", "/seg", &[]).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), "100");
    assert!(h.cache_status().contains("hit"));
    assert_eq!(up.count(), 1, "all answered from the one stored GET");
    e.shutdown().await;
}

#[tokio::test]
async fn a_failed_if_match_on_a_miss_is_412_and_the_object_is_still_stored() {
    let up = Upstream::start(|_| {
        Reply::ok(
            "0123456789",
            &[("cache-control", "max-age=60"), ("etag", "\"v7\"")],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    let r = send(a, "GET", "/m", &[("if-match", "\"v6\"")]).await;
    assert_eq!((r.status, r.body.len()), (412, 0));
    assert!(
        !up.seen()[0].headers.contains_key("if-match"),
        "the shared fetch does not carry the client's precondition"
    );
    let r = send(a, "GET", "/m", &[("if-match", "\"v7\"")]).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"0123456789"[..]));
    assert!(r.cache_status().contains("hit"));
    assert_eq!(up.count(), 1);
    e.shutdown().await;
}

#[tokio::test]
async fn head_on_a_miss_stores_the_get() {
    let up = Upstream::start(|s| {
        assert_eq!(s.method, http::Method::GET, "HEAD misses fetch with GET");
        Reply::ok("0123456789", &[("cache-control", "max-age=60")])
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let h = send(e.local_addr(), "HEAD", "/h", &[]).await;
    assert_eq!((h.status, h.body.len()), (200, 0));
    let g = send(e.local_addr(), "GET", "/h", &[]).await;
    assert_eq!(&g.body[..], b"0123456789");
    assert!(g.cache_status().contains("hit"));
    assert_eq!(up.count(), 1);
    e.shutdown().await;
}

#[tokio::test]
async fn unsafe_methods_pass_and_invalidate() {
    let up = Upstream::start(|s| match s.method.as_str() {
        "POST" => Reply::status(204, &[]),
        _ => Reply::ok("doc", &[("cache-control", "max-age=60")]),
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    send(a, "GET", "/doc", &[]).await;
    assert!(send(a, "GET", "/doc", &[])
        .await
        .cache_status()
        .contains("hit"));
    let p = send(a, "POST", "/doc", &[]).await;
    assert_eq!(p.status, 204);
    assert!(p.cache_status().contains("fwd=method"));
    let after = send(a, "GET", "/doc", &[]).await;
    assert!(
        after.cache_status().contains("fwd=miss"),
        "{}",
        after.cache_status()
    );
    assert_eq!(up.count(), 3);
    e.shutdown().await;
}

#[tokio::test]
async fn not_stored_without_freshness_or_validator_and_private_and_authorization() {
    let up = Upstream::start(|s| match s.path.as_str() {
        "/plain" => Reply::ok("p", &[]),
        "/private" => Reply::ok("me", &[("cache-control", "private, max-age=60")]),
        "/nostore" => Reply::ok("n", &[("cache-control", "no-store")]),
        _ => Reply::ok("a", &[("cache-control", "max-age=60")]),
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    for path in ["/plain", "/private", "/nostore"] {
        send(a, "GET", path, &[]).await;
        let again = send(a, "GET", path, &[]).await;
        assert!(
            !again.cache_status().contains("hit"),
            "{path}: {}",
            again.cache_status()
        );
    }
    let auth = send(a, "GET", "/auth", &[("authorization", "Bearer x")]).await;
    assert!(auth.cache_status().contains("fwd=bypass"));
    assert!(!send(a, "GET", "/auth", &[])
        .await
        .cache_status()
        .contains("hit"));
    assert_eq!(up.count(), 8);
    e.shutdown().await;
}

#[tokio::test]
async fn private_responses_are_not_shared_with_concurrent_requests() {
    let up = Upstream::start(|s| {
        let who = s
            .headers
            .get("x-user")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Reply {
            head_delay: Duration::from_millis(200),
            ..Reply::ok(format!("for {who}"), &[("cache-control", "private")])
        }
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    let users: [&'static str; 3] = ["alice", "bob", "carol"];
    let tasks: Vec<_> = users
        .into_iter()
        .map(|u| tokio::spawn(async move { (u, send(a, "GET", "/me", &[("x-user", u)]).await) }))
        .collect();
    for t in tasks {
        let (u, got) = t.await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got.body), format!("for {u}"));
    }
    assert_eq!(up.count(), 3);
    e.shutdown().await;
}

#[tokio::test]
async fn vary_stores_the_variant_and_refetches_other_variants() {
    let up = Upstream::start(|s| {
        let enc = s
            .headers
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Reply::ok(
            format!("enc={enc}"),
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    assert_eq!(
        &send(a, "GET", "/v", &[("accept-encoding", "gzip")])
            .await
            .body[..],
        b"enc=gzip"
    );
    let hit = send(a, "GET", "/v", &[("accept-encoding", "gzip")]).await;
    assert!(hit.cache_status().contains("hit"));
    let other = send(a, "GET", "/v", &[("accept-encoding", "br")]).await;
    assert_eq!(&other.body[..], b"enc=br");
    assert!(other.cache_status().contains("fwd=vary-miss"));
    e.shutdown().await;
}

#[tokio::test]
async fn cdn_cache_control_is_obeyed_and_not_forwarded_to_clients() {
    let up = Upstream::start(|_| {
        Reply::ok(
            "c",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let first = send(e.local_addr(), "GET", "/c", &[]).await;
    assert!(!first.headers.contains_key("cdn-cache-control"));
    assert_eq!(
        first.header("cache-control"),
        "no-store",
        "Cache-Control is for downstream caches"
    );
    let second = send(e.local_addr(), "GET", "/c", &[]).await;
    assert!(second.cache_status().contains("hit"));
    assert_eq!(up.count(), 1);
    e.shutdown().await;
}

#[tokio::test]
async fn proxy_headers_hop_by_hop_via_and_forwarded_for() {
    let up = Upstream::start(|_| {
        Reply::ok(
            "x",
            &[
                ("cache-control", "max-age=60"),
                ("connection", "x-internal"),
                ("x-internal", "secret"),
                ("keep-alive", "timeout=5"),
            ],
        )
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let got = send(
        e.local_addr(),
        "GET",
        "/h",
        &[
            ("connection", "x-drop"),
            ("x-drop", "1"),
            ("x-forwarded-for", "10.1.2.3"),
        ],
    )
    .await;
    assert!(!got.headers.contains_key("x-internal"));
    assert!(!got.headers.contains_key("keep-alive"));
    let seen = &up.seen()[0];
    assert!(!seen.headers.contains_key("x-drop"));
    assert_eq!(seen.headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert!(seen.headers["via"].to_str().unwrap().contains("1.1 edge-t"));
    assert_eq!(seen.headers["host"], up.addr.to_string());
    e.shutdown().await;
}

#[tokio::test]
async fn a_fetch_that_overlaps_a_purge_is_not_kept() {
    // The upstream answers after 600 ms with a numbered version: the purge lands while the
    // first fetch is in flight; what that fetch brings back must not stay in the cache, and a
    // request arriving after the purge must not join it.
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    let up = Upstream::start(move |_| {
        let v = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply {
            head_delay: Duration::from_millis(600),
            ..Reply::ok(format!("v{v}"), &[("cache-control", "max-age=600")])
        }
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    let first = tokio::spawn(async move { send(a, "GET", "/vod/p/1.m4s", &[]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let purge = send(
        a,
        "PURGE",
        "/vod/p/1.m4s",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(purge.status, 200);
    let second = send(a, "GET", "/vod/p/1.m4s", &[]).await;
    assert_eq!(
        &second.body[..],
        b"v2",
        "a request after the purge joined the fetch that began before it"
    );
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "the in-flight request is still answered");
    assert_eq!(&first.body[..], b"v1");
    // The fetch that began after the purge is kept; the one before it is not.
    let after = send(a, "GET", "/vod/p/1.m4s", &[]).await;
    assert_eq!(&after.body[..], b"v2");
    assert!(
        after.cache_status().contains("hit"),
        "{}",
        after.cache_status()
    );
    assert_eq!(up.count(), 2);
    e.shutdown().await;
}

#[tokio::test]
async fn purge_needs_the_token_and_supports_prefixes() {
    let up = Upstream::start(|_| Reply::ok("x", &[("cache-control", "max-age=600")])).await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    for p in ["/vod/a/1.m4s", "/vod/a/2.m4s", "/vod/b/1.m4s"] {
        send(a, "GET", p, &[]).await;
    }
    assert_eq!(send(a, "PURGE", "/vod/a/1.m4s", &[]).await.status, 401);
    assert_eq!(
        send(
            a,
            "PURGE",
            "/vod/a/1.m4s",
            &[("authorization", "Bearer nope")]
        )
        .await
        .status,
        403
    );
    assert!(send(a, "GET", "/vod/a/1.m4s", &[])
        .await
        .cache_status()
        .contains("hit"));
    let ok = send(
        a,
        "PURGE",
        "/vod/a/1.m4s",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(send(a, "GET", "/vod/a/1.m4s", &[])
        .await
        .cache_status()
        .contains("fwd=miss"));
    assert!(send(a, "GET", "/vod/a/2.m4s", &[])
        .await
        .cache_status()
        .contains("hit"));
    let ok = send(
        a,
        "PURGE",
        "/vod/a/*",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(send(a, "GET", "/vod/a/2.m4s", &[])
        .await
        .cache_status()
        .contains("fwd=miss"));
    assert!(send(a, "GET", "/vod/a/1.m4s", &[])
        .await
        .cache_status()
        .contains("fwd=miss"));
    assert!(send(a, "GET", "/vod/b/1.m4s", &[])
        .await
        .cache_status()
        .contains("hit"));
    // Equivalent percent-encodings name one object, for requests and purges alike.
    assert!(send(a, "GET", "/vod/%62/1.m4s", &[])
        .await
        .cache_status()
        .contains("hit"));
    let ok = send(
        a,
        "PURGE",
        "/vod/%62/*",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(send(a, "GET", "/vod/b/1.m4s", &[])
        .await
        .cache_status()
        .contains("fwd=miss"));
    e.shutdown().await;
    // Without a configured token PURGE is refused outright.
    let e = edge(&up.url(), |c| c.purge_token = None).await;
    assert_eq!(
        send(
            e.local_addr(),
            "PURGE",
            "/x",
            &[("authorization", "Bearer s3cret")]
        )
        .await
        .status,
        403
    );
    e.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let up =
        Upstream::start(|_| Reply::ok(vec![0u8; 1000], &[("cache-control", "max-age=60")])).await;
    let e = edge(&up.url(), |c| c.name = "edge-t".into()).await;
    let a = e.local_addr();
    send(a, "GET", "/o", &[]).await;
    send(a, "GET", "/o", &[]).await;
    let h = send(a, "GET", "/health", &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(v["status"], "up");
    assert_eq!(v["name"], "edge-t");
    assert!(v["active_connections"].as_u64().unwrap() >= 1);
    assert!(v["capacity"].as_u64().unwrap() > 0);
    assert!(v["load"].as_f64().unwrap() >= 0.0);
    assert!(v["bytes_per_sec"].as_f64().is_some());
    let m = send(a, "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body).to_string();
    assert_eq!(
        metric(&t, r#"edge_requests_total{cache_status="hit"}"#),
        1.0,
        "{t}"
    );
    assert_eq!(
        metric(&t, r#"edge_requests_total{cache_status="miss"}"#),
        1.0
    );
    assert_eq!(
        metric(&t, r#"edge_served_bytes_total{source="cache"}"#),
        1000.0
    );
    assert_eq!(
        metric(&t, r#"edge_served_bytes_total{source="upstream"}"#),
        1000.0
    );
    assert_eq!(metric(&t, "edge_upstream_bytes_total"), 1000.0);
    assert_eq!(
        metric(
            &t,
            r#"edge_upstream_requests_total{status="200",tier="origin"}"#
        ),
        1.0,
        "{t}"
    );
    assert_eq!(metric(&t, "edge_stored_objects"), 1.0);
    assert!(metric(&t, "edge_stored_bytes") >= 1000.0);
    assert!(t.contains("edge_request_duration_seconds_bucket"));
    assert!(t.contains("edge_upstream_first_byte_seconds_bucket"));
    e.shutdown().await;
}

#[tokio::test]
async fn memory_stays_within_capacity_for_any_mix() {
    let up = Upstream::start(|s| {
        let size = if s.path.contains("big") { 200_000 } else { 300 };
        Reply::ok(vec![b'x'; size], &[("cache-control", "max-age=600")])
    })
    .await;
    let cap = 1_000_000u64;
    let e = edge(&up.url(), |c| {
        c.cache_size = edge::config::ByteSize(cap);
        c.max_object_size = edge::config::ByteSize(300_000);
    })
    .await;
    let a = e.local_addr();
    for i in 0..60 {
        let p = if i % 3 == 0 {
            format!("/big/{i}")
        } else {
            format!("/small/{i}")
        };
        assert_eq!(send(a, "GET", &p, &[]).await.status, 200);
    }
    // Too large to store: served, never stored.
    let up2 =
        Upstream::start(|_| Reply::ok(vec![b'y'; 400_000], &[("cache-control", "max-age=600")]))
            .await;
    let e2 = edge(&up2.url(), |c| {
        c.max_object_size = edge::config::ByteSize(300_000)
    })
    .await;
    assert_eq!(
        send(e2.local_addr(), "GET", "/huge", &[]).await.body.len(),
        400_000
    );
    assert!(!send(e2.local_addr(), "GET", "/huge", &[])
        .await
        .cache_status()
        .contains("hit"));
    let m = send(a, "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body).to_string();
    assert!(metric(&t, "edge_stored_bytes") <= cap as f64, "{t}");
    assert!(
        metric(&t, r#"edge_evictions_total{cause="size"}"#) > 0.0,
        "{t}"
    );
    e.shutdown().await;
    e2.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_400_and_loops_508() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start(|_| Reply::ok("x", &[])).await;
    let e = edge(&up.url(), |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(e.local_addr())
        .await
        .unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let looped = send(
        e.local_addr(),
        "GET",
        "/x",
        &[("via", "1.1 edge-t (cdn-edge)")],
    )
    .await;
    assert_eq!(looped.status, 508);
    assert_eq!(up.count(), 0);
    e.shutdown().await;
}

#[tokio::test]
async fn request_no_cache_revalidates_and_only_if_cached_gives_504() {
    let up = Upstream::start(|s| {
        if s.headers.contains_key("if-none-match") {
            Reply::status(304, &[("cache-control", "max-age=60"), ("etag", "\"e\"")])
        } else {
            Reply::ok(
                "body",
                &[("cache-control", "max-age=60"), ("etag", "\"e\"")],
            )
        }
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    assert_eq!(
        send(a, "GET", "/n", &[("cache-control", "only-if-cached")])
            .await
            .status,
        504
    );
    send(a, "GET", "/n", &[]).await;
    let r = send(a, "GET", "/n", &[("cache-control", "no-cache")]).await;
    assert_eq!(&r.body[..], b"body");
    assert!(
        r.cache_status().contains("fwd=request; fwd-status=304"),
        "{}",
        r.cache_status()
    );
    assert_eq!(up.count(), 2);
    e.shutdown().await;
}

#[tokio::test]
async fn stalled_upstream_body_is_cut_after_the_idle_timeout_and_not_stored() {
    let up = Upstream::start(|_| Reply {
        chunks: 3,
        chunk_delay: Duration::from_secs(3),
        ..Reply::ok(vec![5u8; 3000], &[("cache-control", "max-age=60")])
    })
    .await;
    let e = edge(&up.url(), |c| c.idle_timeout_secs = 0.5).await;
    let c = client();
    let req = http::Request::get(format!("http://{}/stall", e.local_addr()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let started = Instant::now();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body()).await;
    assert!(
        body.is_err(),
        "a stalled body must end in an error, not a short 200"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut after the idle timeout"
    );
    let m = send(e.local_addr(), "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body).to_string();
    assert_eq!(metric(&t, "edge_stored_objects"), 0.0, "{t}");
    e.shutdown().await;
}

/// An upstream that sends an interim response (103 Early Hints) before every final one, on raw
/// sockets; counts the requests it answers.
async fn early_hints_upstream(count: Arc<AtomicUsize>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = Vec::new();
                // One request per connection is enough here: read its head, answer, close.
                while !have.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let body = b"final body";
                let reply = format!(
                    "HTTP/1.1 103 Early Hints\r\nlink: </init.mp4>; rel=preload\r\n\r\n\
                     HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.write_all(body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn interim_responses_are_never_stored_or_served_as_final() {
    let count = Arc::new(AtomicUsize::new(0));
    let up = early_hints_upstream(count.clone()).await;
    let e = edge(&format!("http://{up}"), |_| {}).await;
    for round in 0..2 {
        let got = send(e.local_addr(), "GET", "/vod/a.m4s", &[]).await;
        assert_eq!(got.status, 200, "round {round}");
        assert_eq!(&got.body[..], b"final body", "round {round}");
        assert!(!got.headers.contains_key("link"), "the 103's fields leaked");
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the 200 was stored and hit"
    );
    let hit = send(e.local_addr(), "GET", "/vod/a.m4s", &[]).await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
}

#[tokio::test]
async fn signed_urls_refuse_before_the_cache_and_never_reach_the_upstream() {
    use edge::signed::{sign_url, token, KeyConfig, SignedUrlsConfig};
    let up = Upstream::start(|_| {
        Reply::ok(
            "segment",
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (
        b"0123456789abcdef-old".as_slice(),
        b"0123456789abcdef-new".as_slice(),
    );
    std::fs::write(dir.path().join("k1"), k1).unwrap();
    std::fs::write(dir.path().join("k2"), k2).unwrap();
    let keys = |ids: &[&str]| {
        ids.iter()
            .map(|id| KeyConfig {
                id: id.to_string(),
                file: dir.path().join(id),
            })
            .collect::<Vec<_>>()
    };
    let e = edge(&up.url(), |c| {
        c.signed_urls = Some(SignedUrlsConfig {
            prefixes: vec!["/vod/".into()],
            keys: keys(&["k1", "k2"]),
        })
    })
    .await;
    let a = e.local_addr();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid = token("k1", k1, "/vod/demo/", now + 300).unwrap();
    let expired = token("k1", k1, "/vod/demo/", now - 1).unwrap();
    let unknown = token("k9", k1, "/vod/demo/", now + 300).unwrap();
    let refused = [
        "/vod/demo/v0/1.m4s".to_string(),
        format!("/t/{expired}/vod/demo/v0/1.m4s"),
        format!("/t/{valid}/vod/other/v0/1.m4s"),
        format!("/t/{unknown}/vod/demo/v0/1.m4s"),
        format!(
            "/t/{}/vod/demo/v0/1.m4s",
            valid.replacen(&format!(".{}.", now + 300), &format!(".{}.", now + 999), 1)
        ),
    ];
    for path in &refused {
        let got = send(a, "GET", path, &[]).await;
        assert_eq!(got.status, 403, "{path}");
        assert_eq!(got.header("cache-control"), "no-store", "{path}");
    }
    assert_eq!(
        up.count(),
        0,
        "a refused request never reaches the upstream"
    );
    let m = send(a, "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body);
    assert_eq!(metric(&t, "edge_stored_objects"), 0.0, "{t}");
    assert_eq!(
        metric(&t, r#"edge_signed_url_refusals_total{reason="expired"}"#),
        1.0,
        "{t}"
    );
    // Valid tokens, with either key (rotation), for any path of the title: one upstream fetch,
    // without the token, and one cache entry, whatever the token.
    let url = sign_url(&format!("http://{a}/vod/demo/v0/1.m4s"), "k2", k2, now + 60).unwrap();
    let path2 = url.split_once(&a.to_string()).unwrap().1.to_string();
    for path in [format!("/t/{valid}/vod/demo/v0/1.m4s"), path2] {
        let got = send(a, "GET", &path, &[]).await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(&got.body[..], b"segment");
    }
    assert_eq!(
        up.count(),
        1,
        "the second valid token hit the same cache entry"
    );
    assert_eq!(up.seen()[0].path, "/vod/demo/v0/1.m4s", "no token upstream");
    // Outside the protected prefixes no token is needed.
    assert_eq!(send(a, "GET", "/live/x/1.m4s", &[]).await.status, 200);
    e.shutdown().await;
}

/// A client whose connections come from `local` (another loopback address is another client).
fn client_from(
    local: &str,
) -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(local.parse().unwrap()));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_while_another_is_served() {
    let up =
        Upstream::start(|s| Reply::ok(s.path.clone(), &[("cache-control", "max-age=60")])).await;
    let e = edge(&up.url(), |c| {
        c.rate_limit.requests_per_sec = 20.0;
        c.rate_limit.burst = 20.0;
        c.rate_limit.exempt = vec![];
    })
    .await;
    let a = e.local_addr();
    let flooder = client_from("127.0.0.2");
    let (mut ok, mut limited) = (0, 0);
    for i in 0..200 {
        let got = send_with(&flooder, a, "GET", &format!("/live/ch/{i}.m4s"), &[]).await;
        match got.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = got
                    .header("retry-after")
                    .parse()
                    .expect("Retry-After seconds");
                assert!((1..=2).contains(&retry), "{retry}");
                assert_eq!(got.header("cache-control"), "no-store");
            }
            s => panic!("status {s}"),
        }
    }
    // The burst and what refilled during the loop pass; the rest is refused, never fetched.
    assert!(
        (20..=60).contains(&ok) && limited == 200 - ok,
        "ok {ok}, limited {limited}"
    );
    assert_eq!(
        up.count(),
        ok,
        "a limited request never reaches the upstream"
    );
    let other = client_from("127.0.0.3");
    for i in 0..15 {
        let got = send_with(&other, a, "GET", &format!("/vod/x/{i}.m4s"), &[]).await;
        assert_eq!(got.status, 200, "another client is served in full");
    }
    let m = send(a, "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body);
    assert_eq!(metric(&t, "edge_rate_limited_total"), limited as f64, "{t}");
    e.shutdown().await;
}

// Low-latency live: bodies still being produced upstream, requests the upstream holds, blocking
// playlist reloads.

/// Chunks of a paced body, each sent `PACE` after the previous one (the first `PACE` after the
/// head), without Content-Length, as an origin sends a segment while it is being produced.
const PACED_CHUNKS: usize = 4;
const PACED_CHUNK_LEN: usize = 8 * 1024;
const PACE: Duration = Duration::from_millis(300);

fn paced_body() -> Vec<u8> {
    (0..PACED_CHUNKS * PACED_CHUNK_LEN)
        .map(|i| ((i / PACED_CHUNK_LEN) * 61 + i % 251) as u8)
        .collect()
}

fn paced_reply() -> Reply {
    Reply {
        chunks: PACED_CHUNKS,
        chunk_delay: PACE,
        no_length: true,
        ..Reply::ok(
            paced_body(),
            &[
                ("cache-control", "public, max-age=60"),
                ("etag", "\"live-7\""),
                ("content-type", "video/iso.segment"),
            ],
        )
    }
}

fn get(
    addr: std::net::SocketAddr,
    path: &str,
) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::get(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::new())
        .unwrap()
}

/// A response read frame by frame, each data frame's arrival measured from `t0`.
struct Timed {
    status: u16,
    version: http::Version,
    headers: http::HeaderMap,
    frames: Vec<(Duration, usize)>,
    body: Vec<u8>,
    error: Option<String>,
}

impl Timed {
    fn first_at(&self) -> Duration {
        self.frames.first().expect("no body bytes").0
    }

    fn last_at(&self) -> Duration {
        self.frames.last().expect("no body bytes").0
    }

    /// Bytes received by `t`.
    fn bytes_by(&self, t: Duration) -> usize {
        self.frames
            .iter()
            .filter(|(at, _)| *at <= t)
            .map(|(_, n)| n)
            .sum()
    }

    /// Moments the body arrived at: frames more than `PACE / 2` after the previous one start a
    /// new moment.
    fn arrivals(&self) -> usize {
        let mut prev: Option<Duration> = None;
        let mut n = 0;
        for (at, _) in &self.frames {
            if prev.is_none_or(|p| *at > p + PACE / 2) {
                n += 1;
            }
            prev = Some(*at);
        }
        n
    }

    fn cache_status(&self) -> String {
        self.headers
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

async fn timed<E: std::fmt::Debug>(
    response: impl std::future::Future<Output = Result<http::Response<hyper::body::Incoming>, E>>,
    t0: Instant,
) -> Timed {
    use http_body_util::BodyExt;
    let read = async {
        let resp = response.await.expect("request failed");
        let (parts, mut body) = resp.into_parts();
        let mut got = Timed {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            frames: Vec::new(),
            body: Vec::new(),
            error: None,
        };
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        got.frames.push((t0.elapsed(), d.len()));
                        got.body.extend_from_slice(d);
                    }
                }
                Err(e) => {
                    got.error = Some(e.to_string());
                    break;
                }
            }
        }
        got
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("response timed out")
}

#[tokio::test]
async fn a_paced_body_is_relayed_chunk_by_chunk_over_http1_and_http2() {
    let up = Upstream::start(|_| paced_reply()).await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let done = PACE * PACED_CHUNKS as u32;
    for (path, version) in [
        ("/live/ll/v/7.m4s", http::Version::HTTP_11),
        ("/live/ll/v/8.m4s", http::Version::HTTP_2),
    ] {
        let t0 = Instant::now();
        let got = if version == http::Version::HTTP_2 {
            timed(h2.request(get(a, path)), t0).await
        } else {
            timed(client().request(get(a, path)), t0).await
        };
        assert_eq!((got.status, got.version), (200, version));
        assert!(got.error.is_none(), "{:?}", got.error);
        assert_eq!(got.body, paced_body(), "{version:?}");
        assert!(
            !got.headers.contains_key("content-length"),
            "no length is made up"
        );
        if version == http::Version::HTTP_11 {
            assert_eq!(got.headers["transfer-encoding"], "chunked");
        }
        // The upstream's last chunk leaves at about 1.2 s; its first at 0.3 s reaches the
        // client long before, and each later one on its own.
        let (first, last) = (got.first_at(), got.last_at());
        assert!(
            last >= done - PACE / 3,
            "{version:?}: body ended at {last:?}"
        );
        assert!(
            first + 2 * PACE <= last,
            "{version:?}: first bytes at {first:?}, last at {last:?}"
        );
        assert!(
            got.bytes_by(first) < paced_body().len(),
            "{version:?}: everything came at once"
        );
        assert!(
            got.arrivals() >= PACED_CHUNKS - 1,
            "{version:?}: the body came in {} pieces: {:?}",
            got.arrivals(),
            got.frames
        );
        assert!(
            got.cache_status().contains("fwd=miss") && got.cache_status().ends_with("stored"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(up.count(), 2);
    e.shutdown().await;
}

#[tokio::test]
async fn clients_joining_a_paced_fetch_mid_body_get_the_earlier_chunks_at_once_then_the_rest() {
    let up = Upstream::start(|_| paced_reply()).await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    let path = "/live/ll/v/9.m4s";
    let t0 = Instant::now();
    // Ten clients at once, five after the first chunk has passed, five after the second.
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let joins_after = match i {
            0..=9 => 0,
            10..=14 => 1,
            _ => 2,
        };
        let at = match joins_after {
            0 => Duration::ZERO,
            n => PACE * n + PACE / 2,
        };
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((t0 + at).into()).await;
            let started = t0.elapsed();
            let got = timed(client().request(get(a, path)), t0).await;
            (joins_after, started, got)
        }));
    }
    let done = PACE * PACED_CHUNKS as u32;
    let (mut leaders, mut collapsed) = (0, 0);
    for t in tasks {
        let (joins_after, started, got) = t.await.unwrap();
        assert_eq!(got.status, 200);
        assert!(got.error.is_none(), "{:?}", got.error);
        assert!(got.body == paced_body(), "a client got another body");
        let cs = got.cache_status();
        if cs.contains("collapsed") {
            collapsed += 1;
        } else if cs.contains("fwd=miss") {
            leaders += 1;
        } else {
            panic!("neither the fetch nor a member of it: {cs}");
        }
        let (first, last) = (got.first_at(), got.last_at());
        // Nobody waits for the end of the body: it ends at about 1.2 s for everyone.
        assert!(last >= done - PACE / 3, "ended at {last:?}");
        if joins_after == 0 {
            assert!(
                first + 2 * PACE <= last,
                "first bytes at {first:?}, last at {last:?}"
            );
        } else {
            // A client joining mid-body gets what was already received at once.
            assert!(
                first < started + Duration::from_millis(250),
                "joined at {started:?}, first bytes at {first:?}"
            );
            let at_once = got.bytes_by(started + Duration::from_millis(200));
            assert!(
                at_once >= joins_after as usize * PACED_CHUNK_LEN,
                "joined at {started:?}: {at_once} bytes at once, {:?}",
                got.frames
            );
            assert!(at_once < paced_body().len(), "{:?}", got.frames);
        }
    }
    assert_eq!((leaders, collapsed), (1, 19));
    assert_eq!(up.count(), 1, "one upstream request for all of them");
    // Stored once complete: the next request is a hit.
    let hit = send(a, "GET", path, &[]).await;
    assert!(
        hit.cache_status().starts_with("edge-t; hit"),
        "{}",
        hit.cache_status()
    );
    assert!(hit.body[..] == paced_body()[..]);
    assert_eq!(up.count(), 1);
    e.shutdown().await;
}

#[tokio::test]
async fn a_paced_body_that_breaks_is_not_stored() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let up = Upstream::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply {
                fail_after: Some(2),
                ..paced_reply()
            }
        } else {
            paced_reply()
        }
    })
    .await;
    let e = edge(&up.url(), |_| {}).await;
    let a = e.local_addr();
    let path = "/live/ll/v/10.m4s";
    let t0 = Instant::now();
    let members: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { timed(client().request(get(a, path)), t0).await }))
        .collect();
    for m in members {
        let got = m.await.unwrap();
        assert_eq!(got.status, 200);
        assert!(
            got.error.is_some(),
            "a broken body must not end like a whole one"
        );
        assert_eq!(got.body, paced_body()[..2 * PACED_CHUNK_LEN]);
        assert!(
            got.first_at() + PACE / 2 <= got.last_at(),
            "{:?}",
            got.frames
        );
    }
    settle(a).await;
    let m = send(a, "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body).to_string();
    assert_eq!(metric(&t, "edge_stored_objects"), 0.0, "{t}");
    assert_eq!(up.count(), 1);
    // Fetched again, whole this time, and that one is kept.
    let again = send(a, "GET", path, &[]).await;
    assert!(again.body[..] == paced_body()[..]);
    assert!(
        again.cache_status().contains("fwd=miss"),
        "{}",
        again.cache_status()
    );
    let hit = send(a, "GET", path, &[]).await;
    assert!(hit.cache_status().starts_with("edge-t; hit"));
    assert_eq!(up.count(), 2);
    e.shutdown().await;
}

#[tokio::test]
async fn a_segment_not_yet_available_is_negative_cached_per_its_headers() {
    let clock = manual_clock();
    let published = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let p2 = published.clone();
    let up = Upstream::start_with_clock(clock.clone(), move |_| {
        if p2.load(Ordering::SeqCst) {
            paced_reply()
        } else {
            Reply {
                head_delay: Duration::from_millis(200),
                ..Reply::status(404, &[("cache-control", "public, max-age=1")])
            }
        }
    })
    .await;
    let e = edge_with_clock(&up.url(), clock.clone(), |_| {}).await;
    let a = e.local_addr();
    let path = "/live/ll/v/30.m4s";
    let storm = || async move {
        let tasks: Vec<_> = (0..20)
            .map(|_| tokio::spawn(async move { send(a, "GET", path, &[]).await }))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    };
    for got in storm().await {
        assert_eq!(got.status, 404);
    }
    assert_eq!(up.count(), 1, "20 requests at once, one upstream request");
    // Within its max-age the 404 is answered from the cache.
    for _ in 0..10 {
        let got = send(a, "GET", path, &[]).await;
        assert_eq!(got.status, 404);
        assert!(got.cache_status().starts_with("edge-t; hit"));
    }
    assert_eq!(up.count(), 1);
    // Past it, the segment (published meanwhile) is fetched once for everyone.
    published.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(2));
    for got in storm().await {
        assert_eq!(got.status, 200);
        assert!(got.body[..] == paced_body()[..]);
    }
    assert_eq!(up.count(), 2);
    e.shutdown().await;
}

#[tokio::test]
async fn blocking_playlist_reloads_are_coalesced_per_query_and_keep_their_max_age() {
    let clock = manual_clock();
    let up = Upstream::start_with_clock(clock.clone(), |s| {
        if s.path.contains("/gone") {
            return Reply::status(404, &[("cache-control", "public, max-age=1")]);
        }
        Reply {
            head_delay: Duration::from_secs(1),
            ..Reply::ok(
                format!("#EXTM3U\n# {}\n", s.path),
                &[
                    ("cache-control", "public, max-age=2"),
                    ("content-type", "application/vnd.apple.mpegurl"),
                ],
            )
        }
    })
    .await;
    // One client, not exempt, with a miss budget of 4: requests joining a held fetch are free.
    let e = edge_with_clock(&up.url(), clock.clone(), |c| {
        c.rate_limit.exempt = vec![];
        c.rate_limit.misses_per_sec = 0.01;
        c.rate_limit.miss_burst = 4.0;
    })
    .await;
    let a = e.local_addr();
    let player = client_from("127.0.0.41");
    let same = "/live/ll/v.m3u8?_HLS_msn=12&_HLS_part=3";
    let others = [
        "/live/ll/v.m3u8?_HLS_msn=12&_HLS_part=4",
        "/live/ll/v.m3u8?_HLS_msn=13&_HLS_part=0",
        "/live/ll/a.m3u8?_HLS_msn=12&_HLS_part=3",
    ];
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for path in std::iter::repeat_n(same, 20).chain(others) {
        let c = player.clone();
        tasks.push(tokio::spawn(async move {
            let got = send_with(&c, a, "GET", path, &[]).await;
            (path, t0.elapsed(), got)
        }));
    }
    // The upstream holds each request 1 s, which the shared clock sees as 3 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance(Duration::from_secs(3));
    let mut collapsed = 0;
    for t in tasks {
        let (path, took, got) = t.await.unwrap();
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.body, format!("#EXTM3U\n# {path}\n"));
        assert!(took >= Duration::from_millis(900), "{path}: {took:?}");
        // Its wait upstream is not age: fresh for its whole max-age.
        assert_eq!(got.header("age"), "0", "{path}");
        collapsed += usize::from(got.cache_status().contains("collapsed"));
    }
    assert_eq!(collapsed, 19);
    let mut seen: Vec<String> = up.seen().into_iter().map(|s| s.path).collect();
    seen.sort();
    let mut want: Vec<String> = std::iter::once(same)
        .chain(others)
        .map(String::from)
        .collect();
    want.sort();
    assert_eq!(seen, want, "one upstream request per distinct query");
    // Its max-age runs from the answer: a reload of the same query now is a hit.
    let hit = send_with(&player, a, "GET", same, &[]).await;
    assert_eq!(hit.cache_status(), "edge-t; hit; ttl=2");
    // The budget was charged once per upstream request, and each answer with content gave
    // back three quarters: 1 of the 4 tokens is spent. Misses for nothing (404) cost a whole
    // token: three more pass, the fourth is refused.
    for i in 0..3 {
        let r = send_with(&player, a, "GET", &format!("/live/ll/gone{i}.m3u8"), &[]).await;
        assert_eq!(r.status, 404, "miss {i} is within the budget");
    }
    let refused = send_with(&player, a, "GET", "/live/ll/gone3.m3u8", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(up.count(), 7);
    e.shutdown().await;
}
