//! The DNS router: an authoritative, geo-aware DNS server that answers the content name with a
//! CNAME to the CDN name, and that name with the nearest healthy edge for the client.
//!
//! Modules: `config` (TOML), `zone` (the compiled snapshot), `wire` (query parsing and response
//! layout), `answer` (the rules), `geo` (coverage zone, MaxMind), `steering` (the pure policy),
//! `health` (active checks), `metrics`, `server` (listeners, reload), `udp` (the batched UDP
//! worker loop), `cli` (`cdn dns`).

pub mod answer;
pub mod cli;
pub mod config;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod server;
pub mod steering;
pub mod udp;
pub mod wire;
pub mod zone;

pub use config::Config;
pub use server::{spawn, DnsRouter};
