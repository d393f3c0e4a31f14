//! An edge over HTTPS in front of an origin over HTTPS: clients get h2 by ALPN and the origin's
//! bytes, the edge verifies the origin against `upstream_ca`, and an origin certificate from an
//! unknown root is a 502, never a silent cleartext or unverified fetch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("edge-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("root/vod/demo")).unwrap();
        Dir(d)
    }

    fn cert(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        common::tls::write_self_signed(&self.0.join(stem), &names).unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client(
    ca: &Path,
    name: &str,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>> {
    let roots = common::tls::Roots {
        ca_files: vec![ca.to_path_buf()],
        system: false,
    };
    let config = common::tls::client_config(&roots, &[]).unwrap();
    let connector =
        common::tls::https_connector(HttpConnector::new(), config, true, Some(name)).unwrap();
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn get(
    client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: &str,
) -> (http::Version, u16, String, Bytes) {
    let req = http::Request::get(url)
        .header(http::header::HOST, "video.example.test")
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let version = resp.version();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, status, cache, body)
}

#[tokio::test]
async fn edge_serves_https_from_an_https_origin() {
    let dir = Dir::new("chain");
    let segment: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(dir.0.join("root/vod/demo/1.m4s"), &segment).unwrap();
    let (origin_cert, origin_key) = dir.cert("origin", &["127.0.0.1"]);
    let (edge_cert, edge_key) = dir.cert("edge", &["video.example.test", "127.0.0.1"]);
    let (stranger_cert, _) = dir.cert("stranger", &["127.0.0.1"]);

    let origin = origin::spawn(origin::Config {
        root: dir.0.join("root"),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        tls_cert: Some(origin_cert.clone()),
        tls_key: Some(origin_key),
        ..origin::Config::default()
    })
    .await
    .unwrap();
    assert!(origin.url().starts_with("https://"));

    let edge = edge::spawn(edge::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: origin.url(),
        name: "edge-tls".into(),
        tls_cert: Some(edge_cert.clone()),
        tls_key: Some(edge_key.clone()),
        upstream_ca: Some(origin_cert.clone()),
        ..edge::Config::default()
    })
    .await
    .unwrap();

    let c = client(&edge_cert, "video.example.test");
    let url = format!("https://{}/vod/demo/1.m4s", edge.local_addr());
    let (v, status, cache, body) = get(&c, &url).await;
    assert_eq!((v, status), (http::Version::HTTP_2, 200));
    assert!(cache.contains("fwd=miss"), "{cache}");
    assert_eq!(body, Bytes::from(segment.clone()));
    let (_, status, cache, body) = get(&c, &url).await;
    assert_eq!(status, 200);
    assert!(cache.contains("hit"), "{cache}");
    assert_eq!(body.len(), segment.len());

    // An edge that does not trust the origin's certificate answers 502.
    let wary = edge::spawn(edge::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: origin.url(),
        name: "edge-wary".into(),
        tls_cert: Some(edge_cert.clone()),
        tls_key: Some(edge_key),
        upstream_ca: Some(stranger_cert),
        connect_attempts: 1,
        ..edge::Config::default()
    })
    .await
    .unwrap();
    let url = format!("https://{}/vod/demo/1.m4s", wary.local_addr());
    let (_, status, _, _) = get(&c, &url).await;
    assert_eq!(status, 502);

    wary.shutdown().await;
    edge.shutdown().await;
    origin.shutdown().await;
}

/// With TLS, the edge and the origin also serve HTTP/3 on the same port number over UDP and
/// advertise it with Alt-Svc: over HTTP/3 a miss is fetched once, a hit is a hit, a Range is a
/// 206, a HEAD has no body, and the edge counts the requests by protocol.
#[tokio::test]
async fn edge_and_origin_serve_http3_beside_tcp() {
    let dir = Dir::new("h3");
    let segment: Vec<u8> = (0..700_000u32).map(|i| (i % 239) as u8).collect();
    std::fs::write(dir.0.join("root/vod/demo/2.m4s"), &segment).unwrap();
    let (cert, key) = dir.cert("both", &["video.example.test", "127.0.0.1"]);
    let origin = origin::spawn(origin::Config {
        root: dir.0.join("root"),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        tls_cert: Some(cert.clone()),
        tls_key: Some(key.clone()),
        ..origin::Config::default()
    })
    .await
    .unwrap();
    let edge = edge::spawn(edge::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: origin.url(),
        name: "edge-h3".into(),
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        upstream_ca: Some(cert.clone()),
        ..edge::Config::default()
    })
    .await
    .unwrap();

    // TCP responses advertise HTTP/3 on the same port.
    let c = client(&cert, "video.example.test");
    let url = format!("https://{}/vod/demo/2.m4s", edge.local_addr());
    let req = http::Request::head(&url)
        .header(http::header::HOST, "video.example.test")
        .body(Empty::new())
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let port = edge.local_addr().port();
    assert_eq!(
        resp.headers().get("alt-svc").unwrap(),
        &format!("h3=\":{port}\"; ma=86400")
    );

    let roots = common::tls::Roots {
        ca_files: vec![cert.clone()],
        system: false,
    };
    let tls = common::tls::client_config(&roots, &[]).unwrap();
    for (server, path) in [
        (origin.local_addr(), "/vod/demo/2.m4s"),
        (edge.local_addr(), "/vod/demo/2.m4s"),
    ] {
        let h3 = common::h3::Client::new(
            &tls,
            "127.0.0.1:0".parse().unwrap(),
            server,
            "video.example.test",
        )
        .unwrap();
        let (head, body) = tokio::time::timeout(Duration::from_secs(10), h3.get(path, 1 << 24))
            .await
            .expect("HTTP/3 request timed out")
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.version(), http::Version::HTTP_3);
        assert_eq!(body.len(), segment.len());
        assert!(body[..] == segment[..], "HTTP/3 body differs");
    }
    let h3 = common::h3::Client::new(
        &tls,
        "127.0.0.1:0".parse().unwrap(),
        edge.local_addr(),
        "video.example.test",
    )
    .unwrap();
    // A hit now (the HEAD over TCP and the GET above filled the cache), on one connection.
    let (head, body) = h3.get("/vod/demo/2.m4s", 1 << 24).await.unwrap();
    let cache = head
        .headers()
        .get("cache-status")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cache.contains("hit"), "{cache}");
    assert_eq!(body.len(), segment.len());
    let uri = "https://video.example.test/vod/demo/2.m4s";
    let mut ranged = h3
        .send(
            http::Request::get(uri)
                .header("range", "bytes=1000-1999")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ranged.head.status(), 206);
    let mut part = Vec::new();
    while let Some(b) = ranged.recv().await.unwrap() {
        part.extend_from_slice(&b);
    }
    assert!(part[..] == segment[1000..2000]);
    let mut head_only = h3
        .send(http::Request::head(uri).body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(head_only.head.status(), 200);
    assert!(
        head_only.recv().await.unwrap().is_none(),
        "HEAD has no body"
    );

    let metrics = get(&c, &format!("https://{}/metrics", edge.local_addr()))
        .await
        .3;
    let metrics = String::from_utf8_lossy(&metrics);
    let count = |proto: &str| -> f64 {
        common::metrics::sum(
            &metrics,
            "edge_requests_by_protocol_total",
            &[("protocol", proto)],
        )
    };
    assert_eq!(count("h3"), 4.0, "{metrics}");
    assert!(count("http/1.1") + count("h2") >= 1.0, "{metrics}");
    edge.shutdown().await;
    origin.shutdown().await;
}
