//! How one request ended, and the error taxonomy the reports use.
//!
//! Kinds follow what an operator can act on: `connect` (TCP, TLS or the HTTP handshake
//! failed: nothing is listening, or the accept queue is full), `timeout` (no complete
//! answer within `--timeout`), `reset` (the peer closed or reset the connection under a
//! request), `read` (the answer could not be parsed or its body broke off) and `other`.

use std::io;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Reset,
    Read,
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Read,
        ErrorKind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Read => "read",
            ErrorKind::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies an I/O error met while sending a request or reading its answer.
    pub fn of_io(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => ErrorKind::Reset,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Read,
        }
    }

    /// Classifies an error from sending a request or reading its answer.
    pub fn of_hyper(err: &hyper::Error) -> Self {
        if err.is_timeout() {
            return ErrorKind::Timeout;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Self::of_io(io.kind());
            }
            source = e.source();
        }
        if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
            ErrorKind::Reset
        } else if err.is_parse() || err.is_parse_status() || err.is_body_write_aborted() {
            ErrorKind::Read
        } else {
            ErrorKind::Other
        }
    }
}

/// The end of one request: a status and the body bytes read, or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Response { status: u16, bytes: u64 },
    Error(ErrorKind),
}
