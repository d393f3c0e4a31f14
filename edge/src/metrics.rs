//! The edge's Prometheus metrics, one registry per instance: requests by cache status, bytes
//! served from cache and from upstream, upstream requests and latency by status, stored bytes
//! and objects, evictions, latency histograms, purges; the abuse limits (requests refused per
//! client limit, upstream fetch slots in use, waiting and refused); the disk tier (hits by tier, bytes used
//! and capacity, objects, reads, writes, errors, evictions, index reload time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::cache_status::Label;

/// Latency buckets from 100 µs to 30 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

pub struct Metrics {
    pub registry: Registry,
    /// Per cache-status label (indexed by [`Label`]): the request counter and duration
    /// histogram, resolved once.
    by_status: Vec<(IntCounter, prometheus::Histogram)>,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub served_bytes: IntCounterVec,
    /// `served_bytes`' series for "cache" and "upstream", resolved once.
    served_cache: IntCounter,
    served_upstream: IntCounter,
    pub upstream_bytes: IntCounter,
    pub upstream_requests: IntCounterVec,
    pub upstream_latency: HistogramVec,
    pub stored_bytes: IntGauge,
    pub stored_objects: IntGauge,
    pub evictions: IntCounterVec,
    pub open_connections: IntGauge,
    pub purges: IntCounter,
    pub inflight_fetches: IntGauge,
    /// Requests answered 429, by the per-client limit that refused them (`requests`, `misses`).
    pub rate_limited: IntCounterVec,
    /// Upstream exchanges holding one of the `max_upstream_fetches` slots now.
    pub upstream_fetches_inflight: IntGauge,
    /// Upstream exchanges waiting for a slot now.
    pub upstream_queue_depth: IntGauge,
    /// Upstream exchanges refused a slot (503), by reason (`queue_full`, `timeout`).
    pub upstream_rejected: IntCounterVec,
    /// Stored responses used (fresh or stale), by the tier they came from.
    pub tier_hits: IntCounterVec,
    /// `tier_hits`' series for "memory" and "disk", resolved once.
    pub tier_memory: IntCounter,
    pub tier_disk: IntCounter,
    pub disk_capacity_bytes: IntGauge,
    pub disk_used_bytes: IntGauge,
    pub disk_objects: IntGauge,
    pub disk_read_bytes: IntCounter,
    pub disk_write_bytes: IntCounter,
    pub disk_errors: IntCounterVec,
    pub disk_evictions: IntCounter,
    pub disk_index_load_seconds: prometheus::Gauge,
    pub disk_loading: IntGauge,
    pub disk_writes_suspended: IntGauge,
    /// Every body byte handed to clients, for the /health rate.
    pub served_total: Arc<AtomicU64>,
}

impl Metrics {
    pub fn new(name: &str) -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(
            None,
            Some(std::iter::once(("edge".to_string(), name.to_string())).collect()),
        )?;
        let requests = IntCounterVec::new(
            Opts::new("edge_requests_total", "Requests by cache status"),
            &["cache_status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "edge_request_duration_seconds",
                "Time from request to response head, by cache status",
            )
            .buckets(BUCKETS.to_vec()),
            &["cache_status"],
        )?;
        let served_bytes = IntCounterVec::new(
            Opts::new(
                "edge_served_bytes_total",
                "Body bytes sent to clients, by source (cache: stored before the request; \
                 upstream: streamed from a fetch)",
            ),
            &["source"],
        )?;
        let upstream_bytes = IntCounter::new(
            "edge_upstream_bytes_total",
            "Body bytes read from parents and the origin",
        )?;
        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "edge_upstream_requests_total",
                "Upstream requests by tier and status",
            ),
            &["tier", "status"],
        )?;
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "edge_upstream_first_byte_seconds",
                "Upstream time to response head, by tier and status",
            )
            .buckets(BUCKETS.to_vec()),
            &["tier", "status"],
        )?;
        let stored_bytes = IntGauge::new("edge_stored_bytes", "Weighted bytes in the cache")?;
        let stored_objects = IntGauge::new("edge_stored_objects", "Objects in the cache")?;
        let evictions = IntCounterVec::new(
            Opts::new(
                "edge_evictions_total",
                "Entries removed by the store, by cause",
            ),
            &["cause"],
        )?;
        let open_connections =
            IntGauge::new("edge_open_connections", "Client connections open now")?;
        let purges = IntCounter::new("edge_purges_total", "Accepted PURGE requests")?;
        let inflight_fetches = IntGauge::new(
            "edge_inflight_fetches",
            "Upstream fetches shared by waiting requests, running now",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "edge_rate_limited_total",
                "Requests answered 429 by a per-client limit, by limit (requests, misses)",
            ),
            &["limit"],
        )?;
        for l in crate::limits::Limit::ALL {
            rate_limited.with_label_values(&[l.label()]);
        }
        let upstream_fetches_inflight = IntGauge::new(
            "edge_upstream_fetches_inflight",
            "Upstream exchanges holding a fetch slot now (max_upstream_fetches)",
        )?;
        let upstream_queue_depth = IntGauge::new(
            "edge_upstream_queue_depth",
            "Upstream exchanges waiting for a fetch slot now",
        )?;
        let upstream_rejected = IntCounterVec::new(
            Opts::new(
                "edge_upstream_rejected_total",
                "Upstream exchanges refused a fetch slot (answered 503), by reason \
                 (queue_full, timeout)",
            ),
            &["reason"],
        )?;
        for r in ["queue_full", "timeout"] {
            upstream_rejected.with_label_values(&[r]);
        }
        let tier_hits = IntCounterVec::new(
            Opts::new(
                "edge_tier_hits_total",
                "Stored responses used (fresh or stale), by tier (memory, disk)",
            ),
            &["tier"],
        )?;
        let disk_capacity_bytes = IntGauge::new(
            "edge_disk_capacity_bytes",
            "Configured size of the disk tier",
        )?;
        let disk_used_bytes = IntGauge::new(
            "edge_disk_used_bytes",
            "Bytes the disk tier's files occupy (rounded to allocation units)",
        )?;
        let disk_objects = IntGauge::new("edge_disk_objects", "Objects in the disk tier")?;
        let disk_read_bytes = IntCounter::new(
            "edge_disk_read_bytes_total",
            "Bytes read from the disk tier",
        )?;
        let disk_write_bytes = IntCounter::new(
            "edge_disk_write_bytes_total",
            "Bytes written to the disk tier (files published)",
        )?;
        let disk_errors = IntCounterVec::new(
            Opts::new(
                "edge_disk_errors_total",
                "Disk tier failures by op (read, write, corrupt: a file failing its checks)",
            ),
            &["op"],
        )?;
        let disk_evictions = IntCounter::new(
            "edge_disk_evictions_total",
            "Objects evicted from the disk tier to stay within its size",
        )?;
        let disk_index_load_seconds = prometheus::Gauge::new(
            "edge_disk_index_load_seconds",
            "Time the last rebuild of the disk index took at start",
        )?;
        let disk_loading = IntGauge::new(
            "edge_disk_loading",
            "1 while the disk index is being rebuilt",
        )?;
        let disk_writes_suspended = IntGauge::new(
            "edge_disk_writes_suspended",
            "1 while disk writes are off after a write error (memory-only)",
        )?;
        for l in ["memory", "disk"] {
            tier_hits.with_label_values(&[l]);
        }
        for op in ["read", "write", "corrupt"] {
            disk_errors.with_label_values(&[op]);
        }
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tier_hits.clone()),
            Box::new(disk_capacity_bytes.clone()),
            Box::new(disk_used_bytes.clone()),
            Box::new(disk_objects.clone()),
            Box::new(disk_read_bytes.clone()),
            Box::new(disk_write_bytes.clone()),
            Box::new(disk_errors.clone()),
            Box::new(disk_evictions.clone()),
            Box::new(disk_index_load_seconds.clone()),
            Box::new(disk_loading.clone()),
            Box::new(disk_writes_suspended.clone()),
            Box::new(request_duration.clone()),
            Box::new(served_bytes.clone()),
            Box::new(upstream_bytes.clone()),
            Box::new(upstream_requests.clone()),
            Box::new(upstream_latency.clone()),
            Box::new(stored_bytes.clone()),
            Box::new(stored_objects.clone()),
            Box::new(evictions.clone()),
            Box::new(open_connections.clone()),
            Box::new(purges.clone()),
            Box::new(inflight_fetches.clone()),
            Box::new(rate_limited.clone()),
            Box::new(upstream_fetches_inflight.clone()),
            Box::new(upstream_queue_depth.clone()),
            Box::new(upstream_rejected.clone()),
        ] {
            registry.register(c)?;
        }
        let by_status = Label::ALL
            .iter()
            .map(|l| {
                (
                    requests.with_label_values(&[l.as_str()]),
                    request_duration.with_label_values(&[l.as_str()]),
                )
            })
            .collect();
        Ok(Metrics {
            served_cache: served_bytes.with_label_values(&["cache"]),
            served_upstream: served_bytes.with_label_values(&["upstream"]),
            tier_memory: tier_hits.with_label_values(&["memory"]),
            tier_disk: tier_hits.with_label_values(&["disk"]),
            registry,
            by_status,
            requests,
            request_duration,
            served_bytes,
            upstream_bytes,
            upstream_requests,
            upstream_latency,
            stored_bytes,
            stored_objects,
            evictions,
            open_connections,
            purges,
            inflight_fetches,
            rate_limited,
            upstream_fetches_inflight,
            upstream_queue_depth,
            upstream_rejected,
            tier_hits,
            disk_capacity_bytes,
            disk_used_bytes,
            disk_objects,
            disk_read_bytes,
            disk_write_bytes,
            disk_errors,
            disk_evictions,
            disk_index_load_seconds,
            disk_loading,
            disk_writes_suspended,
            served_total: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Counts one request with cache status `label` that took `seconds` to its response head.
    pub fn observe_request(&self, label: Label, seconds: f64) {
        let (count, duration) = &self.by_status[label as usize];
        count.inc();
        duration.observe(seconds);
    }

    /// A tally for bytes served from `source` ("cache" or "upstream").
    pub fn tally(&self, source: &str) -> ByteTally {
        ByteTally {
            counter: match source {
                "cache" => self.served_cache.clone(),
                "upstream" => self.served_upstream.clone(),
                other => self.served_bytes.with_label_values(&[other]),
            },
            total: self.served_total.clone(),
            upstream: None,
        }
    }

    /// A tally for bytes relayed straight from upstream: counted as served and as read upstream.
    pub fn relay_tally(&self) -> ByteTally {
        ByteTally {
            upstream: Some(self.upstream_bytes.clone()),
            ..self.tally("upstream")
        }
    }
}

/// Counts body bytes as they are sent.
#[derive(Clone)]
pub struct ByteTally {
    counter: IntCounter,
    total: Arc<AtomicU64>,
    upstream: Option<IntCounter>,
}

impl ByteTally {
    pub fn add(&self, n: u64) {
        self.counter.inc_by(n);
        self.total.fetch_add(n, Ordering::Relaxed);
        if let Some(u) = &self.upstream {
            u.inc_by(n);
        }
    }
}
