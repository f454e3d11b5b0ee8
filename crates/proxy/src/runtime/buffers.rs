//! Read buffers for target connections, lent out per worker thread.
//!
//! Data path. A connection to a target needs its read buffer only while a response
//! is coming in. Owning one for life, as each pooled connection did, meant 16 KiB
//! per idle connection and, under load, as many distinct buffers as connections in
//! use, spread over the cache. HAProxy's answer is a pool of buffers that requests
//! borrow, and that is what this is: a connection takes a buffer when it reads and
//! gives it back when the response has ended with nothing left over. The free list
//! is a stack per thread, so the buffer taken next is the one given back last,
//! still in the cache. No lock: each worker thread has its own list.

use std::cell::RefCell;

use bytes::BytesMut;

/// Room made before each read (and the size of a lent buffer). Large enough that
/// a 16 KiB response arrives in one read with its head; only buffers in use cost
/// memory, so the size is not paid per connection.
pub const SIZE: usize = 32 * 1024;
/// Free buffers kept per thread; more are freed.
const KEEP: usize = 64;
/// A buffer that grew past this (a very large head) is freed, not kept.
const LARGEST_KEPT: usize = 4 * SIZE;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Make room to read into `buf`: a lent buffer if it has none.
pub fn reserve(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = FREE
            .with(|free| free.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(SIZE));
    } else {
        buf.reserve(SIZE);
    }
}

/// Give `buf`'s buffer back if nothing is left in it; it keeps it otherwise.
/// A buffer still shared with data handed out (a large body passed on without
/// a copy) is let go instead: its memory is freed when that data is.
pub fn give_back(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let mut taken = std::mem::take(buf);
    if taken.try_reclaim(SIZE) && taken.capacity() <= LARGEST_KEPT {
        // A thread that is exiting has no list; the buffer is simply freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEEP {
                free.push(taken);
            }
        });
    }
}

/// A buffer that goes back to the worker's list however its user ends: a
/// connection closed after its response (every connection, with `Connection:
/// close`) would otherwise free a 32 KiB buffer and allocate the next one.
/// Whatever is left in it is dropped.
#[derive(Default)]
pub struct Lent(pub BytesMut);

impl std::ops::Deref for Lent {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.0
    }
}

impl std::ops::DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.0
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.clear();
        give_back(&mut self.0);
    }
}

/// Free buffers on this thread (for tests).
#[cfg(test)]
pub fn free_count() -> usize {
    FREE.with(|free| free.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_the_next_one_lent() {
        let mut a = BytesMut::new();
        reserve(&mut a);
        assert!(a.capacity() >= SIZE);
        let at = a.as_ptr();
        let before = free_count();
        give_back(&mut a);
        assert_eq!(a.capacity(), 0, "the connection holds no buffer while idle");
        assert_eq!(free_count(), before + 1);
        let mut b = BytesMut::new();
        reserve(&mut b);
        assert_eq!(b.as_ptr(), at, "the warm buffer is reused");
    }

    #[test]
    fn a_buffer_frozen_and_thawed_can_be_given_back() {
        // The first read of a connection is frozen (`listener::sniff`) and thawed
        // again by the HTTP/1.1 server, which gives it back once read.
        let mut a = BytesMut::new();
        reserve(&mut a);
        a.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let frozen = a.split().freeze();
        drop(a);
        let mut thawed = frozen.try_into_mut().expect("unique");
        assert!(thawed.capacity() >= SIZE, "{}", thawed.capacity());
        thawed.clear();
        let before = free_count();
        give_back(&mut thawed);
        assert_eq!(free_count(), before + 1);
    }

    #[test]
    fn a_lent_buffer_goes_back_when_dropped_even_with_data_left() {
        let mut lent = Lent::default();
        reserve(&mut lent);
        lent.extend_from_slice(b"pipelined, never read: the connection closed");
        let at = lent.as_ptr();
        let before = free_count();
        drop(lent);
        assert_eq!(free_count(), before + 1);
        let mut next = BytesMut::new();
        reserve(&mut next);
        assert_eq!(next.as_ptr(), at);
        assert!(next.is_empty());
    }

    #[test]
    fn a_buffer_with_data_or_shared_is_not_kept() {
        let mut a = BytesMut::new();
        reserve(&mut a);
        a.extend_from_slice(b"left over");
        give_back(&mut a);
        assert_eq!(
            &a[..],
            b"left over",
            "unread bytes stay with the connection"
        );

        let before = free_count();
        let shared = a.split().freeze(); // handed out without a copy
        give_back(&mut a);
        assert_eq!(free_count(), before, "a shared buffer is not lent again");
        assert_eq!(&shared[..], b"left over");
    }
}
