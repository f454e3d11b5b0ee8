//! Runs a plan: builds the runtime, checks the server answers, spawns one task per
//! connection, stops at the deadline, the request count or Ctrl-C, and merges the
//! per-worker tallies.
//!
//! The runtime is multi-threaded with `--threads` workers and one [`Tally`] shard per
//! worker. The controlling loop runs on the calling thread (`block_on`), so the
//! progress line and the deadline never take a worker from the load. At the deadline
//! the connection tasks are aborted rather than asked to stop: requests still in flight
//! are not waited for (wrk and oha do the same), and each lane's buffered samples are
//! flushed as its task is dropped.

use std::pin::pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::task::JoinSet;
use tokio::time::{interval, sleep_until, timeout, Instant, MissedTickBehavior};

use crate::endpoint::Endpoint;
use crate::plan::{Plan, Stop};
use crate::progress::{Progress, TICK};
use crate::schedule::{Lane, Window};
use crate::stats::{lock, Shard, Tally};
use crate::worker::{connection, Job};

/// What a finished run hands to the reports.
pub struct Finished {
    pub tally: Tally,
    /// The measured time (warm-up excluded).
    pub elapsed: Duration,
    pub interrupted: bool,
}

/// Runs `plan` on a fresh runtime; `progress` asks for the live line; `on_start` is
/// called once the server has answered the first connection, before the load starts.
pub fn execute(plan: &Plan, progress: bool, on_start: impl FnOnce()) -> anyhow::Result<Finished> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads)
        .thread_name("ballast-bench")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(drive(plan, Progress::new(progress), on_start))
}

async fn drive(
    plan: &Plan,
    mut progress: Progress,
    on_start: impl FnOnce(),
) -> anyhow::Result<Finished> {
    let endpoint = Endpoint::resolve(
        &plan.url,
        plan.tls.clone(),
        plan.http2,
        plan.connect_to.as_deref(),
    )
    .await?;
    let target = format!("{} ({})", plan.url, endpoint.addr);
    match timeout(plan.timeout, endpoint.connect()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(anyhow!("cannot connect to {target}: {e:#}")),
        Err(_) => return Err(anyhow!("cannot connect to {target}: timed out")),
    }

    on_start();
    let origin = Instant::now();
    let measure_from = origin + plan.warmup;
    let end = match plan.stop {
        Stop::After(d) => Some(measure_from + d),
        Stop::Count(_) => None,
    };
    let window = Window {
        origin,
        measure_from,
        end,
    };
    let first = Tally::new()?;
    let shards: Vec<Shard> = (0..plan.threads.max(1))
        .map(|_| Arc::new(Mutex::new(first.empty_like())))
        .collect();
    let budget = match (plan.stop, plan.rate) {
        (Stop::Count(n), None) => Some(Arc::new(AtomicU64::new(n))),
        _ => None,
    };
    let requests = match plan.stop {
        Stop::Count(n) => Some(n),
        Stop::After(_) => None,
    };
    let job = Arc::new(Job {
        endpoint,
        template: plan.template.clone(),
        raw: plan.raw.clone(),
        head: plan.template.method() == http::Method::HEAD,
        timeout: plan.timeout,
        window,
    });

    // Lane k = s·C + c: consecutive arrivals of the open-loop timetable go to
    // different connections.
    let total_lanes = u64::from(plan.connections) * u64::from(plan.streams);
    let mut tasks = JoinSet::new();
    for c in 0..plan.connections {
        let lanes = (0..plan.streams)
            .map(|s| {
                let k = u64::from(s) * u64::from(plan.connections) + u64::from(c);
                match plan.rate {
                    Some(rate) => Lane::open(window, rate, k, total_lanes, requests),
                    None => Lane::closed(window, budget.clone()),
                }
            })
            .collect();
        let shard = shards[c as usize % shards.len()].clone();
        tasks.spawn(connection(job.clone(), lanes, shard));
    }

    let mut ticks = interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    let mut ctrl_c_works = true;
    let deadline = sleep_until(end.unwrap_or(origin));
    let mut deadline = pin!(deadline);
    let interrupted = loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break false },
            _ = &mut deadline, if end.is_some() => break false,
            signal = &mut ctrl_c, if ctrl_c_works => match signal {
                Ok(()) => break true,
                Err(_) => ctrl_c_works = false,
            },
            _ = ticks.tick() => {
                let now = Instant::now();
                let elapsed = (now >= measure_from).then(|| now - measure_from);
                progress.update(elapsed, &shards);
            }
        }
    };
    let stopped = Instant::now();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    progress.finish();

    let stopped = end.map_or(stopped, |end| stopped.min(end));
    let elapsed = stopped.saturating_duration_since(measure_from);
    let mut tally = first;
    for shard in &shards {
        tally.merge(&lock(shard))?;
    }
    Ok(Finished {
        tally,
        elapsed,
        interrupted,
    })
}
