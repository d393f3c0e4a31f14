//! Turning a request path into a storage key that cannot leave the content root.
//!
//! Every segment is percent-decoded on its own, and rejected (400) when it is empty, `.` or `..`,
//! or decodes to a `/`, a `\`, a NUL or another control character, or is not UTF-8. So `..`,
//! `%2e%2e`, `%2F`, `//etc/passwd` and `a/%00` never reach storage. Names starting with a dot
//! (hidden files) are refused as not found. Symbolic links that resolve outside the root are the
//! local backend's check (it resolves the real path of the opened file).

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Malformed or dangerous: answered with 400.
    #[error("bad request path: {0}")]
    Bad(&'static str),
    /// Well-formed but hidden: answered with 404.
    #[error("not found")]
    Hidden,
}

/// Maps `/vod/demo/manifest.mpd` to the key `vod/demo/manifest.mpd`.
pub fn to_key(path: &str) -> Result<String, PathError> {
    let rest = path
        .strip_prefix('/')
        .ok_or(PathError::Bad("path must start with /"))?;
    if rest.is_empty() {
        return Err(PathError::Hidden);
    }
    let mut key = String::with_capacity(rest.len());
    for raw in rest.split('/') {
        let seg = decode(raw)?;
        if seg.is_empty() {
            return Err(PathError::Bad("empty path segment"));
        }
        if seg == "." || seg == ".." {
            return Err(PathError::Bad("dot segment"));
        }
        if seg.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
            return Err(PathError::Bad(
                "slash, backslash or control character in a segment",
            ));
        }
        if seg.starts_with('.') {
            return Err(PathError::Hidden);
        }
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(&seg);
    }
    Ok(key)
}

fn decode(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    // Reject malformed escapes rather than passing them through literally.
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(PathError::Bad("malformed percent escape"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::Bad("path is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        assert_eq!(
            to_key("/vod/demo/manifest.mpd").unwrap(),
            "vod/demo/manifest.mpd"
        );
        assert_eq!(to_key("/a%20b/c").unwrap(), "a b/c");
    }

    #[test]
    fn escapes_are_refused() {
        for p in [
            "/../etc/passwd",
            "/vod/../../etc/passwd",
            "/vod/%2e%2e/%2E%2E/etc/passwd",
            "/vod/..%2fetc",
            "/vod/%2Fetc%2Fpasswd",
            "//etc/passwd",
            "/vod/./x",
            "/vod/a%00b",
            "/vod/a%5c..",
            "/vod/%zz",
            "/vod/%2",
            "/vod/%ff",
            "relative",
        ] {
            assert!(
                matches!(to_key(p), Err(PathError::Bad(_))),
                "{p} was not refused: {:?}",
                to_key(p)
            );
        }
        assert_eq!(to_key("/vod/.git/config"), Err(PathError::Hidden));
        assert_eq!(to_key("/"), Err(PathError::Hidden));
    }
}
