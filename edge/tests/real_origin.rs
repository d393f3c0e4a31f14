//! The edge in front of the real origin crate, over real sockets: hits, conditional
//! revalidation answered 304 by the origin, the miss storm, stale serving with the origin
//! stopped, purge, and a child edge with two parents. Entries age on a virtual clock the origin
//! and the edge share, not by waiting.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

const MPD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011"><Period/></MPD>
"#;

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A content root, removed when dropped.
struct Root(PathBuf);

impl std::ops::Deref for Root {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A content root with one MPD and a few 1 MiB segments.
fn content() -> Root {
    let root = std::env::temp_dir().join(format!(
        "edge-real-origin-{}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::SeqCst)
    ));
    let seg_dir = root.join("vod/demo/v0");
    std::fs::create_dir_all(&seg_dir).unwrap();
    std::fs::write(root.join("vod/demo/manifest.mpd"), MPD).unwrap();
    for i in 1..=4u32 {
        let body: Vec<u8> = (0..1u32 << 20)
            .map(|b| (b.wrapping_mul(i) % 253) as u8)
            .collect();
        std::fs::write(seg_dir.join(format!("{i}.m4s")), body).unwrap();
    }
    Root(root)
}

fn origin_config(root: &std::path::Path, mpd_cache_control: &str) -> origin::Config {
    let mut c = origin::Config {
        root: root.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..origin::Config::default()
    };
    c.cache_control.mpd = mpd_cache_control.to_string();
    c
}

async fn start_origin(root: &std::path::Path, mpd_cache_control: &str) -> origin::Origin {
    origin::spawn(origin_config(root, mpd_cache_control))
        .await
        .unwrap()
}

/// An origin dating its responses by `clock`, the edge's virtual time.
async fn start_origin_on(
    root: &std::path::Path,
    mpd_cache_control: &str,
    clock: Arc<edge::ManualClock>,
) -> origin::Origin {
    origin::spawn_with_clock(origin_config(root, mpd_cache_control), clock)
        .await
        .unwrap()
}

/// Sum of a counter family in the origin's registry, leaving out its service endpoints.
fn origin_counter(o: &origin::Origin, family: &str) -> u64 {
    o.registry()
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            !m.get_label()
                .iter()
                .any(|l| l.name() == "kind" && l.value() == "service")
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

fn origin_requests(o: &origin::Origin) -> u64 {
    origin_counter(o, "origin_http_requests_total")
}

#[tokio::test]
async fn second_get_is_a_hit_and_the_origin_counts_one() {
    let root = content();
    let o = start_origin(&root, "public, max-age=60").await;
    let e = edge(&o.url(), |_| {}).await;
    let first = send(e.local_addr(), "GET", "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(&first.body[..], MPD.as_bytes());
    let second = send(e.local_addr(), "GET", "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(&second.body[..], MPD.as_bytes());
    assert!(
        second.cache_status().starts_with("edge-t; hit"),
        "{}",
        second.cache_status()
    );
    assert!(second.headers.contains_key("age"));
    assert_eq!(origin_requests(&o), 1);
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test]
async fn after_max_age_one_conditional_get_gets_304_and_the_client_the_full_body() {
    let root = content();
    let clock = manual_clock();
    let o = start_origin_on(&root, "public, max-age=1", clock.clone()).await;
    let e = edge_with_clock(&o.url(), clock.clone(), |_| {}).await;
    let first = send(e.local_addr(), "GET", "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(first.status, 200);
    clock.advance(Duration::from_millis(2100));
    let addr = e.local_addr();
    // Several clients at once after expiry: still exactly one conditional GET.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move { send(addr, "GET", "/vod/demo/manifest.mpd", &[]).await })
        })
        .collect();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(&got.body[..], MPD.as_bytes(), "full cached body");
        let cs = got.cache_status();
        assert!(
            cs.contains("fwd=stale; fwd-status=304") || cs.contains("hit"),
            "{cs}"
        );
    }
    assert_eq!(
        origin_requests(&o),
        2,
        "one initial GET, one conditional GET"
    );
    assert_eq!(
        origin_counter(&o, "origin_http_not_modified_total"),
        1,
        "the origin answered 304"
    );
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test]
async fn miss_storm_of_200_makes_the_origin_count_exactly_one() {
    let root = content();
    let expected = std::fs::read(root.join("vod/demo/v0/2.m4s")).unwrap();
    let o = start_origin(&root, "public, max-age=60").await;
    let e = edge(&o.url(), |_| {}).await;
    let addr = e.local_addr();
    let tasks: Vec<_> = (0..200)
        .map(|_| tokio::spawn(async move { send(addr, "GET", "/vod/demo/v0/2.m4s", &[]).await }))
        .collect();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        assert!(got.body[..] == expected[..], "segment body differs");
    }
    assert_eq!(
        origin_requests(&o),
        1,
        "exactly one origin request for 200 concurrent clients"
    );
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test]
async fn with_the_origin_stopped_a_stale_copy_is_served() {
    let root = content();
    let clock = manual_clock();
    let o = start_origin_on(&root, "public, max-age=1", clock.clone()).await;
    let e = edge_with_clock(&o.url(), clock.clone(), |_| {}).await;
    assert_eq!(
        send(e.local_addr(), "GET", "/vod/demo/manifest.mpd", &[])
            .await
            .status,
        200
    );
    o.shutdown().await;
    clock.advance(Duration::from_millis(2100));
    let got = send(e.local_addr(), "GET", "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], MPD.as_bytes());
    let cs = got.cache_status();
    assert!(
        cs.contains("fwd=stale") && cs.contains("detail=stale-if-error"),
        "{cs}"
    );
    // Nothing stored for this one: the client is told the upstream is unreachable.
    assert_eq!(
        send(e.local_addr(), "GET", "/vod/demo/v0/3.m4s", &[])
            .await
            .status,
        502
    );
    e.shutdown().await;
}

#[tokio::test]
async fn purge_works_only_with_the_token() {
    let root = content();
    let o = start_origin(&root, "public, max-age=60").await;
    let e = edge(&o.url(), |_| {}).await;
    let a = e.local_addr();
    send(a, "GET", "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(
        send(a, "PURGE", "/vod/demo/manifest.mpd", &[]).await.status,
        401
    );
    assert_eq!(
        send(
            a,
            "PURGE",
            "/vod/demo/manifest.mpd",
            &[("authorization", "Bearer wrong")]
        )
        .await
        .status,
        403
    );
    assert!(send(a, "GET", "/vod/demo/manifest.mpd", &[])
        .await
        .cache_status()
        .contains("hit"));
    assert_eq!(origin_requests(&o), 1);
    assert_eq!(
        send(
            a,
            "PURGE",
            "/vod/demo/*",
            &[("authorization", "Bearer s3cret")]
        )
        .await
        .status,
        200
    );
    assert!(send(a, "GET", "/vod/demo/manifest.mpd", &[])
        .await
        .cache_status()
        .contains("fwd=miss"));
    assert_eq!(origin_requests(&o), 2);
    e.shutdown().await;
    o.shutdown().await;
}

fn parent_of(got: &Got) -> &'static str {
    let via = got.header("via");
    ["parent-a", "parent-b"]
        .into_iter()
        .find(|p| via.contains(p))
        .unwrap_or("origin")
}

#[tokio::test]
async fn child_with_two_parents_is_consistent_and_fails_over() {
    let root = content();
    let o = start_origin(&root, "public, max-age=60").await;
    let pa = edge(&o.url(), |c| c.name = "parent-a".into()).await;
    let pb = edge(&o.url(), |c| c.name = "parent-b".into()).await;
    let parents = vec![
        format!("http://{}", pa.local_addr()),
        format!("http://{}", pb.local_addr()),
    ];
    let child = edge(&o.url(), |c| {
        c.name = "child".into();
        c.parents = parents;
    })
    .await;
    let a = child.local_addr();
    let paths: Vec<String> = (1..=4)
        .map(|i| format!("/vod/demo/v0/{i}.m4s"))
        .chain(["/vod/demo/manifest.mpd".to_string()])
        .collect();
    let mut chosen = Vec::new();
    for p in &paths {
        let got = send(a, "GET", p, &[]).await;
        assert_eq!(got.status, 200);
        chosen.push(parent_of(&got));
    }
    assert!(chosen.iter().all(|c| *c != "origin"), "{chosen:?}");
    assert_eq!(origin_requests(&o), paths.len() as u64);
    // Again after purging the child: same parent per key, answered from the parent's cache.
    send(a, "PURGE", "/vod/*", &[("authorization", "Bearer s3cret")]).await;
    for (p, c) in paths.iter().zip(&chosen) {
        let got = send(a, "GET", p, &[]).await;
        assert_eq!(parent_of(&got), *c, "{p}");
    }
    assert_eq!(origin_requests(&o), paths.len() as u64);
    // Take down whichever parent the first key chose: its keys fail over to the other.
    let (down, other) = if chosen[0] == "parent-a" {
        (pa, pb)
    } else {
        (pb, pa)
    };
    down.abort();
    send(a, "PURGE", "/vod/*", &[("authorization", "Bearer s3cret")]).await;
    let survivor = if chosen[0] == "parent-a" {
        "parent-b"
    } else {
        "parent-a"
    };
    for p in &paths {
        let got = send(a, "GET", p, &[]).await;
        assert_eq!(got.status, 200, "{p}");
        assert_eq!(parent_of(&got), survivor, "{p}");
    }
    child.shutdown().await;
    other.shutdown().await;
    o.shutdown().await;
}
