//! RFC 9110 section 13 conditional requests, as a pure decision over the request headers and the
//! selected representation's validators, evaluated in the order of section 13.2.2:
//! If-Match (strong comparison) or else If-Unmodified-Since -> 412; then If-None-Match (weak
//! comparison, lists, `*`) or else If-Modified-Since -> 304 for GET/HEAD; then If-Range (a strong
//! entity tag, or the date of a strong Last-Modified) decides whether a Range header is honoured.
//! The origin evaluates its files; an edge evaluates the response it stored, whose validators
//! may be missing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::etag::{self, Tag};
use http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, Method};

/// The request fields this module evaluates (Range aside).
pub const FIELDS: &[http::HeaderName] = &[
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_RANGE,
];

/// What to do with a request for an existing representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; `use_range` says whether a Range header (if any) applies.
    Serve { use_range: bool },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// The representation's validators: its entity tag and modification time, when it has them, and
/// the response's date, which says whether that modification time is a strong validator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    pub etag: Option<Tag<'a>>,
    pub last_modified: Option<SystemTime>,
    /// When the response was generated (its Date).
    pub date: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    /// The validators a response's header fields carry (a malformed field counts as absent).
    pub fn of_response(headers: &'a HeaderMap) -> Self {
        Validators {
            etag: headers
                .get(http::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .and_then(etag::parse),
            last_modified: http_date(headers, &http::header::LAST_MODIFIED),
            date: http_date(headers, &http::header::DATE),
        }
    }
}

fn http_date(headers: &HeaderMap, name: &http::HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

/// Last-Modified has one-second resolution: compare whole seconds.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Decides a request for an existing representation with validators `v`. Without an entity
/// tag, If-Match holds only for `*` and If-None-Match matches only `*`; without a modification
/// date, If-Unmodified-Since and If-Modified-Since are ignored (section 13.1.4 and 13.1.3).
pub fn evaluate(method: &Method, headers: &HeaderMap, v: Validators<'_>) -> Decision {
    let lm = v.last_modified.map(secs);

    // Step 1 and 2: If-Match, or If-Unmodified-Since when If-Match is absent.
    if let Some(list) = etag::list(headers, &IF_MATCH) {
        let holds = match v.etag {
            Some(ours) => list.matches_strong(ours),
            None => list == etag::TagList::Any,
        };
        if !holds {
            return Decision::PreconditionFailed;
        }
    } else if let (Some(date), Some(lm)) = (http_date(headers, &IF_UNMODIFIED_SINCE), lm) {
        if lm > secs(date) {
            return Decision::PreconditionFailed;
        }
    }

    // Step 3 and 4: If-None-Match, or If-Modified-Since when If-None-Match is absent.
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if let Some(list) = etag::list(headers, &IF_NONE_MATCH) {
        let matched = match v.etag {
            Some(ours) => list.matches_weak(ours),
            None => list == etag::TagList::Any,
        };
        if matched {
            return if get_or_head {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if get_or_head {
        if let (Some(date), Some(lm)) = (http_date(headers, &IF_MODIFIED_SINCE), lm) {
            if lm <= secs(date) {
                return Decision::NotModified;
            }
        }
    }

    // Step 5: If-Range (only meaningful with Range on GET).
    let use_range = method == Method::GET
        && headers.contains_key(RANGE)
        && match headers.get(IF_RANGE) {
            None => true,
            Some(value) => match value.to_str() {
                Err(_) => false,
                Ok(text) => {
                    let text = text.trim();
                    if text.starts_with('"') || text.starts_with("W/") {
                        etag::parse(text)
                            .zip(v.etag)
                            .is_some_and(|(t, ours)| etag::strong_eq(t, ours))
                    } else {
                        // A date validates only a strong Last-Modified: one at least a second
                        // older than the response (section 8.8.2.2), else the file may have
                        // changed again within the same second.
                        let strong = lm.zip(v.date).filter(|&(lm, date)| secs(date) > lm);
                        httpdate::parse_http_date(text)
                            .ok()
                            .zip(strong)
                            .is_some_and(|(d, (lm, _))| secs(d) == lm)
                    }
                }
            },
        };
    Decision::Serve { use_range }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const TAG: &str = "\"abc-1\"";

    fn t(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(n)
    }

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn ours() -> Validators<'static> {
        Validators {
            etag: etag::parse(TAG),
            last_modified: Some(t(1_700_000_000)),
            date: Some(t(1_700_000_100)),
        }
    }

    fn get(pairs: &[(&'static str, &str)]) -> Decision {
        evaluate(&Method::GET, &h(pairs), ours())
    }

    const SERVE: Decision = Decision::Serve { use_range: false };

    #[test]
    fn if_none_match_weak_comparison_lists_and_star() {
        assert_eq!(
            get(&[("if-none-match", "\"abc-1\"")]),
            Decision::NotModified
        );
        assert_eq!(
            get(&[("if-none-match", "W/\"abc-1\"")]),
            Decision::NotModified
        );
        assert_eq!(
            get(&[("if-none-match", "\"x\", W/\"abc-1\"")]),
            Decision::NotModified
        );
        assert_eq!(
            get(&[("if-none-match", "\"x\""), ("if-none-match", "\"abc-1\"")]),
            Decision::NotModified
        );
        assert_eq!(get(&[("if-none-match", "*")]), Decision::NotModified);
        assert_eq!(get(&[("if-none-match", "\"x\", \"y\"")]), SERVE);
        assert_eq!(
            get(&[("if-none-match", "\"a,b\", \"abc-1\"")]),
            Decision::NotModified
        );
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let future = httpdate::fmt_http_date(t(1_800_000_000));
        // The date alone would give 304; a non-matching tag wins.
        assert_eq!(
            get(&[("if-modified-since", &future)]),
            Decision::NotModified
        );
        assert_eq!(
            get(&[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &future)
            ]),
            SERVE
        );
        let past = httpdate::fmt_http_date(t(1_600_000_000));
        assert_eq!(
            get(&[("if-none-match", TAG), ("if-modified-since", &past)]),
            Decision::NotModified
        );
    }

    #[test]
    fn if_modified_since_compares_seconds_and_ignores_garbage() {
        let same = httpdate::fmt_http_date(t(1_700_000_000));
        let before = httpdate::fmt_http_date(t(1_699_999_999));
        assert_eq!(get(&[("if-modified-since", &same)]), Decision::NotModified);
        assert_eq!(get(&[("if-modified-since", &before)]), SERVE);
        assert_eq!(get(&[("if-modified-since", "yesterday")]), SERVE);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        assert_eq!(get(&[("if-match", TAG)]), SERVE);
        assert_eq!(get(&[("if-match", "*")]), SERVE);
        assert_eq!(
            get(&[("if-match", "\"nope\"")]),
            Decision::PreconditionFailed
        );
        // If-Match uses the strong comparison: a weak tag never matches.
        assert_eq!(
            get(&[("if-match", "W/\"abc-1\"")]),
            Decision::PreconditionFailed
        );
        let before = httpdate::fmt_http_date(t(1_699_999_000));
        let after = httpdate::fmt_http_date(t(1_700_000_500));
        assert_eq!(
            get(&[("if-unmodified-since", &before)]),
            Decision::PreconditionFailed
        );
        assert_eq!(get(&[("if-unmodified-since", &after)]), SERVE);
        // If-Match present: If-Unmodified-Since is not evaluated.
        assert_eq!(
            get(&[("if-match", TAG), ("if-unmodified-since", &before)]),
            SERVE
        );
        // 412 beats 304.
        assert_eq!(
            get(&[("if-match", "\"nope\""), ("if-none-match", TAG)]),
            Decision::PreconditionFailed
        );
    }

    #[test]
    fn if_range() {
        let lm = httpdate::fmt_http_date(t(1_700_000_000));
        let other = httpdate::fmt_http_date(t(1_700_000_001));
        let ranged = Decision::Serve { use_range: true };
        assert_eq!(get(&[("range", "bytes=0-1")]), ranged);
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", TAG)]), ranged);
        assert_eq!(
            get(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]),
            SERVE
        );
        assert_eq!(
            get(&[("range", "bytes=0-1"), ("if-range", "W/\"abc-1\"")]),
            SERVE
        );
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", &lm)]), ranged);
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", &other)]), SERVE);
        // A Last-Modified within the second of the response's date is weak: no date matches.
        let fresh = Validators {
            date: Some(t(1_700_000_000)),
            ..ours()
        };
        let ranged_if = |v: Validators<'static>, d: &str| {
            evaluate(
                &Method::GET,
                &h(&[("range", "bytes=0-1"), ("if-range", d)]),
                v,
            )
        };
        assert_eq!(ranged_if(fresh, &lm), SERVE);
        assert_eq!(
            ranged_if(
                Validators {
                    date: None,
                    ..ours()
                },
                &lm
            ),
            SERVE
        );
        assert_eq!(ranged_if(ours(), &lm), ranged);
        // Range applies to GET only.
        let head = evaluate(&Method::HEAD, &h(&[("range", "bytes=0-1")]), ours());
        assert_eq!(head, SERVE);
    }

    #[test]
    fn missing_validators() {
        let none = Validators::default();
        let eval = |pairs: &[(&'static str, &str)]| evaluate(&Method::GET, &h(pairs), none);
        let date = httpdate::fmt_http_date(t(1_700_000_000));
        // No entity tag: only `*` holds for If-Match and matches for If-None-Match.
        assert_eq!(eval(&[("if-match", "*")]), SERVE);
        assert_eq!(eval(&[("if-match", TAG)]), Decision::PreconditionFailed);
        assert_eq!(eval(&[("if-none-match", "*")]), Decision::NotModified);
        assert_eq!(eval(&[("if-none-match", TAG)]), SERVE);
        // No modification date: the date conditions are ignored.
        assert_eq!(eval(&[("if-unmodified-since", &date)]), SERVE);
        assert_eq!(eval(&[("if-modified-since", &date)]), SERVE);
        assert_eq!(eval(&[("range", "bytes=0-1"), ("if-range", &date)]), SERVE);
        assert_eq!(eval(&[("range", "bytes=0-1"), ("if-range", TAG)]), SERVE);
        // Validators read from a response's fields; a malformed one counts as absent.
        let resp = h(&[("etag", "W/\"w\""), ("last-modified", "not a date")]);
        let v = Validators::of_response(&resp);
        assert_eq!(v.etag.map(|t| (t.weak, t.opaque)), Some((true, "\"w\"")));
        assert!(v.last_modified.is_none());
        // A weak stored tag passes If-None-Match (weak comparison) but never If-Match.
        let weak = |pairs: &[(&'static str, &str)]| evaluate(&Method::GET, &h(pairs), v);
        assert_eq!(weak(&[("if-none-match", "\"w\"")]), Decision::NotModified);
        assert_eq!(weak(&[("if-match", "\"w\"")]), Decision::PreconditionFailed);
    }
}
