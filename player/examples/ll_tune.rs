//! Tunes the low-latency ABR rule in virtual time: every training trace (even positions of
//! each set's sorted files, as for the hybrid's table) played as a low-latency live channel
//! (2-s segments of 0.5-s chunks, the packager's default ladder, 128 kb/s of audio), for a grid
//! of the rule's safety parameters and for the throughput rule as a baseline; prints stalls,
//! bitrate and latency per candidate.
//!
//! `cargo run -p player --example ll_tune -- [TRACES_DIR] [SEGMENTS]`

use std::path::PathBuf;

use player::abr::{self, Abr, LowLatencyRule, LowLatencyTuning};
use player::lowlat::LowLatency;
use player::sim::{simulate, SimConfig};
use player::trace::Trace;
use player::video::Video;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/traces/pensieve-cooked/cooked_traces".into()),
    );
    let segments: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);
    let (train, _) = abr::train::split(&root, 1)?;
    let traces: Vec<Trace> = train
        .iter()
        .map(|f| Trace::load(f))
        .collect::<anyhow::Result<_>>()?;
    let video = Video::nominal("ll", vec![400e3, 800e3, 1400e3, 2800e3], 2.0, segments)?;
    let mut cfg = SimConfig {
        audio_bps: Some(128e3),
        ..SimConfig::default()
    };
    cfg.session.low_latency = Some(LowLatency::new(1.5, 0.5));
    println!(
        "{} training traces from {} | {} segments of 2 s, chunks 0.5 s, target 1.5 s",
        traces.len(),
        root.display(),
        segments
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "rule", "stalls", "rebuf_s", "kbps", "lat_p50", "lat_p95", "QoE_lin", "no_stall"
    );
    let mut candidates: Vec<(String, LowLatencyTuning)> = Vec::new();
    for low in [0.4, 0.5, 0.6] {
        for high in [0.7, 0.8, 0.9] {
            for up in [1, 2] {
                let t = LowLatencyTuning {
                    safety_low: low,
                    safety_high: high,
                    up_step: up,
                    ..LowLatencyTuning::default()
                };
                candidates.push((format!("ll low {low} high {high} up {up}"), t));
            }
        }
    }
    let run = |make: &dyn Fn() -> Box<dyn Abr>| -> anyhow::Result<[f64; 7]> {
        let mut acc = [0.0; 7];
        for t in &traces {
            let mut a = make();
            let r = simulate(t, &video, a.as_mut(), &cfg)?;
            let s = &r.summary;
            acc[0] += s.rebuffer_count as f64;
            acc[1] += s.rebuffer_s;
            acc[2] += s.bitrate_kbps;
            acc[3] += s.live_latency_p50_s.unwrap_or(0.0);
            acc[4] += s.live_latency_p95_s.unwrap_or(0.0);
            acc[5] += s.qoe_lin;
            acc[6] += f64::from(u8::from(s.rebuffer_count == 0));
        }
        let n = traces.len().max(1) as f64;
        let mut m = acc.map(|x| x / n);
        m[6] = acc[6];
        Ok(m)
    };
    let print = |name: &str, m: [f64; 7]| {
        println!(
            "{name:<34} {:>8.2} {:>9.2} {:>9.0} {:>8.2} {:>8.2} {:>8.3} {:>8.0}",
            m[0], m[1], m[2], m[3], m[4], m[5], m[6]
        )
    };
    for base in ["throughput", "hybrid"] {
        let m = run(&|| abr::by_name(base).expect("known rule"))?;
        print(base, m);
    }
    for (name, t) in &candidates {
        let t = *t;
        let m = run(&move || Box::new(LowLatencyRule::new(t)))?;
        print(name, m);
    }
    Ok(())
}
