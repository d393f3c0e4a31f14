//! `cdn demo` end to end, on free loopback addresses instead of the fixed defaults: it must
//! finish cleanly and leave a JSON report and an SVG plot per player, with the throttled player
//! having used more than one rung and the players of different regions different edges; and, on
//! plain HTTP, it must say nothing about TLS. And the stack's watch page, driven in headless
//! Chromium (`tests/js/watch.mjs`): it lists what the origin serves and plays VOD and live
//! through the edges with dash.js and hls.js, showing the rung, the buffer and the live latency.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdn::stack::StackConfig;
use cdn_tests::{content_root, fetch, unique_octet, TestStack};

/// Everything logged at WARN or above, by any thread of this test binary.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<u8>>>);

impl Write for Warnings {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Warnings {
    type Writer = Warnings;
    fn make_writer(&'a self) -> Warnings {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_and_writes_reports_and_plots() {
    let warnings = Warnings::default();
    tracing_subscriber::fmt()
        .with_writer(warnings.clone())
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .try_init()
        .expect("the only subscriber of this test binary");
    let content = content_root().unwrap();
    let cfg = StackConfig::on_free_addresses(content.path().to_path_buf(), unique_octet()).unwrap();
    cdn::demo::demo(cfg, 6.0).await.expect("the demo succeeds");

    let reports = content.path().join("reports");
    let names = [
        "vod-region1",
        "vod-region2-throttled",
        "live-region3",
        "vod-region1-second",
        "live-ll-region3",
    ];
    let mut edges = Vec::new();
    for name in names {
        let json = std::fs::read(reports.join(format!("{name}.json"))).expect("report written");
        let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let segments = report["session"]["segments"]
            .as_array()
            .expect("segments")
            .clone();
        assert!(!segments.is_empty(), "{name}: no segments");
        let svg =
            std::fs::read_to_string(reports.join(format!("{name}.svg"))).expect("plot written");
        assert!(svg.contains("<svg"), "{name}: not an SVG");
        edges.push(segments[0]["edge"].as_str().unwrap_or("").to_string());
        if name == "live-ll-region3" {
            assert!(
                report["low_latency"].is_object(),
                "{name}: low-latency mode is on"
            );
            let p50 = report["session"]["summary"]["live_latency_p50_s"]
                .as_f64()
                .expect("live latency reported");
            assert!(p50 > 0.0 && p50 < 3.0, "{name}: {p50} s behind live");
        }
        if name == "vod-region2-throttled" {
            let mut rungs: Vec<u64> = segments.iter().filter_map(|s| s["rung"].as_u64()).collect();
            rungs.sort();
            rungs.dedup();
            assert!(
                rungs.len() >= 2,
                "the throttled player never changed rung: {rungs:?}"
            );
        }
    }
    assert_ne!(
        edges[0], edges[1],
        "regions 1 and 2 were served by the same edge"
    );
    assert_eq!(
        edges[0], edges[3],
        "the second region-1 player used another edge"
    );
    let logged = String::from_utf8_lossy(&warnings.0.lock().unwrap()).into_owned();
    for word in ["TLS", "certificate", "https"] {
        assert!(
            !logged.contains(word),
            "a plain-HTTP demo warned about {word}:\n{logged}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The number a displayed stat starts with (`"12.3 s"`, `"700 kb/s, 426×240"`).
fn leading_number(text: &str) -> Option<f64> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_page_lists_the_content_and_plays_vod_and_live_through_the_edges() {
    let started = Instant::now();
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let modules = js.join("node_modules");
    for package in ["dashjs", "hls.js", "playwright-core"] {
        assert!(
            modules.join(package).is_dir(),
            "tests/js/node_modules/{package} is missing: run `npm ci` in tests/js (scripts/test.sh does)"
        );
    }
    common::tools::require("chromium");
    let node = common::tools::require("node");

    // A second title beside the demo one: the page must find it in the content root.
    let players = modules.clone();
    let t = TestStack::start_with(move |cfg| {
        copy_dir(&cfg.data.join("vod/demo"), &cfg.data.join("vod/second"));
        cfg.watch_players_dir = Some(players);
    })
    .await
    .expect("stack starts");
    let watch = t.stack.watch.local_addr();
    let edges: Vec<String> = t
        .stack
        .edge_addrs()
        .iter()
        .map(|(_, a)| format!("http://{a}"))
        .collect();

    let catalog = fetch(watch, "localhost", "/catalog.json", &[])
        .await
        .unwrap();
    assert_eq!(catalog.status, 200);
    let catalog: serde_json::Value = serde_json::from_slice(&catalog.body).unwrap();
    let names = |kind: &str| -> Vec<String> {
        catalog[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("titles"), ["demo", "second"], "{catalog}");
    assert_eq!(names("channels"), ["demo", "demo-ll"], "{catalog}");
    let listed_edges: Vec<&str> = catalog["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(listed_edges, edges, "{catalog}");
    assert_eq!(catalog["players"]["dash"], "players/dash.all.min.js");
    for (path, status) in [
        ("/players/hls.min.js", 200),
        ("/nope", 404),
        ("/players/../../etc/passwd", 404),
        ("/vod/demo/manifest.mpd", 404),
    ] {
        let got = fetch(watch, "localhost", path, &[]).await.unwrap();
        assert_eq!(got.status, status, "{path}");
    }

    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-output");
    std::fs::create_dir_all(&out).unwrap();
    let out = std::fs::canonicalize(out).unwrap();
    // Two tabs at once, each playing VOD then live (the second the low-latency channel),
    // through different edges and with both players for each kind of stream.
    let tabs = [
        "titles/demo/dash@0,channels/demo/hls@0",
        "titles/second/hls@1,channels/demo-ll/dash@1",
    ];
    let seconds = 10;
    let mut cmd = tokio::process::Command::new(node);
    cmd.current_dir(&js)
        .arg("watch.mjs")
        .arg(t.stack.watch.url())
        .arg(&out)
        .arg(seconds.to_string())
        .args(tabs)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(50), cmd.output())
        .await
        .expect("watch.mjs finishes within 50 s")
        .expect("running node watch.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "watch.mjs failed ({}): {}{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("watch.mjs printed no JSON ({e}): {stdout}"));

    let mut played = 0;
    for tab in report.as_array().expect("one report per tab") {
        assert_eq!(
            tab["listed"]["Titles"],
            serde_json::json!(["demo", "second"]),
            "{tab}"
        );
        assert_eq!(
            tab["listed"]["Live channels"],
            serde_json::json!(["demo", "demo-ll"]),
            "{tab}"
        );
        assert_eq!(tab["edges"].as_array().unwrap().len(), 3, "{tab}");
        for s in tab["sessions"].as_array().unwrap() {
            played += 1;
            let field = |k: &str| s[k].as_str().unwrap_or("?").to_string();
            let what = format!(
                "{}/{}/{}@{}",
                field("kind"),
                field("name"),
                field("format"),
                field("edge")
            );
            let errors = s["errors"].as_array().unwrap();
            assert!(errors.is_empty(), "{what}: errors {s}");
            let secs = s["played"].as_f64().unwrap();
            assert!(
                secs >= 4.0,
                "{what}: played only {secs:.1} s of {seconds}: {s}"
            );
            let rung = s["rung"].as_str().unwrap();
            assert!(
                rung.contains(" kb/s, ")
                    && rung.contains('×')
                    && leading_number(rung).unwrap_or(0.0) > 0.0,
                "{what}: no rung shown: {s}"
            );
            let buffer = leading_number(s["buffer"].as_str().unwrap()).unwrap_or(0.0);
            assert!(buffer > 0.0, "{what}: no buffer shown: {s}");
            let latency = s["latency"].as_str().unwrap();
            if s["kind"] == "channels" {
                let l = leading_number(latency).unwrap_or(0.0);
                assert!(l > 0.0 && l < 60.0, "{what}: live latency {latency:?}: {s}");
                if s["name"] == "demo-ll" {
                    assert!(
                        l < 3.0,
                        "{what}: low-latency channel {latency:?} behind: {s}"
                    );
                }
            } else {
                assert_eq!(latency, "not live", "{what}: {s}");
            }
            let stalls: u32 = s["stalls"]
                .as_str()
                .unwrap()
                .parse()
                .expect("a stall count");
            // Everything the player fetched came from the chosen edge, cross-origin, with CORS.
            let edge = &edges[s["edge"].as_str().unwrap().parse::<usize>().unwrap()];
            assert!(s["media_requests"].as_u64().unwrap() > 2, "{what}: {s}");
            assert_eq!(s["media_origins"], serde_json::json!([edge]), "{what}: {s}");
            assert_eq!(
                s["media_without_cors"],
                serde_json::json!([]),
                "{what}: {s}"
            );
            assert_eq!(s["media_failed"], serde_json::json!([]), "{what}: {s}");
            let shot = s["screenshot"].as_str().unwrap();
            let png = std::fs::read(shot).expect("screenshot written");
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{shot} is not a PNG");
            println!(
                "{what}: played {secs:.1} s, rung {rung}, buffer {buffer:.1} s, latency {latency}, \
                 {stalls} stalls, {} requests to {edge}; screenshot {shot}",
                s["media_requests"]
            );
        }
        // The players came from the local directory, through the watch server.
        let page: Vec<String> = tab["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["page_requests"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        for lib in ["/players/dash.all.min.js", "/players/hls.min.js"] {
            assert!(
                page.contains(&format!("200 {lib}")),
                "{lib} not loaded: {page:?}"
            );
        }
    }
    assert_eq!(played, 4, "{report}");
    t.stack.shutdown().await;
    println!(
        "watch page test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
