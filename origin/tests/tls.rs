//! The origin over HTTPS with a test certificate: HTTP/2 and HTTP/1.1 by ALPN, the same bytes as
//! over cleartext, and clients that do not trust the certificate are refused.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use support::*;

fn client(
    ca: &std::path::Path,
    h2_only: bool,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>> {
    let roots = common::tls::Roots {
        ca_files: vec![ca.to_path_buf()],
        system: false,
    };
    let config = common::tls::client_config(&roots, &[]).unwrap();
    let connector = common::tls::https_connector(HttpConnector::new(), config, true, None).unwrap();
    Client::builder(TokioExecutor::new())
        .http2_only(h2_only)
        .build(connector)
}

async fn fetch(
    client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: &str,
) -> anyhow::Result<(http::Version, u16, Bytes)> {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse()?)).await??;
    let version = resp.version();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((version, status, body))
}

#[tokio::test]
async fn origin_serves_https_with_alpn() {
    let c = content("tls");
    let (cert, key) = common::tls::self_signed(&["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_path = c.dir.write("tls/cert.pem", cert.as_bytes());
    let key_path = c.dir.write("tls/key.pem", key.as_bytes());
    let mut cfg = config(&c.root);
    cfg.tls_cert = Some(cert_path.clone());
    cfg.tls_key = Some(key_path);
    let o = origin::spawn(cfg).await.unwrap();
    let base = o.url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    let h2 = client(&cert_path, true);
    let (v, status, body) = fetch(&h2, &format!("{base}/vod/demo/v0/1.m4s"))
        .await
        .unwrap();
    assert_eq!((v, status), (http::Version::HTTP_2, 200));
    assert_eq!(body, Bytes::from(c.segment.clone()));

    let auto = client(&cert_path, false);
    let (v, status, body) = fetch(&auto, &format!("{base}/vod/demo/manifest.mpd"))
        .await
        .unwrap();
    assert_eq!(
        (v, status),
        (http::Version::HTTP_2, 200),
        "ALPN should pick h2"
    );
    assert_eq!(body, Bytes::from(MPD));

    // An HTTP/1.1-only client negotiates http/1.1.
    let roots = common::tls::Roots {
        ca_files: vec![cert_path.clone()],
        system: false,
    };
    let h1_cfg = common::tls::client_config(&roots, &[]).unwrap();
    let h1 = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(
        common::tls::https_connector(HttpConnector::new(), h1_cfg, false, None).unwrap(),
    );
    let (v, status, body) = fetch(&h1, &format!("{base}/vod/demo/notes.txt"))
        .await
        .unwrap();
    assert_eq!((v, status), (http::Version::HTTP_11, 200));
    assert_eq!(&body[..], b"hello\n");

    // Path safety holds over TLS too.
    let (_, status, _) = fetch(&h1, &format!("{base}/vod/../secret.txt"))
        .await
        .unwrap();
    assert!((400..500).contains(&status), "traversal got {status}");

    // A client trusting another root is refused during the handshake.
    let (other, _) = common::tls::self_signed(&["127.0.0.1".into()]).unwrap();
    let other_path = c.dir.write("tls/other.pem", other.as_bytes());
    let stranger = client(&other_path, false);
    let err = fetch(&stranger, &format!("{base}/vod/demo/manifest.mpd"))
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    o.shutdown().await;
}

#[tokio::test]
async fn tls_config_errors_are_clear() {
    let c = content("tls-bad");
    let mut cfg = config(&c.root);
    cfg.tls_cert = Some(c.dir.path().join("missing-cert.pem"));
    let err = origin::spawn(cfg.clone()).await.err().unwrap();
    assert!(format!("{err:#}").contains("tls_key"), "{err:#}");
    cfg.tls_key = Some(c.dir.path().join("missing-key.pem"));
    let err = origin::spawn(cfg).await.err().unwrap();
    assert!(format!("{err:#}").contains("missing-cert.pem"), "{err:#}");
}
