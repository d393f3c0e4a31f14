//! Edge configuration: TOML file and command-line flags, with defaults suited to video.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer};

use crate::policy::PolicyConfig;

/// A byte size written as a number or a string such as `"512MiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => common::units::parse_size(&t)
                .map(ByteSize)
                .map_err(|e| serde::de::Error::custom(format!("{e:#}"))),
        }
    }
}

/// Everything an edge needs to run. Durations are in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The origin (or next tier) base URL, `http://host:port[/prefix]`.
    pub upstream: String,
    /// Parent caches tried before the origin, chosen per key by rendezvous hashing.
    pub parents: Vec<String>,
    /// This edge's name in Cache-Status, Via and /health.
    pub name: String,
    /// Bytes of responses the cache may hold (bodies, headers and a per-entry overhead).
    pub cache_size: ByteSize,
    /// Largest single response stored (in either tier).
    pub max_object_size: ByteSize,
    /// Largest single response kept in memory (default: `max_object_size`); larger ones live
    /// on disk only, when there is a disk tier.
    pub memory_max_object_size: Option<ByteSize>,
    /// Directory of the disk tier; none: memory only.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the disk tier's files may occupy (with `cache_dir`).
    pub disk_size: ByteSize,
    /// Bytes buffered at once by upstream fetches shared among waiting clients.
    pub inflight_buffer: ByteSize,
    /// Bearer token PURGE requests must carry; PURGE is refused when unset.
    pub purge_token: Option<String>,
    /// Write one access log line per request (Combined Log Format plus the cache outcome, see
    /// `common::access_log`); off by default.
    pub access_log: bool,
    /// Query parameters left out of the cache key (e.g. session tokens).
    pub ignore_query_params: Vec<String>,
    pub connect_timeout_secs: f64,
    /// Time allowed until the upstream's response head arrives.
    pub first_byte_timeout_secs: f64,
    /// Time allowed between two chunks of a body (upstream and client side).
    pub idle_timeout_secs: f64,
    /// How long a request waits for another request's upstream fetch before giving up.
    pub coalesce_wait_secs: f64,
    /// With a stale copy that stale-if-error allows, how long a revalidation may keep a client
    /// waiting before that copy is served; the fetch goes on and refreshes the cache when the
    /// upstream answers. 0 waits as long as any other request.
    pub stale_if_slow_secs: f64,
    /// Connection attempts to one upstream for idempotent requests (connection failures only).
    pub connect_attempts: u32,
    pub default_stale_while_revalidate_secs: f64,
    pub default_stale_if_error_secs: f64,
    /// How long stale entries with validators are kept for conditional revalidation.
    pub keep_secs: f64,
    pub heuristic_fraction: f64,
    pub heuristic_max_secs: f64,
    /// Bytes per second this edge is sized for; `/health` reports load against it.
    pub capacity_bytes_per_sec: ByteSize,
    pub max_connections: usize,
    pub header_read_timeout_secs: f64,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM roots trusted for https:// upstreams and parents (the system roots when unset).
    pub upstream_ca: Option<PathBuf>,
    /// Path prefixes served only with a valid signed-URL token, and the keys (see `signed`).
    pub signed_urls: Option<crate::signed::SignedUrlsConfig>,
    /// Per-client limits: requests, and misses (fetches a client makes the edge start
    /// upstream); `requests_per_sec = 0` / `misses_per_sec = 0` turn them off.
    pub rate_limit: crate::limits::RateLimitConfig,
    /// Exchanges with the upstream (parents and origin) running at once; 0: no cap. A fetch
    /// shared by coalesced requests counts once.
    pub max_upstream_fetches: usize,
    /// Exchanges that may wait for one of those slots; beyond it, 503 with `Retry-After`.
    pub upstream_queue: usize,
    /// Longest wait for a slot before a 503.
    pub upstream_queue_wait_secs: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            upstream: "http://127.0.0.1:8000".to_string(),
            parents: Vec::new(),
            name: "edge".to_string(),
            cache_size: ByteSize(512 << 20),
            max_object_size: ByteSize(32 << 20),
            memory_max_object_size: None,
            cache_dir: None,
            disk_size: ByteSize(10 << 30),
            inflight_buffer: ByteSize(128 << 20),
            purge_token: None,
            access_log: false,
            ignore_query_params: Vec::new(),
            connect_timeout_secs: 2.0,
            first_byte_timeout_secs: 10.0,
            idle_timeout_secs: 10.0,
            coalesce_wait_secs: 15.0,
            stale_if_slow_secs: 2.0,
            connect_attempts: 2,
            default_stale_while_revalidate_secs: 0.0,
            default_stale_if_error_secs: 300.0,
            keep_secs: 3600.0,
            heuristic_fraction: 0.1,
            heuristic_max_secs: 86400.0,
            capacity_bytes_per_sec: ByteSize(125_000_000),
            max_connections: 10_000,
            header_read_timeout_secs: 10.0,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            tls_cert: None,
            tls_key: None,
            upstream_ca: None,
            signed_urls: None,
            rate_limit: crate::limits::RateLimitConfig::default(),
            max_upstream_fetches: 256,
            upstream_queue: 1024,
            upstream_queue_wait_secs: 5.0,
        }
    }
}

fn secs(name: &str, v: f64) -> Result<Duration> {
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        bail!("`{name}` must be a number of seconds between 0 and 1e9, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

impl Config {
    /// Reads a TOML file; unknown keys and bad values are errors naming the file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read edge config {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("invalid edge config {}", path.display()))?;
        Ok(config)
    }

    /// Checks values that serde cannot and returns the policy part.
    pub fn validate(&self) -> Result<PolicyConfig> {
        if self.cache_size.0 == 0 {
            bail!("`cache_size` must be greater than 0");
        }
        if self.max_object_size.0 == 0 || self.max_object_size.0 > u32::MAX as u64 / 2 {
            bail!("`max_object_size` must be between 1 byte and 2 GiB");
        }
        if let Some(m) = self.memory_max_object_size {
            if m.0 == 0 || m.0 > u32::MAX as u64 / 2 {
                bail!("`memory_max_object_size` must be between 1 byte and 2 GiB");
            }
        }
        if let Some(dir) = &self.cache_dir {
            if dir.as_os_str().is_empty() {
                bail!("`cache_dir` must not be empty");
            }
            if self.disk_size.0 < 1 << 20 {
                bail!("`disk_size` must be at least 1MiB with a `cache_dir`");
            }
        }
        if self.name.trim().is_empty() {
            bail!("`name` must not be empty");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("`tls_cert` and `tls_key` go together: give both to serve HTTPS, or neither");
        }
        if !(0.0..=1.0).contains(&self.heuristic_fraction) {
            bail!("`heuristic_fraction` must be between 0 and 1");
        }
        for t in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("first_byte_timeout_secs", self.first_byte_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("coalesce_wait_secs", self.coalesce_wait_secs),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
        ] {
            if secs(t.0, t.1)?.is_zero() {
                bail!("`{}` must be greater than 0", t.0);
            }
        }
        secs("stale_if_slow_secs", self.stale_if_slow_secs)?;
        secs("upstream_queue_wait_secs", self.upstream_queue_wait_secs)?;
        let limits = &self.rate_limit;
        for (name, v) in [
            ("rate_limit.requests_per_sec", limits.requests_per_sec),
            ("rate_limit.burst", limits.burst),
            ("rate_limit.misses_per_sec", limits.misses_per_sec),
            ("rate_limit.miss_burst", limits.miss_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("`{name}` must be a number of at least 0, got {v}");
            }
        }
        Ok(PolicyConfig {
            heuristic_fraction: self.heuristic_fraction,
            heuristic_max: secs("heuristic_max_secs", self.heuristic_max_secs)?,
            default_stale_while_revalidate: secs(
                "default_stale_while_revalidate_secs",
                self.default_stale_while_revalidate_secs,
            )?,
            default_stale_if_error: secs(
                "default_stale_if_error_secs",
                self.default_stale_if_error_secs,
            )?,
            keep: secs("keep_secs", self.keep_secs)?,
        })
    }

    /// Largest body the memory tier keeps.
    pub fn memory_object_limit(&self) -> u64 {
        self.memory_max_object_size
            .map_or(self.max_object_size.0, |m| m.0)
            .min(self.max_object_size.0)
    }

    pub(crate) fn duration(v: f64) -> Duration {
        Duration::from_secs_f64(if v.is_finite() && v > 0.0 {
            v.min(1e9)
        } else {
            0.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_sizes() {
        let c: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            upstream = "http://127.0.0.1:8000"
            parents = ["http://127.0.0.1:9100", "http://127.0.0.1:9101"]
            name = "edge-eu"
            cache_size = "64MiB"
            max_object_size = 1048576
            purge_token = "s3cret"
            default_stale_if_error_secs = 30
            "#,
        )
        .unwrap();
        assert_eq!(c.cache_size, ByteSize(64 << 20));
        assert_eq!(c.max_object_size, ByteSize(1 << 20));
        assert_eq!(c.parents.len(), 2);
        let p = c.validate().unwrap();
        assert_eq!(p.default_stale_if_error, Duration::from_secs(30));
        assert!(c.cache_dir.is_none(), "no disk tier unless asked for");
        let c: Config = toml::from_str(
            r#"
            cache_dir = "/var/cache/edge"
            disk_size = "20GiB"
            memory_max_object_size = "4MiB"
            "#,
        )
        .unwrap();
        assert_eq!(c.disk_size, ByteSize(20 << 30));
        assert_eq!(c.memory_object_limit(), 4 << 20);
        c.validate().unwrap();
        let tiny = Config {
            disk_size: ByteSize(1000),
            ..c
        };
        assert!(tiny
            .validate()
            .unwrap_err()
            .to_string()
            .contains("disk_size"));
    }

    #[test]
    fn limits_parse_from_toml_with_defaults_far_above_a_player() {
        let d = Config::default();
        assert_eq!(d.rate_limit.misses_per_sec, 10.0);
        assert_eq!(d.rate_limit.miss_burst, 60.0);
        assert_eq!(d.max_upstream_fetches, 256);
        assert_eq!(d.upstream_queue, 1024);
        let c: Config = toml::from_str(
            r#"
            max_upstream_fetches = 64
            upstream_queue = 16
            upstream_queue_wait_secs = 1.5

            [rate_limit]
            requests_per_sec = 50
            misses_per_sec = 5
            miss_burst = 20
            exempt = []
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.rate_limit.requests_per_sec, 50.0);
        assert_eq!(c.rate_limit.burst, 300.0, "unset keys keep their default");
        assert_eq!(c.rate_limit.misses_per_sec, 5.0);
        assert_eq!(c.rate_limit.miss_burst, 20.0);
        assert!(c.rate_limit.exempt.is_empty());
        assert_eq!(
            (c.max_upstream_fetches, c.upstream_queue),
            (64, 16),
            "upstream cap"
        );
        assert_eq!(c.upstream_queue_wait_secs, 1.5);
        assert!(toml::from_str::<Config>("[rate_limit]\nmiss_rate = 1").is_err());
        let mut bad = Config::default();
        bad.rate_limit.misses_per_sec = -1.0;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("misses_per_sec"));
        let bad = Config {
            upstream_queue_wait_secs: f64::NAN,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(toml::from_str::<Config>("cache_size = \"12 parsecs\"").is_err());
        assert!(toml::from_str::<Config>("cache_sise = 1").is_err());
        let c = Config {
            connect_timeout_secs: -1.0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            cache_size: ByteSize(0),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
