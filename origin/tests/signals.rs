//! `cdn origin` stops gracefully on SIGTERM and on SIGINT: a download in flight when the signal
//! arrives completes, then the server returns. (Its own test binary: the signals go to this
//! process, whose handlers `origin::cli::serve` installs.)

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn stops_gracefully_on(signal: libc::c_int) {
    let c = content("signal");
    let big = pattern(8 << 20);
    c.dir.write("root/vod/demo/big.m4s", &big);
    let mut cfg = config(&c.root);
    cfg.listen = free_addr();
    let addr = cfg.listen;
    let server = tokio::spawn(origin::cli::serve(cfg));
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "origin did not come up");
    // Let serve() reach its signal wait.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /vod/demo/big.m4s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .expect("download stalled after the signal")
        .unwrap();
    first.extend_from_slice(&rest);
    let resp = parse_response(&first);
    assert_eq!(resp.status, 200);
    assert!(resp.body == big, "in-flight body cut short by the signal");
    let result = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("serve() did not return after the signal")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_then_sigint() {
    stops_gracefully_on(libc::SIGTERM).await;
    stops_gracefully_on(libc::SIGINT).await;
}
