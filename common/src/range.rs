//! RFC 9110 section 14 byte ranges, as a pure decision over a Range header and the object length.
//!
//! Single ranges (`first-last`, `first-`, `-suffix`) give one 206 part. Several ranges are sorted
//! and coalesced when they overlap or touch; if more than one remains, the answer is
//! multipart/byteranges, unless there are more than `max_ranges` of them, in which case the
//! whole object is sent with 200 (a client asking for hundreds of tiny ranges gets no
//! amplification). A header that is not a valid `bytes` range set is ignored (200), as the
//! RFC requires; a valid set with no satisfiable range is 416.

use std::ops::Range;

/// The outcome of a Range header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Send the whole object (no or ignored Range).
    Full,
    /// Send these byte ranges (sorted, disjoint, non-empty; one means a single-part 206).
    Partial(Vec<Range<u64>>),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Decides the ranges of an object of `len` bytes for the Range header value `header`.
pub fn decide(header: &str, len: u64, max_ranges: usize) -> Ranges {
    let Some(set) = strip_unit(header) else {
        return Ranges::Full;
    };
    let mut ranges = Vec::new();
    let mut any_spec = false;
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        any_spec = true;
        match parse_spec(spec) {
            None => return Ranges::Full,
            Some(Spec::FromTo(first, last)) => {
                if last.is_some_and(|l| l < first) {
                    return Ranges::Full;
                }
                if first < len {
                    let end = last.map_or(len, |l| l.saturating_add(1).min(len));
                    ranges.push(first..end);
                }
            }
            Some(Spec::Suffix(n)) => {
                if n > 0 && len > 0 {
                    ranges.push(len - n.min(len)..len);
                }
            }
        }
    }
    if !any_spec {
        return Ranges::Full;
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() > max_ranges.max(1) {
        return Ranges::Full;
    }
    Ranges::Partial(merged)
}

fn strip_unit(header: &str) -> Option<&str> {
    let h = header.trim();
    let (unit, rest) = h.split_once('=')?;
    unit.trim().eq_ignore_ascii_case("bytes").then_some(rest)
}

enum Spec {
    FromTo(u64, Option<u64>),
    Suffix(u64),
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Absurdly long numbers saturate: they are beyond any object anyway.
        Some(s.parse::<u64>().unwrap_or(u64::MAX))
    };
    if a.is_empty() {
        Some(Spec::Suffix(num(b)?))
    } else if b.is_empty() {
        Some(Spec::FromTo(num(a)?, None))
    } else {
        Some(Spec::FromTo(num(a)?, Some(num(b)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(h: &str, len: u64) -> Ranges {
        decide(h, len, 16)
    }

    fn one(r: Range<u64>) -> Ranges {
        Ranges::Partial(vec![r])
    }

    fn p(v: &[Range<u64>]) -> Ranges {
        Ranges::Partial(v.to_vec())
    }

    #[test]
    fn single_ranges() {
        assert_eq!(d("bytes=0-99", 1000), one(0..100));
        assert_eq!(d("bytes=100-", 1000), one(100..1000));
        assert_eq!(d("bytes=-100", 1000), one(900..1000));
        assert_eq!(d("bytes=-5000", 1000), one(0..1000));
        assert_eq!(d("bytes=990-5000", 1000), one(990..1000));
        assert_eq!(d("Bytes = 0-0", 1000), one(0..1));
        assert_eq!(d("bytes=999-999", 1000), one(999..1000));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(d("bytes=1000-", 1000), Ranges::Unsatisfiable);
        assert_eq!(d("bytes=5000-6000", 1000), Ranges::Unsatisfiable);
        assert_eq!(d("bytes=-0", 1000), Ranges::Unsatisfiable);
        assert_eq!(d("bytes=0-1", 0), Ranges::Unsatisfiable);
        assert_eq!(d("bytes=2000-,3000-3001", 1000), Ranges::Unsatisfiable);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for h in [
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=",
            "bytes=1",
            "0-1",
            "bytes=--1",
            "bytes=1-2-3",
        ] {
            assert_eq!(d(h, 1000), Ranges::Full, "{h}");
        }
    }

    #[test]
    fn multiple_ranges_coalesce_and_are_capped() {
        assert_eq!(d("bytes=0-9,20-29", 1000), p(&[0..10, 20..30]));
        assert_eq!(d("bytes=20-29, 0-9", 1000), p(&[0..10, 20..30]));
        assert_eq!(d("bytes=0-9,5-19,20-29", 1000), one(0..30));
        assert_eq!(d("bytes=0-9,5000-6000", 1000), one(0..10));
        let many: Vec<String> = (0..20)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(d(&format!("bytes={}", many.join(",")), 1000), Ranges::Full);
    }
}
