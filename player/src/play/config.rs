//! How to play: the URL, name resolution, source address, ABR, shaping, timeouts, TLS trust and
//! the session knobs (`cdn play`'s flags).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::Url;

use crate::session::SessionConfig;
use crate::trace::Trace;

/// How to play.
#[derive(Debug, Clone)]
pub struct PlayConfig {
    pub url: Url,
    /// DNS server to ask (the system resolver when absent).
    pub dns: Option<SocketAddr>,
    /// Source address for DNS and HTTP.
    pub bind: Option<IpAddr>,
    pub abr: String,
    /// Throttle downloads to this trace.
    pub shape: Option<Trace>,
    /// Stop requesting segments after this many seconds (live streams default to 30 s).
    pub duration_s: Option<f64>,
    /// Per-request timeout for headers and between body chunks.
    pub timeout: Duration,
    /// Talk HTTP/2 with prior knowledge (cleartext h2c).
    pub http2: bool,
    /// Talk HTTP/3 over QUIC (https:// URLs only).
    pub http3: bool,
    /// Skip DNS and use these addresses for the URL's host, in order (like curl's --resolve).
    pub resolve: Option<Vec<IpAddr>>,
    /// PEM files of roots trusted for https:// URLs (not read for http:// URLs).
    pub ca: Vec<std::path::PathBuf>,
    /// Also trust the system's root certificates for https:// URLs (not loaded for http://).
    pub system_roots: bool,
    /// Language of the audio track to play (BCP 47; the first audio AdaptationSet when absent).
    pub lang: Option<String>,
    /// Play a live MPD in low-latency mode even when its SegmentTemplate does not signal it
    /// (`availabilityTimeComplete="false"` with an availabilityTimeOffset turns it on anyway).
    pub low_latency: bool,
    /// The live latency to hold in low-latency mode, seconds (default: the MPD's
    /// ServiceDescription, else [`crate::lowlat::DEFAULT_TARGET_LATENCY_S`]).
    pub target_latency_s: Option<f64>,
    pub session: SessionConfig,
}

impl PlayConfig {
    pub fn new(url: Url) -> Self {
        PlayConfig {
            url,
            dns: None,
            bind: None,
            // `default`: the default rule, or the low-latency one in low-latency mode.
            abr: "default".to_string(),
            shape: None,
            duration_s: None,
            timeout: Duration::from_secs(5),
            http2: false,
            http3: false,
            resolve: None,
            ca: Vec::new(),
            system_roots: true,
            lang: None,
            low_latency: false,
            target_latency_s: None,
            session: SessionConfig {
                buffer: crate::buffer::BufferConfig {
                    max_s: 30.0,
                    ..Default::default()
                },
                abandonment: true,
                play_out: true,
                max_session_s: None,
                low_latency: None,
            },
        }
    }
}
