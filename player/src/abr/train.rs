//! Offline training of the hybrid's per-state table ([`super::tuning`]): coordinate search over
//! [`super::tuning::GRID`], scored by simulating every training trace. Deterministic: the same
//! sets, grid and passes give the same table whatever the number of threads.
//!
//! The split is fixed by file name: in each trace set, sorted by name, the files at even
//! positions (0, 2, 4, ...) are for training and the odd ones are held out ([`is_training`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::tuning::{self, Grid, Table, CLASSES, UNTUNED};
use super::Hybrid;
use crate::cli::load_video;
use crate::sim::{simulate, SimConfig};
use crate::trace::{trace_files, Trace};
use crate::video::Video;

/// Whether the file at `index` of a set's sorted file list is a training file.
pub fn is_training(index: usize) -> bool {
    index.is_multiple_of(2)
}

/// The training files under `dir` (every `stride`-th of them, to bound the training time on
/// large sets) and the held-out files.
pub fn split(dir: &Path, stride: usize) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let files = trace_files(dir)?;
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, f) in files.into_iter().enumerate() {
        if is_training(i) {
            train.push(f);
        } else {
            held.push(f);
        }
    }
    let train = train.into_iter().step_by(stride.max(1)).collect();
    Ok((train, held))
}

/// One trace set to train on.
#[derive(Debug, Clone)]
pub struct TrainSet {
    pub name: String,
    pub video: Video,
    pub traces: Vec<Trace>,
    /// Weight of this set's mean QoE_lin in the objective.
    pub weight: f64,
    /// A table whose mean rebuffer ratio on this set exceeds this is rejected.
    pub max_rebuffer_ratio: Option<f64>,
}

/// Mean QoE_lin and mean rebuffer ratio of one set, and the decisions taken in each state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetScore {
    pub qoe: f64,
    pub rebuffer_ratio: f64,
    pub visits: [u64; CLASSES],
}

/// One session's QoE_lin, rebuffer ratio and decisions per state.
pub type Run = (f64, f64, [u32; CLASSES]);

/// Simulates the hybrid with `table` over the traces `jobs` names ((set, trace) pairs); the
/// runs come back in the order of `jobs`, whatever the number of threads.
fn run_jobs(
    table: &Table,
    sets: &[TrainSet],
    jobs: &[(usize, usize)],
    cfg: &SimConfig,
    threads: usize,
) -> Result<Vec<Run>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Vec<(usize, Result<Run>)>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads.clamp(1, jobs.len().max(1)))
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(s, t)) = jobs.get(j) else { break };
                        let mut abr = Hybrid::with_table(*table);
                        let r = simulate(&sets[s].traces[t], &sets[s].video, &mut abr, cfg)
                            .map(|r| (r.summary.qoe_lin, r.summary.rebuffer_ratio, *abr.visits()));
                        mine.push((j, r));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out: Vec<Option<Run>> = vec![None; jobs.len()];
    for (j, r) in results.into_iter().flatten() {
        out[j] = Some(r?);
    }
    out.into_iter()
        .map(|r| r.ok_or_else(|| anyhow::anyhow!("a training session did not run")))
        .collect()
}

/// Every (set, trace) pair of `sets`, in order.
fn all_jobs(sets: &[TrainSet]) -> Vec<(usize, usize)> {
    sets.iter()
        .enumerate()
        .flat_map(|(s, set)| (0..set.traces.len()).map(move |t| (s, t)))
        .collect()
}

/// Per-set scores of per-trace runs (in [`all_jobs`] order).
fn scores_of(sets: &[TrainSet], runs: &[Run]) -> Vec<SetScore> {
    let mut scores = Vec::with_capacity(sets.len());
    let mut k = 0;
    for set in sets {
        let (mut q, mut rr) = (0.0, 0.0);
        let mut visits = [0u64; CLASSES];
        for (a, b, v) in &runs[k..k + set.traces.len()] {
            q += a;
            rr += b;
            for (sum, n) in visits.iter_mut().zip(v) {
                *sum += u64::from(*n);
            }
        }
        k += set.traces.len();
        let n = set.traces.len().max(1) as f64;
        scores.push(SetScore {
            qoe: q / n,
            rebuffer_ratio: rr / n,
            visits,
        });
    }
    scores
}

/// Simulates the hybrid with `table` over every set.
pub fn evaluate(
    table: &Table,
    sets: &[TrainSet],
    cfg: &SimConfig,
    threads: usize,
) -> Result<Vec<SetScore>> {
    let runs = run_jobs(table, sets, &all_jobs(sets), cfg, threads)?;
    Ok(scores_of(sets, &runs))
}

/// A regression on any set below the starting table costs this many times its gain.
const REGRESSION_PRICE: f64 = 3.0;

/// The objective: the weighted gain in mean QoE_lin over the starting table, regressions
/// priced at [`REGRESSION_PRICE`], a rebuffer ratio over a set's bound disqualifying.
pub fn objective(sets: &[TrainSet], base: &[SetScore], got: &[SetScore]) -> f64 {
    let mut o = 0.0;
    for ((set, b), g) in sets.iter().zip(base).zip(got) {
        let d = g.qoe - b.qoe;
        o += set.weight * if d >= 0.0 { d } else { REGRESSION_PRICE * d };
        if set
            .max_rebuffer_ratio
            .is_some_and(|m| g.rebuffer_ratio > m && g.rebuffer_ratio > b.rebuffer_ratio)
        {
            o -= 1e3;
        }
    }
    o
}

/// What a training run gives.
#[derive(Debug, Clone)]
pub struct Trained {
    pub table: Table,
    pub base: Vec<SetScore>,
    pub scores: Vec<SetScore>,
    /// One line per accepted change.
    pub log: Vec<String>,
}

/// Coordinate search from `start`: for each state the current table visits, each parameter and
/// each grid value in turn, a change is kept when it raises the objective; `passes` rounds.
pub fn train(
    sets: &[TrainSet],
    grid: &Grid,
    start: Table,
    passes: usize,
    cfg: &SimConfig,
    threads: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Trained> {
    let jobs = all_jobs(sets);
    let mut runs = run_jobs(&start, sets, &jobs, cfg, threads)?;
    let base = scores_of(sets, &runs);
    let mut table = start;
    let mut scores = base.clone();
    let mut best = objective(sets, &base, &scores);
    let mut log = Vec::new();
    let names = [
        "discount",
        "end_buffer_s",
        "outage_end_buffer_s",
        "endgame_s",
    ];
    for pass in 0..passes {
        let mut changed = false;
        for c in 0..CLASSES {
            for (param, name) in names.iter().enumerate() {
                let values = match param {
                    0 => grid.discount,
                    1 => grid.end_buffer_s,
                    2 => grid.outage_end_buffer_s,
                    _ => grid.endgame_s,
                };
                for &v in values {
                    // A session that never enters state `c` plays the same whatever the
                    // state's parameters: only the others are simulated again.
                    let touched: Vec<usize> =
                        (0..jobs.len()).filter(|&j| runs[j].2[c] > 0).collect();
                    if touched.is_empty() {
                        break;
                    }
                    let mut t = table;
                    let slot = match param {
                        0 => &mut t[c].discount,
                        1 => &mut t[c].end_buffer_s,
                        2 => &mut t[c].outage_end_buffer_s,
                        _ => &mut t[c].endgame_s,
                    };
                    if *slot == v {
                        continue;
                    }
                    *slot = v;
                    let sub: Vec<(usize, usize)> = touched.iter().map(|&j| jobs[j]).collect();
                    let fresh = run_jobs(&t, sets, &sub, cfg, threads)?;
                    let mut tried = runs.clone();
                    for (&j, r) in touched.iter().zip(fresh) {
                        tried[j] = r;
                    }
                    let s = scores_of(sets, &tried);
                    let o = objective(sets, &base, &s);
                    progress(&format!(
                        "pass {pass} state {c} {name} = {v} ({} sessions): {o:.4} (best {best:.4})",
                        touched.len()
                    ));
                    if o > best + 1e-9 {
                        log.push(format!(
                            "pass {pass} state {c} {name} = {v}: objective {o:.4}"
                        ));
                        best = o;
                        table = t;
                        runs = tried;
                        scores = s;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    Ok(Trained {
        table,
        base,
        scores,
        log,
    })
}

/// A trace set the shipped table is trained on: name, trace folder and video under the traces
/// root, weight, rebuffer bound, stride over the training half.
pub type SetSpec = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    Option<f64>,
    usize,
);

/// The trace sets the shipped table is trained on. FCC SD has 500 training traces; every 5th
/// of them is used.
pub const SETS: &[SetSpec] = &[
    (
        "pensieve",
        "pensieve-cooked/cooked_traces",
        "pensieve-video",
        1.0,
        None,
        1,
    ),
    ("3g", "sabre/3Glogs", "sabre/bbb.json", 0.2, None, 1),
    ("4g", "sabre/4Glogs", "sabre/bbb.json", 0.2, Some(0.004), 1),
    (
        "fcc-sd",
        "sabre/sd_fs",
        "sabre/bbb.json",
        0.2,
        Some(0.004),
        5,
    ),
];

/// Coordinate-search rounds for the shipped table.
pub const PASSES: usize = 1;

/// The training halves of [`SETS`] under `root`.
pub fn load_sets(root: &Path) -> Result<Vec<TrainSet>> {
    let mut sets = Vec::new();
    for &(name, dir, video, weight, bound, stride) in SETS {
        let (files, _) = split(&root.join(dir), stride)?;
        let traces = files
            .iter()
            .map(|f| Trace::load(f))
            .collect::<Result<Vec<_>>>()?;
        sets.push(TrainSet {
            name: name.into(),
            video: load_video(&root.join(video))?,
            traces,
            weight,
            max_rebuffer_ratio: bound,
        });
    }
    Ok(sets)
}

/// The fixture check: the player tests' fixture traces (`tests/fixtures/traces`, one set) with
/// the fixture video cut to [`FIXTURE_SEGMENTS`] segments, [`FIXTURE_PASSES`] round.
pub const FIXTURE_SEGMENTS: usize = 48;
pub const FIXTURE_PASSES: usize = 1;

pub fn load_fixture_sets(fixtures: &Path) -> Result<Vec<TrainSet>> {
    let traces = crate::trace::load_traces(&fixtures.join("traces"))?;
    let mut video = load_video(&fixtures.join("pensieve-video"))?;
    video.truncate(FIXTURE_SEGMENTS);
    Ok(vec![TrainSet {
        name: "fixtures".into(),
        video,
        traces,
        weight: 1.0,
        max_rebuffer_ratio: None,
    }])
}

/// Trains from [`UNTUNED`] and renders the table file, with the training figures in its
/// header. Returns the text and the log of accepted changes.
pub fn generate(
    sets: &[TrainSet],
    passes: usize,
    threads: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, Vec<String>)> {
    let t = train(
        sets,
        &tuning::GRID,
        [UNTUNED; CLASSES],
        passes,
        &SimConfig::default(),
        threads,
        progress,
    )?;
    let mut provenance = format!("Coordinate search, {passes} round(s), over:\n");
    for ((s, b), g) in sets.iter().zip(&t.base).zip(&t.scores) {
        provenance.push_str(&format!(
            "  {}: {} traces, mean QoE_lin {:.4} -> {:.4}, rebuffer ratio {:.4}% -> {:.4}%\n",
            s.name,
            s.traces.len(),
            b.qoe,
            g.qoe,
            b.rebuffer_ratio * 100.0,
            g.rebuffer_ratio * 100.0
        ));
    }
    Ok((tuning::render(&t.table, provenance.trim_end()), t.log))
}
