//! The running router: UDP worker threads on SO_REUSEPORT sockets (blocking I/O, no task per
//! packet), TCP through hickory-server's `Server` with a raw `RequestHandler`, the `/metrics`
//! HTTP listener, the health checkers, and reload by swapping the compiled snapshot.

use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::{ArcSwap, Cache};
use hickory_proto::op::{Header, HeaderCounts, Message, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};

use crate::answer;
use crate::config::Config;
use crate::health::{self, Checkers};
use crate::metrics::{Metrics, Proto};
use crate::zone::Snapshot;

/// State shared by every listener of one router.
struct Shared {
    snap: ArcSwap<Snapshot>,
    metrics: Metrics,
}

/// A running DNS router. Stop it with [`DnsRouter::shutdown`].
pub struct DnsRouter {
    shared: Arc<Shared>,
    dns_addr: SocketAddr,
    metrics_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    tcp: Server<TcpHandler>,
    http: common::http::ServerHandle,
    checkers: std::sync::Mutex<Checkers>,
}

/// Starts a router: binds UDP and TCP on `config.server.listen` (port 0 picks a free port,
/// the same for both) and the metrics listener, starts health checks, and returns at once.
/// Must be called inside a Tokio runtime.
pub fn spawn(config: Config) -> Result<DnsRouter> {
    let metrics = Metrics::new().context("creating metrics")?;
    let listen = config.server.listen;
    let metrics_listen = config.server.metrics_listen;
    let udp_sockets = config.server.udp_sockets;
    let workers = match config.server.udp_workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let tcp_timeout = Duration::from_millis(config.server.tcp_idle_timeout_ms.max(100));
    let health_cfg = config.health.clone();
    let fetcher = health::fetcher(&health_cfg)?;
    let snap = Snapshot::build(config, &metrics)?;
    let health = snap.health.clone();
    let shared = Arc::new(Shared {
        snap: ArcSwap::from_pointee(snap),
        metrics,
    });

    let sockets = match udp_sockets {
        0 => workers,
        n => n.min(workers),
    };
    let (udp_sockets, tcp_listener) = bind_dns(listen, sockets)?;
    let dns_addr = tcp_listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for i in 0..workers {
        let sock = udp_sockets[i % udp_sockets.len()]
            .try_clone()
            .context("sharing a UDP socket between workers")?;
        let (shared, stop) = (shared.clone(), stop.clone());
        udp_threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || udp_worker(sock, &shared, &stop))
                .context("spawning a UDP worker thread")?,
        );
    }

    tcp_listener.set_nonblocking(true)?;
    let tcp_listener =
        tokio::net::TcpListener::from_std(tcp_listener).context("registering the TCP listener")?;
    let mut tcp = Server::new(TcpHandler {
        shared: shared.clone(),
    });
    tcp.register_listener(tcp_listener, tcp_timeout, 65_535);

    let http_listener = StdTcpListener::bind(metrics_listen)
        .with_context(|| format!("cannot listen on {metrics_listen} for metrics (in use?)"))?;
    http_listener.set_nonblocking(true)?;
    let http_listener = tokio::net::TcpListener::from_std(http_listener)?;
    let metrics_shared = shared.clone();
    let http = common::http::serve(
        http_listener,
        common::http::ServerLimits::default(),
        common::http::ConnHooks::default(),
        move |req, _info| {
            let shared = metrics_shared.clone();
            async move {
                match req.uri().path() {
                    "/metrics" => common::metrics::response(&shared.metrics.registry),
                    "/health" => http::Response::new(common::http::full("ok\n")),
                    _ => {
                        let mut r = http::Response::new(common::http::full("not found\n"));
                        *r.status_mut() = http::StatusCode::NOT_FOUND;
                        r
                    }
                }
            }
        },
    )?;
    let metrics_addr = http.local_addr();
    let checkers = Checkers::start(health, &health_cfg, shared.metrics.health.clone(), fetcher);
    tracing::info!(%dns_addr, %metrics_addr, udp_workers = workers, "dns router listening (udp+tcp)");
    Ok(DnsRouter {
        shared,
        dns_addr,
        metrics_addr,
        stop,
        udp_threads,
        tcp,
        http,
        checkers: std::sync::Mutex::new(checkers),
    })
}

/// Binds `workers` UDP sockets with SO_REUSEPORT and a TCP listener on one port. With port 0,
/// retries until a port is free for both protocols.
fn bind_dns(listen: SocketAddr, workers: usize) -> Result<(Vec<UdpSocket>, StdTcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let first =
            udp_socket(listen).with_context(|| format!("cannot bind UDP {listen} (in use?)"))?;
        let addr = first.local_addr()?;
        match StdTcpListener::bind(addr) {
            Ok(tcp) => {
                let mut socks = vec![first];
                for _ in 1..workers.max(1) {
                    socks
                        .push(udp_socket(addr).with_context(|| {
                            format!("cannot bind another UDP socket on {addr}")
                        })?);
                }
                return Ok((socks, tcp));
            }
            Err(e) if listen.port() == 0 => last_err = Some(e),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot listen on TCP {addr} (in use?)"))
            }
        }
    }
    Err(last_err
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no free port")))
    .context("no port free for both UDP and TCP")
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    // A larger receive buffer absorbs bursts; the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(s.into())
}

fn udp_worker(sock: UdpSocket, shared: &Shared, stop: &AtomicBool) {
    let mut snap = Cache::new(&shared.snap);
    crate::udp::serve(
        &sock,
        || stop.load(Ordering::Relaxed),
        |packet, src, out, arrived| {
            let len = answer::handle(snap.load(), &shared.metrics, packet, src, Proto::Udp, out);
            shared
                .metrics
                .observe_latency(Proto::Udp, arrived.elapsed().as_secs_f64());
            len
        },
    );
}

/// TCP queries arrive through hickory-server (framing, connection limits, idle timeout); the
/// answer comes from the same [`answer::handle`] as UDP, re-read as a hickory `Message` to
/// hand back through the `ResponseHandler`.
struct TcpHandler {
    shared: Arc<Shared>,
}

fn empty_info(request: &Request, rcode: ResponseCode) -> ResponseInfo {
    let mut metadata = request.metadata;
    metadata.message_type = hickory_proto::op::MessageType::Response;
    metadata.response_code = rcode;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let mut out = vec![0u8; 65_535];
        let snap = self.shared.snap.load();
        let n = answer::handle(
            &snap,
            &self.shared.metrics,
            request.as_slice(),
            request.src(),
            Proto::Tcp,
            &mut out,
        );
        if n == 0 {
            return empty_info(request, ResponseCode::NoError);
        }
        let message = match Message::from_vec(&out[..n]) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "could not re-read our own response");
                let response = MessageResponseBuilder::from_message_request(request)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                return response_handle
                    .send_response(response)
                    .await
                    .unwrap_or_else(|_| empty_info(request, ResponseCode::ServFail));
            }
        };
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &message.edns {
            builder.edns(edns);
        }
        let response = builder.build(
            message.metadata,
            message.answers.iter(),
            message.authorities.iter(),
            std::iter::empty(),
            message.additionals.iter(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "tcp send failed");
                empty_info(request, message.metadata.response_code)
            }
        };
        self.shared
            .metrics
            .observe_latency(Proto::Tcp, started.elapsed().as_secs_f64());
        info
    }
}

impl DnsRouter {
    /// UDP and TCP address of the DNS service.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// Address of the `/metrics` HTTP listener.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The router's metrics registry.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.shared.metrics.registry
    }

    /// Replaces the configuration without dropping queries: the new snapshot is compiled aside
    /// and swapped in atomically; queries in flight finish on the old one. Listener addresses
    /// are not rebound (a change to them needs a restart). Health state carries over for edges
    /// with the same name and health URL. On error the running configuration stays.
    pub fn reload(&self, config: Config) -> Result<()> {
        let result = (|| {
            let health_cfg = config.health.clone();
            let fetcher = health::fetcher(&health_cfg)?;
            let snap = Snapshot::build(config, &self.shared.metrics)?;
            snap.health.inherit(&self.shared.snap.load().health);
            let health = snap.health.clone();
            let mut checkers = self
                .checkers
                .lock()
                .map_err(|_| anyhow::anyhow!("health checker state poisoned"))?;
            self.shared.snap.store(Arc::new(snap));
            checkers.stop();
            *checkers = Checkers::start(
                health,
                &health_cfg,
                self.shared.metrics.health.clone(),
                fetcher,
            );
            Ok(())
        })();
        let label = if result.is_ok() { "ok" } else { "error" };
        self.shared
            .metrics
            .reloads
            .with_label_values(&[label])
            .inc();
        result
    }

    /// Stops every listener and task and waits for them.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut c) = self.checkers.lock() {
            c.stop();
        }
        let _ = self.tcp.shutdown_gracefully().await;
        self.http.shutdown().await;
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
