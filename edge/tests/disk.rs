//! The disk tier over real sockets, with a counting origin: more objects than memory holds,
//! warm restarts (graceful, and after SIGKILL of an edge process during misses), torn and
//! corrupted files, PURGE across a restart, a 304 refreshing stored headers on disk, Range /
//! HEAD / conditionals answered from disk, and write failures degrading to memory-only.
//!
//! Every request names one Host, so keys stay the same when a restarted edge listens on another
//! port.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use edge::config::ByteSize;
use edge::key::CacheKey;
use edge::ManualClock;
use support::*;

const HOST: &str = "cdn.test";
const MIB: usize = 1 << 20;

/// A deterministic body for object `i` of `len` bytes (differs per object and per byte).
fn body_of(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `/obj/<i>/<len>` -> that body, cacheable for an hour, with an ETag; the chunked variant
/// sends it in 8 pieces 100 ms apart.
fn origin_reply(s: &Seen) -> Reply {
    let parts: Vec<&str> = s.path.split('/').collect();
    let (i, len) = match parts.as_slice() {
        ["", "obj" | "slow", i, len] => (i.parse().unwrap_or(0), len.parse().unwrap_or(0)),
        _ => return Reply::status(404, &[]),
    };
    let etag = format!("\"{i}-{len}\"");
    let mut r = Reply::ok(
        body_of(i, len),
        &[("cache-control", "max-age=3600"), ("etag", &etag)],
    );
    if parts[1] == "slow" {
        r.chunks = 8;
        r.chunk_delay = Duration::from_millis(150);
    }
    r
}

fn count_of(origin: &Upstream, path: &str) -> usize {
    origin.seen().iter().filter(|s| s.path == path).count()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Got {
    send(addr, "GET", path, &[("host", HOST)]).await
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    String::from_utf8_lossy(&send(addr, "GET", "/metrics", &[]).await.body).into_owned()
}

fn key(path: &str) -> CacheKey {
    CacheKey {
        host: HOST.into(),
        path: path.into(),
    }
}

fn with_disk(dir: &Path, memory: u64) -> impl FnOnce(&mut edge::Config) {
    let dir = dir.to_path_buf();
    move |c: &mut edge::Config| {
        c.cache_dir = Some(dir);
        c.disk_size = ByteSize(1 << 30);
        c.cache_size = ByteSize(memory);
    }
}

async fn disk_edge(origin: &str, dir: &Path, memory: u64) -> edge::Edge {
    let e = edge(origin, with_disk(dir, memory)).await;
    e.disk().expect("disk tier").loaded().await;
    e
}

/// Fetches `paths` with `parallel` requests at a time and checks each body.
async fn fetch_all(addr: std::net::SocketAddr, paths: &[(String, Vec<u8>)], parallel: usize) {
    for batch in paths.chunks(parallel) {
        let mut set = tokio::task::JoinSet::new();
        for (p, want) in batch.iter().cloned() {
            set.spawn(async move {
                let got = get(addr, &p).await;
                assert_eq!(got.status, 200, "{p}");
                assert!(
                    got.body[..] == want[..],
                    "{p}: body differs from the origin's"
                );
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn larger_than_memory_then_a_warm_restart() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    let edge1 = disk_edge(&origin.url(), dir.path(), 16 << 20).await;
    let a = edge1.local_addr();
    let objects: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("/obj/{i}/{MIB}"), body_of(i, MIB)))
        .collect();
    fetch_all(a, &objects, 8).await;
    settle(a).await;
    fetch_all(a, &objects, 8).await;
    assert_eq!(
        origin.count(),
        200,
        "each object fetched from the origin once"
    );
    for (p, _) in &objects {
        assert_eq!(count_of(&origin, p), 1, "{p}");
    }
    let m = metrics(a).await;
    assert_eq!(metric(&m, "edge_disk_objects"), 200.0);
    let used = metric(&m, "edge_disk_used_bytes");
    assert!(
        used >= 200.0 * MIB as f64 && used <= 1024.0 * MIB as f64,
        "{used}"
    );
    assert_eq!(metric(&m, "edge_disk_capacity_bytes"), (1u64 << 30) as f64);
    let disk_hits = metric(&m, r#"edge_tier_hits_total{tier="disk"}"#);
    assert!(disk_hits >= 150.0, "most second reads come from disk: {m}");
    assert!(metric(&m, "edge_stored_bytes") <= (16 << 20) as f64);
    assert!(metric(&m, "edge_disk_write_bytes_total") >= 200.0 * MIB as f64);

    // Graceful stop, start on the same directory: served warm, the origin sees nothing.
    edge1.shutdown().await;
    let edge2 = disk_edge(&origin.url(), dir.path(), 16 << 20).await;
    let b = edge2.local_addr();
    let m = metrics(b).await;
    assert_eq!(metric(&m, "edge_disk_objects"), 200.0);
    assert!(metric(&m, "edge_disk_index_load_seconds") > 0.0);
    fetch_all(b, &objects, 8).await;
    assert_eq!(
        origin.count(),
        200,
        "a warm restart does not go to the origin"
    );
    let hit = get(b, "/obj/7/1048576").await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
    // After the restart memory is empty: /obj/7's first disk hit, in the pass above, verified
    // its file; later hits are served from its mapping, still disk hits, never promoted.
    let tier =
        |t: &str, tier: &str| metric(t, &format!(r#"edge_tier_hits_total{{tier="{tier}"}}"#));
    let before = metrics(b).await;
    for _ in 0..3 {
        assert!(get(b, "/obj/7/1048576").await.body[..] == body_of(7, MIB)[..]);
    }
    let after = metrics(b).await;
    assert_eq!(tier(&after, "disk") - tier(&before, "disk"), 3.0);
    assert_eq!(tier(&after, "memory"), tier(&before, "memory"));
    edge2.shutdown().await;
}

#[tokio::test]
async fn disk_hits_answer_range_head_and_conditionals_and_promote() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    // Memory keeps nothing above 64 KiB: the 3 MiB object lives on disk only and streams.
    let e = edge(&origin.url(), |c| {
        with_disk(dir.path(), 16 << 20)(c);
        c.memory_max_object_size = Some(ByteSize(64 << 10));
    })
    .await;
    e.disk().unwrap().loaded().await;
    let a = e.local_addr();
    let big = format!("/obj/1/{}", 3 * MIB);
    let want = body_of(1, 3 * MIB);
    assert!(get(a, &big).await.body[..] == want[..]);
    settle(a).await;
    let full = get(a, &big).await;
    assert!(full.body[..] == want[..]);
    assert!(full.cache_status().contains("hit"));
    let r = send(
        a,
        "GET",
        &big,
        &[("host", HOST), ("range", "bytes=1000000-1000099")],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        format!("bytes 1000000-1000099/{}", 3 * MIB)
    );
    assert_eq!(&r.body[..], &want[1_000_000..1_000_100]);
    let tail = send(a, "GET", &big, &[("host", HOST), ("range", "bytes=-10")]).await;
    assert_eq!(&tail.body[..], &want[want.len() - 10..]);
    let head = send(a, "HEAD", &big, &[("host", HOST)]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), (3 * MIB).to_string());
    assert!(head.body.is_empty());
    let inm = send(
        a,
        "GET",
        &big,
        &[("host", HOST), ("if-none-match", "\"1-3145728\"")],
    )
    .await;
    assert_eq!(inm.status, 304);
    let bad = send(a, "GET", &big, &[("host", HOST), ("if-match", "\"other\"")]).await;
    assert_eq!(bad.status, 412);
    assert_eq!(count_of(&origin, &big), 1);

    // A small object: its second disk hit promotes it to memory.
    let small = "/obj/2/1000";
    get(a, small).await;
    settle(a).await;
    let before = metrics(a).await;
    for _ in 0..4 {
        assert_eq!(&get(a, small).await.body[..], &body_of(2, 1000)[..]);
    }
    let after = metrics(a).await;
    let mem = |t: &str| metric(t, r#"edge_tier_hits_total{tier="memory"}"#);
    // Written through to memory on the miss already (it fits): served from memory.
    assert!(mem(&after) - mem(&before) >= 4.0, "{after}");
    let served = metric(&after, r#"edge_served_bytes_total{source="cache"}"#);
    assert!(served >= (3 * MIB) as f64);
    assert!(metric(&after, "edge_disk_read_bytes_total") >= (3 * MIB) as f64);
    e.shutdown().await;
}

#[tokio::test]
async fn torn_and_corrupted_files_are_refetched_never_served() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    let e = edge(&origin.url(), |c| {
        with_disk(dir.path(), 16 << 20)(c);
        // Objects on disk only, so that every hit reads its file.
        c.memory_max_object_size = Some(ByteSize(1024));
    })
    .await;
    e.disk().unwrap().loaded().await;
    let a = e.local_addr();
    let paths: Vec<String> = (0..3).map(|i| format!("/obj/{i}/200000")).collect();
    for p in &paths {
        get(a, p).await;
    }
    settle(a).await;
    let disk = e.disk().unwrap();
    // Truncate one file, flip one body byte in another.
    let torn = disk.file_of(&key(&paths[0])).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&torn).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 1000).unwrap();
    drop(f);
    let flipped = disk.file_of(&key(&paths[1])).unwrap();
    let mut bytes = std::fs::read(&flipped).unwrap();
    let at = bytes.len() - 4 - 100_000;
    bytes[at] ^= 1;
    std::fs::write(&flipped, &bytes).unwrap();

    for (i, p) in paths.iter().enumerate() {
        let got = get(a, p).await;
        assert_eq!(got.status, 200);
        assert!(
            got.body[..] == body_of(i, 200_000)[..],
            "{p} served wrong bytes"
        );
    }
    assert_eq!(count_of(&origin, &paths[0]), 2, "torn file refetched");
    assert_eq!(count_of(&origin, &paths[1]), 2, "corrupted file refetched");
    assert_eq!(
        count_of(&origin, &paths[2]),
        1,
        "intact file served from disk"
    );
    let m = metrics(a).await;
    assert_eq!(metric(&m, r#"edge_disk_errors_total{op="corrupt"}"#), 2.0);
    // The refetched copies were written again and are served from disk.
    settle(a).await;
    for (i, p) in paths.iter().enumerate() {
        assert!(get(a, p).await.body[..] == body_of(i, 200_000)[..]);
    }
    assert_eq!(origin.count(), 5);
    assert!(!torn.exists() && !flipped.exists(), "bad files deleted");
    e.shutdown().await;
}

#[tokio::test]
async fn a_purged_object_stays_purged_after_a_restart() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    let e = disk_edge(&origin.url(), dir.path(), 16 << 20).await;
    let a = e.local_addr();
    for p in ["/obj/1/5000", "/obj/2/5000", "/obj/3/5000"] {
        get(a, p).await;
    }
    settle(a).await;
    let auth = ("authorization", "Bearer s3cret");
    let one = send(a, "PURGE", "/obj/1/5000", &[auth]).await;
    assert_eq!(one.status, 200);
    assert!(String::from_utf8_lossy(&one.body).contains("\"objects\":1"));
    let prefix = send(a, "PURGE", "/obj/2*", &[auth]).await;
    assert_eq!(prefix.status, 200);
    e.shutdown().await;
    let e = disk_edge(&origin.url(), dir.path(), 16 << 20).await;
    let a = e.local_addr();
    for (i, p) in ["/obj/1/5000", "/obj/2/5000", "/obj/3/5000"]
        .iter()
        .enumerate()
    {
        assert!(get(a, p).await.body[..] == body_of(i + 1, 5000)[..]);
    }
    assert_eq!(count_of(&origin, "/obj/1/5000"), 2, "purged: fetched again");
    assert_eq!(
        count_of(&origin, "/obj/2/5000"),
        2,
        "purged by prefix: fetched again"
    );
    assert_eq!(
        count_of(&origin, "/obj/3/5000"),
        1,
        "kept across the restart"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn a_304_refreshes_the_headers_on_disk_and_age_survives_a_restart() {
    let clock = manual_clock();
    let origin = Upstream::start_with_clock(clock.clone(), |s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            Reply::status(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=100"),
                    ("x-version", "2"),
                ],
            )
        } else {
            Reply::ok(
                "the body",
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=10"),
                    ("x-version", "1"),
                ],
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let start = |clock: Arc<ManualClock>| {
        let (url, dir) = (origin.url(), dir.path().to_path_buf());
        async move {
            let e = edge_with_clock(&url, clock, with_disk(&dir, 16 << 20)).await;
            e.disk().unwrap().loaded().await;
            e
        }
    };
    let e = start(clock.clone()).await;
    let a = e.local_addr();
    assert_eq!(get(a, "/m").await.header("x-version"), "1");
    settle(a).await;
    clock.advance(Duration::from_secs(20));
    let re = get(a, "/m").await;
    assert_eq!(&re.body[..], b"the body");
    assert_eq!(re.header("x-version"), "2", "{}", re.cache_status());
    settle(a).await;
    e.shutdown().await;
    assert_eq!(origin.count(), 2);

    let e = start(clock.clone()).await;
    let a = e.local_addr();
    clock.advance(Duration::from_secs(30));
    let got = get(a, "/m").await;
    assert_eq!(&got.body[..], b"the body");
    assert_eq!(
        got.header("x-version"),
        "2",
        "the refreshed headers were on disk"
    );
    assert_eq!(
        got.header("age"),
        "30",
        "Age counts from the 304, across the restart"
    );
    assert!(got.cache_status().contains("hit"), "{}", got.cache_status());
    assert_eq!(
        origin.count(),
        2,
        "fresh after the restart: no origin request"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn write_failures_degrade_to_memory_only() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    let e = disk_edge(&origin.url(), dir.path(), 16 << 20).await;
    let a = e.local_addr();
    get(a, "/obj/1/5000").await;
    settle(a).await;
    // Writes now fail: tmp/ becomes a file (ENOTDIR). Tests run as root, which ignores
    // permission bits, and mounting a small tmpfs would need privileges a test should not use.
    let tmp = dir.path().join("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"in the way").unwrap();
    for i in 2..5 {
        let p = format!("/obj/{i}/5000");
        let got = get(a, &p).await;
        assert_eq!(got.status, 200, "a miss is still served");
        assert!(got.body[..] == body_of(i, 5000)[..]);
    }
    settle(a).await;
    for i in 1..5 {
        let got = get(a, &format!("/obj/{i}/5000")).await;
        assert!(got.cache_status().contains("hit"), "{}", got.cache_status());
        assert!(got.body[..] == body_of(i, 5000)[..]);
    }
    assert_eq!(origin.count(), 4, "memory still caches");
    let m = metrics(a).await;
    assert!(
        metric(&m, r#"edge_disk_errors_total{op="write"}"#) >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "edge_disk_writes_suspended"), 1.0);
    assert_eq!(metric(&m, "edge_disk_objects"), 1.0);
    e.shutdown().await;
}

/// A full disk, made real with a file-size limit on an edge process (writing past it fails
/// with EFBIG, as a full file system fails with ENOSPC; SIGXFSZ is ignored so that the write
/// returns the error instead of killing the process): hits and misses are still served, from
/// memory and the origin, and the write errors are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_to_memory_only() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    let cache: PathBuf = dir.path().join("cache");
    // Files of at most 256 KiB: the small objects fit, a 600 KB one does not.
    let (mut child, a) = child_edge(&origin.url(), &cache, "trap '' XFSZ\nulimit -f 256").await;
    let small: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("/obj/{i}/5000"), body_of(i, 5000)))
        .collect();
    fetch_all(a, &small, 3).await;
    settle(a).await;
    let m = metrics(a).await;
    assert_eq!(metric(&m, "edge_disk_objects"), 3.0, "{m}");
    assert_eq!(metric(&m, r#"edge_disk_errors_total{op="write"}"#), 0.0);

    let big = vec![("/obj/10/600000".to_string(), body_of(10, 600_000))];
    fetch_all(a, &big, 1).await;
    settle(a).await;
    let m = metrics(a).await;
    assert_eq!(
        metric(&m, r#"edge_disk_errors_total{op="write"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "edge_disk_writes_suspended"), 1.0);
    // Writes are off for a while: new misses are served and kept in memory only.
    let more: Vec<(String, Vec<u8>)> = (20..23)
        .map(|i| (format!("/obj/{i}/5000"), body_of(i, 5000)))
        .collect();
    fetch_all(a, &more, 3).await;
    settle(a).await;
    // Everything again: hits, from memory or from disk, never the origin.
    let all: Vec<(String, Vec<u8>)> = small.iter().chain(&big).chain(&more).cloned().collect();
    fetch_all(a, &all, 4).await;
    for (p, _) in &all {
        assert_eq!(count_of(&origin, p), 1, "{p} was fetched again");
    }
    let m = metrics(a).await;
    assert_eq!(
        metric(&m, "edge_disk_objects"),
        3.0,
        "nothing new on disk: {m}"
    );
    assert!(
        metric(&m, r#"edge_tier_hits_total{tier="memory"}"#) >= 4.0,
        "{m}"
    );
    let left = std::fs::read_dir(cache.join("tmp")).unwrap().count();
    assert_eq!(left, 0, "the failed write left no partial file");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Not a test of its own: the edge process that `killed_during_misses_then_restarted` and
/// `a_full_disk_degrades_to_memory_only` start (this test binary run again, with
/// `EDGE_DISK_CHILD` set) and kill with SIGKILL. Without the variable it returns at once.
#[test]
fn child_edge_process() {
    let Ok(spec) = std::env::var("EDGE_DISK_CHILD") else {
        return;
    };
    let (upstream, dir) = spec.split_once('|').expect("upstream|dir");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let e = disk_edge(upstream, Path::new(dir), 16 << 20).await;
        println!("EDGE_ADDR {}", e.local_addr());
        std::io::stdout().flush().unwrap();
        // Killed by the parent long before this ends.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// Starts `child_edge_process` (this test binary run again) on `cache`, through `bash` with
/// `limits` run first (e.g. `ulimit -f 256`), and returns it with its listening address.
async fn child_edge(
    origin: &str,
    cache: &Path,
    limits: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    let bash = common::tools::require("bash");
    let script = format!("{limits}\nexec \"$0\" \"$@\"");
    let mut child = Command::new(bash)
        .arg("-c")
        .arg(script)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_edge_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("EDGE_DISK_CHILD", format!("{origin}|{}", cache.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines().take(50) {
            // The harness prints "test child_edge_process ... " before it on the same line.
            if let Some((_, a)) = line.ok()?.split_once("EDGE_ADDR ") {
                return a.trim().parse::<std::net::SocketAddr>().ok();
            }
        }
        None
    });
    let addr = tokio::time::timeout(Duration::from_secs(30), addr)
        .await
        .expect("the child edge did not start in 30 s")
        .unwrap()
        .expect("the child edge printed no address");
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_misses_then_restarted() {
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    let cache: PathBuf = dir.path().join("cache");
    let (mut child, addr) = child_edge(&origin.url(), &cache, "").await;

    // Complete objects first, then a burst of slow misses (each body takes 1.2 s).
    let done: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("/obj/{i}/300000"), body_of(i, 300_000)))
        .collect();
    fetch_all(addr, &done, 4).await;
    settle(addr).await;
    let slow: Vec<(String, Vec<u8>)> = (100..120)
        .map(|i| (format!("/slow/{i}/400000"), body_of(i, 400_000)))
        .collect();
    let mut burst = Vec::new();
    for (p, _) in &slow {
        let p = p.clone();
        burst.push(tokio::spawn(async move {
            let mut b = http::Request::builder()
                .uri(format!("http://{addr}{p}"))
                .header("host", HOST);
            b = b.method("GET");
            let _ = client()
                .request(b.body(http_body_util::Empty::new()).unwrap())
                .await;
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slow.iter().any(|(p, _)| count_of(&origin, p) == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for b in burst {
        let _ = b.await;
    }

    let e = disk_edge(&origin.url(), &cache, 16 << 20).await;
    let a = e.local_addr();
    let tmp_left = std::fs::read_dir(cache.join("tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "partial writes removed at start");
    fetch_all(a, &done, 4).await;
    fetch_all(a, &slow, 20).await;
    for (p, _) in &done {
        assert_eq!(count_of(&origin, p), 1, "{p} was complete before the kill");
    }
    for (p, _) in &slow {
        assert_eq!(count_of(&origin, p), 2, "{p} was in flight: fetched again");
    }
    e.shutdown().await;
}

/// A restarted store finds every object it held, and says how long the index rebuild took:
/// 500 objects of 16 KiB in the test command; `EDGE_DISK_LOAD_N=100000 cargo test -p edge --test
/// disk -- --nocapture index_rebuild_time` for the figures in docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_rebuild_time() {
    use edge::disk::{DiskMetrics, DiskOptions, DiskStore};
    use edge::policy::{Freshness, PolicyConfig};
    let n: usize = std::env::var("EDGE_DISK_LOAD_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let metrics = edge::metrics::Metrics::new("l").unwrap();
    let open = || {
        DiskStore::open(DiskOptions {
            dir: dir.path().to_path_buf(),
            capacity: 1 << 40,
            policy: PolicyConfig::default(),
            clock: Arc::new(edge::SystemClock),
            purges: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            metrics: DiskMetrics::from(&metrics),
        })
        .unwrap()
    };
    let store = open();
    store.loaded().await;
    let mut h = http::HeaderMap::new();
    h.insert("cache-control", "max-age=86400".parse().unwrap());
    h.insert("content-type", "video/iso.segment".parse().unwrap());
    h.insert("etag", "\"5f3a9c-4000\"".parse().unwrap());
    let cfg = PolicyConfig::default();
    let now = std::time::SystemTime::now();
    let f = Freshness::new(&cfg, http::StatusCode::OK, &h, now, now);
    let e = Arc::new(edge::store::Stored::new(
        &cfg,
        http::StatusCode::OK,
        h,
        &[],
        f,
        Vec::new(),
    ));
    let seg = bytes::Bytes::from(vec![7u8; 16 << 10]);
    for batch in (0..n).collect::<Vec<_>>().chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for &i in batch {
            let (store, e, seg) = (store.clone(), e.clone(), seg.clone());
            set.spawn(async move {
                let k = key(&format!("/vod/title-{}/video/seg-{i:06}.m4s", i % 97));
                assert!(store.insert_fetched(&k, &e, vec![seg], 0).await);
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
    drop(store);
    let started = std::time::Instant::now();
    let store = open();
    let opened = started.elapsed();
    store.loaded().await;
    let loaded = started.elapsed();
    assert_eq!(store.objects(), n);
    eprintln!(
        "{n} objects: open returned in {:.1} ms, index rebuilt in {:.2} s",
        opened.as_secs_f64() * 1e3,
        loaded.as_secs_f64()
    );
}

#[tokio::test]
async fn stale_while_revalidate_and_stale_if_error_from_a_streamed_disk_entry() {
    let clock = manual_clock();
    let len = 3 * MIB;
    let cc = "max-age=10, stale-while-revalidate=30, stale-if-error=600";
    let mut origin = Upstream::start_with_clock(clock.clone(), move |s| {
        if s.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            Reply::status(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", cc),
                    ("x-version", "2"),
                ],
            )
        } else {
            Reply::ok(
                body_of(5, len),
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", cc),
                    ("x-version", "1"),
                ],
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Disk only (memory keeps nothing above 64 KiB), and above READ_WHOLE: it streams.
    let e = edge_with_clock(&origin.url(), clock.clone(), |c| {
        with_disk(dir.path(), 16 << 20)(c);
        c.memory_max_object_size = Some(ByteSize(64 << 10));
    })
    .await;
    e.disk().unwrap().loaded().await;
    let a = e.local_addr();
    let want = body_of(5, len);
    assert!(get(a, "/v").await.body[..] == want[..]);
    settle(a).await;
    clock.advance(Duration::from_secs(15));
    let stale = get(a, "/v").await;
    assert!(
        stale.body[..] == want[..],
        "stale copy served whole from disk"
    );
    assert_eq!(stale.header("x-version"), "1");
    assert!(
        stale.cache_status().contains("stale"),
        "{}",
        stale.cache_status()
    );
    settle(a).await;
    assert_eq!(origin.count(), 2, "one background revalidation");
    let fresh = get(a, "/v").await;
    assert_eq!(
        fresh.header("x-version"),
        "2",
        "the 304's headers, from the new file"
    );
    assert!(fresh.body[..] == want[..]);
    assert!(
        fresh.cache_status().contains("hit"),
        "{}",
        fresh.cache_status()
    );
    // The origin goes away; past stale-while-revalidate the copy on disk stands in.
    origin.stop();
    clock.advance(Duration::from_secs(60));
    let sie = get(a, "/v").await;
    assert_eq!(sie.status, 200);
    assert!(sie.body[..] == want[..], "stale-if-error served from disk");
    assert_eq!(e.disk().unwrap().objects(), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misses_are_served_while_the_index_is_rebuilt() {
    use edge::disk::{DiskMetrics, DiskOptions, DiskStore};
    use edge::policy::{Freshness, PolicyConfig};
    let origin = Upstream::start(origin_reply).await;
    let dir = tempfile::tempdir().unwrap();
    // 20,000 objects on disk, written as an edge would have (bodies equal to the origin's).
    let n = 20_000;
    let len = 2000;
    {
        let metrics = edge::metrics::Metrics::new("fill").unwrap();
        let store = DiskStore::open(DiskOptions {
            dir: dir.path().to_path_buf(),
            capacity: 1 << 30,
            policy: PolicyConfig::default(),
            clock: Arc::new(edge::SystemClock),
            purges: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            metrics: DiskMetrics::from(&metrics),
        })
        .unwrap();
        store.loaded().await;
        let mut h = http::HeaderMap::new();
        h.insert("cache-control", "max-age=3600".parse().unwrap());
        let cfg = PolicyConfig::default();
        let now = std::time::SystemTime::now();
        let f = Freshness::new(&cfg, http::StatusCode::OK, &h, now, now);
        let e = Arc::new(edge::store::Stored::new(
            &cfg,
            http::StatusCode::OK,
            h,
            &[],
            f,
            Vec::new(),
        ));
        for batch in (0..n).collect::<Vec<_>>().chunks(64) {
            let mut set = tokio::task::JoinSet::new();
            for &i in batch {
                let (store, e) = (store.clone(), e.clone());
                set.spawn(async move {
                    let k = key(&format!("/obj/{i}/{len}"));
                    let b = bytes::Bytes::from(body_of(i, len));
                    assert!(store.insert_fetched(&k, &e, vec![b], 0).await);
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        }
    }
    let e = edge(&origin.url(), with_disk(dir.path(), 16 << 20)).await;
    let disk = e.disk().unwrap();
    assert!(
        disk.is_loading(),
        "spawn returns before the index is rebuilt"
    );
    let a = e.local_addr();
    // A new key and the last-written old one, at once.
    let new = get(a, "/obj/777777/100").await;
    let old = get(a, &format!("/obj/{}/{len}", n - 1)).await;
    let served_while_loading = disk.is_loading();
    assert!(new.body[..] == body_of(777_777, 100)[..]);
    assert!(old.body[..] == body_of(n - 1, len)[..]);
    assert!(
        served_while_loading,
        "both answered before the rebuild ended"
    );
    settle(a).await;
    disk.loaded().await;
    // The rebuild kept one version per key: every old object, plus the new one.
    assert_eq!(disk.objects(), n + 1);
    let files: usize = std::fs::read_dir(dir.path().join("objects"))
        .unwrap()
        .flatten()
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum();
    assert_eq!(files, n + 1, "no orphan or duplicate files");
    for i in [0, 1, n / 2, n - 2] {
        let p = format!("/obj/{i}/{len}");
        assert!(get(a, &p).await.body[..] == body_of(i, len)[..]);
        assert_eq!(count_of(&origin, &p), 0, "{p} was on disk");
    }
    let m = metrics(a).await;
    assert_eq!(metric(&m, "edge_disk_loading"), 0.0);
    e.shutdown().await;
}
