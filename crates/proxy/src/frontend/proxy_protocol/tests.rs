//! The PROXY protocol parser on every form the specification gives, on each
//! prefix of them, and on broken ones; the reader on real sockets.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().expect("addr"))
}

/// A v2 header: command, family/transport byte, address block, then TLVs.
fn v2(command: u8, fam: u8, block: &[u8], tlvs: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(fam);
    h.extend_from_slice(&((block.len() + tlvs.len()) as u16).to_be_bytes());
    h.extend_from_slice(block);
    h.extend_from_slice(tlvs);
    h
}

fn v4_block() -> Vec<u8> {
    let mut b = vec![203, 0, 113, 7, 10, 0, 0, 1];
    b.extend_from_slice(&51234u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

#[test]
fn v1_forms() {
    let h = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET /";
    assert_eq!(
        parse(h),
        Parsed::Header {
            len: h.len() - 5,
            source: addr("203.0.113.7:51234")
        }
    );
    let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 80\r\n";
    assert_eq!(
        parse(h),
        Parsed::Header {
            len: h.len(),
            source: addr("[2001:db8::7]:65535")
        }
    );
    let h = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_eq!(
        parse(h),
        Parsed::Header {
            len: h.len(),
            source: None
        }
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n"),
        Parsed::Header {
            len: 15,
            source: None
        }
    );
}

#[test]
fn v1_misuse_is_invalid() {
    for bad in [
        &b"PROXY TCP4 203.0.113.7 10.0.0.1 51234\r\n"[..],
        b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
        b"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 443\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 +1 443\r\n",
        b"PROXY TCP4 203.0.113.7  10.0.0.1 1 443\r\n",
        b"PROXY UDP4 203.0.113.7 10.0.0.1 1 443\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 1 443 extra\r\n",
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01",
    ] {
        assert!(
            matches!(parse(bad), Parsed::Invalid(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
    assert_eq!(
        parse(long.as_bytes()),
        Parsed::Invalid("v1 header longer than 107 bytes")
    );
}

#[test]
fn v2_forms() {
    let h = v2(1, 0x11, &v4_block(), &[]);
    assert_eq!(
        parse(&h),
        Parsed::Header {
            len: 28,
            source: addr("203.0.113.7:51234")
        }
    );
    // TLVs are part of the header, skipped.
    let h = v2(1, 0x11, &v4_block(), &[0x04, 0, 3, b'a', b'b', b'c']);
    assert_eq!(
        parse(&h),
        Parsed::Header {
            len: 34,
            source: addr("203.0.113.7:51234")
        }
    );
    let mut block: Vec<u8> = "2001:db8::7"
        .parse::<Ipv6Addr>()
        .expect("v6")
        .octets()
        .to_vec();
    block.extend_from_slice(&[0; 16]);
    block.extend_from_slice(&[0x1f, 0x90, 0, 80]);
    assert_eq!(
        parse(&v2(1, 0x21, &block, &[])),
        Parsed::Header {
            len: 52,
            source: addr("[2001:db8::7]:8080")
        }
    );
    // LOCAL (a balancer's health check), UNSPEC, UNIX and UDP keep the peer's address.
    for (command, fam, block) in [
        (0, 0x00, vec![]),
        (0, 0x11, v4_block()),
        (1, 0x00, vec![]),
        (1, 0x31, vec![0; 216]),
        (1, 0x12, v4_block()),
    ] {
        let h = v2(command, fam, &block, &[]);
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len: h.len(),
                source: None
            }
        );
    }
}

#[test]
fn v2_misuse_is_invalid() {
    let mut bad_version = v2(1, 0x11, &v4_block(), &[]);
    bad_version[12] = 0x11;
    let mut oversized = v2(1, 0x11, &v4_block(), &[]);
    oversized[14..16].copy_from_slice(&4097u16.to_be_bytes());
    for bad in [
        bad_version,
        v2(2, 0x11, &v4_block(), &[]),      // unknown command
        v2(1, 0x41, &v4_block(), &[]),      // unknown family
        v2(1, 0x13, &v4_block(), &[]),      // unknown transport
        v2(1, 0x11, &v4_block()[..8], &[]), // short address block
        v2(1, 0x21, &v4_block(), &[]),      // IPv6 needs 36
        oversized,
    ] {
        assert!(matches!(parse(&bad), Parsed::Invalid(_)), "{bad:?}");
    }
}

/// Every strict prefix of a header asks for more, never for a verdict.
#[test]
fn every_prefix_asks_for_more() {
    let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n".to_vec();
    for h in [v1, v2(1, 0x11, &v4_block(), &[1, 0, 0])] {
        let whole = parse(&h);
        assert!(matches!(whole, Parsed::Header { .. }));
        // A v2 header is whole once its addresses are (the TLVs are skipped
        // by length), so prefixes below the address block's end ask for more.
        let enough = if h[0] == b'P' { h.len() } else { 28 };
        for n in 0..enough {
            assert_eq!(parse(&h[..n]), Parsed::More, "prefix {n}");
            if n > 0 {
                assert_eq!(opens_with_header(&h[..n.min(12)]), {
                    let sig = if h[0] == b'P' { 6 } else { 12 };
                    if n >= sig {
                        Some(true)
                    } else {
                        None
                    }
                });
            }
        }
    }
    assert_eq!(opens_with_header(b"GET / HTTP/1.1"), Some(false));
    assert_eq!(opens_with_header(b"\x16\x03\x01\x02"), Some(false));
    assert_eq!(opens_with_header(b"\r\n\r\nX"), Some(false));
    assert_eq!(opens_with_header(b"PROXX"), Some(false));
}

/// A connected pair: the accepted side as a direct `Socket`, and the client.
async fn pair() -> (Socket, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (accepted, _) = listener.accept().await.expect("accept");
    (Socket::direct(accepted.into_std().expect("std")), client)
}

/// A header that arrives in pieces is read whole, and exactly: what follows
/// stays for the next reader.
#[tokio::test]
async fn a_header_in_pieces_is_taken_exactly() {
    let (mut socket, mut client) = pair().await;
    let mut h = v2(1, 0x11, &v4_block(), &[0x04, 0, 2, 9, 9]);
    h.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let writer = tokio::spawn(async move {
        for piece in [&h[..5], &h[5..20], &h[20..30], &h[30..]] {
            client.write_all(piece).await.expect("send");
            client.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
        client
    });
    let source = read(&mut socket).await.expect("header");
    assert_eq!(source, addr("203.0.113.7:51234"));
    let mut rest = [0u8; 16];
    socket.read_exact(&mut rest).await.expect("the request");
    assert_eq!(&rest, b"GET / HTTP/1.1\r\n");
    drop(writer.await.expect("writer"));
}

#[tokio::test]
async fn an_untrusted_header_is_refused_and_a_request_is_not_taken() {
    let (mut socket, mut client) = pair().await;
    client
        .write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\r\n")
        .await
        .expect("send");
    assert!(matches!(
        refuse(&mut socket).await,
        Err(HeaderError::Untrusted)
    ));
    let (mut socket, mut client) = pair().await;
    client.write_all(b"GET / HTTP/1.1\r\n").await.expect("send");
    refuse(&mut socket).await.expect("not a header");
    let mut first = [0u8; 3];
    socket.read_exact(&mut first).await.expect("still there");
    assert_eq!(&first, b"GET");
}

#[tokio::test]
async fn a_connection_closed_mid_header_is_an_error() {
    let (mut socket, mut client) = pair().await;
    client.write_all(b"PROXY TCP4 203.0").await.expect("send");
    drop(client);
    // Closed mid-header: an error at once, not a wait on bytes that cannot
    // come (tokio keeps a closed side readable: a loop on it would spin).
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), read(&mut socket)).await;
    assert!(matches!(r, Ok(Err(HeaderError::Closed))), "{r:?}");
    let (mut socket, mut client) = pair().await;
    client.write_all(b"PRO").await.expect("send");
    drop(client);
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), refuse(&mut socket)).await;
    assert!(matches!(r, Ok(Err(HeaderError::Closed))), "{r:?}");
    let (mut socket, client) = pair().await;
    drop(client);
    assert!(matches!(read(&mut socket).await, Err(HeaderError::Closed)));
}
