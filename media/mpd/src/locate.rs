//! The syntax pass of the parser: walks the document once with the quick-xml pull reader,
//! rejects malformed XML with the exact line and column, and keeps a light element tree
//! (local names, byte offsets of tags and attribute values) so that later errors about a model
//! value can point at the element and attribute it came from.

use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::MpdError;

/// Deepest element nesting accepted (the serde deserializer recurses per level).
const MAX_DEPTH: usize = 100;

/// A step in a model path: the `index`-th child element called `name`.
pub(crate) type Step = (&'static str, usize);

#[derive(Debug)]
pub(crate) struct Node {
    name: String,
    /// Byte offset of the `<`.
    start: usize,
    /// Byte offset just past the `>` of the start tag.
    tag_end: usize,
    attrs: Vec<Attr>,
    children: Vec<usize>,
}

#[derive(Debug)]
struct Attr {
    name: String,
    /// Byte offset of the attribute name.
    pos: usize,
    value: String,
}

/// The element tree of a well-formed document; node 0 is the root.
#[derive(Debug)]
pub(crate) struct Doc<'a> {
    src: &'a str,
    nodes: Vec<Node>,
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.to_string(),
    }
}

impl<'a> Doc<'a> {
    /// Checks that `src` is well-formed XML whose root element is `MPD`, and indexes it.
    pub(crate) fn scan(src: &'a str) -> Result<Doc<'a>, MpdError> {
        let mut reader = Reader::from_str(src);
        reader.config_mut().check_end_names = true;
        let mut nodes: Vec<Node> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut root_closed = false;
        loop {
            let before = reader.buffer_position() as usize;
            let event = match reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let pos = reader.error_position() as usize;
                    return Err(syntax(src, pos, e.to_string()));
                }
            };
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(event, Event::Empty(_));
                    let start = src[before..].find('<').map_or(before, |p| before + p);
                    if root_closed {
                        return Err(syntax(src, start, "content after the root element".into()));
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(syntax(
                            src,
                            start,
                            format!("elements nested deeper than {MAX_DEPTH}"),
                        ));
                    }
                    let node = Node {
                        name: local(e.name().as_ref()),
                        start,
                        tag_end: reader.buffer_position() as usize,
                        attrs: attributes(src, e, start)?,
                        children: Vec::new(),
                    };
                    let idx = nodes.len();
                    match stack.last() {
                        Some(&parent) => nodes[parent].children.push(idx),
                        None => {
                            if node.name != "MPD" {
                                return Err(syntax(
                                    src,
                                    start,
                                    format!("root element is <{}>, expected <MPD>", node.name),
                                ));
                            }
                        }
                    }
                    nodes.push(node);
                    if empty {
                        if stack.is_empty() {
                            root_closed = true;
                        }
                    } else {
                        stack.push(idx);
                    }
                }
                Event::End(_) => {
                    stack.pop();
                    if stack.is_empty() {
                        root_closed = true;
                    }
                }
                Event::Text(ref t) if stack.is_empty() && !t.xml10_content().trim().is_empty() => {
                    return Err(syntax(src, before, "text outside the root element".into()));
                }
                Event::GeneralRef(ref r) => {
                    let name: String = r.as_ref().to_string();
                    let known = matches!(name.as_str(), "lt" | "gt" | "amp" | "apos" | "quot")
                        || char_ref(&name).is_some();
                    if !known {
                        return Err(syntax(src, before, format!("unknown entity `&{name};`")));
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if let Some(&open) = stack.last() {
            let n = &nodes[open];
            return Err(syntax(
                src,
                n.start,
                format!("element <{}> is never closed", n.name),
            ));
        }
        if nodes.is_empty() {
            return Err(syntax(
                src,
                src.len(),
                "no root element (expected <MPD>)".into(),
            ));
        }
        Ok(Doc { src, nodes })
    }

    /// The node at a model path below the root (`[]` is the root `MPD`).
    fn find(&self, path: &[Step]) -> Option<usize> {
        let mut cur = 0usize;
        for &(name, index) in path {
            cur = *self.nodes[cur]
                .children
                .iter()
                .filter(|&&c| self.nodes[c].name == name)
                .nth(index)?;
        }
        Some(cur)
    }

    /// Line and column of an element (or of one of its attributes, when present) at a model path.
    pub(crate) fn position(&self, path: &[Step], attr: Option<&str>) -> (usize, usize) {
        let Some(node) = self.find(path) else {
            return (1, 1);
        };
        let n = &self.nodes[node];
        let offset = attr
            .and_then(|a| n.attrs.iter().find(|x| x.name == a))
            .map_or(n.start, |a| a.pos);
        line_col(self.src, offset)
    }

    /// Every attribute of the document: (element local name, attribute local name, value,
    /// 1-based line and column of the attribute).
    pub(crate) fn attributes(&self) -> impl Iterator<Item = (&str, &str, &str, (usize, usize))> {
        self.nodes.iter().flat_map(move |n| {
            n.attrs.iter().map(move |a| {
                (
                    n.name.as_str(),
                    a.name.as_str(),
                    a.value.as_str(),
                    line_col(self.src, a.pos),
                )
            })
        })
    }

    /// Where a serde error happened: the reader stopped at byte `stop`; when the error carries the
    /// offending attribute text, point at the attribute holding it in the element just read.
    pub(crate) fn serde_position(
        &self,
        stop: usize,
        value: Option<&str>,
    ) -> ((usize, usize), Option<String>) {
        let mut candidates: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.tag_end <= stop.max(1))
            .collect();
        candidates.reverse();
        if let Some(v) = value {
            let any = self.nodes.iter().rev();
            for n in candidates.iter().copied().chain(any) {
                if let Some(a) = n.attrs.iter().find(|a| a.value == v) {
                    return (
                        line_col(self.src, a.pos),
                        Some(format!("<{}> attribute `{}`", n.name, a.name)),
                    );
                }
            }
        }
        match candidates.first() {
            Some(n) => (line_col(self.src, n.start), Some(format!("<{}>", n.name))),
            None => (line_col(self.src, stop), None),
        }
    }
}

fn char_ref(name: &str) -> Option<char> {
    let num = name.strip_prefix('#')?;
    let code = match num.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => num.parse().ok()?,
    };
    char::from_u32(code)
}

fn attributes(src: &str, e: &BytesStart<'_>, tag_start: usize) -> Result<Vec<Attr>, MpdError> {
    let base = src.as_ptr() as usize;
    let mut out = Vec::new();
    for attr in e.attributes().with_checks(true) {
        let attr = attr.map_err(|err| {
            let rel = match err {
                AttrError::ExpectedEq(p)
                | AttrError::ExpectedValue(p)
                | AttrError::UnquotedValue(p)
                | AttrError::ExpectedQuote(p, _)
                | AttrError::Duplicated(p, _) => p,
            };
            syntax(src, tag_start + 1 + rel, format!("bad attribute: {err}"))
        })?;
        let name_ptr = attr.key.as_ref().as_ptr() as usize;
        let pos = name_ptr
            .checked_sub(base)
            .filter(|p| *p <= src.len())
            .unwrap_or(tag_start);
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| syntax(src, pos, format!("bad attribute value: {err}")))?
            .into_owned();
        out.push(Attr {
            name: local(attr.key.as_ref()),
            pos,
            value,
        });
    }
    Ok(out)
}

fn syntax(src: &str, offset: usize, message: String) -> MpdError {
    let (line, column) = line_col(src, offset);
    MpdError::Syntax {
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let s = "ab\ncdé\nf";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 3), (2, 1));
        assert_eq!(line_col(s, 7), (2, 4));
        assert_eq!(line_col(s, 100), (3, 2));
    }

    #[test]
    fn finds_paths_and_attributes() {
        let src = "<MPD>\n<Period id=\"a\"/>\n<Period>\n  <AdaptationSet  lang=\"en\"/>\n</Period>\n</MPD>";
        let doc = Doc::scan(src).unwrap();
        assert_eq!(doc.position(&[("Period", 1)], None), (3, 1));
        assert_eq!(
            doc.position(&[("Period", 1), ("AdaptationSet", 0)], Some("lang")),
            (4, 19)
        );
        assert_eq!(doc.position(&[("Period", 0)], Some("id")), (2, 9));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let cases = [
            ("<MPD>\n  <Period>\n</MPD>", 3),
            ("<MPD>\n<Period a=\"1\" a=\"2\"/></MPD>", 2),
            ("<MPD>\n\n<Period a=1/></MPD>", 3),
            ("<Foo/>", 1),
            ("<MPD>\n<Period>", 2),
            ("<MPD>&bogus;</MPD>", 1),
            ("", 1),
        ];
        for (src, want_line) in cases {
            match Doc::scan(src) {
                Err(MpdError::Syntax { line, .. }) => assert_eq!(line, want_line, "{src:?}"),
                other => panic!("{src:?}: expected a syntax error, got {other:?}"),
            }
        }
    }
}
