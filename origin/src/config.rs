//! The origin's configuration: where content lives (local root or an S3-compatible bucket), the
//! address to listen on, the live channels, Cache-Control per kind of object and server limits.
//! Read from TOML (every field optional) or built in code from [`Config::default`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Everything `origin::spawn` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Content root of the local filesystem backend: `ROOT/vod/demo/manifest.mpd` is served as
    /// `/vod/demo/manifest.mpd`.
    pub root: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where objects are read from.
    pub storage: StorageConfig,
    /// Live channels: name -> the VOD title looped on the wall clock (`/live/<name>/manifest.mpd`).
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Live timing defaults shared by every channel (a channel may override them).
    pub live: LiveConfig,
    /// Cache-Control header values by kind of object.
    pub cache_control: CacheControlConfig,
    /// Server limits.
    pub limits: LimitsConfig,
    /// Write one access log line per request (Combined Log Format, see `common::access_log`);
    /// off by default.
    pub access_log: bool,
    /// Local backend: keep files of at most 64 KiB (MPDs, init segments) in memory and trust
    /// them for this long without touching the disk, like nginx's `open_file_cache_valid`.
    /// 0 (the default) opens the file on every request, so changes are seen at once.
    pub small_file_cache_ms: u64,
    /// Local backend: memory bound of that cache.
    pub small_file_cache_bytes: u64,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            storage: StorageConfig::Local,
            channels: BTreeMap::new(),
            live: LiveConfig::default(),
            cache_control: CacheControlConfig::default(),
            limits: LimitsConfig::default(),
            access_log: false,
            small_file_cache_ms: 0,
            small_file_cache_bytes: 32 << 20,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Config {
    /// Reads a TOML file; errors name the file (and the TOML parser names line and column).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::from_toml(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot: channel names, titles and durations.
    pub fn validate(&self) -> Result<()> {
        for (name, ch) in &self.channels {
            if !is_safe_name(name) {
                bail!("channel name `{name}` must be letters, digits, '-', '_' or '.' (no leading '.')");
            }
            if ch.title().split('/').any(|s| !is_safe_name(s)) {
                bail!(
                    "channel `{name}`: title `{}` must be a relative path of plain names",
                    ch.title()
                );
            }
            let live = self.live_for(name);
            if !(live.time_shift_buffer_depth_secs > 0.0
                && live.time_shift_buffer_depth_secs.is_finite())
            {
                bail!("channel `{name}`: time_shift_buffer_depth_secs must be positive");
            }
            if !(live.suggested_presentation_delay_secs >= 0.0
                && live.suggested_presentation_delay_secs < live.time_shift_buffer_depth_secs)
            {
                bail!(
                    "channel `{name}`: suggested_presentation_delay_secs must be at least 0 and \
                     below time_shift_buffer_depth_secs, or clients have no buffer to play from"
                );
            }
            if !(live.minimum_update_period_secs >= 0.0
                && live.minimum_update_period_secs.is_finite())
            {
                bail!("channel `{name}`: minimum_update_period_secs must be at least 0");
            }
            if let Some(c) = ch.chunk_secs() {
                if !(0.05..=10.0).contains(&c) {
                    bail!("channel `{name}`: chunk_secs must be between 0.05 and 10");
                }
            }
            let target = ch.target_latency_secs();
            if !(0.1..=60.0).contains(&target) {
                bail!("channel `{name}`: target_latency_secs must be between 0.1 and 60");
            }
            if chrono::DateTime::parse_from_rfc3339(&live.availability_start_time).is_err() {
                bail!(
                    "channel `{name}`: availability_start_time `{}` is not an RFC 3339 date-time",
                    live.availability_start_time
                );
            }
        }
        if self.limits.max_connections == 0 {
            bail!("limits.max_connections must be at least 1");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls_cert and tls_key go together: give both to serve HTTPS, or neither");
        }
        Ok(())
    }

    /// Live settings of channel `name`: the shared defaults with the channel's overrides applied.
    pub fn live_for(&self, name: &str) -> LiveConfig {
        let mut live = self.live.clone();
        if let Some(ChannelConfig::Full(ch)) = self.channels.get(name) {
            if let Some(v) = ch.time_shift_buffer_depth_secs {
                live.time_shift_buffer_depth_secs = v;
            }
            if let Some(v) = ch.suggested_presentation_delay_secs {
                live.suggested_presentation_delay_secs = v;
            }
            if let Some(v) = ch.minimum_update_period_secs {
                live.minimum_update_period_secs = v;
            }
            if let Some(v) = &ch.availability_start_time {
                live.availability_start_time = v.clone();
            }
        }
        live
    }

    /// The rustls server configuration when `tls_cert` and `tls_key` are set.
    pub fn tls_config(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(common::tls::server_config_from_pem(cert, key)?)),
            _ => Ok(None),
        }
    }

    /// The server limits in the form `common::http::serve` takes.
    pub fn server_limits(&self) -> common::http::ServerLimits {
        common::http::ServerLimits {
            max_connections: self.limits.max_connections,
            header_read_timeout: Duration::from_millis(self.limits.header_read_timeout_ms),
            max_header_bytes: self.limits.max_header_bytes,
            max_headers: self.limits.max_headers,
            shutdown_grace: Duration::from_millis(self.limits.shutdown_grace_ms),
        }
    }
}

/// A name that is safe as one path segment.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A channel: either just the VOD title (`news = "demo"`) or a table with overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChannelConfig {
    /// The VOD title under `vod/` that the channel loops.
    Title(String),
    /// A title plus live timing overrides.
    Full(ChannelTable),
}

impl ChannelConfig {
    /// The looped VOD title (`demo` means `vod/demo/manifest.mpd`).
    pub fn title(&self) -> &str {
        match self {
            ChannelConfig::Title(t) => t,
            ChannelConfig::Full(t) => &t.title,
        }
    }
}

/// The table form of a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelTable {
    pub title: String,
    pub time_shift_buffer_depth_secs: Option<f64>,
    pub suggested_presentation_delay_secs: Option<f64>,
    pub minimum_update_period_secs: Option<f64>,
    pub availability_start_time: Option<String>,
    /// Low latency: each segment is sent as CMAF chunks of this many seconds while it is being
    /// "produced" (chunked transfer), with LL-DASH signalling and LL-HLS parts.
    pub chunk_secs: Option<f64>,
    /// Low latency: the ServiceDescription's target latency (default 1.5 s).
    pub target_latency_secs: Option<f64>,
}

impl ChannelConfig {
    /// The chunk duration of a low-latency channel.
    pub fn chunk_secs(&self) -> Option<f64> {
        match self {
            ChannelConfig::Full(t) => t.chunk_secs,
            ChannelConfig::Title(_) => None,
        }
    }

    /// The target latency of a low-latency channel.
    pub fn target_latency_secs(&self) -> f64 {
        match self {
            ChannelConfig::Full(ChannelTable {
                target_latency_secs: Some(t),
                ..
            }) => *t,
            _ => DEFAULT_TARGET_LATENCY_SECS,
        }
    }
}

/// ServiceDescription latency target of a low-latency channel unless configured.
pub const DEFAULT_TARGET_LATENCY_SECS: f64 = 1.5;

/// Live timing of a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// DVR window: how far back segments stay available (MPD@timeShiftBufferDepth).
    pub time_shift_buffer_depth_secs: f64,
    /// MPD@suggestedPresentationDelay: how far behind the live edge players should play.
    pub suggested_presentation_delay_secs: f64,
    /// MPD@minimumUpdatePeriod: how often players re-fetch the MPD.
    pub minimum_update_period_secs: f64,
    /// MPD@availabilityStartTime (RFC 3339). Fixed for the channel's life, so it is configuration,
    /// not the process start: restarts and several origins give the same timeline. Not the Unix
    /// epoch: ffmpeg's DASH demuxer takes an availabilityStartTime of 0 as absent.
    pub availability_start_time: String,
    /// Upper bound of the live MPD's max-age; the origin also caps it at half a segment duration.
    pub mpd_max_age_secs: Option<u64>,
    /// URL advertised in the live MPD's UTCTiming (http-iso). Default: `http://<Host>/time` of
    /// the request, i.e. this origin (or the edge in front of it) as the client addressed it.
    pub utc_timing_url: Option<String>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            time_shift_buffer_depth_secs: 30.0,
            suggested_presentation_delay_secs: 6.0,
            minimum_update_period_secs: 2.0,
            availability_start_time: "2025-01-01T00:00:00Z".to_string(),
            mpd_max_age_secs: None,
            utc_timing_url: None,
        }
    }
}

/// Cache-Control values by kind of object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheControlConfig {
    /// Static (VOD) MPDs.
    pub mpd: String,
    /// Init segments.
    pub init: String,
    /// Media segments (VOD and live: a live segment number is never reused).
    pub segment: String,
    /// Any other file under the root.
    pub other: String,
    /// 404s for paths that do not exist.
    pub not_found: String,
    /// 404s for live segments that are not available yet (or any more).
    pub live_unavailable: String,
}

impl Default for CacheControlConfig {
    fn default() -> Self {
        CacheControlConfig {
            mpd: "public, max-age=60".into(),
            init: "public, max-age=31536000, immutable".into(),
            segment: "public, max-age=31536000, immutable".into(),
            other: "public, max-age=300".into(),
            not_found: "public, max-age=10".into(),
            live_unavailable: "public, max-age=1".into(),
        }
    }
}

/// Server limits (see `common::http::ServerLimits`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_connections: usize,
    pub header_read_timeout_ms: u64,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub shutdown_grace_ms: u64,
    /// Most ranges answered as multipart/byteranges; a request with more gets the whole 200.
    pub max_ranges: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = common::http::ServerLimits::default();
        LimitsConfig {
            max_connections: d.max_connections,
            header_read_timeout_ms: d.header_read_timeout.as_millis() as u64,
            max_header_bytes: d.max_header_bytes,
            max_headers: d.max_headers,
            shutdown_grace_ms: d.shutdown_grace.as_millis() as u64,
            max_ranges: 16,
        }
    }
}

/// The storage backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// Files under [`Config::root`].
    #[default]
    Local,
    /// An S3-compatible object store.
    S3(S3Config),
}

/// An S3-compatible bucket. Credentials fall back to the usual `AWS_*` environment variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Endpoint URL for non-AWS stores (MinIO, Ceph, moto): `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Key prefix inside the bucket (`content/` serves `content/vod/...` as `/vod/...`).
    pub prefix: String,
    /// Allow `http://` endpoints.
    pub allow_http: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config() {
        let c = Config::from_toml(
            r#"
            root = "/srv/content"
            listen = "127.0.0.1:9000"
            access_log = true
            [channels]
            news = "demo"
            sport = { title = "match", time_shift_buffer_depth_secs = 60.0 }
            [cache_control]
            mpd = "public, max-age=5"
            [limits]
            max_connections = 100
            [storage]
            kind = "s3"
            bucket = "media"
            endpoint = "http://127.0.0.1:5000"
            allow_http = true
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.channels["news"].title(), "demo");
        assert_eq!(c.live_for("sport").time_shift_buffer_depth_secs, 60.0);
        assert_eq!(c.live_for("news").time_shift_buffer_depth_secs, 30.0);
        assert_eq!(c.cache_control.mpd, "public, max-age=5");
        assert_eq!(
            c.cache_control.segment,
            "public, max-age=31536000, immutable"
        );
        assert_eq!(c.limits.max_connections, 100);
        assert!(c.access_log && !Config::default().access_log);
        match c.storage {
            StorageConfig::S3(s3) => assert_eq!(s3.bucket, "media"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Config::from_toml("listen = \"nope\"").is_err());
        assert!(Config::from_toml("bogus = 1").is_err());
        assert!(Config::from_toml("[channels]\n\"../x\" = \"demo\"").is_err());
        assert!(Config::from_toml("[channels]\nx = \"../demo\"").is_err());
        assert!(Config::from_toml(
            "[live]\nsuggested_presentation_delay_secs = 40.0\n[channels]\nx = \"demo\""
        )
        .is_err());
    }

    #[test]
    fn default_round_trips_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        let back = Config::from_toml(&text).unwrap();
        assert_eq!(back.listen, Config::default().listen);
    }
}
