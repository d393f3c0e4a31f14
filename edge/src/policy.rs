//! The HTTP caching rules of a shared cache (RFC 9111, RFC 9213 CDN-Cache-Control, RFC 5861 stale
//! directives) as pure functions over headers and times: what a fetched response may become (one
//! [`Cacheable`] verdict: pass, share without storing, or store with this freshness), how long it
//! stays fresh, how old it is, when it may be served stale, how a 304 refreshes it, and how a
//! client's own conditional and Range requests are answered from it. No I/O and no clock reads
//! here: every function that needs the time takes it (`now`, `request_time`, `response_time`).
//!
//! Cache-Control is an RFC 9110 list parsed by hand (`common::list::split`: quoted strings may
//! hold commas, the first occurrence of a directive wins). CDN-Cache-Control is a Structured
//! Fields dictionary (RFC 9213 section 2.1), parsed with `sfv`: a field that is not a valid
//! dictionary, or in which a directive this cache knows has the wrong type (`max-age="60"`,
//! `no-store=1`), is ignored as a whole and Cache-Control applies; a later duplicate key replaces
//! an earlier one; parameters are ignored. An `Age` list counts its first member; an invalid
//! `Age` makes the response stale. RFC 9111's response delay is counted as age only for a
//! response dated before its request was sent: one the upstream produced for the request
//! after holding it (a blocking playlist reload) is as old as its Date and Age say.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::precondition::{self, Decision, Validators};
use common::range::Ranges;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// Status codes a cache may store without explicit freshness (RFC 9110 section 15.1).
const HEURISTICALLY_CACHEABLE: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Header fields a 304 must not overwrite in the stored response (RFC 9111 section 3.2): they
/// describe the stored body, which the 304 does not carry.
const NOT_REFRESHED: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

/// The tunable parts of the policy.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Fraction of (Date - Last-Modified) used as heuristic freshness.
    pub heuristic_fraction: f64,
    /// Upper bound of heuristic freshness.
    pub heuristic_max: Duration,
    /// stale-while-revalidate window when the response names none.
    pub default_stale_while_revalidate: Duration,
    /// stale-if-error window when the response names none.
    pub default_stale_if_error: Duration,
    /// How long a stale entry with a validator is kept for conditional revalidation.
    pub keep: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(24 * 3600),
            default_stale_while_revalidate: Duration::ZERO,
            default_stale_if_error: Duration::from_secs(300),
            keep: Duration::from_secs(3600),
        }
    }
}

/// A parsed list of cache directives (Cache-Control or CDN-Cache-Control), names lowercased.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    items: Vec<(String, Option<String>)>,
}

impl Directives {
    /// Parses every value of a Cache-Control field; quoted strings may contain commas.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Directives {
        let mut items = Vec::new();
        for value in values {
            let Ok(text) = value.to_str() else { continue };
            for part in common::list::split(text, common::list::Quoting::QuotedString) {
                let (name, arg) = match part.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
                    None => (part.trim(), None),
                };
                if name.is_empty() {
                    continue;
                }
                items.push((name.to_ascii_lowercase(), arg));
            }
        }
        Directives { items }
    }

    /// Parses CDN-Cache-Control as RFC 9213 section 2.1 defines it: the field lines joined with
    /// commas form one Structured Fields dictionary. `None` when the field is absent, empty, or
    /// not a valid dictionary (it is then ignored as a whole). A directive without a value is
    /// the boolean true; integers, strings and tokens keep their text; any other value counts
    /// as an argument that is not a number (like `max-age=soon` in Cache-Control).
    pub fn parse_dictionary<'a>(
        values: impl IntoIterator<Item = &'a HeaderValue>,
    ) -> Option<Directives> {
        use sfv::{BareItem, ListEntry, Parser};
        let mut values = values.into_iter();
        let first = values.next()?;
        let joined;
        let input = match values.next() {
            None => first.as_bytes(),
            Some(second) => {
                let mut all = first.as_bytes().to_vec();
                for v in std::iter::once(second).chain(values) {
                    all.extend_from_slice(b", ");
                    all.extend_from_slice(v.as_bytes());
                }
                joined = all;
                &joined[..]
            }
        };
        let dictionary = Parser::new(input).parse::<sfv::Dictionary>().ok()?;
        if dictionary.is_empty() {
            return None;
        }
        let mut items = Vec::with_capacity(dictionary.len());
        for (key, entry) in dictionary {
            let name = key.as_str();
            let item = match entry {
                ListEntry::Item(item) => Some(item.bare_item),
                ListEntry::InnerList(_) => None,
            };
            // A directive this cache knows must have its type (RFC 9213 section 2.1: the
            // directives keep the syntax they have in Cache-Control); a wrong one invalidates the
            // field as a whole. Unknown directives may have any value.
            let arg = match (directive_type(name), item) {
                (SfType::Integer, Some(BareItem::Integer(i))) if i64::from(i) >= 0 => {
                    Some(i64::from(i).to_string())
                }
                (SfType::Flag | SfType::FlagOrFields, Some(BareItem::Boolean(true))) => None,
                // `?0` is the directive's absence.
                (SfType::Flag | SfType::FlagOrFields, Some(BareItem::Boolean(false))) => continue,
                (SfType::FlagOrFields, Some(BareItem::String(s))) => Some(s.as_str().to_string()),
                (SfType::Unknown, Some(BareItem::Boolean(true))) => None,
                (SfType::Unknown, _) => Some(String::new()),
                _ => return None,
            };
            items.push((name.to_string(), arg));
        }
        Some(Directives { items })
    }

    /// True when the directive is present (with or without an argument).
    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| n == name)
    }

    /// The first occurrence's argument as delta-seconds (RFC 9111 section 4.2.1: the first
    /// occurrence wins). An argument that is not a number counts as 0, the safe reading.
    pub fn seconds(&self, name: &str) -> Option<Duration> {
        let (_, arg) = self.items.iter().find(|(n, _)| n == name)?;
        Some(
            arg.as_deref()
                .and_then(delta_seconds)
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// The Structured Fields type a CDN-Cache-Control directive must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SfType {
    /// delta-seconds: a non-negative Integer.
    Integer,
    /// No argument: Boolean true (`?0` means absent).
    Flag,
    /// No argument, or a String listing field names (`no-cache`, `private`).
    FlagOrFields,
    /// A directive this cache does not know: ignored, whatever its value.
    Unknown,
}

fn directive_type(name: &str) -> SfType {
    match name {
        "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error" => SfType::Integer,
        "no-store" | "public" | "must-revalidate" | "proxy-revalidate" | "no-transform"
        | "immutable" | "must-understand" => SfType::Flag,
        "no-cache" | "private" => SfType::FlagOrFields,
        _ => SfType::Unknown,
    }
}

/// The largest delta-seconds value kept (RFC 9111 section 1.2.2): larger ones, however many
/// digits they have, count as this, so that sums of ages and lifetimes never overflow.
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The Age field's value (RFC 9111 section 5.1): the first member of a list (a cache that meets
/// `Age: 5, 10` uses 5); an invalid value (`old`, `-1`, `1.5`) makes the response as old as a
/// response can be, so that it is stale at once rather than trusted as new. No field: 0.
fn age_field(headers: &HeaderMap) -> Duration {
    let Some(value) = headers.get(header::AGE) else {
        return Duration::ZERO;
    };
    let first = value
        .to_str()
        .ok()
        .and_then(|v| v.split(',').next())
        .and_then(delta_seconds);
    first.unwrap_or(Duration::from_secs(MAX_DELTA_SECONDS))
}

/// Parses delta-seconds (`1*DIGIT`), clamped to [`MAX_DELTA_SECONDS`]; `None` when the text is
/// not a non-negative integer.
pub fn delta_seconds(text: &str) -> Option<Duration> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = t.parse::<u64>().unwrap_or(u64::MAX).min(MAX_DELTA_SECONDS);
    Some(Duration::from_secs(secs))
}

fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut escaped = false;
        for c in inner.chars() {
            if escaped || c != '\\' {
                out.push(c);
                escaped = false;
            } else {
                escaped = true;
            }
        }
        out
    } else {
        v.to_string()
    }
}

fn header_time(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The directives this cache obeys for a response: CDN-Cache-Control when present and valid
/// (RFC 9213: it then replaces Cache-Control and Expires for this cache), else Cache-Control.
#[derive(Debug, Clone)]
pub struct ResponseControls {
    pub directives: Directives,
    /// True when the directives came from CDN-Cache-Control.
    pub targeted: bool,
}

impl ResponseControls {
    pub fn from_headers(headers: &HeaderMap) -> ResponseControls {
        if let Some(cdn) = Directives::parse_dictionary(headers.get_all("cdn-cache-control")) {
            return ResponseControls {
                directives: cdn,
                targeted: true,
            };
        }
        ResponseControls {
            directives: Directives::parse(headers.get_all(header::CACHE_CONTROL)),
            targeted: false,
        }
    }

    /// True when the response states its own lifetime (s-maxage, max-age, or, without
    /// CDN-Cache-Control, Expires); [`ResponseControls::explicit_lifetime`] is then `Some`.
    fn has_explicit_lifetime(&self, headers: &HeaderMap) -> bool {
        let d = &self.directives;
        d.has("s-maxage")
            || d.has("max-age")
            || (!self.targeted && headers.contains_key(header::EXPIRES))
    }

    fn explicit_lifetime(
        &self,
        headers: &HeaderMap,
        response_time: SystemTime,
    ) -> Option<Duration> {
        let d = &self.directives;
        if let Some(s) = d.seconds("s-maxage") {
            return Some(s);
        }
        if let Some(s) = d.seconds("max-age") {
            return Some(s);
        }
        if self.targeted {
            return None;
        }
        if headers.contains_key(header::EXPIRES) {
            // An invalid Expires (e.g. "0") means already expired.
            let Some(expires) = header_time(headers, header::EXPIRES) else {
                return Some(Duration::ZERO);
            };
            let date = header_time(headers, header::DATE).unwrap_or(response_time);
            return Some(expires.duration_since(date).unwrap_or(Duration::ZERO));
        }
        None
    }
}

/// The request's own cache directives (Cache-Control, or Pragma: no-cache without it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestControls {
    pub no_cache: bool,
    pub no_store: bool,
    pub max_age: Option<Duration>,
    pub min_fresh: Option<Duration>,
    /// `Some(None)`: any staleness accepted; `Some(Some(d))`: up to `d`.
    pub max_stale: Option<Option<Duration>>,
    pub only_if_cached: bool,
}

impl RequestControls {
    pub fn from_headers(headers: &HeaderMap) -> RequestControls {
        let d = Directives::parse(headers.get_all(header::CACHE_CONTROL));
        let pragma_no_cache = !headers.contains_key(header::CACHE_CONTROL)
            && headers.get_all(header::PRAGMA).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|s| s.to_ascii_lowercase().contains("no-cache"))
            });
        let max_stale = d
            .items
            .iter()
            .find(|(n, _)| n == "max-stale")
            .and_then(|(_, a)| match a.as_deref() {
                // max-stale alone: any staleness is acceptable.
                None => Some(None),
                // A malformed argument grants nothing: the directive is ignored.
                Some(a) => delta_seconds(a).map(Some),
            });
        RequestControls {
            no_cache: d.has("no-cache") || pragma_no_cache,
            no_store: d.has("no-store"),
            max_age: d.seconds("max-age"),
            min_fresh: d.seconds("min-fresh"),
            max_stale,
            only_if_cached: d.has("only-if-cached"),
        }
    }
}

/// Why a response may not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    NoFreshnessNorValidator,
}

/// RFC 9111 section 3 for a shared cache, for the response to a GET. Choices beyond the RFC:
/// responses carrying Set-Cookie are not stored (a shared cache must not hand one user's cookie
/// to another), and a response with neither explicit freshness, `public`, nor a validator is not
/// stored (no default caching).
pub fn storable(
    request_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(), NotStorable> {
    storable_under(
        &ResponseControls::from_headers(headers),
        request_headers,
        status,
        headers,
    )
}

fn storable_under(
    rc: &ResponseControls,
    request_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(), NotStorable> {
    let d = &rc.directives;
    let code = status.as_u16();
    if status.is_informational() || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    if d.has("no-store") {
        return Err(NotStorable::NoStore);
    }
    if d.has("private") {
        return Err(NotStorable::Private);
    }
    if request_headers.contains_key(header::AUTHORIZATION)
        && !(d.has("public") || d.has("must-revalidate") || d.has("s-maxage"))
    {
        return Err(NotStorable::Authorization);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if vary_names(headers).is_none() {
        return Err(NotStorable::VaryStar);
    }
    let explicit = rc.has_explicit_lifetime(headers);
    let validator =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let by_default = HEURISTICALLY_CACHEABLE.contains(&code);
    if explicit || (d.has("public") && (by_default || validator)) || (by_default && validator) {
        Ok(())
    } else if !by_default && !explicit {
        Err(NotStorable::Status)
    } else {
        Err(NotStorable::NoFreshnessNorValidator)
    }
}

/// What a shared cache may do with a response it fetched for a GET (the policy's one verdict on
/// a response, like Pingora's `resp_cacheable`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cacheable {
    /// Only the request that fetched it may have it (`private`, Set-Cookie): requests waiting
    /// for the same fetch go upstream on their own.
    Pass(NotStorable),
    /// Every request waiting for it may have it, but it is not stored.
    Share(NotStorable),
    /// Shared and stored, with this freshness.
    Store(Freshness),
}

/// The verdict on a response to a GET sent at `request_time` (with `request_headers`) and
/// received at `response_time`: [`storable`]'s rules, plus which unstorable responses must not
/// even be shared. The directives are parsed once for both questions.
pub fn cacheable(
    cfg: &PolicyConfig,
    request_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Cacheable {
    let rc = ResponseControls::from_headers(headers);
    if rc.directives.has("private") {
        return Cacheable::Pass(NotStorable::Private);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Cacheable::Pass(NotStorable::SetCookie);
    }
    match storable_under(&rc, request_headers, status, headers) {
        Ok(()) => Cacheable::Store(Freshness::under(
            cfg,
            &rc,
            status,
            headers,
            request_time,
            response_time,
        )),
        Err(why) => Cacheable::Share(why),
    }
}

/// A stored response refreshed by a 304 (RFC 9111 section 4.3.4): its merged header fields and
/// their freshness. The stored body stays.
pub fn refresh(
    cfg: &PolicyConfig,
    status: StatusCode,
    stored: &HeaderMap,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> (HeaderMap, Freshness) {
    let merged = refresh_headers(stored, not_modified);
    let freshness = Freshness::new(cfg, status, &merged, request_time, response_time);
    (merged, freshness)
}

/// Everything the cache needs to know about one stored response's freshness and age.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// Freshness lifetime (RFC 9111 section 4.2.1), or heuristic.
    pub lifetime: Duration,
    /// Corrected initial age (RFC 9111 section 4.2.3).
    pub initial_age: Duration,
    /// When the response was received.
    pub response_time: SystemTime,
    /// Window after expiry in which it is served while refreshing in the background.
    pub stale_while_revalidate: Duration,
    /// Window after expiry in which it is served when the upstream fails.
    pub stale_if_error: Duration,
    /// no-cache: every use needs a successful revalidation.
    pub no_cache: bool,
    /// must-revalidate or proxy-revalidate: never served stale.
    pub must_revalidate: bool,
    /// True when the lifetime came from the Last-Modified heuristic.
    pub heuristic: bool,
    /// True when the response has an ETag or Last-Modified to revalidate with.
    pub has_validator: bool,
}

/// What the cache may do with a stored response for a given request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it as is.
    Fresh,
    /// Serve it (stale) and refresh it in the background.
    StaleWhileRevalidate,
    /// Serve it stale without contacting the upstream (the client's max-stale allows it).
    StaleAllowedByClient,
    /// Go upstream (conditionally when it has a validator) before answering.
    Revalidate,
}

impl Freshness {
    /// Computes freshness for a response received at `response_time` for a request sent at
    /// `request_time`.
    pub fn new(
        cfg: &PolicyConfig,
        status: StatusCode,
        headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Freshness {
        let rc = ResponseControls::from_headers(headers);
        Freshness::under(cfg, &rc, status, headers, request_time, response_time)
    }

    /// [`Freshness::new`] with the response's directives already parsed.
    fn under(
        cfg: &PolicyConfig,
        rc: &ResponseControls,
        status: StatusCode,
        headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Freshness {
        let d = &rc.directives;
        let date = header_time(headers, header::DATE);
        let last_modified = header_time(headers, header::LAST_MODIFIED);
        let (lifetime, heuristic) = match rc.explicit_lifetime(headers, response_time) {
            Some(l) => (l, false),
            None => match last_modified {
                Some(lm) if HEURISTICALLY_CACHEABLE.contains(&status.as_u16()) => {
                    let since = date
                        .unwrap_or(response_time)
                        .duration_since(lm)
                        .unwrap_or(Duration::ZERO);
                    let h = since.mul_f64(cfg.heuristic_fraction.clamp(0.0, 1.0));
                    (h.min(cfg.heuristic_max), true)
                }
                _ => (Duration::ZERO, false),
            },
        };
        // Age (RFC 9111 section 4.2.3). Date has one-second resolution, so the apparent age is
        // taken between whole seconds; otherwise every response would look up to 1 s old.
        let age_value = age_field(headers);
        let apparent_age = date
            .and_then(|d| whole_seconds(response_time).duration_since(d).ok())
            .unwrap_or(Duration::ZERO);
        // The response delay stands for the time the response may have spent in transit. A
        // response dated at or after the second its request was sent was produced for that
        // request: when the upstream held the request until it could answer (a blocking
        // playlist reload, a part asked for before it exists), that wait is not age. Its
        // transit is then bounded by its Date, at the apparent age's whole-second resolution.
        // Otherwise a reload held for longer than its max-age would be stale on arrival.
        let mut response_delay = response_time
            .duration_since(request_time)
            .unwrap_or(Duration::ZERO);
        if let Some(d) = date.filter(|d| *d >= whole_seconds(request_time)) {
            let since_date = whole_seconds(response_time)
                .duration_since(d)
                .unwrap_or(Duration::ZERO);
            response_delay = response_delay.min(since_date);
        }
        let initial_age = apparent_age.max(age_value + response_delay);

        let no_cache = d.has("no-cache");
        let must_revalidate = d.has("must-revalidate") || d.has("proxy-revalidate");
        // s-maxage implies proxy-revalidate (RFC 9111 section 5.2.2.10): the configured stale
        // defaults do not apply to it, only the response's own stale directives.
        let defaults_apply = !d.has("s-maxage");
        let window = |name: &str, default: Duration| {
            if must_revalidate || no_cache {
                Duration::ZERO
            } else {
                d.seconds(name).unwrap_or(if defaults_apply {
                    default
                } else {
                    Duration::ZERO
                })
            }
        };
        Freshness {
            lifetime,
            initial_age,
            response_time,
            stale_while_revalidate: window(
                "stale-while-revalidate",
                cfg.default_stale_while_revalidate,
            ),
            stale_if_error: window("stale-if-error", cfg.default_stale_if_error),
            no_cache,
            must_revalidate,
            heuristic,
            has_validator: headers.contains_key(header::ETAG)
                || headers.contains_key(header::LAST_MODIFIED),
        }
    }

    /// Current age (RFC 9111 section 4.2.3).
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age
            + now
                .duration_since(self.response_time)
                .unwrap_or(Duration::ZERO)
    }

    /// True while the current age is below the freshness lifetime.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        !self.no_cache && self.age(now) < self.lifetime
    }

    /// Time to live in whole seconds, negative once stale (for Cache-Status `ttl`).
    pub fn ttl_secs(&self, now: SystemTime) -> i64 {
        let age = self.age(now);
        if age <= self.lifetime {
            (self.lifetime - age).as_secs() as i64
        } else {
            -(((age - self.lifetime).as_secs_f64()).ceil() as i64)
        }
    }

    fn staleness(&self, now: SystemTime) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// Decides how a stored response may answer a request with directives `req` at `now`.
    pub fn verdict(&self, req: &RequestControls, now: SystemTime) -> Verdict {
        let age = self.age(now);
        if req.no_cache || self.no_cache {
            return Verdict::Revalidate;
        }
        if req.max_age.is_some_and(|m| age > m) {
            return Verdict::Revalidate;
        }
        if req.min_fresh.is_some_and(|m| self.lifetime < age + m) {
            return Verdict::Revalidate;
        }
        if age < self.lifetime {
            return Verdict::Fresh;
        }
        if self.must_revalidate {
            return Verdict::Revalidate;
        }
        let staleness = self.staleness(now);
        match req.max_stale {
            Some(None) => return Verdict::StaleAllowedByClient,
            Some(Some(limit)) if staleness <= limit => return Verdict::StaleAllowedByClient,
            _ => {}
        }
        if staleness < self.stale_while_revalidate {
            Verdict::StaleWhileRevalidate
        } else {
            Verdict::Revalidate
        }
    }

    /// True when the response may stand in for a failed upstream (stale-if-error).
    pub fn usable_on_error(&self, now: SystemTime) -> bool {
        if self.is_fresh(now) {
            return true;
        }
        !self.must_revalidate && !self.no_cache && self.staleness(now) <= self.stale_if_error
    }

    /// How long, from `now`, the store should keep the response: its remaining freshness plus
    /// the longest window in which a stale copy is still useful.
    pub fn retention(&self, cfg: &PolicyConfig, now: SystemTime) -> Duration {
        let remaining = self.lifetime.saturating_sub(self.age(now));
        let keep = if self.has_validator {
            cfg.keep
        } else {
            Duration::ZERO
        };
        let window = self
            .stale_while_revalidate
            .max(self.stale_if_error)
            .max(keep);
        remaining + window.saturating_sub(self.staleness(now))
    }
}

/// The headers that make a conditional GET from a stored response (RFC 9111 section 4.3.1).
pub fn revalidation_headers(stored: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if let Some(etag) = stored.get(header::ETAG) {
        out.push((header::IF_NONE_MATCH, etag.clone()));
    }
    if let Some(lm) = stored.get(header::LAST_MODIFIED) {
        out.push((header::IF_MODIFIED_SINCE, lm.clone()));
    }
    out
}

/// Updates stored headers from a 304 (RFC 9111 section 4.3.4 and 3.2): each field in the 304
/// replaces the stored field of that name, except those that describe the stored body.
pub fn refresh_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut merged = stored.clone();
    for name in not_modified.keys() {
        if NOT_REFRESHED.contains(&name.as_str()) {
            continue;
        }
        merged.remove(name);
        for v in not_modified.get_all(name) {
            merged.append(name.clone(), v.clone());
        }
    }
    merged
}

/// The request header names a response varies on; `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(header::VARY) {
        let Ok(text) = v.to_str() else { continue };
        for part in text.split(',') {
            let part = part.trim();
            if part == "*" {
                return None;
            }
            if let Ok(name) = HeaderName::from_bytes(part.to_ascii_lowercase().as_bytes()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    Some(names)
}

/// The normalised values of `names` in a request (whitespace collapsed, fields joined), which
/// must equal those of the request that produced a stored variant (RFC 9111 section 4.1).
pub fn vary_values(names: &[HeaderName], request: &HeaderMap) -> Vec<Option<String>> {
    names
        .iter()
        .map(|name| {
            let values: Vec<String> = request
                .get_all(name)
                .iter()
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .split(',')
                        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            if values.is_empty() {
                None
            } else {
                Some(values.join(","))
            }
        })
        .collect()
}

/// The client's preconditions evaluated against a stored 200 (RFC 9110 section 13.2.2): 412 for a
/// failed If-Match / If-Unmodified-Since, 304 for a matched If-None-Match / If-Modified-Since,
/// else whether If-Range lets a Range header apply. RFC 9111 section 4.3.2 lets a cache answer
/// these from the response it stored. A request without preconditions (most hits) does not
/// parse the stored validators.
pub fn precondition(method: &Method, request: &HeaderMap, stored: &HeaderMap) -> Decision {
    let conditional = precondition::FIELDS.iter().any(|f| request.contains_key(f));
    let validators = if conditional {
        Validators::of_response(stored)
    } else {
        Validators::default()
    };
    precondition::evaluate(method, request, validators)
}

/// The 304 a cache sends for a stored response: the fields a 200 would have carried that
/// RFC 9110 section 15.4.5 lists.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ] {
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// How a Range request is answered from a full stored body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) Range: send the whole body with 200.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluates `Range` (one byte range, after the ranges are sorted and coalesced; several
/// ranges are answered with the full body, which RFC 9110 section 14.2 allows) once
/// [`precondition`] has said it applies.
pub fn range(request: &HeaderMap, len: u64) -> RangeAnswer {
    let Some(spec) = request.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    match common::range::decide(spec, len, 1) {
        Ranges::Partial(parts) if parts.len() == 1 => RangeAnswer::Partial {
            start: parts[0].start,
            end: parts[0].end - 1,
        },
        Ranges::Unsatisfiable => RangeAnswer::Unsatisfiable,
        Ranges::Partial(_) | Ranges::Full => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn fresh(pairs: &[(&str, &str)], received: u64) -> Freshness {
        Freshness::new(
            &PolicyConfig::default(),
            StatusCode::OK,
            &headers(pairs),
            at(received),
            at(received),
        )
    }

    #[test]
    fn directives_parse_quotes_case_and_duplicates() {
        let h = headers(&[
            ("cache-control", "Max-Age=60, no-cache=\"set-cookie, foo\""),
            ("cache-control", "max-age=5, public"),
        ]);
        let d = Directives::parse(h.get_all("cache-control"));
        assert_eq!(d.seconds("max-age"), Some(Duration::from_secs(60)));
        let huge = headers(&[(
            "cache-control",
            "max-age=99999999999999999999999, s-maxage=x",
        )]);
        let huge = Directives::parse(huge.get_all("cache-control"));
        assert_eq!(
            huge.seconds("max-age"),
            Some(Duration::from_secs(MAX_DELTA_SECONDS))
        );
        assert_eq!(huge.seconds("s-maxage"), Some(Duration::ZERO));
        assert!(d.has("no-cache") && d.has("public") && !d.has("private"));
        let bad = headers(&[("cache-control", "max-age=soon")]);
        let d = Directives::parse(bad.get_all("cache-control"));
        assert_eq!(d.seconds("max-age"), Some(Duration::ZERO));
    }

    #[test]
    fn huge_values_from_clients_and_upstreams_never_overflow() {
        let now = date(0);
        let max = u64::MAX.to_string();
        let f = fresh(
            &[
                (
                    "cache-control",
                    &format!("s-maxage={max}, stale-if-error={max}"),
                ),
                ("age", &max),
                ("date", &now),
                ("etag", "\"x\""),
            ],
            0,
        );
        assert_eq!(f.lifetime, Duration::from_secs(MAX_DELTA_SECONDS));
        let later = at(10);
        let _ = f.retention(&PolicyConfig::default(), later);
        let req = RequestControls::from_headers(&headers(&[(
            "cache-control",
            &format!("min-fresh={max}, max-stale=abc, max-age={max}"),
        )]));
        assert_eq!(
            req.max_stale, None,
            "a malformed max-stale must grant nothing"
        );
        assert_eq!(f.verdict(&req, later), Verdict::Revalidate);
    }

    #[test]
    fn lifetime_precedence_s_maxage_max_age_expires() {
        let now = date(0);
        let f = fresh(
            &[("cache-control", "max-age=10, s-maxage=30"), ("date", &now)],
            0,
        );
        assert_eq!(f.lifetime, Duration::from_secs(30));
        let exp = date(50);
        let f = fresh(&[("date", &now), ("expires", &exp)], 0);
        assert_eq!(f.lifetime, Duration::from_secs(50));
        let f = fresh(&[("date", &now), ("expires", "0")], 0);
        assert_eq!(f.lifetime, Duration::ZERO);
        let f = fresh(&[("cache-control", "max-age=7"), ("expires", &exp)], 0);
        assert_eq!(f.lifetime, Duration::from_secs(7));
    }

    #[test]
    fn cdn_cache_control_wins_over_cache_control() {
        let h = [
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=120, stale-if-error=30"),
        ];
        assert_eq!(
            storable(&HeaderMap::new(), StatusCode::OK, &headers(&h)),
            Ok(())
        );
        let f = fresh(&h, 0);
        assert_eq!(f.lifetime, Duration::from_secs(120));
        assert_eq!(f.stale_if_error, Duration::from_secs(30));
        // An invalid targeted field is ignored as a whole.
        let h = [
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "Max-Age=99"),
        ];
        assert_eq!(fresh(&h, 0).lifetime, Duration::from_secs(5));
        // CDN-Cache-Control replaces Expires as well.
        let exp = date(1000);
        let h = [("cdn-cache-control", "no-cache"), ("expires", exp.as_str())];
        let f = fresh(&h, 0);
        assert!(f.no_cache && !f.is_fresh(at(1)));
    }

    #[test]
    fn cdn_cache_control_is_a_structured_fields_dictionary() {
        let parse = |values: &[&str]| {
            let pairs: Vec<_> = values.iter().map(|v| ("cdn-cache-control", *v)).collect();
            Directives::parse_dictionary(headers(&pairs).get_all("cdn-cache-control"))
        };
        // Integers, strings and booleans; parameters ignored; field lines joined.
        let d = parse(&[
            "max-age=60;x=1, no-cache=\"set-cookie, foo\"",
            "stale-if-error=30, must-revalidate",
        ])
        .unwrap();
        assert_eq!(d.seconds("max-age"), Some(Duration::from_secs(60)));
        assert_eq!(d.seconds("stale-if-error"), Some(Duration::from_secs(30)));
        assert!(d.has("no-cache") && d.has("must-revalidate") && !d.has("x"));
        // A later duplicate replaces an earlier one (dictionary semantics).
        let d = parse(&["max-age=60, max-age=5"]).unwrap();
        assert_eq!(d.seconds("max-age"), Some(Duration::from_secs(5)));
        // A known directive of the wrong type invalidates the field as a whole (RFC 9213 2.1).
        for wrong in [
            "max-age=1.5",
            "max-age=\"60\"",
            "max-age=-1",
            "s-maxage=?0",
            "max-age=(60)",
            "no-store=1",
            "private=60",
            "must-revalidate=\"x\"",
        ] {
            assert_eq!(parse(&[wrong]), None, "{wrong}");
        }
        // `?0` is a flag's absence; unknown directives may have any value.
        let d = parse(&["no-store=?0, x-vendor=1.5, max-age=9"]).unwrap();
        assert!(!d.has("no-store") && d.has("x-vendor"));
        assert_eq!(d.seconds("max-age"), Some(Duration::from_secs(9)));
        // Not a dictionary, or empty: ignored as a whole.
        for bad in [
            "Max-Age=60",
            "max-age = 60",
            "max-age=60 s",
            "max-age=60,",
            "max-age=1234567890123456",
            "",
        ] {
            assert_eq!(parse(&[bad]), None, "{bad:?}");
        }
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&["max-age=60", "Private"]), None);
        // ... and then Cache-Control (and Expires) apply.
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=60 s"),
        ]);
        let rc = ResponseControls::from_headers(&h);
        assert!(!rc.targeted);
        assert_eq!(
            rc.directives.seconds("max-age"),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn one_verdict_per_fetched_response() {
        let cfg = PolicyConfig::default();
        let none = HeaderMap::new();
        let verdict = |status: u16, h: &[(&str, &str)]| {
            let status = StatusCode::from_u16(status).unwrap();
            cacheable(&cfg, &none, status, &headers(h), at(0), at(1))
        };
        assert_eq!(
            verdict(200, &[("cache-control", "private, max-age=60")]),
            Cacheable::Pass(NotStorable::Private)
        );
        assert_eq!(
            verdict(
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
            ),
            Cacheable::Pass(NotStorable::SetCookie)
        );
        assert_eq!(
            verdict(200, &[("cache-control", "no-store, max-age=60")]),
            Cacheable::Share(NotStorable::NoStore)
        );
        assert_eq!(
            verdict(200, &[]),
            Cacheable::Share(NotStorable::NoFreshnessNorValidator)
        );
        assert_eq!(
            verdict(206, &[("cache-control", "max-age=60")]),
            Cacheable::Share(NotStorable::Status)
        );
        assert_eq!(
            verdict(200, &[("cache-control", "max-age=60"), ("vary", "*")]),
            Cacheable::Share(NotStorable::VaryStar)
        );
        // CDN-Cache-Control speaks for this cache: `private` in Cache-Control alone is for the
        // caches downstream.
        let h = [
            ("cache-control", "private"),
            ("cdn-cache-control", "max-age=60"),
        ];
        assert!(matches!(verdict(200, &h), Cacheable::Store(_)));
        // Store carries the freshness the response has on its own.
        let h = [("cache-control", "max-age=60")];
        let Cacheable::Store(f) = verdict(200, &h) else {
            panic!("max-age=60 is stored");
        };
        assert_eq!(
            f,
            Freshness::new(&cfg, StatusCode::OK, &headers(&h), at(0), at(1))
        );
        assert_eq!(f.lifetime, Duration::from_secs(60));
        assert_eq!(f.initial_age, Duration::from_secs(1), "the response delay");
    }

    #[test]
    fn heuristic_only_with_last_modified() {
        let now = date(1000);
        let lm = date(0);
        let f = fresh(&[("date", &now), ("last-modified", &lm)], 1000);
        assert!(f.heuristic);
        assert_eq!(f.lifetime, Duration::from_secs(100));
        let f = fresh(&[("date", &now)], 1000);
        assert_eq!(f.lifetime, Duration::ZERO);
        assert!(!f.heuristic);
    }

    #[test]
    fn storability_rules() {
        let none = HeaderMap::new();
        let ok = |h: &[(&str, &str)]| storable(&none, StatusCode::OK, &headers(h));
        assert_eq!(ok(&[("cache-control", "max-age=60")]), Ok(()));
        assert_eq!(ok(&[("etag", "\"a\"")]), Ok(()));
        assert_eq!(ok(&[]), Err(NotStorable::NoFreshnessNorValidator));
        assert_eq!(
            ok(&[("cache-control", "no-store, max-age=60")]),
            Err(NotStorable::NoStore)
        );
        assert_eq!(
            ok(&[("cache-control", "private, max-age=60")]),
            Err(NotStorable::Private)
        );
        assert_eq!(
            ok(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
            Err(NotStorable::SetCookie)
        );
        assert_eq!(
            ok(&[("cache-control", "max-age=60"), ("vary", "*")]),
            Err(NotStorable::VaryStar)
        );
        let auth = headers(&[("authorization", "Bearer x")]);
        let h = headers(&[("cache-control", "max-age=60")]);
        assert_eq!(
            storable(&auth, StatusCode::OK, &h),
            Err(NotStorable::Authorization)
        );
        let h = headers(&[("cache-control", "s-maxage=60")]);
        assert_eq!(storable(&auth, StatusCode::OK, &h), Ok(()));
        let h = headers(&[("cache-control", "max-age=60")]);
        assert_eq!(
            storable(&none, StatusCode::PARTIAL_CONTENT, &h),
            Err(NotStorable::Status)
        );
        assert_eq!(storable(&none, StatusCode::SERVICE_UNAVAILABLE, &h), Ok(()));
        let h = headers(&[("etag", "\"a\"")]);
        assert_eq!(
            storable(&none, StatusCode::SERVICE_UNAVAILABLE, &h),
            Err(NotStorable::Status)
        );
    }

    #[test]
    fn a_list_age_uses_its_first_member_and_an_invalid_one_is_stale() {
        let d = date(100);
        let fresh_with_age = |age: &str| {
            let h = headers(&[("cache-control", "max-age=60"), ("date", &d), ("age", age)]);
            Freshness::new(
                &PolicyConfig::default(),
                StatusCode::OK,
                &h,
                at(100),
                at(100),
            )
        };
        assert_eq!(fresh_with_age("5, 10").initial_age, Duration::from_secs(5));
        assert!(fresh_with_age("5, 10").is_fresh(at(100)));
        for bad in ["old, 0", "old", "-1", "1.5", ""] {
            let f = fresh_with_age(bad);
            assert!(
                !f.is_fresh(at(100)),
                "Age: {bad:?} must make the response stale"
            );
        }
    }

    #[test]
    fn targeted_private_or_no_cache_prevents_reuse_that_cache_control_allows() {
        let cfg = PolicyConfig::default();
        let exp = date(10_000);
        let verdict = |cdn: &str, etag: bool| {
            let mut h = vec![
                ("cache-control", "public, max-age=3600"),
                ("expires", exp.as_str()),
                ("cdn-cache-control", cdn),
            ];
            if etag {
                h.push(("etag", "\"v1\""));
            }
            cacheable(
                &cfg,
                &HeaderMap::new(),
                StatusCode::OK,
                &headers(&h),
                at(0),
                at(0),
            )
        };
        assert!(matches!(verdict("private", true), Cacheable::Pass(_)));
        // no-cache: without a validator nothing can be reused, so it is not even stored; with
        // one it is stored but never fresh (every reuse revalidates).
        assert!(matches!(verdict("no-cache", false), Cacheable::Share(_)));
        match verdict("no-cache", true) {
            Cacheable::Store(f) => assert!(!f.is_fresh(at(1)), "{f:?}"),
            other => panic!("{other:?}"),
        }
        // Without the targeted field the same response is fresh for an hour.
        let h = headers(&[("cache-control", "public, max-age=3600")]);
        match cacheable(&cfg, &HeaderMap::new(), StatusCode::OK, &h, at(0), at(0)) {
            Cacheable::Store(f) => assert!(f.is_fresh(at(1))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn age_uses_age_header_and_delays() {
        let d = date(100);
        let h = headers(&[("cache-control", "max-age=60"), ("date", &d), ("age", "10")]);
        let f = Freshness::new(
            &PolicyConfig::default(),
            StatusCode::OK,
            &h,
            at(100),
            at(102),
        );
        // corrected_age_value = 10 + 2 (response delay); apparent age = 2.
        assert_eq!(f.initial_age, Duration::from_secs(12));
        assert_eq!(f.age(at(110)), Duration::from_secs(20));
        assert!(f.is_fresh(at(149)));
        assert!(!f.is_fresh(at(150)));
        assert_eq!(f.ttl_secs(at(110)), 40);
        assert_eq!(f.ttl_secs(at(155)), -5);
    }

    #[test]
    fn a_held_request_is_not_aged_by_its_wait() {
        // Every request here is sent at 100 and answered at 103.
        let held = |fields: &[(&str, &str)]| {
            Freshness::new(
                &PolicyConfig::default(),
                StatusCode::OK,
                &headers(fields),
                at(100),
                at(103),
            )
        };
        // Held by the upstream until 103 and dated then: fresh for its whole max-age.
        let f = held(&[("cache-control", "max-age=2"), ("date", &date(103))]);
        assert_eq!(f.initial_age, Duration::ZERO);
        assert!(f.is_fresh(at(104)) && !f.is_fresh(at(105)));
        // An Age from an upstream cache that held it still counts.
        let f = held(&[
            ("cache-control", "max-age=2"),
            ("date", &date(103)),
            ("age", "1"),
        ]);
        assert_eq!(f.initial_age, Duration::from_secs(1));
        // Dated before the request was sent (a stored copy upstream): the whole delay counts.
        let f = held(&[
            ("cache-control", "max-age=60"),
            ("date", &date(99)),
            ("age", "5"),
        ]);
        assert_eq!(f.initial_age, Duration::from_secs(8));
        // No Date: the whole delay counts.
        let f = held(&[("cache-control", "max-age=60")]);
        assert_eq!(f.initial_age, Duration::from_secs(3));
    }

    #[test]
    fn sub_second_date_is_not_apparent_age() {
        let d = date(100);
        let h = headers(&[("cache-control", "max-age=1"), ("date", &d)]);
        let t = at(100) + Duration::from_millis(900);
        let f = Freshness::new(&PolicyConfig::default(), StatusCode::OK, &h, t, t);
        assert_eq!(f.initial_age, Duration::ZERO);
    }

    #[test]
    fn verdicts_for_stale_windows_and_request_directives() {
        let f = fresh(
            &[("cache-control", "max-age=10, stale-while-revalidate=5")],
            0,
        );
        let none = RequestControls::default();
        assert_eq!(f.verdict(&none, at(5)), Verdict::Fresh);
        assert_eq!(f.verdict(&none, at(12)), Verdict::StaleWhileRevalidate);
        assert_eq!(f.verdict(&none, at(16)), Verdict::Revalidate);
        let no_cache = RequestControls::from_headers(&headers(&[("pragma", "no-cache")]));
        assert!(no_cache.no_cache);
        assert_eq!(f.verdict(&no_cache, at(1)), Verdict::Revalidate);
        let max_age = RequestControls::from_headers(&headers(&[("cache-control", "max-age=2")]));
        assert_eq!(f.verdict(&max_age, at(3)), Verdict::Revalidate);
        let ms = RequestControls::from_headers(&headers(&[("cache-control", "max-stale=100")]));
        assert_eq!(f.verdict(&ms, at(50)), Verdict::StaleAllowedByClient);

        let mr = fresh(
            &[(
                "cache-control",
                "max-age=10, must-revalidate, stale-if-error=60",
            )],
            0,
        );
        assert_eq!(mr.verdict(&ms, at(12)), Verdict::Revalidate);
        assert!(!mr.usable_on_error(at(12)));
        let sie = fresh(&[("cache-control", "max-age=10, stale-if-error=60")], 0);
        assert!(sie.usable_on_error(at(65)));
        assert!(!sie.usable_on_error(at(75)));
        // Defaults apply without directives, but not to s-maxage responses.
        let dflt = fresh(&[("cache-control", "max-age=10")], 0);
        assert_eq!(dflt.stale_if_error, Duration::from_secs(300));
        let s = fresh(&[("cache-control", "s-maxage=10")], 0);
        assert_eq!(s.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn retention_covers_stale_windows_and_keep() {
        let cfg = PolicyConfig::default();
        let f = fresh(&[("cache-control", "max-age=10, stale-if-error=20")], 0);
        assert_eq!(f.retention(&cfg, at(0)), Duration::from_secs(30));
        let f = fresh(
            &[
                ("cache-control", "max-age=10, must-revalidate"),
                ("etag", "\"x\""),
            ],
            0,
        );
        assert_eq!(f.retention(&cfg, at(0)), Duration::from_secs(10) + cfg.keep);
    }

    #[test]
    fn refresh_from_304_keeps_body_fields() {
        let stored = headers(&[
            ("content-length", "100"),
            ("cache-control", "max-age=1"),
            ("etag", "\"v1\""),
            ("x-kept", "yes"),
        ]);
        let nm = headers(&[
            ("cache-control", "max-age=60"),
            ("content-length", "0"),
            ("x-new", "1"),
        ]);
        let merged = refresh_headers(&stored, &nm);
        let cfg = PolicyConfig::default();
        let (refreshed, f) = refresh(&cfg, StatusCode::OK, &stored, &nm, at(5), at(5));
        assert_eq!(refreshed, merged);
        assert_eq!(f.lifetime, Duration::from_secs(60), "the 304's max-age");
        assert_eq!(merged["content-length"], "100");
        assert_eq!(merged["cache-control"], "max-age=60");
        assert_eq!(merged["x-kept"], "yes");
        assert_eq!(merged["x-new"], "1");
        let cond = revalidation_headers(&stored);
        assert_eq!(
            cond,
            vec![(header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\""))]
        );
    }

    fn not_modified(request: &HeaderMap, stored: &HeaderMap) -> bool {
        precondition(&Method::GET, request, stored) == Decision::NotModified
    }

    #[test]
    fn client_conditionals() {
        let lm = date(0);
        let stored = headers(&[("etag", "W/\"abc\""), ("last-modified", &lm)]);
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", \"abc\"")]),
            &stored
        ));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"zzz\"")]),
            &stored
        ));
        let later = date(10);
        assert!(not_modified(
            &headers(&[("if-modified-since", &later)]),
            &stored
        ));
        // If-None-Match takes precedence over If-Modified-Since.
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"zzz\""), ("if-modified-since", &later)]),
            &stored
        ));
        let before = httpdate::fmt_http_date(at(0) - Duration::from_secs(10));
        assert!(!not_modified(
            &headers(&[("if-modified-since", &before)]),
            &stored
        ));
        let nm = not_modified_headers(&stored);
        assert_eq!(nm["etag"], "W/\"abc\"");
        // Entity tags may hold commas, and a list may span several field lines.
        let comma = headers(&[("etag", "\"a,b\"")]);
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", \"a,b\"")]),
            &comma
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"a\", \"b\"")]),
            &comma
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\""), ("if-none-match", "W/\"abc\"")]),
            &stored
        ));
    }

    #[test]
    fn preconditions_that_fail_on_a_stored_response() {
        let lm = date(0);
        let stored = headers(&[("etag", "\"abc\""), ("last-modified", &lm)]);
        let get =
            |pairs: &[(&'static str, &str)]| precondition(&Method::GET, &headers(pairs), &stored);
        let serve = Decision::Serve { use_range: false };
        assert_eq!(get(&[("if-match", "\"abc\"")]), serve);
        assert_eq!(get(&[("if-match", "*")]), serve);
        assert_eq!(
            get(&[("if-match", "\"new\"")]),
            Decision::PreconditionFailed
        );
        let before = httpdate::fmt_http_date(at(0) - Duration::from_secs(10));
        assert_eq!(
            get(&[("if-unmodified-since", &before)]),
            Decision::PreconditionFailed
        );
        assert_eq!(get(&[("if-unmodified-since", &date(10))]), serve);
        // A weak stored tag never satisfies If-Match (strong comparison).
        let weak = headers(&[("etag", "W/\"abc\"")]);
        assert_eq!(
            precondition(&Method::GET, &headers(&[("if-match", "W/\"abc\"")]), &weak),
            Decision::PreconditionFailed
        );
    }

    #[test]
    fn ranges() {
        let stored = headers(&[("etag", "\"s\"")]);
        let r = |spec: &str| range(&headers(&[("range", spec)]), 1000);
        assert_eq!(r("bytes=0-99"), RangeAnswer::Partial { start: 0, end: 99 });
        assert_eq!(
            r("bytes=900-"),
            RangeAnswer::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=-100"),
            RangeAnswer::Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            r("bytes=990-5000"),
            RangeAnswer::Partial {
                start: 990,
                end: 999
            }
        );
        assert_eq!(r("bytes=1000-"), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), RangeAnswer::Full);
        assert_eq!(r("bytes=5-1"), RangeAnswer::Full);
        assert_eq!(r("items=0-1"), RangeAnswer::Full);
        assert_eq!(r("bytes=x-1"), RangeAnswer::Full);
        let ir = |v: &str| {
            precondition(
                &Method::GET,
                &headers(&[("range", "bytes=0-0"), ("if-range", v)]),
                &stored,
            )
        };
        assert_eq!(ir("\"s\""), Decision::Serve { use_range: true });
        assert_eq!(ir("\"old\""), Decision::Serve { use_range: false });
        // If-Range compares strongly: a weak tag never matches.
        assert_eq!(ir("W/\"s\""), Decision::Serve { use_range: false });
        // The range unit is case-insensitive (RFC 9110 section 14.1); overlapping ranges
        // coalesce into one part.
        assert_eq!(r("BYTES=0-9"), RangeAnswer::Partial { start: 0, end: 9 });
        assert_eq!(
            r("bytes=0-5,3-9"),
            RangeAnswer::Partial { start: 0, end: 9 }
        );
    }

    #[test]
    fn vary_handling() {
        let h = headers(&[("vary", "Accept-Encoding, accept-language")]);
        let names = vary_names(&h).unwrap();
        assert_eq!(names.len(), 2);
        let a = vary_values(&names, &headers(&[("accept-encoding", "gzip,  br")]));
        let b = vary_values(&names, &headers(&[("accept-encoding", "gzip, br")]));
        let c = vary_values(&names, &headers(&[("accept-encoding", "identity")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(vary_names(&headers(&[("vary", "*")])).is_none());
    }
}
