//! The player: a headless DASH (and fMP4 HLS) client (bandwidth estimation, ABR, playout buffer,
//! QoE report) whose decision code runs the same against real HTTP and against network traces in
//! virtual time.
//!
//! Map:
//! - `estimator`: throughput estimators over download samples (EWMA, sliding harmonic mean)
//!   and over chunk bursts (low latency).
//! - `buffer`: the playout-buffer model (startup, stalls, max level, playback rate); time is
//!   passed in.
//! - `cmaf`: CMAF chunks read as a segment streams in (init timescales, `moof`+`mdat` pairs).
//! - `lowlat`: low-latency live: target latency, the playback-rate rule, live latency.
//! - `abr`: the `Abr` trait and the algorithms (throughput, BBA, BOLA, MPC, dynamic, hybrid).
//! - `video`: the ladder and segment sizes the ABR sees (Sabre movie JSON, Pensieve folder).
//! - `manifest`: an MPD turned into the playable ladder, its segment URLs and audio (`Title`): every
//!   Period of an on-demand MPD on one timeline; SegmentTemplate, SegmentList, SegmentBase.
//! - `dash_folder`: a packaged DASH folder on disk read as a `Video` with real segment sizes.
//! - `sidx`: the segment index of a SegmentBase Representation, read with `mp4-atom`.
//! - `trace`: network traces (Sabre, Pensieve, Mahimahi) and the `Link` that moves bytes on them.
//! - `session`: the one playback loop, generic over its `Transport` and `Clock`; an audio track
//!   beside the video when the transport offers one (one buffer of what both hold).
//! - `sim`: the virtual clock and trace transport; many simulated sessions in parallel.
//! - `play`: real playback over HTTP (DNS, failover, shaping, live MPDs, HLS; its own map).
//! - `report`: per-segment rows, the session summary, QoE_lin and aggregates.
//! - `plot`: the SVG plot of a session.
//! - `inspect`: `cdn mpd`, what an MPD holds.
//! - `cli`: `cdn simulate` and `cdn play`, and loading a video from a path (`load_video`).

pub mod abr;
pub mod buffer;
pub mod cli;
pub mod cmaf;
pub mod dash_folder;
pub mod estimator;
pub mod inspect;
pub mod lowlat;
pub mod manifest;
pub mod play;
pub mod plot;
pub mod report;
pub mod session;
pub mod sidx;
pub mod sim;
pub mod trace;
pub mod video;
