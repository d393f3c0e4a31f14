//! The origin: serves packaged titles (VOD and live) over HTTP with validators, conditional GET,
//! Range and cache headers. It is the source of truth the edges revalidate against.
//!
//! Start one with [`spawn`] (binds and returns at once), read its address with
//! [`Origin::local_addr`] and stop it with [`Origin::shutdown`]. Live channels run on a
//! [`Clock`] that tests can replace ([`spawn_with_clock`]).
//!
//! Parts: [`server`] (the request path: method, route, respond, metrics, access log),
//! [`answer`] (what handlers return, and serving an object with validators, preconditions and
//! ranges), [`live`] (live channels looping a VOD title on the wall clock), [`retime`]
//! (re-timing fMP4 segments for the live loop), [`storage`] (local disk and S3 backends),
//! [`path`] (request path to storage key), [`kind`] (object kinds: Content-Type, Cache-Control,
//! metric label), [`body`] (streaming and multipart bodies), [`config`], [`metrics`], [`cli`]
//! (`cdn origin`).

pub mod answer;
pub mod body;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod kind;
pub mod live;
pub mod metrics;
pub mod path;
pub use common::range;
pub mod retime;
pub mod server;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};

pub use common::clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use storage::{Object, ObjectMeta, Storage};

/// A running origin.
pub struct Origin {
    server: common::http::ServerHandle,
    state: Arc<server::State>,
    tls: bool,
}

impl Origin {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Its base URL, `http://ADDR` (`https://ADDR` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// Its metrics registry (the same figures `/metrics` serves).
    pub fn registry(&self) -> &prometheus::Registry {
        &self.state.metrics.registry
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), then returns.
    pub async fn shutdown(self) {
        self.server.shutdown().await
    }

    /// Stops at once, dropping every connection (models a crash).
    pub fn abort(self) {
        self.server.abort()
    }
}

/// Binds `config.listen` and serves, on the system clock. Must be called inside a tokio runtime.
pub async fn spawn(config: Config) -> Result<Origin> {
    spawn_with_clock(config, Arc::new(SystemClock)).await
}

/// Like [`spawn`], with the clock live channels (and `/time`, and `Date`) run on.
pub async fn spawn_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Origin> {
    let storage = storage::from_config(&config)?;
    spawn_with_storage(config, clock, storage).await
}

/// Like [`spawn_with_clock`], with a storage backend built by the caller.
pub async fn spawn_with_storage(
    config: Config,
    clock: Arc<dyn Clock>,
    storage: Arc<dyn Storage>,
) -> Result<Origin> {
    config.validate()?;
    let tls = config.tls_config()?;
    let metrics = metrics::Metrics::new().context("registering origin metrics")?;
    let listener = common::http::bind(config.listen).await?;
    let limits = config.server_limits();
    let hooks = common::http::ConnHooks {
        open_connections: Some(metrics.open_connections.clone()),
        requests_by_protocol: Some(common::http::requests_by_protocol(
            "origin",
            &metrics.registry,
        )?),
    };
    let live = live::Live::new(&config)?;
    let state = Arc::new(server::State {
        config,
        storage,
        metrics,
        clock,
        live,
    });
    let handler_state = state.clone();
    let is_tls = tls.is_some();
    let server = common::http::serve_tls(listener, limits, hooks, tls, move |req, info| {
        server::handle(handler_state.clone(), req, info)
    })?;
    tracing::info!(addr = %server.local_addr(), backend = state.storage.name(), tls = is_tls, "origin listening");
    Ok(Origin {
        server,
        state,
        tls: is_tls,
    })
}
