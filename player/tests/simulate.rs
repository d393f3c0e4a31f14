//! Trace-driven simulation over the fixture traces and videos (all three trace formats, both
//! video formats), through the same entry points `cdn simulate` uses.

use std::path::PathBuf;

use player::abr::{by_name, NAMES};
use player::cli::load_video;
use player::sim::{simulate, simulate_many, SimConfig};
use player::trace::{load_traces, Trace};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn every_algorithm_plays_every_fixture_trace() {
    let traces = load_traces(&fixtures().join("traces")).unwrap();
    assert_eq!(traces.len(), 4);
    let video = load_video(&fixtures().join("pensieve-video")).unwrap();
    assert_eq!(video.num_segments, 48, "the partial 49th chunk is dropped");
    assert_eq!(
        video.bitrates_bps,
        vec![300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3]
    );
    let results = simulate_many(&traces, &video, NAMES, &SimConfig::default(), 2).unwrap();
    assert_eq!(results.len(), NAMES.len());
    for (name, reports) in NAMES.iter().zip(&results) {
        assert_eq!(reports.len(), traces.len());
        for r in reports {
            assert_eq!(r.segments.len(), 48, "{name}");
            assert!(r.summary.qoe_lin.is_finite());
            assert!(r.summary.bitrate_kbps >= 300.0 && r.summary.bitrate_kbps <= 4300.0);
            assert!(r.summary.rebuffer_ratio >= 0.0 && r.summary.rebuffer_ratio < 1.0);
            // QoE_lin is the per-segment mean of bitrate - 4.3 rebuffer - |switch|.
            let q = player::report::qoe_lin_per_segment(&r.segments);
            let mean = q.iter().sum::<f64>() / q.len() as f64;
            assert!((mean - r.summary.qoe_lin).abs() < 1e-9);
        }
    }
}

#[test]
fn sabre_movie_over_sabre_trace() {
    let video = load_video(&fixtures().join("sabre-movie.json")).unwrap();
    assert_eq!(video.segment_duration_s, 3.0);
    let trace = Trace::load(&fixtures().join("traces/report_bicycle_0001.json")).unwrap();
    let mut abr = by_name("default").unwrap();
    let r = simulate(&trace, &video, abr.as_mut(), &SimConfig::default()).unwrap();
    assert_eq!(r.segments.len(), video.num_segments);
    // A 4G link carries the top rung nearly all the time.
    assert!(r.summary.bitrate_kbps > 5000.0, "{:?}", r.summary);
    assert_eq!(r.summary.rebuffer_count, 0);
}

#[test]
fn mahimahi_trace_plays() {
    // 12 Mb/s: one packet per millisecond.
    let text: String = (1..=1000).map(|ms| format!("{ms}\n")).collect();
    let trace = Trace::parse("mm", &text).unwrap();
    assert!((trace.mean_bps() - 12e6).abs() < 1e3);
    let video = load_video(&fixtures().join("pensieve-video")).unwrap();
    let mut abr = by_name("default").unwrap();
    let r = simulate(&trace, &video, abr.as_mut(), &SimConfig::default()).unwrap();
    assert_eq!(r.summary.rebuffer_count, 0);
    assert!(r.segments[10..].iter().all(|s| s.rung == 5));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("player-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "0 1\n1 2\nx y\n").unwrap();
    let err = format!("{:#}", Trace::load(&bad).unwrap_err());
    assert!(err.contains("bad.txt") && err.contains("line 3"), "{err}");
    let err = format!("{:#}", load_video(&dir).unwrap_err());
    assert!(err.contains("no manifest.mpd"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The training pipeline is deterministic and the committed check table is what it gives:
/// trained on the fixture traces (the fixture video cut short, one round), the table must come
/// out byte for byte as `abr-data/fixture-table.rs`, which `scripts/abr-train.sh` writes with
/// the same code that writes the shipped table.
#[test]
fn tuning_table_regenerates_from_the_fixture_traces() {
    use player::abr::train;
    let sets = train::load_fixture_sets(&fixtures()).unwrap();
    let (text, _) = train::generate(&sets, train::FIXTURE_PASSES, 2, &mut |_| {}).unwrap();
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("abr-data/fixture-table.rs");
    let want = std::fs::read_to_string(&committed).unwrap();
    assert_eq!(text, want, "scripts/abr-train.sh regenerates {committed:?}");
}

/// `--abr optimal` is planned over each trace and replayed through the same session loop: on
/// every fixture trace it scores at least as well as every online rule.
#[test]
fn the_offline_optimum_bounds_every_rule_on_the_fixtures() {
    let traces = load_traces(&fixtures().join("traces")).unwrap();
    let video = load_video(&fixtures().join("pensieve-video")).unwrap();
    let mut names = NAMES.to_vec();
    names.push(player::abr::OPTIMAL);
    let results = simulate_many(&traces, &video, &names, &SimConfig::default(), 2).unwrap();
    let optimal = results.last().unwrap();
    for (name, reports) in names.iter().zip(&results) {
        for (r, o) in reports.iter().zip(optimal) {
            assert_eq!(o.abr, "optimal");
            assert!(
                o.summary.qoe_lin >= r.summary.qoe_lin - 1e-3,
                "{name} on {:?}: {} > optimal {}",
                r.trace,
                r.summary.qoe_lin,
                o.summary.qoe_lin
            );
        }
    }
}
