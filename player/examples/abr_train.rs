//! Trains the hybrid's per-state table on the training half of the four trace sets (see
//! `player::abr::train`); `scripts/abr-train.sh` runs it. `--check` compares instead of
//! writing.
//!
//! ```text
//! abr_train --traces ../shared/traces --out player/src/abr/tuning_table.rs [--check]
//! abr_train --fixtures player/tests/fixtures --out player/abr-data/fixture-table.rs [--check]
//! abr_train --traces ../shared/traces --split /tmp/abr-split
//! ```
//!
//! `--split DIR` writes no table: it lays out `DIR/SET/{training,held-out}/` as symbolic links to
//! the trace files, the split the training uses, for `cdn simulate --trace`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use player::abr::train;

#[derive(Parser)]
struct Cli {
    /// The folder holding pensieve-cooked/, pensieve-video/ and sabre/.
    #[arg(long, required_unless_present = "fixtures")]
    traces: Option<PathBuf>,
    /// Train the small check table on the player's test fixtures instead.
    #[arg(long, conflicts_with = "traces")]
    fixtures: Option<PathBuf>,
    /// Where the generated table goes.
    #[arg(long, required_unless_present = "split")]
    out: Option<PathBuf>,
    /// Lay out the training and held-out halves of each set under this folder instead.
    #[arg(long, requires = "traces")]
    split: Option<PathBuf>,
    /// Compare the generated table with `--out` instead of writing it.
    #[arg(long)]
    check: bool,
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if let (Some(dir), Some(root)) = (&cli.split, &cli.traces) {
        return lay_out_split(root, dir);
    }
    let Some(out) = &cli.out else {
        bail!("--out is needed")
    };
    let started = std::time::Instant::now();
    let (text, log) = match (&cli.traces, &cli.fixtures) {
        (_, Some(f)) => {
            let sets = train::load_fixture_sets(f)?;
            train::generate(&sets, train::FIXTURE_PASSES, threads, &mut |l| {
                eprintln!("{l}")
            })?
        }
        (Some(t), None) => {
            let sets = train::load_sets(t)?;
            train::generate(&sets, train::PASSES, threads, &mut |l| eprintln!("{l}"))?
        }
        (None, None) => bail!("--traces or --fixtures"),
    };
    eprintln!("accepted:");
    for l in &log {
        eprintln!("  {l}");
    }
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    if cli.check {
        let old = std::fs::read_to_string(out)
            .with_context(|| format!("{}: cannot read", out.display()))?;
        if old != text {
            bail!("{} differs from what training gives", out.display());
        }
        eprintln!("{}: regenerated identically", out.display());
    } else {
        std::fs::write(out, text).with_context(|| format!("{}: cannot write", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// `DIR/SET/training/` and `DIR/SET/held-out/`: symbolic links to each set's files.
fn lay_out_split(root: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    for &(name, folder, ..) in train::SETS {
        let (training, held) = train::split(&root.join(folder), 1)?;
        for (half, files) in [("training", training), ("held-out", held)] {
            let d = dir.join(name).join(half);
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
            std::fs::create_dir_all(&d)?;
            for f in &files {
                let target = std::fs::canonicalize(f)?;
                let link = d.join(f.file_name().context("a trace file without a name")?);
                std::os::unix::fs::symlink(&target, &link)
                    .with_context(|| format!("{}: cannot link", link.display()))?;
            }
            println!("{}: {} traces", d.display(), files.len());
        }
    }
    Ok(())
}
