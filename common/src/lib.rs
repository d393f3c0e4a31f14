//! Service plumbing shared by the stack's servers and tests, written once: an HTTP server loop
//! with limits and graceful shutdown (optionally over TLS), TLS material (rustls configurations,
//! rcgen self-signed certificates), a tiny HTTP GET client, entity tags, byte ranges and
//! conditional-request preconditions as the origin and the edges both evaluate them, Prometheus
//! text exposition, a finder for the external tools that interop tests need, and parsing of sizes
//! such as `512MiB`.

pub mod access_log;
pub mod clock;
pub mod etag;
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
