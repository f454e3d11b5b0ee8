//! The data path's threads: one current-thread runtime per core.
//!
//! Data path layout. tokio's multi-thread scheduler keeps 256 ready tasks in a
//! worker's local queue and the rest in a global queue that it looks at only every
//! 61 polls; with a thousand client connections ready at once, those left in the
//! global queue waited up to 200 ms (p99) while the others were served again and
//! again. HAProxy and NGINX run one event loop per core instead, each serving
//! the connections it accepted in the order they became ready. ballast does the
//! same: `start` runs one current-thread runtime on a thread of its own per core,
//! every listener accepts on each of them (on clones of one socket: whichever
//! worker is free takes the next connection), and a connection lives on the
//! worker that accepted it. Each worker also keeps its own idle connections to
//! targets (`pool.rs`), so a socket is always polled by the runtime whose I/O
//! driver it is registered with. The control path (admin API, health checks,
//! reloads, the access-log writer) stays on the main runtime.
//!
//! Without `start` (the in-process test harness), listeners run on the runtime
//! that starts them, as one worker.
//!
//! Also what every worker lends or reads: read buffers (`buffers.rs`) and a
//! monotonic millisecond clock (`now_ms`). May use: nothing else of the crate.

pub mod buffers;

use std::cell::Cell;
use std::io;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

static WORKERS: OnceLock<Vec<Handle>> = OnceLock::new();

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Start `n` worker threads (once per process). Each calls `housekeeping` on
/// every tick (`TICK`), for work that must run on each worker's own thread
/// (the binary gives its allocator's collection).
pub fn start(n: usize, housekeeping: fn()) -> io::Result<()> {
    let n = n.max(1);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("ballast-worker-{i}"))
            .spawn(move || {
                WORKER.with(|w| w.set(i));
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                // Runs for the life of the process; its tasks end with their
                // listeners' drain.
                rt.block_on(tick(housekeeping));
            })?;
        handles.push(rx.recv().map_err(io::Error::other)??);
    }
    WORKERS
        .set(handles)
        .map_err(|_| io::Error::other("workers already started"))
}

/// How often a worker's timer ticks (`tick`).
const TICK: Duration = Duration::from_millis(100);

/// Keep a timer due within `TICK` on this worker, always. tokio's timer driver,
/// when it went to sleep with no timer set, wakes itself up (an `eventfd` write,
/// a system call) whenever a timer is set, even by a task running on its own
/// thread, and a request's timeout is often the only timer: with a new
/// connection per request that was one more system call per request (5 to
/// HAProxy's 4, not counting `epoll_ctl`). With this tick set, a timer due later
/// than the tick finds the driver's wake-up earlier and writes nothing. The cost
/// is ten wake-ups a second of an idle worker, each of which also runs
/// `housekeeping`.
async fn tick(housekeeping: fn()) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        housekeeping();
    }
}

/// The workers' runtimes, if started.
pub fn handles() -> Option<&'static [Handle]> {
    WORKERS.get().map(Vec::as_slice)
}

/// How many workers serve connections (1 without `start`).
pub fn count() -> usize {
    WORKERS.get().map_or(1, Vec::len)
}

/// The worker this thread is (0 on any other thread).
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Milliseconds on a process-wide monotonic clock; 0 means "not set".
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}
