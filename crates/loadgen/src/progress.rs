//! The live progress line on a terminal: elapsed time, req/s over the last tick,
//! errors so far and the p99 of the last complete second.
//!
//! Drawn by indicatif on stderr, only when stderr is a terminal, and cleared when the
//! run ends so the report starts on a clean screen. Off a terminal nothing is drawn at
//! all (no carriage returns or escape codes in logs). Reading the shards takes each
//! lock briefly four times a second, which the lanes never notice.

use std::io::IsTerminal;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::{lock, Shard};

/// How often the line is refreshed.
pub const TICK: Duration = Duration::from_millis(250);

pub struct Progress {
    bar: Option<ProgressBar>,
    last_requests: u64,
    last_elapsed: Duration,
}

impl Progress {
    /// A progress line, drawn only if `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        let bar = (wanted && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            last_requests: 0,
            last_elapsed: Duration::ZERO,
        }
    }

    /// Redraws the line; `elapsed` is `None` during warm-up.
    pub fn update(&mut self, elapsed: Option<Duration>, shards: &[Shard]) {
        let Some(bar) = &self.bar else { return };
        let Some(elapsed) = elapsed else {
            bar.set_message("warming up…");
            bar.tick();
            return;
        };
        let (mut requests, mut errors) = (0, 0);
        let second = elapsed.as_secs().saturating_sub(1) as usize;
        let mut recent: Option<Histogram<u64>> = None;
        for shard in shards {
            let tally = lock(shard);
            requests += tally.responses;
            errors += tally.error_count();
            if let Some(s) = tally.seconds.get(second) {
                match &mut recent {
                    None => recent = Some(s.latency.clone()),
                    Some(h) => {
                        let _ = h.add(&s.latency);
                    }
                }
            }
        }
        let dt = elapsed.saturating_sub(self.last_elapsed).as_secs_f64();
        let rps = if dt > 0.0 {
            (requests.saturating_sub(self.last_requests)) as f64 / dt
        } else {
            0.0
        };
        self.last_requests = requests;
        self.last_elapsed = elapsed;
        let p99 = recent
            .filter(|h| !h.is_empty())
            .map_or("-".to_owned(), |h| {
                format!("{:.2} ms", h.value_at_quantile(0.99) as f64 / 1000.0)
            });
        bar.set_message(format!(
            "{:>6.1}s  {rps:>10.0} req/s  {requests:>10} requests  {errors} errors  p99 {p99}",
            elapsed.as_secs_f64()
        ));
        bar.tick();
    }

    /// Clears the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
