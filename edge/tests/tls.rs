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
