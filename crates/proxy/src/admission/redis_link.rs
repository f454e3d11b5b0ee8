//! This node's link to the fleet's Redis (`[cluster] redis`): one connection
//! shared by the global rate limits, whether Redis answers, and what the global
//! limits do while it does not (`on_redis_error`).
//!
//! Control path, read by the data path through one flag. The connection is a
//! `redis` crate `ConnectionManager` (one multiplexed TCP connection that
//! reconnects by itself), made on first use by a background task and never on
//! the data path. Every exchange has a deadline ([`DEADLINE`]): Redis is
//! "failing" from the first exchange that errs or times out until the next that
//! succeeds. While failing, the data path does not count a global limit's
//! requests at all (`global_limit.rs`): it admits them (`allow`, the default:
//! fail open, local limits still apply) or refuses them with a 429 (`deny`),
//! and counts them (`ballast_rate_limit_redis_fallbacks_total`). The transition
//! is logged once each way (WARN, then INFO), never per request.
//!
//! A keeper task pings Redis while it is failing, and when no exchange has
//! succeeded for a second (a node whose global limits see no traffic): the node
//! notices Redis's return within [`PROBE`] plus a reconnection, and
//! `ballast_redis_up` says the truth even when idle. It holds the link weakly
//! and ends with it.
//!
//! TLS to Redis (`rediss://`) is refused by the config check: the `redis` crate
//! is built without a TLS stack here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ballast_config::cluster::OnRedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};

use crate::observe::exposition::{family, sample};

/// The longest one exchange with Redis (connecting included) may take.
pub const DEADLINE: Duration = Duration::from_millis(500);
/// How often the keeper looks at the link.
pub const PROBE: Duration = Duration::from_millis(500);
/// How long without a successful exchange before the keeper pings.
const IDLE: Duration = Duration::from_secs(1);

pub struct RedisLink {
    /// As configured; compared, never logged (it may hold a password).
    url: String,
    pub on_error: OnRedisError,
    /// The fleet's key prefix (`[cluster] prefix`), Redis keys' namespace too.
    pub prefix: String,
    client: Option<redis::Client>,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// From a failed exchange to the next successful one.
    failing: AtomicBool,
    /// Whether the last exchange succeeded (`ballast_redis_up`).
    up: AtomicBool,
    errors: AtomicU64,
    /// Milliseconds after `started` of the last successful exchange.
    last_ok: AtomicU64,
    started: Instant,
}

impl RedisLink {
    /// A link to `url`, its keeper started on the current Tokio runtime.
    pub fn start(url: &str, on_error: OnRedisError, prefix: &str) -> Arc<RedisLink> {
        let client = match redis::Client::open(url) {
            Ok(c) => Some(c),
            Err(e) => {
                // The URL itself is not logged: it may carry a password.
                tracing::error!(error = %e.category(), "[cluster] redis: the URL is not one the Redis client accepts; global rate limits act as if Redis were down");
                None
            }
        };
        let link = Arc::new(RedisLink {
            url: url.to_string(),
            on_error,
            prefix: prefix.to_string(),
            client,
            connection: tokio::sync::Mutex::new(None),
            failing: AtomicBool::new(false),
            up: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_ok: AtomicU64::new(0),
            started: Instant::now(),
        });
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if link.client.is_some() => {
                rt.spawn(keep(Arc::downgrade(&link)));
            }
            _ => link.failing.store(true, Ordering::Relaxed),
        }
        link
    }

    /// Whether this link is the one `[cluster]` asks for now.
    pub fn is(&self, url: &str, on_error: OnRedisError, prefix: &str) -> bool {
        self.url == url && self.on_error == on_error && self.prefix == prefix
    }

    /// The URL as configured: secret material for `FleetSeed`
    /// (`global_limit.rs`), never to be logged.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether global limits decide without Redis now (data path: one load).
    #[inline]
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// The shared connection, made on first use (control path).
    pub async fn connection(&self) -> RedisResult<ConnectionManager> {
        let mut held = self.connection.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let Some(client) = self.client.clone() else {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the [cluster] redis URL was refused",
            )));
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(DEADLINE)
            .set_response_timeout(DEADLINE)
            .set_number_of_retries(1)
            .set_max_delay(DEADLINE.as_millis() as u64);
        let made = tokio::time::timeout(
            DEADLINE * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        *held = Some(made.clone());
        Ok(made)
    }

    /// An exchange succeeded.
    pub fn succeeded(&self) {
        self.last_ok
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!("Redis answers again: global rate limits count across the fleet again");
        }
    }

    /// An exchange failed (or timed out).
    pub fn failed(&self, e: &RedisError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::AcqRel) {
            let what = match self.on_error {
                OnRedisError::Allow => "admit their requests (on_redis_error = \"allow\")",
                OnRedisError::Deny => "refuse their requests with 429 (on_redis_error = \"deny\")",
            };
            tracing::warn!(error = %e, "Redis cannot be reached: global rate limits {what} until it answers; local limits still apply");
        }
    }

    fn idle(&self) -> bool {
        let last = Duration::from_millis(self.last_ok.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last) >= IDLE
    }

    /// `ballast_redis_up`, `ballast_redis_errors_total` (control path).
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "ballast_redis_up",
            "gauge",
            "Whether the last exchange with [cluster] redis succeeded (1) or not (0).",
        );
        sample(
            out,
            "ballast_redis_up",
            &[],
            u8::from(self.up.load(Ordering::Relaxed)),
        );
        family(
            out,
            "ballast_redis_errors_total",
            "counter",
            "Exchanges with [cluster] redis that failed or timed out.",
        );
        sample(
            out,
            "ballast_redis_errors_total",
            &[],
            self.errors.load(Ordering::Relaxed),
        );
    }
}

/// Ping Redis while the link fails or is idle; end with the link.
async fn keep(link: Weak<RedisLink>) {
    let mut tick = tokio::time::interval(PROBE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(link) = link.upgrade() else {
            return;
        };
        if !link.failing() && !link.idle() {
            continue;
        }
        let pinged = async {
            let mut c = link.connection().await?;
            redis::cmd("PING").query_async::<()>(&mut c).await
        };
        match tokio::time::timeout(DEADLINE * 3, pinged).await {
            Ok(Ok(())) => link.succeeded(),
            Ok(Err(e)) => link.failed(&e),
            Err(_) => link.failed(&std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
    }
}
