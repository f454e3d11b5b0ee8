//! Writing a response to the client: the head with this server's framing and a
//! `Date`, then the body, gathered into a lent buffer and written in as few
//! sends as possible (head and a small body in one).
//!
//! Data path.

use std::io::{self, IoSlice};
use std::time::SystemTime;

use bytes::BytesMut;
use futures_util::FutureExt;
use http::header::{HeaderMap, HeaderName, CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::forward::body::ResponseBody;
use crate::frontend::connection::TrackedIo;
use crate::frontend::socket::Socket;
use crate::http1::codec::{self, Framing};
use crate::runtime::buffers::{self};

/// Response bytes gathered before they are written.
const FLUSH_AT: usize = 16 * 1024;
/// Body data larger than this is written from where it is, not copied.
const COPY_UP_TO: usize = 4 * 1024;

/// How a response is written.
pub(super) struct Write {
    /// The request was a HEAD: the head only, whatever the body.
    pub(super) head_only: bool,
    pub(super) keep_alive: bool,
    /// Trailers may be sent (the client said `TE: trailers`).
    pub(super) trailers: bool,
}

/// Write a response; `true` if the connection can take another request.
pub(super) async fn write_response(
    io: &mut TrackedIo<Socket>,
    response: Response<ResponseBody>,
    how: Write,
    wbuf: &mut BytesMut,
) -> bool {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let no_content = status.is_informational() || status == StatusCode::NO_CONTENT;
    let framing = if how.head_only || no_content || status == StatusCode::NOT_MODIFIED {
        Framing::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => Framing::Length(n),
            None => Framing::Chunked,
        }
    };
    // A HEAD answered by ballast itself announces the length a GET would get;
    // a target's answer keeps whatever length the target gave.
    let announced = match body.own_length() {
        Some(n) if how.head_only && !no_content && status != StatusCode::NOT_MODIFIED => {
            Framing::Length(n)
        }
        _ => framing,
    };
    buffers::reserve(wbuf);
    encode_head(
        status,
        &parts.headers,
        announced,
        no_content,
        how.keep_alive,
        wbuf,
    );
    if framing != Framing::Empty {
        match write_body(io, &mut body, framing, how.trailers, wbuf).await {
            Ok(true) => {}
            // The body broke off or came out short: the client must see the
            // connection close rather than a response that looks whole.
            Ok(false) | Err(_) => return false,
        }
    }
    if !wbuf.is_empty() && io.write_all(wbuf).await.is_err() {
        return false;
    }
    wbuf.clear();
    how.keep_alive
}

/// Stream a response body after its head (which is in `wbuf`); `Ok(false)` if it
/// ended short or failed.
async fn write_body(
    io: &mut TrackedIo<Socket>,
    body: &mut ResponseBody,
    framing: Framing,
    trailers_allowed: bool,
    wbuf: &mut BytesMut,
) -> io::Result<bool> {
    let chunked = framing == Framing::Chunked;
    let mut sent = 0u64;
    let mut trailers = None;
    loop {
        // What is ready now is gathered; before waiting, what is gathered goes out.
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !wbuf.is_empty() {
                    io.write_all(wbuf).await?;
                    wbuf.clear();
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => return Ok(false),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    continue;
                }
            },
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Framing::Length(n) = framing {
            if sent > n {
                return Ok(false);
            }
        }
        if chunked {
            crate::http1::chunked::encode_chunk_size(data.len(), wbuf);
        }
        if data.len() <= COPY_UP_TO {
            wbuf.extend_from_slice(&data);
        } else {
            write_two(io, wbuf, &data).await?;
            wbuf.clear();
        }
        if chunked {
            wbuf.extend_from_slice(b"\r\n");
        }
        if wbuf.len() >= FLUSH_AT {
            io.write_all(wbuf).await?;
            wbuf.clear();
        }
    }
    match framing {
        Framing::Length(n) if sent != n => return Ok(false),
        Framing::Chunked => {
            wbuf.extend_from_slice(b"0\r\n");
            if let (true, Some(trailers)) = (trailers_allowed, trailers) {
                for (name, value) in &trailers {
                    put_field(wbuf, name, value.as_bytes());
                }
            }
            wbuf.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    Ok(true)
}

/// Write `a` then `b` with as few writes as the socket allows.
async fn write_two(io: &mut TrackedIo<Socket>, a: &[u8], b: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() {
        let n = io
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n >= a.len() {
            b = &b[n - a.len()..];
            a = &[];
        } else {
            a = &a[n..];
        }
    }
    io.write_all(b).await
}

/// The status line and header section, with the framing this server chose.
fn encode_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    no_content: bool,
    keep_alive: bool,
    out: &mut BytesMut,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // A HEAD or 304 response keeps the length the target gave; any other is
    // framed here.
    let ours = framing != Framing::Empty || no_content;
    let mut dated = false;
    for (name, value) in headers {
        if name == CONNECTION || (ours && (name == CONTENT_LENGTH || name == TRANSFER_ENCODING)) {
            continue;
        }
        dated |= name == DATE;
        put_field(out, name, value.as_bytes());
    }
    if !dated {
        put_date(out);
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            codec::push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn put_field(out: &mut BytesMut, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `date: <IMF-fixdate>` (RFC 9110 §6.6.1), formatted once a second per thread.
fn put_date(out: &mut BytesMut) {
    use std::cell::RefCell;
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(cached.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    fn encoded(
        status: u16,
        headers: &[(&str, &str)],
        framing: Framing,
        keep_alive: bool,
    ) -> String {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let status = StatusCode::from_u16(status).expect("status");
        let no_content = status == StatusCode::NO_CONTENT;
        let mut out = BytesMut::new();
        encode_head(status, &map, framing, no_content, keep_alive, &mut out);
        String::from_utf8(out.to_vec()).expect("text")
    }

    #[test]
    fn the_head_carries_this_servers_framing() {
        let dated = [("date", "Sun, 22 Nov 2026 00:00:00 GMT")];
        let text = encoded(
            200,
            &[("content-length", "999"), dated[0]],
            Framing::Length(5),
            true,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ndate: Sun, 22 Nov 2026 00:00:00 GMT\r\ncontent-length: 5\r\n\r\n"
        );
        let text = encoded(599, &dated, Framing::Chunked, false);
        assert!(text.starts_with("HTTP/1.1 599 \r\n"), "{text}");
        assert!(text.ends_with("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"));
        // HEAD and 304 keep the target's length; 204 has none.
        let text = encoded(
            200,
            &[("content-length", "7"), dated[0]],
            Framing::Empty,
            true,
        );
        assert!(text.contains("content-length: 7\r\n"), "{text}");
        let text = encoded(
            204,
            &[("content-length", "7"), dated[0]],
            Framing::Empty,
            true,
        );
        assert!(!text.contains("content-length"), "{text}");
        // A date is added when the response has none.
        let text = encoded(200, &[], Framing::Length(0), true);
        assert!(
            text.contains("\r\ndate: ") && text.contains(" GMT\r\n"),
            "{text}"
        );
    }
}
