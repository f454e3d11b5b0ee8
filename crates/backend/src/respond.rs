//! The request handler: health check, or count the body, wait, and answer (SPEC §6).
//!
//! Data path, one straight line per request: `/healthz` is answered from the health flag
//! (and the poison's) alone (no latency, no failures, not counted as a request);
//! anything else is counted, answered `500` at once if it is or follows a poison
//! request (`poison.rs`), otherwise
//! its query parsed into a [`Steer`], its body streamed and counted frame by frame (a
//! 100 MB upload never sits in memory), then, under `capacity`, a free worker is waited
//! for in FIFO order, then the configured latency plus `delay_ms` is waited, `fail_rate` decides whether this one is a `500`, and the body is either the
//! JSON echo or `bytes=N` filler. Every response carries `x-backend`.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::control::Shared;
use crate::echo;
use crate::payload::Payload;
use crate::steer::Steer;

const HEALTH_PATH: &str = "/healthz";
const X_BACKEND: HeaderName = HeaderName::from_static("x-backend");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const OCTETS: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// The hyper service function; never fails, every problem is a response.
pub(crate) async fn respond(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Payload>, Infallible> {
    if req.uri().path() == HEALTH_PATH {
        return Ok(health(&shared));
    }
    shared.count_request();
    if shared.poisoned_by(req.headers()) {
        return Ok(text(&shared, StatusCode::INTERNAL_SERVER_ERROR, "poisoned"));
    }

    let steer = match Steer::parse(req.uri().query()) {
        Ok(steer) => steer,
        Err(reason) => return Ok(text(&shared, StatusCode::BAD_REQUEST, reason)),
    };
    let (parts, body) = req.into_parts();
    let body_bytes = match count_body(body).await {
        Ok(n) => n,
        Err(err) => {
            let reason = format!("reading the request body failed: {err}");
            return Ok(text(&shared, StatusCode::BAD_REQUEST, reason));
        }
    };

    // Under `capacity`, the wait for a worker comes before the latency, which
    // the worker then spends: the queue is what makes latency grow with load.
    let _worker = shared.worker().await;
    let delay = shared.latency().saturating_add(steer.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let status = if shared.should_fail() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        steer.status.unwrap_or(StatusCode::OK)
    };
    let mut response = match steer.bytes {
        Some(len) => reply(&shared, status, OCTETS, Payload::filler(len)),
        None => {
            let echo = echo::render(&shared.name, &parts, body_bytes);
            reply(&shared, status, JSON, Payload::full(echo))
        }
    };
    if let Some(cookie) = steer.set_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `200 ok` while healthy, `503 unhealthy` once switched off or poisoned.
fn health(shared: &Shared) -> Response<Payload> {
    shared.count_health_check();
    if shared.is_healthy() && !shared.is_poisoned() {
        text(shared, StatusCode::OK, "ok")
    } else {
        text(shared, StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    }
}

/// Reads the body to its end, keeping only the count: each frame is dropped as soon as
/// it has been measured, so memory stays at one frame whatever the upload size.
async fn count_body(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

fn text(shared: &Shared, status: StatusCode, body: impl Into<String>) -> Response<Payload> {
    reply(shared, status, TEXT, Payload::full(body.into()))
}

fn reply(
    shared: &Shared,
    status: StatusCode,
    content_type: HeaderValue,
    body: Payload,
) -> Response<Payload> {
    // 204 and 304 cannot carry a body (RFC 9110 §15.3.5, §15.4.5); send it empty.
    let body = if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        Payload::empty()
    } else {
        body
    };
    let mut response = Response::new(Payload::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(X_BACKEND, shared.name_header.clone());
    if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    *response.body_mut() = body;
    response
}
