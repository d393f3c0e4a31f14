//! Byte-bounded storage of responses in a moka cache.
//!
//! Weighing: an entry weighs its body plus its header bytes plus a fixed per-entry overhead, so
//! the configured capacity bounds memory whatever the mix of small manifests and large segments.
//! Eviction is LRU, not moka's default TinyLFU: TinyLFU admits a new entry only if it looks more
//! popular than the victim, which can refuse a brand-new live segment (never seen before, yet
//! about to be requested by every viewer); with LRU the newest segment always gets in and old
//! segments of a moving live window age out first. Moka expiry is set to the freshness lifetime
//! plus the longest stale window in which the copy is still useful (stale-while-revalidate,
//! stale-if-error, or revalidation by validator), because moka cannot return an expired entry.
//! One variant per key: the stored response carries the Vary request values it was fetched with.
//! This is the memory tier; with `cache_dir` the `disk` tier sits behind it, and a body read
//! from there may be a [`Payload::Disk`] view (which this store never holds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::Expiry;

use crate::key::CacheKey;
use crate::policy::{vary_values, Freshness, PolicyConfig};

/// Fixed bytes of every entry: the `Stored` struct in its `Arc`, the key's `Arc` inside moka
/// and moka's own per-entry bookkeeping (hash-table bucket, access and write order nodes, the
/// expiry timer node, its share of the frequency sketch), with malloc's chunk overhead.
/// Measured by `tests/weigh.rs`.
pub const ENTRY_OVERHEAD: u64 = 720;
/// malloc's cost per allocation beyond the bytes asked for (glibc: an 8-byte chunk header and
/// rounding to 16 bytes).
const ALLOCATION: usize = 16;
/// The shared-buffer header `bytes` allocates the first time a `Bytes` built from a `Vec` is
/// cloned (every hit clones header values and the body), with its malloc overhead.
const SHARED_BUFFER: usize = 40;

/// One stored response.
#[derive(Debug)]
pub struct Stored {
    pub status: StatusCode,
    /// Response header fields in order, hop-by-hop fields already removed: a flat list costs
    /// 72 B a field where a `HeaderMap` costs 112 B a slot with a third of its slots empty;
    /// [`Stored::headers`] builds the map a response needs.
    fields: Box<[(HeaderName, HeaderValue)]>,
    /// The body: in memory, or (entries read from the disk tier too large to read whole) a
    /// verified view of the file it is in.
    pub body: Payload,
    pub freshness: Freshness,
    /// Request header names the response varies on, and the values they had.
    pub vary: Vec<(HeaderName, Option<String>)>,
    /// How long it is kept: moka drops it this long after insertion (on the monotonic clock),
    /// and [`Stored::expired`] hides it this long after `freshness.response_time` on the edge's
    /// clock, so that an injected clock sees the same expiry.
    pub retention: Duration,
}

impl Stored {
    /// True once the entry has outlived its retention at `now`: no stale window or
    /// revalidation can use it any more, and the store would have dropped it.
    pub fn expired(&self, now: SystemTime) -> bool {
        now >= self.freshness.response_time + self.retention
    }

    /// The stored header fields as a map (a fresh one: callers add Age and the like).
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in self.fields.iter() {
            map.append(name.clone(), value.clone());
        }
        map
    }

    /// True when a request's Vary-named headers equal those this variant was fetched with.
    pub fn matches_variant(&self, request: &HeaderMap) -> bool {
        if self.vary.is_empty() {
            return true;
        }
        let names: Vec<HeaderName> = self.vary.iter().map(|(n, _)| n.clone()).collect();
        vary_values(&names, request)
            .iter()
            .zip(&self.vary)
            .all(|(a, (_, b))| a == b)
    }

    /// The bytes the cache holds for this entry under `key`; see [`ENTRY_OVERHEAD`].
    pub fn weight(&self, key: &CacheKey) -> u32 {
        let key_bytes = key.host.len() + key.path.len() + 2 * ALLOCATION;
        // The field list, each distinct name's buffer, and the one buffer all values share.
        let list_bytes = if self.fields.is_empty() {
            0
        } else {
            self.fields.len() * std::mem::size_of::<(HeaderName, HeaderValue)>() + ALLOCATION
        };
        let names: usize = self
            .fields
            .iter()
            .enumerate()
            .filter(|(i, (n, _))| *i == 0 || self.fields[i - 1].0 != *n)
            .map(|(_, (n, _))| name_bytes(n))
            .sum();
        let values: usize = self.fields.iter().map(|(_, v)| v.len()).sum();
        let value_bytes = if values == 0 {
            0
        } else {
            values + ALLOCATION + SHARED_BUFFER
        };
        let header_bytes = list_bytes + names + value_bytes;
        let body_bytes = match &self.body {
            Payload::Memory(b) if b.is_empty() => 0,
            Payload::Memory(b) => b.len() + ALLOCATION + SHARED_BUFFER,
            // Never in the memory store (see `Store::insert`); an open file and its block table.
            Payload::Disk(d) => d.memory_bytes(),
        };
        let vary_bytes = if self.vary.is_empty() {
            0
        } else {
            self.vary.capacity() * std::mem::size_of::<(HeaderName, Option<String>)>()
                + ALLOCATION
                + self
                    .vary
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, |v| v.len() + ALLOCATION))
                    .sum::<usize>()
        };
        let total = (key_bytes + header_bytes + body_bytes + vary_bytes) as u64 + ENTRY_OVERHEAD;
        total.min(u32::MAX as u64) as u32
    }

    /// The same response refreshed by a 304 (RFC 9111 section 4.3.4): new headers and
    /// freshness, the stored body shared rather than copied.
    pub fn refreshed(
        &self,
        cfg: &PolicyConfig,
        headers: &HeaderMap,
        freshness: Freshness,
    ) -> Stored {
        let retention = retention(cfg, &freshness);
        Stored {
            status: self.status,
            fields: owned_fields(headers),
            body: self.body.clone(),
            freshness,
            vary: self.vary.clone(),
            retention,
        }
    }

    /// Builds an entry from the body's chunks; its retention is computed from the policy as of
    /// the response's arrival (`freshness.response_time`). Header values and the body are copied out of the buffers they were parsed from
    /// into buffers of their exact size: hyper slices them from its connection read buffer, and
    /// keeping such a slice would keep the whole buffer (8 KiB or more) alive for as long as the
    /// entry, unweighed.
    pub fn new(
        cfg: &PolicyConfig,
        status: StatusCode,
        headers: HeaderMap,
        body: &[Bytes],
        freshness: Freshness,
        vary: Vec<(HeaderName, Option<String>)>,
    ) -> Stored {
        let retention = retention(cfg, &freshness);
        Stored {
            status,
            fields: owned_fields(&headers),
            body: Payload::Memory(owned_body(body)),
            freshness,
            vary,
            retention,
        }
    }

    /// An entry read back from disk: fields and freshness as stored, retention from today's
    /// policy.
    pub fn restored(
        cfg: &PolicyConfig,
        status: StatusCode,
        fields: Box<[(HeaderName, HeaderValue)]>,
        body: Payload,
        freshness: Freshness,
        vary: Vec<(HeaderName, Option<String>)>,
    ) -> Stored {
        let retention = retention(cfg, &freshness);
        Stored {
            status,
            fields,
            body,
            freshness,
            vary,
            retention,
        }
    }

    /// The stored header fields, in order.
    pub fn fields(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields
    }

    /// The same entry with another body (a disk body read into memory).
    pub fn with_body(&self, body: Payload) -> Stored {
        Stored {
            status: self.status,
            fields: self.fields.clone(),
            body,
            freshness: self.freshness.clone(),
            vary: self.vary.clone(),
            retention: self.retention,
        }
    }
}

/// A stored body.
#[derive(Debug, Clone)]
pub enum Payload {
    Memory(Bytes),
    /// In a file of the disk tier, read block by block, each verified before it is served.
    Disk(Arc<crate::disk::DiskBody>),
}

impl Payload {
    pub fn len(&self) -> u64 {
        match self {
            Payload::Memory(b) => b.len() as u64,
            Payload::Disk(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body when it is in memory.
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            Payload::Memory(b) => Some(b),
            Payload::Disk(_) => None,
        }
    }
}

/// How long an entry is kept from its arrival (at least 1 ms).
fn retention(cfg: &PolicyConfig, freshness: &Freshness) -> Duration {
    freshness
        .retention(cfg, freshness.response_time)
        .max(Duration::from_millis(1))
}

/// The fields of `headers` with values sliced from one buffer of exactly their total size: one
/// allocation for all values instead of one each, and clones (every hit builds a map from the
/// fields) only count references.
fn owned_fields(headers: &HeaderMap) -> Box<[(HeaderName, HeaderValue)]> {
    let total = headers.values().map(|v| v.len()).sum();
    let mut block = BytesMut::with_capacity(total);
    for v in headers.values() {
        block.extend_from_slice(v.as_bytes());
    }
    let block = block.freeze();
    let mut at = 0;
    headers
        .iter()
        .map(|(name, value)| {
            let end = at + value.len();
            let mut v = HeaderValue::from_maybe_shared(block.slice(at..end))
                .unwrap_or_else(|_| value.clone());
            v.set_sensitive(value.is_sensitive());
            at = end;
            (name.clone(), v)
        })
        .collect()
}

/// The chunks of a body copied into one buffer of exactly their total size.
fn owned_body(chunks: &[Bytes]) -> Bytes {
    let mut body = BytesMut::with_capacity(chunks.iter().map(|c| c.len()).sum());
    for c in chunks {
        body.extend_from_slice(c);
    }
    body.freeze()
}

/// Names `http` keeps static (no allocation), among those origins commonly send.
const STATIC_NAMES: &[HeaderName] = &[
    header::ACCEPT_RANGES,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::AGE,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::CONTENT_TYPE,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::SERVER,
    header::STRICT_TRANSPORT_SECURITY,
    header::VARY,
    header::VIA,
];

/// Bytes a stored header name holds (once per name: the fields of a name share its buffer):
/// nothing for a static one; otherwise its buffer, charged to every name `STATIC_NAMES` does not
/// list (`http` does not say which names are static, so
/// other standard names are overcharged and the weight stays an upper bound).
fn name_bytes(name: &HeaderName) -> usize {
    if STATIC_NAMES.contains(name) {
        0
    } else {
        name.as_str().len() + ALLOCATION + SHARED_BUFFER
    }
}

struct RetentionExpiry;

impl Expiry<CacheKey, Arc<Stored>> for RetentionExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.retention)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<Stored>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.retention)
    }
}

/// Counts of removals, read by the metrics.
#[derive(Debug, Default)]
pub struct RemovalCounts {
    /// Evicted to make room (capacity).
    pub size: AtomicU64,
    /// Dropped after their retention ran out.
    pub expired: AtomicU64,
}

/// The response store.
#[derive(Clone)]
pub struct Store {
    cache: Cache<CacheKey, Arc<Stored>>,
    max_object_size: u64,
    removals: Arc<RemovalCounts>,
    /// Purges so far; a fetch that overlaps one does not keep its response (see
    /// [`Store::insert_fetched`]).
    purges: Arc<AtomicU64>,
}

impl Store {
    /// A store of `capacity` weighted bytes keeping bodies up to `max_object_size` (the memory
    /// tier's object limit); removals are also counted in `evictions` (label `cause`: size or
    /// expired).
    pub fn new(capacity: u64, max_object_size: u64, evictions: prometheus::IntCounterVec) -> Store {
        let removals = Arc::new(RemovalCounts::default());
        let counts = removals.clone();
        let by_size = evictions.with_label_values(&["size"]);
        let by_expiry = evictions.with_label_values(&["expired"]);
        let cache = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|k: &CacheKey, v: &Arc<Stored>| v.weight(k))
            .expire_after(RetentionExpiry)
            .eviction_listener(move |_k, _v, cause| match cause {
                RemovalCause::Size => {
                    counts.size.fetch_add(1, Ordering::Relaxed);
                    by_size.inc();
                }
                RemovalCause::Expired => {
                    counts.expired.fetch_add(1, Ordering::Relaxed);
                    by_expiry.inc();
                }
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        Store {
            cache,
            max_object_size: max_object_size.min(capacity),
            removals,
            purges: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Largest body stored.
    pub fn max_object_size(&self) -> u64 {
        self.max_object_size
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Stored>> {
        self.cache.get(key).await
    }

    /// Stores an entry unless its body is larger than the maximum object size (or is not in
    /// memory: a disk body is read whole before it is promoted).
    pub async fn insert(&self, key: CacheKey, value: Arc<Stored>) -> bool {
        if value.body.len() > self.max_object_size || value.body.bytes().is_none() {
            return false;
        }
        self.cache.insert(key, value).await;
        true
    }

    /// The purge counter, shared with the disk tier so that one generation covers both.
    pub fn purge_counter(&self) -> Arc<AtomicU64> {
        self.purges.clone()
    }

    /// The purge generation, to read before a fetch starts and hand to
    /// [`Store::insert_fetched`].
    pub fn generation(&self) -> u64 {
        self.purges.load(Ordering::SeqCst)
    }

    /// Stores the response of a fetch that started at purge generation `since`. When a purge
    /// has run since, the response may be what was purged (fetched before the purge, landing
    /// after it), so it is removed again at once. Inserting before checking closes the race:
    /// a purge either bumps the generation before this check, or finds the entry in its scan.
    pub async fn insert_fetched(&self, key: CacheKey, value: Arc<Stored>, since: u64) -> bool {
        if !self.insert(key.clone(), value).await {
            return false;
        }
        if self.generation() != since {
            self.cache.invalidate(&key).await;
            return false;
        }
        true
    }

    pub async fn remove(&self, key: &CacheKey) {
        self.cache.invalidate(key).await;
    }

    /// Removes every entry whose path (any host) equals `path`, or starts with it when
    /// `prefix` is set; returns how many. Each match is invalidated by key, at once: moka's
    /// `invalidate_entries_if` scans in maintenance batches and, when entries were inserted
    /// concurrently, retires its predicate before reaching a few of them, which then stay
    /// servable.
    pub async fn purge(&self, path: &str, prefix: bool) -> usize {
        self.purges.fetch_add(1, Ordering::SeqCst);
        let mut purged = 0;
        for (key, _) in self.cache.iter() {
            let hit = if prefix {
                key.path.starts_with(path)
            } else {
                &*key.path == path
            };
            if hit {
                self.cache.invalidate(&*key).await;
                purged += 1;
            }
        }
        purged
    }

    /// Applies pending evictions and invalidations so the counts below are current.
    pub async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }

    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub fn removals(&self) -> &RemovalCounts {
        &self.removals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body_len: usize, max_age: u64) -> Arc<Stored> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("max-age={max_age}")).unwrap(),
        );
        let now = SystemTime::now();
        let cfg = PolicyConfig {
            default_stale_if_error: Duration::ZERO,
            ..PolicyConfig::default()
        };
        let f = Freshness::new(&cfg, StatusCode::OK, &h, now, now);
        Arc::new(Stored::new(
            &cfg,
            StatusCode::OK,
            h,
            &[Bytes::from(vec![7u8; body_len])],
            f,
            Vec::new(),
        ))
    }

    fn counter() -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(prometheus::Opts::new("e", "e"), &["cause"]).unwrap()
    }

    fn key(p: &str) -> CacheKey {
        CacheKey {
            host: "h".into(),
            path: p.into(),
        }
    }

    #[tokio::test]
    async fn capacity_bounds_bytes_and_lru_admits_newest() {
        let store = Store::new(1 << 20, 512 << 10, counter());
        for i in 0..40 {
            assert!(
                store
                    .insert(key(&format!("/seg{i}")), entry(100_000, 600))
                    .await
            );
            store.sync().await;
        }
        assert!(
            store.weighted_size() <= 1 << 20,
            "{}",
            store.weighted_size()
        );
        // The newest segment is always admitted, the oldest were evicted.
        assert!(store.get(&key("/seg39")).await.is_some());
        assert!(store.get(&key("/seg0")).await.is_none());
        assert!(store.removals().size.load(Ordering::Relaxed) > 0);
        // Larger than the maximum object size: refused.
        assert!(!store.insert(key("/big"), entry(600 << 10, 600)).await);
    }

    #[tokio::test]
    async fn entries_expire_after_retention_and_purge_by_prefix() {
        let store = Store::new(1 << 20, 1 << 20, counter());
        store.insert(key("/a/1"), entry(10, 0)).await;
        store.insert(key("/a/2"), entry(10, 600)).await;
        store.insert(key("/b/1"), entry(10, 600)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            store.get(&key("/a/1")).await.is_none(),
            "max-age=0 without validator expires"
        );
        assert_eq!(store.purge("/a/", true).await, 1);
        assert!(store.get(&key("/a/2")).await.is_none());
        assert!(store.get(&key("/b/1")).await.is_some());
        assert_eq!(store.purge("/b/1", false).await, 1);
        assert!(store.get(&key("/b/1")).await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn purge_removes_every_match_after_concurrent_inserts() {
        let store = Store::new(8 << 20, 1 << 20, counter());
        let mut writers = tokio::task::JoinSet::new();
        for t in 0..4 {
            let s = store.clone();
            writers.spawn(async move {
                for i in 0..600 {
                    s.insert(key(&format!("/p/{t}-{i}")), entry(300, 600)).await;
                }
            });
        }
        while let Some(r) = writers.join_next().await {
            r.unwrap();
        }
        store.insert(key("/q/kept"), entry(300, 600)).await;
        store.sync().await;
        assert_eq!(store.purge("/p/", true).await, 2400);
        store.sync().await;
        let mut left = 0;
        for t in 0..4 {
            for i in 0..600 {
                left += store.get(&key(&format!("/p/{t}-{i}"))).await.is_some() as usize;
            }
        }
        assert_eq!(left, 0, "purged entries still served");
        assert_eq!(store.entry_count(), 1);
        assert!(store.get(&key("/q/kept")).await.is_some());
    }

    #[test]
    fn expiry_on_the_edge_clock_matches_retention() {
        // max-age=60, no validator, no stale windows: kept 60 s from its arrival.
        let e = entry(1, 60);
        assert_eq!(e.retention, Duration::from_secs(60));
        let arrived = e.freshness.response_time;
        assert!(!e.expired(arrived + Duration::from_millis(59_999)));
        assert!(e.expired(arrived + Duration::from_secs(60)));
    }

    #[test]
    fn variant_matching() {
        let mut e = Arc::try_unwrap(entry(1, 60)).unwrap();
        e.vary = vec![(http::header::ACCEPT_ENCODING, Some("gzip".into()))];
        let mut req = HeaderMap::new();
        req.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        assert!(e.matches_variant(&req));
        req.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("br"),
        );
        assert!(!e.matches_variant(&req));
    }
}
