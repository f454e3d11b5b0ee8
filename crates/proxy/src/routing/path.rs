//! Normalising a request path before rules look at it, so that an encoded or
//! roundabout spelling of a path cannot dodge a rule written for it.
//!
//! Data path. The path a rule sees is: percent-decoded once (`%2e%2e` is `..`,
//! `%2F` is `/`), `\` read as `/` (some servers do), dot segments removed as in
//! RFC 3986 §5.2.4 (a segment that is `.` or `..` before a `;`, as Tomcat reads
//! `..;`, counts too), path parameters cut from every segment (`/admin;x` and
//! `/admin;jsessionid=1/` are `/admin` and `/admin/`, as Tomcat, Jetty and Spring
//! read them), empty segments dropped (`//admin` is `/admin`), and a leading `/`
//! ensured. A trailing `/` is kept. The path forwarded to the target is never
//! changed. (A percent-encoded NUL or control character never gets here: the
//! request is refused, `hygiene/`.) Most paths need none of this: a single scan
//! finds that and borrows the path; only a path with `%`, `\`, `;`, `//` or a dot
//! segment is copied (one allocation).

use std::borrow::Cow;

/// The path as rules match it.
pub fn normalise(path: &str) -> Cow<'_, [u8]> {
    let bytes = path.as_bytes();
    if !needs_work(bytes) {
        return Cow::Borrowed(bytes);
    }
    let decoded = decode(bytes, false);
    let mut out = Vec::with_capacity(decoded.len() + 1);
    let mut trailing = false;
    for seg in decoded.split(|&b| b == b'/' || b == b'\\') {
        let base = match seg.iter().position(|&b| b == b';') {
            Some(i) => &seg[..i],
            None => seg,
        };
        if base.is_empty() || base == b"." {
            trailing = true;
        } else if base == b".." {
            let parent = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
            out.truncate(parent);
            trailing = true;
        } else {
            out.push(b'/');
            out.extend_from_slice(base);
            trailing = false;
        }
    }
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    Cow::Owned(out)
}

/// Whether normalising could change the path.
fn needs_work(b: &[u8]) -> bool {
    if b.first() != Some(&b'/') {
        return true;
    }
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b'\\' | b';' => return true,
            b'/' => match b.get(i + 1) {
                Some(b'/') => return true,
                Some(b'.') => {
                    let seg = &b[i + 1..];
                    let end = seg.iter().position(|&c| c == b'/').unwrap_or(seg.len());
                    let seg = &seg[..end];
                    let base = match seg.iter().position(|&c| c == b';') {
                        Some(k) => &seg[..k],
                        None => seg,
                    };
                    if base == b"." || base == b".." {
                        return true;
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    false
}

/// Percent-decode once; a `%` not followed by two hex digits stays as it is. With
/// `plus`, `+` is a space (query strings, as HTML forms encode them).
pub fn decode(s: &[u8], plus: bool) -> Cow<'_, [u8]> {
    if !s.iter().any(|&b| b == b'%' || (plus && b == b'+')) {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => match (s.get(i + 1).and_then(hex), s.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        String::from_utf8_lossy(&normalise(p)).into_owned()
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for p in ["/", "/a/b", "/a/b/", "/a/.well-known/x", "/a/..b/c", "/x.y"] {
            assert!(matches!(normalise(p), Cow::Borrowed(_)), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_empty_segments() {
        assert_eq!(n("/a/../admin"), "/admin");
        assert_eq!(n("/a/./b"), "/a/b");
        assert_eq!(n("/../../admin"), "/admin");
        assert_eq!(n("//admin"), "/admin");
        assert_eq!(n("/a//b///c"), "/a/b/c");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/."), "/a/");
        assert_eq!(n("/a/b/"), "/a/b/");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("/public/..;/admin"), "/admin");
        assert_eq!(n("*"), "/*");
    }

    #[test]
    fn path_parameters_are_cut_from_every_segment() {
        assert_eq!(n("/admin;x"), "/admin");
        assert_eq!(n("/admin;jsessionid=1/users"), "/admin/users");
        assert_eq!(n("/a;b/c;d/"), "/a/c/");
        assert_eq!(n("/;x/admin"), "/admin");
        assert_eq!(n("/admin%3bx"), "/admin");
    }

    #[test]
    fn percent_decoding_once() {
        assert_eq!(n("/%2e%2e/admin"), "/admin");
        assert_eq!(n("/a/%2E%2E/admin"), "/admin");
        assert_eq!(n("/%2Fadmin"), "/admin");
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/a%5c..%5cadmin"), "/admin");
        assert_eq!(n("/a\\..\\admin"), "/admin");
        // Decoded once only, as a target decodes it.
        assert_eq!(n("/%252e%252e/admin"), "/%2e%2e/admin");
        // Broken escapes stay.
        assert_eq!(n("/100%/x%zz"), "/100%/x%zz");
        assert_eq!(&*normalise("/%ff"), b"/\xff");
    }

    #[test]
    fn query_components() {
        assert_eq!(&*decode(b"a+b%3D", true), b"a b=");
        assert_eq!(&*decode(b"a+b", false), b"a+b");
        assert!(matches!(decode(b"plain", true), Cow::Borrowed(_)));
    }
}
