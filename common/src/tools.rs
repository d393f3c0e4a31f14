//! Finding the external programs (ffmpeg, xmllint, dig, ...) that interop tests drive.
//!
//! Tests never skip silently: a missing tool is a loud failure naming the Debian package to
//! install (`scripts/test.sh` installs them all).

use std::path::PathBuf;

/// Where a tool comes from, for the error message.
fn package_of(tool: &str) -> String {
    let debian = match tool {
        "moto_server" => return "PyPI package `moto[server]`".to_string(),
        "ffmpeg" | "ffprobe" => "ffmpeg",
        "xmllint" => "libxml2-utils",
        "dig" => "bind9-dnsutils",
        "kdig" => "knot-dnsutils",
        "knotd" | "knotc" => "knot",
        "dnsperf" => "dnsperf",
        "nginx" => "nginx-light",
        "varnishd" => "varnish",
        "wrk" => "wrk",
        "chromium" => "chromium",
        "prometheus" => "prometheus",
        "node" | "npm" => "nodejs",
        "gst-launch-1.0" | "gst-inspect-1.0" => "gstreamer1.0-tools",
        "openssl" => "openssl",
        other => other,
    };
    format!("Debian package `{debian}`")
}

/// Looks `tool` up on PATH and returns its path.
pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// Like [`find`], but panics with a message naming the tool and its Debian package. Meant for
/// tests, where a missing tool must fail the run rather than skip the check.
pub fn require(tool: &str) -> PathBuf {
    match find(tool) {
        Some(p) => p,
        None => panic!(
            "required tool `{tool}` is not on PATH: install the {} \
             (scripts/test.sh installs every tool the tests need)",
            package_of(tool)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(find("sh").is_some());
        assert!(find("surely-not-a-real-tool-xyz").is_none());
    }

    #[test]
    #[should_panic(expected = "surely-not-a-real-tool-xyz")]
    fn require_panics_naming_the_tool() {
        require("surely-not-a-real-tool-xyz");
    }
}
