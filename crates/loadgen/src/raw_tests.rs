//! Unit tests of the raw HTTP/1.1 answer reader and connection ([`super`]).

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Feeds `pieces` one read at a time; returns the reader, whether it completed, and
/// what was left in the buffer.
fn feed(pieces: &[&[u8]], head: bool) -> Result<(Reader, bool, Vec<u8>), ErrorKind> {
    let mut reader = Reader::new(head);
    let mut buf = BytesMut::new();
    let mut complete = reader.advance(&mut buf)?;
    for piece in pieces {
        assert!(!complete, "complete before all pieces were fed");
        buf.extend_from_slice(piece);
        complete = reader.advance(&mut buf)?;
    }
    Ok((reader, complete, buf.to_vec()))
}

/// Splits `bytes` into every possible pair of reads and checks each gives `expect`.
fn every_split(bytes: &[u8], expect: (u16, u64, bool)) {
    for at in 1..bytes.len() {
        let (r, complete, rest) = feed(&[&bytes[..at], &bytes[at..]], false).expect("parse");
        assert!(complete, "split at {at}");
        assert!(rest.is_empty(), "split at {at}");
        assert_eq!((r.status, r.bytes, r.close), expect, "split at {at}");
    }
}

#[test]
fn content_length_body_split_across_reads() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world";
    every_split(answer, (200, 11, false));
    let (r, complete, _) = feed(
        &[b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhel", b"lo"],
        false,
    )
    .expect("parse");
    assert!(!complete);
    assert_eq!(r.bytes, 5);
}

#[test]
fn chunked_with_extensions_trailers_and_split_chunk_headers() {
    let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
        5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
    every_split(answer, (200, 31, false));
    let (_, complete, _) = feed(
        &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r"],
        false,
    )
    .expect("parse");
    assert!(!complete);
}

#[test]
fn chunked_errors_are_read_errors() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        &b"zz\r\n"[..],
        b"5\r\nhelloXX\r\n",
        b"fffffffffffffffff\r\n",
        b"5 x\r\n",
    ] {
        let err = feed(&[head, body], false).expect_err("malformed chunk");
        assert_eq!(err, ErrorKind::Read, "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn connection_close_and_close_delimited_bodies() {
    every_split(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
        (200, 2, true),
    );
    every_split(
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        (200, 2, true),
    );
    every_split(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        (200, 2, false),
    );
    // Neither length nor chunked: the body runs to the end of the connection.
    let (mut r, complete, _) = feed(&[b"HTTP/1.1 200 OK\r\n\r\nabc", b"de"], false).expect("parse");
    assert!(!complete && r.close);
    r.eof().expect("close ends the body");
    assert_eq!(r.bytes, 5);
}

#[test]
fn no_body_for_204_304_1xx_and_head() {
    for answer in [
        &b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    ] {
        let (r, complete, rest) = feed(&[answer], false).expect("parse");
        assert!(complete && rest.is_empty() && r.bytes == 0 && !r.close);
    }
    let (r, complete, _) =
        feed(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], true).expect("parse");
    assert!(complete && r.status == 200 && r.bytes == 0);
    // An interim 100 Continue is skipped; the final answer counts.
    every_split(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
        (201, 1, false),
    );
}

#[test]
fn bytes_beyond_the_answer_are_left_for_the_connection_to_refuse() {
    let (r, complete, rest) = feed(
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"],
        false,
    )
    .expect("parse");
    assert!(complete && r.bytes == 2);
    assert_eq!(rest, b"HTTP/1.1 200 OK\r\n");
}

#[test]
fn malformed_answers_are_read_errors_and_eof_is_reset() {
    for answer in [
        &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        assert_eq!(
            feed(&[answer], false).expect_err("malformed"),
            ErrorKind::Read
        );
    }
    let huge = vec![b'a'; MAX_HEAD + 1];
    let err = feed(&[b"HTTP/1.1 200 OK\r\nX: ", &huge], false).expect_err("too large");
    assert_eq!(err, ErrorKind::Read);
    let (mut r, _, _) =
        feed(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"], false).expect("parse");
    assert_eq!(r.eof(), Err(ErrorKind::Reset));
}

/// A server on the other end of an in-memory pipe: answers each request with the
/// next of `answers`, written in two pieces, then closes.
async fn pipe(answers: Vec<&'static [u8]>) -> Conn<tokio::io::DuplexStream> {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        for answer in answers {
            if server.read(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
            let (a, b) = answer.split_at(answer.len() / 2);
            let _ = server.write_all(a).await;
            tokio::task::yield_now().await;
            let _ = server.write_all(b).await;
        }
    });
    Conn::new(client)
}

#[tokio::test]
async fn conn_reuses_its_buffer_and_reconnects_after_close() {
    let mut conn = pipe(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ])
    .await;
    let request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    assert!(conn.ready());
    assert_eq!(conn.exchange(request, false).await, Ok((200, 3)));
    assert!(conn.ready());
    assert_eq!(conn.exchange(request, false).await, Ok((404, 2)));
    assert!(conn.ready());
    assert_eq!(conn.exchange(request, false).await, Ok((200, 0)));
    assert!(!conn.ready(), "Connection: close ends the connection");
}

#[tokio::test]
async fn conn_reports_reset_when_the_server_closes_mid_answer() {
    let mut conn = pipe(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"]).await;
    let request = b"GET / HTTP/1.1\r\n\r\n";
    assert_eq!(conn.exchange(request, false).await, Err(ErrorKind::Reset));
    assert!(!conn.ready());
}

#[tokio::test]
async fn conn_refuses_leftovers_and_notices_an_idle_close() {
    let mut conn = pipe(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n",
    ])
    .await;
    assert_eq!(
        conn.exchange(b"GET / HTTP/1.1\r\n\r\n", false).await,
        Ok((200, 1))
    );
    assert!(!conn.ready(), "bytes beyond the answer end the connection");

    let mut conn = pipe(vec![]).await;
    for _ in 0..100 {
        tokio::task::yield_now().await; // let the server task drop its end
    }
    assert!(
        !conn.ready(),
        "a close while idle is noticed before sending"
    );
}
