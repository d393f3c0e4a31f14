//! `cdn demo` end to end, on free loopback addresses instead of the fixed defaults: it must
//! finish cleanly and leave a JSON report and an SVG plot per player, with the throttled player
//! having used more than one rung and the players of different regions different edges; and, on
//! plain HTTP, it must say nothing about TLS.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cdn::stack::StackConfig;
use cdn_tests::{content_root, unique_octet};

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
