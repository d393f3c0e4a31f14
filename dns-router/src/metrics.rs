//! The router's Prometheus metrics, in a registry of its own (several routers may share a
//! process). Query counters are created up front for every (type, rcode, protocol) so the
//! answer path only does an atomic add.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::health::HealthGauges;
use crate::wire::{rcode, rtype};

/// Query types counted by name; everything else is `other`.
const QTYPES: [(u16, &str); 6] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::CNAME, "CNAME"),
    (rtype::NS, "NS"),
    (rtype::SOA, "SOA"),
    (rtype::ANY, "ANY"),
];
const RCODES: [(u16, &str); 7] = [
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
    (rcode::BADVERS, "BADVERS"),
];

/// Transport of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp = 0,
    Tcp = 1,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Every metric of one router instance.
pub struct Metrics {
    pub registry: Registry,
    queries: Vec<IntCounter>,
    pub dropped: IntCounter,
    latency: [Histogram; 2],
    pub steering: IntCounterVec,
    pub health: HealthGauges,
    pub reloads: IntCounterVec,
}

fn qtype_index(t: u16) -> usize {
    QTYPES
        .iter()
        .position(|(c, _)| *c == t)
        .unwrap_or(QTYPES.len())
}

fn rcode_index(r: u16) -> usize {
    RCODES.iter().position(|(c, _)| *c == r).unwrap_or(2)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let qv = IntCounterVec::new(
            Opts::new(
                "dns_queries_total",
                "DNS queries answered, by query type, response code and protocol",
            ),
            &["qtype", "rcode", "protocol"],
        )?;
        registry.register(Box::new(qv.clone()))?;
        let mut queries = Vec::new();
        let names = QTYPES.iter().map(|(_, n)| *n).chain(["other"]);
        for qt in names {
            for (_, rc) in RCODES {
                for proto in [Proto::Udp, Proto::Tcp] {
                    queries.push(qv.with_label_values(&[qt, rc, proto.label()]));
                }
            }
        }
        let dropped = IntCounter::new(
            "dns_dropped_total",
            "Packets dropped without an answer (too short, or not a query)",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let buckets = vec![
            0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5,
            0.005, 0.01, 0.05,
        ];
        let hv = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "dns_answer_seconds",
                "Time from a query's arrival to its answer being ready",
            )
            .buckets(buckets),
            &["protocol"],
        )?;
        registry.register(Box::new(hv.clone()))?;
        let latency = [
            hv.with_label_values(&["udp"]),
            hv.with_label_values(&["tcp"]),
        ];
        let steering = IntCounterVec::new(
            Opts::new(
                "dns_steering_decisions_total",
                "Edges chosen for CDN names, by client location and edge",
            ),
            &["location", "edge"],
        )?;
        registry.register(Box::new(steering.clone()))?;
        let up = IntGaugeVec::new(
            Opts::new(
                "dns_edge_up",
                "Edge health as the checks see it (1 up, 0 down)",
            ),
            &["edge"],
        )?;
        registry.register(Box::new(up.clone()))?;
        let load = GaugeVec::new(
            Opts::new("dns_edge_load", "Load last reported by the edge's /health"),
            &["edge"],
        )?;
        registry.register(Box::new(load.clone()))?;
        let reloads = IntCounterVec::new(
            Opts::new("dns_config_reloads_total", "Configuration reloads"),
            &["result"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        Ok(Metrics {
            registry,
            queries,
            dropped,
            latency,
            steering,
            health: HealthGauges { up, load },
            reloads,
        })
    }

    /// Counts one answered query.
    pub fn count(&self, qtype: u16, rcode: u16, proto: Proto) {
        let i = (qtype_index(qtype) * RCODES.len() + rcode_index(rcode)) * 2 + proto as usize;
        if let Some(c) = self.queries.get(i) {
            c.inc();
        }
    }

    /// Records the time taken to answer.
    pub fn observe_latency(&self, proto: Proto, seconds: f64) {
        self.latency[proto as usize].observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_the_right_series() {
        let m = Metrics::new().unwrap();
        m.count(rtype::AAAA, rcode::NXDOMAIN, Proto::Tcp);
        m.count(99, rcode::REFUSED, Proto::Udp);
        let text = String::from_utf8(common::metrics::render(&m.registry)).unwrap();
        assert!(
            text.contains(r#"dns_queries_total{protocol="tcp",qtype="AAAA",rcode="NXDOMAIN"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dns_queries_total{protocol="udp",qtype="other",rcode="REFUSED"} 1"#),
            "{text}"
        );
    }
}
