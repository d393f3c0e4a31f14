//! The whole stack over HTTPS (`cdn up --tls`): a self-signed certificate generated for the
//! stack's names and addresses, the origin and the edges serving HTTP/2 by ALPN, the edges
//! verifying the origin, the router checking the edges' health over HTTPS, and a player that
//! resolves through the router and verifies the certificate against the stack's root.

use std::time::Duration;

use bytes::Bytes;
use cdn::stack::Scraper;
use cdn_tests::{metric_sum, TestStack, TITLE_SECONDS};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use player::play::PlayConfig;

#[tokio::test(flavor = "multi_thread")]
async fn tls_stack_serves_h2_verifies_every_hop_and_plays_through_the_router() {
    let t = TestStack::start_with(|c| c.tls = true)
        .await
        .expect("TLS stack starts");
    let root = t.stack.config.tls_root().expect("a TLS stack has a root");
    assert!(root.is_file(), "{} was not written", root.display());
    assert!(t.stack.content_base().starts_with("https://"));
    assert!(t.stack.origin.url().starts_with("https://"));

    // A client trusting the generated root gets HTTP/2 from an edge by ALPN, on the edge's IP
    // (the certificate names the stack's addresses) and on the content name.
    let tls = common::tls::client_config(
        &common::tls::Roots {
            ca_files: vec![root.clone()],
            system: false,
        },
        &[],
    )
    .unwrap();
    let connector =
        common::tls::https_connector(HttpConnector::new(), tls.clone(), true, None).unwrap();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let edge = t.stack.edge_addrs()[0].1;
    let resp = client
        .get(
            format!("https://{edge}/vod/demo/manifest.mpd")
                .parse()
                .unwrap(),
        )
        .await
        .expect("HTTPS GET to the edge");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.version(),
        http::Version::HTTP_2,
        "ALPN did not pick h2"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let on_disk = std::fs::read(t.content.path().join("vod/demo/manifest.mpd")).unwrap();
    assert_eq!(body.as_ref(), on_disk.as_slice());

    // Plain HTTP to the TLS port gets no response.
    let plain = common::http::get(&format!("http://{edge}/vod/demo/manifest.mpd")).await;
    assert!(plain.is_err(), "plaintext was answered: {plain:?}");

    // Edges start up; had the router's HTTPS health checks been failing, `fall` (2) of them at
    // 200 ms intervals would have taken every edge down by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The router health-checks the edges over HTTPS: a player in region 2 resolves through it,
    // is steered to region 2's edge (not the origin fallback) and plays every segment, verifying
    // the certificate against the stack's root.
    let mut pc =
        PlayConfig::new(url::Url::parse(&t.content_url("/vod/demo/manifest.mpd")).unwrap());
    pc.dns = Some(t.stack.dns.dns_addr());
    pc.bind = Some(t.client_in_region(2));
    pc.ca = vec![root.clone()];
    pc.session.play_out = false;
    let segments = (TITLE_SECONDS / 2.0) as usize;
    let region2 = t.stack.edge_addrs()[1].1.to_string();
    let local = tokio::task::LocalSet::new();
    let report = local
        .run_until(async {
            // The router needs `rise` good health checks before it steers to an edge.
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let r = player::play::play(&pc).await;
                let on_edge = |r: &player::play::PlayReport| {
                    r.session.summary.missing_segments == 0
                        && r.session
                            .segments
                            .iter()
                            .all(|s| s.edge.as_deref() == Some(region2.as_str()))
                };
                match r {
                    Ok(r) if on_edge(&r) => return r,
                    other if std::time::Instant::now() > deadline => panic!(
                        "never played from region 2's edge over HTTPS: {:?}",
                        other.map(|r| (r.session.errors, r.addresses))
                    ),
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            }
        })
        .await;
    assert_eq!(report.session.summary.segments, segments);
    assert_eq!(report.session.summary.rebuffer_count, 0);

    // The router saw every edge healthy over HTTPS.
    let dns_metrics = cdn_tests::scrape(t.stack.dns.metrics_addr()).await.unwrap();
    assert_eq!(
        metric_sum(&dns_metrics, "dns_edge_up", &[]),
        3.0,
        "{dns_metrics}"
    );

    // The edge fetched from the HTTPS origin (verified), and /metrics is served over HTTPS.
    let scraper = Scraper::new(&t.stack.config).unwrap();
    let edge_text = scraper.scrape(t.stack.edge_addrs()[1].1).await.unwrap();
    assert!(
        metric_sum(&edge_text, "edge_requests_total", &[]) >= (segments + 2) as f64,
        "{edge_text}"
    );
    let origin_text = scraper.scrape(t.stack.origin.local_addr()).await.unwrap();
    assert!(metric_sum(&origin_text, "origin_http_requests_total", &[]) >= 2.0);
    let prom = t.stack.prometheus_config(5);
    assert!(
        prom.contains("scheme: https") && prom.contains("ca_file:"),
        "{prom}"
    );

    // A client trusting only the system roots is refused at the handshake.
    let untrusting = common::http::Fetcher::new(&common::tls::Roots {
        ca_files: Vec::new(),
        system: true,
    })
    .unwrap();
    let err = untrusting
        .get(&format!("https://{edge}/metrics"))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );

    t.stack.shutdown().await;
}

#[tokio::test]
async fn tls_settings_that_do_not_fit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cdn::stack::StackConfig {
        data: dir.path().to_path_buf(),
        tls_cert: Some(dir.path().join("cert.pem")),
        ..Default::default()
    };
    let err = cfg.tls_files().unwrap_err();
    assert!(format!("{err:#}").contains("tls is off"), "{err:#}");
    cfg.tls = true;
    let err = cfg.tls_files().unwrap_err();
    assert!(format!("{err:#}").contains("go together"), "{err:#}");
    cfg.tls_key = Some(dir.path().join("key.pem"));
    let err = cfg.tls_files().unwrap_err();
    assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");

    // Generated once, reused while the names stay the same, regenerated when they change.
    cfg.tls_cert = None;
    cfg.tls_key = None;
    let files = cfg.tls_files().unwrap().unwrap();
    let first = std::fs::read(&files.cert).unwrap();
    cfg.tls_files().unwrap();
    assert_eq!(
        std::fs::read(&files.cert).unwrap(),
        first,
        "regenerated needlessly"
    );
    cfg.edges[0].listen = "127.9.9.1:8080".parse().unwrap();
    cfg.tls_files().unwrap();
    assert_ne!(
        std::fs::read(&files.cert).unwrap(),
        first,
        "stale names kept"
    );
    common::tls::server_config_from_pem(&files.cert, &files.key).unwrap();
}
