//! The origin's Prometheus metrics, in a registry of its own (one per instance): requests by
//! method, status and kind of object, response body bytes, 304s, latency, open connections.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use crate::kind::Kind;

/// Metric handles of one origin instance.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub not_modified: IntCounterVec,
    pub duration: HistogramVec,
    pub open_connections: IntGauge,
    pub storage_errors: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "origin_http_requests_total",
                "HTTP requests answered, by method, status and kind of object",
            ),
            &["method", "status", "kind"],
        )?;
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "origin_http_response_bytes_total",
                "Response body bytes sent, by kind of object",
            ),
            &["kind"],
        )?;
        let not_modified = IntCounterVec::new(
            Opts::new(
                "origin_http_not_modified_total",
                "304 Not Modified answers, by kind of object",
            ),
            &["kind"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "origin_http_request_duration_seconds",
                "Time from request to response head, by kind of object",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["kind"],
        )?;
        let open_connections =
            IntGauge::new("origin_open_connections", "Client connections open now")?;
        let storage_errors = IntCounterVec::new(
            Opts::new(
                "origin_storage_errors_total",
                "Storage failures (answered 5xx), by backend",
            ),
            &["backend"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(not_modified.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(storage_errors.clone()))?;
        // Make the per-kind series visible from the start (a scrape sees zeros, not gaps).
        for k in Kind::ALL {
            response_bytes.with_label_values(&[k.label()]);
            not_modified.with_label_values(&[k.label()]);
        }
        Ok(Metrics {
            registry,
            requests,
            response_bytes,
            not_modified,
            duration,
            open_connections,
            storage_errors,
        })
    }
}
