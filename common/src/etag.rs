//! Entity tags (RFC 9110 section 8.8.3) as the origin and the edges compare them: parsing one
//! tag, reading If-Match / If-None-Match lists (several field lines, `*`, commas inside quoted
//! tags), and the strong and weak comparisons of section 8.8.3.2.

use http::{HeaderMap, HeaderName};

/// An entity tag as received: weak flag and opaque tag (with its quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub weak: bool,
    pub opaque: &'a str,
}

/// Parses `"xyz"` or `W/"xyz"`; anything else is `None`.
pub fn parse(s: &str) -> Option<Tag<'_>> {
    let s = s.trim();
    let (weak, rest) = match s.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.len() >= 2
        && rest.starts_with('"')
        && rest.ends_with('"')
        && !rest[1..rest.len() - 1].contains('"')
    {
        Some(Tag { weak, opaque: rest })
    } else {
        None
    }
}

/// A parsed If-Match / If-None-Match value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList<'a> {
    /// `*`: any current representation.
    Any,
    /// The well-formed tags listed (malformed members are skipped).
    Tags(Vec<Tag<'a>>),
}

impl TagList<'_> {
    /// Whether the list names `ours` by weak comparison (If-None-Match).
    pub fn matches_weak(&self, ours: Tag<'_>) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| weak_eq(*t, ours)),
        }
    }

    /// Whether the list names `ours` by strong comparison (If-Match).
    pub fn matches_strong(&self, ours: Tag<'_>) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| strong_eq(*t, ours)),
        }
    }
}

/// Parses every field line of `name` into one list; `None` if the header is absent.
pub fn list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<TagList<'a>> {
    let mut tags = Vec::new();
    let mut any = false;
    let mut present = false;
    for value in headers.get_all(name) {
        present = true;
        let Ok(text) = value.to_str() else { continue };
        for item in crate::list::split(text, crate::list::Quoting::EntityTag) {
            if item == "*" {
                any = true;
            } else if let Some(t) = parse(item) {
                tags.push(t);
            }
        }
    }
    if !present {
        None
    } else if any {
        Some(TagList::Any)
    } else {
        Some(TagList::Tags(tags))
    }
}

/// Strong comparison: both strong and the same opaque tag.
pub fn strong_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

/// Weak comparison: the same opaque tag, weak or not.
pub fn weak_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    a.opaque == b.opaque
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::IF_NONE_MATCH;
    use http::HeaderValue;

    #[test]
    fn parses_strong_weak_and_rejects_the_rest() {
        assert_eq!(
            parse(" \"a\" "),
            Some(Tag {
                weak: false,
                opaque: "\"a\""
            })
        );
        assert!(parse("W/\"a\"").unwrap().weak);
        for bad in ["a", "\"a", "W/a", "\"a\"b\"", "w/\"a\"", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_span_field_lines_and_keep_quoted_commas() {
        let mut h = HeaderMap::new();
        h.append(IF_NONE_MATCH, HeaderValue::from_static("\"a,b\", W/\"c\""));
        h.append(IF_NONE_MATCH, HeaderValue::from_static("junk, \"d\""));
        let Some(TagList::Tags(tags)) = list(&h, &IF_NONE_MATCH) else {
            panic!("a list")
        };
        let opaque: Vec<_> = tags.iter().map(|t| t.opaque).collect();
        assert_eq!(opaque, ["\"a,b\"", "\"c\"", "\"d\""]);
        let ours = parse("\"c\"").unwrap();
        assert!(TagList::Tags(tags.clone()).matches_weak(ours));
        assert!(!TagList::Tags(tags).matches_strong(ours), "W/\"c\" is weak");
        h.append(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(list(&h, &IF_NONE_MATCH), Some(TagList::Any));
        assert_eq!(list(&HeaderMap::new(), &IF_NONE_MATCH), None);
    }
}
