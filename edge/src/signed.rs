//! Signed URLs: path prefixes an edge serves only to requests carrying a valid, unexpired token.
//!
//! The token rides in the path, as a leading `/t/<token>` segment, so that players follow it
//! without knowing about it: a manifest fetched as `/t/<token>/vod/demo/manifest.mpd` names its
//! segments relative to that URL (`v0/seg-00001.m4s`), and they resolve under the same
//! `/t/<token>/vod/demo/`. One token therefore covers a whole title: it signs a path prefix of
//! `depth` segments (`/vod/demo/` is depth 2), and any path under that prefix is served.
//!
//! Token: `<key id>.<expires>.<depth>.<mac>`: `expires` in Unix seconds, `mac` the lowercase hex
//! HMAC-SHA-256, under the key named by the id, of `"<key id>\n<expires>\n<prefix>"`. Several keys
//! may be configured at once, so that keys rotate without invalidating the tokens already out.
//!
//! The check runs before the cache and before any upstream request; the token is stripped, so it
//! never enters the cache key or an upstream request, and a request under a protected prefix
//! without a valid token is refused (403) without touching either. The MAC is compared in
//! constant time (`aws_lc_rs::hmac::verify`).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use aws_lc_rs::hmac;
use serde::Deserialize;

/// The path segment that introduces a token.
pub const TOKEN_SEGMENT: &str = "/t/";

/// The `[signed_urls]` section of an edge's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlsConfig {
    /// Path prefixes that need a token (e.g. `/vod/premium/`).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// The keys tokens may be signed with, by id; each secret is read from its file.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// One signing key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The id tokens name it by (letters, digits, `-` and `_`).
    pub id: String,
    /// A file holding the secret (its bytes, without a trailing newline; at least 16 bytes).
    pub file: PathBuf,
}

/// Why a request was refused, also the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Under a protected prefix without a token.
    Missing,
    /// The token does not parse, or the path is not under the prefix it signs.
    Malformed,
    /// The token names a key this edge does not have.
    UnknownKey,
    /// The token's time is past.
    Expired,
    /// The MAC does not match (tampered path, prefix, expiry or key).
    BadSignature,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::Missing,
        Refusal::Malformed,
        Refusal::UnknownKey,
        Refusal::Expired,
        Refusal::BadSignature,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Expired => "expired",
            Refusal::BadSignature => "bad_signature",
        }
    }
}

/// The outcome of checking a request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No token and not under a protected prefix: serve as is.
    Open,
    /// A valid token: serve this target (path and query), the token removed.
    Valid(String),
    /// Refuse with 403.
    Refused(Refusal),
}

/// The verifier of one edge: protected prefixes and keys.
pub struct SignedUrls {
    prefixes: Vec<String>,
    keys: Vec<(String, hmac::Key)>,
}

impl std::fmt::Debug for SignedUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SignedUrls")
            .field("prefixes", &self.prefixes)
            .field("keys", &ids)
            .finish()
    }
}

impl SignedUrls {
    /// Reads the keys of `config`; errors name the key and its file.
    pub fn from_config(config: &SignedUrlsConfig) -> Result<SignedUrls> {
        for p in &config.prefixes {
            if !p.starts_with('/') {
                bail!("signed_urls prefix `{p}` must start with /");
            }
        }
        let mut keys = Vec::new();
        for k in &config.keys {
            check_key_id(&k.id)?;
            let secret =
                read_secret(&k.file).with_context(|| format!("signed_urls key `{}`", k.id))?;
            if keys.iter().any(|(id, _)| *id == k.id) {
                bail!("signed_urls key `{}` is configured twice", k.id);
            }
            keys.push((k.id.clone(), hmac::Key::new(hmac::HMAC_SHA256, &secret)));
        }
        if !config.prefixes.is_empty() && keys.is_empty() {
            bail!("signed_urls has protected prefixes but no key");
        }
        Ok(SignedUrls {
            prefixes: config.prefixes.clone(),
            keys,
        })
    }

    /// Checks a request target (path and optional query) at `now`.
    pub fn check(&self, target: &str, now: SystemTime) -> Check {
        let Some(after) = target.strip_prefix(TOKEN_SEGMENT) else {
            return if self.prefixes.iter().any(|p| target.starts_with(p.as_str())) {
                Check::Refused(Refusal::Missing)
            } else {
                Check::Open
            };
        };
        let Some(slash) = after.find('/') else {
            return Check::Refused(Refusal::Malformed);
        };
        let (token, rest) = after.split_at(slash);
        let Some(token) = Token::parse(token) else {
            return Check::Refused(Refusal::Malformed);
        };
        let path = rest.split('?').next().unwrap_or(rest);
        let Some(prefix) = prefix_of(path, token.depth) else {
            return Check::Refused(Refusal::Malformed);
        };
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == token.key_id) else {
            return Check::Refused(Refusal::UnknownKey);
        };
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if token.expires < now_secs {
            return Check::Refused(Refusal::Expired);
        }
        let message = message(token.key_id, token.expires, prefix);
        if hmac::verify(key, message.as_bytes(), &token.mac).is_err() {
            return Check::Refused(Refusal::BadSignature);
        }
        Check::Valid(rest.to_string())
    }
}

/// The token for `prefix` (a path ending in `/`, e.g. `/vod/demo/`), valid until `expires`.
pub fn token(key_id: &str, secret: &[u8], prefix: &str, expires: u64) -> Result<String> {
    check_key_id(key_id)?;
    if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix == "/" {
        bail!("the signed prefix `{prefix}` must be a directory below the root, like /vod/demo/");
    }
    let depth = prefix.trim_matches('/').split('/').count();
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, message(key_id, expires, prefix).as_bytes());
    Ok(format!("{key_id}.{expires}.{depth}.{}", hex(tag.as_ref())))
}

/// Signs `url` (http or https, absolute): the token covers the URL's directory (the title), and
/// is inserted as the path's first segment.
pub fn sign_url(url: &str, key_id: &str, secret: &[u8], expires: u64) -> Result<String> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid URL `{url}`"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        bail!("`{url}` is not an absolute http:// or https:// URL");
    };
    let path = uri.path();
    if path.starts_with(TOKEN_SEGMENT) {
        bail!("`{url}` is signed already");
    }
    let dir = match path.rfind('/') {
        Some(i) if i > 0 => &path[..=i],
        _ => bail!("`{url}` names no directory to sign (the token covers the URL's folder)"),
    };
    let token = token(key_id, secret, dir, expires)?;
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(format!("{scheme}://{authority}/t/{token}{path}{query}"))
}

/// Reads a secret: the file's bytes without trailing whitespace, at least 16 bytes.
pub fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let mut bytes =
        std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
        bytes.pop();
    }
    if bytes.len() < 16 {
        bail!(
            "key file {} holds {} bytes; a key needs at least 16",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

struct Token<'a> {
    key_id: &'a str,
    expires: u64,
    depth: usize,
    mac: Vec<u8>,
}

impl<'a> Token<'a> {
    fn parse(text: &'a str) -> Option<Token<'a>> {
        let mut parts = text.split('.');
        let key_id = parts.next()?;
        let expires = parts.next()?;
        let depth = parts.next()?;
        let mac = parts.next()?;
        if parts.next().is_some() || check_key_id(key_id).is_err() {
            return None;
        }
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(expires) || !digits(depth) || mac.len() != 64 {
            return None;
        }
        Some(Token {
            key_id,
            expires: expires.parse().ok()?,
            depth: depth.parse().ok().filter(|d| (1..=64).contains(d))?,
            mac: unhex(mac)?,
        })
    }
}

/// The first `depth` segments of `path` as a directory (`/a/b/`), when the path has more.
fn prefix_of(path: &str, depth: usize) -> Option<&str> {
    let mut slashes = path.match_indices('/').map(|(i, _)| i);
    if slashes.next() != Some(0) {
        return None;
    }
    let end = slashes.nth(depth - 1)?;
    let prefix = &path[..=end];
    // Empty, `.` and `..` segments could make a prefix mean another path.
    let clean = prefix
        .trim_matches('/')
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    (clean && path.len() > prefix.len()).then_some(prefix)
}

fn message(key_id: &str, expires: u64, prefix: &str) -> String {
    format!("{key_id}\n{expires}\n{prefix}")
}

fn check_key_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("key id `{id}` must be 1 to 64 letters, digits, - or _");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(*p.get(1)?)?))
        .collect()
}

/// Arguments of `cdn sign`.
#[derive(Debug, Clone, clap::Args)]
pub struct SignArgs {
    /// The URL to sign (its folder is what the token covers, e.g. a title's manifest URL).
    pub url: String,
    /// The file holding the key's secret (at least 16 bytes).
    #[arg(long)]
    pub key_file: PathBuf,
    /// The key's id, as configured on the edges.
    #[arg(long, default_value = "k1")]
    pub key_id: String,
    /// Seconds the signed URL stays valid.
    #[arg(long, default_value_t = 300)]
    pub ttl: u64,
}

/// `cdn sign`: prints the signed URL.
pub fn run_sign(args: SignArgs) -> Result<()> {
    let secret = read_secret(&args.key_file)?;
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs()
        + args.ttl;
    println!("{}", sign_url(&args.url, &args.key_id, &secret, expires)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const K1: &[u8] = b"0123456789abcdef-first-key";
    const K2: &[u8] = b"0123456789abcdef-second-key";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verifier(keys: &[(&str, &[u8])]) -> (SignedUrls, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys
            .iter()
            .map(|(id, secret)| {
                let file = dir.path().join(id);
                std::fs::write(&file, [*secret, b"\n"].concat()).unwrap();
                KeyConfig {
                    id: id.to_string(),
                    file,
                }
            })
            .collect();
        let config = SignedUrlsConfig {
            prefixes: vec!["/vod/".into()],
            keys,
        };
        (SignedUrls::from_config(&config).unwrap(), dir)
    }

    #[test]
    fn a_token_covers_its_title_and_nothing_else() {
        let (v, _dir) = verifier(&[("k1", K1)]);
        let t = token("k1", K1, "/vod/demo/", 1000).unwrap();
        for path in ["/vod/demo/manifest.mpd", "/vod/demo/v0/seg-00001.m4s?x=1"] {
            assert_eq!(
                v.check(&format!("/t/{t}{path}"), at(999)),
                Check::Valid(path.to_string())
            );
        }
        // Another title, the prefix itself, traversal: refused.
        assert_eq!(
            v.check(&format!("/t/{t}/vod/other/manifest.mpd"), at(999)),
            Check::Refused(Refusal::BadSignature)
        );
        assert_eq!(
            v.check(&format!("/t/{t}/vod/demo/"), at(999)),
            Check::Refused(Refusal::Malformed)
        );
        assert_eq!(
            v.check(&format!("/t/{t}/vod/../x/a.mpd"), at(999)),
            Check::Refused(Refusal::Malformed)
        );
    }

    #[test]
    fn missing_expired_tampered_and_unknown_tokens_are_refused() {
        let (v, _dir) = verifier(&[("k1", K1)]);
        let path = "/vod/demo/manifest.mpd";
        assert_eq!(v.check(path, at(0)), Check::Refused(Refusal::Missing));
        assert_eq!(v.check("/live/demo/manifest.mpd", at(0)), Check::Open);
        let t = token("k1", K1, "/vod/demo/", 1000).unwrap();
        assert_eq!(
            v.check(&format!("/t/{t}{path}"), at(1001)),
            Check::Refused(Refusal::Expired)
        );
        // A later expiry written over a valid MAC.
        let later = t.replacen(".1000.", ".9999.", 1);
        assert_eq!(
            v.check(&format!("/t/{later}{path}"), at(1001)),
            Check::Refused(Refusal::BadSignature)
        );
        // Signed with another secret under the same id; an id this edge does not have.
        let forged = token("k1", K2, "/vod/demo/", 1000).unwrap();
        assert_eq!(
            v.check(&format!("/t/{forged}{path}"), at(0)),
            Check::Refused(Refusal::BadSignature)
        );
        let other = token("k9", K1, "/vod/demo/", 1000).unwrap();
        assert_eq!(
            v.check(&format!("/t/{other}{path}"), at(0)),
            Check::Refused(Refusal::UnknownKey)
        );
        for bad in [
            "/t/",
            "/t/x/vod/demo/a",
            "/t/k1.1.1.zz/vod/demo/a",
            "/t/k1.1000.2",
        ] {
            assert_eq!(
                v.check(bad, at(0)),
                Check::Refused(Refusal::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_while_their_key_is_configured() {
        let old = token("k1", K1, "/vod/demo/", 1000).unwrap();
        let new = token("k2", K2, "/vod/demo/", 1000).unwrap();
        let (both, _a) = verifier(&[("k1", K1), ("k2", K2)]);
        let (only_new, _b) = verifier(&[("k2", K2)]);
        let path = "/vod/demo/manifest.mpd";
        for t in [&old, &new] {
            assert!(matches!(
                both.check(&format!("/t/{t}{path}"), at(0)),
                Check::Valid(_)
            ));
        }
        assert_eq!(
            only_new.check(&format!("/t/{old}{path}"), at(0)),
            Check::Refused(Refusal::UnknownKey)
        );
    }

    #[test]
    fn sign_url_inserts_the_token_before_the_path() {
        let url = sign_url(
            "http://edge.test:8080/vod/demo/manifest.mpd?a=1",
            "k1",
            K1,
            1000,
        )
        .unwrap();
        let t = token("k1", K1, "/vod/demo/", 1000).unwrap();
        assert_eq!(
            url,
            format!("http://edge.test:8080/t/{t}/vod/demo/manifest.mpd?a=1")
        );
        assert!(sign_url("/vod/demo/manifest.mpd", "k1", K1, 1).is_err());
        assert!(sign_url("http://h/manifest.mpd", "k1", K1, 1).is_err());
        assert!(sign_url("http://h/a/b.mpd", "bad id", K1, 1).is_err());
    }

    #[test]
    fn configuration_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        let config = |file: PathBuf| SignedUrlsConfig {
            prefixes: vec!["/vod/".into()],
            keys: vec![KeyConfig {
                id: "k1".into(),
                file,
            }],
        };
        let err = format!("{:#}", SignedUrls::from_config(&config(short)).unwrap_err());
        assert!(err.contains("at least 16") && err.contains("k1"), "{err}");
        let err = format!(
            "{:#}",
            SignedUrls::from_config(&config(dir.path().join("none"))).unwrap_err()
        );
        assert!(err.contains("cannot read key file"), "{err}");
        let no_keys = SignedUrlsConfig {
            prefixes: vec!["/vod/".into()],
            keys: vec![],
        };
        assert!(SignedUrls::from_config(&no_keys).is_err());
    }
}
