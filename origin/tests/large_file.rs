//! A 1 GiB file is streamed, never held in memory: the process's peak resident set grows by far
//! less than the file while a client downloads all of it over a socket. (Its own test binary,
//! so no other test shares the process whose memory is measured.)

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GIB: u64 = 1 << 30;

/// Peak resident set size of this process, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_file_streams_in_bounded_memory() {
    let dir = TempDir::new("large");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("vod/big")).unwrap();
    // Sparse: a gibibyte of zeros that takes no disk space.
    let f = std::fs::File::create(root.join("vod/big/huge.m4s")).unwrap();
    f.set_len(GIB).unwrap();
    drop(f);
    let o = origin::spawn(config(&root)).await.unwrap();
    let before = peak_rss();

    let mut s = tokio::net::TcpStream::connect(o.local_addr())
        .await
        .unwrap();
    s.write_all(b"GET /vod/big/huge.m4s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    // Compared as slices (memcmp), which stays fast in a debug build.
    let zeros = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut in_body = false;
    let mut body: u64 = 0;
    let download = async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            if !in_body {
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    body = (head.len() - end - 4) as u64;
                    head.truncate(end);
                    in_body = true;
                }
            } else {
                assert!(buf[..n] == zeros[..n], "non-zero bytes in a sparse file");
                body += n as u64;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), download)
        .await
        .expect("1 GiB not downloaded within 300 s");
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {GIB}")),
        "{head}"
    );
    assert_eq!(body, GIB);
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "peak RSS grew by {} MiB while streaming 1 GiB",
        grown >> 20
    );

    // A suffix range of the big file is read from its end alone.
    let r = get(
        o.local_addr(),
        "/vod/big/huge.m4s",
        &[("Range", "bytes=-16")],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.h("content-range"),
        format!("bytes {}-{}/{GIB}", GIB - 16, GIB - 1)
    );
    assert_eq!(r.body, vec![0u8; 16]);
    o.shutdown().await;
}
