//! Hostile HTTP/2 clients: each well-known attack on HTTP/2 servers, sent with
//! raw frames over h2c, against a real ballast, while a well-behaved h2c client
//! on another connection measures its latency.
//!
//! Each test asserts that the offending connection gets a GOAWAY with the
//! expected error code, that `ballast_http2_connections_closed_total` counted it,
//! and that the well-behaved client's p99 during the attack stays within 2× of
//! its p99 measured just before (with a floor, `FLOOR`, for a shared 2-core
//! machine). The attacker runs on a thread of its own, repeating its attack on
//! fresh connections for the whole measurement, bounded in rounds and time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::{backends, eventually, Ballast, Client, Setup};

use crate::retries::metric;
use crate::SOON;

/// ENHANCE_YOUR_CALM.
const CALM: u32 = 0xb;

/// RST_STREAM's error code CANCEL.
const CANCEL: [u8; 4] = [0, 0, 0, 8];

/// The smallest p99 a comparison uses: below it, latency on a shared machine
/// is noise.
const FLOOR: Duration = Duration::from_millis(10);

/// Requests the well-behaved client times for each p99.
const SAMPLES: usize = 200;

/// The longest an attack goes on (its rounds are bounded too).
const ATTACK_TIME: Duration = Duration::from_secs(4);

mod wire {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    /// The preface, our SETTINGS (these entries) and the ACK of the server's (sent
    /// ahead: h2 takes an early one, and applies its own limits at once).
    pub fn hello(settings: &[(u16, u32)]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend(id.to_be_bytes());
            payload.extend(value.to_be_bytes());
        }
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &payload));
        out.extend(frame(SETTINGS, ACK, 0, &[]));
        out
    }

    /// An HPACK integer with an `n`-bit prefix, the first byte's other bits `flags`.
    pub fn int(flags: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(flags | value as u8);
            return;
        }
        out.push(flags | max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128 + 128) as u8);
            value /= 128;
        }
        out.push(value as u8);
    }

    /// A string literal, not Huffman-coded.
    pub fn string(s: &[u8], out: &mut Vec<u8>) {
        int(0, 7, s.len(), out);
        out.extend(s);
    }

    /// `GET path` as an HPACK block: the static table's `:method GET` and
    /// `:scheme http`, literal `:path` and `:authority` (not indexed).
    pub fn get(path: &str) -> Vec<u8> {
        let mut b = vec![0x82, 0x86];
        int(0x00, 4, 4, &mut b); // :path, static index 4
        string(path.as_bytes(), &mut b);
        int(0x00, 4, 1, &mut b); // :authority, static index 1
        string(b"h2.test", &mut b);
        b
    }

    /// A field with a new name added to the dynamic table (index 62 then).
    pub fn indexed_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        out.push(0x40);
        string(name, out);
        string(value, out);
    }
}

/// A raw h2c connection that has said hello.
async fn hostile(ballast: &std::net::SocketAddr, settings: &[(u16, u32)]) -> TcpStream {
    let mut s = TcpStream::connect(ballast).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(&wire::hello(settings)).await.expect("hello");
    s
}

/// What closed an attacking connection: the GOAWAY's error code and debug
/// data, or `None` for a close without one.
type Closed = Option<(u32, String)>;

/// Read frames until a GOAWAY or the end of the connection, within `SOON`.
async fn goaway(s: &mut TcpStream) -> Closed {
    let read = async {
        let mut head = [0u8; 9];
        loop {
            s.read_exact(&mut head).await.ok()?;
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.ok()?;
            if head[3] == wire::GOAWAY && len >= 8 {
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                return Some((code, String::from_utf8_lossy(&payload[8..]).into_owned()));
            }
        }
    };
    tokio::time::timeout(SOON, read)
        .await
        .expect("the server closes in time")
}

/// Read frames until one of `kind` on `stream`: its flags and payload.
async fn next_frame(s: &mut TcpStream, kind: u8, stream: u32) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 9];
        loop {
            s.read_exact(&mut head).await.expect("a frame");
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.expect("its payload");
            assert_ne!(head[3], wire::GOAWAY, "no GOAWAY: {payload:?}");
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
            if head[3] == kind && id == stream {
                return (head[4], payload);
            }
        }
    };
    tokio::time::timeout(SOON, read)
        .await
        .expect("a frame in time")
}

/// Write `bytes` if the connection is still open; false once it is not.
async fn send(s: &mut TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).await.is_ok()
}

async fn start() -> (Ballast, Vec<ballast_testkit::BackendHandle>) {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    // The stall limit of the zero-window test; the other clients never idle.
    setup.listener_extra.push_str("idle_timeout = \"1s\"\n");
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    (ballast, bs)
}

/// `ballast_http2_connections_closed_total{reason}` on listener `public`, as
/// scraped.
fn closed(ballast: &Ballast, reason: &str) -> u64 {
    let series = format!(
        "ballast_http2_connections_closed_total{{listener=\"public\",reason=\"{reason}\"}}"
    );
    metric(ballast, &series)
}

/// The p99 of `SAMPLES` sequential requests over one h2c connection.
async fn p99(client: &Client, url: &str) -> Duration {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let r = client.get(url).await.expect("the good client is served");
        assert_eq!(r.status, 200);
        times.push(t.elapsed());
    }
    times.sort();
    times[SAMPLES * 99 / 100 - 1]
}

/// Run `attack` (one round per call, on a fresh connection; it returns how the
/// connection was closed) on a thread of its own until the well-behaved client
/// has measured its p99, then check all three promises: every attacking
/// connection got GOAWAY `code` with one of `debug` as its debug data, each was
/// counted under `reason`, and the good client's p99 held. `rounds` bounds the
/// attack besides `ATTACK_TIME`.
async fn survives<F, Fut>(
    name: &str,
    code: u32,
    debug: &[&str],
    reason: &str,
    rounds: usize,
    attack: F,
) where
    F: Fn(std::net::SocketAddr, usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Closed>,
{
    let (ballast, _bs) = start().await;
    let good = Client::h2c();
    let url = ballast.url("/good");
    for _ in 0..20 {
        good.get(&url).await.expect("warm up");
    }
    let unloaded = p99(&good, &url).await;
    let before = closed(&ballast, reason);

    let stop = Arc::new(AtomicBool::new(false));
    let addr = ballast.addr;
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let started = Instant::now();
                let mut closes = Vec::new();
                while closes.len() < rounds
                    && started.elapsed() < ATTACK_TIME
                    && (closes.is_empty() || !stop.load(Ordering::Relaxed))
                {
                    closes.push(attack(addr, closes.len()).await);
                }
                closes
            })
        })
    };
    let during = p99(&good, &url).await;
    stop.store(true, Ordering::Relaxed);
    let closes = tokio::task::spawn_blocking(move || attacker.join().expect("attacker"))
        .await
        .expect("join");

    assert!(!closes.is_empty(), "{name}: no attack ran");
    for close in &closes {
        let ok = matches!(close, Some((c, d)) if *c == code && debug.contains(&d.as_str()));
        assert!(
            ok,
            "{name}: GOAWAY {code:#x} {debug:?} expected: {closes:?}"
        );
    }
    // Counted when the connection's task ends, a moment after the GOAWAY.
    let want = before + closes.len() as u64;
    eventually(&format!("{name} counted as {reason}"), SOON, || async {
        closed(&ballast, reason) >= want
    })
    .await;
    assert_eq!(closed(&ballast, reason), want, "{name}: counted once each");
    let bound = unloaded.max(FLOOR) * 2;
    eprintln!(
        "{name}: {} attacking connections ({:?}); good client p99 {unloaded:?} unloaded, \
         {during:?} during (bound {bound:?})",
        closes.len(),
        closes[0],
    );
    assert!(
        during <= bound,
        "{name}: good client p99 {during:?} during the attack, {unloaded:?} before"
    );
}

/// CVE-2023-44487: streams opened and reset at once, thousands a second, 100
/// pairs a write: h2 sees them reset before hyper accepts them
/// (`max_pending_accept_reset_streams`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_closed_with_enhance_your_calm() {
    let debug = ["too_many_resets", "rapid_reset"];
    survives(
        "rapid reset",
        CALM,
        &debug,
        "enhance_your_calm",
        50,
        |addr, _| async move {
            let mut s = hostile(&addr, &[]).await;
            let block = wire::get("/reset");
            let mut id = 1u32;
            // 5,000 streams at most.
            for _ in 0..50 {
                let mut burst = Vec::new();
                for _ in 0..100 {
                    let flags = wire::END_HEADERS | wire::END_STREAM;
                    burst.extend(wire::frame(wire::HEADERS, flags, id, &block));
                    burst.extend(wire::frame(wire::RST_STREAM, 0, id, &CANCEL));
                    id += 2;
                }
                if !send(&mut s, &burst).await {
                    break;
                }
            }
            goaway(&mut s).await
        },
    )
    .await;
}

/// Rapid reset of streams hyper has mostly accepted already (their requests
/// started), 10 at a time so that h2's pending-accept limit rarely sees 20: the
/// guard's `MAX_RESETS_PER_SECOND` (or h2's limit when hyper was slow to accept). One connection resets thousands a second; the
/// attacker opens the next one 100 ms after the last was closed (a flood of
/// connections is the listener's connection limits' to stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_of_accepted_streams_are_closed_with_enhance_your_calm() {
    let debug = ["rapid_reset", "too_many_resets"];
    survives(
        "accepted-stream reset",
        CALM,
        &debug,
        "enhance_your_calm",
        20,
        |addr, round| async move {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut s = hostile(&addr, &[]).await;
            let block = wire::get("/reset");
            let mut id = 1u32;
            // 10 streams, a moment for hyper to accept them, their 10 resets:
            // 1,000 at most.
            for _ in 0..100 {
                let mut opens = Vec::new();
                let mut resets = Vec::new();
                for _ in 0..10 {
                    let flags = wire::END_HEADERS | wire::END_STREAM;
                    opens.extend(wire::frame(wire::HEADERS, flags, id, &block));
                    resets.extend(wire::frame(wire::RST_STREAM, 0, id, &CANCEL));
                    id += 2;
                }
                if !send(&mut s, &opens).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                if !send(&mut s, &resets).await {
                    break;
                }
            }
            goaway(&mut s).await
        },
    )
    .await;
}

/// The 2024 CONTINUATION flood: a header block that never ends, one
/// CONTINUATION frame after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_closed() {
    let debug = ["too_many_continuations"];
    survives(
        "CONTINUATION flood",
        CALM,
        &debug,
        "enhance_your_calm",
        50,
        |addr, _| async move {
            let mut s = hostile(&addr, &[]).await;
            // A field whose 1 MB value never comes whole.
            let mut block = wire::get("/continuation");
            block.push(0x00);
            wire::string(b"x-flood", &mut block);
            wire::int(0, 7, 1 << 20, &mut block);
            let mut burst = wire::frame(wire::HEADERS, wire::END_STREAM, 1, &block);
            // 1,000 frames at most, of 1,000 bytes, 50 a write.
            for _ in 0..20 {
                for _ in 0..50 {
                    burst.extend(wire::frame(wire::CONTINUATION, 0, 1, &[b'a'; 1000]));
                }
                if !send(&mut s, &burst).await {
                    break;
                }
                burst.clear();
            }
            goaway(&mut s).await
        },
    )
    .await;
}

/// An HPACK bomb: one 4 KB field put in the dynamic table, then named again
/// 200 times by a one-byte index: 5 KB on the wire, 800 KB decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpack_bomb_is_closed_with_enhance_your_calm() {
    let debug = ["header_list_way_too_large"];
    survives(
        "HPACK bomb",
        CALM,
        &debug,
        "enhance_your_calm",
        200,
        |addr, _| async move {
            let mut s = hostile(&addr, &[]).await;
            let mut block = wire::get("/bomb");
            wire::indexed_literal(b"x-bomb", &[b'a'; 4000], &mut block);
            block.extend([0xbe; 200]); // dynamic index 62, again and again
            let flags = wire::END_HEADERS | wire::END_STREAM;
            send(&mut s, &wire::frame(wire::HEADERS, flags, 1, &block)).await;
            goaway(&mut s).await
        },
    )
    .await;
}

/// A header list over the listener's limit (64 KiB by default) but not 4× it:
/// that request gets 431, and the connection serves the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_list_over_the_limit_gets_431_and_the_connection_lives() {
    let (ballast, _bs) = start().await;
    let mut s = hostile(&ballast.addr, &[]).await;
    let mut block = wire::get("/large");
    wire::indexed_literal(b"x-large", &[b'a'; 4000], &mut block);
    block.extend([0xbe; 20]); // 84 KB decoded
    let flags = wire::END_HEADERS | wire::END_STREAM;
    assert!(send(&mut s, &wire::frame(wire::HEADERS, flags, 1, &block)).await);
    let (_, status) = next_frame(&mut s, wire::HEADERS, 1).await;
    // Not the static table's `:status 200` (0x88): 431, a literal.
    assert_ne!(status.first(), Some(&0x88), "{status:?}");
    assert!(
        send(
            &mut s,
            &wire::frame(wire::HEADERS, flags, 3, &wire::get("/next"))
        )
        .await
    );
    let (_, status) = next_frame(&mut s, wire::HEADERS, 3).await;
    assert_eq!(status.first(), Some(&0x88), "200 for the next request");
    let via_client = Client::h2c()
        .send(
            Request::get(ballast.url("/large"))
                .header("x-large", "a".repeat(70 * 1024))
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("an answer");
    assert_eq!(via_client.status, 431);
    assert_eq!(closed(&ballast, "enhance_your_calm"), 0);
}

/// A SETTINGS flood: 1,000 SETTINGS frames, each to be acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood_is_closed_with_enhance_your_calm() {
    let debug = ["settings_flood"];
    survives(
        "SETTINGS flood",
        CALM,
        &debug,
        "enhance_your_calm",
        100,
        |addr, _| async move {
            let mut s = hostile(&addr, &[]).await;
            let one = wire::frame(wire::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
            send(&mut s, &one.repeat(1000)).await;
            goaway(&mut s).await
        },
    )
    .await;
}

/// A PING flood from a client that never reads the PONGs: 5,000 PINGs, 500 a
/// write, nothing read until the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_closed_with_enhance_your_calm() {
    let debug = ["ping_flood"];
    survives(
        "PING flood",
        CALM,
        &debug,
        "enhance_your_calm",
        100,
        |addr, _| async move {
            let mut s = hostile(&addr, &[]).await;
            let burst = wire::frame(wire::PING, 0, 0, &[7; 8]).repeat(500);
            for _ in 0..10 {
                if !send(&mut s, &burst).await {
                    break;
                }
            }
            goaway(&mut s).await
        },
    )
    .await;
}

/// A client that opens the most streams it may, each for a 1 MB response, and
/// never lets them be sent: its streams start with no window
/// (SETTINGS_INITIAL_WINDOW_SIZE = 0) every other round, or it never sends a
/// WINDOW_UPDATE. After the listener's idle timeout (1 s here) it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_its_window_shut_is_closed() {
    let debug = ["zero_window"];
    survives(
        "zero window",
        CALM,
        &debug,
        "enhance_your_calm",
        3,
        |addr, round| async move {
            let settings: &[(u16, u32)] = if round % 2 == 0 { &[(4, 0)] } else { &[] };
            let mut s = hostile(&addr, settings).await;
            let block = wire::get("/?bytes=1000000");
            let mut opens = Vec::new();
            for i in 0..100 {
                let flags = wire::END_HEADERS | wire::END_STREAM;
                opens.extend(wire::frame(wire::HEADERS, flags, 1 + 2 * i, &block));
            }
            send(&mut s, &opens).await;
            goaway(&mut s).await
        },
    )
    .await;
}
