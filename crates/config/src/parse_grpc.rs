//! The gRPC keys of a health check: `grpc_service` and `grpc_matcher`.
//!
//! Control path only. A gRPC check asks `grpc.health.v1.Health/Check` over HTTP/2,
//! so it needs a `protocol = "http2"` group, and it replaces the HTTP check's
//! `path` and `matcher` rather than adding to them: mixing the two would leave
//! one of them silently unused, so it is an error, as is a `grpc_matcher` without
//! a `grpc_service`.

use crate::decode::{self as d, Errors, Fields};
use crate::model::{GrpcCheck, StatusMatcher, TargetProtocol};

/// `Some(None)`: an HTTP check; `Some(Some(_))`: a gRPC check; `None`: errors.
pub fn decode_grpc_check(
    f: &mut Fields<'_>,
    protocol: Option<TargetProtocol>,
    errs: &mut Errors,
) -> Option<Option<GrpcCheck>> {
    let service_node = f.optional("grpc_service");
    let matcher_node = f.optional("grpc_matcher");
    let Some(node) = service_node else {
        if let Some(m) = matcher_node {
            errs.at(
                &f.path("grpc_matcher"),
                m.pos,
                "grpc_matcher is for gRPC checks; set grpc_service too (\"\" checks the whole server), or use matcher for HTTP checks",
            );
            return None;
        }
        return Some(None);
    };
    let p = f.path("grpc_service");
    let mut ok = true;
    let service = d::string(node, &p, errs).and_then(|s| {
        let valid = s.len() <= GrpcCheck::MAX_SERVICE_LEN && s.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            errs.at(
                &p,
                node.pos,
                format!(
                    "invalid gRPC service name {s:?}; expected up to {} printable ASCII characters without spaces, such as \"my.package.Service\" or \"\"",
                    GrpcCheck::MAX_SERVICE_LEN
                ),
            );
            return None;
        }
        Some(s)
    });
    if protocol == Some(TargetProtocol::Http1) {
        errs.at(
            &p,
            node.pos,
            "grpc_service needs a target group with protocol = \"http2\" (gRPC runs over HTTP/2)",
        );
        ok = false;
    }
    for (key, instead) in [("path", "grpc_service"), ("matcher", "grpc_matcher")] {
        if let Some(n) = f.peek(key) {
            errs.at(
                &f.path(key),
                n.pos,
                format!("{key} is for HTTP checks and cannot be combined with grpc_service; a gRPC check uses {instead}"),
            );
            ok = false;
        }
    }
    let matcher = match matcher_node {
        None => Some(StatusMatcher(vec![(0, 0)])),
        Some(n) => {
            let mp = f.path("grpc_matcher");
            d::string(n, &mp, errs).and_then(|s| {
                let m = StatusMatcher::parse_grpc(&s);
                if m.is_none() {
                    errs.at(
                        &mp,
                        n.pos,
                        format!(
                            "invalid grpc_matcher {s:?}; expected {}",
                            StatusMatcher::GRPC_ALLOWED
                        ),
                    );
                }
                m
            })
        }
    };
    let check = GrpcCheck {
        service: service?,
        matcher: matcher?,
    };
    ok.then_some(Some(check))
}
