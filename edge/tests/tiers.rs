//! Tiering over real sockets: a child edge with two parent edges sends each key to one parent
//! by rendezvous hashing, consistently, and fails over when that parent is down.

mod support;

use std::collections::HashMap;

use support::*;

fn parent_of(got: &Got) -> String {
    let via = got.header("via");
    ["parent-a", "parent-b"]
        .iter()
        .find(|p| via.contains(*p))
        .map(|p| p.to_string())
        .unwrap_or_else(|| "origin".to_string())
}

#[tokio::test]
async fn child_hashes_keys_to_parents_consistently_and_fails_over() {
    let origin = Upstream::start(|s| {
        Reply::ok(
            format!("object {}", s.path),
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        )
    })
    .await;
    let pa = edge(&origin.url(), |c| c.name = "parent-a".into()).await;
    let pb = edge(&origin.url(), |c| c.name = "parent-b".into()).await;
    let parents = vec![
        format!("http://{}", pa.local_addr()),
        format!("http://{}", pb.local_addr()),
    ];
    let child = edge(&origin.url(), |c| {
        c.name = "child".into();
        c.parents = parents.clone();
    })
    .await;
    let a = child.local_addr();
    let keys: Vec<String> = (0..24).map(|i| format!("/live/seg-{i}.m4s")).collect();
    let mut first: HashMap<String, String> = HashMap::new();
    for k in &keys {
        let got = send(a, "GET", k, &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(String::from_utf8_lossy(&got.body), format!("object {k}"));
        assert!(
            !got.headers.contains_key("cdn-cache-control"),
            "not forwarded to end users"
        );
        // The parent's and then the child's Cache-Status members, in that order.
        let cs = got.cache_status();
        assert!(cs.contains("fwd=miss") && cs.ends_with("stored"), "{cs}");
        first.insert(k.clone(), parent_of(&got));
    }
    let used: std::collections::HashSet<_> = first.values().cloned().collect();
    assert!(
        used.contains("parent-a") && used.contains("parent-b"),
        "both parents used: {first:?}"
    );
    assert_eq!(
        origin.count(),
        keys.len(),
        "each key fetched from the origin once"
    );

    // The child cached them (CDN-Cache-Control reached it through the parent).
    let hit = send(a, "GET", &keys[0], &[]).await;
    assert!(
        hit.cache_status().ends_with("hit; ttl=600") || hit.cache_status().contains("child; hit"),
        "{}",
        hit.cache_status()
    );

    // Same key, same parent: the parents answer from their caches, the origin sees nothing new.
    let purge = send(a, "PURGE", "/live/*", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(purge.status, 200);
    for k in &keys {
        let got = send(a, "GET", k, &[]).await;
        assert_eq!(parent_of(&got), first[k], "{k} moved");
        assert!(got.cache_status().contains("hit"), "{}", got.cache_status());
    }
    assert_eq!(origin.count(), keys.len());

    // Parent A dies: its keys fail over (to parent B, then the origin); B's keys stay put.
    pa.abort();
    send(a, "PURGE", "/live/*", &[("authorization", "Bearer s3cret")]).await;
    for k in &keys {
        let got = send(a, "GET", k, &[]).await;
        assert_eq!(got.status, 200, "{k}");
        assert_eq!(String::from_utf8_lossy(&got.body), format!("object {k}"));
        assert_eq!(
            parent_of(&got),
            "parent-b",
            "{k} not failed over to parent-b"
        );
    }
    let m = send(a, "GET", "/metrics", &[]).await;
    let t = String::from_utf8_lossy(&m.body).to_string();
    assert!(
        t.contains(r#"status="connect_error""#),
        "failed attempts are counted: {t}"
    );
    child.shutdown().await;
    pb.shutdown().await;
}

#[tokio::test]
async fn child_falls_back_to_origin_when_all_parents_are_down() {
    let origin =
        Upstream::start(|_| Reply::ok("from origin", &[("cache-control", "max-age=60")])).await;
    let child = edge(&origin.url(), |c| {
        c.name = "child".into();
        c.parents = vec!["http://127.0.0.1:9".into(), "http://127.0.0.1:11".into()];
    })
    .await;
    let got = send(child.local_addr(), "GET", "/x", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"from origin");
    assert_eq!(origin.count(), 1);
    child.shutdown().await;
}
