//! The PROXY protocol header (versions 1 and 2, haproxy's `proxy-protocol.txt`)
//! that an L4 balancer puts in front of a connection to say whose it is.
//!
//! Data path, once per new connection on a listener with `proxy_protocol`,
//! before TLS and before any HTTP server sees a byte. The header is looked at
//! with `MSG_PEEK` (`Socket::peek`) and only its own bytes are then taken off
//! the socket, so whatever follows it (a TLS hello, a request) stays in the
//! socket for the server that reads it next, with no buffer to hand over.
//!
//! Written here rather than taken from a crate: the two formats are about a
//! hundred lines to read exactly, and reading from a peek needs a parser that
//! tells "not enough bytes yet" apart from "not a header", on a byte slice,
//! without allocating. What it accepts, as the specification says:
//! - v1: `PROXY TCP4|TCP6 src dst sport dport\r\n` (at most 107 bytes) or
//!   `PROXY UNKNOWN ...\r\n` (the peer's own address is kept);
//! - v2: the 12-byte signature, version 2, command LOCAL (a balancer's own
//!   connection, e.g. a health check: the peer's address is kept) or PROXY,
//!   and an address block; TCP over IPv4 or IPv6 gives the client's address,
//!   another known family or transport (UNSPEC, UNIX, UDP) keeps the peer's.
//!   TLVs are skipped. A v2 header over `V2_MAX_PAYLOAD` bytes is refused as
//!   oversized.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;

use crate::frontend::socket::Socket;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, `\r\n` included (the specification's bound).
const V1_MAX: usize = 107;
/// The most bytes after a v2 header's fixed 16 accepted (addresses and TLVs):
/// the TLVs balancers send (AWS's endpoint id, Azure's link id, TLS details)
/// are a few dozen bytes.
pub const V2_MAX_PAYLOAD: usize = 4096;
/// Enough to see any header's addresses: v2's fixed part and its largest
/// address block (UNIX, 216 bytes), more than a whole v1 line.
pub const PEEK: usize = 16 + 216;

/// What the bytes at the start of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A prefix of a header so far.
    More,
    /// A complete header of `len` bytes; `source` is the client's address, or
    /// `None` where the peer's own is kept (v1 UNKNOWN, v2 LOCAL or another family).
    Header {
        len: usize,
        source: Option<SocketAddr>,
    },
    Invalid(&'static str),
}

/// Whether `b` starts like `sig`: `Some(true)` all of it is there, `Some(false)`
/// a prefix of it so far, `None` not it.
fn starts_like(b: &[u8], sig: &[u8]) -> Option<bool> {
    let k = b.len().min(sig.len());
    (b[..k] == sig[..k]).then_some(k == sig.len())
}

/// Read a header from the start of `b`.
pub fn parse(b: &[u8]) -> Parsed {
    match (starts_like(b, V1_PREFIX), starts_like(b, V2_SIGNATURE)) {
        _ if b.is_empty() => Parsed::More,
        (Some(true), _) => parse_v1(b),
        (_, Some(true)) => parse_v2(b),
        (Some(false), _) | (_, Some(false)) => Parsed::More,
        (None, None) => Parsed::Invalid("no PROXY protocol header"),
    }
}

/// Whether a connection opens with a header (`Some(true)`), does not
/// (`Some(false)`), or cannot be told yet (`None`).
pub fn opens_with_header(b: &[u8]) -> Option<bool> {
    match (starts_like(b, V1_PREFIX), starts_like(b, V2_SIGNATURE)) {
        _ if b.is_empty() => None,
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => Some(false),
        _ => None,
    }
}

fn parse_v1(b: &[u8]) -> Parsed {
    let window = &b[..b.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if b.len() >= V1_MAX {
            Parsed::Invalid("v1 header longer than 107 bytes")
        } else {
            Parsed::More
        };
    };
    let len = end + 2;
    let Ok(line) = std::str::from_utf8(&b[V1_PREFIX.len()..end]) else {
        return Parsed::Invalid("v1 header is not text");
    };
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or("");
    if family == "UNKNOWN" {
        return Parsed::Header { len, source: None };
    }
    let f: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = f.as_slice() else {
        return Parsed::Invalid("v1 header needs 4 fields after its family");
    };
    let ip = |s: &str| -> Option<IpAddr> {
        match family {
            "TCP4" => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            _ => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        }
    };
    if family != "TCP4" && family != "TCP6" {
        return Parsed::Invalid("v1 family is not TCP4, TCP6 or UNKNOWN");
    }
    match (ip(src), ip(dst), port(sport), port(dport)) {
        (Some(ip), Some(_), Some(port), Some(_)) => Parsed::Header {
            len,
            source: Some(SocketAddr::new(ip, port)),
        },
        _ => Parsed::Invalid("v1 header has a bad address or port"),
    }
}

/// A decimal port, digits only.
fn port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

fn parse_v2(b: &[u8]) -> Parsed {
    if b.len() < 16 {
        return Parsed::More;
    }
    let (version, command) = (b[12] >> 4, b[12] & 0x0f);
    if version != 2 {
        return Parsed::Invalid("v2 header of an unknown version");
    }
    let (family, transport) = (b[13] >> 4, b[13] & 0x0f);
    let payload = usize::from(u16::from_be_bytes([b[14], b[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Parsed::Invalid("v2 header over 4096 bytes");
    }
    let len = 16 + payload;
    if family > 3 || transport > 2 {
        return Parsed::Invalid("v2 header of an unknown family or transport");
    }
    match command {
        0 => return Parsed::Header { len, source: None }, // LOCAL
        1 => {}
        _ => return Parsed::Invalid("v2 command is neither LOCAL nor PROXY"),
    }
    // The address block each family needs: src, dst, then for IP the ports.
    let need = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if payload < need {
        return Parsed::Invalid("v2 address block shorter than its family's");
    }
    if b.len() < 16 + need {
        return Parsed::More;
    }
    let a = &b[16..];
    let source = match (family, transport) {
        (1, 1) => {
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (2, 1) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        _ => None,
    };
    Parsed::Header { len, source }
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("PROXY protocol header from a source that is not trusted")]
    Untrusted,
    #[error("connection closed before its PROXY protocol header ended")]
    Closed,
    #[error("no PROXY protocol header within the header-read timeout")]
    Timeout,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Read the header a trusted peer must send, taking exactly its bytes off the
/// socket; the client's address, or `None` to keep the peer's.
pub async fn read(socket: &mut Socket) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buf = [0u8; PEEK];
    let mut seen = 0;
    let (len, source) = loop {
        let n = socket.peek(&mut buf, seen).await?;
        if n <= seen {
            return Err(HeaderError::Closed);
        }
        seen = n;
        match parse(&buf[..n]) {
            Parsed::More if n < PEEK => {}
            Parsed::More => return Err(HeaderError::Malformed("header does not end")),
            Parsed::Header { len, source } => break (len, source),
            Parsed::Invalid(why) => return Err(HeaderError::Malformed(why)),
        }
    };
    // Take the header off: the part peeked is there; TLVs past it may still be
    // on their way.
    let mut left = len;
    while left > 0 {
        let n = socket.read(&mut buf[..left.min(PEEK)]).await?;
        if n == 0 {
            return Err(HeaderError::Closed);
        }
        left -= n;
    }
    Ok(source)
}

/// Refuse a header from a peer that is not trusted: look at the first bytes
/// without taking them; `Ok` when the connection does not open with a header.
pub async fn refuse(socket: &mut Socket) -> Result<(), HeaderError> {
    let mut buf = [0u8; 12];
    let mut seen = 0;
    loop {
        let n = socket.peek(&mut buf, seen).await?;
        if n <= seen {
            // Closed before telling: nothing to serve either.
            return Err(HeaderError::Closed);
        }
        seen = n;
        match opens_with_header(&buf[..n]) {
            Some(true) => return Err(HeaderError::Untrusted),
            Some(false) => return Ok(()),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
