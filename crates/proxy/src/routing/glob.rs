//! Glob patterns of rule conditions: `*` matches any run of bytes (`/` included),
//! `?` exactly one byte, everything else itself.
//!
//! Data path (matching); compiled once per snapshot. Patterns are at most 128 bytes
//! (checked by the config crate) and matching is the classic two-pointer wildcard
//! algorithm that backtracks only to the last `*` (as in Kirk Krauss' "Matching
//! Wildcards"), so it allocates nothing. The common shapes — an exact string, a
//! prefix (`/api/*`), a suffix (`*.jpg`) and `*` alone — skip the general loop.
//! Case folding (for hosts, header values and query strings) lowercases the pattern
//! once here and each input byte as it is compared.

#[derive(Clone, Debug)]
pub struct Glob {
    pattern: Box<[u8]>,
    shape: Shape,
    fold: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Exact,
    /// `literal*`
    Prefix,
    /// `*literal`
    Suffix,
    Any,
    General,
}

impl Glob {
    /// A case-sensitive glob (paths).
    pub fn new(pattern: &str) -> Glob {
        Self::build(pattern.as_bytes().into(), false)
    }

    /// An ASCII case-insensitive glob (hosts, header values, query strings).
    pub fn folded(pattern: &str) -> Glob {
        Self::build(pattern.to_ascii_lowercase().into_bytes().into(), true)
    }

    fn build(pattern: Box<[u8]>, fold: bool) -> Glob {
        let wild = |b: &u8| *b == b'*' || *b == b'?';
        let n = pattern.len();
        let inner_wild = |range: std::ops::Range<usize>| pattern[range].iter().any(wild);
        let shape = if !pattern.iter().any(wild) {
            Shape::Exact
        } else if &*pattern == b"*" {
            Shape::Any
        } else if pattern.last() == Some(&b'*') && !inner_wild(0..n - 1) {
            Shape::Prefix
        } else if pattern.first() == Some(&b'*') && !inner_wild(1..n) {
            Shape::Suffix
        } else {
            Shape::General
        };
        Glob {
            pattern,
            shape,
            fold,
        }
    }

    pub fn matches(&self, s: &[u8]) -> bool {
        let p = &*self.pattern;
        match self.shape {
            Shape::Any => true,
            Shape::Exact => self.eq(p, s),
            Shape::Prefix => {
                s.len() >= p.len() - 1 && self.eq(&p[..p.len() - 1], &s[..p.len() - 1])
            }
            Shape::Suffix => {
                s.len() >= p.len() - 1 && self.eq(&p[1..], &s[s.len() - (p.len() - 1)..])
            }
            Shape::General => self.general(s),
        }
    }

    fn eq(&self, pattern: &[u8], s: &[u8]) -> bool {
        if self.fold {
            pattern.len() == s.len()
                && pattern
                    .iter()
                    .zip(s)
                    .all(|(p, c)| *p == c.to_ascii_lowercase())
        } else {
            pattern == s
        }
    }

    fn general(&self, s: &[u8]) -> bool {
        let p = &*self.pattern;
        let (mut pi, mut si) = (0, 0);
        // The last `*` seen and the input position it is currently matched up to.
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let c = if self.fold {
                s[si].to_ascii_lowercase()
            } else {
                s[si]
            };
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(&b) if b == b'?' || b == c => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    // Let the last `*` swallow one more byte and retry from there.
                    Some((sp, ss)) => {
                        star = Some((sp, ss + 1));
                        pi = sp + 1;
                        si = ss + 1;
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|b| *b == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).matches(s.as_bytes())
    }

    #[test]
    fn shapes() {
        assert!(m("/a", "/a") && !m("/a", "/ab") && !m("/a", "/"));
        assert!(m("/api/*", "/api/") && m("/api/*", "/api/x/y") && !m("/api/*", "/api"));
        assert!(m("*.jpg", "/x.jpg") && m("*.jpg", ".jpg") && !m("*.jpg", "/x.jpeg"));
        assert!(m("*", "") && m("*", "/anything"));
    }

    #[test]
    fn general_patterns() {
        assert!(m("/a/*/c", "/a/b/c") && m("/a/*/c", "/a/b/x/c") && !m("/a/*/c", "/a/b/cd"));
        assert!(m("/v?/x", "/v1/x") && !m("/v?/x", "/v10/x"));
        assert!(m("*a*b*", "xxaxxbxx") && !m("*a*b*", "xxbxxaxx"));
        assert!(m("/*/*/", "/a/b/") && !m("/*/*/", "/a/b"));
        assert!(m("a*", "a") && m("*a*", "a") && m("?*", "x") && !m("?*", ""));
        // Backtracking past several candidates for the last star.
        assert!(m("*aab", "aaaab") && m("/x*yz", "/xyyyz") && !m("/x*yz", "/xyzy"));
    }

    #[test]
    fn folding_is_ascii_case_insensitive() {
        let g = Glob::folded("*.Example.COM");
        assert!(g.matches(b"www.example.com") && g.matches(b"WWW.EXAMPLE.COM"));
        assert!(Glob::folded("Dev*").matches(b"DEVELOP"));
        assert!(Glob::folded("a?c*d").matches(b"AbCxD"));
        assert!(
            !Glob::new("/Admin").matches(b"/admin"),
            "paths are case-sensitive"
        );
    }
}
