//! What happened to a request at this edge, as one [`Outcome`]: it yields both this edge's
//! member of the RFC 9211 `Cache-Status` field (`edge-1; fwd=stale; fwd-status=304; stored`) and
//! the coarse [`Label`] the request metrics are counted under.
//!
//! The member is written by hand rather than with `sfv`'s serializer: `sfv` writes the canonical
//! Structured Fields form without the space after each `;` (`edge-1;hit;ttl=42`), which would
//! change the field text RFC 9211's own examples use and that the edge's and the stack's tests and
//! logs match on; what is written here is valid Structured Fields either way, since the name is
//! made a token once ([`sanitize_name`]) and every other part is a fixed key, token or integer.

use std::fmt::Write;

/// Why a request went upstream: the RFC 9211 `fwd` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// The cache was not used for the request (Authorization, `no-store`, a loop).
    Bypass,
    /// The method is not one the cache answers.
    Method,
    /// Nothing was stored for the key.
    Miss,
    /// A variant was stored, for other values of the fields it varies on.
    VaryMiss,
    /// The stored response was stale.
    Stale,
    /// The request's own directives (`no-cache`, `max-age`, `min-fresh`) refused the stored
    /// response although it was fresh.
    Request,
}

impl Fwd {
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::Miss => "miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
        }
    }
}

/// Why a stale stored response was served without waiting for the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleWhy {
    /// Within the response's stale-while-revalidate window; a refresh runs in the background.
    WhileRevalidate,
    /// The client's `max-stale` accepts it.
    MaxStale,
}

impl StaleWhy {
    /// The `detail` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleWhy::WhileRevalidate => "stale-while-revalidate",
            StaleWhy::MaxStale => "max-stale",
        }
    }
}

/// How one request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A fresh stored response.
    Hit { ttl: i64 },
    /// A stale stored response, served at once.
    Stale { ttl: i64, why: StaleWhy },
    /// The upstream failed, answered 5xx or was slow, and a stale copy stood in
    /// (stale-if-error).
    StaleIfError {
        fwd: Fwd,
        fwd_status: Option<u16>,
        ttl: i64,
    },
    /// Answered from what the upstream sent: a fetched response (shared by a flight or fetched
    /// alone) or a stored one the upstream confirmed with a 304.
    Forwarded {
        fwd: Fwd,
        fwd_status: u16,
        /// The response was (to be) stored.
        stored: bool,
        /// The request waited for another request's fetch.
        collapsed: bool,
        /// Seconds of freshness left, when the response is stored.
        ttl: Option<i64>,
    },
    /// Forwarded around the cache (`fwd` is `Bypass` or `Method`); `fwd_status` when the
    /// upstream answered.
    Pass { fwd: Fwd, fwd_status: Option<u16> },
    /// Refused: the request's Via already names this edge.
    Loop,
    /// `only-if-cached` and nothing usable stored (504).
    NotCached { fwd: Fwd },
    /// No upstream answer and no stale copy to stand in (502 / 504).
    Error { fwd: Fwd },
}

/// The request metrics' `cache_status` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Hit,
    Miss,
    Revalidated,
    Stale,
    Coalesced,
    Bypass,
    Error,
}

impl Label {
    /// Every label, in the order of their discriminants.
    pub const ALL: [Label; 7] = [
        Label::Hit,
        Label::Miss,
        Label::Revalidated,
        Label::Stale,
        Label::Coalesced,
        Label::Bypass,
        Label::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Hit => "hit",
            Label::Miss => "miss",
            Label::Revalidated => "revalidated",
            Label::Stale => "stale",
            Label::Coalesced => "coalesced",
            Label::Bypass => "bypass",
            Label::Error => "error",
        }
    }
}

impl Outcome {
    /// The metrics label: a stale copy served is `stale` whatever sent the request upstream; a
    /// forwarded response is `coalesced` when the request joined another's fetch, `revalidated`
    /// when the upstream answered 304, else `miss`.
    pub fn label(&self) -> Label {
        match *self {
            Outcome::Hit { .. } => Label::Hit,
            Outcome::Stale { .. } | Outcome::StaleIfError { .. } => Label::Stale,
            Outcome::Forwarded {
                collapsed: true, ..
            } => Label::Coalesced,
            Outcome::Forwarded {
                fwd_status: 304, ..
            } => Label::Revalidated,
            Outcome::Forwarded { .. } => Label::Miss,
            Outcome::Pass { .. } | Outcome::Loop => Label::Bypass,
            Outcome::NotCached { .. } | Outcome::Error { .. } => Label::Error,
        }
    }

    /// This edge's `Cache-Status` member, for the cache named `name` (already a token).
    pub fn render(&self, name: &str) -> String {
        let mut m = Member(String::with_capacity(name.len() + 64));
        m.0.push_str(name);
        match *self {
            Outcome::Hit { ttl } => {
                m.flag("hit");
                m.int("ttl", ttl);
            }
            Outcome::Stale { ttl, why } => {
                m.flag("hit");
                m.int("ttl", ttl);
                m.token("detail", why.as_str());
            }
            Outcome::StaleIfError {
                fwd,
                fwd_status,
                ttl,
            } => {
                m.token("fwd", fwd.as_str());
                if let Some(st) = fwd_status {
                    m.int("fwd-status", st.into());
                }
                m.int("ttl", ttl);
                m.token("detail", "stale-if-error");
            }
            Outcome::Forwarded {
                fwd,
                fwd_status,
                stored,
                collapsed,
                ttl,
            } => {
                m.token("fwd", fwd.as_str());
                m.int("fwd-status", fwd_status.into());
                if let Some(t) = ttl {
                    m.int("ttl", t);
                }
                if stored {
                    m.flag("stored");
                }
                if collapsed {
                    m.flag("collapsed");
                }
            }
            Outcome::Pass { fwd, fwd_status } => {
                m.token("fwd", fwd.as_str());
                if let Some(st) = fwd_status {
                    m.int("fwd-status", st.into());
                }
            }
            Outcome::Loop => {
                m.token("fwd", Fwd::Bypass.as_str());
                m.token("detail", "loop");
            }
            Outcome::NotCached { fwd } => {
                m.token("fwd", fwd.as_str());
                m.token("detail", "only-if-cached");
            }
            Outcome::Error { fwd } => m.token("fwd", fwd.as_str()),
        }
        m.0
    }
}

/// A member being written: parameters in RFC 9211's order (hit, fwd, fwd-status, ttl, stored,
/// collapsed, detail), each after `; `.
struct Member(String);

impl Member {
    fn flag(&mut self, key: &str) {
        self.0.push_str("; ");
        self.0.push_str(key);
    }

    fn token(&mut self, key: &str, value: &str) {
        self.flag(key);
        self.0.push('=');
        self.0.push_str(value);
    }

    fn int(&mut self, key: &str, value: i64) {
        self.flag(key);
        // Writing to a String cannot fail.
        let _ = write!(self.0, "={value}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_members_and_labels() {
        let cases = [
            (Outcome::Hit { ttl: 42 }, "e1; hit; ttl=42", Label::Hit),
            (
                Outcome::Stale {
                    ttl: -2,
                    why: StaleWhy::WhileRevalidate,
                },
                "e1; hit; ttl=-2; detail=stale-while-revalidate",
                Label::Stale,
            ),
            (
                Outcome::Stale {
                    ttl: -9,
                    why: StaleWhy::MaxStale,
                },
                "e1; hit; ttl=-9; detail=max-stale",
                Label::Stale,
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Miss,
                    fwd_status: 200,
                    stored: true,
                    collapsed: true,
                    ttl: None,
                },
                "e1; fwd=miss; fwd-status=200; stored; collapsed",
                Label::Coalesced,
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Miss,
                    fwd_status: 200,
                    stored: true,
                    collapsed: false,
                    ttl: Some(60),
                },
                "e1; fwd=miss; fwd-status=200; ttl=60; stored",
                Label::Miss,
            ),
            (
                Outcome::Forwarded {
                    fwd: Fwd::Stale,
                    fwd_status: 304,
                    stored: true,
                    collapsed: false,
                    ttl: Some(60),
                },
                "e1; fwd=stale; fwd-status=304; ttl=60; stored",
                Label::Revalidated,
            ),
            (
                // A request that joined a revalidation counts as coalesced.
                Outcome::Forwarded {
                    fwd: Fwd::Stale,
                    fwd_status: 304,
                    stored: true,
                    collapsed: true,
                    ttl: Some(60),
                },
                "e1; fwd=stale; fwd-status=304; ttl=60; stored; collapsed",
                Label::Coalesced,
            ),
            (
                Outcome::StaleIfError {
                    fwd: Fwd::Stale,
                    fwd_status: None,
                    ttl: -3,
                },
                "e1; fwd=stale; ttl=-3; detail=stale-if-error",
                Label::Stale,
            ),
            (
                Outcome::StaleIfError {
                    fwd: Fwd::Stale,
                    fwd_status: Some(503),
                    ttl: -1,
                },
                "e1; fwd=stale; fwd-status=503; ttl=-1; detail=stale-if-error",
                Label::Stale,
            ),
            (
                Outcome::Pass {
                    fwd: Fwd::Method,
                    fwd_status: Some(204),
                },
                "e1; fwd=method; fwd-status=204",
                Label::Bypass,
            ),
            (
                Outcome::Pass {
                    fwd: Fwd::Bypass,
                    fwd_status: None,
                },
                "e1; fwd=bypass",
                Label::Bypass,
            ),
            (Outcome::Loop, "e1; fwd=bypass; detail=loop", Label::Bypass),
            (
                Outcome::NotCached { fwd: Fwd::Miss },
                "e1; fwd=miss; detail=only-if-cached",
                Label::Error,
            ),
            (
                Outcome::Error { fwd: Fwd::VaryMiss },
                "e1; fwd=vary-miss",
                Label::Error,
            ),
        ];
        for (outcome, member, label) in cases {
            assert_eq!(outcome.render("e1"), member);
            assert_eq!(outcome.label(), label, "{member}");
        }
    }

    #[test]
    fn labels_are_distinct_and_in_discriminant_order() {
        for (i, l) in Label::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
        }
        let names: std::collections::HashSet<_> = Label::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names.len(), Label::ALL.len());
    }

    #[test]
    fn names_become_tokens() {
        assert_eq!(sanitize_name("edge-1"), "edge-1");
        assert_eq!(sanitize_name("my edge"), "my-edge");
        assert_eq!(sanitize_name("1st"), "e1st");
    }
}
