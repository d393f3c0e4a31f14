//! What kind of object a path names (MPD, init segment, media segment, ...), which decides its
//! Content-Type, its Cache-Control and the `kind` label of the metrics.

/// The kind of object a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A static (VOD) MPD.
    Mpd,
    /// A dynamic MPD of a live channel.
    LiveMpd,
    /// An initialization segment.
    Init,
    /// A media segment.
    Segment,
    /// Any other file.
    Other,
    /// `/time`, `/health`, `/metrics`.
    Service,
    /// A request that names no object (bad path, unknown method).
    Invalid,
}

impl Kind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Mpd => "mpd",
            Kind::LiveMpd => "live_mpd",
            Kind::Init => "init",
            Kind::Segment => "segment",
            Kind::Other => "other",
            Kind::Service => "service",
            Kind::Invalid => "invalid",
        }
    }

    /// Every kind, for pre-registering metric label sets.
    pub const ALL: [Kind; 7] = [
        Kind::Mpd,
        Kind::LiveMpd,
        Kind::Init,
        Kind::Segment,
        Kind::Other,
        Kind::Service,
        Kind::Invalid,
    ];
}

/// Classifies a storage key (`vod/demo/720p/init.mp4`) by its file name.
pub fn classify(key: &str) -> Kind {
    let name = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
    let ext = extension(&name);
    match ext {
        "mpd" | "m3u8" => Kind::Mpd,
        "mp4" | "m4s" | "m4v" | "m4a" | "cmfv" | "cmfa" | "cmfi" | "webm" => {
            if name.contains("init") || ext == "cmfi" {
                Kind::Init
            } else {
                Kind::Segment
            }
        }
        _ => Kind::Other,
    }
}

fn extension(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    }
}

/// Whether a key's folder is an audio rung's: the packager names them `audio` or `audio-...`
/// (`vod/demo/audio/seg-00001.m4s`), so their segments are `audio/mp4`.
fn is_audio_folder(key: &str) -> bool {
    let mut parts = key.rsplit('/');
    parts.next();
    parts.next().is_some_and(|dir| {
        let dir = dir.to_ascii_lowercase();
        dir == "audio" || dir.starts_with("audio-") || dir.starts_with("audio_")
    })
}

/// The Content-Type of a storage key.
pub fn content_type(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
    match extension(&name) {
        "mpd" => "application/dash+xml",
        "mp4" | "m4s" | "cmfi" if is_audio_folder(key) => "audio/mp4",
        "mp4" | "m4s" | "m4v" | "cmfv" | "cmfi" => "video/mp4",
        "m4a" | "cmfa" => "audio/mp4",
        "webm" => "video/webm",
        "m3u8" => "application/vnd.apple.mpegurl",
        "vtt" => "text/vtt",
        "ttml" => "application/ttml+xml",
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "css" => "text/css",
        "txt" => "text/plain; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_types() {
        assert_eq!(classify("vod/demo/manifest.mpd"), Kind::Mpd);
        assert_eq!(classify("vod/demo/720p/init.mp4"), Kind::Init);
        assert_eq!(classify("vod/demo/720p/seg-00001.m4s"), Kind::Segment);
        assert_eq!(classify("vod/demo/audio_init.m4a"), Kind::Init);
        assert_eq!(classify("vod/demo/README"), Kind::Other);
        assert_eq!(classify(".mpd"), Kind::Other);
        assert_eq!(content_type("a/b.MPD"), "application/dash+xml");
        assert_eq!(content_type("a/1.m4s"), "video/mp4");
        assert_eq!(content_type("a/init.mp4"), "video/mp4");
        assert_eq!(content_type("a/x"), "application/octet-stream");
        assert_eq!(classify("vod/demo/master.m3u8"), Kind::Mpd);
        assert_eq!(
            content_type("vod/demo/720p.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type("vod/demo/audio/seg-00001.m4s"), "audio/mp4");
        assert_eq!(content_type("vod/demo/audio/init.mp4"), "audio/mp4");
        assert_eq!(content_type("vod/demo/audio-128k/init.mp4"), "audio/mp4");
        assert_eq!(content_type("vod/demo/audiobook/1.m4s"), "video/mp4");
    }
}
