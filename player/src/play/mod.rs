//! Real playback, by job: DNS (hickory-resolver through a given server, following the CNAME
//! chain, or the system resolver), HTTP with a pooled keep-alive hyper client bound to an optional
//! source address (TLS only for https:// URLs), per-segment failover (retry once, then the next
//! address, then re-resolve while the failover window lasts), optional shaping of downloads to a
//! trace, live MPDs (refresh, live-edge start, UTCTiming), HLS, all driven by the same
//! [`crate::session::run`] loop as the simulator, against an injected wall clock.
//!
//! - `config`: [`PlayConfig`], how to play (`cdn play`'s flags).
//! - `clock`: [`WallClock`], session time and wall time, the only clock real playback reads.
//! - `dns`: [`Dns`], name resolution with the CNAME chain ([`Resolved`]).
//! - `shaping`: paces received bytes along a trace (`--shape`).
//! - `failover`: the failover order and backoff of one request, pure functions of the time.
//! - `net`: the HTTP client and one request with timeouts, shaping and failover.
//! - `hls`: an HLS multivariant or media playlist (fMP4/CMAF, on demand or live, with its
//!   audio) read as a `Title`.
//! - `live`: the live schedule (join point, the audio's beside the video, availability,
//!   segment count, refresh), pure.
//! - `transport`: the session's HTTP `Transport`: init segments, media URLs, the audio beside
//!   the video, live MPD and HLS playlist refresh; low-latency live: each segment requested at
//!   its availability start, video and audio streamed side by side (`Net::get_streams`) and
//!   read chunk by chunk (`crate::cmaf`).
//! - `run`: [`play`], the orchestration, and its [`PlayReport`].

mod clock;
mod config;
mod dns;
mod failover;
mod hls;
mod live;
mod net;
mod run;
mod shaping;
mod transport;

pub use clock::WallClock;
pub use config::PlayConfig;
pub use dns::{Dns, Resolved};
pub use run::{play, play_with_clock, PlayReport};
