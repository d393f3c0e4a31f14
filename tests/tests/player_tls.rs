//! Playback over HTTPS: the player verifies the server's certificate against the URL's host name,
//! refuses a certificate signed by a root it does not know (with or without the system roots),
//! and plays once that root is given with `--ca`, over HTTP/1.1 or HTTP/2 (ALPN), or over
//! HTTP/3 (QUIC, on the same port number over UDP).

use std::path::{Path, PathBuf};
use std::time::Duration;

use packager::ladder::{Ladder, Rendition};
use packager::Options;
use player::play::{play, PlayConfig};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("player-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn package(root: &Path) {
    let mut opts = Options::new(root.join("vod/demo"));
    opts.duration = Some(6.0);
    opts.fps = 10;
    opts.segment = 1.0;
    opts.progress = false;
    opts.ladder = Ladder {
        renditions: vec![Rendition {
            id: "low".into(),
            width: 192,
            height: 108,
            bitrate: 100_000,
        }],
    };
    packager::package(&opts).expect("packaging the test title");
}

fn config(url: &str, port_ip: std::net::IpAddr) -> PlayConfig {
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.resolve = Some(vec![port_ip]);
    cfg.timeout = Duration::from_secs(10);
    cfg.session.play_out = false;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_verifies_the_certificate_against_its_ca() {
    let dir = tempdir("ca");
    let root = dir.join("root");
    package(&root);
    let names = vec!["video.example.test".to_string()];
    let (cert, key) = common::tls::write_self_signed(&dir.join("tls"), &names).unwrap();
    let (stranger, _) = common::tls::write_self_signed(&dir.join("other"), &names).unwrap();
    let origin = origin::spawn(origin::Config {
        root: root.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..origin::Config::default()
    })
    .await
    .expect("origin starts");
    let addr = origin.local_addr();
    let url = format!(
        "https://video.example.test:{}/vod/demo/manifest.mpd",
        addr.port()
    );

    // No --ca: the system roots do not know this certificate.
    let cfg = config(&url, addr.ip());
    let err = tokio::time::timeout(Duration::from_secs(30), play(&cfg))
        .await
        .expect("refusal is prompt")
        .expect_err("an unknown root must be refused");
    let text = format!("{err:#}").to_lowercase();
    assert!(text.contains("certificate"), "{text}");

    // --ca with a different root, and no system roots: still refused.
    let mut cfg = config(&url, addr.ip());
    cfg.ca = vec![stranger];
    cfg.system_roots = false;
    let err = tokio::time::timeout(Duration::from_secs(30), play(&cfg))
        .await
        .expect("refusal is prompt")
        .expect_err("a certificate from another root must be refused");
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );

    // --ca with the right root: plays, over HTTP/1.1, HTTP/2 and HTTP/3.
    let roots = common::tls::Roots {
        ca_files: vec![cert.clone()],
        system: false,
    };
    let tls = common::tls::client_config(&roots, &[]).unwrap();
    let probe = common::h3::Client::new(
        &tls,
        "127.0.0.1:0".parse().unwrap(),
        addr,
        "video.example.test",
    )
    .unwrap();
    let h3_requests = || async {
        let (_, body) = probe
            .get("/metrics", 1 << 20)
            .await
            .expect("metrics over h3");
        let text = String::from_utf8_lossy(&body);
        let n = common::metrics::sum(
            &text,
            "origin_requests_by_protocol_total",
            &[("protocol", "h3")],
        );
        assert!(n >= 1.0, "no h3 request counted in {text}");
        n
    };
    for (http2, http3) in [(false, false), (true, false), (false, true)] {
        let mut cfg = config(&url, addr.ip());
        cfg.ca = vec![cert.clone()];
        cfg.system_roots = false;
        cfg.http2 = http2;
        cfg.http3 = http3;
        let before = h3_requests().await;
        let report = tokio::time::timeout(Duration::from_secs(60), play(&cfg))
            .await
            .expect("playback ends")
            .expect("playback over TLS works");
        let s = &report.session;
        assert_eq!(
            s.segments.len(),
            6,
            "http2={http2} http3={http3}: {}",
            report.table()
        );
        assert_eq!(s.summary.missing_segments, 0);
        // The metrics request itself is one h3 request; the player's MPD, init and six
        // segments are the rest when it speaks HTTP/3.
        let played_h3 = h3_requests().await - before - 1.0;
        if http3 {
            assert!(played_h3 >= 8.0, "{played_h3} requests over HTTP/3");
        } else {
            assert_eq!(played_h3, 0.0);
        }
    }

    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
