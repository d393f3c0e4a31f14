//! The player: a headless DASH client (bandwidth estimation, ABR, playout buffer, QoE report) whose
//! decision code runs the same against real HTTP and against network traces in virtual time.
//!
//! Map:
//! - `estimator`: throughput estimators over download samples (EWMA, sliding harmonic mean).
//! - `buffer`: the playout-buffer model (startup, stalls, max level); time is passed in.
//! - `abr`: the `Abr` trait and the algorithms (throughput, BBA, BOLA, MPC, dynamic, hybrid).
//! - `video`: the ladder and segment sizes the ABR sees (Sabre movie JSON, Pensieve folder).
//! - `manifest`: an MPD turned into the playable ladder and its segment URLs (`Title`).
//! - `dash_folder`: a packaged DASH folder on disk read as a `Video` with real segment sizes.
//! - `trace`: network traces (Sabre, Pensieve, Mahimahi) and the `Link` that moves bytes on them.
//! - `session`: the one playback loop, generic over its `Transport` and `Clock`.
//! - `sim`: the virtual clock and trace transport; many simulated sessions in parallel.
//! - `play`: real playback over HTTP (DNS, failover, shaping, live MPDs; its own map).
//! - `report`: per-segment rows, the session summary, QoE_lin and aggregates.
//! - `plot`: the SVG plot of a session.
//! - `inspect`: `cdn mpd`, what an MPD holds.
//! - `cli`: `cdn simulate` and `cdn play`, and loading a video from a path (`load_video`).

pub mod abr;
pub mod buffer;
pub mod cli;
pub mod dash_folder;
pub mod estimator;
pub mod inspect;
pub mod manifest;
pub mod play;
pub mod plot;
pub mod report;
pub mod session;
pub mod sim;
pub mod trace;
pub mod video;
