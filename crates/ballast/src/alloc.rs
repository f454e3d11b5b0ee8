//! The memory allocator: mimalloc, with freed memory given back soon, and at
//! once when a worker goes quiet.
//!
//! Control path: set once, at start, and run on each worker's tick. Chosen by
//! measurement against glibc's malloc (`perf stat -e instructions:u` on one
//! worker, and `bench/run.py --scenarios idle`; the figures are in
//! BENCHMARKS.md):
//! - tokio's task cells and I/O registrations are aligned to 128 bytes, which
//!   glibc serves through `memalign` at about 650 instructions each, twice per
//!   connection; the boxed request path of a connection (3.5 KB) is beyond
//!   glibc's thread cache and consolidates its fast bins each time. mimalloc
//!   takes both from its size classes: 35.0K -> 30.8K user-space instructions per
//!   new-connection request, and fewer per keep-alive request too.
//! - mimalloc keeps freed pages for a second and purges them only when the same
//!   thread allocates again. A worker whose connections all went quiet does not,
//!   so after a burst of 9,000 connections parked the process kept 5.2 KB per
//!   connection. Purging at once fixed that but cost the busy case: a page
//!   emptied by connections closing went back to the kernel and was faulted in
//!   again by the next ones (0.8 page faults per new-connection request, 98% of
//!   them for the connection's boxed future; HAProxy makes none). So freed
//!   memory is kept `PURGE_AFTER_MS`, each worker's tick (`collect`) purges what
//!   has been free longer, and once a second it purges everything free, which
//!   is what returns an idle process's memory: 9,000 parked connections leave
//!   about 20 bytes each.

use std::cell::Cell;

/// mimalloc's `mi_option_arena_eager_commit` (v3's `mimalloc.h`; default 2).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// mimalloc's `mi_option_purge_delay` in milliseconds (v3's `mimalloc.h`; default 1,000).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays committed before a collection may purge it.
/// Under load it is taken again long before this.
const PURGE_AFTER_MS: std::os::raw::c_long = 10;
/// Every this many calls of `collect` (worker ticks of 100 ms), a forced
/// collection purges all free memory, expired or not.
const FORCE_EVERY: u32 = 10;

/// Set mimalloc's options. Call first thing in `main`, before any other thread
/// starts.
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it
    // is called here on the main thread before any other thread exists, so no
    // allocation races with it, and both options take any value.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_AFTER_MS);
    }
}

thread_local! {
    static COLLECTIONS: Cell<u32> = const { Cell::new(0) };
}

/// Free this thread's unused pages and purge what has been free longer than
/// `PURGE_AFTER_MS`; every `FORCE_EVERY`th call, purge all free memory. Each
/// worker calls it on its tick: mimalloc only collects while a thread
/// allocates, and a worker whose connections went quiet does not.
#[allow(unsafe_code)]
pub fn collect() {
    let n = COLLECTIONS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n
    });
    // SAFETY: `mi_collect` has no precondition; it collects the calling
    // thread's heap and the arenas, which mimalloc synchronises itself.
    unsafe { libmimalloc_sys::mi_collect(n.is_multiple_of(FORCE_EVERY)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option numbers are mimalloc v3's: each reads its documented default
    /// (unless set through the environment, which this test run does not do).
    #[test]
    #[allow(unsafe_code)]
    fn the_option_numbers_name_the_options_meant() {
        // SAFETY: reading an option has no precondition.
        let (eager, delay) = unsafe {
            (
                libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(PURGE_DELAY),
            )
        };
        assert_eq!((eager, delay), (2, 1000));
    }

    fn rss_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// What a thread freed goes back to the system by the `FORCE_EVERY`th
    /// collection, even with the purge delay (here mimalloc's default second)
    /// not yet up: that is how an idle worker gives its peak back.
    #[test]
    fn a_forced_collection_returns_freed_memory() {
        // 70 MB in blocks the size of a connection's boxed future, touched.
        let blocks: Vec<Box<[u8]>> = (0..20_000)
            .map(|i| vec![i as u8; 3584].into_boxed_slice())
            .collect();
        let full = rss_kib();
        drop(blocks);
        for _ in 0..FORCE_EVERY {
            collect();
        }
        let after = rss_kib();
        assert!(
            full.saturating_sub(after) > 32 * 1024,
            "resident {full} KiB before, {after} KiB after"
        );
    }
}
