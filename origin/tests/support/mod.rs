//! Test support: a temporary content root, an origin started on 127.0.0.1:0, a raw HTTP/1.1
//! client that sends request targets exactly as written (no normalisation, so path-escape
//! attempts reach the server verbatim), and a reader for Prometheus metrics.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("origin-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `data` at `rel`, creating parent directories.
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes that differ at every offset modulo 251.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub const MPD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT4S" mediaPresentationDuration="PT4S"></MPD>
"#;

/// A content root holding a small title: an MPD, an init segment, a 1 MiB media segment and a
/// text file; plus a secret file next to (outside) the root.
pub struct Content {
    pub dir: TempDir,
    pub root: PathBuf,
    pub segment: Vec<u8>,
}

pub fn content(name: &str) -> Content {
    let dir = TempDir::new(name);
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let segment = pattern(1 << 20);
    dir.write("root/vod/demo/manifest.mpd", MPD.as_bytes());
    dir.write("root/vod/demo/v0/init.mp4", &pattern(700));
    dir.write("root/vod/demo/v0/1.m4s", &segment);
    dir.write("root/vod/demo/notes.txt", b"hello\n");
    dir.write("root/vod/demo/empty.bin", b"");
    dir.write("secret.txt", b"TOP-SECRET-OUTSIDE-ROOT");
    Content { dir, root, segment }
}

/// An origin config for `root` on a free loopback port.
pub fn config(root: &Path) -> origin::Config {
    origin::Config {
        root: root.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        ..Default::default()
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request with `Connection: close` and reads the whole response (10 s bound).
pub async fn raw(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    send_raw(addr, req.as_bytes()).await
}

/// Sends raw request bytes and parses the single response that comes back.
pub async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response not complete within 10 s")
        .unwrap();
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Resp {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

/// GET with headers.
pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Resp {
    raw(addr, "GET", target, headers).await
}

/// Every sample of the origin's /metrics: (name, labels) -> value.
pub async fn metrics(addr: SocketAddr) -> Vec<(String, HashMap<String, String>, f64)> {
    let r = get(addr, "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    let mut out = Vec::new();
    for line in r.text().lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n.to_string(), rest.trim_end_matches('}').to_string()),
            None => (series.to_string(), String::new()),
        };
        let mut map = HashMap::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.to_string(), v.trim_matches('"').to_string());
        }
        out.push((name, map, value.parse().unwrap()));
    }
    out
}

/// The value of the sample `name` whose labels include all of `labels` (0 when absent).
pub async fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics(addr)
        .await
        .into_iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}
