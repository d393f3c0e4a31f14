//! The edge: a caching reverse proxy in front of the origin (RFC 9111 freshness, revalidation,
//! request coalescing, stale serving, byte-bounded memory, parent tier, purge).

pub mod cache_status;
pub mod config;
pub mod key;
pub mod policy;

pub use config::Config;
