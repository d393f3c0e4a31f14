//! Real playback end to end: a title packaged by the packager, served by a real origin
//! (`origin::spawn`) on loopback, played in real time with downloads shaped to a stepped trace;
//! and failover from a dead address to a live one.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use packager::ladder::{Ladder, Rendition};
use packager::Options;
use player::play::{play, PlayConfig};
use player::trace::Trace;

fn package(root: &Path) {
    let mut opts = Options::new(root.join("vod/demo"));
    opts.duration = Some(30.0);
    opts.fps = 15;
    opts.segment = 1.0;
    opts.progress = false;
    opts.chunk_frames = 360;
    let r = |id: &str, width, height, kbps: u32| Rendition {
        id: id.into(),
        width,
        height,
        bitrate: kbps * 1000,
    };
    opts.ladder = Ladder {
        renditions: vec![
            r("low", 256, 144, 150),
            r("mid", 426, 240, 500),
            r("high", 640, 360, 1200),
        ],
    };
    packager::package(&opts).expect("packaging the test title");
}

async fn origin(root: &Path) -> origin::Origin {
    let cfg = origin::Config {
        root: root.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        ..origin::Config::default()
    };
    origin::spawn(cfg).await.expect("origin starts")
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("player-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shaped_playback_goes_down_and_up_without_stalling() {
    let root = tempdir("shape");
    package(&root);
    let origin = origin(&root).await;
    let url = format!("{}/vod/demo/manifest.mpd", origin.url());
    // 8 Mb/s for 6 s, 400 kb/s for 5 s, then 8 Mb/s again.
    let shape = Trace::new("step", vec![(6.0, 8e6), (5.0, 0.4e6), (1000.0, 8e6)]).unwrap();
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.shape = Some(shape);
    cfg.session.buffer.max_s = 6.0;
    cfg.timeout = Duration::from_secs(10);
    let report = tokio::time::timeout(Duration::from_secs(90), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    let rungs: Vec<usize> = s.segments.iter().map(|r| r.rung).collect();
    assert_eq!(s.segments.len(), 30, "{}", report.table());
    assert_eq!(s.summary.missing_segments, 0);
    assert_eq!(s.summary.rebuffer_count, 0, "stalled: {}", report.table());
    let top = 2;
    let first_top = rungs
        .iter()
        .position(|&r| r == top)
        .expect("reaches the top");
    let dip = rungs[first_top..]
        .iter()
        .position(|&r| r < top)
        .map(|i| i + first_top)
        .expect("goes down when the link drops");
    assert!(
        rungs[dip..].contains(&top),
        "comes back up when the link recovers: {rungs:?}"
    );
    let edge = origin.local_addr().to_string();
    assert!(s
        .segments
        .iter()
        .all(|r| r.edge.as_deref() == Some(edge.as_str())));
    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_address() {
    let root = tempdir("failover");
    package(&root);
    let origin = origin(&root).await;
    let port = origin.local_addr().port();
    // Nothing listens on 127.0.0.2 at the origin's port: connections are refused.
    let url = format!("http://video.example.test:{port}/vod/demo/manifest.mpd");
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.resolve = Some(vec![
        "127.0.0.2".parse::<IpAddr>().unwrap(),
        "127.0.0.1".parse::<IpAddr>().unwrap(),
    ]);
    cfg.duration_s = Some(3.0);
    let report = tokio::time::timeout(Duration::from_secs(60), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    assert!(report.failovers >= 1, "{}", report.table());
    let served = format!("127.0.0.1:{port}");
    assert!(report
        .session
        .segments
        .iter()
        .all(|r| r.edge.as_deref() == Some(served.as_str())));
    assert_eq!(report.session.summary.missing_segments, 0);
    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_mpd_is_an_error() {
    let root = tempdir("404");
    std::fs::create_dir_all(root.join("vod")).unwrap();
    let origin = origin(&root).await;
    let cfg = PlayConfig::new(
        format!("{}/vod/nope/manifest.mpd", origin.url())
            .parse()
            .unwrap(),
    );
    let err = format!("{:#}", play(&cfg).await.unwrap_err());
    assert!(err.contains("404"), "{err}");
    origin.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_keeps_fetching_what_is_published_while_it_runs() {
    let root = tempdir("live");
    package(&root);
    let cfg = origin::Config {
        root: root.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_log: false,
        channels: [(
            "demo".to_string(),
            origin::config::ChannelConfig::Title("demo".into()),
        )]
        .into_iter()
        .collect(),
        ..origin::Config::default()
    };
    let origin = origin::spawn(cfg).await.expect("origin starts");
    let url = format!("{}/live/demo/manifest.mpd", origin.url());
    let mut cfg = PlayConfig::new(url.parse().unwrap());
    cfg.duration_s = Some(5.0);
    cfg.session.play_out = false;
    let report = tokio::time::timeout(Duration::from_secs(30), play(&cfg))
        .await
        .expect("playback ends")
        .expect("playback works");
    let s = &report.session;
    assert!(report.live);
    assert_eq!(s.summary.missing_segments, 0, "{:?}", s.errors);
    // 1-s segments, 6 s behind the edge: the 6 or 7 already out, then about one a second for 5 s.
    assert!(
        s.segments.len() >= 10,
        "only {} segments: {}",
        s.segments.len(),
        report.table()
    );
    assert!(s.summary.session_s >= 4.0, "{}", report.table());
    assert!(
        s.segments.iter().all(|r| r.start_s < 5.0),
        "{}",
        report.table()
    );
    let _ = std::fs::remove_dir_all(&root);
}
