//! Fuzz check: arbitrary response and request header lines (Cache-Control,
//! CDN-Cache-Control, Age, Date, Expires, ...) through the edge's storability and freshness
//! policy, checking the rules a shared cache must never break.

use std::time::{Duration, SystemTime};

use edge::policy::{self, Freshness, PolicyConfig, RequestControls};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

/// Parses `name: value` lines; lines that are not valid header syntax are skipped.
fn headers(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let status = [200u16, 203, 204, 206, 301, 304, 404, 410, 500, 503][usize::from(data[0] % 10)];
    let status = StatusCode::from_u16(status).unwrap();
    let delay = Duration::from_millis(u64::from(data[1]) * 37);
    let later = Duration::from_secs(u64::from(u16::from_le_bytes([data[2], data[3]])));
    let rest = &data[4..];
    // Request headers after a blank line, response headers before it.
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (resp, req) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let resp = headers(resp);
    let req = headers(req);

    let cfg = PolicyConfig::default();
    let request_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let response_time = request_time + delay;
    let now = response_time + later;

    let stored = policy::storable(&req, status, &resp);
    if resp.contains_key(header::SET_COOKIE) {
        assert!(
            stored.is_err(),
            "a response with Set-Cookie is never shared"
        );
    }
    // CDN-Cache-Control, when present, replaces Cache-Control for the CDN (RFC 9213).
    let cdn = HeaderName::from_static("cdn-cache-control");
    let governing = if resp.contains_key(&cdn) {
        cdn
    } else {
        header::CACHE_CONTROL
    };
    let directives = policy::Directives::parse(resp.get_all(&governing).iter());
    if directives.has("no-store") || directives.has("private") {
        assert!(
            stored.is_err(),
            "no-store / private responses are never shared"
        );
    }
    if req.contains_key(header::AUTHORIZATION)
        && !(directives.has("public")
            || directives.has("must-revalidate")
            || directives.has("s-maxage"))
    {
        assert!(
            stored.is_err(),
            "an authorized request's response is not shared"
        );
    }
    if status.as_u16() == 206 || status.as_u16() == 304 {
        assert!(stored.is_err(), "206 and 304 are not stored as such");
    }

    let f = Freshness::new(&cfg, status, &resp, request_time, response_time);
    assert!(f.age(now) >= f.age(response_time), "age never decreases");
    let fresh = f.is_fresh(now);
    if fresh {
        assert!(!f.no_cache && f.lifetime > Duration::ZERO);
        assert!(
            f.usable_on_error(now),
            "a fresh response stands in for errors"
        );
    }
    if f.no_cache || f.must_revalidate {
        assert_eq!(f.stale_if_error, Duration::ZERO);
        assert_eq!(f.stale_while_revalidate, Duration::ZERO);
    }
    let ttl = f.ttl_secs(now);
    if fresh {
        assert!(ttl >= 0, "a fresh response has a non-negative ttl");
    }
    let rc = RequestControls::from_headers(&req);
    let verdict = f.verdict(&rc, now);
    if f.no_cache {
        assert_eq!(
            verdict,
            policy::Verdict::Revalidate,
            "no-cache always revalidates"
        );
    }
    let _ = f.retention(&cfg, now);
    let _ = policy::revalidation_headers(&resp);
    let _ = policy::refresh_headers(&resp, &req);
    if let Some(names) = policy::vary_names(&resp) {
        let _ = policy::vary_values(&names, &req);
    }
    for method in [http::Method::GET, http::Method::HEAD, http::Method::POST] {
        let _ = policy::precondition(&method, &req, &resp);
    }
    let _ = policy::not_modified_headers(&resp);
}
