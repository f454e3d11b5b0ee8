//! The request handler: one client request, start to finish.
//!
//! Data path. Reads top to bottom: load the snapshot once → match the listener's
//! rules (`rule/`) → answer a redirect or fixed response at once, or pick the
//! target group of a forward (`action.rs`) → rewrite the head → pick a target →
//! take or open a connection → send with the response timeout → stream the
//! response back. Before the first attempt the group's concurrency limit
//! (`resilience/shedding.rs`; over it: 503 `shed`) and circuit breaker admit the
//! request (`resilience/breaker.rs`; over a limit: 503 `circuit_open`, no target
//! touched), and a new connection takes its places among the group's pending
//! requests and connections. Which failures are tried again, and where, is
//! `retry.rs`'s:
//! - a connect failure never reached the target: the target is marked down at once
//!   and another one is tried;
//! - a pooled connection that turned out closed before the request was written
//!   (hyper hands the request back): the same target is tried on a new connection;
//! - an idempotent request without a body that failed before any response arrived
//!   (the target died under it): another target is tried, and with a `retry`
//!   policy also a timeout or a 5xx it lists, within the group's retry budget.
//!   Without one, a request that timed out is never retried: the target may
//!   still be working on it. Nor is one whose own body broke off (malformed, or
//!   the client gone): that is the client's failure, a 400, and not the target's
//!   (`error.rs`).
//!
//! The protocol towards the target is the group's: `http1.rs` for HTTP/1.1
//! (pooled connections), `multiplex::send` for HTTP/2 (shared connections, one
//! stream per request), `upgrade::forward` for an HTTP/1.1 upgrade (WebSocket) on
//! a dedicated connection. gRPC requests need an HTTP/2 group, have their
//! `grpc-timeout` honoured, and get ballast's own errors the gRPC way
//! (`error_response`).
//!
//! Recording the outcome costs atomics only: the listener's and the target's
//! metric cells are already in hand (`ConnCtx`, `Target`), and with the access log
//! on, the record rides on the response body and is sent when the body ends.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};

use ballast_config::TargetProtocol;

use crate::admission::rate_key::Facts;
use crate::admission::rate_limits;
use crate::forward::attempt::Trace;
use crate::forward::body::{PendingLog, RequestBody, ResponseBody};
use crate::forward::context::{Activity, ConnCtx};
use crate::forward::error::ProxyError;
use crate::forward::grpc;
use crate::forward::headers::{self};
use crate::forward::http1 as http1_attempt;
use crate::forward::http2 as multiplex;
use crate::forward::retry::Retry;
use crate::forward::sticky::{self, Visit};
use crate::forward::upgrade::{self};
use crate::hygiene::{self, Seen};
use crate::observe::access_log::AccessRecord;
use crate::resilience::{breaker, budget, shedding};
use crate::routing::action::RouteAction;
use crate::routing::redirect::{self, Origin, RedirectError};
use crate::routing::RequestView;
use crate::snapshot::ListenerRoute;
use crate::upstream::body::UpstreamBody;
use crate::upstream::target_group::TargetGroup;

/// Serve one request.
///
/// Everything up to the first wait (routing, the rewrite of the head, the log
/// record) is done here, synchronously, by `plan`; the future returned holds only
/// what the waits need. This keeps every request's future small (it is allocated
/// and copied for each request): an async function stores its arguments for its
/// whole life, and any local it ever borrowed, so a request head passed down by
/// value or prepared inside it would be stored several times over.
pub fn handle(
    req: Request<RequestBody>,
    conn: Arc<ConnCtx>,
    seen: Seen,
) -> impl Future<Output = Response<ResponseBody>> + Send {
    let plan = plan(req, &conn, seen);
    run(plan, conn)
}

/// What a request still needs once its route is decided and its head rewritten.
struct Plan {
    received: Instant,
    activity: Activity,
    is_grpc: bool,
    rule_priority: Option<u32>,
    /// The request's access-log record and where it goes, when the log is on;
    /// boxed once here and handed as is to the response body.
    log: Option<Box<PendingLog>>,
    trace: Trace,
    group: Option<Arc<TargetGroup>>,
    set_cookie: Option<HeaderValue>,
    /// What a sticky group's request brought (`sticky.rs`).
    sticky: Option<Visit>,
    /// Close the client's connection after the response (and the target's after
    /// this request): a refused or an ambiguous HTTP/1 request (`hygiene/`).
    close: bool,
    /// The request came over HTTP/2 (no connection to close per request).
    http2: bool,
    step: Step,
}

/// What is left to do for the response. `Send` is the large variant on purpose:
/// it is what nearly every request holds, and boxing its `Retry` (which keeps a
/// shuffle shard's members inline) would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Send to the group's targets.
    Send {
        retry: Retry,
        timeout: Duration,
        http2: bool,
    },
    /// Forward an upgrade (WebSocket) on a connection of its own.
    Upgrade(Option<Request<RequestBody>>),
    /// Nothing: a redirect, a fixed response, or an error, already known.
    Done(Option<Result<Box<Response<ResponseBody>>, ProxyError>>),
}

fn plan(mut req: Request<RequestBody>, conn: &ConnCtx, seen: Seen) -> Plan {
    let received = Instant::now();
    let http2 = req.version() == http::Version::HTTP_2;
    let activity = conn.state.begin(http2);
    let is_grpc = grpc::is_grpc(req.headers());
    let snapshot = conn.shared.snapshot.load();
    let mut verdict = None;
    let mut close = false;
    let (decision, rule_priority) = match snapshot.listener(&conn.listener) {
        Some(route) => {
            let policy = hygiene::Policy {
                mode: route.config.desync_mitigation_mode,
                drop_invalid_header_fields: route.config.drop_invalid_header_fields,
            };
            let checked = hygiene::check(&mut req, policy, seen);
            verdict = checked.verdict;
            if let Some(v) = verdict {
                conn.metrics.classified(v.class);
            }
            match checked.outcome {
                Ok(pass) => {
                    close = pass.close;
                    decide(route, &req, conn, received)
                }
                Err(refusal) => {
                    close = true;
                    (Decision::Fail(refusal.into()), None)
                }
            }
        }
        None => (Decision::Fail(ProxyError::ListenerGone), None),
    };
    let log = snapshot.access_log.as_ref().map(|sink| {
        let mut record = begin_record(&req, conn);
        record.desync_classification = verdict.map(|v| v.class.as_str());
        record.desync_reason = verdict.map(|v| v.reason);
        Box::new(PendingLog::new(record, sink.clone(), received))
    });
    drop(snapshot);
    let mut plan = Plan {
        received,
        activity,
        is_grpc,
        rule_priority,
        log,
        trace: Trace::default(),
        group: None,
        set_cookie: None,
        sticky: None,
        // HTTP/2 has no connection to close per request.
        close: close && !http2,
        http2,
        step: Step::Done(None),
    };
    plan.step = match decision {
        Decision::Forward { group, set_cookie } => {
            plan.set_cookie = set_cookie;
            let step = prepare(req, &group, conn, &mut plan);
            plan.group = Some(group);
            step
        }
        Decision::Respond(response) => Step::Done(Some(Ok(response))),
        Decision::Fail(e) => Step::Done(Some(Err(e))),
    };
    plan
}

/// Rewrite a request for `group` and make it ready to send.
fn prepare(
    req: Request<RequestBody>,
    group: &TargetGroup,
    conn: &ConnCtx,
    plan: &mut Plan,
) -> Step {
    let http2 = group.config.protocol == TargetProtocol::Http2;
    if plan.is_grpc && !http2 {
        let e = ProxyError::GrpcNeedsHttp2(group.name().to_string());
        return Step::Done(Some(Err(e)));
    }
    if !http2 && upgrade::requested(&req).is_some() {
        return Step::Upgrade(Some(req));
    }
    let mut timeout = group.config.response_timeout;
    if let Some(deadline) = plan.is_grpc.then(|| grpc::timeout(req.headers())).flatten() {
        timeout = timeout.min(deadline);
    }
    let te_trailers = http2 && multiplex::wants_trailers(req.headers());
    plan.sticky = sticky::read(group, req.headers());
    let (mut parts, body) = req.into_parts();
    let request_id = headers::prepare_request(&mut parts, &conn.client_ip, &conn.forwarded);
    if let Some(log) = &mut plan.log {
        log.record.request_id = Some(request_id.clone());
    }
    if plan.close && !http2 {
        // The target's connection is not used again after this request
        // (`upstream/http1.rs` reads this field as ballast's own).
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if http2 {
        multiplex::to_http2(&mut parts, te_trailers, group.tls.is_some());
    }
    crate::tls::client_cert::apply(&mut parts.headers, conn.tls.as_deref().map(|t| &t.cert));
    let body = body.into_upstream(conn);
    plan.trace.body = body.tally().cloned();
    let replayable =
        matches!(body, UpstreamBody::Empty) && http1_attempt::is_idempotent(&parts.method);
    let shard = group.shard_for(&parts.headers, conn.client_ip.as_bytes());
    let mut retry = Retry::new(Request::from_parts(parts, body), replayable, http2, group);
    retry.shard(shard);
    if let Some(i) = plan.sticky.and_then(|v| v.target()) {
        retry.prefer(i);
    }
    Step::Send {
        retry,
        timeout,
        http2,
    }
}

/// The waits of a request, and what follows them. Not an `async fn`: one of
/// those keeps each argument twice for its whole life (as given, and as the
/// binding its body uses), which for the plan is 616 bytes more in every
/// request's future, copied with it. The block here uses the plan where it was
/// captured.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn run(mut plan: Plan, conn: Arc<ConnCtx>) -> impl Future<Output = Response<ResponseBody>> + Send {
    async move {
        let conn = &*conn;
        let result = match (&mut plan.step, plan.group.as_deref()) {
            (
                Step::Send {
                    retry,
                    timeout,
                    http2,
                },
                Some(group),
            ) => {
                let mut result = attempts(retry, group, &mut plan.trace, *timeout, *http2).await;
                if let (Ok(response), Some(visit)) = (&mut result, plan.sticky) {
                    let secure = conn.tls.is_some();
                    sticky::answer(group, visit, retry.served(), response.headers_mut(), secure);
                }
                result
            }
            (Step::Upgrade(req), Some(group)) => match req.take() {
                Some(req) => Box::pin(upgrade::forward(req, group, conn, &mut plan.trace)).await,
                None => Err(ProxyError::NoTarget(group.name().to_string())),
            },
            (Step::Done(done), _) => match done.take() {
                Some(done) => done.map(|response| *response),
                None => Err(ProxyError::ListenerGone),
            },
            (_, None) => Err(ProxyError::NoTarget(String::new())),
        };
        let result = result.map(|mut response| {
            if let Some(cookie) = plan.set_cookie.take() {
                response.headers_mut().append(SET_COOKIE, cookie);
            }
            response
        });
        let Plan {
            received,
            activity,
            is_grpc,
            rule_priority,
            log,
            trace,
            group,
            mut close,
            http2,
            ..
        } = plan;
        let mut error_reason = None;
        let response = result.unwrap_or_else(|e| {
            if let Some(why) = e.rejection() {
                conn.metrics.reject(why);
            }
            // The rest of a body too slow to wait for is not read: the
            // connection cannot carry another request.
            close |= matches!(e, ProxyError::ClientBodyTimeout) && !http2;
            error_reason = Some(e.reason());
            error_response(&e, conn, is_grpc)
        });
        let mut response = response;
        if close {
            // Hop-by-hop fields of targets' responses are gone by now: this one is
            // ballast's, and both HTTP/1.1 servers close after the response.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let status = response.status().as_u16();
        conn.metrics.requests.inc(status);
        conn.metrics.duration.observe(received.elapsed());
        let mut response = response.map(|b| b.with_activity(activity));
        if let Some(mut log) = log {
            let record = &mut log.record;
            record.target_group = group.map(|g| g.name.clone());
            record.rule_priority = rule_priority;
            record.target = trace.target;
            record.status = status;
            record.target_status = trace.target_status;
            record.error_reason = error_reason;
            let since = |a: Instant, b: Option<Instant>| b.map(|b| b - a);
            record.request_processing_time = since(received, trace.sent_at);
            record.target_processing_time = trace.sent_at.and_then(|s| since(s, trace.head_at));
            log.responded(trace.body);
            response = response.map(|b| b.with_log(log));
        }
        response
    }
}

/// Try the group's targets in turn, as far as `retry` allows, once the group's
/// concurrency limit (load shedding; over it: 503 `shed`) and circuit breaker
/// admit the request (its places are held until the response ends; its latency
/// to the response head is the shedding controller's signal). A response whose
/// status the retry policy retries is dropped (its connection closes) when a
/// retry is made.
async fn attempts(
    retry: &mut Retry,
    group: &TargetGroup,
    trace: &mut Trace,
    timeout: Duration,
    http2: bool,
) -> Result<Response<ResponseBody>, ProxyError> {
    let shed = shedding::admit(group).map_err(|()| ProxyError::Shed)?;
    let admitted = breaker::request(group).map_err(ProxyError::CircuitOpen)?;
    if group.config.retry.is_some() {
        budget::request(&group.metrics.window, crate::runtime::now_ms());
    }
    let mut next = retry.first(group);
    while let Some(target) = next {
        let sent = if http2 {
            let Some(req) = retry.take() else { break };
            match Box::pin(multiplex::send(target, group, req, trace, timeout)).await {
                Ok(response) => Ok(response),
                Err(failure) => Err(retry.failed(group, failure)),
            }
        } else {
            let Some(req) = retry.request_mut() else {
                break;
            };
            match http1_attempt::send(target, group, req, trace, timeout).await {
                Ok(response) => Ok(response),
                Err((error, reached)) => Err(retry.failed_in_place(group, error, reached)),
            }
        };
        next = match sent {
            Ok(response) => match retry.after_status(group, response.status().as_u16()) {
                Some(again) => Some(again),
                None => {
                    if let Some(place) = &shed {
                        place.answered();
                    }
                    return Ok(response.map(|b| b.with_place(admitted).with_shed(shed)));
                }
            },
            Err(again) => again,
        };
    }
    if let Some(place) = &shed {
        place.answered();
    }
    Err(retry.last_error(group))
}

/// The parts of a log record known from the request head.
fn begin_record(req: &Request<RequestBody>, conn: &ConnCtx) -> AccessRecord {
    AccessRecord {
        time: SystemTime::now(),
        listener: conn.listener.clone(),
        client: conn.client,
        target_group: None,
        target: None,
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        status: 0,
        target_status: None,
        request_processing_time: None,
        target_processing_time: None,
        response_processing_time: None,
        bytes_in: 0,
        bytes_out: 0,
        user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
        request_id: None,
        error_reason: None,
        desync_classification: None,
        desync_reason: None,
        rule_priority: None,
        tls_protocol: conn.tls.as_ref().map(|t| t.version),
        tls_cipher: conn.tls.as_ref().map(|t| t.cipher),
        complete: false,
    }
}

/// What the listener's rules decided, owned, so no snapshot is held across awaits.
enum Decision {
    Forward {
        group: Arc<TargetGroup>,
        set_cookie: Option<HeaderValue>,
    },
    Respond(Box<Response<ResponseBody>>),
    Fail(ProxyError),
}

/// Match the listener's rules, count the request against the listener's and the
/// rule's rate limits (`admission/`), and carry out an action that needs no
/// target; also returns the priority of the rule that matched (`None`: the
/// default action).
fn decide(
    route: &ListenerRoute,
    req: &Request<RequestBody>,
    conn: &ConnCtx,
    received: Instant,
) -> (Decision, Option<u32>) {
    let view = RequestView::new(req, conn.client.ip());
    let routed = route.route(&view);
    let priority = routed.priority;
    if route.limited {
        let facts = Facts {
            client: conn.client.ip(),
            headers: req.headers(),
            rule: priority.unwrap_or(0),
        };
        let lists = [&route.limits[..], routed.rule_limits];
        if let Err(limited) = rate_limits::check(lists, &facts, received) {
            return (Decision::Fail(ProxyError::RateLimited(limited)), priority);
        }
    }
    let decision = match routed.action {
        RouteAction::Forward(f) => match f.pick(req.headers()) {
            Some((group, cookie)) => Decision::Forward {
                group: group.clone(),
                set_cookie: cookie.cloned(),
            },
            None => Decision::Fail(ProxyError::NoTarget(String::new())),
        },
        RouteAction::Redirect { status, template } => {
            let origin = Origin {
                protocol: conn.forwarded.protocol,
                port: conn.forwarded.port_number,
            };
            match redirect::location(template, &view, &origin) {
                Ok(location) => {
                    let mut response = Response::new(ResponseBody::full(Bytes::new()));
                    *response.status_mut() = *status;
                    response.headers_mut().insert(LOCATION, location);
                    Decision::Respond(Box::new(response))
                }
                Err(RedirectError::InvalidHost) => Decision::Fail(ProxyError::InvalidHost),
                Err(RedirectError::Unsafe) => Decision::Fail(ProxyError::UnsafeRedirect),
            }
        }
        RouteAction::Fixed {
            status,
            content_type,
            body,
        } => {
            let mut response = Response::new(ResponseBody::full(body.clone()));
            *response.status_mut() = *status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, content_type.clone());
            Decision::Respond(Box::new(response))
        }
    };
    (decision, priority)
}

/// ballast's own answer to a request it could not forward: a short text page, or
/// for a gRPC request a trailers-only gRPC response with the matching status.
pub fn error_response(error: &ProxyError, conn: &ConnCtx, is_grpc: bool) -> Response<ResponseBody> {
    let status = error.status();
    tracing::debug!(listener = %conn.listener, client = %conn.client, %status, reason = error.reason(), grpc = is_grpc, %error, "request failed");
    if is_grpc {
        let mut response = grpc::error_response(error.grpc_status(), error.reason(), error);
        if let ProxyError::RateLimited(limited) = error {
            limited.headers(response.headers_mut());
        }
        return response;
    }
    let text = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        error.reason()
    );
    let mut response = Response::new(ResponseBody::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    if let ProxyError::RateLimited(limited) = error {
        limited.headers(response.headers_mut());
    }
    response
}
