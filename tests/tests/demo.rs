//! `cdn demo` end to end, on free loopback addresses instead of the fixed defaults: it must
//! finish cleanly and leave a JSON report and an SVG plot per player, with the throttled player
//! having used more than one rung and the players of different regions different edges.

use cdn::stack::StackConfig;
use cdn_tests::{content_root, unique_octet};

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_and_writes_reports_and_plots() {
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
}
