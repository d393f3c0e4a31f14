//! Access log lines in the Combined Log Format that log tools read (GoAccess, AWStats, `awk`):
//! one line per request,
//!
//! ```text
//! 127.0.0.1 - - [04/Dec/2026:10:01:23 +0000] "GET /vod/demo/manifest.mpd HTTP/1.1" 200 1503 "-" "curl/8.5.0" 0.000412
//! ```
//!
//! with the request time in seconds appended as nginx's `$request_time` is, and any further
//! `name=value` fields a server adds (the edge adds its cache outcome). Servers emit each line as
//! a `tracing` event of target [`TARGET`] whose message is the whole line; the `cdn` binary writes
//! those events, bare, to standard output and everything else to standard error. Access logging
//! is off unless asked for (`--access-log`), so a flood of requests adds no log lines by default.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode, Version};

/// The `tracing` target of access log events.
pub const TARGET: &str = "access";

/// What one access log line records.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub peer: IpAddr,
    pub time: SystemTime,
    pub method: &'a Method,
    /// The request target as received (path and query).
    pub target: &'a str,
    pub version: Version,
    pub status: StatusCode,
    /// Body bytes sent, when known (`-` otherwise).
    pub bytes: Option<u64>,
    pub headers: &'a HeaderMap,
    pub elapsed: Duration,
}

impl Entry<'_> {
    /// The line, without a newline; `extra` fields (`name=value`, values without spaces) follow.
    pub fn line(&self, extra: &[(&str, &str)]) -> String {
        let mut s = String::with_capacity(160);
        let when = chrono::DateTime::<chrono::Utc>::from(self.time);
        let _ = write!(
            s,
            "{} - - [{}] \"",
            self.peer,
            when.format("%d/%b/%Y:%H:%M:%S +0000")
        );
        escape_into(&mut s, self.method.as_str().as_bytes());
        s.push(' ');
        escape_into(&mut s, self.target.as_bytes());
        let _ = write!(s, " {:?}\" {} ", self.version, self.status.as_u16());
        match self.bytes {
            Some(n) => {
                let _ = write!(s, "{n}");
            }
            None => s.push('-'),
        }
        for name in [http::header::REFERER, http::header::USER_AGENT] {
            s.push_str(" \"");
            match self.headers.get(&name) {
                Some(v) => escape_into(&mut s, v.as_bytes()),
                None => s.push('-'),
            }
            s.push('"');
        }
        let _ = write!(s, " {:.6}", self.elapsed.as_secs_f64());
        for (name, value) in extra {
            s.push(' ');
            s.push_str(name);
            s.push('=');
            escape_into(&mut s, value.as_bytes());
        }
        s
    }

    /// Emits the line as a `tracing` event of target [`TARGET`].
    pub fn emit(&self, extra: &[(&str, &str)]) {
        tracing::info!(target: TARGET, "{}", self.line(extra));
    }
}

/// Appends `text` with `"`, `\` and every byte outside printable ASCII (tabs, control bytes,
/// obs-text) written as `\xHH`, as nginx does, so that a line always splits into the same fields.
fn escape_into(out: &mut String, text: &[u8]) {
    for &b in text {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_line_in_combined_log_format() {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
        let entry = Entry {
            peer: "127.0.0.1".parse().unwrap(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_378_483),
            method: &Method::GET,
            target: "/vod/demo/manifest.mpd",
            version: Version::HTTP_11,
            status: StatusCode::OK,
            bytes: Some(1503),
            headers: &headers,
            elapsed: Duration::from_micros(412),
        };
        assert_eq!(
            entry.line(&[]),
            "127.0.0.1 - - [04/Dec/2026:10:01:23 +0000] \"GET /vod/demo/manifest.mpd HTTP/1.1\" \
             200 1503 \"-\" \"curl/8.5.0\" 0.000412"
        );
        let hit = Entry {
            bytes: None,
            version: Version::HTTP_2,
            ..entry
        };
        assert!(hit.line(&[("cache", "hit")]).ends_with(
            "\"GET /vod/demo/manifest.mpd HTTP/2.0\" 200 - \"-\" \"curl/8.5.0\" 0.000412 cache=hit"
        ));
    }

    #[test]
    fn quotes_and_control_bytes_cannot_forge_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "user-agent",
            HeaderValue::from_bytes(b"x\" 200 \"\\\tz\xff").unwrap(),
        );
        let line = Entry {
            peer: "::1".parse().unwrap(),
            time: SystemTime::UNIX_EPOCH,
            method: &Method::GET,
            target: "/a\"b",
            version: Version::HTTP_11,
            status: StatusCode::NOT_FOUND,
            bytes: Some(0),
            headers: &headers,
            elapsed: Duration::ZERO,
        }
        .line(&[]);
        assert_eq!(
            line,
            "::1 - - [01/Jan/1970:00:00:00 +0000] \"GET /a\\x22b HTTP/1.1\" 404 0 \"-\" \
             \"x\\x22 200 \\x22\\x5C\\x09z\\xFF\" 0.000000"
        );
        assert_eq!(line.matches('"').count(), 6, "{line}");
    }
}
