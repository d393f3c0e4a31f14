//! `cdn dns --config FILE`: SIGHUP reloads the file (its own test binary, since it signals the
//! process).

mod support;

use std::time::Duration;

use hickory_net::proto::rr::RecordType;
use support::{ask, eventually, udp};

/// A port free for both UDP and TCP on 127.0.0.1 at the time of the call.
fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file() {
    let dir = std::env::temp_dir().join(format!("dns-router-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("router.toml");
    let port = free_port();
    let write = |ttl: u32| {
        let text = dns_router::config::LOCAL_TOML
            .replace(
                "listen = \"127.0.0.1:5353\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                "metrics_listen = \"127.0.0.1:9153\"",
                "metrics_listen = \"127.0.0.1:0\"",
            )
            .replace("ttl = 300", &format!("ttl = {ttl}"));
        assert!(text.contains(&format!("ttl = {ttl}")));
        std::fs::write(&path, text).unwrap();
    };
    write(300);
    let args = dns_router::cli::Args {
        config: Some(path.clone()),
        listen: None,
        metrics_listen: None,
    };
    let task = tokio::spawn(dns_router::cli::serve(args));
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ttl = || async {
        tokio::time::timeout(
            Duration::from_millis(500),
            ask(server, "video.example.test.", RecordType::CNAME, udp()),
        )
        .await
        .ok()
        .and_then(|m| m.answers.first().map(|r| r.ttl))
    };
    assert!(
        eventually(Duration::from_secs(10), async || ttl().await == Some(300))
            .await
            .is_some()
    );
    write(123);
    // SAFETY: raising a signal in our own process; the CLI installed its handler before serving.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    let took = eventually(Duration::from_secs(5), async || ttl().await == Some(123)).await;
    assert!(took.is_some(), "SIGHUP did not reload the file");
    // A broken file is refused on SIGHUP and the running config stays.
    std::fs::write(&path, "[[zones]]\napex = 7\n").unwrap();
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ttl().await, Some(123));
    assert!(
        !task.is_finished(),
        "the CLI keeps running after a bad reload"
    );
    task.abort();
    std::fs::remove_dir_all(&dir).ok();
}
