//! `ballast bench`: an HTTP load generator in the family of wrk, wrk2 and oha, usable
//! against any HTTP/1.1 or HTTP/2 server, with or without TLS.
//!
//! Closed loop by default (each connection sends its next request when the previous
//! answer arrived); `--rate` switches to an open loop at a constant arrival rate with
//! every latency measured from the request's intended start, so a server stall shows
//! up in the percentiles instead of being hidden by the generator slowing down
//! (coordinated omission). Latencies go into per-worker HDR histograms merged at the
//! end; the report is text, JSON or an SVG plot.
//!
//! The pieces, in the order a run uses them: [`args`] (the CLI) → [`plan`] (validated,
//! files read, [`request`] template and [`tls`] config built) → [`engine`] (runtime,
//! [`endpoint`] check, one [`worker`] task per connection paced by [`schedule`], HTTP/1.1
//! spoken by [`raw`], recording into [`stats`], with [`progress`]) → [`summary`] →
//! [`report`] and [`plot`].
#![forbid(unsafe_code)]

pub mod args;
pub mod endpoint;
pub mod engine;
pub mod log_axis;
pub mod outcome;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod raw;
pub mod report;
pub mod request;
pub mod schedule;
pub mod stats;
pub mod summary;
pub mod tls;
pub mod worker;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

pub use args::BenchArgs;
pub use summary::Summary;

/// Runs `ballast bench` and prints the report (text, or JSON with `--json`) on stdout.
///
/// Bad input or an unreachable server prints one line, `error: <reason>`, on stderr and
/// returns exit code 1; a completed run returns 0 whatever the server answered.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match bench(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let reason = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = plan::Plan::new(args)?;
    let finished = engine::execute(&plan, true, || {
        if !plan.json {
            let header = format!("ballast bench {}\n  {}\n", plan.url, plan.describe());
            let _ = std::io::stdout().write_all(header.as_bytes());
        }
    })?;
    let summary = Summary::new(
        &plan,
        &finished.tally,
        finished.elapsed,
        finished.interrupted,
    );
    let out = if plan.json {
        report::json(&summary)? + "\n"
    } else {
        // The first two lines were printed before the run.
        let text = report::text(&summary);
        text.lines().skip(2).map(|l| format!("{l}\n")).collect()
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the report")?;
    if let Some(path) = &plan.plot {
        plot::write(&summary, path)?;
    }
    Ok(())
}

/// Runs a benchmark without printing anything and returns what it measured; for
/// tests and programs embedding the load generator.
pub fn measure(args: &BenchArgs) -> anyhow::Result<Summary> {
    let plan = plan::Plan::new(args)?;
    let finished = engine::execute(&plan, false, || {})?;
    Ok(Summary::new(
        &plan,
        &finished.tally,
        finished.elapsed,
        finished.interrupted,
    ))
}
