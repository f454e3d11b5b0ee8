//! One lookup of a target entry's name: A and AAAA for `HOST:PORT`, SRV (and the
//! A/AAAA of each record's target) for `srv`, with the smallest TTL seen.
//!
//! Control path. hickory's resolver, configured from `/etc/resolv.conf` (its
//! servers, search list and options) or, with `[server] dns_servers`, asking only
//! those servers (UDP, TCP for truncated answers; 2 s per try, 2 tries). Its
//! answer cache is off: ballast keeps each answer for its own TTL (held within
//! `min_ttl`..`max_ttl`), and a cache would hand back an answer older than
//! `max_ttl` promises. A failure is classified for
//! `ballast_dns_resolutions_total{outcome}`: `nxdomain`, `no_records`,
//! `servfail`, `timeout` or `error`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ballast_config::{TargetAddress, TargetConfig};
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record};
use hickory_resolver::TokioResolver;

/// The addresses a name resolved to, each with its weight (an SRV record's, or 1),
/// and how long the answer holds.
pub struct Answer {
    pub addresses: Vec<(SocketAddr, u32)>,
    pub ttl: Duration,
}

/// Why a lookup gave no address: the metric's `outcome` and a short message.
pub struct Failure {
    pub outcome: &'static str,
    pub message: String,
}

/// The resolver of the running config and the servers it was built for.
pub struct Resolver {
    servers: Vec<SocketAddr>,
    inner: Result<TokioResolver, String>,
}

impl Resolver {
    /// A resolver asking `servers`, or those of `/etc/resolv.conf` when empty. A
    /// system configuration that cannot be read makes every lookup fail (and say
    /// why) rather than the config fail: DNS is a runtime dependency.
    pub fn new(servers: &[SocketAddr]) -> Resolver {
        let inner = if servers.is_empty() {
            TokioResolver::builder_tokio().map(|mut b| {
                b.options_mut().cache_size = 0;
                b.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                b
            })
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                    for c in &mut ns.connections {
                        c.port = s.port();
                    }
                    ns
                })
                .collect();
            let config = ResolverConfig::from_name_servers(name_servers);
            let mut opts = ResolverOpts::default();
            opts.timeout = Duration::from_secs(2);
            opts.attempts = 2;
            opts.cache_size = 0;
            opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            Ok(
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                    .with_options(opts),
            )
        }
        .and_then(|b| b.build())
        .map_err(|e| format!("cannot configure the DNS resolver: {e}"));
        if let Err(e) = &inner {
            tracing::error!(error = %e, "targets by DNS name will not resolve");
        }
        Resolver {
            servers: servers.to_vec(),
            inner,
        }
    }

    /// The servers this resolver asks (empty: the system's).
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Look `name` up once.
    pub async fn lookup(&self, name: &TargetAddress) -> Result<Answer, Failure> {
        let resolver = self.inner.as_ref().map_err(|e| Failure {
            outcome: "error",
            message: e.clone(),
        })?;
        match name {
            TargetAddress::Socket(a) => Ok(Answer {
                addresses: vec![(*a, 1)],
                ttl: Duration::MAX,
            }),
            TargetAddress::Host { host, port } => {
                let (ips, ttl) = lookup_ip(resolver, host).await?;
                Ok(Answer {
                    addresses: ips.into_iter().map(|ip| ((ip, *port).into(), 1)).collect(),
                    ttl,
                })
            }
            TargetAddress::Srv(srv) => lookup_srv(resolver, srv).await,
        }
    }
}

async fn lookup_ip(
    resolver: &TokioResolver,
    host: &str,
) -> Result<(Vec<IpAddr>, Duration), Failure> {
    let found = resolver.lookup_ip(host).await.map_err(failure)?;
    let answers = found.as_lookup().answers();
    let mut ips: Vec<IpAddr> = found.iter().collect();
    ips.sort();
    ips.dedup();
    Ok((ips, min_ttl(answers)))
}

/// The records of the lowest priority, each target's addresses on the record's
/// port with the record's weight (held within 1..=999: ballast's weights are
/// relative like SRV's, and a weight 0 record is still a server to use).
async fn lookup_srv(resolver: &TokioResolver, name: &str) -> Result<Answer, Failure> {
    let found = resolver.srv_lookup(name).await.map_err(failure)?;
    let mut ttl = min_ttl(found.answers());
    let records: Vec<_> = found
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    let Some(lowest) = records.iter().map(|r| r.priority).min() else {
        return Err(Failure {
            outcome: "no_records",
            message: format!("no SRV record for {name}"),
        });
    };
    let mut addresses = Vec::new();
    for r in records.iter().filter(|r| r.priority == lowest) {
        let target = r.target.to_ascii();
        let (ips, t) = lookup_ip(resolver, &target).await.map_err(|f| Failure {
            message: format!("SRV target {target}: {}", f.message),
            ..f
        })?;
        ttl = ttl.min(t);
        let weight = u32::from(r.weight).clamp(1, TargetConfig::MAX_WEIGHT);
        for ip in ips {
            let addr = SocketAddr::new(ip, r.port);
            if !addresses.iter().any(|(a, _)| *a == addr) {
                addresses.push((addr, weight));
            }
        }
    }
    addresses.sort();
    Ok(Answer { addresses, ttl })
}

fn min_ttl(answers: &[Record]) -> Duration {
    let ttl = answers.iter().map(|r| r.ttl).min().unwrap_or(0);
    Duration::from_secs(ttl.into())
}

/// The metric's outcome and a short message (hickory's own text repeats the
/// whole query in Rust debug form).
fn failure(e: NetError) -> Failure {
    let (outcome, message) = if e.is_nx_domain() {
        ("nxdomain", "no such name (NXDOMAIN)".to_string())
    } else if e.is_no_records_found() {
        ("no_records", "no record of the type asked".to_string())
    } else {
        match &e {
            NetError::Timeout => (
                "timeout",
                "no answer from the name servers in time".to_string(),
            ),
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
                ("servfail", "the name server failed (SERVFAIL)".to_string())
            }
            other => ("error", other.to_string()),
        }
    };
    Failure { outcome, message }
}
