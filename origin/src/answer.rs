//! What a handler answers, and the responses every handler shares: the request view
//! ([`Req`]), the [`Answer`] a handler returns (an object to serve, a 404, a storage failure, an
//! error), plain-text status responses, and serving an object with validators, preconditions
//! (304/412) and ranges (206/416). The server turns an [`Answer`] into a response; handlers
//! (stored objects, live channels) never build responses themselves.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use common::etag::{self, Tag};
use common::http::{empty, full, Body};
use common::precondition::{self, Decision, Validators};
use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
    RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body;
use crate::range::{self, Ranges};
use crate::storage::{Object, StorageError};

/// The parts of a request the handlers read (the body of GET/HEAD is never used).
pub struct Req {
    pub local: std::net::SocketAddr,
    pub method: Method,
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// What a handler decided to answer.
pub enum Answer<'a> {
    /// Serve this object (validators, conditionals, Range, HEAD).
    Object {
        obj: Arc<dyn Object>,
        content_type: &'a str,
        cache_control: Cow<'a, str>,
    },
    /// An object still being produced: each chunk is sent once its delay (from now) has
    /// passed, over chunked transfer (no Content-Length). Range is ignored (the whole object
    /// is sent), validators and preconditions apply.
    Paced {
        chunks: Vec<(Duration, Bytes)>,
        etag: String,
        modified: SystemTime,
        content_type: &'a str,
        cache_control: Cow<'a, str>,
    },
    /// 404 with the configured Cache-Control for missing objects.
    NotFound,
    /// 404 with this Cache-Control (e.g. a live segment not yet available).
    NotFoundFor(&'a str),
    /// The storage failed (logged and counted by the server; 502 or 500).
    Storage(StorageError),
    /// Any other failure: this status with this text.
    Failed(StatusCode, &'static str),
}

/// A plain-text status response.
pub fn status_text(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(text.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    r
}

/// 404 with a given Cache-Control.
pub fn not_found_with(cache_control: &str) -> Response<Body> {
    let mut r = status_text(StatusCode::NOT_FOUND, "not found\n");
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

/// Serves an opened object: validators, preconditions (304/412), ranges (206/416), HEAD.
pub fn object_response(
    req: &Req,
    obj: Arc<dyn Object>,
    content_type: &str,
    cache_control: &str,
    max_ranges: usize,
    now: SystemTime,
) -> Response<Body> {
    let meta = obj.meta().clone();
    let mut validators = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&meta.etag) {
        validators.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(meta.modified)) {
        validators.insert(LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        validators.insert(CACHE_CONTROL, v);
    }
    let ctype = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let head = req.method == Method::HEAD;

    let ours = Validators {
        etag: etag::parse(&meta.etag).or(Some(Tag {
            weak: false,
            opaque: &meta.etag,
        })),
        last_modified: Some(meta.modified),
        date: Some(now),
    };
    let decision = precondition::evaluate(&req.method, &req.headers, ours);
    let use_range = match decision {
        Decision::NotModified => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut().extend(validators);
            return r;
        }
        Decision::PreconditionFailed => {
            let mut r = status_text(StatusCode::PRECONDITION_FAILED, "precondition failed\n");
            if let Some(etag) = validators.remove(ETAG) {
                r.headers_mut().insert(ETAG, etag);
            }
            return r;
        }
        Decision::Serve { use_range } => use_range,
    };

    let ranges = match (
        use_range,
        req.headers.get(RANGE).and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(h)) => range::decide(h, meta.len, max_ranges),
        _ => Ranges::Full,
    };
    let mut status = StatusCode::OK;
    let mut out = empty();
    let mut h = validators;
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match ranges {
        Ranges::Full => {
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(meta.len));
            if !head {
                out = body::from_stream(obj.read(0..meta.len));
            }
        }
        Ranges::Unsatisfiable => {
            status = StatusCode::RANGE_NOT_SATISFIABLE;
            let text = "range not satisfiable\n";
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.len)) {
                h.insert(CONTENT_RANGE, v);
            }
            out = full(text);
        }
        Ranges::Partial(ranges) if ranges.len() == 1 => {
            let rg = ranges[0].clone();
            status = StatusCode::PARTIAL_CONTENT;
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(rg.end - rg.start));
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", rg.start, rg.end - 1, meta.len))
            {
                h.insert(CONTENT_RANGE, v);
            }
            out = body::from_stream(obj.read(rg));
        }
        Ranges::Partial(ranges) => {
            let mp = body::multipart(obj, &ranges, content_type, body::boundary());
            status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={}", mp.boundary))
            {
                h.insert(CONTENT_TYPE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(mp.len));
            out = mp.body;
        }
    }
    let mut r = Response::new(out);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    r
}

/// Serves an object that is still being produced: preconditions (304/412) as for any object,
/// then 200 with its chunks released on their schedule (HEAD: the head alone).
pub fn paced_response(
    req: &Req,
    chunks: Vec<(Duration, Bytes)>,
    etag: &str,
    modified: SystemTime,
    content_type: &str,
    cache_control: &str,
    now: SystemTime,
) -> Response<Body> {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        h.insert(LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        h.insert(CACHE_CONTROL, v);
    }
    let ours = Validators {
        etag: etag::parse(etag),
        last_modified: Some(modified),
        date: Some(now),
    };
    match precondition::evaluate(&req.method, &req.headers, ours) {
        Decision::NotModified => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = h;
            return r;
        }
        Decision::PreconditionFailed => {
            return status_text(StatusCode::PRECONDITION_FAILED, "precondition failed\n")
        }
        Decision::Serve { .. } => {}
    }
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let body = if req.method == Method::HEAD {
        empty()
    } else {
        body::paced(chunks)
    };
    let mut r = Response::new(body);
    *r.headers_mut() = h;
    r
}
