//! Per-client limits: token buckets per client prefix, so one relentless client (a misbehaving
//! player, a download tool asking for thousands of segments a second) gets `429` with
//! `Retry-After` while every other client keeps being served at full speed. Two buckets per
//! client, with the same keying, exemptions and bounds:
//!
//! - requests: every proxied request takes a token (checked in front of the cache);
//! - misses: only a request that would go upstream takes one (a miss or revalidation that starts
//!   a fetch, a pass that is forwarded; not a hit, not a request joining a fetch already
//!   running), so a client asking for objects that do not exist (yet) cannot turn the edge into
//!   a request amplifier for the origin while its hits stay unlimited by it. A fetch the
//!   upstream answers with success (2xx, 304) gives back [`SUCCESS_REFUND`] of its token: a
//!   miss for content costs a quarter of a miss for nothing, since a player's misses are
//!   content and a flood's are 404s.
//!
//! A client is its IPv4 address (`/32` by default) or its IPv6 `/56` (what one subscriber is
//! usually delegated: counting per IPv6 address would let one host rotate through 2^72 of them).
//! The defaults are far above what a player needs, counted for a player alone on its edge
//! (every new object a miss it pays for; a request joining another client's fetch is free):
//! an LL-HLS player (hls.js) asks for 2 parts and 2 blocking playlist reloads a second per
//! rendition, 8 misses a second with video and audio apart; an LL-DASH player asks for about
//! one chunked segment a second (2 s segments, video and audio) plus its MPD; a VOD player
//! filling its buffer from a cold edge fetches a few segments a second of video and audio.
//! They are 100 requests a second with bursts of 300 (12 times an LL-HLS player), and 10
//! misses a second with bursts of 60 (the burst is a minute of 2 s segments, video and audio,
//! at once): an LL-HLS player's 8 successful misses a second cost 2 (5 times below the rate,
//! 2.5 times for two of them behind one address), so a client flooding an edge with distinct
//! URLs that do not exist reaches the upstream at most 60 + 10 times a second of flood (60 + 40
//! if every URL it invents exists).
//!
//! Loopback is exempt by default (health checkers, local tools and benchmarks run there); the
//! `exempt` list is configuration. An edge that is a parent counts each child edge as one
//! client: list the children's networks in `exempt`.
//!
//! Memory is bounded: at most `max_clients` buckets are kept per limit; when full, buckets that
//! have refilled (idle clients) are dropped first, and if none has, the new client shares one
//! overflow bucket rather than growing the map.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde::Deserialize;

use common::http::{full, Body};

/// The `[rate_limit]` section of an edge's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client; 0 turns the limit off.
    pub requests_per_sec: f64,
    /// Requests a client may make at once after being idle.
    pub burst: f64,
    /// Sustained upstream fetches per second a client may cause (misses, revalidations and
    /// forwarded passes it starts; hits and joined fetches are free); 0 turns the limit off.
    pub misses_per_sec: f64,
    /// Upstream fetches a client may cause at once after being idle.
    pub miss_burst: f64,
    /// Prefix length that makes one IPv4 client.
    pub ipv4_prefix: u8,
    /// Prefix length that makes one IPv6 client.
    pub ipv6_prefix: u8,
    /// Clients tracked at once (memory bound: about 64 bytes each).
    pub max_clients: usize,
    /// Networks never limited (CIDR): by default loopback, where health checkers, local tools and
    /// benchmarks run.
    pub exempt: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests_per_sec: 100.0,
            burst: 300.0,
            misses_per_sec: 10.0,
            miss_burst: 60.0,
            ipv4_prefix: 32,
            ipv6_prefix: 56,
            max_clients: 100_000,
            exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refuse; a token is back after this long (the `Retry-After`, rounded up to seconds).
    Limit(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Which bucket a limiter fills: its `limit` label in `edge_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Misses,
}

impl Limit {
    pub const ALL: [Limit; 2] = [Limit::Requests, Limit::Misses];

    pub fn label(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Misses => "misses",
        }
    }
}

/// One limit of one edge: a bucket per client.
pub struct RateLimiter {
    cfg: RateLimitConfig,
    limit: Limit,
    /// Tokens per second and bucket size of this limit.
    rate: f64,
    burst: f64,
    exempt: Vec<(IpAddr, u8)>,
    shards: Vec<Mutex<HashMap<Client, Bucket>>>,
    overflow: Mutex<Bucket>,
}

const SHARDS: usize = 16;

/// The part of a miss token a fetch answered with success gives back.
pub const SUCCESS_REFUND: f64 = 0.75;

impl RateLimiter {
    /// The request limit; `None` when it is off; an error names an exempt network that does
    /// not parse.
    pub fn new(cfg: &RateLimitConfig) -> anyhow::Result<Option<RateLimiter>> {
        Self::with(cfg, Limit::Requests)
    }

    /// The miss limit (`misses_per_sec`, `miss_burst`), keyed and exempted like the request
    /// limit; `None` when it is off.
    pub fn for_misses(cfg: &RateLimitConfig) -> anyhow::Result<Option<RateLimiter>> {
        Self::with(cfg, Limit::Misses)
    }

    fn with(cfg: &RateLimitConfig, limit: Limit) -> anyhow::Result<Option<RateLimiter>> {
        let (rate, burst) = match limit {
            Limit::Requests => (cfg.requests_per_sec, cfg.burst),
            Limit::Misses => (cfg.misses_per_sec, cfg.miss_burst),
        };
        if rate.is_nan() || rate <= 0.0 || rate.is_infinite() {
            return Ok(None);
        }
        let burst = if burst.is_nan() { 1.0 } else { burst.max(1.0) };
        let exempt = cfg
            .exempt
            .iter()
            .map(|n| parse_cidr(n))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut cfg = cfg.clone();
        cfg.ipv4_prefix = cfg.ipv4_prefix.min(32);
        cfg.ipv6_prefix = cfg.ipv6_prefix.min(128);
        cfg.max_clients = cfg.max_clients.max(SHARDS);
        Ok(Some(RateLimiter {
            exempt,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            overflow: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
            cfg,
            limit,
            rate,
            burst,
        }))
    }

    /// Which limit this is.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Takes a token for `client` at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        if self.is_exempt(client) {
            return Verdict::Allow;
        }
        let key = self.key(client);
        let mut map = self.shard(key);
        let per_shard = self.cfg.max_clients / SHARDS;
        if !map.contains_key(&key) && map.len() >= per_shard {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + rate * now.duration_since(b.at).as_secs_f64() < burst);
            if map.len() >= per_shard {
                drop(map);
                let mut b = self.overflow.lock().unwrap_or_else(|p| p.into_inner());
                return self.take(&mut b, now);
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.take(bucket, now)
    }

    /// Gives `client` back `tokens` (at most up to its burst): the part of a miss token returned
    /// when the upstream answered with content.
    pub fn refund(&self, client: IpAddr, tokens: f64, now: Instant) {
        if self.is_exempt(client) {
            return;
        }
        let key = self.key(client);
        if let Some(b) = self.shard(key).get_mut(&key) {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + elapsed * self.rate + tokens).min(self.burst);
            b.at = now;
        }
    }

    fn is_exempt(&self, client: IpAddr) -> bool {
        self.exempt
            .iter()
            .any(|(net, bits)| in_net(client, *net, *bits))
    }

    /// The locked shard holding `key`'s bucket.
    fn shard(&self, key: Client) -> std::sync::MutexGuard<'_, HashMap<Client, Bucket>> {
        let bits = match key {
            Client::V4(a) => u64::from(a),
            Client::V6(a) => a as u64 ^ (a >> 64) as u64,
        };
        self.shards[common::hash::splitmix64(bits) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Clients tracked now.
    pub fn clients(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    fn take(&self, b: &mut Bucket, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allow
        } else {
            Verdict::Limit(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }

    fn key(&self, client: IpAddr) -> Client {
        match client {
            IpAddr::V4(a) => Client::V4(mask32(u32::from(a), self.cfg.ipv4_prefix)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.key(IpAddr::V4(v4)),
                None => Client::V6(mask128(u128::from(a), self.cfg.ipv6_prefix)),
            },
        }
    }
}

/// The `429` for a request over `limit`: `Retry-After` in whole seconds (at least 1) until a
/// token is back, never stored.
pub fn too_many(limit: Limit, wait: Duration) -> Response<Body> {
    let text = match limit {
        Limit::Requests => "too many requests\n",
        Limit::Misses => "too many requests for objects not in the cache\n",
    };
    let mut resp = Response::new(full(text));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let secs = wait.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// A client: its address masked to the configured prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u128),
}

fn parse_cidr(text: &str) -> anyhow::Result<(IpAddr, u8)> {
    let (addr, bits) = text.split_once('/').unwrap_or((text, ""));
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("rate_limit.exempt: `{text}` is not an address or CIDR"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits =
        match bits.trim() {
            "" => max,
            b => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| {
                anyhow::anyhow!("rate_limit.exempt: bad prefix length in `{text}`")
            })?,
        };
    Ok((addr, bits))
}

fn in_net(client: IpAddr, net: IpAddr, bits: u8) -> bool {
    let client = match client {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => mask32(c.into(), bits) == mask32(n.into(), bits),
        (IpAddr::V6(c), IpAddr::V6(n)) => mask128(c.into(), bits) == mask128(n.into(), bits),
        _ => false,
    }
}

fn mask32(a: u32, bits: u8) -> u32 {
    match bits {
        0 => 0,
        b => a & (u32::MAX << (32 - u32::from(b.min(32)))),
    }
}

fn mask128(a: u128, bits: u8) -> u128 {
    match bits {
        0 => 0,
        b => a & (u128::MAX << (128 - u32::from(b.min(128)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            requests_per_sec: rate,
            burst,
            ..RateLimitConfig::default()
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let l = limiter(10.0, 5.0);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(l.check(a, t0), Verdict::Allow);
        }
        match l.check(a, t0) {
            Verdict::Limit(d) => assert!((d.as_secs_f64() - 0.1).abs() < 1e-6, "{d:?}"),
            v => panic!("{v:?}"),
        }
        // 0.1 s later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.check(a, t1), Verdict::Allow);
        assert!(matches!(l.check(a, t1), Verdict::Limit(_)));
        // Another client is not affected.
        assert_eq!(l.check("192.0.2.2".parse().unwrap(), t1), Verdict::Allow);
    }

    #[test]
    fn ipv6_clients_are_counted_per_56_and_ipv4_per_address() {
        let l = limiter(1.0, 1.0);
        let t = Instant::now();
        assert_eq!(
            l.check("2001:db8:0:100::1".parse().unwrap(), t),
            Verdict::Allow
        );
        // Same /56, another address: the same client.
        assert!(matches!(
            l.check("2001:db8:0:1ff::2".parse().unwrap(), t),
            Verdict::Limit(_)
        ));
        // Next /56: another client.
        assert_eq!(
            l.check("2001:db8:0:200::1".parse().unwrap(), t),
            Verdict::Allow
        );
        // IPv4 per address, and an IPv4-mapped IPv6 address is its IPv4 client.
        assert_eq!(l.check("198.51.100.7".parse().unwrap(), t), Verdict::Allow);
        assert!(matches!(
            l.check("::ffff:198.51.100.7".parse().unwrap(), t),
            Verdict::Limit(_)
        ));
        assert_eq!(l.check("198.51.100.8".parse().unwrap(), t), Verdict::Allow);
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let l = RateLimiter::new(&RateLimitConfig {
            max_clients: 160,
            ..RateLimitConfig::default()
        })
        .unwrap()
        .unwrap();
        let t = Instant::now();
        for i in 0..10_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.check(a, t);
        }
        assert!(l.clients() <= 160, "{}", l.clients());
        // Once the tracked clients have refilled (idle), new ones get buckets of their own.
        let later = t + Duration::from_secs(60);
        let fresh = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
        for _ in 0..300 {
            assert_eq!(l.check(fresh, later), Verdict::Allow);
        }
        assert!(matches!(l.check(fresh, later), Verdict::Limit(_)));
        assert!(l.clients() <= 160, "{}", l.clients());
    }

    #[test]
    fn the_miss_limit_has_its_own_rate_and_burst_and_shares_keying_and_exemptions() {
        let cfg = RateLimitConfig {
            requests_per_sec: 1000.0,
            burst: 1000.0,
            misses_per_sec: 10.0,
            miss_burst: 60.0,
            ..RateLimitConfig::default()
        };
        let misses = RateLimiter::for_misses(&cfg).unwrap().unwrap();
        let requests = RateLimiter::new(&cfg).unwrap().unwrap();
        assert_eq!(misses.limit(), Limit::Misses);
        assert_eq!(requests.limit(), Limit::Requests);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..60 {
            assert_eq!(misses.check(a, t0), Verdict::Allow, "miss {i}");
        }
        match misses.check(a, t0) {
            Verdict::Limit(d) => assert!((d.as_secs_f64() - 0.1).abs() < 1e-6, "{d:?}"),
            v => panic!("{v:?}"),
        }
        // The request bucket is a different one: still full.
        for _ in 0..100 {
            assert_eq!(requests.check(a, t0), Verdict::Allow);
        }
        // 10 a second sustained: over 20 s a flooding client gets the burst plus 200.
        let mut allowed = 0;
        for ms in 0..20_000u64 {
            if misses.check(a, t0 + Duration::from_millis(ms)) == Verdict::Allow {
                allowed += 1;
            }
        }
        assert!(
            (198..=200).contains(&allowed),
            "sustained rate: {allowed} in 20 s"
        );
        // Same /56 is the same client; loopback is exempt from this limit too.
        let v6 = RateLimiter::for_misses(&RateLimitConfig {
            misses_per_sec: 1.0,
            miss_burst: 1.0,
            ..RateLimitConfig::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            v6.check("2001:db8:0:100::1".parse().unwrap(), t0),
            Verdict::Allow
        );
        assert!(matches!(
            v6.check("2001:db8:0:1ff::2".parse().unwrap(), t0),
            Verdict::Limit(_)
        ));
        for _ in 0..10 {
            assert_eq!(v6.check("127.0.0.1".parse().unwrap(), t0), Verdict::Allow);
        }
        // Off independently of the request limit.
        let off = RateLimitConfig {
            misses_per_sec: 0.0,
            ..RateLimitConfig::default()
        };
        assert!(RateLimiter::for_misses(&off).unwrap().is_none());
        assert!(RateLimiter::new(&off).unwrap().is_some());
    }

    #[test]
    fn a_miss_answered_with_content_costs_a_quarter() {
        let cfg = RateLimitConfig {
            misses_per_sec: 10.0,
            miss_burst: 60.0,
            ..RateLimitConfig::default()
        };
        let misses = RateLimiter::for_misses(&cfg).unwrap().unwrap();
        let t0 = Instant::now();
        let player: IpAddr = "192.0.2.7".parse().unwrap();
        let flood: IpAddr = "192.0.2.8".parse().unwrap();
        // An LL-HLS player's 8 successful misses a second for a minute, without a refusal.
        for i in 0..480u64 {
            let at = t0 + Duration::from_millis(i * 125);
            assert_eq!(misses.check(player, at), Verdict::Allow, "miss {i}");
            misses.refund(player, SUCCESS_REFUND, at);
        }
        // Misses for nothing at 20 a second get the burst plus 10 a second: 260 of 400 in 20 s.
        let allowed = (0..400u64)
            .filter(|i| misses.check(flood, t0 + Duration::from_millis(i * 50)) == Verdict::Allow)
            .count();
        assert!((255..=261).contains(&allowed), "{allowed}");
        // A refund never fills a bucket past its burst, and exempt clients have none.
        misses.refund(player, 1000.0, t0 + Duration::from_secs(61));
        let burst = (0..100)
            .take_while(|_| misses.check(player, t0 + Duration::from_secs(61)) == Verdict::Allow)
            .count();
        assert_eq!(burst, 60);
        misses.refund("127.0.0.1".parse().unwrap(), 1.0, t0);
        assert_eq!(misses.clients(), 2);
    }

    #[test]
    fn the_refusal_says_when_to_come_back_and_is_not_stored() {
        let r = too_many(Limit::Misses, Duration::from_millis(100));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let r = too_many(Limit::Requests, Duration::from_millis(2500));
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        assert!(RateLimiter::new(&RateLimitConfig {
            requests_per_sec: 0.0,
            ..RateLimitConfig::default()
        })
        .unwrap()
        .is_none());
    }

    #[test]
    fn exempt_networks_are_never_limited_and_bad_ones_are_named() {
        let l = limiter(1.0, 1.0);
        let t = Instant::now();
        for a in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            for _ in 0..10 {
                assert_eq!(l.check(a.parse().unwrap(), t), Verdict::Allow, "{a}");
            }
        }
        for bad in ["nope", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            let err = RateLimiter::new(&RateLimitConfig {
                exempt: vec![bad.into()],
                ..RateLimitConfig::default()
            })
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
