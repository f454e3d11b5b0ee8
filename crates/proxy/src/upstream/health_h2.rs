//! Health probes of `protocol = "http2"` groups: the HTTP check's `GET` over
//! HTTP/2, and gRPC health checks (`health_check.grpc_service`): the standard
//! `grpc.health.v1.Health/Check` call, over HTTP/2 cleartext or, for a group with
//! `tls`, over TLS with ALPN `h2`.
//!
//! Control path. Like an HTTP/1.1 probe, each check opens its own connection
//! (`dial::tcp`, the group's TLS handshake when it has one, then the same HTTP/2
//! handshake the data path uses), so it sees what a new client would: a target
//! whose certificate fails verification, or that will not agree to `h2`, fails
//! its checks with that as the cause. The two protobuf messages involved are tiny and
//! fixed, so they are encoded and decoded by hand here rather than pulling a
//! protobuf runtime into the product: the request is `HealthCheckRequest { string
//! service = 1 }`, the answer `HealthCheckResponse { ServingStatus status = 1 }`,
//! each in gRPC's 5-byte length-prefixed framing. A target passes when its
//! `grpc-status` (from the trailers, or the headers of a trailers-only answer) is
//! in `grpc_matcher` and it says `SERVING`; an answer outside that is
//! `Target.ResponseCodeMismatch`, no answer in time `Target.Timeout`, and a
//! refused or broken connection `Target.FailedHealthChecks`.

use std::time::Duration;

use ballast_config::GrpcCheck;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};

use crate::tls::Connector;
use crate::upstream::dial;
use crate::upstream::health::Checked;
use crate::upstream::http2;
use crate::upstream::target::{HealthReason, Target};

type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

const AGENT: &str = concat!("ballast-health-checker/", env!("CARGO_PKG_VERSION"));
const PATH: &str = "/grpc.health.v1.Health/Check";
/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;
/// A health answer is a few bytes; anything past this is not one.
const MAX_ANSWER: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a target answered.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    grpc_status: u16,
    serving: bool,
}

/// A new HTTP/2 connection to `target`, over TLS when the group has it.
async fn connect(
    target: &Target,
    timeout: Duration,
    tls: Option<&Connector>,
) -> Result<(H2Sender, &'static str), BoxError> {
    let stream = dial::tcp(target.addr, timeout).await?;
    Ok(match tls {
        None => (http2::handshake(stream).await?, "http"),
        Some(tls) => {
            let stream = tls.connect(stream, target.addr).await?;
            (http2::handshake(stream).await?, "https")
        }
    })
}

/// The status of `GET path` over a new HTTP/2 connection.
pub async fn get(
    target: &Target,
    path: &str,
    timeout: Duration,
    tls: Option<&Connector>,
) -> Result<u16, BoxError> {
    let (mut sender, scheme) = connect(target, timeout, tls).await?;
    let req = Request::get(format!("{scheme}://{}{path}", target.addr))
        .version(Version::HTTP_2)
        .header(USER_AGENT, AGENT)
        .body(Full::new(Bytes::new()))?;
    Ok(sender.send_request(req).await?.status().as_u16())
}

/// One gRPC health probe of one target, bounded by `timeout` as a whole.
pub async fn probe_grpc(
    target: &Target,
    check: &GrpcCheck,
    timeout: Duration,
    tls: Option<&Connector>,
) -> Checked {
    match tokio::time::timeout(timeout, call(target, &check.service, timeout, tls)).await {
        Err(_) => Checked::timed_out(timeout),
        Ok(Err(e)) => Checked::broken(&e),
        Ok(Ok(a)) if a.serving && check.matcher.matches(a.grpc_status) => Checked::ok(None),
        Ok(Ok(a)) if a.grpc_status == u16::MAX => Checked::failed(
            HealthReason::ResponseCodeMismatch,
            None,
            "not a gRPC answer".to_string(),
        ),
        Ok(Ok(a)) => Checked::failed(
            HealthReason::ResponseCodeMismatch,
            None,
            format!("grpc-status {}, serving: {}", a.grpc_status, a.serving),
        ),
    }
}

async fn call(
    target: &Target,
    service: &str,
    timeout: Duration,
    tls: Option<&Connector>,
) -> Result<Answer, BoxError> {
    let (mut sender, scheme) = connect(target, timeout, tls).await?;
    let req = Request::post(format!("{scheme}://{}{PATH}", target.addr))
        .version(Version::HTTP_2)
        .header(CONTENT_TYPE, "application/grpc")
        .header(TE, "trailers")
        .header(USER_AGENT, AGENT)
        .body(Full::new(encode_request(service)))?;
    let response = sender.send_request(req).await?;
    if response.status() != StatusCode::OK {
        // Not a gRPC answer at all (e.g. a plain HTTP server).
        return Ok(Answer {
            grpc_status: u16::MAX,
            serving: false,
        });
    }
    let head_status = response.headers().get("grpc-status").cloned();
    let collected = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await?;
    let trailer_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .cloned();
    let grpc_status = trailer_status
        .or(head_status)
        .and_then(|v| v.to_str().ok()?.parse::<u16>().ok())
        .ok_or("no grpc-status in the answer")?;
    let serving = grpc_status == 0 && decode_status(&collected.to_bytes()) == Some(SERVING);
    Ok(Answer {
        grpc_status,
        serving,
    })
}

/// `HealthCheckRequest { service }`, length-prefixed.
fn encode_request(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(5 + msg.len());
    framed.put_u8(0); // not compressed
    framed.put_u32(msg.len() as u32);
    framed.put_slice(&msg);
    framed.freeze()
}

fn put_varint(buf: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        buf.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// The `status` of a length-prefixed `HealthCheckResponse` (0, UNKNOWN, when the
/// field is absent as proto3 leaves defaults out); `None` if malformed.
fn decode_status(framed: &[u8]) -> Option<u64> {
    let (&compressed, rest) = framed.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    if compressed != 0 {
        return None;
    }
    let mut msg = rest.get(4..4 + len)?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut msg)?,
            (_, 0) => {
                varint(&mut msg)?;
            }
            (_, 1) => msg = msg.get(8..)?,
            (_, 2) => {
                let n = varint(&mut msg)? as usize;
                msg = msg.get(n..)?;
            }
            (_, 5) => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_framed_protobuf() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &encode_request("a.B")[..],
            &[0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']
        );
    }

    #[test]
    fn decodes_serving_status_and_skips_unknown_fields() {
        assert_eq!(decode_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(decode_status(&[0, 0, 0, 0, 0]), Some(0));
        // An unknown string field 2 before the status.
        assert_eq!(
            decode_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 2]),
            Some(2)
        );
        assert_eq!(decode_status(&[0, 0, 0, 0, 2, 0x08]), None);
        assert_eq!(decode_status(&[1, 0, 0, 0, 0]), None);
    }
}
