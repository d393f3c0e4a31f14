//! The packager: renders a synthetic test pattern (or reads a user's video through ffmpeg),
//! encodes an H.264 bitrate ladder with OpenH264, cuts it into fMP4 segments with an IDR at
//! every segment start, and writes an `isoff-live` DASH manifest over them.

pub mod encode;
pub mod fmp4;
pub mod h264;
pub mod ladder;
pub mod pattern;
