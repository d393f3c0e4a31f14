//! The origin alone, with the flags of `cdn origin`: what `origin/bench/bench.sh` runs, so the
//! benchmark builds only this crate and its dependencies.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "origin",
    about = "The HTTP origin (same flags as `cdn origin`)"
)]
struct Cli {
    #[command(flatten)]
    args: origin::cli::Args,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    origin::cli::run(Cli::parse().args)
}
