//! The store's weigh invariant, measured with a counting allocator: an entry's weight covers
//! every byte the cache holds for it (key, headers, body, the entry structs and moka's own
//! bookkeeping), also when the response was parsed out of a larger shared read buffer, as
//! hyper does for header values and small bodies; and the weight does not overstate that
//! memory by much, so the configured capacity is the memory the cache really uses. Also the
//! disk tier's index cost per object (`edge::disk::INDEX_BYTES_PER_OBJECT`).

mod support;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use edge::key::CacheKey;
use edge::policy::{Freshness, PolicyConfig};
use edge::store::{Store, Stored};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use support::counting::{live_allocs, live_bytes, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The allocator's counts are global: the tests of this binary measure one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Entries per measurement: enough that moka's fixed structures are a small share.
const ENTRIES: usize = 4000;
/// Size of the read buffer each response is parsed from (hyper's initial read buffer).
const READ_BUFFER: usize = 8192;

/// A response parsed the way hyper's HTTP/1 client does it: one read buffer holds the head and
/// the body; header values and the body are slices of it.
fn parsed_response(i: usize, shape: Shape) -> (HeaderMap, Bytes) {
    let body_len = shape.body;
    let mut fields: Vec<(String, String)> = vec![
        ("content-type", "application/dash+xml".into()),
        ("content-length", body_len.to_string()),
        ("cache-control", "public, max-age=600".into()),
        ("etag", format!("\"{i:x}-5f3a9c\"")),
        // Dated now (HTTP dates have a fixed length): a fixed date would leave the entries
        // expired, and gone from the store, once the test runs later than its freshness.
        (
            "last-modified",
            httpdate::fmt_http_date(SystemTime::now() - std::time::Duration::from_secs(3600)),
        ),
        ("date", httpdate::fmt_http_date(SystemTime::now())),
        ("accept-ranges", "bytes".into()),
        ("x-origin-request-id", format!("req-{i:08}")),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    for j in 0..shape.extra_headers {
        let name = if shape.repeated {
            "x-extra".to_string()
        } else {
            format!("x-extra-{j}")
        };
        fields.push((name, format!("extra value {j} of {i}")));
    }
    let mut buf = BytesMut::with_capacity(READ_BUFFER.max(body_len + 1024));
    let mut spans = Vec::new();
    for (name, value) in &fields {
        let start = buf.len();
        buf.extend_from_slice(value.as_bytes());
        spans.push((name.clone(), start..buf.len()));
    }
    let body_start = buf.len();
    buf.extend(std::iter::repeat_n(b'x', body_len));
    let shared = buf.freeze();
    let mut headers = HeaderMap::new();
    for (name, span) in spans {
        let value = HeaderValue::from_maybe_shared(shared.slice(span)).unwrap();
        headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
    }
    (headers, shared.slice(body_start..))
}

/// What the measured responses look like.
#[derive(Debug, Clone, Copy)]
struct Shape {
    body: usize,
    /// Custom header fields beyond the eight every response has.
    extra_headers: usize,
    /// The extra fields are values of one name rather than names of their own.
    repeated: bool,
    /// Varies on Accept-Encoding.
    vary: bool,
}

fn key(i: usize) -> CacheKey {
    CacheKey {
        host: "edge.test:8080".into(),
        path: format!("/vod/demo/manifest.mpd?bust={i}").into(),
    }
}

fn entry(i: usize, shape: Shape) -> (CacheKey, Arc<Stored>) {
    let cfg = PolicyConfig::default();
    let now = SystemTime::now();
    let (headers, body) = parsed_response(i, shape);
    let vary = if shape.vary {
        vec![(http::header::ACCEPT_ENCODING, Some("gzip, br".to_string()))]
    } else {
        Vec::new()
    };
    let freshness = Freshness::new(&cfg, StatusCode::OK, &headers, now, now);
    let stored = Stored::new(&cfg, StatusCode::OK, headers, &[body], freshness, vary);
    (key(i), Arc::new(stored))
}

/// Inserts `n` entries of `shape` and serves each once; returns (real bytes per entry, weight
/// per entry).
async fn measure(n: usize, shape: Shape) -> (f64, f64) {
    let evictions =
        prometheus::IntCounterVec::new(prometheus::Opts::new("e", "e"), &["cause"]).unwrap();
    let store = Store::new(1 << 30, 1 << 30, evictions);
    // Let moka allocate its fixed structures before the baseline.
    let (k, v) = entry(usize::MAX, shape);
    store.insert(k.clone(), v).await;
    store.sync().await;
    store.remove(&k).await;
    store.sync().await;
    let (before, allocs_before) = (live_bytes(), live_allocs());
    for i in 0..n {
        let (k, v) = entry(i, shape);
        store.insert(k, v).await;
        if i % 512 == 0 {
            store.sync().await;
        }
    }
    store.sync().await;
    // Serve each entry once: a hit clones its header values and body.
    for i in 0..n {
        let hit = store.get(&key(i)).await.expect("stored");
        drop((hit.headers(), hit.body.clone()));
    }
    assert_eq!(store.entry_count(), n as u64);
    let real = (live_bytes() - before) as f64 / n as f64;
    let allocs = (live_allocs() - allocs_before) as f64 / n as f64;
    let weight = store.weighted_size() as f64 / n as f64;
    eprintln!(
        "{shape:?}: real {real:.0} B per entry ({allocs:.1} allocations), weight {weight:.0} B"
    );
    (real, weight)
}

#[tokio::test]
async fn weight_covers_what_an_entry_holds() {
    let _serial = SERIAL.lock().await;
    let shapes = [
        (0, 0, false, false),
        (300, 0, false, false),
        (300, 16, false, true),
        (300, 6, true, false),
        (300, 40, true, true),
        (4000, 0, false, false),
        (64 << 10, 0, false, false),
    ];
    for (body, extra_headers, repeated, vary) in shapes {
        let shape = Shape {
            body,
            extra_headers,
            repeated,
            vary,
        };
        let (real, weight) = measure(ENTRIES, shape).await;
        assert!(
            weight >= real,
            "{shape:?}: an entry weighs {weight:.0} B but holds {real:.0} B"
        );
        assert!(
            weight <= real * 1.1 + 64.0,
            "{shape:?}: an entry weighs {weight:.0} B but holds only {real:.0} B"
        );
    }
}

/// The disk index's memory per object, measured right after its hash table grew (its emptiest,
/// so its costliest per entry): at most the stated `INDEX_BYTES_PER_OBJECT` plus the key's text,
/// and not far below it.
#[tokio::test]
async fn disk_index_cost_per_object_is_as_stated() {
    use edge::disk::{DiskMetrics, DiskOptions, DiskStore, INDEX_BYTES_PER_OBJECT};
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = edge::metrics::Metrics::new("w").unwrap();
    let store = DiskStore::open(DiskOptions {
        dir: dir.path().to_path_buf(),
        capacity: 1 << 40,
        policy: PolicyConfig::default(),
        clock: Arc::new(edge::SystemClock),
        purges: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        metrics: DiskMetrics::from(&metrics),
    })
    .unwrap();
    store.loaded().await;
    let shape = Shape {
        body: 0,
        extra_headers: 0,
        repeated: false,
        vary: false,
    };
    let (_, e) = entry(0, shape);
    let body = || vec![Bytes::from_static(b"segment")];
    let warm = CacheKey {
        host: "warm".into(),
        path: "/".into(),
    };
    // The blocking pool's thread and its buffers exist before the baseline.
    for _ in 0..3 {
        assert!(store.insert_fetched(&warm, &e, body(), 0).await);
    }
    // 3585 entries: one more than 7/8 of 4096 buckets, so the table has just doubled.
    let n = 3585;
    let before = live_bytes();
    let mut text = 0;
    for i in 0..n {
        let k = key(i);
        text += k.host.len() + k.path.len();
        assert!(store.insert_fetched(&k, &e, body(), 0).await);
    }
    let per_object = (live_bytes() - before - text as i64) as f64 / n as f64;
    eprintln!("disk index: {per_object:.0} B per object plus its key's text");
    assert_eq!(store.objects(), n + 1);
    let stated = INDEX_BYTES_PER_OBJECT as f64;
    assert!(
        per_object <= stated,
        "{per_object:.0} B > stated {stated} B"
    );
    assert!(
        per_object >= stated * 0.7,
        "{per_object:.0} B: the stated {stated} B is stale"
    );
}
