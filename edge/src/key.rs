//! The cache key: host (lowercased, from Host or the request target's authority), path and
//! query, with configured query parameters removed. Path and query are normalised as RFC 3986
//! section 6.2.2 allows without knowing the scheme: percent-encoded unreserved characters are
//! decoded and the hex digits of the remaining percent-encodings uppercased, so `/a%2db` and
//! `/a-b` are one object. Methods are not part of the key because only GET responses are stored;
//! HEAD is answered from the GET entry.

use std::borrow::Cow;
use std::fmt;

use http::request::Parts;

/// Identifies one stored object (one variant per key; see `store`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub host: Box<str>,
    /// Path plus `?query` when a query remains after filtering.
    pub path: Box<str>,
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.host, self.path)
    }
}

impl CacheKey {
    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// Builds the key of a request; `ignore` lists query parameter names left out of the key.
pub fn of_request(parts: &Parts, ignore: &[String]) -> CacheKey {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let path = normalize_percent(parts.uri.path());
    let path = if path.is_empty() { "/" } else { &path };
    let query = parts
        .uri
        .query()
        .map(|q| filter_query(&normalize_percent(q), ignore));
    let path = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    CacheKey {
        host: host.into(),
        path: path.into(),
    }
}

/// Removes the parameters named in `ignore` from a query string, keeping the order of the rest
/// (order can be meaningful to an origin, so it is not normalised).
pub fn filter_query(query: &str, ignore: &[String]) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && !ignore.iter().any(|i| i == name)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes percent-encoded unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) and
/// uppercases the hex digits of every other percent-encoding; anything else, including a `%`
/// not followed by two hex digits, is left as it is.
pub fn normalize_percent(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = hi << 4 | lo;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(c));
                } else {
                    out.push('%');
                    out.push(char::from(b[i + 1].to_ascii_uppercase()));
                    out.push(char::from(b[i + 2].to_ascii_uppercase()));
                }
                i += 3;
                continue;
            }
        }
        // Not a percent-encoding: copy the character (the input is a str, so whole characters).
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    Cow::Owned(out)
}

fn hex(d: u8) -> Option<u8> {
    char::from(d).to_digit(16).map(|v| v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn key_from_host_path_and_query() {
        let k = of_request(
            &parts("/a/b.m4s?x=1&token=abc&y=2", Some("Edge.Test:8080")),
            &["token".to_string()],
        );
        assert_eq!(&*k.host, "edge.test:8080");
        assert_eq!(&*k.path, "/a/b.m4s?x=1&y=2");
        assert_eq!(k.path_only(), "/a/b.m4s");
        assert_eq!(k.to_string(), "edge.test:8080/a/b.m4s?x=1&y=2");
    }

    #[test]
    fn ignored_only_query_disappears_and_authority_fallback() {
        let k = of_request(
            &parts("http://Origin.test/m.mpd?t=1", None),
            &["t".to_string()],
        );
        assert_eq!(&*k.host, "origin.test");
        assert_eq!(&*k.path, "/m.mpd");
        let a = of_request(&parts("/m.mpd?b=2&a=1", Some("h")), &[]);
        let b = of_request(&parts("/m.mpd?a=1&b=2", Some("h")), &[]);
        assert_ne!(a, b, "parameter order is kept");
    }

    #[test]
    fn equivalent_percent_encodings_share_a_key() {
        let k = |uri: &str| of_request(&parts(uri, Some("h")), &["token".to_string()]);
        assert_eq!(k("/a%2Db.m4s"), k("/a-b.m4s"));
        assert_eq!(k("/%7Euser/%61.mpd"), k("/~user/a.mpd"));
        assert_eq!(k("/x%2fy"), k("/x%2Fy"));
        assert_ne!(
            k("/x%2Fy"),
            k("/x/y"),
            "an encoded slash is not a path separator"
        );
        assert_eq!(
            &*k("/q?a=%41&%74oken=1").path,
            "/q?a=A",
            "names decode before filtering"
        );
        assert_eq!(normalize_percent("/a%2"), "/a%2");
        assert_eq!(normalize_percent("/%zz%"), "/%zz%");
        assert_eq!(normalize_percent("/caf%C3%A9/é"), "/caf%C3%A9/é");
        assert!(matches!(normalize_percent("/plain"), Cow::Borrowed(_)));
    }
}
