//! ballast's own HTTP/1.1: the client side (connections to `http1` targets) and
//! the server side for the common client request.
//!
//! Data path. hyper's client runs every upstream connection in a task of its own
//! and hands requests and responses to it over channels: each proxied request cost
//! two extra task wake-ups and a cross-task hand-off that HAProxy's single event
//! loop does not pay, plus hyper's buffers on every pooled connection. Here the
//! client connection's own task writes the request and reads the response on the
//! target's socket directly (`client.rs`), with the message syntax and the framing
//! rules kept apart as plain functions over buffers (`codec.rs`). On the client
//! side, a request with a complete head and no body on plain TCP is served by
//! `server.rs`, which parses it in place and answers without hyper's dispatcher;
//! hyper serves every other HTTP/1.1 request, and HTTP/2, and speaks HTTP/2 to
//! `http2` targets. Read buffers on both sides are lent by the worker
//! (`buffers.rs`) for as long as bytes are in them. Health checks and WebSocket
//! upgrades keep their own hyper connections, which are off the per-request path.

pub mod buffers;
pub mod client;
pub mod codec;
pub mod server;

/// What can go wrong talking HTTP/1.1 to a target.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target closed the connection before sending any of the response.
    #[error("connection closed before a response")]
    Closed,
    /// The target closed the connection in the middle of a response.
    #[error("connection closed in the middle of a response")]
    Incomplete,
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    #[error("response head larger than {} bytes", codec::MAX_HEAD)]
    HeadTooLarge,
    /// Reading the client's request body failed (the client went away).
    #[error("request body: {0}")]
    ClientBody(hyper::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The connection ended or broke: another connection may well succeed, unlike
    /// a target that answered with something that is not HTTP.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Error::Closed | Error::Incomplete | Error::Io(_))
    }
}
