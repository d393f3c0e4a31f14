//! The router alone, with the same flags as `cdn dns` (the benchmark builds this so it does not
//! depend on the rest of the workspace): `cargo run --release -p dns-router --example serve -- --config FILE`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: dns_router::cli::Args,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    dns_router::cli::run(Cli::parse().args)
}
