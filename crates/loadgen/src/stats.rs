//! Recording results without a shared lock per request.
//!
//! Each lane keeps a small buffer of [`Sample`]s and hands it over to a [`Tally`] shard
//! in one lock acquisition when the buffer is full or every [`FLUSH_EVERY`], whichever
//! comes first (the time bound keeps the progress line live at low rates). There is one
//! shard per runtime worker thread; a lane picks its shard by connection number, so a
//! lock is contended at most by the few lanes that happen to flush at the same instant.
//! The shards are merged once at the end. The buffer is allocated once per lane and
//! drained in place, so recording does not allocate.
//!
//! A tally holds the whole-run latency histogram (HDR, 1 µs to 1 h, 3 significant
//! digits, so every percentile is within 0.1 %) and a per-second timeline for the plot
//! and the progress line (2 significant digits: enough for a curve, and small).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::outcome::{ErrorKind, Outcome};

/// Largest latency the histogram resolves: one hour, in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Samples a lane buffers before handing them to its shard.
pub const BATCH: usize = 64;
/// Longest a sample waits in a lane's buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One measured request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it completed, from the start of measurement.
    pub done: Duration,
    pub latency_us: u64,
    pub outcome: Outcome,
    pub late: bool,
}

/// One second of the timeline.
#[derive(Debug, Clone)]
pub struct Second {
    pub responses: u64,
    pub errors: u64,
    pub bytes: u64,
    pub latency: Histogram<u64>,
}

/// Counts and histograms of a set of samples.
#[derive(Debug, Clone)]
pub struct Tally {
    pub latency: Histogram<u64>,
    /// The same for 2xx responses only: what a server that sheds load serves
    /// to the requests it admits (its fast 503s would pull the whole-run
    /// percentiles down).
    pub latency_2xx: Histogram<u64>,
    /// Responses by status code (index = code, 100..=999).
    pub status: Vec<u64>,
    pub errors: [u64; ErrorKind::ALL.len()],
    pub responses: u64,
    pub bytes: u64,
    pub late: u64,
    pub seconds: Vec<Second>,
    /// An empty histogram shaped like the per-second ones.
    second_shape: Histogram<u64>,
}

impl Tally {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            latency_2xx: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            status: vec![0; 1000],
            errors: [0; ErrorKind::ALL.len()],
            responses: 0,
            bytes: 0,
            late: 0,
            seconds: Vec::new(),
            // Bounded like the main histogram: an auto-resizing one starts at 1..2 µs
            // and `saturating_record` clamps into that instead of growing.
            second_shape: Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)?,
        })
    }

    /// An empty tally shaped like this one.
    pub fn empty_like(&self) -> Self {
        Self {
            latency: Histogram::new_from(&self.latency),
            latency_2xx: Histogram::new_from(&self.latency_2xx),
            status: vec![0; 1000],
            errors: [0; ErrorKind::ALL.len()],
            responses: 0,
            bytes: 0,
            late: 0,
            seconds: Vec::new(),
            second_shape: Histogram::new_from(&self.second_shape),
        }
    }

    fn second(&mut self, done: Duration) -> &mut Second {
        let i = done.as_secs() as usize;
        if self.seconds.len() <= i {
            let shape = &self.second_shape;
            self.seconds.resize_with(i + 1, || Second {
                responses: 0,
                errors: 0,
                bytes: 0,
                latency: Histogram::new_from(shape),
            });
        }
        &mut self.seconds[i]
    }

    pub fn add(&mut self, s: &Sample) {
        self.late += u64::from(s.late);
        let latency = s.latency_us.clamp(1, MAX_LATENCY_US);
        match s.outcome {
            Outcome::Response { status, bytes } => {
                self.responses += 1;
                self.bytes += bytes;
                if let Some(n) = self.status.get_mut(usize::from(status)) {
                    *n += 1;
                }
                self.latency.saturating_record(latency);
                if (200..300).contains(&status) {
                    self.latency_2xx.saturating_record(latency);
                }
                let second = self.second(s.done);
                second.responses += 1;
                second.bytes += bytes;
                second.latency.saturating_record(latency);
            }
            Outcome::Error(kind) => {
                self.errors[kind.index()] += 1;
                self.second(s.done).errors += 1;
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.latency_2xx.add(&other.latency_2xx)?;
        for (a, b) in self.status.iter_mut().zip(&other.status) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(&other.errors) {
            *a += b;
        }
        self.responses += other.responses;
        self.bytes += other.bytes;
        self.late += other.late;
        for (i, theirs) in other.seconds.iter().enumerate() {
            let ours = self.second(Duration::from_secs(i as u64));
            ours.responses += theirs.responses;
            ours.errors += theirs.errors;
            ours.bytes += theirs.bytes;
            ours.latency.add(&theirs.latency)?;
        }
        Ok(())
    }

    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// A shard: the tally the lanes of one worker flush into.
pub type Shard = Arc<Mutex<Tally>>;

/// Locks a shard; a panicked lane cannot leave a tally half-updated in a way that
/// matters, so a poisoned lock is used as is.
pub fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, Tally> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lane's buffer of samples; flushes into its shard when full, every
/// [`FLUSH_EVERY`], and when dropped (also when the lane's task is aborted).
pub struct Recorder {
    buf: Vec<Sample>,
    shard: Shard,
    last_flush: Instant,
}

impl Recorder {
    pub fn new(shard: Shard) -> Self {
        Self {
            buf: Vec::with_capacity(BATCH),
            shard,
            last_flush: Instant::now(),
        }
    }

    pub fn record(&mut self, sample: Sample, now: Instant) {
        self.buf.push(sample);
        if self.buf.len() >= BATCH || now.duration_since(self.last_flush) >= FLUSH_EVERY {
            self.flush(now);
        }
    }

    pub fn flush(&mut self, now: Instant) {
        self.last_flush = now;
        if self.buf.is_empty() {
            return;
        }
        let mut tally = lock(&self.shard);
        for s in self.buf.drain(..) {
            tally.add(&s);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(done_ms: u64, latency_us: u64) -> Sample {
        Sample {
            done: Duration::from_millis(done_ms),
            latency_us,
            outcome: Outcome::Response {
                status: 200,
                bytes: 10,
            },
            late: false,
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() -> anyhow::Result<()> {
        let mut t = Tally::new()?;
        for us in 1..=10_000 {
            t.add(&ok(0, us));
        }
        let q = |q: f64| t.latency.value_at_quantile(q) as f64;
        assert!((q(0.5) - 5_000.0).abs() <= 5.0, "p50 {}", q(0.5));
        assert!((q(0.99) - 9_900.0).abs() <= 10.0, "p99 {}", q(0.99));
        assert!((q(0.999) - 9_990.0).abs() <= 10.0);
        assert!((t.latency.max() as f64 - 10_000.0).abs() <= 10.0);
        Ok(())
    }

    #[test]
    fn huge_latencies_saturate_instead_of_failing() -> anyhow::Result<()> {
        let mut t = Tally::new()?;
        t.add(&ok(0, u64::MAX));
        t.add(&ok(0, 0));
        assert_eq!(t.latency.len(), 2);
        assert!(t.latency.max() >= MAX_LATENCY_US);
        Ok(())
    }

    #[test]
    fn per_second_latencies_keep_their_magnitude() -> anyhow::Result<()> {
        let mut t = Tally::new()?;
        for latency_us in [850, 900, 9_700, 250_000] {
            t.add(&ok(10, latency_us));
        }
        let s = &t.seconds[0].latency;
        // Two significant digits: within 1 % of what was recorded.
        assert!(
            (s.value_at_quantile(0.25) as f64 - 850.0).abs() < 10.0,
            "{}",
            s.value_at_quantile(0.25)
        );
        assert!((s.max() as f64 - 250_000.0).abs() < 2_600.0, "{}", s.max());
        Ok(())
    }

    #[test]
    fn merge_adds_everything_and_aligns_seconds() -> anyhow::Result<()> {
        let mut a = Tally::new()?;
        let mut b = a.empty_like();
        a.add(&ok(100, 1_000));
        b.add(&ok(2_500, 3_000));
        b.add(&Sample {
            outcome: Outcome::Error(ErrorKind::Timeout),
            late: true,
            ..ok(2_600, 10)
        });
        a.merge(&b)?;
        assert_eq!(a.responses, 2);
        assert_eq!(a.bytes, 20);
        assert_eq!(a.status[200], 2);
        assert_eq!(a.errors[ErrorKind::Timeout.index()], 1);
        assert_eq!(a.late, 1);
        assert_eq!(a.seconds.len(), 3);
        assert_eq!(a.seconds[0].responses, 1);
        assert_eq!(a.seconds[1].responses, 0);
        assert_eq!(a.seconds[2].responses, 1);
        assert_eq!(a.seconds[2].errors, 1);
        Ok(())
    }

    #[test]
    fn recorder_flushes_on_batch_and_on_drop() -> anyhow::Result<()> {
        let shard: Shard = Arc::new(Mutex::new(Tally::new()?));
        let mut r = Recorder::new(shard.clone());
        let now = r.last_flush;
        for _ in 0..BATCH - 1 {
            r.record(ok(0, 5), now);
        }
        assert_eq!(lock(&shard).responses, 0, "buffered, not flushed yet");
        r.record(ok(0, 5), now);
        assert_eq!(lock(&shard).responses, BATCH as u64);
        r.record(ok(0, 5), now);
        drop(r);
        assert_eq!(lock(&shard).responses, BATCH as u64 + 1);
        Ok(())
    }
}
