//! Hostile HTTP input against the origin and an edge of a running stack, over raw TCP so that
//! nothing on the client side normalizes the bytes: every attempt gets a clear 4xx or a closed
//! connection, no file outside the content root is ever served, and a well-behaved client is
//! served normally during and after the attack.

use std::net::SocketAddr;
use std::time::Duration;

use cdn_tests::{fetch, TestStack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and returns what came back until the server closed or went quiet.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 4 << 20 {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A well-behaved client still gets the MPD.
async fn still_serving(addr: SocketAddr) {
    let r = fetch(addr, "video.example.test", "/vod/demo/manifest.mpd", &[])
        .await
        .expect("normal GET");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"<?xml"));
}

const TRAVERSALS: &[&str] = &[
    "/../../../../etc/passwd",
    "/vod/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/vod/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/vod/..%2f..%2f..%2f..%2fetc/passwd",
    "/vod/%252e%252e/%252e%252e/etc/passwd",
    "/vod/..%5c..%5c..%5cetc%5cpasswd",
    "/vod/demo/..%00/manifest.mpd",
    "/vod/demo/manifest.mpd%00.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/vod/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/vod/.%2e/.%2e/.%2e/etc/passwd",
];

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_4xx_and_servers_stay_up() {
    let t = TestStack::start().await.expect("stack starts");
    let targets = [
        ("origin", t.stack.origin.local_addr()),
        ("edge", t.stack.edge_addrs()[0].1),
    ];

    for (who, addr) in targets {
        for path in TRAVERSALS {
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: video.example.test\r\nConnection: close\r\n\r\n"
            );
            let resp = raw(addr, req.as_bytes()).await;
            let code = status(&resp);
            assert!(matches!(code, 400 | 404), "{who} {path}: {code}\n{resp}");
            assert!(
                !resp.contains("root:x:0:0"),
                "{who} served /etc/passwd for {path}"
            );
        }

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
            ("invalid method token", b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
            ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
            ("huge header", {
                let mut v = b"GET /vod/demo/manifest.mpd HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
                v.extend(std::iter::repeat_n(b'a', 200 * 1024));
                v.extend_from_slice(b"\r\n\r\n");
                v
            }),
            ("too many headers", {
                let mut v = b"GET /vod/demo/manifest.mpd HTTP/1.1\r\nHost: x\r\n".to_vec();
                for i in 0..500 {
                    v.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
                }
                v.extend_from_slice(b"\r\n");
                v
            }),
            ("CL and TE together (smuggling)", b"POST /vod/demo/manifest.mpd HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("two Content-Length values", b"POST /vod/demo/manifest.mpd HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 7\r\n\r\nabcdefg".to_vec()),
            ("bad chunk size", b"POST /vod/demo/manifest.mpd HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()),
        ];
        for (name, bytes) in cases {
            let resp = raw(addr, &bytes).await;
            let code = status(&resp);
            assert!(
                (400..500).contains(&code) || resp.is_empty(),
                "{who}, {name}: got {code}\n{}",
                &resp[..resp.len().min(400)]
            );
            assert!(
                !resp.contains("/admin"),
                "{who}, {name}: smuggled request answered"
            );
        }

        // Methods that make no sense for content: 405 with Allow (or 501 for unknown ones).
        for method in ["DELETE", "PUT", "PATCH", "TRACE", "CONNECT", "BREW"] {
            let target = if method == "CONNECT" {
                "video.example.test:80"
            } else {
                "/vod/demo/manifest.mpd"
            };
            let req = format!("{method} {target} HTTP/1.1\r\nHost: video.example.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let resp = raw(addr, req.as_bytes()).await;
            let code = status(&resp);
            assert!(
                matches!(code, 400 | 401 | 403 | 405 | 501),
                "{who} {method}: {code}\n{resp}"
            );
        }

        // Bad and abusive Range headers (RFC 9110 section 14): an invalid or unknown-unit Range is
        // ignored (200), an unsatisfiable one is 416, one too long for the header limits is 431.
        let many = format!(
            "bytes={}",
            (0..2000)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let ranges: [(&str, &[u16]); 6] = [
            ("bytes=abc", &[200]),
            ("bytes=5-1", &[200]),
            ("items=0-1", &[200]),
            ("bytes=-0", &[416]),
            ("bytes=99999999999999999999-", &[200, 416]),
            (&many, &[200, 431]),
        ];
        for (range, want) in ranges {
            let req = format!("GET /vod/demo/manifest.mpd HTTP/1.1\r\nHost: video.example.test\r\nRange: {range}\r\nConnection: close\r\n\r\n");
            let resp = raw(addr, req.as_bytes()).await;
            let code = status(&resp);
            assert!(
                want.contains(&code),
                "{who} Range {}: {code}, want one of {want:?}",
                &range[..range.len().min(40)]
            );
        }

        // An absolute-form request naming another host is not proxied there.
        let req = b"GET http://evil.test/vod/demo/manifest.mpd HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n";
        let resp = raw(addr, req).await;
        let code = status(&resp);
        assert!(
            code == 200 || (400..500).contains(&code),
            "{who} absolute-form: {code}"
        );
        if code == 200 {
            assert!(
                resp.contains("<MPD"),
                "{who} absolute-form answered with something else"
            );
        }

        still_serving(addr).await;
    }

    // A slow-header client holding a connection open does not stop others from being served.
    let edge = t.stack.edge_addrs()[0].1;
    let mut slow = TcpStream::connect(edge).await.unwrap();
    slow.write_all(b"GET /vod/demo/manifest.mpd HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    still_serving(edge).await;
    still_serving(t.stack.origin.local_addr()).await;
    drop(slow);

    t.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unkeyed_headers_cannot_poison_the_edge_cache() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[2].1;
    let mpd = "/vod/demo/manifest.mpd";
    // An attacker's first request carries headers that some proxies trust for routing.
    let attack = fetch(
        edge,
        "video.example.test",
        mpd,
        &[
            ("x-forwarded-host", "evil.test"),
            ("x-original-url", "/vod/demo/180p/init.mp4"),
            ("x-rewrite-url", "/etc/passwd"),
            ("x-forwarded-scheme", "nothttp"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(attack.status, 200);
    assert!(
        attack.body.starts_with(b"<?xml"),
        "X-Original-URL changed what was fetched"
    );
    // The next normal client gets the real MPD, byte for byte the origin's.
    let victim = fetch(edge, "video.example.test", mpd, &[]).await.unwrap();
    let truth = std::fs::read(t.content.path().join("vod/demo/manifest.mpd")).unwrap();
    assert_eq!(&victim.body[..], &truth[..]);
    assert!(
        victim.header("cache-status").contains("hit"),
        "{:?}",
        victim.headers
    );
    assert!(!String::from_utf8_lossy(&victim.body).contains("evil.test"));
    t.stack.shutdown().await;
}

/// Sends a request head announcing a large body, then trickles the body one byte every 200 ms
/// while reading; returns the first response (empty if the connection closed without one) and
/// how long it took.
async fn slow_body(addr: SocketAddr, method: &str, give_up: Duration) -> (String, Duration) {
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} /vod/demo/upload HTTP/1.1\r\nHost: video.example.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while started.elapsed() < give_up {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&chunk[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {
                if s.write_all(b"x").await.is_err() {
                    break;
                }
            }
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_body_clients_are_cut_off_and_others_served() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[0].1;
    let origin = t.stack.origin.local_addr();

    // The edge reads a forwarded body whole, for 10 s at most: a client trickling its body
    // gets 408 then, and other clients are served meanwhile.
    let trickle = tokio::spawn(slow_body(edge, "POST", Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    still_serving(edge).await;
    still_serving(origin).await;
    let (response, took) = trickle.await.unwrap();
    assert!(
        status(&response) == 408 || response.is_empty(),
        "edge answered a stalled body with: {response:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "edge held a slow-body client for {took:?}"
    );
    println!(
        "edge: slow body cut off after {took:.1?} with {}",
        status(&response)
    );

    // The origin serves GET and HEAD only: a body-carrying method is refused at once, without
    // waiting for the body.
    let (response, took) = slow_body(origin, "POST", Duration::from_secs(20)).await;
    assert_eq!(status(&response), 405, "origin: {response:?}");
    assert!(
        took < Duration::from_secs(3),
        "origin waited {took:?} for a body"
    );
    println!("origin: POST refused after {took:.1?}");
    still_serving(edge).await;
    still_serving(origin).await;

    t.stack.shutdown().await;
}
