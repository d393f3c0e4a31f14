//! Fuzz check: any text through the coverage-zone JSON parser, and every network it
//! accepts through the CIDR parser; an accepted prefix fits its family and has no host bits.

use dns_router::geo::{mask, parse_cidr, parse_coverage_zone};

fn check_cidr(cidr: &str) {
    if let Ok((addr, len)) = parse_cidr(cidr) {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        assert!(len <= bits, "{cidr}: prefix {len} fits the family");
        assert_eq!(mask(addr, len), addr, "{cidr}: host bits cleared");
    }
}

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // The raw text is also tried as one CIDR, so the CIDR parser sees arbitrary input.
    check_cidr(&text);
    let Ok(zones) = parse_coverage_zone(&text, "fuzz.json") else {
        return;
    };
    for (_name, loc) in zones {
        for n in loc.network.iter().chain(loc.network6.iter()) {
            check_cidr(n);
        }
    }
}
