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
}
