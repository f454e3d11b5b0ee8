//! The validated config model: what the file, SIGHUP, the admin API and (later) etcd
//! all produce, and what the proxy builds its runtime snapshot from.
//!
//! Control path only. Every value here has been checked by `decode.rs`; the proxy
//! relies on that (names unique, references resolve, ranges hold) and does not
//! re-validate. Defaults live here, next to the field they belong to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use crate::admin::{AdminConfig, AdminTls};
use crate::duration;
use crate::pattern::Cidr;
use crate::template::RedirectTemplate;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub state: StateConfig,
    pub access_log: AccessLogConfig,
    pub listeners: Vec<ListenerConfig>,
    pub target_groups: Vec<TargetGroupConfig>,
    /// Named rate limits, attached to listeners and rules by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<crate::limits::RateLimitConfig>,
    /// This node's place in a fleet (cluster mode); `None`: a node on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Config {
    pub fn target_group(&self, name: &str) -> Option<&TargetGroupConfig> {
        self.target_groups.iter().find(|g| g.name == name)
    }

    pub fn rate_limit(&self, name: &str) -> Option<&crate::limits::RateLimitConfig> {
        self.rate_limits.iter().find(|l| l.name == name)
    }
}

/// Process-wide settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerConfig {
    /// How long SIGTERM/SIGINT (and a removed listener) wait for in-flight requests.
    #[serde(serialize_with = "duration::serialize")]
    pub drain_timeout: Duration,
    /// The secret that authenticates sticky-session cookies (`stickiness` on a
    /// target group), shared by every node of a fleet; resolved against the config
    /// file's directory, checked to exist and hold at least
    /// [`ServerConfig::MIN_STICKINESS_KEY`] bytes. Without it, a key generated once
    /// is kept in `state.dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stickiness_key_file: Option<PathBuf>,
    /// Name servers asked for targets given by DNS name; empty: those of
    /// `/etc/resolv.conf`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<SocketAddr>,
}

impl ServerConfig {
    /// The shortest secret accepted in `stickiness_key_file`, in bytes (leading
    /// and trailing whitespace aside): HMAC-SHA256's own key size.
    pub const MIN_STICKINESS_KEY: usize = 32;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            drain_timeout: Duration::from_secs(30),
            stickiness_key_file: None,
            dns_servers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("./ballast-state"),
        }
    }
}

/// Where access-log lines go. Serialized as the file writes it (`{}` for stdout,
/// `{"path": "off"}`, `{"path": FILE}`), so the admin API's JSON reads back unchanged.
#[derive(Clone, Debug, PartialEq)]
pub enum AccessLogConfig {
    Stdout,
    Off,
    File(PathBuf),
}

impl Serialize for AccessLogConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            AccessLogConfig::Stdout => {}
            AccessLogConfig::Off => map.serialize_entry("path", "off")?,
            AccessLogConfig::File(p) => map.serialize_entry("path", p)?,
        }
        map.end()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    pub protocol: ListenerProtocol,
    pub default_action: Action,
    /// Time a client has to send a complete request head.
    #[serde(serialize_with = "duration::serialize")]
    pub header_read_timeout: Duration,
    /// A keep-alive client connection with no request in flight is closed after this.
    #[serde(serialize_with = "duration::serialize")]
    pub idle_timeout: Duration,
    /// An upgraded (WebSocket) connection with no byte in either direction for this
    /// long is closed.
    #[serde(serialize_with = "duration::serialize")]
    pub upgrade_idle_timeout: Duration,
    /// What happens to HTTP/1 requests that parsers could read two ways.
    pub desync_mitigation_mode: DesyncMitigationMode,
    /// Drop request header fields whose names hold anything but `A-Z a-z 0-9 -`.
    pub drop_invalid_header_fields: bool,
    /// The largest request head (request line and fields; for HTTP/2 the decoded
    /// header list) accepted; larger ones are answered 431.
    #[serde(serialize_with = "crate::size::serialize")]
    pub max_request_head_size: usize,
    /// In priority order, lowest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleConfig>,
    /// Rate limits every request of the listener must pass (by name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<String>,
    /// Certificates, policy and mutual TLS of an `https` listener.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::ListenerTls>,
    /// Allow/deny lists, PROXY protocol and connection limits.
    #[serde(flatten)]
    pub admission: crate::admission::ListenerAdmission,
    /// Limits on slow request bodies and slow readers.
    #[serde(flatten)]
    pub client_timeouts: crate::client_timeouts::ClientTimeouts,
}

impl ListenerConfig {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_UPGRADE_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    /// NGINX's large header buffers hold 32 KiB, HAProxy's buffer 16 KiB; 64 KiB
    /// takes every browser's request and bounds what one client makes us hold.
    pub const DEFAULT_MAX_REQUEST_HEAD_SIZE: usize = 64 * 1024;
    /// hyper's HTTP/1.1 server reads with buffers of at least 8 KiB.
    pub const MIN_REQUEST_HEAD_SIZE: usize = 8 * 1024;
    pub const MAX_REQUEST_HEAD_SIZE: usize = 1024 * 1024;
}

/// What a listener does with an HTTP/1 request by its desync classification
/// (compliant, acceptable, ambiguous, severe), as the managed load balancers do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DesyncMitigationMode {
    /// Forward every request; classify and count only.
    Monitor,
    /// Forward compliant and acceptable requests; forward an ambiguous one but close
    /// the client's and the target's connection after it; refuse a severe one (400).
    #[default]
    Defensive,
    /// Forward compliant requests only; refuse everything else (400).
    Strictest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port.
    Http,
    /// TLS, then HTTP/1.1 or HTTP/2 as negotiated by ALPN.
    Https,
}

/// What a listener does with a request: its default action, or a rule's.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// To one target group, or split by weight over up to five.
    Forward(ForwardAction),
    /// An HTTP redirect built from a template (`#{host}`, `#{path}`, ...).
    Redirect {
        status: u16,
        location: RedirectTemplate,
    },
    /// A response ballast writes itself.
    FixedResponse {
        status: u16,
        content_type: String,
        body: String,
    },
}

impl Action {
    /// A forward to one group, as `{ type = "forward", target_group = NAME }` writes it.
    pub fn forward_to(group: &str) -> Action {
        Action::Forward(ForwardAction {
            target_groups: vec![WeightedGroup {
                name: group.to_string(),
                weight: 1,
            }],
            stickiness: None,
        })
    }

    pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];
    pub const MAX_BODY: usize = 1024;
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForwardAction {
    /// One to five groups; weights are 0 to 999 and not all zero.
    pub target_groups: Vec<WeightedGroup>,
    /// Group stickiness: how long a client's cookie keeps it on the group it got.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_stickiness"
    )]
    pub stickiness: Option<Duration>,
}

impl ForwardAction {
    pub const MAX_GROUPS: usize = 5;
    pub const MAX_WEIGHT: u32 = 999;
    pub const MIN_STICKINESS: Duration = Duration::from_secs(1);
    pub const MAX_STICKINESS: Duration = Duration::from_secs(7 * 24 * 3600);
}

fn serialize_stickiness<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("enabled", &d.is_some())?;
    if let Some(d) = d {
        m.serialize_entry("duration", &duration::format(*d))?;
    }
    m.end()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightedGroup {
    pub name: String,
    pub weight: u32,
}

/// A listener rule: when every condition holds, its action runs. Rules run lowest
/// priority first; the first that matches wins.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleConfig {
    /// 1 to 50000, unique per listener.
    pub priority: u32,
    /// At least one; all must match.
    pub conditions: Vec<Condition>,
    pub action: Action,
    /// Rate limits a request this rule matched must pass too (by name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<String>,
}

impl RuleConfig {
    pub const MAX_PRIORITY: u32 = 50_000;
}

/// One condition of a rule. Where a kind takes a list, any item matching is enough.
/// Patterns are globs: `*` matches any run of characters, `?` exactly one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Host names without port, lowercased: exact or with wildcards (`*.example.com`).
    Host(Vec<String>),
    /// Path globs, matched against the decoded and normalised path.
    Path(Vec<String>),
    /// A header (name lowercased) whose value matches any of the globs.
    Header { name: String, values: Vec<String> },
    /// Request methods, exact.
    Method(Vec<String>),
    /// Query parameters; any pair matching is enough.
    Query(Vec<QueryMatch>),
    /// Client address ranges.
    SourceIp(Vec<Cidr>),
}

/// A query parameter pattern: a value glob, with or without a key glob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetGroupConfig {
    pub name: String,
    pub algorithm: Algorithm,
    pub protocol: TargetProtocol,
    pub targets: Vec<TargetConfig>,
    pub health_check: HealthCheckConfig,
    pub unhealthy_state_routing: UnhealthyStateRouting,
    #[serde(serialize_with = "duration::serialize")]
    pub connect_timeout: Duration,
    /// Time from sending a request to receiving the response head.
    #[serde(serialize_with = "duration::serialize")]
    pub response_timeout: Duration,
    /// How long a deregistered target drains (no new requests, in-flight ones may
    /// finish) before it is removed.
    #[serde(serialize_with = "duration::serialize")]
    pub deregistration_delay: Duration,
    /// TLS towards the targets (and their health checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TargetTls>,
    /// What anomaly detection may do to a target's weight.
    pub anomaly_mitigation: crate::resilience::AnomalyMitigation,
    /// A target that becomes healthy beside healthy peers ramps up over this
    /// long (zero: off).
    #[serde(serialize_with = "duration::serialize")]
    pub slow_start: Duration,
    /// Sticky sessions to one target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<crate::resilience::Stickiness>,
    /// Retries of failed idempotent requests within a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<crate::resilience::RetryPolicy>,
    #[serde(skip_serializing_if = "crate::resilience::CircuitBreaker::is_off")]
    pub circuit_breaker: crate::resilience::CircuitBreaker,
    /// An adaptive concurrency limit driven by a latency target (omitted: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_shedding: Option<crate::shedding::LoadShedding>,
    /// Each tenant's own stable subset of the targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle_shard: Option<crate::shuffle_shard::ShuffleShard>,
    /// How often the DNS names among the targets are looked up again.
    #[serde(skip_serializing_if = "crate::dns::DnsRefresh::is_default")]
    pub dns: crate::dns::DnsRefresh,
}

impl TargetGroupConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(30);

    /// The literal `IP:PORT` entry for `address` (targets resolved from a DNS
    /// name are not entries of the config).
    pub fn target(&self, address: std::net::SocketAddr) -> Option<&TargetConfig> {
        self.targets
            .iter()
            .find(|t| t.address.socket() == Some(address))
    }

    /// Whether any entry is resolved through DNS.
    pub fn has_dns_targets(&self) -> bool {
        self.targets.iter().any(|t| t.address.is_dns())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetProtocol {
    /// HTTP/1.1 with pooled keep-alive connections.
    Http1,
    /// HTTP/2 with prior knowledge (cleartext), requests multiplexed as streams.
    Http2,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetConfig {
    /// `address = "IP:PORT"` or `"HOST:PORT"`, or `srv = "NAME"` (`dns.rs`).
    #[serde(flatten)]
    pub address: crate::dns::TargetAddress,
    pub weight: u32,
    /// What the API, the dashboard and the health log call the target (unique
    /// within its group); `None`: its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl TargetConfig {
    pub const DEFAULT_WEIGHT: u32 = 1;
    pub const MAX_WEIGHT: u32 = 999;

    /// The target's name, else its address.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.address.to_string())
    }
}

/// Serialized by hand: a gRPC check writes `grpc_service`/`grpc_matcher` instead of
/// `path`/`matcher`, so that what the admin API serves reads back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// HTTP checks only.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP checks only.
    pub matcher: StatusMatcher,
    /// Set for a gRPC check (`grpc.health.v1.Health/Check`), `http2` groups only.
    pub grpc: Option<GrpcCheck>,
}

/// A gRPC health check: the service asked about ("" is the server as a whole) and
/// the `grpc-status` codes that count as a pass (with a `SERVING` answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcCheck {
    pub service: String,
    pub matcher: StatusMatcher,
}

impl GrpcCheck {
    pub const MAX_SERVICE_LEN: usize = 256;
}

impl Serialize for HealthCheckConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match &self.grpc {
            None => m.serialize_entry("path", &self.path)?,
            Some(g) => m.serialize_entry("grpc_service", &g.service)?,
        }
        m.serialize_entry("interval", &duration::format(self.interval))?;
        m.serialize_entry("timeout", &duration::format(self.timeout))?;
        m.serialize_entry("healthy_threshold", &self.healthy_threshold)?;
        m.serialize_entry("unhealthy_threshold", &self.unhealthy_threshold)?;
        match &self.grpc {
            None => m.serialize_entry("matcher", &self.matcher)?,
            Some(g) => m.serialize_entry("grpc_matcher", &g.matcher)?,
        }
        m.end()
    }
}

impl HealthCheckConfig {
    /// The longest default `timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// The `timeout` used when none is written: the smaller of 2 s and half the
    /// interval, so that a default is never longer than the interval it serves.
    pub fn default_timeout(interval: Duration) -> Duration {
        Self::DEFAULT_TIMEOUT.min(interval / 2)
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/healthz".to_string(),
            interval: Duration::from_secs(5),
            timeout: HealthCheckConfig::DEFAULT_TIMEOUT,
            healthy_threshold: 3,
            unhealthy_threshold: 2,
            matcher: StatusMatcher(vec![(200, 399)]),
            grpc: None,
        }
    }
}

/// HTTP status codes that count as healthy: `"200"`, `"200-399"`, `"200,204,300-308"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMatcher(pub Vec<(u16, u16)>);

impl StatusMatcher {
    pub const ALLOWED: &'static str =
        "status codes 100-599 as a code, a range or a comma list (e.g. \"200\", \"200-399\", \"200,204,300-308\")";

    pub const GRPC_ALLOWED: &'static str =
        "gRPC status codes 0-99 as a code, a range or a comma list (e.g. \"0\", \"0-2\", \"0,5\")";

    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_in(text, 100, 599)
    }

    /// gRPC status codes (`grpc_matcher`): 0 to 99.
    pub fn parse_grpc(text: &str) -> Option<Self> {
        Self::parse_in(text, 0, 99)
    }

    fn parse_in(text: &str, min: u16, max: u16) -> Option<Self> {
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (lo.trim().parse().ok()?, hi.trim().parse().ok()?),
                None => {
                    let code = part.parse().ok()?;
                    (code, code)
                }
            };
            if !(min..=max).contains(&lo) || !(min..=max).contains(&hi) || lo > hi {
                return None;
            }
            ranges.push((lo, hi));
        }
        Some(StatusMatcher(ranges))
    }

    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Serialize for StatusMatcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = self
            .0
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        s.serialize_str(&text.join(","))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnhealthyStateRouting {
    /// Below this many healthy targets the group routes to all of its targets.
    pub minimum_healthy_targets: u32,
}

impl Default for UnhealthyStateRouting {
    fn default() -> Self {
        UnhealthyStateRouting {
            minimum_healthy_targets: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_matcher_forms() {
        let m = StatusMatcher::parse("200,204, 300-308").expect("valid");
        assert!(m.matches(200) && m.matches(204) && m.matches(301));
        assert!(!m.matches(201) && !m.matches(309));
        for bad in ["", "abc", "200-", "399-200", "99", "600", "200;300"] {
            assert!(StatusMatcher::parse(bad).is_none(), "{bad:?}");
        }
    }
}
