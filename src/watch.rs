//! The watch page: a small HTTP server of the stack, on its own address, serving one page
//! (`src/watch.html`) that lists the titles and live channels the origin serves and plays the
//! chosen one in the browser through an edge, with dash.js (DASH) or hls.js (HLS).
//!
//! Routes (GET and HEAD; other methods get 405, other paths 404):
//! - `/`: the page;
//! - `/catalog.json`: the titles (folders of `DATA/vod/` holding a `manifest.mpd` or a
//!   `master.m3u8`, read at each request), the origin's live channels, the edges' URLs and where
//!   the page loads the player libraries from;
//! - `/players/dash.all.min.js`, `/players/hls.min.js`: the libraries, when a local players
//!   directory is configured (otherwise the page loads them from their public CDN).
//!
//! The page is served apart from the edges, so the browser fetches manifests and segments
//! cross-origin, with the CORS headers the edges pass on from the origin. The page itself is
//! plain HTTP; with a TLS stack the browser must trust the stack's certificate to reach the edges.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use common::http::{empty, full, Body, ServerHandle, ServerLimits};
use hyper::body::Bytes;
use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Response, StatusCode};

/// The page itself.
pub const PAGE: &str = include_str!("watch.html");

/// dash.js from its public CDN, when no local players directory is configured.
pub const DASHJS_CDN: &str =
    "https://cdn.jsdelivr.net/npm/dashjs@5.2.1/dist/modern/umd/dash.all.min.js";
/// hls.js from its public CDN, when no local players directory is configured.
pub const HLSJS_CDN: &str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js";

/// Where each library may sit in a players directory: at its top, or where npm installs it (so a
/// `node_modules` directory works as it is).
const DASHJS_FILES: [&str; 2] = ["dash.all.min.js", "dashjs/dist/modern/umd/dash.all.min.js"];
const HLSJS_FILES: [&str; 2] = ["hls.min.js", "hls.js/dist/hls.min.js"];

/// Titles listed at most (the folder is read at each catalog request).
const MAX_TITLES: usize = 1000;

/// What the watch server serves.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub listen: SocketAddr,
    /// The origin's content root: titles are the folders of `DATA/vod/`.
    pub data: PathBuf,
    /// The origin's live channels.
    pub channels: Vec<String>,
    /// (name, base URL) of each edge the page may play through.
    pub edges: Vec<(String, String)>,
    /// A directory holding `dash.all.min.js` and `hls.min.js` (or a `node_modules` holding the
    /// `dashjs` and `hls.js` packages); without it the page uses the public CDN.
    pub players_dir: Option<PathBuf>,
}

/// The player libraries served from a local directory, read once at start.
struct Players {
    dashjs: Bytes,
    hlsjs: Bytes,
}

struct State {
    data: PathBuf,
    channels: Vec<String>,
    edges: Vec<(String, String)>,
    players: Option<Players>,
}

/// A running watch server.
pub struct Watch {
    server: ServerHandle,
}

impl Watch {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `http://ADDR/`, the page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.local_addr())
    }

    /// Stops accepting and lets in-flight requests finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Binds, reads the local player libraries (if configured) and starts serving.
pub async fn spawn(config: WatchConfig) -> Result<Watch> {
    let players = match &config.players_dir {
        Some(dir) => Some(Players {
            dashjs: read_first(dir, &DASHJS_FILES)?,
            hlsjs: read_first(dir, &HLSJS_FILES)?,
        }),
        None => None,
    };
    let state = std::sync::Arc::new(State {
        data: config.data,
        channels: config.channels,
        edges: config.edges,
        players,
    });
    let listener = common::http::bind(config.listen).await?;
    let limits = ServerLimits {
        max_connections: 256,
        ..ServerLimits::default()
    };
    let server = common::http::serve(listener, limits, Default::default(), move |req, _| {
        let state = state.clone();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        async move { respond(&state, &method, &path).await }
    })?;
    Ok(Watch { server })
}

/// The first of `names` under `dir` that exists, read whole.
fn read_first(dir: &Path, names: &[&str]) -> Result<Bytes> {
    for name in names {
        let path = dir.join(name);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            return Ok(Bytes::from(bytes));
        }
    }
    bail!(
        "the players directory {} holds none of {}",
        dir.display(),
        names.join(", ")
    )
}

/// The response to `method` on `path` (the query is ignored).
async fn respond(state: &State, method: &Method, path: &str) -> Response<Body> {
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let mut resp = match path {
        "/" | "/index.html" => ok("text/html; charset=utf-8", "no-cache", PAGE),
        "/catalog.json" => {
            let data = state.data.clone();
            let titles = tokio::task::spawn_blocking(move || list_titles(&data))
                .await
                .unwrap_or_default();
            let body = catalog(state, &titles).to_string();
            ok("application/json", "no-store", body)
        }
        "/players/dash.all.min.js" => match &state.players {
            Some(p) => ok("text/javascript", "max-age=3600", p.dashjs.clone()),
            None => not_found(),
        },
        "/players/hls.min.js" => match &state.players {
            Some(p) => ok("text/javascript", "max-age=3600", p.hlsjs.clone()),
            None => not_found(),
        },
        _ => not_found(),
    };
    resp.headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if head {
        *resp.body_mut() = empty();
    }
    resp
}

fn ok(
    content_type: &'static str,
    cache_control: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let body: Bytes = body.into();
    let len = body.len();
    let mut resp = Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = ok("text/plain; charset=utf-8", "no-store", body);
    *resp.status_mut() = status;
    resp
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// A title of the content root and the playlists it has.
#[derive(Debug, Clone, PartialEq)]
struct Title {
    name: String,
    dash: bool,
    hls: bool,
}

/// The folders of `DATA/vod/` with a manifest or a multivariant playlist, by name, whose names
/// are plain path segments (as the origin serves them). A missing folder lists nothing.
fn list_titles(data: &Path) -> Vec<Title> {
    let Ok(entries) = std::fs::read_dir(data.join("vod")) else {
        return Vec::new();
    };
    let mut titles: Vec<Title> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !plain_segment(&name) {
                return None;
            }
            let dir = e.path();
            let dash = dir.join("manifest.mpd").is_file();
            let hls = dir.join("master.m3u8").is_file();
            (dash || hls).then_some(Title { name, dash, hls })
        })
        .take(MAX_TITLES)
        .collect();
    titles.sort_by(|a, b| a.name.cmp(&b.name));
    titles
}

/// A name that is one URL path segment as it is: ASCII letters, digits, `-`, `_`, `.`, not
/// starting with a dot.
fn plain_segment(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The catalog the page reads: titles and channels with their playlist paths, the edges, and
/// the player libraries' URLs.
fn catalog(state: &State, titles: &[Title]) -> serde_json::Value {
    let titles: Vec<serde_json::Value> = titles
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "dash": t.dash.then(|| format!("/vod/{}/manifest.mpd", t.name)),
                "hls": t.hls.then(|| format!("/vod/{}/master.m3u8", t.name)),
            })
        })
        .collect();
    let channels: Vec<serde_json::Value> = state
        .channels
        .iter()
        .filter(|c| plain_segment(c))
        .map(|c| {
            serde_json::json!({
                "name": c,
                "dash": format!("/live/{c}/manifest.mpd"),
                "hls": format!("/live/{c}/master.m3u8"),
            })
        })
        .collect();
    let edges: Vec<serde_json::Value> = state
        .edges
        .iter()
        .map(|(name, url)| serde_json::json!({ "name": name, "url": url }))
        .collect();
    let (dash, hls) = match state.players {
        Some(_) => ("players/dash.all.min.js", "players/hls.min.js"),
        None => (DASHJS_CDN, HLSJS_CDN),
    };
    serde_json::json!({
        "titles": titles,
        "channels": channels,
        "edges": edges,
        "players": { "dash": dash, "hls": hls },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(players: bool) -> State {
        State {
            data: PathBuf::from("/nonexistent"),
            channels: vec!["news".into(), "../x".into()],
            edges: vec![("region1".into(), "http://127.0.1.1:8080".into())],
            players: players.then(|| Players {
                dashjs: Bytes::from_static(b"dash"),
                hlsjs: Bytes::from_static(b"hls"),
            }),
        }
    }

    /// A fresh scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("cdn-watch-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn lists_titles_with_a_playlist_and_plain_names_only() {
        let dir = Scratch::new("titles");
        let vod = dir.path().join("vod");
        for (name, files) in [
            ("b", &["manifest.mpd", "master.m3u8"][..]),
            ("a", &["master.m3u8"][..]),
            ("empty", &[][..]),
            (".hidden", &["manifest.mpd"][..]),
            ("sp ace", &["manifest.mpd"][..]),
        ] {
            std::fs::create_dir_all(vod.join(name)).unwrap();
            for f in files {
                std::fs::write(vod.join(name).join(f), "").unwrap();
            }
        }
        let titles = list_titles(dir.path());
        assert_eq!(
            titles,
            vec![
                Title {
                    name: "a".into(),
                    dash: false,
                    hls: true
                },
                Title {
                    name: "b".into(),
                    dash: true,
                    hls: true
                },
            ]
        );
        assert!(list_titles(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn catalog_names_paths_edges_and_players() {
        let titles = [Title {
            name: "demo".into(),
            dash: true,
            hls: false,
        }];
        let c = catalog(&state(false), &titles);
        assert_eq!(c["titles"][0]["dash"], "/vod/demo/manifest.mpd");
        assert!(c["titles"][0]["hls"].is_null());
        assert_eq!(c["channels"].as_array().unwrap().len(), 1);
        assert_eq!(c["channels"][0]["hls"], "/live/news/master.m3u8");
        assert_eq!(c["edges"][0]["url"], "http://127.0.1.1:8080");
        assert_eq!(c["players"]["dash"], DASHJS_CDN);
        let c = catalog(&state(true), &titles);
        assert_eq!(c["players"]["hls"], "players/hls.min.js");
    }

    #[test]
    fn a_players_directory_without_the_libraries_is_refused() {
        let dir = Scratch::new("players");
        let e = read_first(dir.path(), &DASHJS_FILES).unwrap_err();
        assert!(e.to_string().contains("dash.all.min.js"), "{e}");
        let nested = dir.path().join("hls.js/dist");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("hls.min.js"), "x").unwrap();
        assert_eq!(read_first(dir.path(), &HLSJS_FILES).unwrap(), "x");
    }

    async fn status_and_type(s: &State, method: Method, path: &str) -> (u16, String) {
        let r = respond(s, &method, path).await;
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (r.status().as_u16(), ct)
    }

    #[tokio::test]
    async fn routes_answer_4xx_to_what_they_do_not_serve() {
        let local = state(true);
        let cdn = state(false);
        assert_eq!(
            status_and_type(&local, Method::GET, "/").await,
            (200, "text/html; charset=utf-8".into())
        );
        assert_eq!(
            status_and_type(&local, Method::HEAD, "/catalog.json").await,
            (200, "application/json".into())
        );
        assert_eq!(
            status_and_type(&local, Method::GET, "/players/hls.min.js")
                .await
                .0,
            200
        );
        assert_eq!(
            status_and_type(&cdn, Method::GET, "/players/hls.min.js")
                .await
                .0,
            404
        );
        for path in [
            "/../etc/passwd",
            "/players/",
            "/players/x.js",
            "/vod/demo/manifest.mpd",
            "",
        ] {
            assert_eq!(
                status_and_type(&local, Method::GET, path).await.0,
                404,
                "{path}"
            );
        }
        let head = respond(&local, &Method::HEAD, "/").await;
        assert_eq!(
            head.headers()[CONTENT_LENGTH],
            PAGE.len().to_string().as_str()
        );
        let r = respond(&local, &Method::POST, "/").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
