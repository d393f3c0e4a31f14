//! The edge: a caching reverse proxy in front of the origin (RFC 9111 freshness, revalidation,
//! request coalescing, stale serving, byte-bounded memory, parent tier, purge).
//!
//! Map: `policy` (pure caching rules) and `key` decide; `store` keeps responses in moka;
//! `flight` coalesces concurrent fetches; `upstream` talks to parents and the origin; `proxy`
//! is the request path in phases; `server` runs it with `/health`, `/metrics` and `PURGE`.

pub mod cache_status;
pub mod cli;
pub mod config;
pub mod flight;
pub mod key;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod store;
pub mod upstream;

pub use config::Config;
pub use server::{spawn, Edge};
