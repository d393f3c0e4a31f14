//! The cache key: host (lowercased, from Host or the request target's authority), path and
//! query, with configured query parameters removed. Methods are not part of the key because
//! only GET responses are stored; HEAD is answered from the GET entry.

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
    let path = parts.uri.path();
    let path = if path.is_empty() { "/" } else { path };
    let query = parts.uri.query().map(|q| filter_query(q, ignore));
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
}
