//! Attribute value types of the MPD (xs:duration, xs:dateTime, frame rates, byte ranges) and the
//! serde glue that parses and formats every typed attribute through one trait, so that a bad
//! value is reported with the exact text that failed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Marks the offending text inside a serde error message so the parser can find the attribute
/// that carried it (XML 1.0 forbids U+0001 in documents, so it never collides with real text).
pub(crate) const VALUE_MARK: char = '\u{1}';

/// A typed attribute value: parsed leniently from the document text and formatted canonically.
pub trait AttrValue: Sized {
    /// Parses the attribute text; the error says what was expected.
    fn parse_attr(text: &str) -> Result<Self, String>;
    /// Formats the value as the schema expects it.
    fn format_attr(&self) -> String;
}

macro_rules! int_attr {
    ($($t:ty => $what:literal),*) => {$(
        impl AttrValue for $t {
            fn parse_attr(text: &str) -> Result<Self, String> {
                text.trim().parse::<$t>().map_err(|_| format!("expected {}", $what))
            }
            fn format_attr(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
int_attr!(u32 => "an unsigned 32-bit integer", u64 => "an unsigned integer", i64 => "an integer");

impl AttrValue for f64 {
    fn parse_attr(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let v = match text {
            "INF" => f64::INFINITY,
            "-INF" => f64::NEG_INFINITY,
            _ => text
                .parse::<f64>()
                .map_err(|_| "expected a decimal number".to_string())?,
        };
        if v.is_nan() {
            return Err("expected a decimal number, not NaN".into());
        }
        Ok(v)
    }
    fn format_attr(&self) -> String {
        if self.is_infinite() {
            if *self > 0.0 {
                "INF".into()
            } else {
                "-INF".into()
            }
        } else {
            self.to_string()
        }
    }
}

impl AttrValue for bool {
    fn parse_attr(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn format_attr(&self) -> String {
        self.to_string()
    }
}

impl AttrValue for Duration {
    fn parse_attr(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
    fn format_attr(&self) -> String {
        format_duration(*self)
    }
}

impl AttrValue for DateTime<Utc> {
    fn parse_attr(text: &str) -> Result<Self, String> {
        parse_datetime(text)
    }
    fn format_attr(&self) -> String {
        format_datetime(self)
    }
}

/// Parses an ISO 8601 / xs:duration such as `PT1M30.5S`, `P1DT2H` or `PT0S`.
///
/// Years count as 365 days and months as 30 days (DASH durations in practice use only
/// D/H/M/S). A negative duration is an error: no MPD duration can be negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.starts_with('-') {
        return Err(format!("negative duration `{s}`"));
    }
    let rest = s
        .strip_prefix('P')
        .ok_or_else(|| format!("duration `{s}` must start with P"))?;
    let mut nanos: u128 = 0;
    let mut in_time = false;
    let mut any = false;
    let mut last_rank = 0u8;
    let mut chars = rest.char_indices().peekable();
    let mut start = 0usize;
    while let Some((i, c)) = chars.next() {
        if c == 'T' {
            if in_time || i != start {
                return Err(format!("misplaced T in duration `{s}`"));
            }
            in_time = true;
            start = i + 1;
            if chars.peek().is_none() {
                return Err(format!("duration `{s}` has T without a time part"));
            }
            continue;
        }
        if c.is_ascii_digit() || c == '.' || c == ',' {
            continue;
        }
        let number = &rest[start..i];
        if number.is_empty() {
            return Err(format!("missing number before {c} in duration `{s}`"));
        }
        let (rank, unit_secs): (u8, u128) = match (in_time, c) {
            (false, 'Y') => (1, 365 * 86_400),
            (false, 'M') => (2, 30 * 86_400),
            (false, 'W') => (3, 7 * 86_400),
            (false, 'D') => (4, 86_400),
            (true, 'H') => (5, 3_600),
            (true, 'M') => (6, 60),
            (true, 'S') => (7, 1),
            _ => return Err(format!("unexpected `{c}` in duration `{s}`")),
        };
        if rank <= last_rank {
            return Err(format!("duration `{s}` has its components out of order"));
        }
        last_rank = rank;
        nanos = nanos
            .checked_add(
                decimal_nanos(number, unit_secs)
                    .ok_or_else(|| format!("bad number in duration `{s}`"))?,
            )
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
        any = true;
        start = i + c.len_utf8();
    }
    if start != rest.len() {
        return Err(format!("duration `{s}` ends with a number without a unit"));
    }
    if !any {
        return Err(format!("duration `{s}` has no components"));
    }
    let secs =
        u64::try_from(nanos / 1_000_000_000).map_err(|_| format!("duration `{s}` is too large"))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// `number` (digits with an optional fraction) times `unit_secs`, in nanoseconds, exactly up to
/// nanosecond precision.
fn decimal_nanos(number: &str, unit_secs: u128) -> Option<u128> {
    let number = number.replace(',', ".");
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number.as_str(), ""),
    };
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let int_val: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int_val.checked_mul(unit_secs)?.checked_mul(1_000_000_000)?;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(18).collect();
        let scale = 10u128.pow(digits.len() as u32);
        let f: u128 = digits.parse().ok()?;
        total = total.checked_add(f * unit_secs * 1_000_000_000 / scale)?;
    }
    Some(total)
}

/// Formats a duration as xs:duration: `PT0S`, `PT2S`, `PT1M30.5S`, `PT26H`.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let nanos = d.subsec_nanos();
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || nanos > 0 || (h == 0 && m == 0) {
        out.push_str(&s.to_string());
        if nanos > 0 {
            let frac = format!("{nanos:09}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push('S');
    }
    out
}

/// Parses xs:dateTime. A value without a zone (allowed by the schema, seen in the wild) is
/// taken as UTC.
pub fn parse_datetime(text: &str) -> Result<DateTime<Utc>, String> {
    let s = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|_| format!("expected an xs:dateTime like 2024-01-01T00:00:00Z, got `{s}`"))
}

/// Formats xs:dateTime in UTC with a `Z` and only the fractional digits needed.
pub fn format_datetime(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `@frameRate`: `30` or `30000/1001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    pub fn new(num: u32, den: u32) -> Self {
        FrameRate { num, den }
    }
    /// Frames per second.
    pub fn as_f64(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// A decimal frame rate as written by some packagers (`15.00`, `29.97`, `23.976`; not in the
/// schema's `[0-9]+(/[0-9]+)?` but read by every browser player) as an exact reduced fraction.
fn decimal_frame_rate(s: &str) -> Option<(u32, u32)> {
    let (int, frac) = s.split_once('.')?;
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let den = 10u64.pow(frac.len() as u32);
    let int_val: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_val: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let num = int_val.checked_mul(den)?.checked_add(frac_val)?;
    let g = gcd(num, den);
    let (num, den) = (num / g, den / g);
    Some((u32::try_from(num).ok()?, u32::try_from(den).ok()?))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl AttrValue for FrameRate {
    fn parse_attr(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let bad = || format!("expected a frame rate like 30 or 30000/1001, got `{s}`");
        let (num, den) = match s.split_once('/') {
            Some((n, d)) => (n.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?),
            None if s.contains('.') => decimal_frame_rate(s).ok_or_else(bad)?,
            None => (s.parse().map_err(|_| bad())?, 1),
        };
        if den == 0 {
            return Err(format!("frame rate `{s}` has a zero denominator"));
        }
        Ok(FrameRate { num, den })
    }
    fn format_attr(&self) -> String {
        self.to_string()
    }
}

/// A single RFC 7233 byte range `first-last` (both inclusive), as in `@indexRange`,
/// `@mediaRange` and `Initialization@range`. `last` may be open (`first-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    pub first: u64,
    pub last: Option<u64>,
}

impl ByteRange {
    pub fn new(first: u64, last: u64) -> Self {
        ByteRange {
            first,
            last: Some(last),
        }
    }
    /// The value of an HTTP `Range` header for this range.
    pub fn to_header(&self) -> String {
        format!("bytes={self}")
    }
    /// Number of bytes, when the range is closed.
    pub fn len(&self) -> Option<u64> {
        self.last
            .and_then(|l| l.checked_sub(self.first)?.checked_add(1))
    }
    /// True when the range is closed and empty (never produced by the parser).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last {
            Some(l) => write!(f, "{}-{}", self.first, l),
            None => write!(f, "{}-", self.first),
        }
    }
}

impl FromStr for ByteRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ByteRange::parse_attr(s)
    }
}

impl AttrValue for ByteRange {
    fn parse_attr(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let bad = || format!("expected a byte range like 0-999, got `{s}`");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u64 = a.parse().map_err(|_| bad())?;
        let last = if b.is_empty() {
            None
        } else {
            Some(b.parse::<u64>().map_err(|_| bad())?)
        };
        if let Some(l) = last {
            if l < first {
                return Err(format!("byte range `{s}` ends before it starts"));
            }
        }
        Ok(ByteRange { first, last })
    }
    fn format_attr(&self) -> String {
        self.to_string()
    }
}

/// `MPD@type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresentationType {
    /// On demand: every segment exists.
    #[default]
    Static,
    /// Live: segments appear over time and the MPD may be updated.
    Dynamic,
}

impl AttrValue for PresentationType {
    fn parse_attr(text: &str) -> Result<Self, String> {
        match text.trim() {
            "static" => Ok(PresentationType::Static),
            "dynamic" => Ok(PresentationType::Dynamic),
            _ => Err("expected static or dynamic".into()),
        }
    }
    fn format_attr(&self) -> String {
        match self {
            PresentationType::Static => "static".into(),
            PresentationType::Dynamic => "dynamic".into(),
        }
    }
}

fn marked_error<E: serde::de::Error>(text: &str, message: String) -> E {
    E::custom(format!("{VALUE_MARK}{text}{VALUE_MARK}{message}"))
}

/// serde glue for an optional typed attribute: `#[serde(with = "attr::opt")]`.
pub(crate) mod opt {
    use super::{marked_error, AttrValue};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AttrValue>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.format_attr()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: AttrValue>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(d)?;
        T::parse_attr(&text)
            .map(Some)
            .map_err(|m| marked_error(&text, m))
    }
}

/// serde glue for `@presentationTimeOffset`: an unsigned integer, but a negative one (written
/// by some packagers, refused by the schema) is read as 0 like browser players do; the parser
/// reports the repair as a warning.
pub(crate) mod clamped {
    use super::{marked_error, AttrValue};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        super::opt::serialize(v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let text = String::deserialize(d)?;
        if let Some(abs) = text.trim().strip_prefix('-') {
            if !abs.is_empty() && abs.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(Some(0));
            }
        }
        u64::parse_attr(&text)
            .map(Some)
            .map_err(|m| marked_error(&text, m))
    }
}

/// serde glue for a required typed attribute: `#[serde(with = "attr::req")]`.
pub(crate) mod req {
    use super::{marked_error, AttrValue};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: AttrValue>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.format_attr())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: AttrValue>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::parse_attr(&text).map_err(|m| marked_error(&text, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        parse_duration(s).unwrap()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(d("PT1M30.5S"), Duration::from_millis(90_500));
        assert_eq!(d("P1DT2H"), Duration::from_secs(26 * 3600));
        assert_eq!(d("PT0S"), Duration::ZERO);
        assert_eq!(d("PT20.0S"), Duration::from_secs(20));
        assert_eq!(d("P0Y0M0DT0H3M30.000S"), Duration::from_secs(210));
        assert_eq!(d("PT0.000000001S"), Duration::from_nanos(1));
        assert_eq!(d("P1W"), Duration::from_secs(7 * 86_400));
        assert_eq!(d(" PT2S "), Duration::from_secs(2));
    }

    #[test]
    fn durations_reject() {
        for bad in [
            "", "P", "PT", "-PT1S", "PT1", "1S", "PT1H2", "PTS", "PT1S2M", "P1H", "PT1D",
            "PT1..5S", "PTxS",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
        assert!(parse_duration("P99999999999999999999999Y").is_err());
    }

    #[test]
    fn durations_format_round_trip() {
        for (text, want) in [
            ("PT1M30.5S", "PT1M30.5S"),
            ("P1DT2H", "PT26H"),
            ("PT0S", "PT0S"),
            ("PT4.0S", "PT4S"),
        ] {
            let v = d(text);
            assert_eq!(format_duration(v), want);
            assert_eq!(d(want), v);
        }
        assert_eq!(
            format_duration(Duration::new(3661, 250_000_000)),
            "PT1H1M1.25S"
        );
    }

    #[test]
    fn datetimes() {
        let t = parse_datetime("2024-03-01T12:00:00Z").unwrap();
        assert_eq!(format_datetime(&t), "2024-03-01T12:00:00Z");
        let t2 = parse_datetime("2024-03-01T13:00:00+01:00").unwrap();
        assert_eq!(t, t2);
        let t3 = parse_datetime("2024-03-01T12:00:00").unwrap();
        assert_eq!(t, t3);
        let t4 = parse_datetime("2024-03-01T12:00:00.250Z").unwrap();
        assert_eq!(format_datetime(&t4), "2024-03-01T12:00:00.250Z");
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn frame_rates_and_ranges() {
        assert_eq!(
            FrameRate::parse_attr("30000/1001").unwrap(),
            FrameRate::new(30000, 1001)
        );
        assert_eq!(FrameRate::parse_attr("25").unwrap().to_string(), "25");
        assert!(FrameRate::parse_attr("30/0").is_err());
        assert_eq!(
            FrameRate::parse_attr("15.00").unwrap(),
            FrameRate::new(15, 1)
        );
        assert_eq!(
            FrameRate::parse_attr("29.97").unwrap(),
            FrameRate::new(2997, 100)
        );
        assert_eq!(
            FrameRate::parse_attr("23.976").unwrap(),
            FrameRate::new(2997, 125)
        );
        assert_eq!(FrameRate::parse_attr("25.").unwrap(), FrameRate::new(25, 1));
        for bad in [
            "1.2.3",
            ".",
            "-15.0",
            "15.0000000001",
            "99999999999.5",
            "1e3",
        ] {
            assert!(FrameRate::parse_attr(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ByteRange::parse_attr("0-99").unwrap(),
            ByteRange::new(0, 99)
        );
        assert_eq!(ByteRange::new(0, 99).to_header(), "bytes=0-99");
        assert_eq!(ByteRange::new(10, 19).len(), Some(10));
        assert!(ByteRange::parse_attr("9-1").is_err());
        assert!(ByteRange::parse_attr("abc").is_err());
        assert_eq!(ByteRange::parse_attr("5-").unwrap().last, None);
    }
}
