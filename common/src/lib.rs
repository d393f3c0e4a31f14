//! Service plumbing shared by the stack's servers and tests, written once.
//!
//! - [`http`]: the HTTP/1.1 + HTTP/2 server loop with limits and graceful shutdown (optionally
//!   over TLS), response body helpers, and a small GET client ([`http::Fetcher`]).
//! - [`h3`]: HTTP/3 over QUIC beside every TLS server, and an HTTP/3 client.
//! - [`tls`]: rustls server and client configurations, trust roots, rcgen self-signed
//!   certificates.
//! - [`precondition`], [`etag`], [`range`], [`list`]: RFC 9110 conditional requests, entity tags,
//!   byte ranges and list-valued fields, as the origin and the edges both evaluate them.
//! - [`clock`]: the injectable wall clock.
//! - [`hash`]: stable hashing (FNV-1a, SplitMix64, rendezvous weights).
//! - [`access_log`]: Combined Log Format access lines.
//! - [`metrics`]: Prometheus text exposition of a per-instance registry.
//! - [`tools`]: finding the external programs interop tests drive.
//! - [`units`]: sizes such as `512MiB` in flags and config files.
//!
//! Nothing here knows about DASH, caching policy or DNS.

pub mod access_log;
pub mod clock;
pub mod etag;
pub mod h3;
pub mod hash;
pub mod http;
pub mod list;
pub mod metrics;
pub mod precondition;
pub mod range;
pub mod tls;
pub mod tools;
pub mod units;

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
