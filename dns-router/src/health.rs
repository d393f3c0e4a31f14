//! Active health checks of the edges: one task per edge GETs its `/health` on an interval, and a
//! rise/fall state machine turns results into up/down. The answer path reads the outcome from
//! atomics (no locks).
//!
//! The `/health` body this router understands (all fields optional):
//! `{"status": "up", "load": 0.42}`. `load` is compared with the edge's configured `capacity`
//! (default 1.0, so a load given as a fraction of the edge's capacity spills at 1.0; this is what
//! the `edge` crate reports). Without `load`, `active_connections` divided by the report's
//! `capacity` is used when both are there, else `active_connections` alone. `status` other than
//! `up`/`ok`/`pass`/`healthy` counts as a failed check. An empty or non-JSON body on a 2xx means
//! up with load 0. A non-2xx status, a timeout, a refused connection or a malformed JSON object
//! is a failure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{GaugeVec, IntGaugeVec};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::config::HealthConfig;
use crate::steering::EdgeStatus;

/// Live state of one edge.
#[derive(Debug)]
pub struct EdgeHealth {
    pub name: String,
    pub url: Option<String>,
    up: AtomicBool,
    load: AtomicU64,
    capacity: AtomicU64,
}

impl EdgeHealth {
    pub fn new(name: String, url: Option<String>, capacity: f64) -> Self {
        EdgeHealth {
            name,
            url,
            up: AtomicBool::new(true),
            load: AtomicU64::new(0f64.to_bits()),
            capacity: AtomicU64::new(capacity.to_bits()),
        }
    }
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    pub fn load(&self) -> f64 {
        f64::from_bits(self.load.load(Ordering::Relaxed))
    }
    pub fn capacity(&self) -> f64 {
        f64::from_bits(self.capacity.load(Ordering::Relaxed))
    }
    pub fn status(&self) -> EdgeStatus {
        EdgeStatus {
            up: self.is_up(),
            overloaded: self.load() >= self.capacity(),
        }
    }
    fn set(&self, up: bool, load: f64, capacity: f64) {
        self.load.store(load.to_bits(), Ordering::Relaxed);
        self.capacity.store(capacity.to_bits(), Ordering::Relaxed);
        self.up.store(up, Ordering::Relaxed);
    }
}

/// The health of every edge of one configuration, indexed like its edges.
#[derive(Debug, Default)]
pub struct HealthTable {
    pub edges: Vec<EdgeHealth>,
}

impl HealthTable {
    /// Carries the current state over from `old` for edges with the same name and URL, so a
    /// reload does not forget that an edge is down.
    pub fn inherit(&self, old: &HealthTable) {
        for e in &self.edges {
            if let Some(o) = old
                .edges
                .iter()
                .find(|o| o.name == e.name && o.url == e.url)
            {
                e.set(o.is_up(), o.load(), e.capacity());
            }
        }
    }
}

/// A parsed `/health` body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub up: bool,
    pub load: f64,
}

#[derive(Deserialize)]
struct ReportJson {
    status: Option<String>,
    load: Option<f64>,
    active_connections: Option<f64>,
    capacity: Option<f64>,
}

/// Interprets a 2xx `/health` body (see the module docs for the shape).
pub fn parse_report(body: &[u8]) -> Result<Report, String> {
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if !t.starts_with('{') {
        return Ok(Report {
            up: true,
            load: 0.0,
        });
    }
    let j: ReportJson =
        serde_json::from_str(t).map_err(|e| format!("malformed /health JSON: {e}"))?;
    let up = match j.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("up" | "ok" | "pass" | "healthy") => true,
        Some(_) => false,
    };
    let load = match (j.load, j.active_connections, j.capacity) {
        (Some(load), _, _) => load,
        (None, Some(active), Some(capacity)) if capacity > 0.0 => active / capacity,
        (None, Some(active), _) => active,
        (None, None, _) => 0.0,
    };
    if !load.is_finite() || load < 0.0 {
        return Err(format!("load {load} is not a finite, non-negative number"));
    }
    Ok(Report { up, load })
}

/// Rise/fall hysteresis: `fall` failures in a row take an up edge down, `rise` successes in a
/// row bring a down edge up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    pub up: bool,
    streak: u32,
}

impl Tracker {
    pub fn new(up: bool) -> Self {
        Tracker { up, streak: 0 }
    }
    /// Records one check; returns the new state when it changed.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise }.max(1);
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// Gauges the checkers keep current.
#[derive(Clone)]
pub struct HealthGauges {
    pub up: IntGaugeVec,
    pub load: GaugeVec,
}

/// The client the checkers fetch health pages with: `http://`, and `https://` verified against
/// the system roots and `[health] ca_file` (an error names it when it cannot be loaded).
pub fn fetcher(cfg: &HealthConfig) -> anyhow::Result<common::http::Fetcher> {
    common::http::Fetcher::new(&common::tls::Roots {
        ca_files: cfg.ca_file.iter().cloned().collect(),
        system: true,
    })
    .map_err(|e| anyhow::anyhow!("[health] ca_file: {e:#}"))
}

/// Runs the checker tasks of one health table; dropping or stopping it ends them.
pub struct Checkers {
    tasks: Vec<JoinHandle<()>>,
}

impl Checkers {
    /// Starts one task per edge that has a health URL, fetching with `fetcher`.
    pub fn start(
        table: Arc<HealthTable>,
        cfg: &HealthConfig,
        gauges: HealthGauges,
        fetcher: common::http::Fetcher,
    ) -> Checkers {
        let mut tasks = Vec::new();
        for i in 0..table.edges.len() {
            let edge = &table.edges[i];
            gauges
                .up
                .with_label_values(&[&edge.name])
                .set(edge.is_up() as i64);
            gauges
                .load
                .with_label_values(&[&edge.name])
                .set(edge.load());
            let Some(url) = edge.url.clone() else {
                continue;
            };
            let (table, cfg, gauges) = (table.clone(), cfg.clone(), gauges.clone());
            let fetcher = fetcher.clone();
            tasks.push(tokio::spawn(async move {
                let edge = &table.edges[i];
                let capacity = edge.capacity();
                let mut tracker = Tracker::new(edge.is_up());
                let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms.max(10)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
                    let result = match tokio::time::timeout(timeout, fetcher.get(&url)).await {
                        Ok(Ok(body)) => parse_report(&body),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    };
                    let ok = matches!(result, Ok(Report { up: true, .. }));
                    if let Some(now_up) = tracker.observe(ok, cfg.rise, cfg.fall) {
                        match &result {
                            Err(e) => tracing::warn!(edge = %edge.name, %url, up = now_up, error = %e, "edge health changed"),
                            Ok(r) => tracing::warn!(edge = %edge.name, %url, up = now_up, load = r.load, "edge health changed"),
                        }
                    }
                    let load = match result {
                        Ok(r) => r.load,
                        Err(_) => edge.load(),
                    };
                    edge.set(tracker.up, load, capacity);
                    gauges.up.with_label_values(&[&edge.name]).set(tracker.up as i64);
                    gauges.load.with_label_values(&[&edge.name]).set(load);
                }
            }));
        }
        Checkers { tasks }
    }

    /// Stops every checker task.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_ca_file_is_an_error_naming_it() {
        let cfg = HealthConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..HealthConfig::default()
        };
        let err = fetcher(&cfg).err().expect("a missing ca_file fails");
        let text = format!("{err:#}");
        assert!(
            text.contains("ca_file") && text.contains("/nonexistent/ca.pem"),
            "{text}"
        );
        fetcher(&HealthConfig::default()).expect("no ca_file: the system roots");
    }

    #[test]
    fn rise_and_fall() {
        let mut t = Tracker::new(true);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(
            t.observe(true, 2, 3),
            None,
            "a success resets the failure streak"
        );
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), None);
        assert_eq!(t.observe(false, 2, 3), Some(false));
        assert!(!t.up);
        assert_eq!(t.observe(true, 2, 3), None);
        assert_eq!(t.observe(true, 2, 3), Some(true));
    }

    #[test]
    fn report_shapes() {
        assert_eq!(
            parse_report(b"").unwrap(),
            Report {
                up: true,
                load: 0.0,
            }
        );
        assert_eq!(parse_report(b"OK\n").unwrap().load, 0.0);
        let r = parse_report(br#"{"status":"up","load":0.3}"#).unwrap();
        assert_eq!((r.up, r.load), (true, 0.3));
        let r = parse_report(br#"{"active_connections":7,"capacity":28}"#).unwrap();
        assert_eq!((r.up, r.load), (true, 0.25));
        assert_eq!(
            parse_report(br#"{"active_connections":7}"#).unwrap().load,
            7.0
        );
        // The edge crate's report: load is a fraction, capacity is in bytes per second.
        let edge = br#"{"status":"up","name":"region1","active_connections":3,"bytes_per_sec":1000,"capacity":12500000,"load":0.004}"#;
        assert_eq!(
            parse_report(edge).unwrap(),
            Report {
                up: true,
                load: 0.004
            }
        );
        assert!(!parse_report(br#"{"status":"draining"}"#).unwrap().up);
        assert!(parse_report(b"{not json").is_err());
        assert!(parse_report(br#"{"load":"high"}"#).is_err());
        assert!(parse_report(br#"{"load":-1}"#).is_err());
    }

    #[test]
    fn status_compares_load_with_capacity() {
        let e = EdgeHealth::new("e".into(), None, 10.0);
        assert_eq!(
            e.status(),
            EdgeStatus {
                up: true,
                overloaded: false
            }
        );
        e.set(true, 10.0, 10.0);
        assert!(e.status().overloaded, "load at capacity spills");
        e.set(false, 1.0, 10.0);
        assert!(!e.status().up);
    }
}
