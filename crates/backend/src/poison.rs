//! A poison pill (`--poison "X-Tenant: poison"`): the request whose header holds
//! that value breaks the backend for good, the way a request that trips a bug
//! crashes a real service. From that request on, every request is answered `500`
//! and `/healthz` `503`, so health checks take the target out as they would a
//! crashed process; only a restart cures it.
//!
//! Data path: one header lookup per request while a poison is set, one atomic
//! load otherwise (`control.rs` keeps the flag). Used to show what shuffle
//! sharding contains (issue 21 §4).

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header and value that poison the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    pub header: HeaderName,
    pub value: HeaderValue,
}

impl Poison {
    /// `"NAME: VALUE"`, as a request would carry it.
    pub fn parse(s: &str) -> Result<Poison, String> {
        let (name, value) = s
            .split_once(':')
            .ok_or_else(|| format!("expected \"HEADER: VALUE\", found {s:?}"))?;
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid header name {:?}", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("invalid header value {:?}", value.trim()))?;
        Ok(Poison { header, value })
    }

    /// Whether a request with these headers is the poison.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(&self.header)
            .iter()
            .any(|v| v == self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Poison::parse("X-Tenant: poison").expect("valid");
        let mut h = HeaderMap::new();
        assert!(!p.matches(&h));
        h.insert("x-tenant", HeaderValue::from_static("acme"));
        assert!(!p.matches(&h));
        h.append("x-tenant", HeaderValue::from_static("poison"));
        assert!(p.matches(&h));
        assert!(Poison::parse("no colon").is_err());
        assert!(Poison::parse("bad name: x").is_err());
    }
}
