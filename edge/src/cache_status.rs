//! The `Cache-Status` response field (RFC 9211), naming this edge, and the coarse label used in
//! metrics for the same outcome.

use std::fmt;

/// One cache's entry in `Cache-Status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from cache without going upstream (fresh, or stale under a stale directive).
    pub hit: bool,
    /// Why the request went upstream: `miss`, `stale`, `request`, `bypass`, `method`,
    /// `uri-miss`, `vary-miss`.
    pub fwd: Option<&'static str>,
    /// Status the upstream answered, when it answered.
    pub fwd_status: Option<u16>,
    /// Seconds of freshness left (negative when stale).
    pub ttl: Option<i64>,
    /// The upstream response was stored.
    pub stored: bool,
    /// This request waited for another request's upstream fetch.
    pub collapsed: bool,
    /// Free-form detail, e.g. `stale-if-error`.
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// Renders the field value for the cache named `name`.
    pub fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            s.push_str("; fwd=");
            s.push_str(f);
        }
        if let Some(st) = self.fwd_status {
            s.push_str(&format!("; fwd-status={st}"));
        }
        if let Some(t) = self.ttl {
            s.push_str(&format!("; ttl={t}"));
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(d) = self.detail {
            s.push_str("; detail=");
            s.push_str(d);
        }
        s
    }

    /// The metrics label: hit, miss, revalidated, stale, coalesced, bypass or error.
    pub fn label(&self) -> &'static str {
        if self.detail == Some("stale-if-error")
            || self.detail == Some("stale-while-revalidate")
            || self.detail == Some("max-stale")
        {
            "stale"
        } else if self.hit {
            "hit"
        } else if self.fwd == Some("bypass") || self.fwd == Some("method") {
            "bypass"
        } else if self.fwd_status.is_none() {
            "error"
        } else if self.collapsed {
            "coalesced"
        } else if self.fwd_status == Some(304) {
            "revalidated"
        } else {
            "miss"
        }
    }
}

/// A name usable as an RFC 8941 token in `Cache-Status` (other characters become `-`).
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*') {
        out.insert(0, 'e');
    }
    out
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("edge"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_members() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(42),
            ..Default::default()
        };
        assert_eq!(hit.render("edge-eu"), "edge-eu; hit; ttl=42");
        assert_eq!(hit.label(), "hit");
        let miss = CacheStatus {
            fwd: Some("miss"),
            fwd_status: Some(200),
            stored: true,
            collapsed: true,
            ..Default::default()
        };
        assert_eq!(
            miss.render("e1"),
            "e1; fwd=miss; fwd-status=200; stored; collapsed"
        );
        assert_eq!(miss.label(), "coalesced");
        let sie = CacheStatus {
            fwd: Some("stale"),
            ttl: Some(-3),
            detail: Some("stale-if-error"),
            ..Default::default()
        };
        assert_eq!(
            sie.render("e1"),
            "e1; fwd=stale; ttl=-3; detail=stale-if-error"
        );
        assert_eq!(sie.label(), "stale");
        let reval = CacheStatus {
            fwd: Some("stale"),
            fwd_status: Some(304),
            stored: true,
            ..Default::default()
        };
        assert_eq!(reval.label(), "revalidated");
        let err = CacheStatus {
            fwd: Some("miss"),
            ..Default::default()
        };
        assert_eq!(err.label(), "error");
    }

    #[test]
    fn names_become_tokens() {
        assert_eq!(sanitize_name("edge-1"), "edge-1");
        assert_eq!(sanitize_name("my edge"), "my-edge");
        assert_eq!(sanitize_name("1st"), "e1st");
    }
}
