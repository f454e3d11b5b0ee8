//! The errors ballast itself answers with, and the one place that turns them into
//! status codes.
//!
//! Data path. Each error records which side failed (pingora's `ErrorSource`): the
//! client, a target, or ballast itself. `status()` is the single mapping to
//! 400/429/502/503/504 (linkerd2-proxy's `ServerRescue`), and `reason()` is the short
//! machine-readable cause that goes into the body and the logs. `grpc_status()`
//! is the same mapping for gRPC requests, which are answered with a trailers-only
//! gRPC response instead of an HTTP error page (`grpc.rs`).
//!
//! A client's error is a 400 and never counts against a target. A request body
//! that breaks off while it is streamed to a target (malformed, or the client gone)
//! makes the target's exchange fail too, and used to be answered as the target's
//! failure: a 502 that fed 5xx alarms with errors no target made. The body records
//! the failure where it happens (`upstream/body.rs`), the attempt turns it into
//! `ClientBodyInvalid` or `ClientClosed`, and nothing is retried, marked down or
//! counted on the target for it.

use http::StatusCode;

use crate::upstream::body::ClientFault;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A redirect uses `#{host}` and the request's host is missing or not a plain
    /// host name.
    #[error("invalid host for a redirect")]
    InvalidHost,
    /// A redirect's expansion failed its final safety check (not expected).
    #[error("redirect expansion failed its safety check")]
    UnsafeRedirect,
    /// The listener was removed by a reload while this connection was open.
    #[error("listener is shutting down")]
    ListenerGone,
    /// No target of the group may take a request (none healthy and not failing open,
    /// or the group has no targets).
    #[error("no healthy target in target group {0}")]
    NoTarget(String),
    /// Every attempt to connect to a target failed.
    #[error("cannot connect to target {target}: {source}")]
    Connect {
        target: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("target {0} did not answer within the response timeout")]
    ResponseTimeout(std::net::SocketAddr),
    /// The target reset the connection or sent something that is not HTTP.
    #[error("target {target} failed: {source}")]
    Target {
        target: std::net::SocketAddr,
        source: hyper::Error,
    },
    /// An HTTP/1.1 target closed the connection or broke the protocol.
    #[error("target {target} failed: {source}")]
    TargetHttp1 {
        target: std::net::SocketAddr,
        source: crate::http1::Error,
    },
    /// A request whose host or path two parsers could read two ways (`hygiene/`);
    /// the reason names what was wrong (`duplicate_host`, `invalid_path`, ...).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The listener's desync mitigation mode does not forward this class.
    #[error("refused by desync mitigation: {} request ({})", .0.class.as_str(), .0.reason)]
    Desync(crate::hygiene::desync::Verdict),
    /// The client's request body broke off while it was sent to a target because
    /// it was malformed: a bad chunk, HTTP/2 DATA that disagrees with
    /// `content-length`.
    #[error("the client's request body is malformed")]
    ClientBodyInvalid,
    /// The client went away while its request body was sent to a target: it
    /// closed its connection or reset its HTTP/2 stream.
    #[error("the client went away in the middle of its request body")]
    ClientClosed,
    /// The client's request body did not arrive within the listener's
    /// `request_body_timeout` (as extended by `request_body_min_rate`): 408.
    #[error("the client's request body did not arrive in time")]
    ClientBodyTimeout,
    /// The target group's circuit breaker is at this limit: the request is
    /// answered at once, without touching a target (`resilience/breaker.rs`).
    #[error("circuit breaker of the target group open: {} limit reached", .0.as_str())]
    CircuitOpen(crate::observe::group::Limit),
    /// The target group is at its adaptive concurrency limit: the request is
    /// answered at once instead of queueing (`resilience/shedding.rs`).
    #[error("target group at its concurrency limit (load shedding)")]
    Shed,
    /// Over one of the rate limits attached to the listener or the matched rule
    /// (`admission/rate_limits.rs`): 429, with the limit's headers.
    #[error("over rate limit {}: the next request is admitted in {:?}", .0.limit.name(), .0.wait)]
    RateLimited(crate::admission::rate_limits::Limited),
    /// A gRPC request routed to a target group that speaks HTTP/1.1.
    #[error("target group {0} has protocol \"http1\"; gRPC needs protocol = \"http2\"")]
    GrpcNeedsHttp2(String),
}

impl From<crate::hygiene::Refusal> for ProxyError {
    fn from(refusal: crate::hygiene::Refusal) -> Self {
        use crate::hygiene::Refusal;
        match refusal {
            Refusal::Host(e) => ProxyError::BadRequest(e.reason()),
            Refusal::Path => ProxyError::BadRequest("invalid_path"),
            Refusal::Desync(verdict) => ProxyError::Desync(verdict),
        }
    }
}

/// Which side of the proxy an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    Client,
    Target,
    Ballast,
}

impl ProxyError {
    pub fn source_side(&self) -> ErrorSource {
        match self {
            ProxyError::InvalidHost
            | ProxyError::BadRequest(_)
            | ProxyError::Desync(_)
            | ProxyError::ClientBodyInvalid
            | ProxyError::ClientClosed
            | ProxyError::ClientBodyTimeout
            | ProxyError::RateLimited(_) => ErrorSource::Client,
            ProxyError::GrpcNeedsHttp2(_) => ErrorSource::Ballast,
            ProxyError::ListenerGone
            | ProxyError::NoTarget(_)
            | ProxyError::UnsafeRedirect
            | ProxyError::CircuitOpen(_)
            | ProxyError::Shed => ErrorSource::Ballast,
            ProxyError::Connect { .. }
            | ProxyError::ResponseTimeout(_)
            | ProxyError::Target { .. }
            | ProxyError::TargetHttp1 { .. } => ErrorSource::Target,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            // A broken body is a 400, as NGINX and HAProxy answer it; a client that
            // went away gets no answer, but its request counts as the client's 400.
            ProxyError::InvalidHost
            | ProxyError::BadRequest(_)
            | ProxyError::Desync(_)
            | ProxyError::ClientBodyInvalid
            | ProxyError::ClientClosed => StatusCode::BAD_REQUEST,
            ProxyError::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UnsafeRedirect => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::ListenerGone
            | ProxyError::NoTarget(_)
            | ProxyError::CircuitOpen(_)
            | ProxyError::Shed => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. }
            | ProxyError::Target { .. }
            | ProxyError::TargetHttp1 { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::ResponseTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::GrpcNeedsHttp2(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The gRPC status code for the same error: UNAVAILABLE (14) where another try
    /// may succeed, DEADLINE_EXCEEDED (4) for a timeout, INTERNAL (13) for a target
    /// that broke the protocol, UNIMPLEMENTED (12) for gRPC to an HTTP/1.1 group
    /// (a config problem that retrying cannot fix), INVALID_ARGUMENT (3) for a
    /// malformed request, CANCELLED (1) for a client that went away and
    /// RESOURCE_EXHAUSTED (8) for a request over a rate limit.
    pub fn grpc_status(&self) -> crate::forward::grpc::Code {
        use crate::forward::grpc::Code;
        match self {
            ProxyError::InvalidHost
            | ProxyError::BadRequest(_)
            | ProxyError::Desync(_)
            | ProxyError::ClientBodyInvalid => Code::InvalidArgument,
            ProxyError::ClientClosed => Code::Cancelled,
            ProxyError::ClientBodyTimeout => Code::DeadlineExceeded,
            ProxyError::UnsafeRedirect => Code::Internal,
            ProxyError::RateLimited(_) => Code::ResourceExhausted,
            ProxyError::ListenerGone
            | ProxyError::NoTarget(_)
            | ProxyError::Connect { .. }
            | ProxyError::CircuitOpen(_)
            | ProxyError::Shed => Code::Unavailable,
            ProxyError::ResponseTimeout(_) => Code::DeadlineExceeded,
            // A connection the target closed or reset is worth another try; a
            // response that is not valid HTTP is not.
            ProxyError::Target { source, .. }
                if source.is_closed() || source.is_incomplete_message() || source.is_canceled() =>
            {
                Code::Unavailable
            }
            ProxyError::TargetHttp1 { source, .. } if source.is_disconnect() => Code::Unavailable,
            ProxyError::Target { .. } | ProxyError::TargetHttp1 { .. } => Code::Internal,
            ProxyError::GrpcNeedsHttp2(_) => Code::Unimplemented,
        }
    }

    /// Whether ballast turned the request away without trying a target.
    pub fn rejection(&self) -> Option<crate::observe::metrics::Rejection> {
        use crate::observe::metrics::Rejection;
        match self {
            ProxyError::ListenerGone => Some(Rejection::ListenerDraining),
            ProxyError::NoTarget(_) => Some(Rejection::NoHealthyTarget),
            ProxyError::Desync(_) => Some(Rejection::Desync),
            ProxyError::CircuitOpen(_) => Some(Rejection::CircuitOpen),
            ProxyError::Shed => Some(Rejection::Shed),
            ProxyError::RateLimited(_) => Some(Rejection::RateLimited),
            _ => None,
        }
    }

    /// A short, stable reason for the body and the access log.
    pub fn reason(&self) -> &'static str {
        use crate::observe::metrics::Rejection;
        match self {
            ProxyError::InvalidHost => "invalid_host",
            ProxyError::BadRequest(reason) => reason,
            ProxyError::Desync(_) => Rejection::Desync.as_str(),
            ProxyError::ClientBodyInvalid => "client_body_invalid",
            ProxyError::ClientClosed => "client_closed",
            ProxyError::ClientBodyTimeout => "request_body_timeout",
            ProxyError::UnsafeRedirect => "unsafe_redirect",
            ProxyError::ListenerGone => "listener_draining",
            ProxyError::NoTarget(_) => "no_healthy_target",
            ProxyError::Connect { .. } => "target_connect_failed",
            ProxyError::ResponseTimeout(_) => "target_response_timeout",
            ProxyError::Target { .. } | ProxyError::TargetHttp1 { .. } => "target_failed",
            ProxyError::GrpcNeedsHttp2(_) => "grpc_needs_http2",
            ProxyError::CircuitOpen(_) => Rejection::CircuitOpen.as_str(),
            ProxyError::Shed => Rejection::Shed.as_str(),
            ProxyError::RateLimited(_) => Rejection::RateLimited.as_str(),
        }
    }
}

impl From<ClientFault> for ProxyError {
    fn from(fault: ClientFault) -> Self {
        match fault {
            ClientFault::Invalid => ProxyError::ClientBodyInvalid,
            ClientFault::Closed => ProxyError::ClientClosed,
            ClientFault::TimedOut => ProxyError::ClientBodyTimeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::grpc::Code;

    #[test]
    fn a_clients_broken_body_is_the_clients_400() {
        let cases = [
            (
                ClientFault::Invalid,
                "client_body_invalid",
                Code::InvalidArgument,
            ),
            (ClientFault::Closed, "client_closed", Code::Cancelled),
        ];
        for (fault, reason, code) in cases {
            let e = ProxyError::from(fault);
            assert_eq!(e.source_side(), ErrorSource::Client);
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert_eq!(e.reason(), reason);
            assert_eq!(e.grpc_status(), code);
            assert!(e.rejection().is_none());
        }
    }

    #[test]
    fn a_body_too_slow_is_the_clients_408() {
        let e = ProxyError::from(ClientFault::TimedOut);
        assert_eq!(e.source_side(), ErrorSource::Client);
        assert_eq!(e.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(e.reason(), "request_body_timeout");
        assert_eq!(e.grpc_status(), Code::DeadlineExceeded);
        assert!(e.rejection().is_none());
    }

    #[test]
    fn a_request_over_a_rate_limit_is_a_429_resource_exhausted_rate_limited() {
        let config = ballast_config::Config::from_toml(
            "[[rate_limits]]\nname = \"per-ip\"\nkey = \"client_ip\"\nrate = \"100/s\"\n\
             [[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\
             default_action = { type = \"fixed_response\", status = 200 }\n",
        )
        .expect("valid");
        let limit = std::sync::Arc::new(crate::admission::rate_limits::RateLimiter::new(
            &config.rate_limits[0],
        ));
        let e = ProxyError::RateLimited(crate::admission::rate_limits::Limited {
            limit,
            wait: std::time::Duration::from_millis(2500),
        });
        assert_eq!(e.source_side(), ErrorSource::Client);
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.reason(), "rate_limited");
        assert_eq!(e.grpc_status(), Code::ResourceExhausted);
        assert_eq!(
            e.rejection(),
            Some(crate::observe::metrics::Rejection::RateLimited)
        );
        let ProxyError::RateLimited(limited) = &e else {
            unreachable!()
        };
        let mut h = http::HeaderMap::new();
        limited.headers(&mut h);
        assert_eq!(h["retry-after"], "3");
        assert_eq!(h["ratelimit-policy"], "\"per-ip\";q=100;w=1");
        assert_eq!(h["ratelimit"], "\"per-ip\";r=0;t=3");
    }

    #[test]
    fn an_open_circuit_is_a_503_unavailable_circuit_open() {
        let e = ProxyError::CircuitOpen(crate::observe::group::Limit::Requests);
        assert_eq!(e.source_side(), ErrorSource::Ballast);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.reason(), "circuit_open");
        assert_eq!(e.grpc_status(), Code::Unavailable);
        assert_eq!(
            e.rejection(),
            Some(crate::observe::metrics::Rejection::CircuitOpen)
        );
    }

    #[test]
    fn a_shed_request_is_a_503_unavailable_shed() {
        let e = ProxyError::Shed;
        assert_eq!(e.source_side(), ErrorSource::Ballast);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.reason(), "shed");
        assert_eq!(e.grpc_status(), Code::Unavailable);
        assert_eq!(
            e.rejection(),
            Some(crate::observe::metrics::Rejection::Shed)
        );
    }
}
