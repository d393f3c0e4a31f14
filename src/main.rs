//! `cdn`: one command for every job of the stack. Each subcommand is a thin face over a crate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cdn", version, about = "CDN and adaptive streaming stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the stack, play the demo title from two regions and a live channel, and report.
    Demo(cdn::demo::DemoArgs),
    /// Start the whole stack (origin, three edges, DNS router) on loopback and leave it running.
    Up(cdn::up::StackArgs),
    /// Run the geo-aware authoritative DNS router (SIGHUP reloads its config).
    Dns(dns_router::cli::Args),
    /// Parse an MPD file or URL and print a summary (--json for JSON).
    Mpd(player::inspect::Args),
    /// Parse an HLS playlist (multivariant or media) file or URL and print a summary.
    Hls(player::inspect::Args),
    /// Encode the test pattern (or --input FILE) into an H.264 DASH ladder with a manifest.
    Package(packager::cli::Args),
    /// Serve packaged titles (VOD and live) over HTTP.
    Origin(origin::cli::Args),
    /// Run an edge cache (caching reverse proxy) in front of the origin or parent edges.
    Edge(edge::cli::Args),
    /// Print a signed URL for an edge's protected prefixes (the token covers the URL's folder).
    Sign(edge::signed::SignArgs),
    /// Simulate DASH sessions over network traces in virtual time (ABR comparison).
    Simulate(player::cli::SimulateArgs),
    /// Play a DASH URL in real time (DNS, HTTP failover, ABR, optional shaping) and report QoE.
    Play(player::cli::PlayArgs),
}

/// Diagnostics go to standard error, coloured only when it is a terminal; access log lines
/// (`common::access_log`, written only when a server is asked for them) go bare to standard
/// output, one request per line, for log tools to read.
fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{filter_fn, EnvFilter};
    use tracing_subscriber::prelude::*;

    let access = |m: &tracing::Metadata<'_>| m.target() == common::access_log::TARGET;
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter_fn(move |m| !access(m)));
    let access_lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_filter(filter_fn(access));
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .with(diagnostics)
        .with(access_lines)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story; servers' access logs would drown it (RUST_LOG overrides).
    // hickory-server logs every TCP query at info.
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info,hickory_server=warn",
    };
    init_logging(default_level);
    let result = match cli.command {
        Command::Demo(args) => cdn::demo::run(args),
        Command::Up(args) => cdn::up::run(args),
        Command::Dns(args) => dns_router::cli::run(args),
        Command::Mpd(args) => player::inspect::run(args),
        Command::Hls(args) => player::inspect::run_hls(args),
        Command::Package(args) => packager::cli::run(args),
        Command::Origin(args) => origin::cli::run(args),
        Command::Edge(args) => edge::cli::run(args),
        Command::Sign(args) => edge::signed::run_sign(args),
        Command::Simulate(args) => player::cli::simulate(args),
        Command::Play(args) => player::cli::play(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
