//! A load generator for HTTP/2 and HTTP/3 over TLS with the same shape for both (no packaged
//! tool speaks HTTP/3): CONNS connections, each with STREAMS requests in flight, for SECONDS;
//! every response's body is read to its end. Prints requests/s, p99 latency and errors.
//!
//! Usage: h3load h2|h3 ADDR HOST PATH CA_PEM [CONNS] [STREAMS] [SECONDS]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

type H2 = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

enum Conn {
    H2(Box<H2>),
    H3(Arc<common::h3::Client>),
}

impl Conn {
    async fn get(&self, addr: SocketAddr, host: &str, path: &str) -> Result<usize> {
        match self {
            Conn::H2(c) => {
                let req = http::Request::get(format!("https://{addr}{path}"))
                    .header(http::header::HOST, host)
                    .body(Empty::new())?;
                let resp = c.request(req).await?;
                if !resp.status().is_success() {
                    bail!("HTTP {}", resp.status());
                }
                Ok(resp.into_body().collect().await?.to_bytes().len())
            }
            Conn::H3(c) => {
                let (head, body) = c.get(path, 64 << 20).await?;
                if !head.status().is_success() {
                    bail!("HTTP {}", head.status());
                }
                Ok(body.len())
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        bail!("usage: h3load h2|h3 ADDR HOST PATH CA_PEM [CONNS] [STREAMS] [SECONDS]");
    }
    let proto = args[1].clone();
    let addr: SocketAddr = args[2].parse().context("ADDR")?;
    let host = args[3].clone();
    let path = args[4].clone();
    let roots = common::tls::Roots {
        ca_files: vec![args[5].clone().into()],
        system: false,
    };
    let conns: usize = args.get(6).map_or(Ok(4), |v| v.parse())?;
    let streams: usize = args.get(7).map_or(Ok(8), |v| v.parse())?;
    let secs: f64 = args.get(8).map_or(Ok(8.0), |v| v.parse())?;

    let mut pool = Vec::new();
    for _ in 0..conns {
        let conn = match proto.as_str() {
            "h2" => {
                let tls = common::tls::client_config(&roots, &[])?;
                let connector =
                    common::tls::https_connector(HttpConnector::new(), tls, true, Some(&host))?;
                let mut b = Client::builder(TokioExecutor::new());
                b.http2_only(true).pool_max_idle_per_host(1);
                Conn::H2(Box::new(b.build(connector)))
            }
            "h3" => {
                let tls = common::tls::client_config(&roots, &[])?;
                Conn::H3(Arc::new(common::h3::Client::new(
                    &tls,
                    "127.0.0.1:0".parse()?,
                    addr,
                    &host,
                )?))
            }
            other => bail!("unknown protocol {other} (h2 or h3)"),
        };
        // One request first, so that every connection is up before the clock starts.
        conn.get(addr, &host, &path)
            .await
            .context("first request")?;
        pool.push(Arc::new(conn));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in &pool {
        for _ in 0..streams {
            let (conn, stop, done, errors, latencies) = (
                conn.clone(),
                stop.clone(),
                done.clone(),
                errors.clone(),
                latencies.clone(),
            );
            let (host, path) = (host.clone(), path.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match conn.get(addr, &host, &path).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            mine.push(t.elapsed().as_secs_f64());
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let p99 = l
        .get(((l.len() as f64 * 0.99) as usize).min(l.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    println!(
        "{proto}: {:.0} req/s, p99 {:.3} ms, errors {}",
        n as f64 / elapsed,
        p99 * 1e3,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
