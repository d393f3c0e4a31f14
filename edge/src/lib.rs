//! The edge: a caching reverse proxy in front of the origin (RFC 9111 freshness, revalidation,
//! request coalescing, stale serving, byte-bounded memory, parent tier, purge).
//!
//! Parts:
//! - `policy`: the pure caching rules: directives (Cache-Control; CDN-Cache-Control as a
//!   Structured Fields dictionary), the verdict on a fetched response (pass / share / store with
//!   this freshness), freshness and age, verdicts on stored responses, 304 refresh, client
//!   preconditions and Range, Vary.
//! - `key`: the cache key (normalised host, path and query) and PURGE prefixes.
//! - `store`: stored responses in moka, weighed by the bytes they hold, LRU, expiry, purge.
//! - `disk`: the disk tier (`cache_dir`): one checksummed file per response, published by
//!   rename, an in-memory index rebuilt in the background at start, LRU within `disk_size`.
//! - `flight`: request coalescing: one upstream fetch per key, streamed to every member.
//! - `upstream`: the pooled client to parents (rendezvous-ranked) and the origin, proxy headers,
//!   timeouts, and the cap on exchanges running at once (`Gate`: slots, a bounded queue, 503).
//! - `limits`: per-client token buckets, one for requests and one for misses (requests that
//!   start an upstream exchange), answered 429 with `Retry-After`.
//! - `proxy`: the request path in phases (`key`, `lookup`, `hit`, `stale`, `miss`, `fetch`,
//!   `store`/`refresh`, `respond`, `pass`), judged at one `now` per request from an injectable
//!   [`Clock`].
//! - `cache_status`: each request's outcome, as its RFC 9211 Cache-Status member and metric label.
//! - `server`: binding and serving, `/health`, `/metrics`, `PURGE`; [`spawn`] and
//!   [`spawn_with_clock`].
//! - `metrics`: the per-instance Prometheus registry; `config` and `cli`: TOML and flags.

pub mod cache_status;
pub mod cli;
pub mod config;
pub mod disk;
pub mod flight;
pub mod key;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod signed;
pub mod store;
pub mod upstream;

pub use common::clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use server::{spawn, spawn_with_clock, Edge};
