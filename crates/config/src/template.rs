//! Redirect `location` templates, parsed and checked at config time so that the
//! proxy's expansion (`ballast_proxy::routing::redirect`) can never point a redirect
//! anywhere the operator did not write.
//!
//! Control path only. Written by hand: the grammar is small and its error messages
//! must say exactly what is allowed.

use serde::Serialize;

/// A redirect's `location`: text with `#{protocol}`, `#{host}`, `#{port}`, `#{path}`
/// and `#{query}` in it.
///
/// Checked so that expansion can never change where the redirect points beyond what
/// the operator wrote: the template is absolute (`http://`, `https://` or
/// `#{protocol}://`, then an authority made only of literal host characters,
/// `#{host}` and `#{port}`) or a path starting with exactly one `/`. `#{path}` and
/// `#{query}` may only stand after the authority. The proxy escapes what it puts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTemplate {
    text: String,
    /// The template cut into literals and placeholders.
    pub parts: Vec<TemplatePart>,
    /// How many leading parts make `scheme://authority`; 0 for a relative template.
    pub authority_parts: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Protocol,
    Host,
    Port,
    Path,
    Query,
}

impl RedirectTemplate {
    pub const ALLOWED: &'static str = "an absolute URL (\"https://#{host}/new#{path}\") or a path starting with one `/` (\"/new#{path}?#{query}\"); placeholders #{protocol}, #{host}, #{port}, #{path}, #{query}";

    pub fn parse(text: &str) -> Result<RedirectTemplate, String> {
        let bad = |why: &str| {
            Err(format!(
                "invalid redirect location {text:?}: {why}; expected {}",
                Self::ALLOWED
            ))
        };
        if text.len() > 2048 {
            return bad("longer than 2048 bytes");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains('\\') {
            return bad(
                "only visible ASCII without `\\` is allowed (no spaces, no control characters)",
            );
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find("#{") {
                Some(0) => {
                    let Some(end) = rest.find('}') else {
                        return bad("`#{` without a closing `}`");
                    };
                    parts.push(match &rest[2..end] {
                        "protocol" => TemplatePart::Protocol,
                        "host" => TemplatePart::Host,
                        "port" => TemplatePart::Port,
                        "path" => TemplatePart::Path,
                        "query" => TemplatePart::Query,
                        other => return bad(&format!("unknown placeholder #{{{other}}}")),
                    });
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    parts.push(TemplatePart::Literal(rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
        }
        let authority_parts = match authority_end(&parts) {
            Err(why) => return bad(&why),
            Ok(None) => 0,
            Ok(Some((i, 0))) => i,
            Ok(Some((i, at))) => {
                // Split the literal that holds the end of the authority there.
                if let Some(TemplatePart::Literal(l)) = parts.get_mut(i) {
                    let tail = l.split_off(at);
                    parts.insert(i + 1, TemplatePart::Literal(tail));
                }
                i + 1
            }
        };
        Ok(RedirectTemplate {
            text: text.to_string(),
            parts,
            authority_parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Where the authority of an absolute template ends, as (part, byte offset in that
/// part); `None` for a template that is a path.
fn authority_end(parts: &[TemplatePart]) -> Result<Option<(usize, usize)>, String> {
    let (mut i, mut off) = match parts.first() {
        Some(TemplatePart::Literal(l)) if l.starts_with("http://") || l.starts_with("https://") => {
            (0, l.find("://").map_or(0, |k| k + 3))
        }
        Some(TemplatePart::Protocol) => match parts.get(1) {
            Some(TemplatePart::Literal(l)) if l.starts_with("://") => (1, 3),
            _ => return Err("#{protocol} must be followed by `://`".into()),
        },
        Some(TemplatePart::Literal(l)) if l.starts_with("//") => {
            return Err("a location starting with `//` leaves the scheme to the client".into())
        }
        Some(TemplatePart::Literal(l)) if l.starts_with('/') => return Ok(None),
        _ => return Err("it is neither absolute nor a path".into()),
    };
    let empty_authority = || Err("the authority (host) after `://` is empty".to_string());
    let mut empty = true;
    while let Some(part) = parts.get(i) {
        match part {
            TemplatePart::Literal(l) => {
                for (k, b) in l.bytes().enumerate().skip(off) {
                    if b"/?#".contains(&b) {
                        return if empty {
                            empty_authority()
                        } else {
                            Ok(Some((i, k)))
                        };
                    }
                    if !(b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
                        return Err(format!(
                            "{:?} is not allowed in the authority (no user info, only host and port)",
                            b as char
                        ));
                    }
                    empty = false;
                }
            }
            TemplatePart::Host | TemplatePart::Port => empty = false,
            // The path always expands to something that starts with `/`.
            TemplatePart::Path if !empty => return Ok(Some((i, 0))),
            TemplatePart::Path | TemplatePart::Query | TemplatePart::Protocol => {
                return Err(
                    "only #{host}, #{port} and literal host characters may form the authority"
                        .into(),
                )
            }
        }
        i += 1;
        off = 0;
    }
    if empty {
        return empty_authority();
    }
    Ok(Some((parts.len(), 0)))
}

impl Serialize for RedirectTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = RedirectTemplate::parse("https://#{host}/new#{path}").expect("valid");
        assert_eq!(t.authority_parts, 2);
        let t = RedirectTemplate::parse("https://example.com/x?#{query}").expect("valid");
        assert_eq!(t.authority_parts, 1);
        assert_eq!(
            t.parts[..2],
            [
                TemplatePart::Literal("https://example.com".into()),
                TemplatePart::Literal("/x?".into())
            ]
        );
        let t = RedirectTemplate::parse("#{protocol}://#{host}:#{port}#{path}").expect("valid");
        assert_eq!(t.authority_parts, 5);
        let t = RedirectTemplate::parse("/new#{path}?#{query}").expect("valid");
        assert_eq!(t.authority_parts, 0);
        assert!(RedirectTemplate::parse("https://a.example#{path}").is_ok());
        for bad in [
            "",
            "//evil.com/",
            "new/path",
            "#{path}",
            "ftp://x/",
            "https://",
            "https:///x",
            "https://#{path}",
            "https://#{host}#{query}",
            "https://user@#{host}/",
            "https://#{host}/#{nope}",
            "https://#{host}/#{path",
            "/a b",
            "/a\\b",
            "#{protocol}#{host}/",
            "#{host}/x",
        ] {
            assert!(
                RedirectTemplate::parse(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
