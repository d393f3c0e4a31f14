//! The S3-compatible storage backend against a real S3 server (moto_server, started here on a
//! free loopback port): the origin serves objects from a bucket with the same HTTP semantics as
//! from disk, streams large objects, and answers 502 when the store is unreachable.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use origin::config::{S3Config, StorageConfig};
use support::*;

/// A moto S3 server, killed on drop.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn moto() -> Moto {
    let bin = common::tools::require("moto_server");
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting moto_server (pip install 'moto[server]')");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let moto = Moto { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto
}

fn s3_config(moto: &Moto, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        endpoint: Some(format!("http://{}", moto.addr)),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        prefix: "content/".into(),
        allow_http: true,
    }
}

async fn create_bucket(moto: &Moto, bucket: &str) {
    let req = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        moto.addr
    );
    let r = send_raw(moto.addr, req.as_bytes()).await;
    assert_eq!(r.status, 200, "create bucket: {}", r.text());
}

async fn upload(moto: &Moto, bucket: &str, key: &str, data: Vec<u8>) {
    let c = s3_config(moto, bucket);
    let store = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(c.endpoint.unwrap())
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    store
        .put(
            &Path::from(format!("content/{key}")),
            PutPayload::from(data),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn serves_from_an_s3_bucket() {
    let moto = moto().await;
    create_bucket(&moto, "media").await;
    let segment = pattern(3 << 20);
    upload(
        &moto,
        "media",
        "vod/demo/manifest.mpd",
        MPD.as_bytes().to_vec(),
    )
    .await;
    upload(&moto, "media", "vod/demo/v0/1.m4s", segment.clone()).await;

    let dir = TempDir::new("s3-root");
    let mut cfg = config(dir.path());
    cfg.storage = StorageConfig::S3(s3_config(&moto, "media"));
    let o = origin::spawn(cfg).await.unwrap();
    let a = o.local_addr();

    let mpd = get(a, "/vod/demo/manifest.mpd", &[]).await;
    assert_eq!(mpd.status, 200, "{}", mpd.text());
    assert_eq!(mpd.body, MPD.as_bytes());
    assert_eq!(mpd.h("content-type"), "application/dash+xml");
    assert_eq!(mpd.h("cache-control"), "public, max-age=60");
    let etag = mpd.h("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(mpd.header("last-modified").is_some());

    let r = get(
        a,
        "/vod/demo/manifest.mpd",
        &[("If-None-Match", etag.as_str())],
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    let seg = get(a, "/vod/demo/v0/1.m4s", &[]).await;
    assert_eq!(seg.status, 200);
    assert_eq!(seg.h("content-length"), segment.len().to_string());
    assert!(
        seg.body == segment,
        "3 MiB object differs after streaming from S3"
    );

    let part = get(a, "/vod/demo/v0/1.m4s", &[("Range", "bytes=1000-1999")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(
        part.h("content-range"),
        format!("bytes 1000-1999/{}", segment.len())
    );
    assert_eq!(part.body, &segment[1000..2000]);
    let multi = get(a, "/vod/demo/v0/1.m4s", &[("Range", "bytes=0-3,-4")]).await;
    assert_eq!(multi.status, 206);
    assert!(multi.h("content-type").starts_with("multipart/byteranges"));

    let head = raw(a, "HEAD", "/vod/demo/v0/1.m4s", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.h("content-length"), segment.len().to_string());

    assert_eq!(get(a, "/vod/demo/missing.m4s", &[]).await.status, 404);
    assert_eq!(
        get(a, "/vod/demo", &[]).await.status,
        404,
        "a key prefix is not an object"
    );
    assert_eq!(get(a, "/vod/%2e%2e/x", &[]).await.status, 400);
    o.shutdown().await;
}

#[tokio::test]
async fn unreachable_store_is_a_502() {
    let dir = TempDir::new("s3-down");
    let port = free_port();
    let mut cfg = config(dir.path());
    cfg.storage = StorageConfig::S3(S3Config {
        bucket: "media".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
        access_key_id: Some("x".into()),
        secret_access_key: Some("y".into()),
        allow_http: true,
        ..Default::default()
    });
    let o = origin::spawn(cfg).await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        get(o.local_addr(), "/vod/demo/manifest.mpd", &[]),
    )
    .await
    .expect("no answer within 60 s");
    assert_eq!(r.status, 502);
    assert_eq!(r.h("cache-control"), "no-store");
    let errors = metric(
        o.local_addr(),
        "origin_storage_errors_total",
        &[("backend", "s3")],
    )
    .await;
    assert_eq!(errors, 1.0);
    o.shutdown().await;
}
