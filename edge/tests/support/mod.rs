//! Test helpers: scriptable upstreams built on `common::http::serve` (counting requests,
//! slow heads, chunked bodies, failures, optionally dated by a virtual clock), an edge on a free
//! port (optionally on that clock), and a small HTTP client.

#![allow(dead_code)]

pub mod counting;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::clock::{Clock, ManualClock};
use common::http::{Body, ConnHooks, ServerHandle, ServerLimits};
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What a scripted upstream answers.
#[derive(Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Delay before the response head.
    pub head_delay: Duration,
    /// When set, the body is sent in this many chunks, `chunk_delay` apart.
    pub chunks: usize,
    pub chunk_delay: Duration,
    /// With `chunks`: no Content-Length (HTTP/1.1 chunked transfer, as a response still being
    /// produced is sent).
    pub no_length: bool,
    /// With `chunks`: the body fails after this many chunks (the connection is cut).
    pub fail_after: Option<usize>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn status(status: u16, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }
}

/// A request the upstream saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
}

type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A scripted upstream server that records every request.
pub struct Upstream {
    pub server: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub count: Arc<AtomicUsize>,
    clock: Option<Arc<dyn Clock>>,
}

impl Upstream {
    pub async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = common::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self::serve_on(listener, Arc::new(script), None)
    }

    /// Like [`Upstream::start`], dating its responses by `clock` (unless the script sets Date),
    /// as an origin sharing an edge's virtual time would.
    pub async fn start_with_clock(
        clock: Arc<dyn Clock>,
        script: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        let listener = common::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Self::serve_on(listener, Arc::new(script), Some(clock))
    }

    /// Starts again on the same address (after `stop`).
    pub async fn restart(&mut self, script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) {
        let listener = common::http::bind(self.addr).await.unwrap();
        let new = Self::serve_on(listener, Arc::new(script), self.clock.clone());
        self.server = new.server;
        self.seen = new.seen;
        self.count = new.count;
    }

    fn serve_on(
        listener: tokio::net::TcpListener,
        script: Arc<Script>,
        clock: Option<Arc<dyn Clock>>,
    ) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (s2, c2, clock2) = (seen.clone(), count.clone(), clock.clone());
        let limits = ServerLimits {
            shutdown_grace: Duration::from_millis(200),
            ..Default::default()
        };
        let server =
            common::http::serve(listener, limits, ConnHooks::default(), move |req, _info| {
                let script = script.clone();
                let (seen, count, clock) = (s2.clone(), c2.clone(), clock2.clone());
                async move {
                    let s = Seen {
                        method: req.method().clone(),
                        path: req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers: req.headers().clone(),
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(s.clone());
                    let mut reply = script(&s);
                    tokio::time::sleep(reply.head_delay).await;
                    let dated = reply
                        .headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("date"));
                    if let (Some(clock), false) = (&clock, dated) {
                        let date = httpdate::fmt_http_date(clock.now());
                        reply.headers.push(("date".to_string(), date));
                    }
                    build(reply, s.method == Method::HEAD)
                }
            })
            .unwrap();
        Upstream {
            addr: server.local_addr(),
            server: Some(server),
            seen,
            count,
            clock,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops the server at once (connections dropped), like a crash.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

fn build(reply: Reply, head: bool) -> Response<Body> {
    let mut b = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    let mut has_len = false;
    for (k, v) in &reply.headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        b = b.header(k.as_str(), v.as_str());
    }
    let body = if head || reply.status == 304 {
        common::http::empty()
    } else if reply.chunks > 1 {
        if !has_len && !reply.no_length {
            b = b.header("content-length", reply.body.len());
        }
        let size = reply.body.len().div_ceil(reply.chunks).max(1);
        let pieces: Vec<Bytes> = reply
            .body
            .chunks(size)
            .map(Bytes::copy_from_slice)
            .collect();
        let delay = reply.chunk_delay;
        let fail_after = reply.fail_after.unwrap_or(usize::MAX);
        let stream = futures_util::stream::iter(pieces.into_iter().enumerate()).then(
            move |(i, p)| async move {
                tokio::time::sleep(delay).await;
                if i >= fail_after {
                    return Err(common::http::BoxError::from("the upstream body broke"));
                }
                Ok::<_, common::http::BoxError>(Frame::data(p))
            },
        );
        StreamBody::new(stream).boxed_unsync()
    } else {
        common::http::full(reply.body)
    };
    b.body(body).unwrap()
}

/// A client response, body collected.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn cache_status(&self) -> String {
        self.header("cache-status")
    }
}

pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client whose connections come from `ip` (any `127.0.0.0/8` address works on loopback), so
/// that an edge sees it as a client of its own.
pub fn client_from(
    ip: std::net::IpAddr,
) -> Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(ip));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Sends a request to `addr` and collects the response (bounded to 20 s).
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    send_with(&client(), addr, method, path, headers).await
}

pub async fn send_with(
    c: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::<Bytes>::new()).unwrap();
    let fut = async {
        let resp = c.request(req).await.expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body failed")
            .to_bytes();
        Got {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("request timed out")
}

/// Starts an edge in front of `upstream` with test-friendly settings.
pub async fn edge(upstream: &str, tweak: impl FnOnce(&mut edge::Config)) -> edge::Edge {
    edge::spawn(config(upstream, tweak)).await.unwrap()
}

/// Like [`edge`], on `clock`: freshness, Age and expiry follow it, not the system clock.
pub async fn edge_with_clock(
    upstream: &str,
    clock: Arc<ManualClock>,
    tweak: impl FnOnce(&mut edge::Config),
) -> edge::Edge {
    edge::spawn_with_clock(config(upstream, tweak), clock)
        .await
        .unwrap()
}

/// A virtual clock reading the present, for an edge and the upstream it shares time with.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(std::time::SystemTime::now()))
}

/// Waits (up to 10 s) until the edge has no upstream fetch in flight: a background refresh, or
/// a fetch a client stopped waiting for, has landed.
pub async fn settle(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = send(addr, "GET", "/metrics", &[]).await;
        if metric(&String::from_utf8_lossy(&m.body), "edge_inflight_fetches") == 0.0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a fetch is still in flight after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(upstream: &str, tweak: impl FnOnce(&mut edge::Config)) -> edge::Config {
    let mut c = edge::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        name: "edge-t".to_string(),
        purge_token: Some("s3cret".to_string()),
        connect_timeout_secs: 1.0,
        first_byte_timeout_secs: 3.0,
        idle_timeout_secs: 3.0,
        coalesce_wait_secs: 5.0,
        ..edge::Config::default()
    };
    tweak(&mut c);
    c
}

/// Reads one metric sample's value from `/metrics` text (0 when absent); a bare name whose
/// series have labels is their sum, as PromQL's `sum(name)`.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    let samples = || {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k, v.parse::<f64>().ok()?))
            })
    };
    let exact = samples().find_map(|(k, v)| {
        let k_no_edge = k
            .replace(r#"edge="edge-t","#, "")
            .replace(r#",edge="edge-t""#, "")
            .replace(r#"{edge="edge-t"}"#, "");
        (k_no_edge == name_and_labels || k == name_and_labels).then_some(v)
    });
    match exact {
        Some(v) => v,
        None if !name_and_labels.contains('{') => samples()
            .filter(|(k, _)| k.split('{').next() == Some(name_and_labels))
            .map(|(_, v)| v)
            .sum(),
        None => 0.0,
    }
}
