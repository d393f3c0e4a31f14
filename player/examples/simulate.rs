//! `cdn simulate` without the rest of the stack: `cargo run --release -p player --example
//! simulate -- --trace DIR --video VIDEO --abr all`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: player::cli::SimulateArgs,
}

fn main() -> anyhow::Result<()> {
    player::cli::simulate(Cli::parse().args)
}
