//! The access log's writer: a thread of its own that moves finished lines from
//! the workers' buffers to the file (or stdout), many lines per `write`.
//!
//! Why a thread, and why it polls. The log used to hand every record to a
//! writer task on the control runtime over a channel: each record woke that task
//! from another thread (an `eventfd` write and a context switch on a shared
//! core), and each wake ended in a flush, so a busy worker paid one wake-up and
//! the process one `write(2)` per request — 46% of per-core throughput on small
//! responses. Now each worker formats its lines into a [`Slot`] of its own (a
//! mutex only the worker and this thread ever take: once per record, once per
//! sweep), and this thread takes what the slots hold every [`BUSY`] while there
//! are lines (every [`IDLE`] after a sweep that found none), swapping in an
//! emptied buffer of the same size, so a worker never reallocates in steady
//! state and nobody wakes anybody. Handing a buffer over at 32 KiB instead
//! woke this thread 1,300 times a second at 80,000 lines a second, and those
//! wake-ups (futex, context switches) cost as much as the writes.
//!
//! Bounded memory and bounded loss: a slot that reaches [`HANDOVER`] bytes
//! between sweeps (the writer is stuck on a slow disk) is handed over through a
//! channel of [`QUEUE`] buffers; when that is full too, the batch is dropped and
//! its lines counted in `ballast_access_log_dropped_total`. A worker never waits
//! for the disk. Blocking writes (`std::fs::File`) are fine here: this thread
//! does nothing else.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The buffers' size: what a busy worker formats between two sweeps.
pub const CAPACITY: usize = 256 * 1024;

/// A slot this full between two sweeps is handed to the writer at once.
pub const HANDOVER: usize = 1024 * 1024;

/// Buffers handed over and waiting for the writer; beyond this, batches are
/// dropped (and counted): with the slots, at most 8 MiB of lines wait.
pub const QUEUE: usize = 8;

/// How often the writer sweeps while there are lines: a line reaches the file
/// within this of its request's end, and each sweep writes ~500 lines at
/// 50,000 requests a second.
pub const BUSY: Duration = Duration::from_millis(10);

/// How often it looks when the last sweep found nothing (an idle balancer).
pub const IDLE: Duration = Duration::from_millis(100);

/// Lines formatted by one worker and not yet handed over. Aligned to its own
/// cache lines so that workers' slots never share one.
#[repr(align(128))]
#[derive(Default)]
pub struct Slot {
    pub lines: Mutex<Lines>,
}

/// A buffer of whole lines and how many there are (to count them if dropped).
#[derive(Default)]
pub struct Lines {
    pub bytes: Vec<u8>,
    pub count: u64,
}

impl Lines {
    /// The buffer's content, leaving it empty with room for the next batch.
    pub fn take(&mut self) -> Lines {
        Lines {
            bytes: std::mem::replace(&mut self.bytes, Vec::with_capacity(CAPACITY)),
            count: std::mem::take(&mut self.count),
        }
    }
}

/// What the writer is asked besides writing batches.
pub struct Requests {
    /// Reopen the file at its path (log rotation).
    pub reopen: AtomicBool,
    /// Senders of `flush`, waiting for everything formatted before they asked
    /// to be written.
    pub flushed: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

/// Where lines go.
pub enum Out {
    Stdout,
    File { file: std::fs::File, path: PathBuf },
}

impl Out {
    fn write(&mut self, bytes: &[u8]) {
        let result = match self {
            Out::Stdout => std::io::stdout().lock().write_all(bytes),
            Out::File { file, .. } => file.write_all(bytes),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "access log: write failed");
        }
    }

    /// Open the path anew (logrotate has moved the old file away); on failure
    /// the old file stays in use.
    fn reopen(&mut self) {
        let Out::File { file, path } = self else {
            return;
        };
        match super::open(path) {
            Ok(new) => {
                *file = new;
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(e) => tracing::error!(
                path = %path.display(), error = %e,
                "access log: cannot reopen; still writing to the old file"
            ),
        }
    }
}

/// The writer thread's loop: runs until the log's sender is gone (its last
/// snapshot dropped), then writes what is left and ends.
pub fn run(mut out: Out, batches: Receiver<Lines>, slots: Arc<[Slot]>, requests: Arc<Requests>) {
    let mut spare = Vec::new();
    let mut next_sweep = Instant::now() + IDLE;
    loop {
        let wait = next_sweep.saturating_duration_since(Instant::now());
        let done = match batches.recv_timeout(wait) {
            Ok(lines) => {
                out.write(&lines.bytes);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        // Asked before the sweep: a flush covers every line formatted before it.
        let waiting: Vec<_> = match requests.flushed.lock() {
            Ok(mut w) => w.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let reopen = requests.reopen.swap(false, Ordering::AcqRel);
        if done || reopen || !waiting.is_empty() || Instant::now() >= next_sweep {
            // Batches already handed over come before what the slots hold now.
            while let Ok(lines) = batches.try_recv() {
                out.write(&lines.bytes);
            }
            let wrote = sweep(&slots, &mut out, &mut spare);
            next_sweep = Instant::now() + if wrote { BUSY } else { IDLE };
        }
        // Lines so far went to the old file; later ones go to the new one.
        if reopen {
            out.reopen();
        }
        for w in waiting {
            let _ = w.send(());
        }
        if done {
            return;
        }
    }
}

/// Write what every worker's buffer holds, giving each an empty buffer of the
/// same size in exchange (`spare`, kept between sweeps). Whether anything was
/// written.
fn sweep(slots: &[Slot], out: &mut Out, spare: &mut Vec<u8>) -> bool {
    let mut wrote = false;
    for slot in slots {
        if spare.capacity() == 0 {
            *spare = Vec::with_capacity(CAPACITY);
        }
        match slot.lines.lock() {
            Ok(mut l) if l.count > 0 => {
                std::mem::swap(&mut l.bytes, spare);
                l.count = 0;
            }
            _ => continue,
        }
        out.write(spare);
        spare.clear();
        wrote = true;
    }
    wrote
}
