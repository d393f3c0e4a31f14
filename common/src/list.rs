//! Comma-separated field values (RFC 9110 section 5.6.1), split once for every list-valued field
//! the stack reads: Cache-Control's directives and If-Match / If-None-Match's entity tags.
//!
//! A comma inside double quotes does not split. What a backslash means inside the quotes differs
//! between the two grammars, so the caller says which one its field uses:
//! - [`Quoting::QuotedString`]: `quoted-string` with `quoted-pair` (section 5.6.4), as in a
//!   directive's argument: `\"` is an escaped quote and does not close the string;
//! - [`Quoting::EntityTag`]: `entity-tag` (section 8.8.3), where `\` is an ordinary `etagc`
//!   character and the next `"` always closes the tag.

/// Which grammar the quoted parts of a list follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// `quoted-string`: a backslash escapes the next character.
    QuotedString,
    /// `entity-tag`: a backslash is an ordinary character.
    EntityTag,
}

/// Splits a list into its members, trimmed of optional whitespace, empty members dropped (the
/// `#rule` allows them and recipients ignore them).
pub fn split(text: &str, quoting: Quoting) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted && quoting == Quoting::QuotedString => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_inside_quotes_do_not_split() {
        assert_eq!(
            split(
                r#"max-age=60, no-cache="a, b" ,, private"#,
                Quoting::QuotedString
            ),
            vec!["max-age=60", r#"no-cache="a, b""#, "private"]
        );
        assert_eq!(
            split(r#""x,1", W/"y""#, Quoting::EntityTag),
            vec![r#""x,1""#, r#"W/"y""#]
        );
    }

    #[test]
    fn a_backslash_escapes_only_in_quoted_strings() {
        // In a quoted-string, \" does not close it, so the comma stays inside.
        assert_eq!(
            split(r#"a="x\", y", b"#, Quoting::QuotedString),
            vec![r#"a="x\", y""#, "b"]
        );
        // In an entity tag, \ is a plain character and the quote closes the tag.
        assert_eq!(
            split(r#""x\", "y""#, Quoting::EntityTag),
            vec![r#""x\""#, r#""y""#]
        );
    }

    #[test]
    fn empty_and_blank_lists_have_no_members() {
        assert!(split("", Quoting::QuotedString).is_empty());
        assert!(split(" , ,", Quoting::EntityTag).is_empty());
    }
}
