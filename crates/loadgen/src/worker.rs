//! One connection's task: connect, send requests on its lanes, reconnect on failure,
//! record every measured outcome. This is the data path of the load generator.
//!
//! An HTTP/1.1 connection has one lane and speaks through [`crate::raw`]: one write of
//! the prebuilt request bytes, the answer parsed from a reused buffer, no allocation.
//! An HTTP/2 connection has `--streams` lanes sharing one hyper connection, each with
//! its own clone of the `SendRequest` handle; the hyper connection future is polled
//! inside the same task as the lanes (with `select`), not spawned, so a request costs
//! no cross-task hand-off and the connection dies with its task. Per request the loop
//! takes two clock readings and arms one timer (the timeout); bodies are counted, not
//! collected; samples go to a preallocated buffer (see [`crate::stats`]).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, select, Either};
use http_body_util::BodyExt;
use hyper::client::conn::http2;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};

use crate::endpoint::{Endpoint, Handshake, Stream};
use crate::outcome::{ErrorKind, Outcome};
use crate::raw;
use crate::request::Template;
use crate::schedule::{is_late, Lane, Next, Take, Window};
use crate::stats::{Recorder, Sample, Shard};

/// What every connection task shares, read-only.
pub struct Job {
    pub endpoint: Endpoint,
    /// The HTTP/2 request, cloned per send.
    pub template: Template,
    /// The encoded HTTP/1.1 request, written as is per send.
    pub raw: Bytes,
    /// The method is HEAD: HTTP/1.1 answers carry no body.
    pub head: bool,
    pub timeout: Duration,
    pub window: Window,
}

/// Why a lane stopped sending on a connection.
enum LaneEnd {
    Done,
    Reconnect,
}

/// A request handle of either protocol.
enum Sender {
    Http1(raw::Conn<Stream>),
    Http2(http2::SendRequest<http_body_util::Full<Bytes>>),
}

impl Sender {
    /// Whether a request can be sent now; waits for HTTP/2 stream capacity.
    async fn ready(&mut self) -> bool {
        match self {
            Sender::Http1(c) => c.ready(),
            Sender::Http2(s) => s.ready().await.is_ok(),
        }
    }

    /// Whether an error just seen ends the connection.
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(_) => true,
            Sender::Http2(s) => s.is_closed(),
        }
    }

    /// Sends one request and reads the whole answer; returns its status and body size.
    async fn exchange(&mut self, job: &Job) -> Result<(u16, u64), ErrorKind> {
        match self {
            Sender::Http1(c) => c.exchange(&job.raw, job.head).await,
            Sender::Http2(s) => http2_exchange(s, job.template.clone())
                .await
                .map_err(|e| ErrorKind::of_hyper(&e)),
        }
    }
}

async fn http2_exchange(
    send: &mut http2::SendRequest<http_body_util::Full<Bytes>>,
    request: Template,
) -> hyper::Result<(u16, u64)> {
    let response = send.send_request(request).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok((status, bytes))
}

/// Runs one connection's lanes until all of them are done. Aborting the task is also
/// fine: the recorders flush when dropped.
pub async fn connection(job: Arc<Job>, mut lanes: Vec<Lane>, shard: Shard) {
    let mut recorders: Vec<Recorder> = lanes.iter().map(|_| Recorder::new(shard.clone())).collect();
    let mut backoff = Duration::from_millis(1);
    loop {
        let now = Instant::now();
        if lanes.iter().all(|lane| lane.next(now) == Next::Done) {
            return;
        }
        match timeout(job.timeout, job.endpoint.connect()).await {
            Ok(Ok(Handshake::Http1(stream))) => {
                backoff = Duration::from_millis(1);
                let (lane, rec) = match (lanes.first_mut(), recorders.first_mut()) {
                    (Some(lane), Some(rec)) => (lane, rec),
                    _ => return,
                };
                let mut send = Sender::Http1(raw::Conn::new(stream));
                drive(&job, &mut send, lane, rec).await;
            }
            Ok(Ok(Handshake::Http2(send, conn))) => {
                backoff = Duration::from_millis(1);
                let all = join_all(lanes.iter_mut().zip(recorders.iter_mut()).map(
                    |(lane, rec)| {
                        let mut send = Sender::Http2(send.clone());
                        let job = &job;
                        async move { drive(job, &mut send, lane, rec).await }
                    },
                ));
                if let Some(all) = until_either_ends(conn, pin!(all)).await {
                    all.await;
                }
            }
            Ok(Err(_)) | Err(_) => {
                // Each waiting lane loses its current request to the failure; in open
                // loop that keeps the timetable, in closed loop it counts toward -n.
                let now = Instant::now();
                for (lane, rec) in lanes.iter_mut().zip(recorders.iter_mut()) {
                    if lane.next(now) != Next::Done && lane.take(now) == Take::Measured {
                        record(
                            &job.window,
                            rec,
                            now,
                            now,
                            Outcome::Error(ErrorKind::Connect),
                            false,
                        );
                    }
                }
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
        }
    }
}

/// Polls a connection and its lanes together until one of them ends. If the
/// connection ended first, it is dropped (which closes its request handles) and the
/// unfinished lanes are handed back so that they can observe the close and finish
/// their current request.
async fn until_either_ends<C, L>(conn: C, lanes: Pin<&mut L>) -> Option<Pin<&mut L>>
where
    C: Future,
    L: Future,
{
    let conn = pin!(conn);
    match select(conn, lanes).await {
        Either::Left((_, lanes)) => Some(lanes),
        Either::Right(_) => None,
    }
}

/// Sends requests on one lane until it is done or the connection is unusable.
async fn drive(job: &Job, send: &mut Sender, lane: &mut Lane, rec: &mut Recorder) -> LaneEnd {
    let http2 = matches!(send, Sender::Http2(_));
    loop {
        let intended = match lane.next(Instant::now()) {
            Next::Done => return LaneEnd::Done,
            Next::Now => None,
            Next::At(at) => {
                if at > Instant::now() {
                    sleep_until(at).await;
                }
                Some(at)
            }
        };
        if !send.ready().await {
            return LaneEnd::Reconnect; // closed while idle (e.g. keep-alive ended): no error
        }
        let sent = Instant::now();
        let measured = match lane.take(sent) {
            Take::Done => return LaneEnd::Done,
            Take::Measured => true,
            Take::Unmeasured => false,
        };
        let result = timeout_at(sent + job.timeout, send.exchange(job)).await;
        let done = Instant::now();
        let (outcome, fatal) = match result {
            Ok(Ok((status, bytes))) => (Outcome::Response { status, bytes }, false),
            Ok(Err(kind)) => (Outcome::Error(kind), send.is_closed()),
            // An HTTP/1.1 connection with an unanswered request cannot be reused.
            Err(_) => (Outcome::Error(ErrorKind::Timeout), !http2),
        };
        if measured {
            let start = intended.unwrap_or(sent);
            let late = intended.is_some_and(|at| is_late(at, sent));
            record(&job.window, rec, start, done, outcome, late);
        }
        if fatal {
            return LaneEnd::Reconnect;
        }
    }
}

fn record(
    window: &Window,
    rec: &mut Recorder,
    start: Instant,
    done: Instant,
    outcome: Outcome,
    late: bool,
) {
    if window.has_ended(done) {
        return; // completed after the end of the run: not part of the measurement
    }
    let latency_us = u64::try_from(done.duration_since(start).as_micros()).unwrap_or(u64::MAX);
    let sample = Sample {
        done: window.offset(done),
        latency_us,
        outcome,
        late,
    };
    rec.record(sample, done);
}
