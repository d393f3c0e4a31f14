//! The HTTP server loop every service of the stack runs (HTTP/1.1 keep-alive and HTTP/2 cleartext
//! through hyper-util's auto builder), with the limits a public server needs: a maximum number of
//! connections, a header read timeout against slow clients, bounded header size and count, and
//! graceful shutdown that lets in-flight requests finish, optionally over TLS (rustls, ALPN h2 and
//! http/1.1). Also a small GET client (plain HTTP and verified HTTPS) for tools and health checks.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Error type carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body type of every handler: full buffers, file streams and proxied streams alike.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes` in full.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// The request body every handler gets: hyper's for HTTP/1.1 and HTTP/2, a buffer read whole
/// for HTTP/3 (see [`crate::h3`]).
#[derive(Debug)]
pub enum RequestBody {
    Stream(Incoming),
    Full(Option<Bytes>),
}

impl RequestBody {
    pub fn full(bytes: Bytes) -> RequestBody {
        RequestBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Stream(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            RequestBody::Full(b) => {
                std::task::Poll::Ready(b.take().map(|b| Ok(hyper::body::Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Stream(b) => b.is_end_stream(),
            RequestBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            RequestBody::Stream(b) => b.size_hint(),
            RequestBody::Full(b) => {
                hyper::body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// Limits that protect a server from bad or slow clients.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// Time a client has to send a complete request head (HTTP/1).
    pub header_read_timeout: Duration,
    /// Bytes of request head hyper buffers (HTTP/1 read buffer; at least 8 KiB).
    pub max_header_bytes: usize,
    /// Number of request header fields (HTTP/1).
    pub max_headers: usize,
    /// How long graceful shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Addresses of one accepted connection, handed to the request handler.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// Optional hooks a server's metrics can attach to the connection loop.
#[derive(Clone, Default)]
pub struct ConnHooks {
    /// Incremented while a connection is open.
    pub open_connections: Option<prometheus::IntGauge>,
    /// Requests by protocol; see [`requests_by_protocol`].
    pub requests_by_protocol: Option<ByProtocol>,
}

/// The series of a requests-by-protocol counter, resolved once (a request increments one
/// without looking its labels up).
#[derive(Clone)]
pub struct ByProtocol([prometheus::IntCounter; 4]);

/// Protocol labels, in [`ByProtocol`]'s order.
const PROTOCOLS: [&str; 4] = ["http/1.0", "http/1.1", "h2", "h3"];

/// A counter of requests by protocol, `<prefix>_requests_by_protocol_total{protocol}`
/// (http/1.0, http/1.1, h2, h3), registered in `registry`, every series present from the start.
pub fn requests_by_protocol(prefix: &str, registry: &prometheus::Registry) -> Result<ByProtocol> {
    let c = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            format!("{prefix}_requests_by_protocol_total"),
            "Requests received, by HTTP protocol (http/1.1, h2 or h3)",
        ),
        &["protocol"],
    )?;
    registry.register(Box::new(c.clone()))?;
    Ok(ByProtocol(PROTOCOLS.map(|p| c.with_label_values(&[p]))))
}

/// The label of a request's HTTP version.
pub fn protocol_label(v: hyper::Version) -> &'static str {
    PROTOCOLS[protocol_index(v)]
}

fn protocol_index(v: hyper::Version) -> usize {
    match v {
        hyper::Version::HTTP_2 => 2,
        hyper::Version::HTTP_3 => 3,
        hyper::Version::HTTP_10 | hyper::Version::HTTP_09 => 0,
        _ => 1,
    }
}

impl ConnHooks {
    pub(crate) fn count(&self, v: hyper::Version) {
        if let Some(ByProtocol(c)) = &self.requests_by_protocol {
            c[protocol_index(v)].inc();
        }
    }
}

/// Holds a connection's slot and its open-connections count for exactly as long as the
/// connection task lives, even if that task ends by a panic.
struct ConnGuard {
    gauge: Option<prometheus::IntGauge>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ConnGuard {
    fn new(gauge: Option<prometheus::IntGauge>, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        if let Some(g) = &gauge {
            g.inc();
        }
        ConnGuard {
            gauge,
            _permit: permit,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// A running server: its address and the means to stop it.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on (useful when it was bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops at once: the accept loop and every connection are dropped. Models a crash in tests.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Binds `addr` with a clear error naming it when it is in use.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is the address in use or not local?)"))
}

/// Serves `handler` on `listener` until [`ServerHandle::shutdown`] is called.
pub fn serve<H, F>(
    listener: TcpListener,
    limits: ServerLimits,
    hooks: ConnHooks,
    handler: H,
) -> Result<ServerHandle>
where
    H: Fn(Request<RequestBody>, ConnInfo) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_tls(listener, limits, hooks, None, handler)
}

/// Like [`serve`], over TLS when `tls` is given: each accepted connection does its handshake in
/// its own task, bounded by the header read timeout (a stalled TLS client cannot hold a
/// connection slot), and then speaks the protocol ALPN chose (h2 or http/1.1; http/1.1 when the
/// client offered no ALPN). With TLS, HTTP/3 is served too, over QUIC on the same port number
/// (UDP), and every TCP response advertises it with `Alt-Svc`; if that UDP port cannot be had,
/// the server says so and serves TCP alone.
pub fn serve_tls<H, F>(
    listener: TcpListener,
    limits: ServerLimits,
    hooks: ConnHooks,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
) -> Result<ServerHandle>
where
    H: Fn(Request<RequestBody>, ConnInfo) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let local_addr = listener
        .local_addr()
        .context("listener has no local address")?;
    let (stop, mut stopped) = watch::channel(false);
    let handler = Arc::new(handler);
    let quic = tls.as_ref().and_then(|tls| {
        crate::h3::server_endpoint(local_addr, tls)
            .inspect_err(|e| tracing::warn!(error = %e, "serving without HTTP/3"))
            .ok()
    });
    let alt_svc = quic.as_ref().map(|_| crate::h3::alt_svc(local_addr.port()));
    let h3_task = quic.map(|endpoint| {
        tokio::spawn(crate::h3::serve(
            endpoint,
            limits.clone(),
            hooks.clone(),
            handler.clone(),
            stopped.clone(),
        ))
    });
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handshake_timeout = limits.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let grace = limits.shutdown_grace;

    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stopped.changed() => break,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let info = ConnInfo {
                peer,
                local: local_addr,
            };
            let handler = handler.clone();
            let alt_svc = alt_svc.clone();
            let counted = hooks.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                counted.count(req.version());
                let fut = handler(req.map(RequestBody::Stream), info);
                let alt_svc = alt_svc.clone();
                async move {
                    let mut resp = fut.await;
                    if let Some(v) = alt_svc {
                        resp.headers_mut().insert(hyper::header::ALT_SVC, v);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let guard = ConnGuard::new(hooks.open_connections.clone(), permit);
            let watcher = graceful.watcher();
            let builder = builder.clone();
            let acceptor = acceptor.clone();
            let mut stopped_conn = stopped.clone();
            tokio::spawn(async move {
                let _guard = guard;
                let Some(acceptor) = acceptor else {
                    // A client that connects and says nothing holds its slot only for the header
                    // read timeout (hyper's own timer starts with the first byte).
                    let mut first = [0u8; 1];
                    let said_something = tokio::select! {
                        r = tokio::time::timeout(handshake_timeout, stream.peek(&mut first)) => {
                            matches!(r, Ok(Ok(n)) if n > 0)
                        }
                        _ = stopped_conn.changed() => false,
                    };
                    if !said_something {
                        tracing::debug!(%peer, "client sent nothing; connection closed");
                        return;
                    }
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                };
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                let accepted = tokio::select! {
                    r = handshake => Some(r),
                    _ = stopped_conn.changed() => None,
                };
                match accepted {
                    Some(Ok(Ok(tls))) => {
                        // The auto builder tells h2 from HTTP/1 by the connection preface, which
                        // matches what ALPN negotiated.
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
                        }
                    }
                    Some(Ok(Err(e))) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Some(Err(_)) => tracing::debug!(%peer, "TLS handshake timed out"),
                    None => {}
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("graceful shutdown timed out; closing remaining connections");
        }
        if let Some(h3) = h3_task {
            let _ = h3.await;
        }
    });
    Ok(ServerHandle {
        local_addr,
        stop,
        task,
    })
}

/// Largest body [`get`] reads (manifests, metrics, health documents).
pub const MAX_GET_BODY: usize = 64 << 20;

/// A GET client for `http://` and `https://` URLs (manifests, metrics, health documents):
/// servers are verified against the given roots, and every request opens a fresh connection,
/// so a check also proves that the server still accepts new ones. The trust roots are loaded
/// on the first `https://` URL, never for a client that only fetches `http://` ones.
#[derive(Clone)]
pub struct Fetcher {
    roots: crate::tls::Roots,
    plain: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Empty<Bytes>,
    >,
    tls: Arc<std::sync::OnceLock<std::result::Result<TlsClient, String>>>,
}

type TlsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

impl Fetcher {
    /// A fetcher trusting `roots` for `https://` URLs. The CA files are checked now (an error
    /// names the file) but nothing is loaded until an `https://` URL is fetched.
    pub fn new(roots: &crate::tls::Roots) -> Result<Fetcher> {
        for path in &roots.ca_files {
            crate::tls::certs_from_pem_file(path)?;
        }
        let plain = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        Ok(Fetcher {
            roots: roots.clone(),
            plain,
            tls: Arc::default(),
        })
    }

    fn tls_client(&self) -> Result<&TlsClient> {
        let built = self.tls.get_or_init(|| {
            let build = || -> Result<TlsClient> {
                let tls = crate::tls::client_config(&self.roots, &[])?;
                let connector = crate::tls::https_connector(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                    tls,
                    true,
                    None,
                )?;
                Ok(
                    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                        .pool_max_idle_per_host(0)
                        .build(connector),
                )
            };
            build().map_err(|e| format!("{e:#}"))
        });
        built.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The body of a 2xx response to GET `url`; anything else is an error naming the URL and
    /// the status. At most [`MAX_GET_BODY`] bytes, 30 s to the head and 60 s for the body.
    pub async fn get(&self, url: &str) -> Result<Bytes> {
        let uri: hyper::Uri = url
            .parse()
            .with_context(|| format!("invalid URL `{url}`"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            bail!("unsupported URL `{url}`: only http:// and https:// are supported");
        }
        let response = match uri.scheme_str() {
            Some("https") => self.tls_client()?.get(uri),
            _ => self.plain.get(uri),
        };
        let resp = tokio::time::timeout(Duration::from_secs(30), response)
            .await
            .with_context(|| format!("GET {url}: timed out"))?
            .map_err(|e| anyhow::anyhow!("GET {url}: {}", error_chain(&e)))?;
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_GET_BODY);
        let body = tokio::time::timeout(Duration::from_secs(60), limited.collect())
            .await
            .with_context(|| format!("GET {url}: body timed out"))?
            .map_err(|e| {
                anyhow::anyhow!("GET {url}: reading body: {e} (at most {MAX_GET_BODY} bytes)")
            })?
            .to_bytes();
        if !status.is_success() {
            bail!("GET {url}: HTTP {status}");
        }
        Ok(body)
    }
}

/// An error and its sources on one line, `outer: inner: ...` (hyper's client error alone says
/// only "client error", and its connect errors hide the TLS reason in their source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// GETs an `http://` or `https://` URL (verified against the system roots) and returns the body
/// of a 2xx response, as [`Fetcher::get`] does.
pub async fn get(url: &str) -> Result<Bytes> {
    static DEFAULT: std::sync::OnceLock<Fetcher> = std::sync::OnceLock::new();
    let fetcher = match DEFAULT.get() {
        Some(f) => f,
        None => {
            let f = Fetcher::new(&crate::tls::Roots {
                ca_files: Vec::new(),
                system: true,
            })?;
            DEFAULT.get_or_init(|| f)
        }
    };
    fetcher.get(url).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn hello_server(limits: ServerLimits) -> ServerHandle {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        serve(
            listener,
            limits,
            ConnHooks::default(),
            |req, info| async move {
                let text = format!(
                    "{} {} from {}",
                    req.method(),
                    req.uri().path(),
                    info.peer.ip()
                );
                Response::new(full(text))
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn serves_and_gets() {
        let server = hello_server(ServerLimits::default()).await;
        let url = format!("http://{}/x", server.local_addr());
        let body = get(&url).await.unwrap();
        assert_eq!(&body[..], b"GET /x from 127.0.0.1");
        server.shutdown().await;
        assert!(
            get(&url).await.is_err(),
            "server still answering after shutdown"
        );
    }

    #[tokio::test]
    async fn bind_in_use_names_the_address() {
        let l = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let err = bind(addr).await.unwrap_err();
        assert!(format!("{err:#}").contains(&addr.to_string()));
    }

    #[tokio::test]
    async fn slow_header_client_is_cut_off() {
        let limits = ServerLimits {
            header_read_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let server = hello_server(limits).await;
        let mut s = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "connection was not closed after the header read timeout"
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn silent_client_is_cut_off_and_its_slot_freed() {
        let limits = ServerLimits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 1,
            ..Default::default()
        };
        let gauge = prometheus::IntGauge::new("open", "open connections").unwrap();
        let hooks = ConnHooks {
            open_connections: Some(gauge.clone()),
            ..ConnHooks::default()
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let server = serve(listener, limits, hooks, |_req, _info| async move {
            Response::new(full("ok"))
        })
        .unwrap();
        // Connects and says nothing, holding the only slot.
        let mut silent = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a silent client was not cut off");
        // The slot is free again: a real client is served.
        let body = get(&format!("http://{}/", server.local_addr()))
            .await
            .unwrap();
        assert_eq!(&body[..], b"ok");
        server.shutdown().await;
        assert_eq!(gauge.get(), 0, "open connections not counted back down");
    }

    #[tokio::test]
    async fn too_many_headers_is_rejected() {
        let server = hello_server(ServerLimits {
            max_headers: 8,
            ..Default::default()
        })
        .await;
        let mut s = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..20 {
            req.push_str(&format!("X-H{i}: v\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 431"), "got: {text}");
        server.shutdown().await;
    }

    async fn tls_hello_server(limits: ServerLimits) -> (ServerHandle, String) {
        let (cert, key) =
            crate::tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config =
            crate::tls::server_config_from_pem_bytes(cert.as_bytes(), key.as_bytes()).unwrap();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let server = serve_tls(
            listener,
            limits,
            ConnHooks::default(),
            Some(config),
            |req, _info| async move {
                Response::new(full(format!("{:?} {}", req.version(), req.uri().path())))
            },
        )
        .unwrap();
        (server, cert)
    }

    async fn tls_connect(
        addr: SocketAddr,
        cert_pem: &str,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let dir = std::env::temp_dir().join(format!("common-http-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join(format!("{}.pem", addr.port()));
        std::fs::write(&ca, cert_pem).unwrap();
        let roots = crate::tls::Roots {
            ca_files: vec![ca],
            system: false,
        };
        let config = crate::tls::client_config(&roots, alpn).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    }

    #[tokio::test]
    async fn tls_alpn_h2_is_negotiated_and_served() {
        let (server, cert) = tls_hello_server(ServerLimits::default()).await;
        let tls = tls_connect(server.local_addr(), &cert, &crate::tls::ALPN).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get("https://localhost/secure")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"HTTP/2.0 /secure");
        server.shutdown().await;
    }

    /// With the UDP port taken, a TLS server still serves TCP, and advertises no HTTP/3;
    /// with it free, it advertises HTTP/3 on its port.
    #[tokio::test]
    async fn alt_svc_only_when_the_quic_endpoint_is_up() {
        let (cert, key) =
            crate::tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config =
            crate::tls::server_config_from_pem_bytes(cert.as_bytes(), key.as_bytes()).unwrap();
        for udp_taken in [true, false] {
            let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let squatter = udp_taken.then(|| std::net::UdpSocket::bind(addr).unwrap());
            let server = serve_tls(
                listener,
                ServerLimits::default(),
                ConnHooks::default(),
                Some(config.clone()),
                |_req, _info| async move { Response::new(full("ok")) },
            )
            .unwrap();
            let tls = tls_connect(addr, &cert, &[b"http/1.1".as_slice()]).await;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get("/")
                .header(http::header::HOST, "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200, "udp taken: {udp_taken}");
            let alt = resp.headers().get(hyper::header::ALT_SVC);
            if udp_taken {
                assert!(alt.is_none(), "{alt:?}");
            } else {
                let want = format!("h3=\":{}\"; ma=86400", addr.port());
                assert_eq!(alt.unwrap(), want.as_str());
            }
            drop(squatter);
            server.shutdown().await;
        }
    }

    #[tokio::test]
    async fn tls_http1_with_alpn_and_without() {
        let (server, cert) = tls_hello_server(ServerLimits::default()).await;
        for alpn in [&[b"http/1.1".as_slice()][..], &[][..]] {
            let tls = tls_connect(server.local_addr(), &cert, alpn).await;
            let expected = if alpn.is_empty() {
                None
            } else {
                Some(b"http/1.1".as_slice())
            };
            assert_eq!(tls.get_ref().1.alpn_protocol(), expected);
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get("/one")
                .header(http::header::HOST, "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"HTTP/1.1 /one");
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn tls_rejects_plaintext_and_cuts_off_stalled_handshakes() {
        let (server, _cert) = tls_hello_server(ServerLimits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 2,
            ..Default::default()
        })
        .await;
        // Plain HTTP on the TLS port: the handshake fails and the connection is closed.
        let mut s = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "plaintext client not disconnected");
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
        // Two silent clients fill both slots; each is cut off after the timeout.
        let mut silent = Vec::new();
        for _ in 0..2 {
            silent.push(
                tokio::net::TcpStream::connect(server.local_addr())
                    .await
                    .unwrap(),
            );
        }
        for mut s in silent {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
            assert!(read.is_ok(), "stalled TLS handshake was not cut off");
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn h2_prior_knowledge_works() {
        let server = hello_server(ServerLimits::default()).await;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Empty<Bytes>>();
        let uri: hyper::Uri = format!("http://{}/h2", server.local_addr())
            .parse()
            .unwrap();
        let resp = client.get(uri).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"GET /h2 from 127.0.0.1");
        server.shutdown().await;
    }
}
