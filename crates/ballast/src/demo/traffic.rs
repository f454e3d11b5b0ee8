//! `ballast demo --traffic`: light traffic of the demo's own, so the dashboard
//! moves without a second terminal.
//!
//! Control runtime, client side: one pooled HTTP/1.1 client (hyper-util, keep-
//! alive) sends `rate` requests a second on a steady tick over a short, fixed mix
//! of paths (one in twenty asks the backend for a 404, so 4xx shows too). It is
//! bounded: at most [`IN_FLIGHT`] requests wait at once; a tick that finds them
//! all busy is skipped rather than queued, so a slow balancer is never buried
//! under a backlog. It runs until the demo aborts it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Requests in flight at most.
const IN_FLIGHT: usize = 64;
/// A request that takes longer is given up (the balancer logs it anyway).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The cycle of paths; `?status=404` makes the backend answer 404.
const PATHS: [&str; 20] = [
    "/",
    "/hello",
    "/api/orders",
    "/api/users/42",
    "/static/app.js",
    "/hello",
    "/api/orders?page=2",
    "/",
    "/api/users/7",
    "/static/style.css",
    "/hello",
    "/api/orders",
    "/",
    "/api/users/42",
    "/static/app.js",
    "/hello",
    "/api/cart",
    "/",
    "/api/users/7",
    "/old-page?status=404",
];

/// Send `rate` requests a second to `addr` until aborted.
pub async fn run(addr: SocketAddr, rate: u32) {
    // A listener on 0.0.0.0 or [::] is reached on loopback.
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for path in PATHS.iter().cycle() {
        tick.tick().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let Ok(uri) = format!("http://{host}{path}").parse::<http::Uri>() else {
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            let exchange = async {
                if let Ok(response) = client.get(uri).await {
                    // Read the body to its end so the connection is kept.
                    let _ = response.into_body().collect().await;
                }
            };
            let _ = tokio::time::timeout(TIMEOUT, exchange).await;
            drop(slot);
        });
    }
}
