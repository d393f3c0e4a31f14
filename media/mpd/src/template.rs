//! SegmentTemplate URL templates: `$RepresentationID$`, `$Number$`, `$Time$`, `$Bandwidth$`
//! (the last three with an optional `%0Nd` width) and `$$`, parsed once and expanded per segment.

use std::fmt::Write;

/// Widest `%0Nd` accepted; wider tags are refused so a template cannot ask for huge padding.
const MAX_WIDTH: usize = 32;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    RepresentationId,
    Number(usize),
    Time(usize),
    Bandwidth(usize),
}

/// A parsed `SegmentTemplate@media` / `@initialization` / `@index` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values substituted into a template.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateVars<'a> {
    pub representation_id: &'a str,
    pub bandwidth: u64,
    pub number: u64,
    pub time: u64,
}

impl Template {
    /// Parses a template; the error names the offending identifier.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let end = after
                .find('$')
                .ok_or_else(|| format!("unterminated `$` in template `{text}`"))?;
            let ident = &after[..end];
            rest = &after[end + 1..];
            if ident.is_empty() {
                literal.push('$');
                continue;
            }
            let (name, width) = match ident.split_once('%') {
                Some((name, fmt)) => (name, Some(parse_width(fmt, text)?)),
                None => (ident, None),
            };
            let part = match name {
                "RepresentationID" => {
                    if width.is_some() {
                        return Err(format!(
                            "$RepresentationID$ takes no width tag in template `{text}`"
                        ));
                    }
                    Part::RepresentationId
                }
                "Number" => Part::Number(width.unwrap_or(0)),
                "Time" => Part::Time(width.unwrap_or(0)),
                "Bandwidth" => Part::Bandwidth(width.unwrap_or(0)),
                _ => {
                    return Err(format!(
                        "unknown identifier `${ident}$` in template `{text}`"
                    ))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// True when the template uses `$Number$`.
    pub fn uses_number(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Number(_)))
    }

    /// True when the template uses `$Time$`.
    pub fn uses_time(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Time(_)))
    }

    /// Substitutes the identifiers.
    pub fn expand(&self, vars: &TemplateVars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::RepresentationId => out.push_str(vars.representation_id),
                Part::Number(w) => {
                    let _ = write!(out, "{:0w$}", vars.number, w = *w);
                }
                Part::Time(w) => {
                    let _ = write!(out, "{:0w$}", vars.time, w = *w);
                }
                Part::Bandwidth(w) => {
                    let _ = write!(out, "{:0w$}", vars.bandwidth, w = *w);
                }
            }
        }
        out
    }
}

fn parse_width(fmt: &str, text: &str) -> Result<usize, String> {
    let digits = fmt
        .strip_prefix('0')
        .and_then(|f| f.strip_suffix('d'))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("bad width tag `%{fmt}` in template `{text}` (expected %0Nd)"))?;
    let width: usize = digits
        .parse()
        .map_err(|_| format!("bad width tag `%{fmt}` in template `{text}`"))?;
    if width > MAX_WIDTH {
        return Err(format!(
            "width tag `%{fmt}` wider than {MAX_WIDTH} in template `{text}`"
        ));
    }
    Ok(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(t: &str, number: u64, time: u64) -> String {
        Template::parse(t).unwrap().expand(&TemplateVars {
            representation_id: "v1",
            bandwidth: 800_000,
            number,
            time,
        })
    }

    #[test]
    fn identifiers() {
        assert_eq!(
            expand("$RepresentationID$/seg-$Number$.m4s", 7, 0),
            "v1/seg-7.m4s"
        );
        assert_eq!(expand("seg-$Number%05d$.m4s", 42, 0), "seg-00042.m4s");
        assert_eq!(expand("t$Time$.m4s", 0, 180180), "t180180.m4s");
        assert_eq!(expand("b$Bandwidth$-$Number%03d$", 1, 0), "b800000-001");
        assert_eq!(expand("cost$$5-$Number$", 3, 0), "cost$5-3");
        assert_eq!(expand("$Number%02d$", 12345, 0), "12345");
        assert_eq!(expand("init.mp4", 0, 0), "init.mp4");
        assert_eq!(expand("$Time%010d$", 0, 90000), "0000090000");
    }

    #[test]
    fn uses() {
        let t = Template::parse("$RepresentationID$_$Number$").unwrap();
        assert!(t.uses_number() && !t.uses_time());
        let t = Template::parse("$Time$").unwrap();
        assert!(t.uses_time() && !t.uses_number());
    }

    #[test]
    fn rejects() {
        for bad in [
            "$Number",
            "$Foo$",
            "$RepresentationID%05d$",
            "$Number%5d$",
            "$Number%0d$",
            "$Number%05x$",
            "$Number%099d$",
            "a$b",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should fail");
        }
    }
}
