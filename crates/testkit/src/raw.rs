//! HTTP/1.1 responses read straight off a socket, for tests that check what a
//! client sees on the wire (framing, `Connection: close`, a cut connection).
//!
//! Test support only.

use std::collections::HashMap;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// One response as read off the socket.
pub struct RawResponse {
    pub status: u16,
    /// Field names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The response asks to close the connection after it.
    pub fn closes(&self) -> bool {
        self.headers.get("connection").map(String::as_str) == Some("close")
    }
}

/// Read one response (`Content-Length`, chunked, or none for HEAD) from `buf`
/// and the socket; what follows it stays in `buf`. `None` if the connection
/// ends (or fails) before the response does.
pub async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> Option<RawResponse> {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        fill(stream, buf).await?;
    };
    let head = String::from_utf8(buf[..end].to_vec()).expect("head is text");
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line[9..12].parse().expect("status code");
    let headers: HashMap<String, String> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("field");
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let mut body = Vec::new();
    if head_only {
        return Some(RawResponse {
            status,
            headers,
            body,
        });
    }
    if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().expect("length");
        while buf.len() < len {
            fill(stream, buf).await?;
        }
        body = buf.drain(..len).collect();
    } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(stream, buf).await?;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).expect("size"), 16)
                    .expect("hex size");
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(stream, buf).await?;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

/// Read more into `buf`; `None` once the connection has ended or failed.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
