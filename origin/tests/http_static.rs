//! The origin's HTTP semantics for stored objects, over real sockets: headers by kind,
//! validators, conditionals, ranges, HEAD, methods, CORS, path safety, metrics and limits.

mod support;

use std::time::{Duration, SystemTime};

use support::*;

async fn start(c: &Content) -> origin::Origin {
    origin::spawn(config(&c.root)).await.unwrap()
}

#[tokio::test]
async fn headers_by_kind() {
    let c = content("kinds");
    let o = start(&c).await;
    let a = o.local_addr();

    let mpd = get(a, "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(mpd.status, 200);
    assert_eq!(mpd.h("content-type"), "application/dash+xml");
    assert_eq!(mpd.h("cache-control"), "public, max-age=60");
    assert_eq!(mpd.h("content-length"), MPD.len().to_string());
    assert_eq!(mpd.body, MPD.as_bytes());

    let init = get(a, "/vod/demo/v0/init.mp4", &[]).await;
    assert_eq!(init.status, 200);
    assert_eq!(init.h("content-type"), "video/mp4");
    assert_eq!(
        init.h("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(init.body.len(), 700);

    let seg = get(a, "/vod/demo/v0/1.m4s", &[]).await;
    assert_eq!(seg.status, 200);
    assert_eq!(seg.h("content-type"), "video/mp4");
    assert_eq!(
        seg.h("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(seg.h("content-length"), (1 << 20).to_string());
    assert_eq!(seg.body, c.segment, "1 MiB segment body differs");

    for r in [&mpd, &init, &seg] {
        let etag = r.h("etag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
            "strong etag: {etag}"
        );
        assert_eq!(r.h("accept-ranges"), "bytes");
        assert_eq!(r.h("access-control-allow-origin"), "*");
        assert_eq!(r.h("timing-allow-origin"), "*");
        assert!(r
            .h("access-control-expose-headers")
            .contains("Content-Range"));
        let lm = httpdate::parse_http_date(r.h("last-modified")).unwrap();
        let date = httpdate::parse_http_date(r.h("date")).unwrap();
        assert!(lm <= date + Duration::from_secs(1));
        assert!(date
            .duration_since(SystemTime::now() - Duration::from_secs(60))
            .is_ok());
    }

    let txt = get(a, "/vod/demo/notes.txt", &[]).await;
    assert_eq!(txt.h("content-type"), "text/plain; charset=utf-8");
    assert_eq!(txt.h("cache-control"), "public, max-age=300");
    let empty = get(a, "/vod/demo/empty.bin", &[]).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.h("content-length"), "0");

    let missing = get(a, "/vod/demo/nope.m4s", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.h("cache-control"), "public, max-age=10");
    assert_eq!(missing.h("access-control-allow-origin"), "*");
    let dir = get(a, "/vod/demo", &[]).await;
    assert_eq!(dir.status, 404, "directories are not listed");
    o.shutdown().await;
}

#[tokio::test]
async fn cache_control_is_configurable() {
    let c = content("cc");
    let mut cfg = config(&c.root);
    cfg.cache_control.mpd = "public, max-age=5".into();
    cfg.cache_control.segment = "public, max-age=99".into();
    let o = origin::spawn(cfg).await.unwrap();
    let a = o.local_addr();
    assert_eq!(
        get(a, "/vod/demo/manifest.mpd", &[])
            .await
            .h("cache-control"),
        "public, max-age=5"
    );
    assert_eq!(
        get(a, "/vod/demo/v0/1.m4s", &[]).await.h("cache-control"),
        "public, max-age=99"
    );
    o.shutdown().await;
}

#[tokio::test]
async fn etag_is_stable_across_restarts() {
    let c = content("restart");
    let o = start(&c).await;
    let first = get(o.local_addr(), "/vod/demo/v0/1.m4s", &[]).await;
    o.shutdown().await;
    let o = start(&c).await;
    let second = get(o.local_addr(), "/vod/demo/v0/1.m4s", &[]).await;
    assert_eq!(first.h("etag"), second.h("etag"));
    assert_eq!(first.h("last-modified"), second.h("last-modified"));
    // And a revalidation with the old tag against the new process is a 304.
    let reval = get(
        o.local_addr(),
        "/vod/demo/v0/1.m4s",
        &[("If-None-Match", first.h("etag"))],
    )
    .await;
    assert_eq!(reval.status, 304);
    o.shutdown().await;
}

#[tokio::test]
async fn conditional_get() {
    let c = content("cond");
    let o = start(&c).await;
    let a = o.local_addr();
    let path = "/vod/demo/manifest.mpd";
    let base = get(a, path, &[]).await;
    let etag = base.h("etag").to_string();
    let lm = base.h("last-modified").to_string();
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", {weak}");
    let long_ago =
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(86400));

    for (name, hdrs) in [
        ("exact tag", vec![("If-None-Match", etag.as_str())]),
        ("weak comparison", vec![("If-None-Match", weak.as_str())]),
        ("list", vec![("If-None-Match", list.as_str())]),
        ("star", vec![("If-None-Match", "*")]),
        ("date", vec![("If-Modified-Since", lm.as_str())]),
        (
            "tag wins over old date",
            vec![
                ("If-None-Match", etag.as_str()),
                ("If-Modified-Since", long_ago.as_str()),
            ],
        ),
    ] {
        let r = get(a, path, &hdrs).await;
        assert_eq!(r.status, 304, "{name}");
        assert!(r.body.is_empty(), "{name}: 304 has a body");
        assert_eq!(r.h("etag"), etag, "{name}");
        assert_eq!(r.h("last-modified"), lm, "{name}");
        assert_eq!(r.h("cache-control"), "public, max-age=60", "{name}");
        assert!(r.header("date").is_some());
        assert_eq!(r.h("access-control-allow-origin"), "*");
        assert!(
            r.header("content-type").is_none(),
            "{name}: 304 carries no content type"
        );
    }

    // If-None-Match takes precedence over If-Modified-Since: a non-matching tag means 200
    // even though the date alone would give 304.
    let r = get(
        a,
        path,
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", future.as_str()),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, MPD.as_bytes());
    let r = get(a, path, &[("If-Modified-Since", long_ago.as_str())]).await;
    assert_eq!(r.status, 200);
    let r = get(a, path, &[("If-Modified-Since", "not a date")]).await;
    assert_eq!(r.status, 200);

    // HEAD revalidates too.
    let r = raw(a, "HEAD", path, &[("If-None-Match", etag.as_str())]).await;
    assert_eq!(r.status, 304);

    // If-Match / If-Unmodified-Since.
    assert_eq!(
        get(a, path, &[("If-Match", etag.as_str())]).await.status,
        200
    );
    assert_eq!(get(a, path, &[("If-Match", "*")]).await.status, 200);
    let r = get(a, path, &[("If-Match", "\"stale\"")]).await;
    assert_eq!(r.status, 412);
    assert_eq!(
        get(a, path, &[("If-Match", weak.as_str())]).await.status,
        412,
        "If-Match is strong"
    );
    assert_eq!(
        get(a, path, &[("If-Unmodified-Since", long_ago.as_str())])
            .await
            .status,
        412
    );
    assert_eq!(
        get(a, path, &[("If-Unmodified-Since", future.as_str())])
            .await
            .status,
        200
    );
    // Preconditions are ignored for a 404.
    assert_eq!(
        get(a, "/vod/demo/nope", &[("If-Match", "\"x\"")])
            .await
            .status,
        404
    );

    let m = metric(a, "origin_http_not_modified_total", &[("kind", "mpd")]).await;
    assert_eq!(m, 7.0, "304s counted");
    o.shutdown().await;
}

#[tokio::test]
async fn ranges() {
    let c = content("range");
    let o = start(&c).await;
    let a = o.local_addr();
    let p = "/vod/demo/v0/1.m4s";
    let len = c.segment.len();
    let seg = &c.segment;

    let r = get(a, p, &[("Range", "bytes=0-99")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), format!("bytes 0-99/{len}"));
    assert_eq!(r.h("content-length"), "100");
    assert_eq!(r.h("content-type"), "video/mp4");
    assert_eq!(r.body, &seg[0..100]);

    let r = get(a, p, &[("Range", "bytes=1048000-")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.h("content-range"),
        format!("bytes 1048000-{}/{len}", len - 1)
    );
    assert_eq!(r.body, &seg[1048000..]);

    let r = get(a, p, &[("Range", "bytes=-500")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.h("content-range"),
        format!("bytes {}-{}/{len}", len - 500, len - 1)
    );
    assert_eq!(r.body, &seg[len - 500..]);

    // Crossing the storage read chunk boundary.
    let r = get(a, p, &[("Range", "bytes=262000-263000")]).await;
    assert_eq!(r.body, &seg[262000..263001]);

    for bad in [
        format!("bytes={len}-"),
        "bytes=-0".to_string(),
        format!("bytes={}-{}", len + 10, len + 20),
    ] {
        let r = get(a, p, &[("Range", bad.as_str())]).await;
        assert_eq!(r.status, 416, "{bad}");
        assert_eq!(r.h("content-range"), format!("bytes */{len}"));
    }

    // Not a bytes range set: ignored.
    let r = get(a, p, &[("Range", "lines=1-2")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);

    // Several ranges: multipart/byteranges.
    let r = get(a, p, &[("Range", "bytes=0-9, 100-109,-5")]).await;
    assert_eq!(r.status, 206);
    let ct = r.h("content-type").to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(&ct)
        .to_string();
    assert_eq!(r.h("content-length"), r.body.len().to_string());
    let parts = parse_multipart(&r.body, &boundary);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].0, format!("bytes 0-9/{len}"));
    assert_eq!(parts[0].1, &seg[0..10]);
    assert_eq!(parts[1].0, format!("bytes 100-109/{len}"));
    assert_eq!(parts[1].1, &seg[100..110]);
    assert_eq!(parts[2].0, format!("bytes {}-{}/{len}", len - 5, len - 1));
    assert_eq!(parts[2].1, &seg[len - 5..]);

    // Overlapping ranges coalesce into a single part.
    let r = get(a, p, &[("Range", "bytes=0-9,5-19")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), format!("bytes 0-19/{len}"));

    // More ranges than the limit: the whole object with 200.
    let many: Vec<String> = (0..40)
        .map(|i| format!("{}-{}", i * 100, i * 100 + 1))
        .collect();
    let r = get(a, p, &[("Range", &format!("bytes={}", many.join(",")))]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);

    // If-Range: a matching strong tag or date keeps the range, anything else gives the whole.
    let set_mtime = |t: std::time::SystemTime| {
        let f = std::fs::File::options()
            .write(true)
            .open(c.root.join("vod/demo/v0/1.m4s"))
            .unwrap();
        f.set_modified(t).unwrap();
    };
    let hour = std::time::Duration::from_secs(3600);
    set_mtime(std::time::SystemTime::now() - hour);
    let etag = get(a, p, &[]).await.h("etag").to_string();
    let lm = get(a, p, &[]).await.h("last-modified").to_string();
    let r = get(a, p, &[("Range", "bytes=0-9"), ("If-Range", etag.as_str())]).await;
    assert_eq!(r.status, 206);
    let r = get(a, p, &[("Range", "bytes=0-9"), ("If-Range", lm.as_str())]).await;
    assert_eq!(r.status, 206);
    // A Last-Modified not older than the response's Date is a weak validator: a date in
    // If-Range never matches it (the file may change again within that second).
    set_mtime(std::time::SystemTime::now() + hour);
    let lm = get(a, p, &[]).await.h("last-modified").to_string();
    let r = get(a, p, &[("Range", "bytes=0-9"), ("If-Range", lm.as_str())]).await;
    assert_eq!((r.status, r.body.len()), (200, len));
    let r = get(a, p, &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);

    // Range on an empty file is unsatisfiable.
    let r = get(a, "/vod/demo/empty.bin", &[("Range", "bytes=0-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.h("content-range"), "bytes */0");
    o.shutdown().await;
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) parts.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let start = find(rest, delim.as_bytes()).expect("boundary");
        rest = &rest[start + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_string();
        assert!(head.contains("Content-Type: video/mp4"));
        rest = &rest[head_end + 4..];
        let next = find(rest, format!("\r\n{delim}").as_bytes()).unwrap();
        parts.push((cr, rest[..next].to_vec()));
        rest = &rest[next..];
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn head_is_get_without_a_body() {
    let c = content("head");
    let o = start(&c).await;
    let a = o.local_addr();
    for p in [
        "/vod/demo/manifest.mpd",
        "/vod/demo/v0/1.m4s",
        "/health",
        "/time",
        "/metrics",
    ] {
        let g = get(a, p, &[]).await;
        let h = raw(a, "HEAD", p, &[]).await;
        assert_eq!(h.status, 200, "{p}");
        assert!(h.body.is_empty(), "{p}: HEAD sent a body");
        for name in [
            "content-type",
            "etag",
            "last-modified",
            "cache-control",
            "accept-ranges",
        ] {
            assert_eq!(g.header(name), h.header(name), "{p}: {name}");
        }
        if p != "/metrics" && p != "/time" {
            assert_eq!(
                g.header("content-length"),
                h.header("content-length"),
                "{p}"
            );
        }
    }
    let h = raw(a, "HEAD", "/vod/demo/missing", &[]).await;
    assert_eq!(h.status, 404);
    assert!(h.body.is_empty());
    o.shutdown().await;
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let c = content("methods");
    let o = start(&c).await;
    for m in ["POST", "PUT", "DELETE", "PATCH", "TRACE"] {
        let r = raw(
            o.local_addr(),
            m,
            "/vod/demo/manifest.mpd",
            &[("Content-Length", "0")],
        )
        .await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.h("allow"), "GET, HEAD, OPTIONS");
    }
    let n = metric(
        o.local_addr(),
        "origin_http_requests_total",
        &[("method", "POST"), ("status", "405")],
    )
    .await;
    assert_eq!(n, 1.0);
    o.shutdown().await;
}

#[tokio::test]
async fn cors_preflight() {
    let c = content("cors");
    let o = start(&c).await;
    let r = raw(
        o.local_addr(),
        "OPTIONS",
        "/vod/demo/v0/1.m4s",
        &[
            ("Origin", "http://player.example.test"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range, if-none-match"),
        ],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.h("access-control-allow-origin"), "*");
    assert!(r.h("access-control-allow-methods").contains("GET"));
    assert!(r
        .h("access-control-allow-headers")
        .to_ascii_lowercase()
        .contains("range"));
    assert!(r.header("access-control-max-age").is_some());
    assert!(r.body.is_empty());
    // A cross-origin GET carries the CORS headers a player needs to read Content-Range.
    let g = get(
        o.local_addr(),
        "/vod/demo/v0/1.m4s",
        &[
            ("Origin", "http://player.example.test"),
            ("Range", "bytes=0-1"),
        ],
    )
    .await;
    assert_eq!(g.h("access-control-allow-origin"), "*");
    assert!(g
        .h("access-control-expose-headers")
        .contains("Content-Range"));
    o.shutdown().await;
}

#[tokio::test]
async fn path_escapes_never_reach_outside_the_root() {
    let c = content("escape");
    std::os::unix::fs::symlink(
        c.dir.path().join("secret.txt"),
        c.root.join("vod/demo/leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(c.dir.path(), c.root.join("vod/updir")).unwrap();
    std::os::unix::fs::symlink(
        c.root.join("vod/demo/notes.txt"),
        c.root.join("vod/demo/alias.txt"),
    )
    .unwrap();
    let o = start(&c).await;
    let a = o.local_addr();
    let cases: &[(&str, &[u16])] = &[
        ("/../secret.txt", &[400]),
        ("/vod/../../secret.txt", &[400]),
        ("/vod/demo/../../../secret.txt", &[400]),
        ("/%2e%2e/secret.txt", &[400]),
        ("/vod/%2E%2E/%2e%2e/secret.txt", &[400]),
        ("/vod/..%2f..%2fsecret.txt", &[400]),
        ("/%2Fetc%2Fpasswd", &[400]),
        ("/vod/demo%2F..%2F..%2Fsecret.txt", &[400]),
        ("//etc/passwd", &[400]),
        ("/vod/demo/notes.txt%00.mpd", &[400]),
        ("/vod/..%5c..%5csecret.txt", &[400]),
        ("/vod/demo/%zz", &[400]),
        ("/vod/demo/leak.txt", &[404]),
        ("/vod/updir/secret.txt", &[404]),
        ("/vod/demo/.hidden", &[404]),
        ("http://origin.test/../secret.txt", &[400]),
        ("/etc/passwd", &[404]),
    ];
    for (target, statuses) in cases {
        let r = get(a, target, &[]).await;
        assert!(statuses.contains(&r.status), "{target}: got {}", r.status);
        assert!(
            !r.text().contains("TOP-SECRET"),
            "{target} leaked the secret"
        );
        assert!(!r.text().contains("root:"), "{target} leaked /etc/passwd");
    }
    // A symlink that stays inside the root is fine.
    let r = get(a, "/vod/demo/alias.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\n");
    o.shutdown().await;
}

#[tokio::test]
async fn health_time_and_metrics() {
    let c = content("metrics");
    let o = start(&c).await;
    let a = o.local_addr();
    let h = get(a, "/health", &[]).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.text(), "ok\n");
    assert_eq!(h.h("cache-control"), "no-store");
    let t = get(a, "/time", &[]).await;
    let parsed = chrono::DateTime::parse_from_rfc3339(t.text().trim()).expect("xs:dateTime body");
    let skew = (parsed.timestamp_millis() - chrono::Utc::now().timestamp_millis()).abs();
    assert!(skew < 5_000, "time endpoint off by {skew} ms");

    for _ in 0..3 {
        get(a, "/vod/demo/v0/1.m4s", &[]).await;
    }
    get(a, "/vod/demo/manifest.mpd", &[]).await;
    get(a, "/vod/demo/missing.m4s", &[]).await;
    raw(a, "HEAD", "/vod/demo/v0/init.mp4", &[]).await;
    let seg200 = metric(
        a,
        "origin_http_requests_total",
        &[("method", "GET"), ("status", "200"), ("kind", "segment")],
    )
    .await;
    assert_eq!(seg200, 3.0);
    let seg404 = metric(
        a,
        "origin_http_requests_total",
        &[("method", "GET"), ("status", "404"), ("kind", "segment")],
    )
    .await;
    assert_eq!(seg404, 1.0);
    let head = metric(
        a,
        "origin_http_requests_total",
        &[("method", "HEAD"), ("status", "200"), ("kind", "init")],
    )
    .await;
    assert_eq!(head, 1.0);
    let bytes = metric(
        a,
        "origin_http_response_bytes_total",
        &[("kind", "segment")],
    )
    .await;
    assert!(bytes >= 3.0 * (1 << 20) as f64, "{bytes}");
    let mpd_bytes = metric(a, "origin_http_response_bytes_total", &[("kind", "mpd")]).await;
    assert_eq!(mpd_bytes, MPD.len() as f64);
    let count = metric(
        a,
        "origin_http_request_duration_seconds_count",
        &[("kind", "segment")],
    )
    .await;
    assert_eq!(count, 4.0);
    // This very scrape's connection is open while the metrics are rendered.
    let open = metric(a, "origin_open_connections", &[]).await;
    assert!(open >= 1.0, "{open}");
    o.shutdown().await;
}

#[tokio::test]
async fn limits_headers_and_connections() {
    let c = content("limits");
    let mut cfg = config(&c.root);
    cfg.limits.max_headers = 16;
    cfg.limits.max_header_bytes = 16 * 1024;
    cfg.limits.max_connections = 1;
    cfg.limits.header_read_timeout_ms = 500;
    let o = origin::spawn(cfg).await.unwrap();
    let a = o.local_addr();

    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-Filler-{i}"), "v".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = get(a, "/vod/demo/manifest.mpd", &refs).await;
    assert_eq!(r.status, 431);
    let huge = "x".repeat(64 * 1024);
    let r = get(a, "/vod/demo/manifest.mpd", &[("X-Huge", huge.as_str())]).await;
    assert_eq!(r.status, 431, "a request head beyond max_header_bytes");

    // One connection at a time: a second client waits until the first leaves.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut first = tokio::net::TcpStream::connect(a).await.unwrap();
    first
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(std::str::from_utf8(&buf[..n])
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    let second = tokio::spawn(async move { get(a, "/health", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "second connection served while the first holds the only slot"
    );
    drop(first);
    let r = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);

    // A client that never finishes its request head is cut off.
    let mut slow = tokio::net::TcpStream::connect(a).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "slow client not cut off by the header read timeout"
    );
    o.shutdown().await;
}

#[tokio::test]
async fn http2_prior_knowledge() {
    use http_body_util::{BodyExt, Empty};
    let c = content("h2");
    let o = start(&c).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<bytes::Bytes>>();
    let req = http::Request::get(format!("{}/vod/demo/v0/1.m4s", o.url()))
        .header("range", "bytes=10-19")
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 206);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &c.segment[10..20]);
    o.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_responses() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = content("graceful");
    let big = pattern(16 << 20);
    c.dir.write("root/vod/demo/big.m4s", &big);
    let o = start(&c).await;
    let a = o.local_addr();
    let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET /vod/demo/big.m4s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Read only the start, so most of the body is still in flight when shutdown begins.
    let mut first = vec![0u8; 4096];
    s.read_exact(&mut first).await.unwrap();
    let stopping = tokio::spawn(o.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(a).await.is_err() || !stopping.is_finished());
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    first.extend_from_slice(&rest);
    let resp = parse_response(&first);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body.len(),
        big.len(),
        "in-flight body cut short by shutdown"
    );
    assert!(resp.body == big);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(a).await.is_err(),
        "still accepting after shutdown"
    );
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Captures this thread's log lines at info and above, as plain text.
fn capture_info_logs() -> (Capture, tracing::subscriber::DefaultGuard) {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(cap.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (cap, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn one_access_log_line_per_request() {
    // This test runs on one thread, which also polls every connection task of the origin.
    let (cap, _guard) = capture_info_logs();
    let c = content("accesslog");
    let mut cfg = config(&c.root);
    cfg.access_log = true;
    let o = origin::spawn(cfg).await.unwrap();
    let a = o.local_addr();
    get(a, "/vod/demo/manifest.mpd", &[]).await;
    get(a, "/vod/demo/v0/1.m4s", &[("Range", "bytes=0-9")]).await;
    raw(a, "DELETE", "/vod/demo/manifest.mpd", &[]).await;
    o.shutdown().await;
    let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" access: ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Combined Log Format after the subscriber's own prefix, then the request time and the kind.
    let fields = |l: &str| l.split_once(" access: ").unwrap().1.to_string();
    assert!(
        fields(lines[0]).starts_with("127.0.0.1 - - [")
            && fields(lines[0]).contains("] \"GET /vod/demo/manifest.mpd HTTP/1.1\" 200 ")
            && fields(lines[0]).ends_with(" kind=mpd"),
        "{}",
        lines[0]
    );
    assert!(
        fields(lines[1]).contains("\"GET /vod/demo/v0/1.m4s HTTP/1.1\" 206 10 \"-\" \"-\" ")
            && fields(lines[1]).ends_with(" kind=segment"),
        "{}",
        lines[1]
    );
    assert!(
        fields(lines[2]).contains("\"DELETE /vod/demo/manifest.mpd HTTP/1.1\" 405 "),
        "{}",
        lines[2]
    );
}

#[tokio::test]
async fn no_access_log_lines_by_default() {
    let (cap, _guard) = capture_info_logs();
    let c = content("noaccesslog");
    let mut cfg = config(&c.root);
    cfg.access_log = origin::Config::default().access_log;
    let o = origin::spawn(cfg).await.unwrap();
    let a = o.local_addr();
    for _ in 0..50 {
        get(a, "/vod/demo/manifest.mpd", &[]).await;
    }
    get(a, "/vod/demo/missing.m4s", &[]).await;
    o.shutdown().await;
    let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(" access: "), "{text}");
    assert!(text.lines().count() <= 3, "per-request lines: {text}");
}

#[tokio::test]
async fn hls_playlists_and_audio_segments_by_kind() {
    let c = content("hls-kinds");
    c.dir.write("root/vod/demo/master.m3u8", b"#EXTM3U\n");
    c.dir.write("root/vod/demo/audio/init.mp4", &[0; 16]);
    c.dir.write("root/vod/demo/audio/seg-00001.m4s", &[0; 16]);
    let o = start(&c).await;
    let a = o.local_addr();
    let master = get(a, "/vod/demo/master.m3u8", &[]).await;
    assert_eq!(master.status, 200);
    assert_eq!(master.h("content-type"), "application/vnd.apple.mpegurl");
    let mpd = get(a, "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(
        master.h("cache-control"),
        mpd.h("cache-control"),
        "playlists are cached like the MPD"
    );
    let again = get(
        a,
        "/vod/demo/master.m3u8",
        &[("If-None-Match", master.h("etag"))],
    )
    .await;
    assert_eq!(again.status, 304);
    for path in ["/vod/demo/audio/init.mp4", "/vod/demo/audio/seg-00001.m4s"] {
        let r = get(a, path, &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.h("content-type"), "audio/mp4", "{path}");
    }
    o.shutdown().await;
}
