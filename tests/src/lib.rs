//! Helpers shared by the whole-stack tests in `tests/tests/`: a small packaged title made once
//! and reused, and the stack started on loopback addresses no other test (and no `cdn up` the
//! user has running) uses.

pub mod av;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use cdn::stack::{Stack, StackConfig};

/// Seconds of the test title.
pub const TITLE_SECONDS: f64 = 12.0;

/// A small ladder that encodes quickly in a debug build but still has three rungs to switch among.
const TEST_LADDER: &str = r#"
[[rendition]]
id = "180p"
width = 320
height = 180
bitrate_kbps = 300

[[rendition]]
id = "240p"
width = 426
height = 240
bitrate_kbps = 700

[[rendition]]
id = "360p"
width = 640
height = 360
bitrate_kbps = 1500
"#;

/// The packaged test title, made once per machine under `target/test-content/` (packaging into a
/// temporary folder and renaming it into place, so concurrent test binaries never see half of it).
pub fn packaged_title() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| package_once().expect("packaging the test title"))
}

fn package_once() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-content");
    let done = root.join(format!("demo-{TITLE_SECONDS}s-v3"));
    if done.join("manifest.mpd").is_file() {
        return Ok(done);
    }
    std::fs::create_dir_all(&root)?;
    let tmp = root.join(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut opts = packager::Options::new(&tmp);
    opts.duration = Some(TITLE_SECONDS);
    opts.ladder = packager::ladder::Ladder::parse(TEST_LADDER, "test ladder")?;
    opts.progress = false;
    packager::package(&opts).context("packaging")?;
    match std::fs::rename(&tmp, &done) {
        Ok(()) => Ok(done),
        // Another test binary won the race: use its copy.
        Err(_) if done.join("manifest.mpd").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(done)
        }
        Err(e) => Err(e).context("moving the packaged title into place"),
    }
}

/// A fresh content root holding the test title as `vod/demo`, which a test may modify.
pub fn content_root() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    copy_dir(packaged_title(), &dir.path().join("vod").join("demo"))?;
    Ok(dir)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Runs an external tool (found with [`common::tools::require`], so a missing one fails loudly)
/// and returns its stdout; a non-zero exit fails the test with its stderr.
pub fn run_tool<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(tool: &str, args: &[S]) -> String {
    let path = common::tools::require(tool);
    let out = std::process::Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A second octet for `127.B.N.x` no other test of this process uses (and not 0, the user's).
pub fn unique_octet() -> u8 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id() % 230;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 7 and 230 are coprime, so 230 consecutive calls give 230 different octets in 20..250.
    (20 + (base + n.wrapping_mul(7) % 230) % 230) as u8
}

/// A running stack over its own content root.
pub struct TestStack {
    pub stack: Stack,
    pub content: tempfile::TempDir,
    pub octet: u8,
}

impl TestStack {
    /// Starts origin, three edges and the router on free loopback addresses.
    pub async fn start() -> Result<TestStack> {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestStack::start`], letting the caller adjust the configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut StackConfig)) -> Result<TestStack> {
        let content = content_root()?;
        let octet = unique_octet();
        let mut cfg = StackConfig::on_free_addresses(content.path().to_path_buf(), octet)?;
        adjust(&mut cfg);
        let stack = Stack::start(cfg).await?;
        Ok(TestStack {
            stack,
            content,
            octet,
        })
    }

    /// A client address located in region `n` (1-based).
    pub fn client_in_region(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.octet, n, 10))
    }

    /// The edge address of region `n` (1-based).
    pub fn edge_ip(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.octet, n, 1))
    }

    /// `http://video.example.test:PORT/PATH`, the URL players use.
    pub fn content_url(&self, path: &str) -> String {
        format!("{}{}", self.stack.content_base(), path)
    }
}

pub use common::metrics::sum as metric_sum;

pub use cdn::stack::scrape;

/// One HTTP response as a test sees it.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Fetched {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// GETs `http://ADDR/PATH` with the given Host and extra headers (a fresh connection each time).
pub async fn fetch(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Fetched> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut req = http::Request::get(format!("http://{addr}{path}")).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.request(req.body(Default::default())?),
    )
    .await
    .context("request timed out")??;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octets_do_not_repeat_within_a_cycle_and_avoid_the_fixed_stack() {
        // `cdn up` uses 127.0.0.x and 127.0.{1,2,3}.x; tests must never land on those, and
        // the 230 octets of one cycle must all differ.
        let cycle: Vec<u8> = (0..230).map(|_| unique_octet()).collect();
        let distinct: std::collections::HashSet<u8> = cycle.iter().copied().collect();
        assert_eq!(distinct.len(), cycle.len(), "{cycle:?}");
        assert!(cycle.iter().all(|o| !(0..=3).contains(o)), "{cycle:?}");
    }
}

/// A proxy to put between the edges and the origin: it counts requests per path and can be told
/// to misbehave (delay, answer 500, or refuse connections), like a failing origin would.
pub struct Interposer {
    pub addr: std::net::SocketAddr,
    state: std::sync::Arc<InterposerState>,
    server: Option<common::http::ServerHandle>,
}

/// How the interposer answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward to the target.
    Pass,
    /// Forward after this delay.
    Delay(std::time::Duration),
    /// Answer 500 without asking the target.
    Error500,
}

struct InterposerState {
    target: std::sync::OnceLock<std::net::SocketAddr>,
    counts: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    fault: std::sync::Mutex<Fault>,
}

impl Interposer {
    /// Starts on a free port of `ip`; set the target with [`Interposer::forward_to`].
    pub async fn start(ip: IpAddr) -> Result<Interposer> {
        let state = std::sync::Arc::new(InterposerState {
            target: std::sync::OnceLock::new(),
            counts: Default::default(),
            fault: std::sync::Mutex::new(Fault::Pass),
        });
        let listener = common::http::bind(std::net::SocketAddr::new(ip, 0)).await?;
        let server = serve_interposer(listener, state.clone())?;
        Ok(Interposer {
            addr: server.local_addr(),
            state,
            server: Some(server),
        })
    }

    /// Where requests go.
    pub fn forward_to(&self, target: std::net::SocketAddr) {
        let _ = self.state.target.set(target);
    }

    /// `http://ADDR`, for an edge's upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Requests seen per path (query included).
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.counts.lock().unwrap().clone()
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

impl InterposerState {
    async fn handle(
        &self,
        req: http::Request<common::http::RequestBody>,
        client: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Full<bytes::Bytes>,
        >,
    ) -> http::Response<common::http::Body> {
        use http_body_util::BodyExt;
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        *self.counts.lock().unwrap().entry(path.clone()).or_default() += 1;
        let fault = *self.fault.lock().unwrap();
        let status = |code: u16| {
            let mut r = http::Response::new(common::http::full(format!("interposer: {code}\n")));
            *r.status_mut() =
                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
            r
        };
        match fault {
            Fault::Error500 => return status(500),
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Pass => {}
        }
        let Some(target) = self.target.get() else {
            return status(502);
        };
        let (parts, body) = req.into_parts();
        let Ok(body) = body.collect().await else {
            return status(400);
        };
        let mut out = http::Request::builder()
            .method(parts.method)
            .uri(format!("http://{target}{path}"));
        for (k, v) in &parts.headers {
            out = out.header(k, v);
        }
        let Ok(out) = out.body(http_body_util::Full::new(body.to_bytes())) else {
            return status(400);
        };
        match client.request(out).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let body = body.map_err(common::http::BoxError::from).boxed_unsync();
                http::Response::from_parts(parts, body)
            }
            Err(_) => status(502),
        }
    }
}

fn serve_interposer(
    listener: tokio::net::TcpListener,
    state: std::sync::Arc<InterposerState>,
) -> Result<common::http::ServerHandle> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    common::http::serve(
        listener,
        Default::default(),
        Default::default(),
        move |req: http::Request<common::http::RequestBody>, _| {
            let st = state.clone();
            let client = client.clone();
            async move { st.handle(req, client).await }
        },
    )
}

impl Interposer {
    /// Closes the listener at once: the edges get connection refused, as when the origin's
    /// process is gone.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Listens again on the same address after [`Interposer::stop`] (a no-op while running).
    pub async fn resume(&mut self) -> Result<()> {
        if self.server.is_none() {
            let listener = common::http::bind(self.addr).await?;
            self.server = Some(serve_interposer(listener, self.state.clone())?);
        }
        Ok(())
    }
}
