//! One attempt of a request on an HTTP/2 target (`protocol = "http2"` groups).
//!
//! Data path, called by `forward.rs` in place of its HTTP/1.1 `send`. The request
//! head `headers::prepare_request` wrote for HTTP/1.1 becomes an HTTP/2 one: the
//! `Host` header moves into `:authority` (RFC 9113 §8.3.1 prefers it there), the
//! target is absolute (`http://host/path`, `https://` towards a group with `tls`,
//! whose `:scheme` must say so), and `te: trailers` is put back when the
//! client asked for it (it is hop-by-hop in HTTP/1.1, but gRPC servers require it
//! on HTTP/2). The stream comes from the target's `H2Pool`; its guard rides on the
//! response body, so the connection's stream count drops when the response ends
//! or is abandoned. Dropping the body (a client that reset its stream) drops the
//! upstream stream, which h2 answers with RST_STREAM(CANCEL) to the target, so a
//! cancellation travels end to end.
//!
//! hyper's client reads the request body in a task of its own; when the client's
//! body breaks off (malformed, or the client gone), it resets the target's stream
//! and fails the request like any other reset. The body recorded why
//! (`Trace::client_fault`), so that failure is answered as the client's, with
//! nothing counted against the target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};

use crate::forward::attempt::{connect_failed, Trace};
use crate::forward::body::{Hold, ResponseBody};
use crate::forward::error::ProxyError;
use crate::forward::retry::Failure;
use crate::forward::retry::MAX_STALE;
use crate::http1::hop_by_hop::remove_hop_by_hop;
use crate::resilience::breaker;
use crate::upstream::body::UpstreamBody;
use crate::upstream::http2::CheckoutError;
use crate::upstream::target::Target;
use crate::upstream::target_group::TargetGroup;

/// Whether the client's `TE` header asks for trailers (read before hop-by-hop
/// headers are removed).
pub fn wants_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    })
}

/// Turn a prepared HTTP/1.1 head into an HTTP/2 one; `secure`: the group has `tls`.
pub fn to_http2(parts: &mut Parts, te_trailers: bool, secure: bool) {
    let authority = parts
        .headers
        .remove(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok());
    if let Some(authority) = authority {
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(if secure { Scheme::HTTPS } else { Scheme::HTTP });
        uri.authority = Some(authority);
        uri.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
    parts.version = Version::HTTP_2;
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// A request without a usable Host: the target's address is the authority.
fn ensure_authority(req: &mut Request<UpstreamBody>, target: &Target, secure: bool) {
    if req.uri().authority().is_some() {
        return;
    }
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let scheme = if secure { "https" } else { "http" };
    if let Ok(uri) = Uri::try_from(format!("{scheme}://{}{pq}", target.addr)) {
        *req.uri_mut() = uri;
    }
}

/// One attempt on one HTTP/2 target, waiting at most `timeout` for the head.
pub async fn send(
    target: &Arc<Target>,
    group: &TargetGroup,
    mut req: Request<UpstreamBody>,
    trace: &mut Trace,
    timeout: Duration,
) -> Result<Response<ResponseBody>, Failure> {
    let before = trace.target.replace(target.addr);
    let tls = group.tls.as_deref();
    ensure_authority(&mut req, target, tls.is_some());
    let mut in_flight = target.begin_request();
    let mut stale = 0;
    let gate = breaker::connect(group);
    loop {
        let (mut sender, stream) = match target
            .h2
            .checkout(in_flight, group.config.connect_timeout, &gate, tls)
            .await
        {
            Ok(s) => s,
            Err((CheckoutError::Connect(e), _)) => {
                return Err(Failure {
                    error: connect_failed(target, group, e),
                    unsent: Some(req),
                })
            }
            Err((CheckoutError::Limit(limit), _)) => {
                // Not touched: the log names the target tried before, if any.
                trace.target = before;
                return Err(Failure {
                    error: ProxyError::CircuitOpen(limit),
                    unsent: Some(req),
                });
            }
        };
        let sent_at = Instant::now();
        trace.sent_at = Some(sent_at);
        let mut e = match tokio::time::timeout(timeout, sender.try_send_request(req)).await {
            Ok(Ok(mut response)) => {
                let head_at = Instant::now();
                let status = response.status().as_u16();
                target.metrics.requests.inc(status);
                target.metrics.duration.observe(head_at - sent_at);
                trace.head_at = Some(head_at);
                trace.target_status = Some(status);
                if let Some(body) = &trace.body {
                    // The rest of the client's body is the target's business now.
                    body.answered();
                }
                remove_hop_by_hop(response.headers_mut());
                let hold = Hold::Stream(stream);
                return Ok(response.map(|body| ResponseBody::held(body, hold)));
            }
            Ok(Err(e)) => e,
            Err(_) => {
                // A body that broke off before the timeout: the client's failure.
                let error = trace
                    .client_fault()
                    .map_or(ProxyError::ResponseTimeout(target.addr), Into::into);
                return Err(Failure {
                    error,
                    unsent: None,
                });
            }
        };
        if let Some(fault) = trace.client_fault() {
            // The client's body broke off, and hyper reset the stream for it.
            return Err(Failure {
                error: fault.into(),
                unsent: None,
            });
        }
        match e.take_message() {
            // The connection closed (GOAWAY) before the stream was opened: the
            // request is whole, so try another connection to the same target.
            Some(unsent) if stale < MAX_STALE => {
                stale += 1;
                req = unsent;
                in_flight = stream.into_in_flight();
            }
            unsent => {
                let error = ProxyError::Target {
                    target: target.addr,
                    source: e.into_error(),
                };
                return Err(Failure { error, unsent });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_becomes_authority_and_te_trailers_is_kept() {
        let mut p = Request::post("/pkg.Svc/Call?x=1")
            .header("host", "api.example:50051")
            .header("te", "gzip, trailers")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let te = wants_trailers(&p.headers);
        p.headers.remove(header::TE);
        let mut secure = p.clone();
        to_http2(&mut p, te, false);
        assert_eq!(p.uri, "http://api.example:50051/pkg.Svc/Call?x=1");
        to_http2(&mut secure, te, true);
        assert_eq!(secure.uri, "https://api.example:50051/pkg.Svc/Call?x=1");
        assert_eq!(p.version, Version::HTTP_2);
        assert!(p.headers.get("host").is_none());
        assert_eq!(p.headers["te"], "trailers");
    }

    #[test]
    fn te_without_trailers_is_not_forwarded() {
        let h = Request::get("/")
            .header("te", "gzip;q=1")
            .body(())
            .expect("request")
            .into_parts()
            .0
            .headers;
        assert!(!wants_trailers(&h));
        let mut p = Request::get("/").body(()).expect("r").into_parts().0;
        to_http2(&mut p, false, false);
        assert!(p.headers.get("te").is_none());
    }
}
