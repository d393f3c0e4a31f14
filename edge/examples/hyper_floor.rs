//! The floor of the HTTP stack the edge is built on: hyper on a one-worker tokio runtime
//! answering every request with the same 2 KiB body and no logic at all (no cache lookup, no
//! validators, no metrics). `edge/bench/bench.sh` runs it beside the edge and nginx, so the
//! edge's small-hit rate can be read against what hyper alone does on the same machine.
//!
//! `cargo run --release -p edge --example hyper_floor -- 127.0.0.1:18090`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into())
        .parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let body = Bytes::from(vec![b'x'; 2048]);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                    let mut r = Response::new(Full::new(body.clone()));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/dash+xml"),
                    );
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
