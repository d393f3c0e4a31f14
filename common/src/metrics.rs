//! Prometheus text exposition of a per-instance registry (never the process-global one, since
//! one process may run an origin, several edges and the DNS router side by side).

use prometheus::{Encoder, Registry, TextEncoder};

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric family of `registry` in the text format.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 * 1024);
    // Encoding into a Vec cannot fail for I/O reasons; a malformed family is skipped by the encoder.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    buf
}

/// An HTTP response carrying the registry's metrics.
pub fn response(registry: &Registry) -> http::Response<crate::http::Body> {
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(crate::http::full(render(registry)))
        .unwrap_or_else(|_| http::Response::new(crate::http::empty()))
}

/// Reads a text exposition (as scraped from `/metrics`): the sum of every sample of `name`
/// whose labels include all of `labels`. Used by the demo's summary and by tests.
pub fn sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let wanted = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|kv| kv.split_once('=') == Some((k, &format!("\"{v}\""))))
            });
            if wanted {
                value.parse::<f64>().ok()
            } else {
                None
            }
        })
        .fold(0.0, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let registry = Registry::new();
        let c = prometheus::IntCounter::new("demo_total", "a demo counter").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let text = String::from_utf8(render(&registry)).unwrap();
        assert!(text.contains("demo_total 3"), "{text}");
    }

    #[test]
    fn sum_adds_matching_series() {
        let text = "# HELP x y\nreq_total{a=\"1\",b=\"hit\"} 3\nreq_total{a=\"2\",b=\"hit\"} 4\n\
                    req_total{a=\"2\",b=\"miss\"} 5\nother 9\n";
        assert_eq!(sum(text, "req_total", &[("b", "hit")]), 7.0);
        assert_eq!(sum(text, "req_total", &[("a", "2"), ("b", "hit")]), 4.0);
        assert_eq!(sum(text, "req_total", &[]), 12.0);
        assert_eq!(sum(text, "other", &[]), 9.0);
        assert_eq!(sum(text, "missing", &[]), 0.0);
        assert!(
            sum(text, "missing", &[]).is_sign_positive(),
            "an empty sum prints as -0"
        );
    }
}
