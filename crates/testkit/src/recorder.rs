//! A target that records exactly what it received: every request as the bytes of
//! its head and its body, on which connection, and which connections it saw end.
//! For tests of what ballast forwards when a client sends something two parsers
//! could read two ways (request smuggling, desync mitigation).
//!
//! Test support only. It reads requests with strict framing of its own
//! (`Content-Length` or chunked; both present is recorded as an error and ends the
//! connection) and answers each `200` with body `ok`; `/healthz` is answered but
//! not recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the target read it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Connections are numbered from 0 in the order they were accepted.
    pub conn: usize,
    /// The head as received, request line first, up to the blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The request target from the request line.
    pub fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The value of the first field `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// How many fields named `name` the head has.
    pub fn fields(&self, name: &str) -> usize {
        self.head
            .split("\r\n")
            .skip(1)
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .count()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// Per connection: whether it has ended.
    ended: Vec<bool>,
    /// Framing errors (a request the recorder could not read one way).
    errors: Vec<String>,
}

/// A recording target on 127.0.0.1:0.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = {
                    let mut s = shared.lock().expect("state");
                    s.ended.push(false);
                    s.ended.len() - 1
                };
                tokio::spawn(serve(stream, conn, shared.clone()));
            }
        });
        Recorder { addr, state }
    }

    /// Every request recorded so far (health checks left out).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("state").requests.clone()
    }

    /// The requests whose target starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Recorded> {
        let mut found = self.requests();
        found.retain(|r| r.path().starts_with(prefix));
        found
    }

    /// Whether connection `conn` has ended.
    pub fn ended(&self, conn: usize) -> bool {
        self.state.lock().expect("state").ended.get(conn) == Some(&true)
    }

    /// Requests the recorder could not read one way.
    pub fn errors(&self) -> Vec<String> {
        self.state.lock().expect("state").errors.clone()
    }
}

async fn serve(mut stream: TcpStream, conn: usize, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    loop {
        match read_request(&mut stream, &mut buf).await {
            Ok(Some((head, body))) => {
                let close = head.to_ascii_lowercase().contains("\r\nconnection: close");
                let health = head.starts_with("GET /healthz ");
                let bodiless = health || head.starts_with("HEAD ");
                if !health {
                    let r = Recorded { conn, head, body };
                    state.lock().expect("state").requests.push(r);
                }
                let answer: &[u8] = if bodiless {
                    if close {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
                    }
                } else if close {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                };
                if stream.write_all(answer).await.is_err() || close {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                state.lock().expect("state").errors.push(e);
                break;
            }
        }
    }
    // Wait for the other side to close (a `close` answer is followed by ours).
    let mut rest = [0u8; 512];
    while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
    state.lock().expect("state").ended[conn] = true;
}

/// Read one request; `Ok(None)` when the connection ended between requests.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<(String, Vec<u8>)>, String> {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if !fill(stream, buf).await {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err("connection ended inside a head".into())
            };
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let lower = head.to_ascii_lowercase();
    let field = |name: &str| {
        lower
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.trim().to_string())
            .collect::<Vec<_>>()
    };
    let te = field("transfer-encoding");
    let cl = field("content-length");
    if !te.is_empty() && !cl.is_empty() {
        return Err(format!(
            "both transfer-encoding and content-length: {head:?}"
        ));
    }
    if cl.len() > 1 {
        return Err(format!("{} content-length fields: {head:?}", cl.len()));
    }
    let mut body = Vec::new();
    if te.iter().any(|v| v == "chunked") {
        loop {
            let line = read_line(stream, buf).await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers up to the blank line.
                while !read_line(stream, buf).await?.is_empty() {}
                break;
            }
            while buf.len() < size + 2 {
                if !fill(stream, buf).await {
                    return Err("connection ended inside a chunk".into());
                }
            }
            body.extend_from_slice(&buf[..size]);
            if &buf[size..size + 2] != b"\r\n" {
                return Err("chunk not followed by CRLF".into());
            }
            buf.drain(..size + 2);
        }
    } else if let Some(n) = cl.first() {
        let n: usize = n.parse().map_err(|_| format!("bad content-length {n:?}"))?;
        while buf.len() < n {
            if !fill(stream, buf).await {
                return Err("connection ended inside a body".into());
            }
        }
        body = buf.drain(..n).collect();
    }
    Ok(Some((head, body)))
}

async fn read_line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 2);
            return Ok(line);
        }
        if !fill(stream, buf).await {
            return Err("connection ended inside a line".into());
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
