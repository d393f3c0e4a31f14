//! Test support: stand-in edge health servers, router configs on free ports, and a DNS client
//! (hickory's, over real UDP and TCP sockets, with a chosen source address).

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dns_router::config::{Config, EdgeConfig};
use hickory_net::client::Client;
use hickory_net::proto::op::{
    DnsRequest, DnsRequestOptions, Edns, Message, MessageType, OpCode, Query,
};
use hickory_net::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_net::proto::rr::{Name, RecordType};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsHandle, FirstAnswer};

/// A small HTTP server standing in for an edge's `/health`, reporting a settable load.
pub struct HealthStub {
    pub addr: SocketAddr,
    load: Arc<AtomicU64>,
    server: Mutex<Option<common::http::ServerHandle>>,
}

impl HealthStub {
    pub async fn start() -> HealthStub {
        let listener = common::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let stub = HealthStub {
            addr,
            load: Arc::new(AtomicU64::new(0f64.to_bits())),
            server: Mutex::new(None),
        };
        stub.serve(listener);
        stub
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let load = self.load.clone();
        let handle = common::http::serve(
            listener,
            common::http::ServerLimits::default(),
            common::http::ConnHooks::default(),
            move |_req, _| {
                let l = f64::from_bits(load.load(Ordering::Relaxed));
                async move {
                    let body = format!("{{\"status\":\"up\",\"load\":{l}}}");
                    http::Response::new(common::http::full(body))
                }
            },
        )
        .unwrap();
        *self.server.lock().unwrap() = Some(handle);
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    pub fn set_load(&self, load: f64) {
        self.load.store(load.to_bits(), Ordering::Relaxed);
    }

    /// Stops answering (the port is closed).
    pub fn stop(&self) {
        if let Some(h) = self.server.lock().unwrap().take() {
            h.abort();
        }
    }

    /// Answers again on the same port.
    pub async fn resume(&self) {
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => return self.serve(l),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot rebind {}: {last:?}", self.addr);
    }
}

/// Health-check settings used by the tests.
pub const INTERVAL_MS: u64 = 200;
pub const FALL: u32 = 2;
pub const RISE: u32 = 2;

/// The local-stack configuration on free ports, with the three regional edges' health checks
/// pointing at the given stubs (None: no health URL, always up).
pub fn config(stubs: [Option<&HealthStub>; 3]) -> Config {
    let mut c = Config::local_default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.metrics_listen = "127.0.0.1:0".parse().unwrap();
    c.server.udp_workers = 2;
    c.health.interval_ms = INTERVAL_MS;
    c.health.timeout_ms = 200;
    c.health.fall = FALL;
    c.health.rise = RISE;
    for (edge, stub) in c.edges.iter_mut().zip(stubs) {
        edge.health_url = stub.map(HealthStub::url);
    }
    c
}

/// Adds `n` extra edges (127.0.10.X) sharing region 1's coordinates, always up.
pub fn add_edges(c: &mut Config, n: usize) {
    for i in 0..n {
        c.edges.push(EdgeConfig {
            name: format!("extra{i}"),
            addresses: vec![IpAddr::from([127, 0, 10, i as u8 + 1])],
            latitude: 48.86,
            longitude: 2.35,
            capacity: 1.0,
            health_url: None,
        });
    }
}

/// How to send a query.
#[derive(Clone, Copy, Default)]
pub struct Via {
    pub tcp: bool,
    pub bind: Option<IpAddr>,
    pub edns: bool,
    pub ecs: Option<(IpAddr, u8)>,
    pub edns_version: u8,
}

pub fn udp() -> Via {
    Via {
        edns: true,
        ..Default::default()
    }
}

pub fn tcp() -> Via {
    Via {
        tcp: true,
        edns: true,
        ..Default::default()
    }
}

pub fn from(ip: &str) -> Via {
    Via {
        bind: Some(ip.parse().unwrap()),
        edns: true,
        ..Default::default()
    }
}

/// Builds a query message.
pub fn message(name: &str, qtype: RecordType, via: Via) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    if via.edns || via.ecs.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_version(via.edns_version);
        if let Some((addr, prefix)) = via.ecs {
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
        }
        m.set_edns(e);
    }
    m
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    h.finish() as u16
}

/// Sends `msg` to `server` with hickory's client over UDP or TCP and returns the response.
pub async fn send(server: SocketAddr, msg: Message, via: Via) -> Message {
    let bind = via.bind.map(|ip| SocketAddr::new(ip, 0));
    let provider = TokioRuntimeProvider::default();
    let mut opts = DnsRequestOptions::default();
    opts.use_edns = via.edns;
    let request = DnsRequest::new(msg, opts);
    let response = if via.tcp {
        let (fut, sender) =
            TcpClientStream::new(server, bind, Some(Duration::from_secs(5)), provider);
        let stream = fut.await.expect("tcp connect");
        let (client, bg) = Client::<TokioRuntimeProvider>::new(stream, sender);
        let bg = tokio::spawn(bg);
        let r = client.send(request).first_answer().await;
        bg.abort();
        r
    } else {
        let stream = UdpClientStream::builder(server, provider)
            .with_bind_addr(bind)
            .with_timeout(Some(Duration::from_secs(5)))
            .build();
        let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let bg = tokio::spawn(bg);
        let r = client.send(request).first_answer().await;
        bg.abort();
        r
    };
    response.expect("dns response").into_message()
}

/// Asks `name`/`qtype` and returns the response.
pub async fn ask(server: SocketAddr, name: &str, qtype: RecordType, via: Via) -> Message {
    send(server, message(name, qtype, via), via).await
}

/// The addresses in the answer section.
pub fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers.iter().filter_map(|r| r.data.ip_addr()).collect()
}

/// The ECS option of a response, as (address, source, scope).
pub fn ecs_of(m: &Message) -> Option<(IpAddr, u8, u8)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.addr(), s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

/// Sends raw bytes over UDP and waits up to `wait` for an answer.
pub async fn raw_udp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns the time taken.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
