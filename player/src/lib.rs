//! The player: a headless DASH client (bandwidth estimation, ABR, playout buffer, QoE report) whose
//! decision code runs the same against real HTTP and against network traces in virtual time.

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
