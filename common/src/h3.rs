//! HTTP/3 over QUIC (quinn + h3): the server side every TLS server of the stack runs beside its
//! TCP listener, on the same port number over UDP, with the same handler; and a small client
//! (one QUIC connection, many requests) for the player and the tests.
//!
//! The server reads a request's body whole (bounded by [`MAX_REQUEST_BODY`]) before calling the
//! handler, and streams the response body frame by frame as the handler produces it, so a cache
//! hit or a proxied stream is sent as it is over HTTP/1.1 and HTTP/2. Fields HTTP/3 forbids
//! (`Connection` and the fields it names, `Keep-Alive`, `Transfer-Encoding`, `Upgrade`) are
//! dropped from responses.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{watch, Semaphore};

use crate::http::{Body, ConnHooks, ConnInfo, RequestBody, ServerLimits};

/// ALPN protocol of HTTP/3.
pub const ALPN: &[u8] = b"h3";
/// Largest request body the server reads (requests of the stack carry none or small ones).
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// QUIC idle timeout of server and client connections.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Alt-Svc` value advertising HTTP/3 on `port` for a day.
pub fn alt_svc(port: u16) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400"))
        .expect("an Alt-Svc value is ASCII")
}

fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        IDLE_TIMEOUT.try_into().expect("the idle timeout fits"),
    ));
    // Room for a whole segment in flight on one stream before the reader takes it.
    t.stream_receive_window((8u32 << 20).into());
    t.receive_window((32u32 << 20).into());
    t.send_window(32 << 20);
    t
}

/// A UDP endpoint serving QUIC with `tls` (its ALPN replaced by h3) on `addr`.
pub fn server_endpoint(addr: SocketAddr, tls: &rustls::ServerConfig) -> Result<quinn::Endpoint> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| anyhow!("the TLS configuration cannot serve QUIC: {e}"))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    quinn::Endpoint::server(config, addr)
        .with_context(|| format!("cannot listen for QUIC on udp {addr}"))
}

/// Serves `handler` over HTTP/3 on `endpoint` until `stopped` turns true, then closes the
/// endpoint once in-flight requests end (up to the shutdown grace of `limits`).
pub async fn serve<H, F>(
    endpoint: quinn::Endpoint,
    limits: ServerLimits,
    hooks: ConnHooks,
    handler: Arc<H>,
    mut stopped: watch::Receiver<bool>,
) where
    H: Fn(Request<RequestBody>, ConnInfo) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let local = endpoint.local_addr().unwrap_or(([0, 0, 0, 0], 0).into());
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = stopped.changed() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        let handler = handler.clone();
        let limits = limits.clone();
        let hooks = hooks.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let peer = incoming.remote_address();
            let conn = match tokio::time::timeout(limits.header_read_timeout, incoming).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "QUIC handshake failed"),
                Err(_) => return tracing::debug!(%peer, "QUIC handshake timed out"),
            };
            let info = ConnInfo { peer, local };
            let built = h3::server::builder()
                .max_field_section_size(limits.max_header_bytes as u64)
                .build::<_, Bytes>(h3_quinn::Connection::new(conn))
                .await;
            let mut h3conn = match built {
                Ok(c) => c,
                Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 setup failed"),
            };
            loop {
                match h3conn.accept().await {
                    Ok(Some(resolver)) => {
                        let handler = handler.clone();
                        let hooks = hooks.clone();
                        tokio::spawn(async move {
                            let Ok((req, stream)) = resolver.resolve_request().await else {
                                return;
                            };
                            hooks.count(req.version());
                            if let Err(e) = respond(req, stream, handler.as_ref(), info).await {
                                tracing::debug!(%peer, error = %e, "HTTP/3 request ended with an error");
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "HTTP/3 connection ended");
                        break;
                    }
                }
            }
        });
    }
    endpoint.close(0u32.into(), b"server stopping");
    let _ = tokio::time::timeout(limits.shutdown_grace, endpoint.wait_idle()).await;
}

async fn respond<H, F, S>(
    req: Request<()>,
    mut stream: h3::server::RequestStream<S, Bytes>,
    handler: &H,
    info: ConnInfo,
) -> Result<()>
where
    H: Fn(Request<RequestBody>, ConnInfo) -> F,
    F: Future<Output = Response<Body>>,
    S: h3::quic::BidiStream<Bytes>,
{
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        if body.len() + chunk.remaining() > MAX_REQUEST_BODY {
            let resp = Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .body(())?;
            stream.send_response(resp).await?;
            stream.finish().await?;
            return Ok(());
        }
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    let (parts, ()) = req.into_parts();
    let req = Request::from_parts(parts, RequestBody::full(body.freeze()));
    let resp = handler(req, info).await;
    let (mut parts, mut body) = resp.into_parts();
    strip_connection_fields(&mut parts.headers);
    stream
        .send_response(Response::from_parts(parts, ()))
        .await?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| anyhow!("response body: {e}"))?;
        match frame.into_data() {
            Ok(data) if !data.is_empty() => stream.send_data(data).await?,
            Ok(_) => {}
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    stream.send_trailers(trailers).await?;
                }
            }
        }
    }
    stream.finish().await?;
    Ok(())
}

/// Removes the connection-specific fields HTTP/3 forbids (RFC 9114 section 4.2).
fn strip_connection_fields(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .filter(|n| !n.is_empty())
        .collect();
    for n in named {
        headers.remove(n.as_str());
    }
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(h);
    }
}

/// An HTTP/3 client: one QUIC connection to one server, opened on the first request and
/// reopened after it closes; requests share it as concurrent streams.
pub struct Client {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    server: SocketAddr,
    server_name: String,
    conn: tokio::sync::Mutex<Option<h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>>>,
}

/// A response whose body is read with [`Response::recv`].
pub struct ClientResponse {
    pub head: Response<()>,
    stream: h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
}

impl ClientResponse {
    /// The next piece of the body; `None` at its end.
    pub async fn recv(&mut self) -> Result<Option<Bytes>> {
        match self.stream.recv_data().await? {
            Some(mut b) => Ok(Some(b.copy_to_bytes(b.remaining()))),
            None => Ok(None),
        }
    }
}

impl Client {
    /// A client of `server` (named `server_name` in its certificate), verified with `tls`
    /// (whose ALPN is replaced by h3), sending from `bind` (an address of the right family,
    /// port 0 for any).
    pub fn new(
        tls: &rustls::ClientConfig,
        bind: SocketAddr,
        server: SocketAddr,
        server_name: &str,
    ) -> Result<Client> {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| anyhow!("the TLS configuration cannot speak QUIC: {e}"))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport()));
        let endpoint = quinn::Endpoint::client(bind)
            .with_context(|| format!("cannot open a QUIC socket on {bind}"))?;
        Ok(Client {
            endpoint,
            config,
            server,
            server_name: server_name.to_string(),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    async fn sender(&self) -> Result<h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>> {
        let mut conn = self.conn.lock().await;
        if let Some(s) = conn.as_ref() {
            return Ok(s.clone());
        }
        let quic = self
            .endpoint
            .connect_with(self.config.clone(), self.server, &self.server_name)?
            .await
            .with_context(|| format!("QUIC connection to {}", self.server))?;
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(quic)).await?;
        tokio::spawn(async move {
            let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            tracing::debug!(error = %e, "HTTP/3 client connection closed");
        });
        *conn = Some(sender.clone());
        Ok(sender)
    }

    /// Sends `req` (no body) and returns the response head, its body to be read.
    pub async fn send(&self, req: Request<()>) -> Result<ClientResponse> {
        let mut sender = self.sender().await?;
        let sent = async {
            let mut stream = sender.send_request(req).await?;
            stream.finish().await?;
            let head = stream.recv_response().await?;
            Ok::<_, anyhow::Error>(ClientResponse { head, stream })
        }
        .await;
        if sent.is_err() {
            // The connection may be gone (idle timeout, server restart): the next request
            // opens a new one.
            *self.conn.lock().await = None;
        }
        sent
    }

    /// GETs `url`'s path on the server and reads the whole body (at most `limit` bytes).
    pub async fn get(&self, path_and_query: &str, limit: usize) -> Result<(Response<()>, Bytes)> {
        let uri: http::Uri = format!("https://{}{}", self.server_name, path_and_query).parse()?;
        let mut resp = self.send(Request::get(uri).body(())?).await?;
        let mut body = BytesMut::new();
        while let Some(b) = resp.recv().await? {
            if body.len() + b.len() > limit {
                return Err(anyhow!("response body larger than {limit} bytes"));
            }
            body.extend_from_slice(&b);
        }
        Ok((resp.head, body.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_fields_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "video/mp4".parse().unwrap());
        strip_connection_fields(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn alt_svc_names_the_port() {
        assert_eq!(alt_svc(8443), "h3=\":8443\"; ma=86400");
    }
}
