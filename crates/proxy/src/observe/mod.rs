//! Observability: the metric cells the data path counts into, their Prometheus
//! exposition, and the access log.
//!
//! Data path for recording, control path for reading. Recording is an atomic add
//! on a cell already in hand (`metrics.rs`) or a `try_send` of a finished record to
//! the access log's writer task (`access_log.rs`), never a lock or a wait.
//! A target group's own cells (`group.rs`: circuit-breaker usage,
//! the retry budget's window, retries; `shedding.rs`: the concurrency limit, in-flight
//! count and latency window of load shedding) are counted the same way.
//! Rule hits (`rule_hits.rs`) count in a row of cells per worker, so that no
//! cell is written by every worker on every request.
//! `exposition.rs` renders the cells on a scrape from the figures it is given (the
//! snapshot walks itself for it), so nothing here depends on what is observed.
//!
//! May use: nothing else of the crate (a leaf).

pub mod access_log;
pub mod exposition;
pub mod group;
pub mod metrics;
pub mod rfc3339;
pub mod rule_hits;
pub mod shedding;
