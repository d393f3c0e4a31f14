//! Third-party clients against the whole stack, over real sockets: ffprobe and ffmpeg read the
//! MPDs through an edge, dash.js plays VOD and live in headless Chromium from a page on another
//! origin (so CORS is exercised), and a real Prometheus server scrapes every service.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cdn_tests::{fetch, metric_sum, run_tool, scrape, TestStack, TITLE_SECONDS};

#[tokio::test(flavor = "multi_thread")]
async fn ffprobe_and_ffmpeg_read_vod_and_live_through_an_edge() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[1].1;
    let vod = format!("http://{edge}/vod/demo/manifest.mpd");
    let live = format!("http://{edge}/live/demo/manifest.mpd");

    let streams = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
                &vod,
            ],
        )
    });
    let mut sizes: Vec<&str> = streams
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The DASH demuxer lists each stream under its program too.
    sizes.sort();
    sizes.dedup();
    assert_eq!(
        sizes,
        vec!["320,180", "426,240", "640,360"],
        "ffprobe saw: {streams}"
    );

    // ffmpeg decodes the top rendition through the edge: no error, every frame.
    let frames = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v:2",
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
                &vod,
            ],
        )
    });
    let want = (TITLE_SECONDS * 30.0) as u64;
    let counts: Vec<Option<u64>> = frames
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().ok())
        .collect();
    assert!(
        !counts.is_empty() && counts.iter().all(|c| *c == Some(want)),
        "frames decoded: {frames} (want {want})"
    );

    let live_streams = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
                &live,
            ],
        )
    });
    assert!(
        live_streams.lines().filter(|l| l.trim() == "h264").count() >= 3,
        "ffprobe found no H.264 streams in the live MPD: {live_streams}"
    );

    let text = scrape(edge).await.unwrap();
    assert!(metric_sum(&text, "edge_requests_total", &[]) > 0.0);
    t.stack.shutdown().await;
}

/// Runs tests/js/play.mjs (dash.js in Chromium) and returns its JSON report.
fn dashjs(mpd: &str, seconds: u32, throttle: Option<(u32, u32)>) -> serde_json::Value {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        js.join("node_modules/dashjs").is_dir() && js.join("node_modules/playwright-core").is_dir(),
        "tests/js/node_modules is missing: run `npm ci` in tests/js (scripts/test.sh does)"
    );
    common::tools::require("chromium");
    let node = common::tools::require("node");
    let mut cmd = Command::new(node);
    cmd.current_dir(&js)
        .arg("play.mjs")
        .arg(mpd)
        .arg(seconds.to_string());
    if let Some((kbps, secs)) = throttle {
        cmd.arg(kbps.to_string()).arg(secs.to_string());
    }
    let out = cmd.output().expect("running node play.mjs");
    assert!(
        out.status.success(),
        "play.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("play.mjs printed no JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dashjs_plays_vod_and_live_through_an_edge_cross_origin() {
    let t = TestStack::start().await.expect("stack starts");
    let edge = t.stack.edge_addrs()[0].1;

    // VOD, throttled to 350 kb/s for 8 s and then released: dash.js must use two qualities.
    let vod = format!("http://{edge}/vod/demo/manifest.mpd");
    let report = tokio::task::block_in_place(|| dashjs(&vod, 22, Some((350, 8))));
    let advanced = report["advanced"].as_f64().unwrap_or(0.0);
    assert!(advanced >= 5.0, "VOD playback did not advance: {report}");
    let qualities = report["bandwidths"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        qualities >= 2,
        "dash.js used fewer than two qualities under throttling: {report}"
    );
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    // Live: the playhead follows the wall clock.
    let live = format!("http://{edge}/live/demo/manifest.mpd");
    let report = tokio::task::block_in_place(|| dashjs(&live, 15, None));
    let advanced = report["advanced"].as_f64().unwrap_or(0.0);
    assert!(advanced >= 4.0, "live playback did not advance: {report}");
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    t.stack.shutdown().await;
}

/// Queries Prometheus' HTTP API and returns the first sample's value per `name` label.
async fn prom_query(prom: &str, query: &str) -> Vec<(String, f64)> {
    let url = format!("http://{prom}/api/v1/query?query={}", urlencode(query));
    let Ok(body) = common::http::get(&url).await else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let name = r["metric"]["name"].as_str().unwrap_or("").to_string();
                    let value = r["value"][1].as_str()?.parse().ok()?;
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_every_service_and_sees_counters_move() {
    let t = TestStack::start().await.expect("stack starts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, t.stack.prometheus_config(1)).unwrap();
    let port = cdn::stack::free_port_on(&[t.edge_ip(1)]).unwrap();
    let listen = format!("{}:{port}", t.edge_ip(1));
    let bin = common::tools::require("prometheus");
    let mut prom = tokio::process::Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={listen}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting prometheus");

    // Every target up: origin, three edges, the router.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut up = Vec::new();
    while Instant::now() < deadline {
        up = prom_query(&listen, "up").await;
        if up.len() == 5 && up.iter().all(|(_, v)| *v == 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(up.len(), 5, "targets seen by Prometheus: {up:?}");
    assert!(
        up.iter().all(|(_, v)| *v == 1.0),
        "a target is down: {up:?}"
    );

    let edge_requests = |name: &'static str| {
        let listen = listen.clone();
        async move {
            prom_query(&listen, "sum by (name) (edge_requests_total)")
                .await
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .unwrap_or(0.0)
        }
    };
    let before = edge_requests("region2").await;
    let edge = t.stack.edge_addrs()[1].1;
    for path in [
        "/vod/demo/manifest.mpd",
        "/vod/demo/manifest.mpd",
        "/vod/demo/180p/init.mp4",
    ] {
        let r = fetch(edge, "video.example.test", path, &[]).await.unwrap();
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = before;
    while Instant::now() < deadline && after < before + 3.0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = edge_requests("region2").await;
    }
    assert!(
        after >= before + 3.0,
        "edge_requests_total did not move in Prometheus: {before} -> {after}"
    );
    // The origin is scraped on its own schedule: wait for a scrape after the edge's misses.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut origin_requests = Vec::new();
    while Instant::now() < deadline {
        origin_requests = prom_query(&listen, "sum(origin_http_requests_total)").await;
        if origin_requests.first().is_some_and(|(_, v)| *v >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        origin_requests.first().is_some_and(|(_, v)| *v >= 1.0),
        "origin_http_requests_total never reached 1 in Prometheus: {origin_requests:?}"
    );

    // Every query of the shipped Grafana dashboard is valid PromQL over the stack's metrics.
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dashboard).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 8, "dashboard has too few queries");
    for expr in &exprs {
        let url = format!("http://{listen}/api/v1/query?query={}", urlencode(expr));
        let body = common::http::get(&url)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e:#}"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["status"], "success",
            "dashboard query failed: {expr}: {v}"
        );
        let metric = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| w.starts_with("edge_") || w.starts_with("origin_") || w.starts_with("dns_"))
            .unwrap_or("");
        let series = prom_query(&listen, &format!("count({{__name__=~\"{metric}.*\"}})")).await;
        assert!(
            !series.is_empty(),
            "dashboard metric {metric} is not exported by any service"
        );
    }

    let _ = prom.kill().await;
    t.stack.shutdown().await;
}

/// An edge protecting `/vod/` with signed URLs in front of an origin serving the test title.
async fn signed_edge() -> (
    origin::Origin,
    edge::Edge,
    tempfile::TempDir,
    tempfile::TempDir,
    Vec<u8>,
) {
    let content = cdn_tests::content_root().unwrap();
    let origin = origin::spawn(origin::Config {
        root: content.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..origin::Config::default()
    })
    .await
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let secret = b"signed-url-test-secret-0123456789".to_vec();
    std::fs::write(keys.path().join("k1"), &secret).unwrap();
    let edge = edge::spawn(edge::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: origin.url(),
        name: "signed".into(),
        signed_urls: Some(edge::signed::SignedUrlsConfig {
            prefixes: vec!["/vod/".into()],
            keys: vec![edge::signed::KeyConfig {
                id: "k1".into(),
                file: keys.path().join("k1"),
            }],
        }),
        ..edge::Config::default()
    })
    .await
    .unwrap();
    (origin, edge, content, keys, secret)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_urls_play_in_ffprobe_dashjs_and_cdn_play_and_nothing_plays_without() {
    let (origin, edge, _content, _keys, secret) = signed_edge().await;
    let plain = format!("http://{}/vod/demo/manifest.mpd", edge.local_addr());
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let signed = edge::signed::sign_url(&plain, "k1", &secret, expires).unwrap();

    // Without a token: refused, and ffprobe cannot open it.
    let got = fetch(
        edge.local_addr(),
        "edge.test",
        "/vod/demo/manifest.mpd",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(got.status, 403);
    let out = Command::new(common::tools::require("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width",
            "-of",
            "csv=p=0",
            &plain,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "ffprobe opened an unsigned URL");

    // With it: ffprobe sees every rung, whose segment URLs are relative to the signed one.
    let streams = tokio::task::block_in_place(|| {
        run_tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=width",
                "-of",
                "csv=p=0",
                &signed,
            ],
        )
    });
    assert!(streams.lines().count() >= 2, "ffprobe saw: {streams}");

    // cdn play plays the whole title, every segment through the token.
    let cfg = player::play::PlayConfig::new(signed.parse().unwrap());
    let report = tokio::time::timeout(Duration::from_secs(90), player::play::play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    assert_eq!(s.summary.missing_segments, 0, "{}", report.table());
    let mpd_text = String::from_utf8(
        fetch(
            edge.local_addr(),
            "edge.test",
            signed.split_once(&edge.local_addr().to_string()).unwrap().1,
            &[],
        )
        .await
        .unwrap()
        .body
        .to_vec(),
    )
    .unwrap();
    let url: mpd::Url = signed.parse().unwrap();
    let listed = mpd::Mpd::parse(&mpd_text)
        .unwrap()
        .segments(0, 0, 0, &url, mpd::SegmentsAt::Vod)
        .unwrap()
        .media
        .len();
    assert_eq!(s.segments.len(), listed, "{}", report.table());

    // dash.js in Chromium, cross-origin.
    let report = tokio::task::block_in_place(|| dashjs(&signed, 10, None));
    let advanced = report["advanced"].as_f64().unwrap_or(0.0);
    assert!(advanced >= 5.0, "signed playback did not advance: {report}");
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    edge.shutdown().await;
    origin.shutdown().await;
}
