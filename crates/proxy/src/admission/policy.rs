//! A listener's address policy, compiled: its allow and deny lists and the
//! sources whose PROXY protocol header it believes.
//!
//! Built on the control path with each snapshot (`snapshot.rs`), immutable
//! after; the data path asks it once per new connection, before a byte of the
//! connection is taken. A listener with none of these keys has no policy at all
//! (`Policy::build` gives `None`), so it pays one branch per connection.

use std::net::IpAddr;
use std::sync::Arc;

use ballast_config::admission::ListenerAdmission;

use crate::admission::ranges::Ranges;

pub struct Policy {
    allow: Ranges,
    deny: Ranges,
    /// `Some` when the listener reads PROXY protocol headers: from these sources.
    trusted: Option<Ranges>,
}

/// What a connection from a given peer must do about a PROXY protocol header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The listener does not read one (its bytes are the client's own).
    Off,
    /// The peer is a trusted source: its connection must open with one.
    Required,
    /// The peer is not trusted: a connection that opens with one is refused.
    Forbidden,
}

impl Policy {
    /// The policy of a listener; `None` when it has no list and no PROXY protocol.
    pub fn build(a: &ListenerAdmission) -> Option<Arc<Policy>> {
        if a.allow.is_empty() && a.deny.is_empty() && a.proxy_protocol.is_none() {
            return None;
        }
        Some(Arc::new(Policy {
            allow: Ranges::new(&a.allow),
            deny: Ranges::new(&a.deny),
            trusted: a.proxy_protocol.as_ref().map(|p| Ranges::new(&p.trusted)),
        }))
    }

    /// Security-group semantics: a denied address is refused; with an allow
    /// list, only what it holds is admitted; without one, everything else is.
    pub fn admits(&self, client: IpAddr) -> bool {
        !self.deny.contains(client) && (self.allow.is_empty() || self.allow.contains(client))
    }

    pub fn proxy_header(&self, peer: IpAddr) -> ProxyHeader {
        match &self.trusted {
            None => ProxyHeader::Off,
            Some(t) if t.contains(peer) => ProxyHeader::Required,
            Some(_) => ProxyHeader::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use ballast_config::admission::ProxyProtocol;
    use ballast_config::Cidr;

    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).expect("cidr")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn nothing_configured_is_no_policy() {
        assert!(Policy::build(&ListenerAdmission::default()).is_none());
        let limits_only = ListenerAdmission {
            max_connections: Some(10),
            ..ListenerAdmission::default()
        };
        assert!(Policy::build(&limits_only).is_none());
    }

    #[test]
    fn deny_wins_and_an_empty_allow_list_admits_the_rest() {
        let p = Policy::build(&ListenerAdmission {
            deny: cidrs(&["10.9.0.0/16"]),
            ..ListenerAdmission::default()
        })
        .expect("policy");
        assert!(p.admits(ip("10.8.0.1")));
        assert!(p.admits(ip("2001:db8::1")));
        assert!(!p.admits(ip("10.9.1.1")));
        let p = Policy::build(&ListenerAdmission {
            allow: cidrs(&["10.0.0.0/8", "2001:db8::/32"]),
            deny: cidrs(&["10.9.0.0/16"]),
            ..ListenerAdmission::default()
        })
        .expect("policy");
        assert!(p.admits(ip("10.8.0.1")));
        assert!(p.admits(ip("2001:db8::1")));
        assert!(!p.admits(ip("10.9.1.1")), "deny wins over allow");
        assert!(!p.admits(ip("127.0.0.1")), "not in the allow list");
        assert_eq!(p.proxy_header(ip("10.0.0.1")), ProxyHeader::Off);
    }

    #[test]
    fn only_trusted_sources_send_a_header() {
        let p = Policy::build(&ListenerAdmission {
            proxy_protocol: Some(ProxyProtocol {
                trusted: cidrs(&["127.0.0.1"]),
            }),
            ..ListenerAdmission::default()
        })
        .expect("policy");
        assert_eq!(p.proxy_header(ip("127.0.0.1")), ProxyHeader::Required);
        assert_eq!(
            p.proxy_header(ip("::ffff:127.0.0.1")),
            ProxyHeader::Required
        );
        assert_eq!(p.proxy_header(ip("127.0.0.2")), ProxyHeader::Forbidden);
        assert!(p.admits(ip("203.0.113.7")), "no list: everyone");
    }
}
