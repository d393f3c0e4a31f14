//! The router's TOML configuration: listeners, zones, content names, CDN service names, edges,
//! health checks, geo sources and the fallback. Parsing errors name the file and line; semantic
//! checks run when the configuration is compiled into a snapshot (see `zone.rs`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The default configuration for the local stack, embedded in the binary.
pub const LOCAL_TOML: &str = include_str!("../examples/local.toml");

/// Everything the router needs; every address can be overridden (tests bind port 0).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub content: Vec<ContentName>,
    #[serde(default)]
    pub services: Vec<ServiceName>,
    #[serde(default)]
    pub hosts: Vec<HostName>,
    #[serde(default)]
    pub edges: Vec<EdgeConfig>,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub geo: GeoConfig,
    #[serde(default)]
    pub fallback: FallbackConfig,
    /// Directory that relative paths (coverage-zone file, mmdb) are resolved against: the
    /// config file's directory. Not part of the TOML.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// UDP and TCP address of the DNS service.
    pub listen: SocketAddr,
    /// HTTP address of `/metrics`.
    pub metrics_listen: SocketAddr,
    /// UDP worker threads; 0 means one per core.
    pub udp_workers: usize,
    /// UDP sockets bound with SO_REUSEPORT that the workers share round-robin; 0 means one per
    /// worker. The default, 1, lets every worker take from one queue; with one socket per worker
    /// the kernel spreads clients by address hash, which leaves a worker idle when a few busy
    /// clients hash alike (measured in docs/BENCHMARKS.md).
    pub udp_sockets: usize,
    /// A TCP connection idle this long is closed (milliseconds).
    pub tcp_idle_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5353)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9153)),
            udp_workers: 0,
            udp_sockets: 1,
            tcp_idle_timeout_ms: 10_000,
        }
    }
}

/// A zone we are authoritative for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub apex: String,
    #[serde(default)]
    pub soa: SoaConfig,
    /// The zone's name servers; their addresses are served as A/AAAA records (and glue) when
    /// the name is inside one of our zones.
    pub nameservers: Vec<NameServer>,
    #[serde(default = "default_ns_ttl")]
    pub ns_ttl: u32,
}

fn default_ns_ttl() -> u32 {
    3600
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NameServer {
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SoaConfig {
    /// Primary name server; defaults to the zone's first name server.
    pub mname: Option<String>,
    /// Responsible mailbox in domain form; defaults to `hostmaster.<apex>`.
    pub rname: Option<String>,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    pub minimum: u32,
    pub ttl: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        SoaConfig {
            mname: None,
            rname: None,
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86_400,
            minimum: 60,
            ttl: 3600,
        }
    }
}

/// A content provider's name, answered with a CNAME to a CDN service name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContentName {
    pub name: String,
    pub target: String,
    #[serde(default = "default_cname_ttl")]
    pub ttl: u32,
}

fn default_cname_ttl() -> u32 {
    300
}

/// A CDN service name, answered with the chosen edges' addresses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceName {
    pub name: String,
    #[serde(default = "default_edge_ttl")]
    pub ttl: u32,
    /// How many edges to return (nearest healthy first).
    #[serde(default = "one")]
    pub answer_count: usize,
}

fn default_edge_ttl() -> u32 {
    20
}

fn one() -> usize {
    1
}

/// A plain name with fixed addresses (the origin, for example).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostName {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    #[serde(default = "default_cname_ttl")]
    pub ttl: u32,
}

/// An edge cache: where it is, how much it can take, and where to check its health.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub latitude: f64,
    pub longitude: f64,
    /// Load at or above which the edge spills clients to the next nearest, in the unit of the
    /// `load` its `/health` reports (1.0 when the load is a fraction of the edge's capacity).
    #[serde(default = "default_capacity")]
    pub capacity: f64,
    /// `http://host:port/health` or `https://...` (verified against the system roots and
    /// `[health] ca_file`); without one the edge is always considered up with load 0.
    pub health_url: Option<String>,
}

fn default_capacity() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive successes that bring a down edge up.
    pub rise: u32,
    /// Consecutive failures that take an up edge down.
    pub fall: u32,
    /// PEM file of roots trusted for `https://` health URLs, beside the system's roots (e.g. the
    /// self-signed certificate of a local stack).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 1000,
            timeout_ms: 800,
            rise: 2,
            fall: 2,
            ca_file: None,
        }
    }
}

/// A point on Earth.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

/// One location of a coverage zone, in Traffic Router's shape: IPv4 and IPv6 CIDR lists and
/// optional coordinates (without them, the location takes the coordinates of the edge whose
/// name it carries).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct CoverageLocation {
    pub network: Vec<String>,
    pub network6: Vec<String>,
    pub coordinates: Option<Coordinates>,
}

/// Where the default location is: a coverage-zone location name or coordinates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DefaultLocation {
    Named(String),
    At(Coordinates),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// Traffic Router coverage-zone JSON (`{"coverageZones": {name: {network, network6,
    /// coordinates}}}`).
    pub coverage_zone_file: Option<PathBuf>,
    /// Locations given inline, in the same shape; merged with the file's.
    pub coverage_zones: BTreeMap<String, CoverageLocation>,
    /// MaxMind City database consulted when no coverage-zone CIDR matches.
    pub mmdb: Option<PathBuf>,
    /// Where clients are placed when nothing else locates them.
    pub default_location: Option<DefaultLocation>,
    /// Edges closer to each other than this (km, as seen from the client) count as equally
    /// good; the client subnet's hash picks among them.
    pub tie_km: f64,
    /// Prefix of the client address that keys the consistent hash (IPv4, IPv6).
    pub hash_prefix_v4: u8,
    pub hash_prefix_v6: u8,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            coverage_zone_file: None,
            coverage_zones: BTreeMap::new(),
            mmdb: None,
            default_location: None,
            tie_km: 50.0,
            hash_prefix_v4: 24,
            hash_prefix_v6: 56,
        }
    }
}

/// Answer used for CDN names when every edge is down (for example the origin's address).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    pub addresses: Vec<IpAddr>,
    pub ttl: Option<u32>,
}

impl Config {
    /// Parses TOML text; `origin` names the source in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .map(|l| format!(" line {l}"))
                .unwrap_or_default();
            anyhow::anyhow!("{origin}{line}: {}", e.message())
        })
    }

    /// Reads and parses a TOML file; relative paths inside resolve against its directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg = Self::from_toml(&text, &path.display().to_string())?;
        cfg.base_dir = path.parent().map(Path::to_path_buf);
        Ok(cfg)
    }

    /// The embedded configuration for the local stack (`examples/local.toml`).
    pub fn local_default() -> Config {
        match Self::from_toml(LOCAL_TOML, "examples/local.toml") {
            Ok(c) => c,
            // The embedded file is checked by a unit test; a broken build must not go unnoticed.
            Err(e) => panic!("embedded examples/local.toml is invalid: {e:#}"),
        }
    }

    /// Resolves a configured path against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        match &self.base_dir {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::local_default();
        assert_eq!(c.server.listen, "127.0.0.1:5353".parse().unwrap());
        assert_eq!(c.server.metrics_listen, "127.0.0.1:9153".parse().unwrap());
        assert_eq!(c.edges.len(), 3);
        assert_eq!(c.content[0].ttl, 300);
        assert_eq!(c.services[0].ttl, 20);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = Config::from_toml("[[zones]]\napex = \"a.test\"\nnameservers = 3\n", "x.toml")
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("x.toml line 3"), "{msg}");
    }
}
