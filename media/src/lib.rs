//! DASH content: the MPD data model (parse and write) and the packager that turns a test pattern
//! (or a user's video) into a multi-bitrate H.264 ladder of fMP4 segments with a manifest.
pub mod mpd;
pub mod package;
