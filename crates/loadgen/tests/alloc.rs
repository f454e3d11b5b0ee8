//! How many heap allocations the load generator makes per request, counted by a
//! global allocator wrapper. The server's thread is not counted, and fixed costs
//! (runtime, connections, histograms) cancel out by subtracting a short run from a
//! long one. HTTP/1.1 goes through the raw path (prebuilt request bytes, a reused
//! read buffer) and should allocate nothing per request; HTTP/2 goes through hyper,
//! and most of what it allocates is inside hyper (the response head, the dispatch
//! channel), so its ceiling is generous.

// A counting allocator needs `unsafe impl GlobalAlloc`; it is test-only and forwards
// to the system allocator unchanged.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use ballast_loadgen::measure;
use common::{args, start, Options};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !UNCOUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !UNCOUNTED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn uncounted() {
    UNCOUNTED.with(|c| c.set(true));
}

fn allocations_for(url: &str, requests: u64, extra: &[&str]) -> u64 {
    let n = requests.to_string();
    let mut argv = vec!["-c", "4", "-n", &n, "--threads", "1"];
    argv.extend_from_slice(extra);
    argv.push(url);
    let parsed = args(&argv);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let s = measure(&parsed).expect("run");
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(s.requests, requests);
    after - before
}

fn per_request(extra: &[&str]) -> f64 {
    let server = start(Options {
        on_thread_start: Some(uncounted),
        ..Options::default()
    });
    let url = server.url("/");
    let short = allocations_for(&url, 1_000, extra);
    let long = allocations_for(&url, 11_000, extra);
    long.saturating_sub(short) as f64 / 10_000.0
}

#[test]
fn allocations_per_request_stay_few() {
    let http1 = per_request(&[]);
    let http2 = per_request(&["--http2", "--streams", "4"]);
    eprintln!("allocations per request: HTTP/1.1 {http1:.2}, HTTP/2 {http2:.2}");
    assert!(http1 <= 1.0, "HTTP/1.1: {http1:.2} allocations per request");
    assert!(http2 <= 12.0, "HTTP/2: {http2:.2} allocations per request");
}
