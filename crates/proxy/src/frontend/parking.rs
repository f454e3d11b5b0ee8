//! The parking lot: idle keep-alive connections, held without a task.
//!
//! Data path. Most connections of a busy listener are idle keep-alive ones, and
//! what each costs while it waits is what decides how many a node can hold.
//! HAProxy keeps one in about 1.3 KB. A tokio task per idle connection cannot
//! get near that: the task's cell (896 bytes for the connection task, aligned to
//! 128 for the scheduler), the socket's readiness slot in tokio's I/O driver
//! (256 bytes, cache-padded) and the allocator's overhead on both came to
//! ~1.5 KB before the connection's own state (measured with massif).
//!
//! So a connection that has been quiet for `PARK_AFTER` ends its task: its socket
//! leaves tokio's driver and joins a lot, an epoll set of its own that tokio
//! watches as one source. What stays per connection is a slab slot (the socket,
//! what the listener needs to serve it again, the deadline) and a 16-byte heap
//! entry for the idle timeout. When the client sends again, or closes, the lot
//! takes the socket out and hands it back (`run`'s `wake`, which starts a new
//! task); when the idle timeout passes, or the listener drains, the lot closes it.
//! Parking and waking cost four `epoll_ctl` calls and a task, paid at most once
//! per `PARK_AFTER` of quiet, never by a connection that stays busy.
//!
//! One lot per listener and worker: a socket is always given back to the worker
//! whose driver it left, and a listener's drain closes exactly its own lot.
//!
//! The idle deadlines are a binary heap with stale entries left in place when a
//! connection wakes (checked against the slot's generation when they come up),
//! and rebuilt when stale entries outnumber the live ones, so the heap stays
//! within twice the parked connections whatever the pattern of wakes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Notify};

use crate::forward::context::Drain;
use crate::frontend::socket::Socket;
use crate::runtime::now_ms;

/// Events taken from the lot's epoll set per call.
const BATCH: usize = 256;

/// The parked connections of one listener on one worker; `T` is what the
/// listener keeps to serve a connection again.
pub struct Lot<T> {
    slots: Mutex<Slots<T>>,
    /// Adds and removes sockets from the lot's epoll set (the task owns the set).
    registry: mio::Registry,
    /// Wakes the lot's task when a deadline sooner than the one it sleeps to arrives.
    sooner: Notify,
}

struct Slots<T> {
    parked: Slab<Parked<T>>,
    /// Idle deadlines (ms on `connection::now_ms`'s clock), slot, generation.
    deadlines: BinaryHeap<Reverse<(u64, u32, u32)>>,
    generation: u32,
    /// The deadline the task sleeps to (`u64::MAX`: none).
    armed: u64,
    /// False once the listener drains: nothing parks any more.
    open: bool,
}

struct Parked<T> {
    socket: std::net::TcpStream,
    value: T,
    generation: u32,
}

/// The lot's epoll set, for its task (`Lot::run`).
pub struct Set(Poll);

impl<T: Send + 'static> Lot<T> {
    /// A new, empty lot, and the epoll set its task waits on.
    pub fn new() -> io::Result<(Arc<Self>, Set)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let lot = Lot {
            slots: Mutex::new(Slots {
                parked: Slab::new(),
                deadlines: BinaryHeap::new(),
                generation: 0,
                armed: u64::MAX,
                open: true,
            }),
            registry,
            sooner: Notify::new(),
        };
        Ok((Arc::new(lot), Set(poll)))
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        // A panic while holding the lock cannot leave the slots half-changed in a
        // way that matters more than losing every parked connection would.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many connections are parked.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().parked.len()
    }

    /// Park `socket` until the client sends or closes (then `wake` gets it and
    /// `value` back), or until `deadline` (ms on `connection::now_ms`'s clock),
    /// when it is closed. An error (the listener drains, or epoll refused the
    /// socket) closes the connection.
    pub fn park(&self, socket: Socket, value: T, deadline: u64) -> io::Result<()> {
        let socket = socket.into_std()?;
        let mut slots = self.lock();
        if !slots.open {
            return Err(io::Error::other("the listener is draining"));
        }
        let slots = &mut *slots;
        let entry = slots.parked.vacant_entry();
        let key = entry.key();
        let slot = u32::try_from(key).map_err(io::Error::other)?;
        // Registered edge-triggered, and readiness present at registration is
        // reported too: a request that came in just before is not missed.
        self.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(key),
            Interest::READABLE,
        )?;
        let generation = slots.generation;
        slots.generation = generation.wrapping_add(1);
        entry.insert(Parked {
            socket,
            value,
            generation,
        });
        slots.deadlines.push(Reverse((deadline, slot, generation)));
        if slots.deadlines.len() > 2 * slots.parked.len() + 64 {
            let parked = &slots.parked;
            slots.deadlines.retain(|&Reverse((_, slot, generation))| {
                parked
                    .get(slot as usize)
                    .is_some_and(|p| p.generation == generation)
            });
        }
        if deadline < slots.armed {
            slots.armed = deadline;
            self.sooner.notify_one();
        }
        Ok(())
    }

    /// The lot's task: hands each socket whose client sent or closed to `wake`,
    /// closes the ones whose deadline passed, and when the listener drains,
    /// closes them all and ends.
    pub async fn run(
        self: Arc<Self>,
        set: Set,
        mut drain: watch::Receiver<Drain>,
        mut wake: impl FnMut(std::net::TcpStream, T),
    ) {
        // SAFETY (`register_with_interest`: the descriptor must stay open and the
        // same while the `AsyncFd` lives): it is the epoll set's, owned by `Poll`
        // (an `OwnedFd` inside), which never closes or replaces it while it
        // lives; the `AsyncFd` owns the `Poll` and nothing takes it out. tokio's
        // safe constructors, which took any `AsRawFd`, are deprecated as unsound
        // for types that could break this; `Poll` cannot.
        #[allow(unsafe_code)]
        let registered =
            unsafe { AsyncFd::register_with_interest(set.0, tokio::io::Interest::READABLE) };
        let mut set = match registered {
            Ok(set) => set,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the parking lot: idle connections will close");
                self.close();
                return;
            }
        };
        let mut events = Events::with_capacity(BATCH);
        let mut woken = Vec::new();
        let mut expired = Vec::new();
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        loop {
            if *drain.borrow_and_update() != Drain::Running {
                break;
            }
            tokio::select! {
                ready = set.readable_mut() => {
                    let Ok(mut ready) = ready else { break };
                    // Until epoll has no more: the set is edge-triggered in tokio.
                    loop {
                        let polled = ready.try_io(|set| {
                            events.clear();
                            set.get_mut().poll(&mut events, Some(Duration::ZERO))?;
                            if events.is_empty() {
                                return Err(io::ErrorKind::WouldBlock.into());
                            }
                            Ok(events.iter().count() == BATCH)
                        });
                        match polled {
                            Ok(Ok(more)) => {
                                self.take_woken(&events, &mut woken);
                                for (socket, value) in woken.drain(..) {
                                    wake(socket, value);
                                }
                                if !more {
                                    break;
                                }
                            }
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "parking lot failed: idle connections will close");
                                self.close();
                                return;
                            }
                            Err(_would_block) => break,
                        }
                    }
                }
                () = &mut sleep => {
                    self.take_expired(now_ms(), &mut expired);
                    expired.clear(); // closes them
                }
                () = self.sooner.notified() => {}
                changed = drain.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            let next = {
                let mut slots = self.lock();
                let next = slots.deadlines.peek().map_or(u64::MAX, |d| d.0 .0);
                slots.armed = next;
                next
            };
            let wait = match next {
                u64::MAX => Duration::from_secs(3600),
                at => Duration::from_millis(at.saturating_sub(now_ms())),
            };
            sleep.as_mut().reset(tokio::time::Instant::now() + wait);
        }
        self.close();
    }

    /// Take out the sockets that epoll reported. One whose client closed with
    /// nothing to read is closed here, without a task.
    fn take_woken(&self, events: &Events, woken: &mut Vec<(std::net::TcpStream, T)>) {
        let mut slots = self.lock();
        for event in events.iter() {
            let Some(parked) = slots.parked.try_remove(event.token().0) else {
                continue;
            };
            let _ = self
                .registry
                .deregister(&mut SourceFd(&parked.socket.as_raw_fd()));
            if event.is_read_closed() || event.is_error() {
                let mut byte = [0u8; 1];
                match parked.socket.peek(&mut byte) {
                    Ok(0) => continue,
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => continue,
                    _ => {}
                }
            }
            woken.push((parked.socket, parked.value));
        }
    }

    /// Take out the connections whose deadline is `now` or earlier.
    fn take_expired(&self, now: u64, expired: &mut Vec<Parked<T>>) {
        let mut slots = self.lock();
        while let Some(&Reverse((at, slot, generation))) = slots.deadlines.peek() {
            if at > now {
                break;
            }
            slots.deadlines.pop();
            let slot = slot as usize;
            if slots
                .parked
                .get(slot)
                .is_some_and(|p| p.generation == generation)
            {
                expired.push(slots.parked.remove(slot));
            }
        }
    }

    /// Close every parked connection and take no more.
    fn close(&self) {
        let parked = {
            let mut slots = self.lock();
            slots.open = false;
            slots.deadlines.clear();
            std::mem::take(&mut slots.parked)
        };
        drop(parked); // closing a socket takes it out of the epoll set
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    async fn pair(listener: &TcpListener) -> (std::net::TcpStream, TcpStream) {
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client.into_std().expect("std"), server)
    }

    /// Sockets wake when their client sends, in any order, with their values;
    /// a client that closes is closed by the lot; the drain closes the rest.
    #[tokio::test]
    async fn wakes_on_data_closes_on_hang_up_and_drain() {
        let (lot, set) = Lot::<u32>::new().expect("lot");
        let (drain_tx, drain_rx) = watch::channel(Drain::Running);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(lot.clone().run(set, drain_rx, move |socket, value| {
            let _ = tx.send((socket, value));
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let far = now_ms() + 60_000;
        let mut clients = Vec::new();
        for value in 0..3u32 {
            let (client, server) = pair(&listener).await;
            lot.park(server.into(), value, far).expect("park");
            clients.push(client);
        }
        assert_eq!(lot.len(), 3);
        let [hangs_up, stays, mut sends]: [std::net::TcpStream; 3] =
            clients.try_into().expect("three");

        sends.write_all(b"x").expect("write");
        let (mut socket, value) = rx.recv().await.expect("woken");
        assert_eq!(value, 2);
        let mut byte = [0u8; 1];
        socket.set_nonblocking(false).expect("blocking");
        socket
            .read_exact(&mut byte)
            .expect("the byte is still there");
        assert_eq!(&byte, b"x");
        assert_eq!(lot.len(), 2);

        // A hang-up with nothing sent closes the socket in the lot: no wake.
        drop(hangs_up);
        let started = std::time::Instant::now();
        while lot.len() != 1 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "hang-up not seen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(rx.try_recv().is_err(), "a closed client must not wake");

        drain_tx.send(Drain::Draining).expect("drain");
        task.await.expect("lot task");
        assert_eq!(lot.len(), 0);
        // The one left sees its connection closed.
        let mut stays = stays;
        stays.set_nonblocking(false).expect("blocking");
        stays
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut rest = Vec::new();
        assert_eq!(stays.read_to_end(&mut rest).expect("read"), 0);
        let (_, server) = pair(&listener).await;
        assert!(
            lot.park(server.into(), 9, far).is_err(),
            "a drained lot takes nothing"
        );
    }

    /// A connection whose deadline passes is closed; one woken before its
    /// deadline is not closed by it, even when its slot is reused.
    #[tokio::test]
    async fn closes_at_the_deadline_and_only_the_same_connection() {
        let (lot, set) = Lot::<u32>::new().expect("lot");
        let (_drain_tx, drain_rx) = watch::channel(Drain::Running);
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(lot.clone().run(set, drain_rx, move |socket, value| {
            let _ = tx.send((socket, value));
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        // Parked with a near deadline, woken at once, parked again with a far one
        // in the same slot: the old deadline must not close it.
        let (mut first, server) = pair(&listener).await;
        lot.park(server.into(), 1, now_ms() + 200).expect("park");
        first.write_all(b"x").expect("write");
        let (mut socket, value) = rx.recv().await.expect("woken");
        assert_eq!(value, 1);
        let mut byte = [0u8; 1];
        socket.set_nonblocking(false).expect("blocking");
        socket.read_exact(&mut byte).expect("read the byte");
        socket.set_nonblocking(true).expect("non-blocking");
        let socket = TcpStream::from_std(socket).expect("tokio");
        lot.park(socket.into(), 2, now_ms() + 60_000)
            .expect("park again");
        // A second connection expires.
        let (second, server) = pair(&listener).await;
        lot.park(server.into(), 3, now_ms() + 300).expect("park");
        let mut second = TcpStream::from_std(second).expect("tokio");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), second.read_to_end(&mut rest));
        assert_eq!(closed.await.expect("closed in time").expect("read"), 0);
        assert_eq!(lot.len(), 1, "only the expired connection was closed");
        first.write_all(b"y").expect("write");
        let (_, value) = rx.recv().await.expect("woken");
        assert_eq!(value, 2);
    }
}
