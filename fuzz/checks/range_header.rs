//! Fuzz check: any Range header through the origin's multi-range decision and the
//! edge's single-range answer; every range either yields lies inside the object.

use http::{header, HeaderMap, HeaderValue};
use origin::range::{decide, Ranges};

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    // Small lengths most of the time so ranges hit the boundaries; sometimes huge ones.
    let len = match data[0] % 4 {
        0 => u64::from(data[1]),
        1 => u64::from(u16::from_le_bytes([data[1], data[2]])),
        2 => u64::MAX - u64::from(data[1]),
        _ => 0,
    };
    let max_ranges = usize::from(data[2] % 8);
    let text = String::from_utf8_lossy(&data[3..]);

    match decide(&text, len, max_ranges) {
        Ranges::Full | Ranges::Unsatisfiable => {}
        Ranges::Partial(parts) => {
            assert!(!parts.is_empty(), "a partial answer has a part");
            assert!(
                parts.len() <= max_ranges.max(1),
                "no more parts than allowed"
            );
            let mut prev_end = None;
            for r in &parts {
                assert!(r.start < r.end, "non-empty part {r:?}");
                assert!(r.end <= len, "part {r:?} inside length {len}");
                if let Some(p) = prev_end {
                    assert!(
                        r.start > p,
                        "parts sorted, disjoint, not touching: {parts:?}"
                    );
                }
                prev_end = Some(r.end);
            }
        }
    }

    let Ok(value) = HeaderValue::from_bytes(&data[3..]) else {
        return;
    };
    let mut request = HeaderMap::new();
    request.insert(header::RANGE, value);
    match edge::policy::range(&request, len) {
        edge::policy::RangeAnswer::Full | edge::policy::RangeAnswer::Unsatisfiable => {}
        edge::policy::RangeAnswer::Partial { start, end } => {
            assert!(start <= end, "edge range {start}-{end} ordered");
            assert!(end < len, "edge range {start}-{end} inside length {len}");
        }
    }
}
