//! The memory allocator: mimalloc, set to give freed memory back at once.
//!
//! Control path: set once, at start. Chosen by measurement against glibc's
//! malloc (`perf stat -e instructions:u` on one worker, and
//! `bench/run.py --scenarios idle`; the figures are in BENCHMARKS.md):
//! - tokio's task cells and I/O registrations are aligned to 128 bytes, which
//!   glibc serves through `memalign` at about 650 instructions each, twice per
//!   connection; the boxed request path of a connection (3.5 KB) is beyond
//!   glibc's thread cache and consolidates its fast bins each time. mimalloc
//!   takes both from its size classes: 35.0K -> 30.8K user-space instructions per
//!   new-connection request, and fewer per keep-alive request too.
//! - mimalloc keeps freed pages for a second and purges them only when the same
//!   thread allocates again. A worker whose connections all went quiet does not,
//!   so after a burst of 9,000 connections parked the process kept 5.2 KB per
//!   connection. Purging at once, and committing arena memory as it is used
//!   rather than up front, brings that to about 570 bytes, for 0.04 `madvise`
//!   calls per new-connection request.

/// mimalloc's `mi_option_arena_eager_commit` (v3's `mimalloc.h`; default 2).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// mimalloc's `mi_option_purge_delay` in milliseconds (v3's `mimalloc.h`; default 1,000).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Set mimalloc's options. Call first thing in `main`, before any other thread
/// starts.
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it
    // is called here on the main thread before any other thread exists, so no
    // allocation races with it, and both options take any value.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
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
}
