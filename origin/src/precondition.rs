//! RFC 9110 section 13 conditional requests, as a pure decision over the request headers and the
//! object's validators, evaluated in the order of section 13.2.2:
//! If-Match (strong comparison) or else If-Unmodified-Since -> 412; then If-None-Match (weak
//! comparison, lists, `*`) or else If-Modified-Since -> 304 for GET/HEAD; then If-Range decides
//! whether a Range header is honoured.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::etag::{self, Tag};
use http::header::{
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::{HeaderMap, Method};

/// What to do with a request for an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it; `use_range` says whether a Range header (if any) applies.
    Serve { use_range: bool },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

fn http_date(headers: &HeaderMap, name: &http::HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v).ok()
}

/// Last-Modified has one-second resolution: compare whole seconds.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Decides a GET/HEAD for an existing object with validators `etag` (strong, quoted) and
/// `last_modified`.
pub fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    etag: &str,
    last_modified: SystemTime,
) -> Decision {
    let ours = etag::parse(etag).unwrap_or(Tag {
        weak: false,
        opaque: etag,
    });
    let lm = secs(last_modified);

    // Step 1 and 2: If-Match, or If-Unmodified-Since when If-Match is absent.
    if let Some(list) = etag::list(headers, &IF_MATCH) {
        if !list.matches_strong(ours) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = http_date(headers, &IF_UNMODIFIED_SINCE) {
        if lm > secs(date) {
            return Decision::PreconditionFailed;
        }
    }

    // Step 3 and 4: If-None-Match, or If-Modified-Since when If-None-Match is absent.
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if let Some(list) = etag::list(headers, &IF_NONE_MATCH) {
        if list.matches_weak(ours) {
            return if get_or_head {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if get_or_head {
        if let Some(date) = http_date(headers, &IF_MODIFIED_SINCE) {
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
            Some(v) => match v.to_str() {
                Err(_) => false,
                Ok(text) => {
                    let text = text.trim();
                    if text.starts_with('"') || text.starts_with("W/") {
                        etag::parse(text).is_some_and(|t| etag::strong_eq(t, ours))
                    } else {
                        httpdate::parse_http_date(text).is_ok_and(|d| secs(d) == lm)
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

    fn get(pairs: &[(&'static str, &str)]) -> Decision {
        evaluate(&Method::GET, &h(pairs), TAG, t(1_700_000_000))
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
        // Range applies to GET only.
        let head = evaluate(
            &Method::HEAD,
            &h(&[("range", "bytes=0-1")]),
            TAG,
            t(1_700_000_000),
        );
        assert_eq!(head, SERVE);
    }
}
